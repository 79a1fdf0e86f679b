"""The audit chain detects every edit, deletion, insertion, reordering and truncation."""

from __future__ import annotations

import json
import threading

import pytest
from sqlalchemy import delete, select, update

from broker.audit import AuditEvent, AuditLog
from broker.storage.models import AuditHeadRow, AuditRecordRow


@pytest.fixture
def log(services) -> AuditLog:  # type: ignore[no-untyped-def]
    for i in range(5):
        services.audit.append(AuditEvent("signin", "success", actor=f"user-{i}", ip="127.0.0.1", details={"n": i}))
    return services.audit


def _start(services) -> int:  # type: ignore[no-untyped-def]
    # initialise() may have appended records (keys created); tests tamper with ours.
    return [r.seq for r in services.audit.records()][-5]


def test_an_untouched_log_verifies(log: AuditLog) -> None:
    result = log.verify()
    assert result.ok and result.records >= 5 and result.problems == []


def test_an_edited_record_is_detected(log: AuditLog, services) -> None:  # type: ignore[no-untyped-def]
    seq = _start(services) + 2
    with services.db.begin() as session:
        session.execute(update(AuditRecordRow).where(AuditRecordRow.seq == seq).values(outcome="failure"))
    result = log.verify()
    assert not result.ok
    assert f"record {seq}: content does not match its hash (edited)" in result.problems


def test_edited_details_are_detected(log: AuditLog, services) -> None:  # type: ignore[no-untyped-def]
    seq = _start(services)
    with services.db.begin() as session:
        session.execute(update(AuditRecordRow).where(AuditRecordRow.seq == seq).values(details=json.dumps({"n": 99})))
    assert not log.verify().ok


def test_a_deleted_record_is_detected(log: AuditLog, services) -> None:  # type: ignore[no-untyped-def]
    seq = _start(services) + 1
    with services.db.begin() as session:
        session.execute(delete(AuditRecordRow).where(AuditRecordRow.seq == seq))
    problems = log.verify().problems
    assert any("deleted or inserted" in p for p in problems)


def test_reordered_records_are_detected(log: AuditLog, services) -> None:  # type: ignore[no-untyped-def]
    a, b = _start(services) + 1, _start(services) + 2
    with services.db.begin() as session:
        session.execute(update(AuditRecordRow).where(AuditRecordRow.seq == a).values(seq=-1))
        session.execute(update(AuditRecordRow).where(AuditRecordRow.seq == b).values(seq=a))
        session.execute(update(AuditRecordRow).where(AuditRecordRow.seq == -1).values(seq=b))
    assert not log.verify().ok


def test_a_truncated_tail_is_detected(log: AuditLog, services) -> None:  # type: ignore[no-untyped-def]
    with services.db.begin() as session:
        last = session.execute(select(AuditHeadRow.seq)).scalar_one()
        session.execute(delete(AuditRecordRow).where(AuditRecordRow.seq == last))
    assert any("truncated" in p for p in log.verify().problems)


def test_a_chain_rewritten_without_the_key_is_detected(log: AuditLog, services) -> None:  # type: ignore[no-untyped-def]
    # Someone with only database access recomputes the chain with a key of their own.
    forger = AuditLog(services.db, b"\x00" * 32)
    forger.append(AuditEvent("signin", "success", actor="intruder"))
    assert any("edited" in p for p in log.verify().problems)


def test_concurrent_appends_keep_one_unbroken_chain(services) -> None:  # type: ignore[no-untyped-def]
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(10):
                services.audit.append(AuditEvent("token_issued", "success", actor=f"w{n}-{i}"))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    result = services.audit.verify()
    assert result.ok, result.problems
    assert len([r for r in services.audit.records() if r.event == "token_issued"]) == 40


@pytest.mark.parametrize("key", ["password", "client_secret", "code", "access_token"])
def test_secrets_are_refused_in_audit_details(services, key: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError):
        services.audit.append(AuditEvent("signin", "failure", details={key: "x"}))


def test_audit_verify_command_fails_on_tampering(log: AuditLog, services, settings) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from broker.cli import cli

    config = str(settings.base_dir / "broker.yaml")
    ok = CliRunner().invoke(cli, ["--config", config, "audit", "verify"], obj={})
    assert ok.exit_code == 0 and "audit log intact" in ok.output
    with services.db.begin() as session:
        session.execute(update(AuditRecordRow).where(AuditRecordRow.seq == _start(services)).values(actor="someone-else"))
    bad = CliRunner().invoke(cli, ["--config", config, "audit", "verify"], obj={})
    assert bad.exit_code == 1 and "TAMPERED" in bad.output


def test_control_characters_from_input_are_recorded_escaped_never_lost(services) -> None:  # type: ignore[no-untyped-def]
    record = services.audit.append(AuditEvent("signin", "failure", actor="asmith\x00@camden.test\x1b", details={"n": "\x00"}))
    assert record.actor == "asmith\\x00@camden.test\\x1b"
    stored = list(services.audit.records())[-1]
    assert stored.actor == record.actor and stored.details == {"n": "\x00"}
    assert services.audit.verify().ok
