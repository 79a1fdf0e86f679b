"""The broker's own stable subject for each (issuer, subject) a source asserts."""

from __future__ import annotations

import uuid

from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from broker.storage.models import AccountLinkRow, SubjectRow
from broker.storage.types import utcnow
from federation.identity import SubjectRef


_FIND = select(
    func.coalesce(
        select(AccountLinkRow.subject_id)
        .where(AccountLinkRow.issuer == bindparam("issuer"), AccountLinkRow.subject == bindparam("subject"))
        .scalar_subquery(),
        select(SubjectRow.id)
        .where(SubjectRow.issuer == bindparam("issuer"), SubjectRow.subject == bindparam("subject"))
        .scalar_subquery(),
    )
)


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

        One prebuilt statement (both lookups are unique keys), so a sign-in pays one round trip here.
        """
        with self._sessions.kw["bind"].connect() as connection:  # a plain connection: no ORM session to set up
            return connection.execute(_FIND, {"issuer": ref.issuer, "subject": ref.subject}).scalar_one()
