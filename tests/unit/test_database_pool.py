"""The PostgreSQL connection pool: connections are pinged only after sitting idle, and a dead one
(its server process ended, as after a database restart) is replaced instead of failing a request."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from broker.storage import database
from tests.support.databases import postgres_server_url as postgres_url

pytestmark = pytest.mark.skipif(
    not postgres_url(), reason="needs PostgreSQL: set SUPERCLOUD_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test (CI=true uses it)"
)


def _terminate(engine, pid: int) -> None:  # type: ignore[no-untyped-def]
    """End backend ``pid`` from another connection, as a server restart or an idle timeout would."""
    import psycopg

    conninfo = postgres_url().replace("postgresql+psycopg://", "postgresql://")  # type: ignore[union-attr]
    with psycopg.connect(conninfo, autocommit=True) as other:
        assert other.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)


def test_an_idle_connection_ended_by_the_server_is_replaced_at_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = database.make_engine(postgres_url())  # type: ignore[arg-type]
    try:
        with engine.connect() as connection:
            first_pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        _terminate(engine, first_pid)
        monkeypatch.setattr(database, "IDLE_PING_SECONDS", 0.0)  # every pooled connection counts as idle now
        with engine.connect() as connection:
            second_pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        assert second_pid != first_pid
    finally:
        engine.dispose()


def test_a_connection_used_a_moment_ago_is_reused_without_a_ping() -> None:
    engine = database.make_engine(postgres_url())  # type: ignore[arg-type]
    pings: list[object] = []
    original = engine.dialect.do_ping
    engine.dialect.do_ping = lambda dbapi_connection: pings.append(dbapi_connection) or original(dbapi_connection)  # type: ignore[method-assign]
    try:
        with engine.connect() as connection:  # new connection: pinged once
            first_pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        for _ in range(3):
            with engine.connect() as connection:
                assert connection.execute(text("SELECT pg_backend_pid()")).scalar_one() == first_pid
        assert len(pings) == 1
    finally:
        engine.dispose()


def test_a_connection_the_driver_saw_break_is_replaced_even_if_just_used() -> None:
    engine = database.make_engine(postgres_url())  # type: ignore[arg-type]
    try:
        with engine.connect() as connection:
            first_pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
            raw = connection.connection.dbapi_connection
        raw.close()  # type: ignore[union-attr]  # closed under the pool, right after its use
        with engine.connect() as connection:
            assert connection.execute(text("SELECT pg_backend_pid()")).scalar_one() != first_pid
    finally:
        engine.dispose()
