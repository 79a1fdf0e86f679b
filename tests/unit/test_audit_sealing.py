"""The audit log's cheap appends and batch sealing: nothing lost, every tampering still found.

An append is one INSERT in its writer's lane, with the record's own MAC; a sealer links
records into the hash chain later. These tests tamper with records before and after
sealing, append from many threads and from separate processes, race sealers, crash a
writer between append and seal, and carry a chain written before sealing existed
through the migration. They run on SQLite and on PostgreSQL (SUPERCLOUD_TEST_DATABASE_URL).
"""

from __future__ import annotations

import gc
import hashlib
import hmac
import json
import multiprocessing
import os
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import delete, select, text, update

from broker.audit import GENESIS, AuditEvent, AuditLog
from broker.storage.models import AuditHeadRow, AuditRecordRow

LONG = 3600.0  # a seal interval no test outlives: only the first append of a log seals by itself


def _log(services, *, interval: float = LONG) -> AuditLog:  # type: ignore[no-untyped-def]
    return AuditLog(services.db, services.master_key.derive("audit-chain"), seal_interval=interval)


def _append(log: AuditLog, n: int, prefix: str = "p") -> None:
    for i in range(n):
        log.append(AuditEvent("token_issued", "success", actor=f"{prefix}-{i}", client_id="svc", details={"i": i}))


def _rows(services, **where):  # type: ignore[no-untyped-def]
    with services.db() as session:
        query = select(AuditRecordRow)
        for name, value in where.items():
            query = query.where(getattr(AuditRecordRow, name) == value)
        return session.execute(query.order_by(AuditRecordRow.lane, AuditRecordRow.lane_seq)).scalars().all()


def _unsealed(services) -> list[AuditRecordRow]:  # type: ignore[no-untyped-def]
    with services.db() as session:
        return session.execute(select(AuditRecordRow).where(AuditRecordRow.seq.is_(None))
                               .order_by(AuditRecordRow.lane_seq)).scalars().all()


def _fresh_unsealed(services, n: int = 5) -> tuple[AuditLog, list[AuditRecordRow]]:  # type: ignore[no-untyped-def]
    """A log whose first append sealed everything before it, then ``n`` appends left unsealed."""
    log = _log(services)
    log.append(AuditEvent("warm_up", "success"))
    _append(log, n)
    rows = _unsealed(services)
    assert len(rows) == n
    return log, rows


# --- appends and sealing --------------------------------------------------------------------


def test_an_append_is_durable_at_once_and_sealed_later(services) -> None:  # type: ignore[no-untyped-def]
    log, rows = _fresh_unsealed(services)
    assert all(r.seq is None and r.hash is None and r.mac for r in rows)
    assert [r.lane_seq for r in rows] == [2, 3, 4, 5, 6]  # one lane, numbered without holes
    result = log.verify()
    assert result.ok, result.problems
    assert result.unsealed == 5
    assert log.seal() == 5
    assert _unsealed(services) == []
    with services.db() as session:
        head = session.execute(select(AuditHeadRow)).scalar_one()
        last = session.execute(select(AuditRecordRow).where(AuditRecordRow.seq == head.seq)).scalar_one()
    assert last.actor == "p-4" and last.hash == head.hash
    assert log.verify().ok


def test_records_seals_first_and_yields_every_record_in_chain_order(services) -> None:  # type: ignore[no-untyped-def]
    log, _ = _fresh_unsealed(services, 3)
    records = list(log.records())
    assert [r.actor for r in records][-3:] == ["p-0", "p-1", "p-2"]
    assert [r.seq for r in records] == list(range(1, len(records) + 1))


def test_sealing_twice_changes_nothing(services) -> None:  # type: ignore[no-untyped-def]
    log, _ = _fresh_unsealed(services)
    assert log.seal() == 5
    with services.db() as session:
        before = session.execute(select(AuditHeadRow.seq, AuditHeadRow.hash)).one()
    assert log.seal() == 0
    assert _log(services).seal() == 0
    with services.db() as session:
        assert session.execute(select(AuditHeadRow.seq, AuditHeadRow.hash)).one() == before
    assert log.verify().ok


def test_racing_sealers_link_each_record_exactly_once(services) -> None:  # type: ignore[no-untyped-def]
    writer = _log(services)
    writer.append(AuditEvent("warm_up", "success"))
    _append(writer, 300)
    sealers = [_log(services) for _ in range(6)]
    counts: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(sealers))

    def run(log: AuditLog, wait: bool) -> None:
        try:
            barrier.wait()
            counts.append(log.seal(wait=wait))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(log, i % 2 == 0)) for i, log in enumerate(sealers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(counts) == 300
    assert _unsealed(services) == []
    result = writer.verify()
    assert result.ok, result.problems


def test_threads_appending_and_sealing_at_once_lose_nothing(services) -> None:  # type: ignore[no-untyped-def]
    log = _log(services, interval=0.0)  # every append also tries to seal: sealers race writers
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            _append(log, 40, prefix=f"t{n}")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    actors = {r.actor for r in log.records() if r.event == "token_issued"}
    assert actors == {f"t{n}-{i}" for n in range(6) for i in range(40)}
    result = log.verify()
    assert result.ok and result.unsealed == 0, result.problems


def _wait_until_sealed(services, seconds: float = 15.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _unsealed(services):
            return True
        time.sleep(0.02)
    return False


def _recording_seal(log: AuditLog, calls: list[int], failing: list[bool] | None = None):  # type: ignore[no-untyped-def]
    """Replace ``log.seal`` with one that records the calling thread, and fails while ``failing[0]``."""
    real = log.seal

    def seal(*, wait: bool = True) -> int:
        calls.append(threading.get_ident())
        if failing and failing[0]:
            raise OSError("database unreachable")
        return real(wait=wait)

    log.seal = seal  # type: ignore[method-assign]


def test_a_served_log_seals_in_its_own_thread_and_no_append_waits_for_it(services) -> None:  # type: ignore[no-untyped-def]
    log = _log(services, interval=0.05)
    calls: list[int] = []
    _recording_seal(log, calls)
    log.seal_in_background()
    log.seal_in_background()  # idempotent: still one sealer
    assert [t.name for t in threading.enumerate()].count("audit-sealer") >= 1
    for batch in range(3):
        _append(log, 30, prefix=f"b{batch}")
        assert _wait_until_sealed(services), "the background sealer did not seal the appended records"
    assert calls and threading.get_ident() not in calls  # never the appending thread
    assert len(set(calls)) == 1  # one sealer thread
    actors = [r.actor for r in log.records() if r.event == "token_issued"]
    assert actors == [f"b{b}-{i}" for b in range(3) for i in range(30)]
    result = log.verify()
    assert result.ok and result.unsealed == 0, result.problems


def test_a_failed_background_seal_loses_nothing_and_the_next_append_seals(services, caplog) -> None:  # type: ignore[no-untyped-def]
    log = _log(services, interval=0.01)
    log.append(AuditEvent("warm_up", "success"))  # inline: seals what earlier tests left
    calls: list[int] = []
    failing = [True]
    _recording_seal(log, calls, failing)
    log.seal_in_background()
    _append(log, 5, prefix="kept")  # no append raises although every seal fails
    deadline = time.monotonic() + 10
    while len(calls) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # let the sealer finish whatever wake-up is pending
    assert len(calls) >= 2, "the background sealer did not run after the appends"
    assert "audit sealing failed (OSError)" in caplog.text and "unreachable" not in caplog.text
    assert len(_unsealed(services)) == 5  # durable, waiting for a seal that works
    failing[0] = False
    _append(log, 1, prefix="next")
    assert _wait_until_sealed(services)
    assert [r.actor for r in log.records()][-6:] == [*(f"kept-{i}" for i in range(5)), "next-0"]
    assert log.verify().ok


def test_the_sealer_thread_ends_when_its_log_is_collected(services) -> None:  # type: ignore[no-untyped-def]
    before = {t.ident for t in threading.enumerate() if t.name == "audit-sealer"}
    log = _log(services, interval=0.01)
    log.seal_in_background()
    ours = [t for t in threading.enumerate() if t.name == "audit-sealer" and t.ident not in before]
    assert len(ours) == 1
    del log
    gc.collect()
    ours[0].join(timeout=10)
    assert not ours[0].is_alive()


def _child_append(database_url: str, key_hex: str, prefix: str, count: int, crash: bool) -> None:
    """Run in a separate process: append ``count`` records; with ``crash``, die before any sealing."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from broker.audit import AuditEvent, AuditLog
    from broker.storage.database import make_engine, make_session_factory

    engine = make_engine(database_url)
    log = AuditLog(make_session_factory(engine), bytes.fromhex(key_hex), seal_interval=LONG if crash else 0.01)
    if crash:
        log._next_seal = float("inf")  # this writer never seals: it dies right after its last commit
    for i in range(count):
        log.append(AuditEvent("token_issued", "success", actor=f"{prefix}-{i}"))
    if crash:
        os._exit(17)
    engine.dispose()


def _database_url(services) -> str:  # type: ignore[no-untyped-def]
    return services.engine.url.render_as_string(hide_password=False)


def test_two_processes_appending_at_once_lose_nothing(services) -> None:  # type: ignore[no-untyped-def]
    key = services.master_key.derive("audit-chain").hex()
    context = multiprocessing.get_context("spawn")
    children = [context.Process(target=_child_append, args=(_database_url(services), key, f"proc{n}", 150, False))
                for n in range(2)]
    for child in children:
        child.start()
    for child in children:
        child.join(120)
        assert child.exitcode == 0
    log = _log(services)
    actors = [r.actor for r in log.records() if r.event == "token_issued"]
    assert sorted(actors) == sorted(f"proc{n}-{i}" for n in range(2) for i in range(150))
    lanes = {r.lane for r in log.records() if r.event == "token_issued"}
    assert len(lanes) == 2
    result = log.verify()
    assert result.ok and result.unsealed == 0, result.problems


def test_a_writer_that_crashes_before_sealing_loses_nothing(services) -> None:  # type: ignore[no-untyped-def]
    key = services.master_key.derive("audit-chain").hex()
    child = multiprocessing.get_context("spawn").Process(
        target=_child_append, args=(_database_url(services), key, "crashed", 25, True))
    child.start()
    child.join(120)
    assert child.exitcode == 17
    assert len(_unsealed(services)) == 25  # durable, not yet linked
    log = _log(services)
    assert log.verify().ok  # an unsealed tail with good MACs and no holes is not a problem
    assert log.seal() == 25
    assert [r.actor for r in log.records()][-25:] == [f"crashed-{i}" for i in range(25)]
    assert log.verify().ok


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_worker_never_continues_its_parents_lane(services) -> None:  # type: ignore[no-untyped-def]
    log = _log(services)
    parent = log.append(AuditEvent("in_parent", "success"))
    child = multiprocessing.get_context("fork").Process(target=_forked_append, args=(log,))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    again = log.append(AuditEvent("in_parent", "success"))
    assert again.lane == parent.lane and again.lane_seq == parent.lane_seq + 1
    forked = [r for r in log.records() if r.event == "in_child"]
    assert len(forked) == 1 and forked[0].lane != parent.lane
    assert log.verify().ok


def _forked_append(log: AuditLog) -> None:
    log._engine.dispose(close=False)  # the parent's pooled connections stay the parent's
    log.append(AuditEvent("in_child", "success"))


# --- tampering with unsealed records -----------------------------------------------------------


def test_an_edited_unsealed_record_is_detected_and_never_sealed(services) -> None:  # type: ignore[no-untyped-def]
    log, rows = _fresh_unsealed(services)
    victim = rows[1]
    with services.db.begin() as session:
        session.execute(update(AuditRecordRow).where(AuditRecordRow.lane == victim.lane, AuditRecordRow.lane_seq == victim.lane_seq)
                        .values(outcome="failure"))
    problems = log.verify().problems
    assert f"unsealed record {victim.lane[:12]}/{victim.lane_seq}: content does not match its MAC (edited)" in problems
    other = _log(services)
    other.append(AuditEvent("another_writer", "success"))  # another lane: sealing is not blocked for it
    other.seal()
    left = _unsealed(services)
    assert [r.lane_seq for r in left] == [victim.lane_seq, victim.lane_seq + 1, victim.lane_seq + 2, victim.lane_seq + 3]
    assert any(r.event == "another_writer" and r.seq for r in other.records())
    assert not log.verify().ok


def test_edited_unsealed_details_are_detected(services) -> None:  # type: ignore[no-untyped-def]
    log, rows = _fresh_unsealed(services)
    with services.db.begin() as session:
        session.execute(update(AuditRecordRow).where(AuditRecordRow.lane == rows[0].lane, AuditRecordRow.lane_seq == rows[0].lane_seq)
                        .values(details=json.dumps({"i": 99})))
    assert any("(edited)" in p for p in log.verify().problems)


def test_an_unsealed_record_deleted_from_the_middle_of_a_lane_is_detected(services) -> None:  # type: ignore[no-untyped-def]
    log, rows = _fresh_unsealed(services)
    with services.db.begin() as session:
        session.execute(delete(AuditRecordRow).where(AuditRecordRow.lane == rows[2].lane, AuditRecordRow.lane_seq == rows[2].lane_seq))
    problems = log.verify().problems
    assert any(f"lane {rows[2].lane[:12]}: 1 of records 1..{rows[-1].lane_seq} missing" in p for p in problems), problems
    log.seal()  # the sealer stops at the hole: nothing after it is linked over it
    assert [r.lane_seq for r in _unsealed(services)] == [r.lane_seq for r in rows[3:]]
    assert not log.verify().ok


def test_the_deleted_last_unsealed_record_shows_once_the_lane_writes_again(services) -> None:  # type: ignore[no-untyped-def]
    log, rows = _fresh_unsealed(services)
    with services.db.begin() as session:
        session.execute(delete(AuditRecordRow).where(AuditRecordRow.lane == rows[-1].lane, AuditRecordRow.lane_seq == rows[-1].lane_seq))
    log.append(AuditEvent("next", "success"))
    assert any("missing (deleted or inserted)" in p for p in log.verify().problems)


def test_a_record_forged_without_the_key_is_detected_and_never_sealed(services) -> None:  # type: ignore[no-untyped-def]
    log, rows = _fresh_unsealed(services, 1)
    with services.db.begin() as session:
        session.execute(AuditRecordRow.__table__.insert().values(
            lane=rows[0].lane, lane_seq=rows[0].lane_seq + 1, recorded_at=rows[0].recorded_at, event="signin",
            outcome="success", actor="intruder", details="{}", mac="f" * 64))
    assert any("(edited)" in p for p in log.verify().problems)
    log.seal()
    assert [r.actor for r in _unsealed(services)] == ["intruder"]


def test_a_sealed_record_moved_back_to_unsealed_is_detected(services) -> None:  # type: ignore[no-untyped-def]
    log, rows = _fresh_unsealed(services)
    log.seal()
    with services.db.begin() as session:
        session.execute(update(AuditRecordRow).where(AuditRecordRow.lane == rows[1].lane, AuditRecordRow.lane_seq == rows[1].lane_seq)
                        .values(seq=None, prev_hash=None, hash=None))
    assert any("deleted or inserted" in p for p in log.verify().problems)


def test_an_edited_sealed_record_is_detected_by_its_mac_and_its_link(services) -> None:  # type: ignore[no-untyped-def]
    log, rows = _fresh_unsealed(services)
    log.seal()
    sealed = _rows(services, lane=rows[0].lane, lane_seq=rows[0].lane_seq)[0]
    with services.db.begin() as session:
        session.execute(update(AuditRecordRow).where(AuditRecordRow.seq == sealed.seq).values(actor="someone-else"))
    assert f"record {sealed.seq}: content does not match its hash (edited)" in log.verify().problems


def test_a_deleted_head_is_reported_and_never_recreated(services) -> None:  # type: ignore[no-untyped-def]
    log, _ = _fresh_unsealed(services, 2)
    log.seal()
    with services.db.begin() as session:
        session.execute(delete(AuditHeadRow))
    _append(log, 1)
    assert log.seal() == 0
    assert "the chain head is missing" in log.verify().problems


# --- records written before sealing existed ----------------------------------------------------


def _legacy_hash(key: bytes, row: dict) -> str:  # type: ignore[type-arg]
    """The chain hash as revision 0007's code wrote it (content and predecessor, HMAC-SHA256)."""
    content = json.dumps({"seq": row["seq"], "recorded_at": row["recorded_at"].isoformat(), "event": row["event"],
                          "outcome": row["outcome"], "actor": row["actor"], "client_id": row["client_id"], "ip": row["ip"],
                          "details": json.loads(row["details"]), "prev": row["prev_hash"]}, sort_keys=True, separators=(",", ":"))
    return hmac.new(key, content.encode(), hashlib.sha256).hexdigest()


def test_a_chain_written_before_the_migration_still_verifies_and_continues(settings) -> None:  # type: ignore[no-untyped-def]
    import datetime as dt

    from broker.storage.database import make_engine, make_session_factory, resolve_database_url
    from broker.storage.migrate import upgrade
    from federation.keys import MasterKey

    engine = make_engine(resolve_database_url(settings.broker.database_url, settings.base_dir))
    upgrade(engine, "0007")
    key = MasterKey.from_text(settings.broker.master_key.reveal()).derive("audit-chain")
    prev = GENESIS
    with engine.begin() as connection:
        for seq in range(1, 4):
            row = {"seq": seq, "recorded_at": dt.datetime(2026, 11, 1, 9, 0, seq, 123456, tzinfo=dt.UTC), "event": "signin",
                   "outcome": "success", "actor": f"old-{seq}", "client_id": None, "ip": "10.0.0.1", "details": json.dumps({"n": seq}),
                   "prev_hash": prev}
            row["hash"] = prev = _legacy_hash(key, row)
            connection.execute(text("INSERT INTO audit_records (seq, recorded_at, event, outcome, actor, client_id, ip, details, "
                                    "prev_hash, hash) VALUES (:seq, :recorded_at, :event, :outcome, :actor, :client_id, :ip, "
                                    ":details, :prev_hash, :hash)"),
                               {**row, "recorded_at": row["recorded_at"].replace(tzinfo=None)})
        connection.execute(text("INSERT INTO audit_head (id, seq, hash) VALUES (1, 3, :hash)"), {"hash": prev})
    upgrade(engine)
    log = AuditLog(make_session_factory(engine), key, seal_interval=LONG)
    assert log.verify().ok, log.verify().problems
    log.append(AuditEvent("signin", "success", actor="new-1"))
    records = list(log.records())
    assert [(r.seq, r.actor, r.lane) for r in records] == [(1, "old-1", "legacy"), (2, "old-2", "legacy"),
                                                           (3, "old-3", "legacy"), (4, "new-1", records[3].lane)]
    assert log.verify().ok
    with engine.begin() as connection:
        connection.execute(text("UPDATE audit_records SET actor = 'someone-else' WHERE seq = 2"))
    assert "record 2: content does not match its hash (edited)" in log.verify().problems
    engine.dispose()


def test_a_write_that_fails_inside_appending_leaves_neither_record_nor_hole(services) -> None:  # type: ignore[no-untyped-def]
    log, rows = _fresh_unsealed(services, 1)
    with pytest.raises(RuntimeError), log.appending(AuditEvent("token_issued", "success", actor="never")) as (connection, _):
        connection.execute(text("SELECT 1"))
        raise RuntimeError("the caller's own write failed")
    assert [r.actor for r in log.records() if r.actor == "never"] == []
    after = log.append(AuditEvent("token_issued", "success", actor="next"))
    assert after.lane != rows[0].lane or after.lane_seq == rows[0].lane_seq + 1
    assert log.verify().ok

