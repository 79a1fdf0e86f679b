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


@pytest.fixture
def policy_settings(settings_factory):  # type: ignore[no-untyped-def]
    """Settings with the London policy bundle deciding, and two applications: the Discharge Hub and Admissions."""
    from config import load_settings
    from tests.support.settings import LONDON_BUNDLE

    document = settings_factory.document()
    document["policies"] = {"bundle": str(LONDON_BUNDLE)}
    base = document["applications"][0]
    document["applications"] = [
        {**base, "client_id": "discharge-hub", "service": "discharge-hub"},
        {**base, "client_id": "admissions-portal", "name": "London Admissions", "service": "admissions"},
        {**base, "client_id": "case-records-app", "name": "Social Care Case Records", "service": "case-records"},
    ]
    return load_settings(settings_factory.write(document))


@pytest.fixture
def policy_app(policy_settings):  # type: ignore[no-untyped-def]
    """(app, services) deciding with the London policies."""
    from broker.bootstrap import initialise
    from broker.services import build_services
    from broker.web.app import create_app

    initialise(policy_settings)
    built = build_services(policy_settings)
    flask_app = create_app(policy_settings, services=built)
    yield flask_app, built
    built.engine.dispose()
