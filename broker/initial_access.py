"""Initial access tokens for dynamic client registration (RFC 7591 §3, §1.2 "initial access token").

An administrator issues one (``supercloud clients initial-token``) for a borough's
application team: random, shown once, stored only as a keyed hash, valid until it expires
and for a limited number of registrations, optionally bound to an organisation (which then
owns the clients registered with it). A use is consumed by one conditional UPDATE in the
transaction that stores the new client, so a token meant for one registration registers
exactly one client even under concurrent requests.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from broker.storage.models import InitialAccessTokenRow
from broker.storage.types import utcnow
from federation.keys import MasterKey

LABEL = "initial-access-token"
MAX_LIFETIME = dt.timedelta(days=90)
MAX_USES = 1000


@dataclasses.dataclass(frozen=True, slots=True)
class InitialAccessToken:
    """An initial access token as stored (never the token itself)."""

    id: str
    organisation: str | None
    description: str | None
    created_by: str
    created_at: dt.datetime
    expires_at: dt.datetime
    max_uses: int
    uses: int
    revoked_at: dt.datetime | None

    def usable(self, now: dt.datetime) -> bool:
        """True if not revoked, not expired and not used up."""
        return self.revoked_at is None and self.expires_at > now and self.uses < self.max_uses

    def why_unusable(self, now: dt.datetime) -> str | None:
        """Return why the token cannot be used (for the audit log), or None if it can."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at <= now:
            return "expired"
        if self.uses >= self.max_uses:
            return "used up"
        return None


class InitialAccessTokens:
    """Issues, checks, consumes, lists and revokes initial access tokens."""

    def __init__(self, sessions: sessionmaker[Session], master_key: MasterKey) -> None:
        self._sessions = sessions
        self._master = master_key

    def issue(self, *, expires_in: dt.timedelta, max_uses: int = 1, organisation: str | None = None,
              description: str | None = None, created_by: str) -> tuple[str, InitialAccessToken]:
        """Create a token; return (the token, shown only now, and its stored record).

        Raises ValueError for a lifetime outside (0, 90 days] or uses outside 1..1000.
        """
        if not dt.timedelta(0) < expires_in <= MAX_LIFETIME:
            raise ValueError("the lifetime must be more than 0 and at most 90 days")
        if not 1 <= max_uses <= MAX_USES:
            raise ValueError(f"the number of uses must be 1 to {MAX_USES}")
        if description is not None and len(description) > 200:
            raise ValueError("the description must be at most 200 characters")
        token = secrets.token_urlsafe(32)
        now = utcnow()
        row = InitialAccessTokenRow(
            id=secrets.token_hex(8), token_hash=self._hash(token), organisation=organisation, description=description,
            created_by=created_by, created_at=now, expires_at=now + expires_in, max_uses=max_uses, uses=0,
        )
        with self._sessions.begin() as session:
            session.add(row)
        return token, _record(row)

    def find(self, token: str) -> InitialAccessToken | None:
        """Return the record of ``token`` whatever its state (the caller checks ``usable``), or None."""
        if not token or len(token) > 256:
            return None
        with self._sessions() as session:
            row = session.execute(select(InitialAccessTokenRow).where(InitialAccessTokenRow.token_hash == self._hash(token))).scalar_one_or_none()
        return _record(row) if row is not None else None

    def consume(self, session: Session, token_id: str) -> bool:
        """Use the token once inside the caller's transaction; return False if it is no longer usable.

        One conditional UPDATE: two concurrent registrations cannot both take its last use.
        """
        result = session.execute(
            update(InitialAccessTokenRow)
            .where(InitialAccessTokenRow.id == token_id, InitialAccessTokenRow.revoked_at.is_(None),
                   InitialAccessTokenRow.expires_at > utcnow(), InitialAccessTokenRow.uses < InitialAccessTokenRow.max_uses)
            .values(uses=InitialAccessTokenRow.uses + 1)
        )
        return bool(result.rowcount)

    def all(self) -> list[InitialAccessToken]:
        """Return every token record, newest first."""
        with self._sessions() as session:
            rows = session.execute(select(InitialAccessTokenRow).order_by(InitialAccessTokenRow.created_at.desc())).scalars().all()
        return [_record(r) for r in rows]

    def revoke(self, token_id: str) -> bool:
        """Revoke the token with this id; return False if there is no such live token."""
        with self._sessions.begin() as session:
            result = session.execute(update(InitialAccessTokenRow)
                                     .where(InitialAccessTokenRow.id == token_id, InitialAccessTokenRow.revoked_at.is_(None))
                                     .values(revoked_at=utcnow()))
        return bool(result.rowcount)

    def _hash(self, token: str) -> str:
        return self._master.keyed_hash(LABEL, token)


def _record(row: InitialAccessTokenRow) -> InitialAccessToken:
    return InitialAccessToken(
        id=row.id, organisation=row.organisation, description=row.description, created_by=row.created_by,
        created_at=row.created_at, expires_at=row.expires_at, max_uses=row.max_uses, uses=row.uses, revoked_at=row.revoked_at,
    )
