"""The identity store of directory people: what each directory sync read, kept per organisation.

One row per (organisation, directory, object id) — the directory's stable id (objectGUID /
entryUUID), never the username, so the same username in two boroughs never collides —
with the canonical attributes, the account status, provenance (the server that answered
and the change stamp it reported) and when it was first seen, last seen and last changed.
Each directory's sync watermark (``SyncCursor``) is kept beside, so incremental runs resume.

Every query is filtered by organisation: nothing here reads or writes another
organisation's people.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from broker.storage.models import AccountLinkRow, DirectoryPersonRow, DirectorySyncStateRow, SubjectRow
from directories.records import AccountRecord, AccountStatus

DELETED = "deleted"
#: Statuses that mean the person has left (their sessions end at the next sync). Lockouts
#: (temporary, and caused by anyone typing wrong passwords) and password states are not.
LEAVER_STATUSES = frozenset({AccountStatus.DISABLED.value, AccountStatus.EXPIRED.value, DELETED})


@dataclasses.dataclass(frozen=True, slots=True)
class PersonChange:
    """What storing one record changed: ``kind`` is new, changed or unchanged; ``leaver`` is
    True when the person has just become a leaver (their access must end now)."""

    object_id: str
    kind: str
    leaver: bool
    status: str


@dataclasses.dataclass(frozen=True, slots=True)
class DirectoryPerson:
    """One stored person (see ``DirectoryPersonRow``)."""

    organisation: str
    directory_id: str
    object_id: str
    username: str
    attributes: Mapping[str, Any]
    status: str
    source_server: str
    first_seen_at: dt.datetime
    last_seen_at: dt.datetime
    deleted_at: dt.datetime | None
    access_ended_at: dt.datetime | None


#: Where a person's groups (names, nested and primary included) are kept among their attributes.
GROUPS_ATTRIBUTE = "groups"


def _attributes(record: AccountRecord) -> dict[str, Any]:
    attributes: dict[str, Any] = {k: list(v) if isinstance(v, tuple) else v for k, v in sorted(record.attributes.items())}
    attributes.setdefault(GROUPS_ATTRIBUTE, sorted({g.name for g in record.groups}))  # unless given as an attribute
    return attributes


class DirectoryPeople:
    """Reads and writes ``directory_people`` and ``directory_sync_state``."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def store(
        self, organisation: str, records: Iterable[AccountRecord], *, server: str, changes: Mapping[str, str],
        now: dt.datetime,
    ) -> list[PersonChange]:
        """Upsert ``records`` (one page) of ``organisation``; return what changed, per record.

        ``changes`` maps object id to the change stamp read (provenance). Idempotent: the
        same page stored twice reports ``unchanged`` and no leaver the second time.
        """
        records = list(records)
        if not records:
            return []
        out: list[PersonChange] = []
        with self._sessions.begin() as session:
            directory_id = records[0].directory_id
            existing = {
                row.object_id: row
                for row in session.execute(
                    select(DirectoryPersonRow).where(
                        DirectoryPersonRow.organisation == organisation,
                        DirectoryPersonRow.directory_id == directory_id,
                        DirectoryPersonRow.object_id.in_([r.object_id for r in records]),
                    )
                ).scalars()
            }
            for record in records:
                if record.directory_id != directory_id:
                    raise ValueError("one page holds one directory's records")
                attributes, status = _attributes(record), record.status.value
                row = existing.get(record.object_id)
                if row is None:
                    row = DirectoryPersonRow(
                        organisation=organisation, directory_id=directory_id, object_id=record.object_id,
                        username=record.username, attributes=attributes, status=status, source_server=server,
                        source_change=changes.get(record.object_id, ""), first_seen_at=now, last_seen_at=now,
                        changed_at=now, deleted_at=None, access_ended_at=None,
                    )
                    session.add(row)
                    existing[record.object_id] = row
                    kind = "new"
                elif (row.username, row.attributes, row.status, row.deleted_at) != (
                    record.username, attributes, status, None
                ):
                    row.username, row.attributes, row.status, row.deleted_at = record.username, attributes, status, None
                    row.changed_at = now
                    kind = "changed"
                else:
                    kind = "unchanged"
                row.last_seen_at = now
                row.source_server = server
                row.source_change = changes.get(record.object_id, row.source_change)
                leaver = status in LEAVER_STATUSES and row.access_ended_at is None
                if status not in LEAVER_STATUSES:
                    row.access_ended_at = None  # re-enabled: a later disable ends access again
                out.append(PersonChange(record.object_id, kind, leaver, status))
        return out

    def mark_deleted(
        self, organisation: str, directory_id: str, object_ids: Iterable[str], *, now: dt.datetime
    ) -> list[PersonChange]:
        """Mark the stored people ``object_ids`` of ``organisation``'s ``directory_id`` deleted;
        return the changes (ids not stored, or already deleted, are skipped)."""
        wanted = list(dict.fromkeys(object_ids))
        out: list[PersonChange] = []
        with self._sessions.begin() as session:
            for start in range(0, len(wanted), 500):
                rows = session.execute(
                    select(DirectoryPersonRow).where(
                        DirectoryPersonRow.organisation == organisation,
                        DirectoryPersonRow.directory_id == directory_id,
                        DirectoryPersonRow.object_id.in_(wanted[start:start + 500]),
                        DirectoryPersonRow.deleted_at.is_(None),
                    )
                ).scalars()
                for row in rows:
                    row.status, row.deleted_at, row.changed_at = DELETED, now, now
                    out.append(PersonChange(row.object_id, "deleted", row.access_ended_at is None, DELETED))
        return out

    def absent(self, organisation: str, directory_id: str, seen: set[str]) -> list[str]:
        """Return the object ids stored (not deleted) for the directory that are not in ``seen``."""
        with self._sessions() as session:
            stored = session.execute(
                select(DirectoryPersonRow.object_id).where(
                    DirectoryPersonRow.organisation == organisation,
                    DirectoryPersonRow.directory_id == directory_id,
                    DirectoryPersonRow.deleted_at.is_(None),
                )
            ).scalars()
            return [object_id for object_id in stored if object_id not in seen]

    def holding_groups(
        self, organisation: str, directory_id: str, names: Collection[str], *, known: Collection[str] | None = None
    ) -> list[str]:
        """Return the object ids of the directory's stored (not deleted) people whose groups
        include one of ``names`` or, when ``known`` is given, a group not in ``known`` (one
        deleted or renamed since they were stored).

        Reads the stored groups of every person of the directory (streamed, a thousand rows at
        a time): names live inside the JSON attributes, which no portable index reaches.
        """
        wanted, current = frozenset(names), None if known is None else frozenset(known)
        found: list[str] = []
        with self._sessions() as session:
            rows = session.execute(
                select(DirectoryPersonRow.object_id, DirectoryPersonRow.attributes)
                .where(
                    DirectoryPersonRow.organisation == organisation,
                    DirectoryPersonRow.directory_id == directory_id,
                    DirectoryPersonRow.deleted_at.is_(None),
                )
                .execution_options(yield_per=1000)
            )
            for object_id, attributes in rows:
                groups = (attributes or {}).get(GROUPS_ATTRIBUTE) or ()
                if any(g in wanted or (current is not None and g not in current) for g in groups):
                    found.append(object_id)
        return found

    def mark_access_ended(self, organisation: str, directory_id: str, object_ids: Iterable[str], *, now: dt.datetime) -> None:
        """Record that these people's access was ended (so the next sync does not end it again)."""
        wanted = list(dict.fromkeys(object_ids))
        with self._sessions.begin() as session:
            for start in range(0, len(wanted), 500):
                session.execute(
                    update(DirectoryPersonRow)
                    .where(
                        DirectoryPersonRow.organisation == organisation,
                        DirectoryPersonRow.directory_id == directory_id,
                        DirectoryPersonRow.object_id.in_(wanted[start:start + 500]),
                    )
                    .values(access_ended_at=now)
                )

    def subjects_of(self, issuer: str, object_ids: Iterable[str]) -> dict[str, str]:
        """Return {object id: broker subject} for the directory accounts that have one (the linked
        person's, if linked). Never creates one: a person who never signed in has no sessions."""
        wanted = list(dict.fromkeys(object_ids))
        found: dict[str, str] = {}
        with self._sessions() as session:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start:start + 500]
                found.update((subject, subject_id) for subject, subject_id in session.execute(
                    select(SubjectRow.subject, SubjectRow.id).where(SubjectRow.issuer == issuer, SubjectRow.subject.in_(chunk))
                ).all())
                found.update((subject, subject_id) for subject, subject_id in session.execute(  # a link wins
                    select(AccountLinkRow.subject, AccountLinkRow.subject_id)
                    .where(AccountLinkRow.issuer == issuer, AccountLinkRow.subject.in_(chunk))
                ).all())
        return found

    def people(self, organisation: str, *, include_deleted: bool = False) -> list[DirectoryPerson]:
        """Return ``organisation``'s stored people, ordered by directory and username."""
        query = select(DirectoryPersonRow).where(DirectoryPersonRow.organisation == organisation)
        if not include_deleted:
            query = query.where(DirectoryPersonRow.deleted_at.is_(None))
        with self._sessions() as session:
            rows = session.execute(query.order_by(DirectoryPersonRow.directory_id, DirectoryPersonRow.username)).scalars()
            return [
                DirectoryPerson(r.organisation, r.directory_id, r.object_id, r.username, dict(r.attributes), r.status,
                                r.source_server, r.first_seen_at, r.last_seen_at, r.deleted_at, r.access_ended_at)
                for r in rows
            ]

    def cursor(self, organisation: str, directory_id: str) -> dict[str, str] | None:
        """Return the stored watermark of ``directory_id`` (``SyncCursor.to_json`` form), or None."""
        with self._sessions() as session:
            row = session.get(DirectorySyncStateRow, directory_id)
            if row is None or row.organisation != organisation:
                return None
            return dict(row.cursor) if row.cursor else None

    def save_cursor(
        self, organisation: str, directory_id: str, cursor: dict[str, str] | None, *, full: bool, now: dt.datetime
    ) -> None:
        """Store the watermark after a completed run (never after a failed one)."""
        with self._sessions.begin() as session:
            row = session.get(DirectorySyncStateRow, directory_id)
            if row is None:
                row = DirectorySyncStateRow(directory_id=directory_id, organisation=organisation)
                session.add(row)
            elif row.organisation != organisation:
                raise ValueError(f"directory {directory_id} belongs to organisation {row.organisation}")
            if cursor is not None:
                row.cursor = cursor
            row.last_run_at = now
            if full:
                row.last_full_at = now
