"""What a password sign-in writes: the SSO session and its audit record commit together (both or
neither), and the reads on the way (throttle counters, the subject) take no write lock."""

from __future__ import annotations

import secrets
import sqlite3

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

import broker.sessions

from broker.errors import BrokerError
from broker.storage.database import make_engine, read_only
from broker.storage.models import AuditRecordRow, SsoSessionRow
from tests.support.databases import postgres_server_url as postgres_url
from tests.support.settings import DEMO_PASSWORD

PERSON = "amara.okafor@camden.test"


def _count(services, table) -> int:  # type: ignore[no-untyped-def]
    with services.engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(table)).scalar_one()


def test_a_sign_in_writes_its_session_and_an_audit_record_naming_it(services) -> None:  # type: ignore[no-untyped-def]
    _, session = services.login.sign_in(PERSON, DEMO_PASSWORD, ip="192.0.2.7")
    records = [r for r in services.audit.records() if r.event == "signin" and r.outcome == "success"]
    assert [r.details["sid"] for r in records] == [session.sid]
    assert records[0].actor == session.subject_id
    assert records[0].ip == "192.0.2.7"
    assert services.sso.by_sid(session.sid) is not None


def test_when_the_session_cannot_be_written_no_audit_record_is_left_behind(services, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    _, first = services.login.sign_in(PERSON, DEMO_PASSWORD, ip=None)
    sessions_before, records_before = _count(services, SsoSessionRow), _count(services, AuditRecordRow)
    real = secrets.token_urlsafe
    # The next session id collides with the first's: its INSERT fails after the audit record's,
    # in the same transaction.
    monkeypatch.setattr(broker.sessions.secrets, "token_urlsafe", lambda n=None: first.sid if n == 16 else real(n))
    with pytest.raises(IntegrityError):
        services.login.sign_in(PERSON, DEMO_PASSWORD, ip=None)
    monkeypatch.setattr(broker.sessions.secrets, "token_urlsafe", real)
    assert _count(services, SsoSessionRow) == sessions_before
    assert _count(services, AuditRecordRow) == records_before
    # the next sign-in works, and the log has no hole where the failed record would have been
    services.login.sign_in(PERSON, DEMO_PASSWORD, ip=None)
    services.audit.seal()
    assert services.audit.verify().ok


def test_when_the_audit_record_cannot_be_written_no_session_is_left_behind(services) -> None:  # type: ignore[no-untyped-def]
    services.login.sign_in(PERSON, DEMO_PASSWORD, ip=None)
    sessions_before, records_before = _count(services, SsoSessionRow), _count(services, AuditRecordRow)
    (lane,) = services.audit._free  # noqa: SLF001 - fault injection: the writer's lane, free again after that sign-in
    lane.next -= 1  # its next record reuses a taken (lane, number): the audit INSERT fails
    with pytest.raises(IntegrityError):
        services.login.sign_in(PERSON, DEMO_PASSWORD, ip=None)
    assert _count(services, SsoSessionRow) == sessions_before  # no session without its record
    assert _count(services, AuditRecordRow) == records_before


def test_a_wrong_password_opens_no_session(services) -> None:  # type: ignore[no-untyped-def]
    before = _count(services, SsoSessionRow)
    with pytest.raises(BrokerError):
        services.login.sign_in(PERSON, "not-the-password", ip=None)
    assert _count(services, SsoSessionRow) == before


def test_a_read_only_sqlite_connection_does_not_hold_the_write_lock(tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE t (n INTEGER)"))
        with read_only(engine).connect() as reader:
            assert reader.execute(text("SELECT count(*) FROM t")).scalar_one() == 0  # its transaction is open
            writer = sqlite3.connect(tmp_path / "db.sqlite", timeout=0.2, isolation_level=None)
            try:
                writer.execute("BEGIN IMMEDIATE")  # would time out ("database is locked") behind a writer's lock
                writer.execute("INSERT INTO t VALUES (1)")
                writer.execute("COMMIT")
            finally:
                writer.close()
        with engine.begin() as connection:  # ordinary connections still take the write lock up front
            assert connection.execute(text("SELECT count(*) FROM t")).scalar_one() == 1
            blocked = sqlite3.connect(tmp_path / "db.sqlite", timeout=0.2, isolation_level=None)
            try:
                with pytest.raises(sqlite3.OperationalError, match="locked"):
                    blocked.execute("BEGIN IMMEDIATE")
            finally:
                blocked.close()
    finally:
        engine.dispose()


@pytest.mark.skipif(
    not postgres_url(), reason="needs PostgreSQL: set SUPERCLOUD_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test (CI=true uses it)"
)
def test_a_read_only_postgresql_connection_opens_no_transaction() -> None:
    engine = make_engine(postgres_url())  # type: ignore[arg-type]
    try:
        with read_only(engine).connect() as connection:
            connection.execute(text("SELECT 1"))
            assert connection.connection.driver_connection.info.transaction_status.name == "IDLE"
        with engine.connect() as connection:  # the shared pool hands ordinary connections back as they were
            connection.execute(text("SELECT 1"))
            assert connection.connection.driver_connection.info.transaction_status.name == "INTRANS"
    finally:
        engine.dispose()
