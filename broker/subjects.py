"""The broker's own stable subject for each (issuer, subject) a source asserts."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from broker.storage.models import AccountLinkRow, SubjectRow
from broker.storage.types import utcnow
from federation.identity import SubjectRef


class Subjects:
    """Maps source subjects to broker subjects (random UUIDs, never derived from usernames)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def subject_for(self, ref: SubjectRef) -> str:
        """Return the broker subject for ``ref`` (the linked person's, if the account is linked),
        creating it on first sight (safe under races)."""
        found = self._find(ref)
        if found:
            return found
        try:
            with self._sessions.begin() as session:
                session.add(SubjectRow(id=str(uuid.uuid4()), issuer=ref.issuer, subject=ref.subject, created_at=utcnow()))
        except IntegrityError:
            pass
        found = self._find(ref)
        if found is None:
            raise RuntimeError("subject vanished after insert")
        return found

    def _find(self, ref: SubjectRef) -> str | None:
        """Return the broker subject of ``ref``: the one it is linked to, else its own, else None.

        One statement (both lookups are unique keys), so a sign-in pays one round trip here.
        """
        linked = select(AccountLinkRow.subject_id).where(
            AccountLinkRow.issuer == ref.issuer, AccountLinkRow.subject == ref.subject
        ).scalar_subquery()
        own = select(SubjectRow.id).where(SubjectRow.issuer == ref.issuer, SubjectRow.subject == ref.subject).scalar_subquery()
        with self._sessions() as session:
            return session.execute(select(func.coalesce(linked, own))).scalar_one()
