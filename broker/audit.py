"""The append-only, hash-chained audit log: one INSERT per event, sealed into the chain in batches.

Appending takes no shared lock. Each record is written by a single INSERT in its writer's
*lane*: a random lane id and a number (``lane_seq``) that the writer advances only after
the previous record's commit succeeded, so each lane is gap-free by construction (no
database sequence, no rollback gaps). The record carries ``mac``, an HMAC-SHA256 (subkey
of the master key) over its lane, number and content, so an edit is detectable at once.

A *sealer* links records into one hash chain in a total order (``seq``): each link is an
HMAC over its position, the previous link and the record's MAC, and the head row names the
last link. Whoever seals locks the head row; a process seals whatever is unsealed on its
first append and then at most every ``seal_interval`` seconds (skipping if another process
is sealing), and ``supercloud audit seal``/``verify`` and ``records()`` seal before
reading. A served broker seals in a background thread of each worker
(``seal_in_background``), so no request waits for a seal; elsewhere (the CLI, tests) the
append that finds a seal due does it. The sealer never links a record whose MAC is wrong
or whose lane predecessor is missing; those stay unsealed and ``verify`` names them.

``verify()`` walks the chain (edited, deleted, inserted, reordered records; a truncated
chain via the head row, as before), checks every unsealed record's MAC, and checks every
lane is numbered 1..n without holes, so a deletion is found whether or not the record had
been sealed. What the chain cannot show, as before, is a tail removed together with a
rewound head; for unsealed records that window is one lane's records not yet sealed.
Records written before sealing existed are lane ``legacy`` and keep their old chain hash.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import heapq
import hmac
import json
import os
import secrets
import logging
import threading
import time
import weakref
from collections.abc import Iterator, Mapping
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, insert, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from broker.storage.models import AuditHeadRow, AuditRecordRow
from broker.storage.types import utcnow

log = logging.getLogger(__name__)

GENESIS = "0" * 64
LEGACY_LANE = "legacy"
SEAL_INTERVAL_SECONDS = 0.5
SEAL_BATCH = 2000
_SENSITIVE = frozenset(
    {"password", "secret", "client_secret", "access_token", "refresh_token", "id_token", "code", "code_verifier", "otp"}
)
_RECORDS = AuditRecordRow.__table__
_HEAD = AuditHeadRow.__table__
_COLUMNS = (
    _RECORDS.c.lane, _RECORDS.c.lane_seq, _RECORDS.c.seq, _RECORDS.c.recorded_at, _RECORDS.c.event, _RECORDS.c.outcome,
    _RECORDS.c.actor, _RECORDS.c.client_id, _RECORDS.c.ip, _RECORDS.c.details, _RECORDS.c.mac, _RECORDS.c.prev_hash,
    _RECORDS.c.hash,
)
# Built once: an INSERT with bound parameters is compiled once per engine and then cached.
_INSERT = insert(_RECORDS)
_LINK = (
    update(_RECORDS)
    .where(_RECORDS.c.lane == bindparam("b_lane"), _RECORDS.c.lane_seq == bindparam("b_lane_seq"), _RECORDS.c.seq.is_(None))
    .values(seq=bindparam("b_seq"), prev_hash=bindparam("b_prev"), hash=bindparam("b_hash"))
)


@dataclasses.dataclass(frozen=True, slots=True)
class AuditEvent:
    """What happened: ``event`` (e.g. ``signin``), ``outcome`` (success/failure/denied), who and details."""

    event: str
    outcome: str
    actor: str | None = None
    client_id: str | None = None
    ip: str | None = None
    details: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, slots=True)
class AuditRecord:
    """A stored record. ``seq``, ``prev_hash`` and ``hash`` are its place in the chain, None
    until sealed; ``lane``/``lane_seq`` its writer's numbering and ``mac`` its own HMAC."""

    seq: int | None
    recorded_at: dt.datetime
    event: str
    outcome: str
    actor: str | None
    client_id: str | None
    ip: str | None
    details: dict[str, Any]
    prev_hash: str | None
    hash: str | None
    lane: str = LEGACY_LANE
    lane_seq: int = 0
    mac: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class VerifyResult:
    """The outcome of ``verify``: ``ok``, how many records were checked (sealed and not yet
    sealed), every problem found, and how many records were not yet sealed."""

    ok: bool
    records: int
    problems: list[str]
    unsealed: int = 0


class _Lane:
    """One writer's numbering: a random id and the next number to write."""

    __slots__ = ("id", "next")

    def __init__(self) -> None:
        self.id = secrets.token_hex(16)
        self.next = 1


class AuditLog:
    """Appends events (one INSERT each), seals them into the hash chain, and verifies it."""

    def __init__(self, sessions: sessionmaker[Session], key: bytes, *, seal_interval: float = SEAL_INTERVAL_SECONDS) -> None:
        bind = sessions.kw.get("bind")
        if not isinstance(bind, Engine):
            raise TypeError("the audit log needs a session factory bound to an engine")
        self._engine: Engine = bind
        self._key = key
        self._seal_interval = seal_interval
        self._lock = threading.Lock()
        self._free: list[_Lane] = []
        self._pid = os.getpid()
        self._next_seal = 0.0  # a process's first append seals whatever earlier processes left
        self._sealer: _BackgroundSealer | None = None

    def seal_in_background(self) -> None:
        """From now on seal in a daemon thread of this process, woken by appends, at most once
        per ``seal_interval``, instead of in the append that finds a seal due. Returns None.

        For long-running servers (each gunicorn worker calls it as it starts): no request then
        waits for a seal. Idempotent. A process forked after this call seals in its appends
        again until it calls this itself. A seal that fails is retried at the next wake-up;
        records stay durable and ``verify`` seals whatever was left.
        """
        with self._lock:
            if self._sealer is not None and self._sealer.pid == os.getpid():
                return
            self._sealer = _BackgroundSealer(self, self._seal_interval)
        self._sealer.start()

    def append(self, event: AuditEvent) -> AuditRecord:
        """Write ``event`` durably (one INSERT, committed) and return the stored record, not yet sealed.

        Raises ValueError if the details hold something that looks like a secret, and the
        database's error if the record could not be written (then nothing was written, or
        the lane is abandoned so that its numbering stays gap-free either way).
        """
        with self.appending(event) as (_, record):
            pass
        return record

    @contextlib.contextmanager
    def appending(self, event: AuditEvent) -> Iterator[tuple[Connection, AuditRecord]]:
        """Insert ``event``'s record in a new transaction and yield (connection, record), so the
        caller's own writes commit atomically with it (one commit instead of two).

        If the caller's block raises, nothing is written and the error propagates. Raises as
        ``append`` does.
        """
        _refuse_secrets(event.details)
        details = _details_text(event.details)
        actor, client_id, ip = _printable(event.actor), _printable(event.client_id), _printable(event.ip)
        lane = self._take_lane()
        recorded_at = utcnow()
        lane_seq = lane.next
        mac = self._record_mac(lane.id, lane_seq, recorded_at, event.event, event.outcome, actor, client_id, ip, details)
        record = AuditRecord(seq=None, recorded_at=recorded_at, event=event.event, outcome=event.outcome, actor=actor,
                             client_id=client_id, ip=ip, details=json.loads(details), prev_hash=None, hash=None,
                             lane=lane.id, lane_seq=lane_seq, mac=mac)
        with self._engine.begin() as connection:
            connection.execute(_INSERT, {
                "lane": lane.id, "lane_seq": lane_seq, "seq": None, "recorded_at": recorded_at, "event": event.event,
                "outcome": event.outcome, "actor": actor, "client_id": client_id, "ip": ip, "details": details,
                "mac": mac, "prev_hash": None, "hash": None,
            })
            yield connection, record
        # Only a committed record advances the lane; after any failure the lane is dropped
        # (the commit's outcome may be unknown), so no number is ever skipped or reused.
        lane.next += 1
        with self._lock:
            self._free.append(lane)
        sealer = self._sealer
        if sealer is not None and sealer.pid == os.getpid():
            sealer.wake()
        else:
            self._seal_if_due()

    def seal(self, *, wait: bool = True) -> int:
        """Link every sealable unsealed record into the chain; return how many were linked.

        With ``wait`` False, return 0 at once if another process is sealing. Records with a
        wrong MAC or a missing lane predecessor are left unsealed (``verify`` reports them).
        Idempotent and safe to run from many processes at once: sealers queue on the head row.
        """
        sealed = 0
        held: set[str] = set()
        conflicts = 0
        while True:
            try:
                linked, fetched, blocked = self._seal_batch(wait=wait, skip_lanes=held)
            except IntegrityError:
                # Another sealer created the head row or linked these records first: nothing
                # was written by this batch; look again (a bounded number of times).
                conflicts += 1
                if not wait or conflicts > 3:
                    return sealed
                continue
            sealed += linked
            progress = linked > 0 or not blocked <= held
            held |= blocked
            if fetched < SEAL_BATCH or not progress:
                return sealed

    def records(self, *, after_seq: int = 0, limit: int | None = None) -> Iterator[AuditRecord]:
        """Seal, then yield records in chain order after ``after_seq``, then any that could
        not be sealed (wrong MAC or missing predecessor: see ``verify``) by time."""
        self.seal()
        count = 0
        with self._engine.connect() as connection:
            sealed = select(*_COLUMNS).where(_RECORDS.c.seq > after_seq).order_by(_RECORDS.c.seq)
            unsealed = select(*_COLUMNS).where(_RECORDS.c.seq.is_(None)).order_by(_RECORDS.c.recorded_at, _RECORDS.c.lane,
                                                                                     _RECORDS.c.lane_seq)
            for query in (sealed, unsealed):
                for row in connection.execute(query):
                    if limit is not None and count >= limit:
                        return
                    count += 1
                    yield _record(row)

    def verify(self) -> VerifyResult:
        """Return every problem found, without changing anything.

        The chain: each link's position, predecessor and HMAC (edited, deleted, inserted,
        reordered), the head row (truncated). Every record's own MAC (edited). Every lane
        numbered 1..n (a record deleted before or after sealing).
        """
        problems: list[str] = []
        lanes: dict[str, list[int]] = {}
        expected_prev = GENESIS
        expected_seq = 1
        count = unsealed = 0
        with self._engine.connect() as connection:
            head = connection.execute(select(_HEAD.c.seq, _HEAD.c.hash).where(_HEAD.c.id == 1)).first()
            sealed_rows = connection.execution_options(yield_per=1000).execute(
                select(*_COLUMNS).where(_RECORDS.c.seq.is_not(None)).order_by(_RECORDS.c.seq))
            for row in sealed_rows:
                count += 1
                seq = row.seq
                if seq != expected_seq:
                    problems.append(f"record {seq}: expected record {expected_seq} here (deleted or inserted)")
                if row.prev_hash != expected_prev:
                    problems.append(f"record {seq}: does not follow the previous record (reordered or removed)")
                if not hmac.compare_digest(row.hash or "", self._link_hash(row)) or not self._mac_ok(row):
                    problems.append(f"record {seq}: content does not match its hash (edited)")
                _count_lane(lanes, row)
                expected_prev = row.hash or ""
                expected_seq = seq + 1
            for row in connection.execute(select(*_COLUMNS).where(_RECORDS.c.seq.is_(None))
                                          .order_by(_RECORDS.c.lane, _RECORDS.c.lane_seq)):
                count += 1
                unsealed += 1
                if row.mac is None or not self._mac_ok(row):
                    problems.append(f"unsealed record {row.lane[:12]}/{row.lane_seq}: content does not match its MAC (edited)")
                _count_lane(lanes, row)
        for lane, (present, highest) in sorted(lanes.items()):
            if present != highest:
                problems.append(f"lane {lane[:12]}: {highest - present} of records 1..{highest} missing (deleted or inserted)")
        if head is None:
            if expected_seq > 1:
                problems.append("the chain head is missing")
        elif head.seq != expected_seq - 1 or head.hash != expected_prev:
            problems.append(f"the chain head names record {head.seq}; the log ends at {expected_seq - 1} (truncated)")
        return VerifyResult(ok=not problems, records=count, problems=problems, unsealed=unsealed)

    # --- lanes ------------------------------------------------------------------------------

    def _take_lane(self) -> _Lane:
        with self._lock:
            if os.getpid() != self._pid:
                # A forked worker must never continue its parent's lanes.
                self._free.clear()
                self._pid = os.getpid()
                self._next_seal = 0.0
            if self._free:
                return self._free.pop()
        return _Lane()

    # --- sealing ----------------------------------------------------------------------------

    def _seal_if_due(self) -> None:
        now = time.monotonic()
        if now < self._next_seal:
            return
        with self._lock:
            if now < self._next_seal:
                return
            self._next_seal = now + self._seal_interval
        # The record is already durable; sealing late is harmless, so a failure here is not the caller's.
        try:
            self.seal(wait=False)
        except Exception:  # noqa: BLE001 - retried at the next interval; verify reports what stays unsealed
            with self._lock:
                self._next_seal = 0.0

    def _seal_batch(self, *, wait: bool, skip_lanes: set[str]) -> tuple[int, int, set[str]]:
        """Seal one batch; return (linked, unsealed rows fetched, lanes that could not be linked past a record)."""
        with self._engine.begin() as connection:
            head = self._lock_head(connection, wait=wait)
            if head is None:
                return 0, 0, set()
            seq, prev = head
            query = select(*_COLUMNS).where(_RECORDS.c.seq.is_(None))
            if skip_lanes:
                query = query.where(_RECORDS.c.lane.not_in(sorted(skip_lanes)))
            rows = connection.execute(query.order_by(_RECORDS.c.recorded_at, _RECORDS.c.lane, _RECORDS.c.lane_seq)
                                      .limit(SEAL_BATCH)).all()
            if not rows:
                return 0, 0, set()
            ready, blocked = self._sealable(connection, rows)
            links = []
            for row in ready:
                seq += 1
                link = self._link(seq, prev, row.mac)
                links.append({"b_lane": row.lane, "b_lane_seq": row.lane_seq, "b_seq": seq, "b_prev": prev, "b_hash": link})
                prev = link
            if links:
                connection.execute(_LINK, links)
                connection.execute(update(_HEAD).where(_HEAD.c.id == 1).values(seq=seq, hash=prev))
            return len(links), len(rows), blocked

    def _lock_head(self, connection: Connection, *, wait: bool) -> tuple[int, str] | None:
        """Lock the head row and return (seq, hash); None if another sealer holds it (``wait``
        False) or the head is gone while sealed records exist (tampering: verify says so)."""
        locked = connection.execute(
            select(_HEAD.c.seq, _HEAD.c.hash).where(_HEAD.c.id == 1).with_for_update(skip_locked=not wait)
        ).first()
        if locked is not None:
            return locked.seq, locked.hash
        if connection.execute(select(_HEAD.c.id).where(_HEAD.c.id == 1)).first() is not None:
            return None  # held by another sealer
        if connection.execute(select(_RECORDS.c.seq).where(_RECORDS.c.seq.is_not(None)).limit(1)).first() is not None:
            return None  # the head was deleted: never paper over it
        connection.execute(insert(_HEAD).values(id=1, seq=0, hash=GENESIS))
        return 0, GENESIS

    def _sealable(self, connection: Connection, rows: list[Any]) -> tuple[list[Any], set[str]]:
        """Return the rows to link, in chain order (by time, each lane in its own order),
        and the lanes stopped at a record with a wrong MAC or without its predecessor."""
        by_lane: dict[str, list[Any]] = {}
        for row in rows:
            by_lane.setdefault(row.lane, []).append(row)
        firsts = [(lane, records[0].lane_seq - 1) for lane, records in by_lane.items() if records[0].lane_seq > 1]
        sealed_before: set[tuple[str, int]] = set()
        if firsts:
            found = connection.execute(
                select(_RECORDS.c.lane, _RECORDS.c.lane_seq)
                .where(tuple_(_RECORDS.c.lane, _RECORDS.c.lane_seq).in_(firsts), _RECORDS.c.seq.is_not(None))
            )
            sealed_before = {(r.lane, r.lane_seq) for r in found}
        blocked: set[str] = set()
        queues: list[list[AuditRecord]] = []
        for lane, records in by_lane.items():
            expected = records[0].lane_seq
            if expected > 1 and (lane, expected - 1) not in sealed_before:
                blocked.add(lane)
                continue
            ready = []
            for row in records:
                if row.lane_seq != expected or row.mac is None or not self._mac_ok(row):
                    blocked.add(lane)
                    break
                ready.append(row)
                expected += 1
            if ready:
                queues.append(ready)
        ordered = heapq.merge(*queues, key=lambda r: (r.recorded_at, r.lane, r.lane_seq))
        return list(ordered), blocked

    # --- hashes -----------------------------------------------------------------------------

    def _record_mac(self, lane: str, lane_seq: int, recorded_at: dt.datetime, event: str, outcome: str,
                    actor: str | None, client_id: str | None, ip: str | None, details: str) -> str:
        content = json.dumps(["audit-record/1", lane, lane_seq, recorded_at.isoformat(), event, outcome, actor, client_id,
                              ip, details], separators=(",", ":"))
        return hmac.new(self._key, content.encode(), hashlib.sha256).hexdigest()

    def _mac_ok(self, row: Any) -> bool:
        """Return True if a stored row's MAC matches its lane, number and content as stored
        (the details text byte for byte); a legacy row has no MAC (its chain hash covers it)."""
        if row.mac is None:
            return row.lane == LEGACY_LANE
        expected = self._record_mac(row.lane, row.lane_seq, row.recorded_at, row.event, row.outcome, row.actor,
                                    row.client_id, row.ip, row.details)
        return hmac.compare_digest(row.mac, expected)

    def _link(self, seq: int, prev: str, mac: str) -> str:
        content = json.dumps(["audit-link/1", seq, prev, mac], separators=(",", ":"))
        return hmac.new(self._key, content.encode(), hashlib.sha256).hexdigest()

    def _link_hash(self, row: Any) -> str:
        """Return the chain hash a sealed row should carry."""
        if row.mac is None:
            return self._legacy_hash(_record(row))
        return self._link(row.seq, row.prev_hash or "", row.mac)

    def _legacy_hash(self, record: AuditRecord) -> str:
        """The chain hash of records written before sealing existed (content and predecessor)."""
        content = json.dumps(
            {
                "seq": record.seq,
                "recorded_at": record.recorded_at.isoformat(),
                "event": record.event,
                "outcome": record.outcome,
                "actor": record.actor,
                "client_id": record.client_id,
                "ip": record.ip,
                "details": record.details,
                "prev": record.prev_hash,
            },
            sort_keys=True,
            separators=(",", ":"),
        )
        return hmac.new(self._key, content.encode(), hashlib.sha256).hexdigest()


def _record(row: Any) -> AuditRecord:
    return AuditRecord(
        seq=row.seq,
        recorded_at=row.recorded_at,
        event=row.event,
        outcome=row.outcome,
        actor=row.actor,
        client_id=row.client_id,
        ip=row.ip,
        details=json.loads(row.details),
        prev_hash=row.prev_hash,
        hash=row.hash,
        lane=row.lane,
        lane_seq=row.lane_seq,
        mac=row.mac,
    )


def _count_lane(lanes: dict[str, list[int]], row: Any) -> None:
    seen = lanes.setdefault(row.lane, [0, 0])
    seen[0] += 1
    seen[1] = max(seen[1], row.lane_seq)


def _details_text(details: Mapping[str, Any]) -> str:
    """Return the details as canonical JSON text (sorted keys; anything else as its string)."""
    try:
        return json.dumps(dict(details), default=str, sort_keys=True)
    except TypeError:  # keys of mixed types cannot be sorted until JSON has made them strings
        return json.dumps(json.loads(json.dumps(dict(details), default=str)), sort_keys=True)


def _printable(value: str | None) -> str | None:
    """Return ``value`` with control characters shown as escapes: PostgreSQL text refuses NUL,
    and an attacker's input must never make an audit record fail to be written."""
    if value is None or value.isprintable():  # the usual case: nothing to escape (isprintable is False for any C0/DEL)
        return value
    return "".join(c if c >= " " and c != "\x7f" else f"\\x{ord(c):02x}" for c in value)


def _refuse_secrets(details: Mapping[str, Any]) -> None:
    for key in details:
        if key.lower() in _SENSITIVE:
            raise ValueError(f"audit details must not carry secrets (key {key!r})")


class _BackgroundSealer:
    """A daemon thread that seals an ``AuditLog`` when appends wake it, at most once per interval.

    It holds the log weakly and ends when the log is collected, so a log no longer used does
    not keep its engine (or the thread) alive.
    """

    def __init__(self, audit_log: AuditLog, interval: float) -> None:
        self.pid = os.getpid()
        self._log = weakref.ref(audit_log)
        self._interval = interval
        self._woken = threading.Event()
        self._woken.set()  # the first pass seals whatever earlier processes left
        weakref.finalize(audit_log, self._woken.set)  # the log is gone: wake up and end
        self._thread = threading.Thread(target=self._run, name="audit-sealer", daemon=True)

    def start(self) -> None:
        """Start the thread. Returns None."""
        self._thread.start()

    def wake(self) -> None:
        """Ask for a seal soon (an append was committed). Returns None; never blocks."""
        self._woken.set()

    def _run(self) -> None:
        while True:
            self._woken.wait()
            self._woken.clear()
            audit_log = self._log()
            if audit_log is None:
                return
            try:
                audit_log.seal(wait=False)
            except Exception as exc:  # noqa: BLE001 - retried at the next wake-up; verify reports what stays unsealed
                log.warning("audit sealing failed (%s); it is tried again after the next append", type(exc).__name__)
            del audit_log
            time.sleep(self._interval)
