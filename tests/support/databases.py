"""Fresh databases for tests: a SQLite file, or a new schema on the PostgreSQL server under test."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

POSTGRES_ENV = "SUPERCLOUD_TEST_DATABASE_URL"


#: The server CI (and this kind of machine) runs; the Makefile's test-postgres default.
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def postgres_url() -> str | None:
    """Return the PostgreSQL server URL under test, or None when the suite runs on SQLite."""
    return os.environ.get(POSTGRES_ENV) or None


def postgres_server_url() -> str | None:
    """Return a PostgreSQL server for tests about PostgreSQL itself, whatever the suite runs on:
    the one under test, else under ``CI=true`` (CI runs one) the default, else None (skip)."""
    return postgres_url() or (DEFAULT_POSTGRES_URL if os.environ.get("CI") == "true" else None)


@contextlib.contextmanager
def fresh_database(tmp_path: Path) -> Iterator[str]:
    """Yield the URL of an empty database, dropped afterwards (PostgreSQL) or left in tmp_path (SQLite)."""
    base = postgres_url()
    if not base:
        yield f"sqlite:///{tmp_path / 'broker.db'}"
        return
    import psycopg

    schema = f"t_{secrets.token_hex(6)}"
    conninfo = base.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in base else "?"
    try:
        yield f"{base}{separator}options={quote(f'-csearch_path={schema}')}"
    finally:
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
