"""The broker's own stable subject for each (issuer, subject) a source asserts."""

from __future__ import annotations

import uuid

from sqlalchemy import bindparam, exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from broker.storage.database import read_only
from broker.storage.models import AccountLinkRow, MfaCredentialRow, SubjectRow
from broker.storage.types import utcnow
from federation.identity import SubjectRef


_SUBJECT = func.coalesce(
    select(AccountLinkRow.subject_id)
    .where(AccountLinkRow.issuer == bindparam("issuer"), AccountLinkRow.subject == bindparam("subject"))
    .scalar_subquery(),
    select(SubjectRow.id)
    .where(SubjectRow.issuer == bindparam("issuer"), SubjectRow.subject == bindparam("subject"))
    .scalar_subquery(),
)
_FIND = select(_SUBJECT)
# The subject and whether it has a confirmed TOTP credential (what broker.mfa.TotpService.is_enrolled
# answers), in one round trip: a password sign-in needs both.
_FIND_WITH_TOTP = select(
    _SUBJECT,
    exists().where(MfaCredentialRow.subject_id == _SUBJECT, MfaCredentialRow.kind == "totp"),
)


class Subjects:
    """Maps source subjects to broker subjects (random UUIDs, never derived from usernames)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._reader = read_only(sessions.kw["bind"])

    def subject_for(self, ref: SubjectRef) -> str:
        """Return the broker subject for ``ref`` (the linked person's, if the account is linked),
        creating it on first sight (safe under races)."""
        return self.subject_and_second_factor(ref, _with_second_factor=False)[0]

    def subject_and_second_factor(self, ref: SubjectRef, *, _with_second_factor: bool = True) -> tuple[str, bool]:
        """Return (``subject_for(ref)``, whether that subject has a confirmed TOTP credential),
        read together in one round trip (a password sign-in needs both)."""
        found = self._find(ref, _with_second_factor)
        if found[0]:
            return found  # type: ignore[return-value]
        try:
            with self._sessions.begin() as session:
                session.add(SubjectRow(id=str(uuid.uuid4()), issuer=ref.issuer, subject=ref.subject, created_at=utcnow()))
        except IntegrityError:
            pass
        found = self._find(ref, _with_second_factor)
        if found[0] is None:
            raise RuntimeError("subject vanished after insert")
        return found  # type: ignore[return-value]

    def _find(self, ref: SubjectRef, with_second_factor: bool) -> tuple[str | None, bool]:
        """Return (the broker subject of ``ref``: the one it is linked to, else its own, else None,
        and — if asked — whether it has a confirmed TOTP credential, else False).

        One prebuilt statement (both lookups are unique keys), so a sign-in pays one round trip here.
        """
        params = {"issuer": ref.issuer, "subject": ref.subject}
        with self._reader.connect() as connection:  # a plain read-only connection: no ORM session, no transaction
            if not with_second_factor:
                return connection.execute(_FIND, params).scalar_one(), False
            subject, enrolled = connection.execute(_FIND_WITH_TOTP, params).one()
        return subject, bool(enrolled)
