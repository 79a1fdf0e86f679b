"""Fixtures shared by the whole suite: databases (SQLite, or PostgreSQL when asked), settings, apps.

Set ``SUPERCLOUD_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test`` to run every
database-backed test on PostgreSQL (each test gets its own schema).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.databases import fresh_database
from tests.support.settings import SettingsFactory


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database for this test: SQLite in tmp_path, or a fresh PostgreSQL schema."""
    with fresh_database(tmp_path) as url:
        yield url


@pytest.fixture
def settings_factory(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> SettingsFactory:
    """Builds validated Settings over the demo organisations, with secrets in the environment."""
    return SettingsFactory(tmp_path, database_url, monkeypatch)


@pytest.fixture
def settings(settings_factory: SettingsFactory):  # type: ignore[no-untyped-def]
    """Development settings for the London demo organisations and one test application."""
    return settings_factory()


@pytest.fixture
def services(settings):  # type: ignore[no-untyped-def]
    """Initialised services (migrated database, keys, applications) for ``settings``."""
    from broker.bootstrap import initialise
    from broker.services import build_services

    initialise(settings)
    built = build_services(settings)
    yield built
    built.engine.dispose()


@pytest.fixture
def app(settings, services):  # type: ignore[no-untyped-def]
    """The broker's Flask app over ``services``."""
    from broker.web.app import create_app

    flask_app = create_app(settings, services=services)
    flask_app.config["TESTING"] = True
    return flask_app
