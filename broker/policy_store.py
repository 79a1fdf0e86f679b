"""The SQL ``BundleRepository`` behind policy governance (SQLite and PostgreSQL).

Three tables (``broker.storage.models``): one row per bundle version, one row per
governance step, and one pointer row naming the version in force. ``activate`` is one
transaction that locks the pointer row first (``SELECT ... FOR UPDATE`` on PostgreSQL,
``BEGIN IMMEDIATE`` on SQLite), so concurrent activations queue and the active version
never changes half-way: either the new version is active and the old one superseded,
or nothing changed.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from broker.storage.models import PolicyActiveRow, PolicyBundleVersionRow, PolicyHistoryRow
from policies.bundle import PolicyBundle
from policies.errors import PolicyError, PolicyErrorCode
from policies.repository import BundleRecord, BundleState, HistoryEntry

_POINTER_ID = 1


class SqlBundleRepository:
    """A ``policies.repository.BundleRepository`` over the broker's database."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        """Take the session factory of the broker's database (migrated to include the policy tables)."""
        self._sessions = sessions

    def add(self, record: BundleRecord) -> None:
        """Store a new version. Raises PolicyError(VERSION_EXISTS) if the version is taken."""
        _check_record(record)
        try:
            with self._sessions.begin() as session:
                taken = session.execute(
                    select(PolicyBundleVersionRow.position).where(PolicyBundleVersionRow.version == record.version)
                ).first()
                if taken is not None:
                    raise PolicyError(PolicyErrorCode.VERSION_EXISTS, f"version {record.version!r} already exists")
                session.add(PolicyBundleVersionRow(version=record.version, **_columns(record)))
        except IntegrityError as error:  # a concurrent add of the same version won the race
            raise PolicyError(PolicyErrorCode.VERSION_EXISTS, f"version {record.version!r} already exists") from error

    def get(self, version: str) -> BundleRecord | None:
        """Return the record of ``version``, or None (also for a non-string version)."""
        if not isinstance(version, str):
            return None
        with self._sessions() as session:
            row = session.execute(
                select(PolicyBundleVersionRow).where(PolicyBundleVersionRow.version == version)
            ).scalar_one_or_none()
            return _record(row) if row is not None else None

    def replace(self, record: BundleRecord) -> None:
        """Overwrite the record of an existing version. Raises PolicyError(UNKNOWN_VERSION)."""
        _check_record(record)
        with self._sessions.begin() as session:
            changed = session.execute(
                update(PolicyBundleVersionRow)
                .where(PolicyBundleVersionRow.version == record.version)
                .values(**_columns(record))
            )
            if changed.rowcount == 0:
                raise PolicyError(PolicyErrorCode.UNKNOWN_VERSION, f"no version {record.version!r}")

    def versions(self) -> list[BundleRecord]:
        """Return every version, oldest proposal first."""
        with self._sessions() as session:
            rows = session.execute(select(PolicyBundleVersionRow).order_by(PolicyBundleVersionRow.position)).scalars()
            return [_record(row) for row in rows]

    def active_version(self) -> str | None:
        """Return the version in force, or None before the first activation."""
        with self._sessions() as session:
            return session.execute(
                select(PolicyActiveRow.version).where(PolicyActiveRow.id == _POINTER_ID)
            ).scalar_one_or_none()

    def activate(self, version: str, at: dt.datetime) -> None:
        """Atomically make ``version`` active and the previously active one superseded.

        One transaction: lock the pointer row, supersede the old version, mark the new one
        active at ``at``, move the pointer. Raises PolicyError(UNKNOWN_VERSION); on any
        failure nothing changes.
        """
        with self._sessions.begin() as session:
            pointer = self._lock_pointer(session)
            row = session.execute(
                select(PolicyBundleVersionRow).where(PolicyBundleVersionRow.version == version)
            ).scalar_one_or_none()
            if row is None:
                raise PolicyError(PolicyErrorCode.UNKNOWN_VERSION, f"no version {version!r}")
            if pointer.version is not None and pointer.version != version:
                session.execute(
                    update(PolicyBundleVersionRow)
                    .where(PolicyBundleVersionRow.version == pointer.version)
                    .values(state=BundleState.SUPERSEDED.value)
                )
            row.state = BundleState.ACTIVE.value
            row.activated_at = at
            pointer.version = version
            pointer.activated_at = at

    def append_history(self, entry: HistoryEntry) -> None:
        """Append one governance step to the history."""
        with self._sessions.begin() as session:
            session.add(
                PolicyHistoryRow(
                    at=entry.at,
                    event=entry.event,
                    version=entry.version[:64],
                    actor=entry.actor[:255],
                    details=json.dumps(dict(entry.details), sort_keys=True, default=str),
                )
            )

    def history(self) -> list[HistoryEntry]:
        """Return every governance step, oldest first."""
        with self._sessions() as session:
            rows = session.execute(select(PolicyHistoryRow).order_by(PolicyHistoryRow.seq)).scalars()
            return [
                HistoryEntry(at=r.at, event=r.event, version=r.version, actor=r.actor, details=json.loads(r.details))
                for r in rows
            ]

    def _lock_pointer(self, session: Session) -> PolicyActiveRow:
        query = select(PolicyActiveRow).where(PolicyActiveRow.id == _POINTER_ID).with_for_update()
        pointer = session.execute(query).scalar_one_or_none()
        if pointer is None:  # the migration creates it; recreate if someone deleted it
            try:
                with session.begin_nested():
                    session.execute(insert(PolicyActiveRow).values(id=_POINTER_ID, version=None, activated_at=None))
            except IntegrityError:
                pass  # created concurrently
            pointer = session.execute(query).scalar_one()
        return pointer


def _check_record(record: BundleRecord) -> None:
    if not isinstance(record, BundleRecord):
        raise PolicyError(PolicyErrorCode.INVALID_INPUT, f"expected a BundleRecord, got {type(record).__name__}")
    if not isinstance(record.version, str) or not 0 < len(record.version) <= 64:
        raise PolicyError(PolicyErrorCode.INVALID_INPUT, "a version is 1-64 characters")


def _columns(record: BundleRecord) -> dict[str, Any]:
    return {
        "name": record.bundle.name,
        "state": record.state.value,
        "bundle": json.dumps(record.bundle.to_json(), sort_keys=True),
        "proposer": record.proposer,
        "proposed_at": record.proposed_at,
        "approver": record.approver,
        "approved_at": record.approved_at,
        "activated_at": record.activated_at,
    }


def _record(row: PolicyBundleVersionRow) -> BundleRecord:
    try:
        bundle = PolicyBundle.from_json(json.loads(row.bundle))
        state = BundleState(row.state)
    except (ValueError, TypeError) as error:
        raise PolicyError(
            PolicyErrorCode.INVALID_STATE, f"stored version {row.version!r} is unreadable: {error}"
        ) from error
    return BundleRecord(
        version=row.version,
        bundle=bundle,
        state=state,
        proposer=row.proposer,
        proposed_at=row.proposed_at,
        approver=row.approver,
        approved_at=row.approved_at,
        activated_at=row.activated_at,
    )
