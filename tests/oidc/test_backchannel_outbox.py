"""Durable back-channel logout (OIDC Back-Channel Logout 1.0 §2.5, §2.8): the outbox is written
with the session's end, delivered once however many workers look, retried with backoff, given
up after a bounded number of attempts, every attempt audited, and nothing lost to a crash.

Runs on SQLite, and on PostgreSQL with SUPERCLOUD_TEST_DATABASE_URL set (tests/conftest.py)."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
from sqlalchemy import select

from broker.oidc.backchannel import BackchannelOutbox
from broker.storage.models import BackchannelOutboxRow
from broker.storage.types import utcnow
from federation import jose
from tests.oidc import jwt_tools
from tests.oidc.helpers import ISSUER, tokens_for, verify_id_token


def _signed_in(app, services, count: int = 1) -> list[str]:  # type: ignore[no-untyped-def]
    """Sign the demo person in ``count`` times (each a session discharge-hub got a code in); return the sids."""
    return [verify_id_token(services, tokens_for(app.test_client())["id_token"])["sid"] for _ in range(count)]


def _worker(services, **options: Any) -> BackchannelOutbox:  # type: ignore[no-untyped-def]
    """Another worker process's outbox over the same database (its own id, its own clock)."""
    logout = services.oidc.logout
    return BackchannelOutbox(services.db, sign=logout.sign_logout_token, audit=services.audit.append, **options)


def _rows(services) -> list[BackchannelOutboxRow]:  # type: ignore[no-untyped-def]
    with services.db() as session:
        return list(session.execute(select(BackchannelOutboxRow).order_by(BackchannelOutboxRow.id)).scalars())


def _jtis(receiver) -> list[str]:  # type: ignore[no-untyped-def]
    return [jwt_tools.parts(p["logout_token"])[1]["jti"] for p in receiver.received]


def _attempts(services) -> list[tuple[str, int, int]]:  # type: ignore[no-untyped-def]
    return [(r.outcome, r.details["attempt"], r.details["status"]) for r in services.audit.records() if r.event == "backchannel_logout_attempt"]


def test_the_outbox_row_is_written_with_the_end_of_the_session(app, services, receiver) -> None:
    [sid] = _signed_in(app, services)
    services.oidc.logout.end_session(sid, reason="admin", actor="officer-1", deliver=False)
    [row] = _rows(services)
    assert (row.sid, row.client_id, row.state, row.attempts) == (sid, "discharge-hub", "pending", 0)
    assert row.url == f"{receiver.url}/backchannel" and receiver.received == []
    assert services.sso.by_sid(sid) is None


def test_if_the_outbox_cannot_be_written_the_session_is_not_ended(app, services, receiver, monkeypatch) -> None:
    [sid] = _signed_in(app, services)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(services.oidc.logout.outbox, "enqueue", broken)
    with pytest.raises(RuntimeError):
        services.oidc.logout.end_session(sid, reason="admin", actor="officer-1")
    assert services.sso.by_sid(sid) is not None, "ended and to-be-notified commit together or not at all"
    assert _rows(services) == []


def test_a_receiver_failing_twice_gets_one_logout_token_per_session_with_the_retries_audited(app, services, receiver) -> None:
    receiver.statuses = [503, 503]
    outbox = services.oidc.logout.outbox
    outbox.backoff = (0.01,)
    sids = _signed_in(app, services, 2)
    for sid in sids:
        services.oidc.logout.end_session(sid, reason="user_signout", actor=None)
    assert outbox.drain(timeout=20)
    jtis = _jtis(receiver)
    assert len(receiver.received) == 4 and len(set(jtis)) == 2, "two retries, and one jti per session across its retries"
    for sid in sids:
        mine = [p for p in receiver.received if jwt_tools.parts(p["logout_token"])[1]["sid"] == sid]
        assert len({jwt_tools.parts(p["logout_token"])[1]["jti"] for p in mine}) == 1
        claims = jose.verify(mine[-1]["logout_token"], services.keyring.verification_keys(), audience="discharge-hub", issuer=ISSUER,
                             typ="logout+jwt")
        assert claims["sid"] == sid
    attempts = _attempts(services)
    assert sorted(outcome for outcome, _, _ in attempts) == ["failure", "failure", "success", "success"]
    assert sorted(status for _, _, status in attempts) == [200, 200, 503, 503]
    assert [r.state for r in _rows(services)] == ["delivered", "delivered"]
    outcomes = [r for r in services.audit.records() if r.event == "backchannel_logout"]
    assert [r.outcome for r in outcomes] == ["success", "success"]


def test_one_session_retried_twice_is_three_attempts_then_delivered(app, services, receiver) -> None:
    receiver.statuses = [503, 502]
    services.oidc.logout.outbox.backoff = (0.01,)
    [sid] = _signed_in(app, services)
    services.oidc.logout.end_session(sid, reason="user_signout", actor=None)
    assert services.oidc.logout.outbox.drain(timeout=20)
    assert len(receiver.received) == 3 and len(set(_jtis(receiver))) == 1
    assert _attempts(services) == [("failure", 1, 503), ("failure", 2, 502), ("success", 3, 200)]
    final = [r for r in services.audit.records() if r.event == "backchannel_logout"]
    assert [(r.outcome, r.details["attempts"]) for r in final] == [("success", 3)]


def test_a_retry_waits_for_its_backoff(app, services, receiver) -> None:
    receiver.statuses = [503]
    [sid] = _signed_in(app, services)
    services.oidc.logout.end_session(sid, reason="admin", actor="officer-1", deliver=False)
    now = utcnow()
    first = _worker(services, backoff=(30.0,), clock=lambda: now)
    assert first.deliver_due().retrying == 1
    assert first.deliver_due().retrying == 0 and len(receiver.received) == 1, "not due before its pause is over"
    assert 29 <= first.seconds_until_due() <= 30
    later = _worker(services, backoff=(30.0,), clock=lambda: now + dt.timedelta(seconds=31))
    assert later.deliver_due().delivered == 1 and len(receiver.received) == 2


def test_delivery_is_given_up_after_a_bounded_number_of_attempts(app, services, receiver) -> None:
    receiver.status = 503
    [sid] = _signed_in(app, services)
    services.oidc.logout.end_session(sid, reason="admin", actor="officer-1", deliver=False)
    worker = _worker(services, attempts=4, backoff=(0.0,))
    assert worker.drain(timeout=20)
    assert len(receiver.received) == 4 and [r.state for r in _rows(services)] == ["failed"]
    final = [r for r in services.audit.records() if r.event == "backchannel_logout"][-1]
    assert final.outcome == "failure" and final.details["attempts"] == 4 and final.details["gave_up"] == "too many attempts"
    assert worker.deliver_due().delivered == 0 and len(receiver.received) == 4


def test_an_application_refusing_the_token_is_not_retried(app, services, receiver) -> None:
    receiver.status = 400
    [sid] = _signed_in(app, services)
    services.oidc.logout.end_session(sid, reason="admin", actor="officer-1", deliver=False)
    assert _worker(services, backoff=(0.0,)).drain(timeout=20)
    assert len(receiver.received) == 1
    final = [r for r in services.audit.records() if r.event == "backchannel_logout"][-1]
    assert final.details["gave_up"] == "refused by the application"


def test_workers_racing_for_the_same_rows_deliver_each_exactly_once(app, services, receiver) -> None:
    sids = _signed_in(app, services, 6)
    for sid in sids:
        services.oidc.logout.end_session(sid, reason="leaver", actor="directory-sync", deliver=False)
    workers = [_worker(services) for _ in range(4)]
    barrier = threading.Barrier(len(workers))
    reports = []

    def run(worker: BackchannelOutbox) -> None:
        barrier.wait()
        reports.append(worker.deliver_due())

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r.delivered for r in reports) == 6
    assert len(receiver.received) == 6 and len(set(_jtis(receiver))) == 6
    assert sorted({jwt_tools.parts(p["logout_token"])[1]["sid"] for p in receiver.received}) == sorted(sids)
    assert all(r.state == "delivered" and r.attempts == 1 for r in _rows(services))


def test_of_two_workers_that_saw_the_same_due_rows_only_one_claims_each(app, services, receiver) -> None:
    for sid in _signed_in(app, services, 3):
        services.oidc.logout.end_session(sid, reason="admin", actor="officer-1", deliver=False)
    first, second = _worker(services), _worker(services)
    seen_by_first, seen_by_second = first.due_ids(), second.due_ids()
    assert seen_by_first == seen_by_second and len(seen_by_first) == 3, "both looked before either claimed"
    claimed = [first.claim_row(i) for i in seen_by_first]
    assert all(d is not None for d in claimed)
    assert [second.claim_row(i) for i in seen_by_second] == [None, None, None]
    assert {r.claimed_by for r in _rows(services)} == {first.worker_id}


def test_a_crash_after_the_session_ended_is_recovered_by_another_process(app, settings, services, receiver) -> None:
    from broker.services import build_services

    [sid] = _signed_in(app, services)
    services.oidc.logout.end_session(sid, reason="admin", actor="officer-1", deliver=False)  # ... and the process dies here
    other = build_services(settings)
    try:
        assert other.oidc.logout.outbox.deliver_due().delivered == 1
    finally:
        other.engine.dispose()
    assert len(receiver.received) == 1 and jwt_tools.parts(receiver.received[0]["logout_token"])[1]["sid"] == sid


def test_a_worker_dying_mid_delivery_loses_its_claim_when_the_lease_runs_out(app, services, receiver) -> None:
    [sid] = _signed_in(app, services)
    services.oidc.logout.end_session(sid, reason="admin", actor="officer-1", deliver=False)
    dying = _worker(services)
    assert len(dying.claim()) == 1  # claimed, then the process is killed before it posts
    survivor = _worker(services)
    assert survivor.deliver_due().delivered == 0 and receiver.received == [], "the lease is still live"
    after_lease = _worker(services, clock=lambda: utcnow() + dt.timedelta(seconds=dying.lease_seconds + 1))
    assert after_lease.deliver_due().delivered == 1 and len(receiver.received) == 1


def test_the_process_that_ended_the_session_delivers_promptly_in_the_background(app, services, receiver) -> None:
    [sid] = _signed_in(app, services)
    services.oidc.logout.end_session(sid, reason="user_signout", actor=None)
    done = threading.Event()
    for _ in range(200):
        if receiver.received:
            done.set()
            break
        threading.Event().wait(0.05)
    assert done.is_set(), "delivered by the background thread, without anyone draining"
    assert services.oidc.logout.outbox.drain(timeout=10)
    assert len(receiver.received) == 1
