"""The append-only, hash-chained audit log.

Each record's hash is HMAC-SHA256 (under a subkey of the master key) over its canonical
content and the previous record's hash. Editing, deleting, inserting or reordering any
record breaks the chain, and the head row catches a truncated tail; because the chain is
keyed, someone who can write the database but lacks the master key cannot forge a
consistent chain. ``verify()`` walks it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Iterator, Mapping
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from broker.storage.models import AuditHeadRow, AuditRecordRow
from broker.storage.types import utcnow

GENESIS = "0" * 64
_SENSITIVE = frozenset(
    {"password", "secret", "client_secret", "access_token", "refresh_token", "id_token", "code", "code_verifier", "otp"}
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
    """A stored record with its position in the chain."""

    seq: int
    recorded_at: dt.datetime
    event: str
    outcome: str
    actor: str | None
    client_id: str | None
    ip: str | None
    details: dict[str, Any]
    prev_hash: str
    hash: str


@dataclasses.dataclass(frozen=True, slots=True)
class VerifyResult:
    """The outcome of ``verify``: ``ok``, how many records were checked, and every problem found."""

    ok: bool
    records: int
    problems: list[str]


class AuditLog:
    """Appends events and verifies the chain."""

    def __init__(self, sessions: sessionmaker[Session], key: bytes) -> None:
        self._sessions = sessions
        self._key = key

    def append(self, event: AuditEvent) -> AuditRecord:
        """Append ``event`` and return the stored record.

        Raises ValueError if the details hold something that looks like a secret. The head
        row is updated first so that concurrent appends queue on its lock.
        """
        _refuse_secrets(event.details)
        with self._sessions.begin() as session:
            bumped = session.execute(update(AuditHeadRow).where(AuditHeadRow.id == 1).values(seq=AuditHeadRow.seq + 1))
            if bumped.rowcount == 0:
                session.execute(insert(AuditHeadRow).values(id=1, seq=1, hash=GENESIS))
            head = session.execute(select(AuditHeadRow).where(AuditHeadRow.id == 1)).scalar_one()
            record = AuditRecord(
                seq=head.seq,
                recorded_at=utcnow(),
                event=event.event,
                outcome=event.outcome,
                actor=_printable(event.actor),
                client_id=_printable(event.client_id),
                ip=_printable(event.ip),
                details=json.loads(json.dumps(dict(event.details), default=str)),
                prev_hash=head.hash,
                hash="",
            )
            record = dataclasses.replace(record, hash=self._hash(record))
            session.add(
                AuditRecordRow(
                    seq=record.seq,
                    recorded_at=record.recorded_at,
                    event=record.event,
                    outcome=record.outcome,
                    actor=record.actor,
                    client_id=record.client_id,
                    ip=record.ip,
                    details=json.dumps(record.details, sort_keys=True),
                    prev_hash=record.prev_hash,
                    hash=record.hash,
                )
            )
            head.hash = record.hash
        return record

    def records(self, *, after_seq: int = 0, limit: int | None = None) -> Iterator[AuditRecord]:
        """Yield stored records in chain order, starting after ``after_seq``."""
        with self._sessions() as session:
            query = select(AuditRecordRow).where(AuditRecordRow.seq > after_seq).order_by(AuditRecordRow.seq)
            if limit is not None:
                query = query.limit(limit)
            for row in session.execute(query).scalars():
                yield _record(row)

    def verify(self) -> VerifyResult:
        """Walk the whole chain; return every edited, missing, inserted or reordered record found."""
        problems: list[str] = []
        expected_prev = GENESIS
        expected_seq = 1
        count = 0
        with self._sessions() as session:
            head = session.execute(select(AuditHeadRow).where(AuditHeadRow.id == 1)).scalar_one_or_none()
            for row in session.execute(select(AuditRecordRow).order_by(AuditRecordRow.seq)).yield_per(1000).scalars():
                count += 1
                record = _record(row)
                if record.seq != expected_seq:
                    problems.append(f"record {record.seq}: expected record {expected_seq} here (deleted or inserted)")
                if record.prev_hash != expected_prev:
                    problems.append(f"record {record.seq}: does not follow the previous record (reordered or removed)")
                if not hmac.compare_digest(record.hash, self._hash(record)):
                    problems.append(f"record {record.seq}: content does not match its hash (edited)")
                expected_prev = record.hash
                expected_seq = record.seq + 1
        if head is None:
            if count:
                problems.append("the chain head is missing")
        else:
            if head.seq != expected_seq - 1 or head.hash != expected_prev:
                problems.append(f"the chain head names record {head.seq}; the log ends at {expected_seq - 1} (truncated)")
        return VerifyResult(ok=not problems, records=count, problems=problems)

    def _hash(self, record: AuditRecord) -> str:
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


def _record(row: AuditRecordRow) -> AuditRecord:
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
    )


def _printable(value: str | None) -> str | None:
    """Return ``value`` with control characters shown as escapes: PostgreSQL text refuses NUL,
    and an attacker's input must never make an audit record fail to be written."""
    if value is None:
        return None
    return "".join(c if c >= " " and c != "\x7f" else f"\\x{ord(c):02x}" for c in value)


def _refuse_secrets(details: Mapping[str, Any]) -> None:
    for key in details:
        if key.lower() in _SENSITIVE:
            raise ValueError(f"audit details must not carry secrets (key {key!r})")
