"""Refresh tokens: opaque, stored as keyed hashes, rotated on every use (RFC 9700 §4.14.2).

Each token belongs to a family (everything descended from one authorization). Using a
token marks it used in one conditional UPDATE, so of any number of concurrent requests
exactly one wins; presenting a used token again is reuse — a sign it was stolen — and
revokes the whole family and the access tokens issued from it (RFC 6749 §10.4).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import secrets
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from broker.storage.models import RefreshTokenRow
from broker.storage.types import utcnow
from federation.keys import MasterKey

REFRESH_LABEL = "refresh-token"
_TOKENS = RefreshTokenRow.__table__
# Built once and run on a plain connection: both are on every code exchange and refresh,
# where an ORM session per statement cost more than the statement.
_ISSUE = insert(_TOKENS)
_USE = (
    update(_TOKENS)
    .where(_TOKENS.c.token_hash == bindparam("b_hash"), _TOKENS.c.used_at.is_(None), _TOKENS.c.revoked_at.is_(None),
           _TOKENS.c.expires_at > bindparam("b_now"))
    .values(used_at=bindparam("b_now"))
    .returning(_TOKENS.c.family_id, _TOKENS.c.client_id, _TOKENS.c.subject_id, _TOKENS.c.sid, _TOKENS.c.scope,
               _TOKENS.c.grant, _TOKENS.c.expires_at)
)


@dataclasses.dataclass(frozen=True, slots=True)
class RefreshRecord:
    """What a refresh token stands for."""

    family_id: str
    client_id: str
    subject_id: str
    sid: str | None
    scopes: frozenset[str]
    grant: dict[str, Any]
    expires_at: dt.datetime


class Outcome(enum.StrEnum):
    """Why ``use`` found no live token."""

    UNKNOWN = "unknown"
    REUSED = "reused"
    REVOKED = "revoked"
    EXPIRED = "expired"


@dataclasses.dataclass(frozen=True, slots=True)
class Used:
    """The result of ``RefreshTokens.use``: the record for the one winner, else why not."""

    record: RefreshRecord | None
    outcome: Outcome | None = None
    family_id: str | None = None
    client_id: str | None = None


class RefreshTokens:
    """Issues, rotates and revokes refresh tokens in the ``refresh_tokens`` table."""

    def __init__(self, sessions: sessionmaker[Session], master_key: MasterKey, lifetime: dt.timedelta) -> None:
        self._sessions = sessions
        self._engine = sessions.kw["bind"]
        self._master = master_key
        self._lifetime = lifetime

    def issue(self, *, family_id: str | None, client_id: str, subject_id: str, sid: str | None,
              scopes: frozenset[str], grant: dict[str, Any], expires_at: dt.datetime | None = None) -> tuple[str, str]:
        """Store a new refresh token; return (the token, its family id).

        A new family starts when ``family_id`` is None. A rotated token never outlives
        the family's first expiry (``expires_at``).
        """
        token = secrets.token_urlsafe(32)
        now = utcnow()
        family = family_id or secrets.token_urlsafe(16)
        with self._engine.begin() as connection:
            connection.execute(_ISSUE, {
                "token_hash": self.hash(token), "family_id": family, "client_id": client_id, "subject_id": subject_id,
                "sid": sid, "scope": " ".join(sorted(scopes)), "grant": grant, "issued_at": now,
                "expires_at": expires_at or now + self._lifetime, "used_at": None, "revoked_at": None,
            })
        return token, family

    def use(self, token: str) -> Used:
        """Atomically consume ``token``; return its record for the one caller that wins.

        A token used before yields ``Outcome.REUSED`` (the caller must revoke the family).
        """
        token_hash = self.hash(token)
        now = utcnow()
        with self._engine.begin() as connection:
            # UPDATE ... WHERE used_at IS NULL ... RETURNING: the row lock makes one caller win.
            row = connection.execute(_USE, {"b_hash": token_hash, "b_now": now}).first()
        if row is not None:
            expires = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=dt.UTC)
            return Used(RefreshRecord(row.family_id, row.client_id, row.subject_id, row.sid,
                                      frozenset(row.scope.split()), dict(row.grant), expires))
        with self._sessions() as session:
            seen = session.execute(select(RefreshTokenRow).where(RefreshTokenRow.token_hash == token_hash)).scalar_one_or_none()
        if seen is None:
            return Used(None, Outcome.UNKNOWN)
        if seen.revoked_at is not None:
            outcome = Outcome.REUSED if seen.used_at is not None else Outcome.REVOKED
        elif seen.used_at is not None:
            outcome = Outcome.REUSED
        else:
            outcome = Outcome.EXPIRED
        return Used(None, outcome, family_id=seen.family_id, client_id=seen.client_id)

    def find(self, token: str) -> RefreshRecord | None:
        """Return the live (unused, unrevoked, unexpired) token's record without using it, or None."""
        with self._sessions() as session:
            row = session.execute(
                select(RefreshTokenRow).where(RefreshTokenRow.token_hash == self.hash(token), RefreshTokenRow.used_at.is_(None),
                                              RefreshTokenRow.revoked_at.is_(None), RefreshTokenRow.expires_at > utcnow())
            ).scalar_one_or_none()
        if row is None:
            return None
        return RefreshRecord(row.family_id, row.client_id, row.subject_id, row.sid, frozenset(row.scope.split()),
                             dict(row.grant), row.expires_at)

    def revoke_family(self, family_id: str) -> int:
        """Revoke every token of the family; return how many were live."""
        return self._revoke(RefreshTokenRow.family_id == family_id)

    def revoke_by_sid(self, sid: str) -> int:
        """Revoke every refresh token issued in SSO session ``sid``; return how many."""
        return self._revoke(RefreshTokenRow.sid == sid)

    def revoke_by_subject(self, subject_id: str) -> int:
        """Revoke every refresh token of the broker subject; return how many."""
        return self._revoke(RefreshTokenRow.subject_id == subject_id)

    def hash(self, token: str) -> str:
        """Return the keyed hash under which ``token`` is stored."""
        return self._master.keyed_hash(REFRESH_LABEL, token)

    def _revoke(self, condition: Any) -> int:
        with self._sessions.begin() as session:
            result = session.execute(
                update(RefreshTokenRow).where(condition, RefreshTokenRow.revoked_at.is_(None)).values(revoked_at=utcnow())
            )
        return result.rowcount or 0
