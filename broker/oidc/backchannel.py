"""Durable delivery of back-channel logout tokens (OIDC Back-Channel Logout 1.0 §2.5, §2.8).

Ending a session writes one ``backchannel_outbox`` row per application to notify, in the same
transaction that ends the session (``LogoutService.end_session``): if the process dies a moment
later, the rows are still there. Then:

- the process that ended the session delivers at once (``kick`` wakes a background thread, so
  the person's sign-out never waits on an application);
- any worker that finds due rows delivers them: each row is *claimed* by one conditional
  UPDATE (state pending, due, no live lease) that sets a lease, so two workers never both
  deliver it — on SQLite (serialised writers) and PostgreSQL (row locks, the WHERE re-checked)
  alike; a worker that dies holding a lease loses it when the lease expires;
- a failure is retried with growing pauses (``BACKOFF_SECONDS``) up to ``ATTEMPTS`` attempts,
  except a 4xx other than 408/429 (the application refused the token: retrying will not help);
- every attempt is audited (``backchannel_logout_attempt``) and so is the outcome
  (``backchannel_logout`` success / failure), never the token;
- ``supercloud logout deliver`` runs what is due from the command line (cron, or after a crash).

The logout token is signed at each attempt (fresh ``iat``/``exp``) with the ``jti`` chosen when
the row was written, so a receiver sees one ``jti`` per delivery however many retries it took
(§2.4, §2.6 replay detection).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import secrets
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from broker.audit import AuditEvent
from broker.storage.models import BackchannelOutboxRow
from broker.storage.types import utcnow

log = logging.getLogger(__name__)

ATTEMPTS = 6
BACKOFF_SECONDS = (5.0, 30.0, 120.0, 600.0, 1800.0)  # pause after attempt 1, 2, ...
LEASE_SECONDS = 60.0  # longer than one POST (TIMEOUT_SECONDS) can take
TIMEOUT_SECONDS = 5.0
SWEEP_SECONDS = 30.0  # how often a serving worker looks for due rows left by others
BATCH = 50

Poster = Callable[[str, str], int]
Signer = Callable[["Delivery"], str]
Clock = Callable[[], dt.datetime]


def post_logout_token(url: str, logout_token: str) -> int:
    """POST ``logout_token`` to ``url``; return the HTTP status (0 if unreachable). No redirects followed."""
    body = urllib.parse.urlencode({"logout_token": logout_token}).encode()
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/x-www-form-urlencoded", "Cache-Control": "no-store"})
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=TIMEOUT_SECONDS) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError, ValueError):
        return 0


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None


@dataclasses.dataclass(frozen=True, slots=True)
class Delivery:
    """One logout token to deliver: whom, where, and the ``jti`` every attempt carries."""

    id: int
    sid: str
    client_id: str
    url: str
    public_subject: str
    alg: str
    jti: str
    reason: str
    attempts: int


@dataclasses.dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What one ``deliver_due`` pass did."""

    delivered: int = 0
    retrying: int = 0
    failed: int = 0

    def __add__(self, other: DeliveryReport) -> DeliveryReport:
        return DeliveryReport(self.delivered + other.delivered, self.retrying + other.retrying, self.failed + other.failed)


class BackchannelOutbox:
    """The outbox of logout tokens: enqueue in a transaction, claim atomically, deliver, retry."""

    def __init__(
        self,
        db: sessionmaker[Session],
        *,
        sign: Signer,
        audit: Callable[[AuditEvent], object],
        poster: Poster = post_logout_token,
        attempts: int = ATTEMPTS,
        backoff: tuple[float, ...] = BACKOFF_SECONDS,
        lease_seconds: float = LEASE_SECONDS,
        clock: Clock = utcnow,
        worker_id: str | None = None,
    ) -> None:
        self._db = db
        self._sign = sign
        self._audit = audit
        self._post = poster
        self.attempts = attempts
        self.backoff = backoff
        self.lease_seconds = lease_seconds
        self._clock = clock
        self.worker_id = worker_id or secrets.token_hex(8)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._kicked = False
        self._thread: threading.Thread | None = None
        self._last_sweep = 0.0

    # --- writing ------------------------------------------------------------------------------

    def enqueue(self, session: Session, *, sid: str, client_id: str, url: str, public_subject: str, alg: str, reason: str) -> None:
        """Add a delivery to the caller's transaction (it is durable when that commits)."""
        now = self._clock()
        session.add(BackchannelOutboxRow(
            sid=sid, client_id=client_id, url=url, public_subject=public_subject, alg=alg, jti=secrets.token_urlsafe(16),
            reason=reason, created_at=now, state="pending", attempts=0, next_attempt_at=now,
        ))

    # --- delivering ---------------------------------------------------------------------------

    def deliver_due(self, limit: int = BATCH) -> DeliveryReport:
        """Claim and deliver every due row (up to ``limit``); return what happened."""
        report = DeliveryReport()
        for delivery in self.claim(limit):
            report = report + self._attempt(delivery)
        return report

    def claim(self, limit: int = BATCH) -> list[Delivery]:
        """Claim up to ``limit`` due rows for this worker (a lease of ``lease_seconds``); return them."""
        now = self._clock()
        return [d for d in (self.claim_row(row_id, now) for row_id in self.due_ids(limit, now)) if d is not None]

    def due_ids(self, limit: int = BATCH, now: dt.datetime | None = None) -> list[int]:
        """Return the ids of rows that are due and not leased (a snapshot: another worker may claim them first)."""
        now = now or self._clock()
        with self._db() as session:
            return list(session.execute(
                select(BackchannelOutboxRow.id).where(self._claimable(now)).order_by(BackchannelOutboxRow.next_attempt_at).limit(limit)
            ).scalars())

    def claim_row(self, row_id: int, now: dt.datetime | None = None) -> Delivery | None:
        """Claim one row if it is still due and unleased; return it, or None if another worker has it.

        One conditional UPDATE: on SQLite writers are serialised, on PostgreSQL the row lock makes
        the second UPDATE re-check its WHERE against the first one's result.
        """
        now = now or self._clock()
        lease = now + dt.timedelta(seconds=self.lease_seconds)
        with self._db.begin() as session:
            result = session.execute(
                update(BackchannelOutboxRow)
                .where(BackchannelOutboxRow.id == row_id, self._claimable(now))
                .values(claimed_by=self.worker_id, claimed_until=lease)
            )
            if result.rowcount != 1:
                return None
            row = session.get(BackchannelOutboxRow, row_id)
            return Delivery(row.id, row.sid, row.client_id, row.url, row.public_subject, row.alg, row.jti, row.reason, row.attempts)

    def _attempt(self, delivery: Delivery) -> DeliveryReport:
        attempt = delivery.attempts + 1
        try:
            token = self._sign(delivery)
        except Exception:  # noqa: BLE001 - no key: counts as a failed attempt, retried later
            log.exception("could not sign a logout token for %s", delivery.client_id)
            status = -1
        else:
            status = self._post(delivery.url, token)
        ok = status in (200, 204)
        permanent = 400 <= status < 500 and status not in (408, 429)
        give_up = not ok and (permanent or attempt >= self.attempts)
        now = self._clock()
        values: dict[str, object] = {"attempts": attempt, "last_status": status, "claimed_by": None, "claimed_until": None}
        if ok or give_up:
            values.update(state="delivered" if ok else "failed", finished_at=now)
        else:
            pause = self.backoff[min(attempt - 1, len(self.backoff) - 1)] if self.backoff else 0.0
            values["next_attempt_at"] = now + dt.timedelta(seconds=pause)
        with self._db.begin() as session:
            session.execute(update(BackchannelOutboxRow)
                            .where(BackchannelOutboxRow.id == delivery.id, BackchannelOutboxRow.claimed_by == self.worker_id)
                            .values(**values))
        details = {"sid": delivery.sid, "reason": delivery.reason, "delivery": delivery.id, "jti": delivery.jti,
                   "attempt": attempt, "status": status}
        self._audit(AuditEvent("backchannel_logout_attempt", "success" if ok else "failure", client_id=delivery.client_id,
                               details={**details, "worker": self.worker_id}))
        if ok:
            self._audit(AuditEvent("backchannel_logout", "success", client_id=delivery.client_id,
                                   details={**details, "attempts": attempt}))
            return DeliveryReport(delivered=1)
        if give_up:
            self._audit(AuditEvent("backchannel_logout", "failure", client_id=delivery.client_id,
                                   details={**details, "attempts": attempt,
                                            "gave_up": "refused by the application" if permanent else "too many attempts"}))
            return DeliveryReport(failed=1)
        return DeliveryReport(retrying=1)

    def _claimable(self, now: dt.datetime):  # type: ignore[no-untyped-def]
        return and_(BackchannelOutboxRow.state == "pending", BackchannelOutboxRow.next_attempt_at <= now,
                    or_(BackchannelOutboxRow.claimed_until.is_(None), BackchannelOutboxRow.claimed_until < now))

    # --- looking -------------------------------------------------------------------------------

    def pending(self) -> int:
        """Return how many deliveries are still pending (due or waiting for a retry)."""
        with self._db() as session:
            return int(session.execute(select(func.count()).select_from(BackchannelOutboxRow)
                                       .where(BackchannelOutboxRow.state == "pending")).scalar_one())

    def seconds_until_due(self) -> float | None:
        """Return how long until a pending row can next be claimed (0 if now), or None if none is pending."""
        with self._db() as session:
            rows = session.execute(select(BackchannelOutboxRow.next_attempt_at, BackchannelOutboxRow.claimed_until)
                                   .where(BackchannelOutboxRow.state == "pending")
                                   .order_by(BackchannelOutboxRow.next_attempt_at).limit(BATCH)).all()
        if not rows:
            return None
        now = self._clock()
        soonest = min(max(due, lease or due) for due, lease in rows)
        return max(0.0, (soonest - now).total_seconds())

    # --- in the background ------------------------------------------------------------------

    def kick(self) -> None:
        """Deliver what is due now, in this process's background thread (started if needed)."""
        with self._lock:
            self._kicked = True
            self._wake.set()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="backchannel-outbox", daemon=True)
                self._thread.start()

    def sweep(self, *, every: float = SWEEP_SECONDS) -> None:
        """Kick at most once per ``every`` seconds: how a serving worker finds rows others left."""
        import time

        now = time.monotonic()
        if now - self._last_sweep >= every:
            self._last_sweep = now
            self.kick()

    def drain(self, timeout: float = 30.0) -> bool:
        """Deliver in this thread until nothing is pending or ``timeout`` seconds pass (tests, CLI);
        return True if nothing is pending."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            self.deliver_due()
            wait = self.seconds_until_due()
            if wait is None:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(max(wait, 0.01), left, 1.0))

    def _run(self) -> None:
        while True:
            with self._lock:
                self._kicked = False
                self._wake.clear()
            try:
                self.deliver_due()
                wait = self.seconds_until_due()
            except Exception:  # noqa: BLE001 - the database blinked: the rows stay; the next sweep or kick retries
                log.exception("back-channel logout delivery failed; the outbox keeps the rows for the next sweep")
                wait = None
            if wait is None:
                with self._lock:
                    if not self._kicked:
                        self._thread = None
                        return
                continue
            self._wake.wait(min(max(wait, 0.05), SWEEP_SECONDS))
