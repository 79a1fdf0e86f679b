"""Engine and session set-up for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker


def resolve_database_url(url: str, base_dir: Path) -> str:
    """Return ``url`` with a relative SQLite path made absolute against ``base_dir``."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        path = Path(parsed.database)
        if not path.is_absolute():
            return parsed.set(database=str((base_dir / path).resolve())).render_as_string(hide_password=False)
    return url


#: A pooled server connection idle longer than this is pinged before it is handed out.
IDLE_PING_SECONDS = 5.0


def make_engine(url: str) -> Engine:
    """Return an engine for ``url``; SQLite gets WAL, a busy timeout and foreign keys.

    A ``postgresql://`` URL uses psycopg 3. The folder of a SQLite file is created. A
    server connection idle in the pool for more than ``IDLE_PING_SECONDS`` (or reported
    broken by the driver) is pinged before use and replaced if the ping fails; one used a
    moment ago is handed out as is (a ping on every checkout was a round trip and about a
    tenth of a millisecond of CPU each, several times per sign-in).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    kwargs: dict[str, Any] = {"future": True}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
    else:
        kwargs.update(pool_size=5, max_overflow=10)
    engine = create_engine(parsed, **kwargs)
    if parsed.get_backend_name() != "sqlite":
        _ping_when_idle(engine)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin_immediate)
    return engine


def _ping_when_idle(engine: Engine) -> None:
    """Ping a pooled connection at checkout when it sat idle (or the driver saw it break);
    a failed ping raises ``DisconnectionError``, so the pool discards it and connects anew."""
    dialect = engine.dialect

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.pop("checked_in_at", None)
        fresh = since is not None and time.monotonic() - since < IDLE_PING_SECONDS
        if fresh and not getattr(dbapi_connection, "closed", False) and not getattr(dbapi_connection, "broken", False):
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:  # noqa: BLE001 - any failure: this connection is not used again
            raise DisconnectionError(f"pooled connection failed its ping: {type(exc).__name__}") from exc


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy, not pysqlite, issue BEGIN, so writes can take the lock up front.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin_immediate(connection: Any) -> None:
    # BEGIN IMMEDIATE: a transaction that will write takes the write lock at once, so two
    # writers queue on the busy timeout instead of failing when upgrading a read lock.
    # A read-only connection (``read_only``) takes a snapshot without the lock.
    read_only_connection = connection.get_execution_options().get(READ_ONLY, False)
    connection.exec_driver_sql("BEGIN" if read_only_connection else "BEGIN IMMEDIATE")


#: Execution option marking a connection used only for reads (see ``read_only``).
READ_ONLY = "supercloud_read_only"


def read_only(engine: Engine) -> Engine:
    """Return a view of ``engine`` (same pool) for connections that only read.

    On PostgreSQL its connections run in autocommit: a single-statement read needs no
    transaction, and without one psycopg sends no BEGIN (a round trip to the server) and
    nothing needs rolling back. On SQLite they begin with a plain deferred BEGIN instead of
    BEGIN IMMEDIATE, so a read never takes the write lock. Writing through such a
    connection is a programming error: on PostgreSQL each statement would commit on its own.
    """
    if engine.dialect.name == "sqlite":
        return engine.execution_options(**{READ_ONLY: True})
    return engine.execution_options(isolation_level="AUTOCOMMIT", **{READ_ONLY: True})


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Return a session factory bound to ``engine`` (objects stay usable after commit)."""
    return sessionmaker(engine, expire_on_commit=False)
