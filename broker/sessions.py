"""Server-side single sign-on sessions.

The browser holds only a random cookie value; the database holds its keyed hash, so a
database reader cannot replay a session. Every sign-in creates a new session with a new
id (no fixation). ``sid`` is the public session id that tokens carry (OIDC Front/Back-Channel
Logout).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
from collections.abc import Callable

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from broker.audit import AuditEvent, AuditLog
from broker.storage.models import SsoSessionRow
from broker.storage.types import utcnow
from federation.identity import Identity
from federation.keys import MasterKey

COOKIE_LABEL = "sso-cookie"
_INSERT = insert(SsoSessionRow)


@dataclasses.dataclass(frozen=True, slots=True)
class SsoSession:
    """A live SSO session."""

    sid: str
    subject_id: str
    identity: Identity
    created_at: dt.datetime
    expires_at: dt.datetime


class SsoSessions:
    """Creates, finds and ends SSO sessions."""

    def __init__(
        self, sessions: sessionmaker[Session], master_key: MasterKey, lifetime: dt.timedelta, *, audit_log: AuditLog | None = None
    ) -> None:
        self._sessions = sessions
        self._master = master_key
        self._lifetime = lifetime
        self._audit_log = audit_log

    def create(
        self, identity: Identity, subject_id: str, *, audit: Callable[[str], AuditEvent] | None = None
    ) -> tuple[str, SsoSession]:
        """Start a session; return (cookie value for the browser, the session).

        ``audit`` builds the event recording it from the new session's ``sid``; the session
        and its audit record are then written in one transaction (one commit: both or
        neither). Raises RuntimeError if ``audit`` is given to sessions built without an
        audit log, and the audit log's errors (nothing written then).
        """
        cookie = secrets.token_urlsafe(32)
        now = utcnow()
        values = {
            "sid": secrets.token_urlsafe(16),
            "cookie_hash": self._master.keyed_hash(COOKIE_LABEL, cookie),
            "subject_id": subject_id,
            "identity": identity.to_json(),
            "created_at": now,
            "expires_at": now + self._lifetime,
        }
        # A prebuilt INSERT on a plain connection (every sign-in): no ORM unit of work.
        if audit is None:
            with self._sessions.kw["bind"].begin() as connection:
                connection.execute(_INSERT, values)
        elif self._audit_log is None:
            raise RuntimeError("create(audit=...) needs sessions built with an audit log")
        else:
            with self._audit_log.appending(audit(values["sid"])) as (connection, _):
                connection.execute(_INSERT, values)
        return cookie, SsoSession(
            sid=values["sid"],
            subject_id=subject_id,
            identity=Identity.from_json(values["identity"]),
            created_at=now,
            expires_at=values["expires_at"],
        )

    def find(self, cookie: str | None) -> SsoSession | None:
        """Return the live session for this cookie value, or None (absent, unknown, expired or ended)."""
        if not cookie or len(cookie) > 128:
            return None
        with self._sessions() as session:
            row = session.execute(
                select(SsoSessionRow).where(
                    SsoSessionRow.cookie_hash == self._master.keyed_hash(COOKIE_LABEL, cookie),
                    SsoSessionRow.ended_at.is_(None),
                    SsoSessionRow.expires_at > utcnow(),
                )
            ).scalar_one_or_none()
        return _session(row) if row else None

    def by_sid(self, sid: str) -> SsoSession | None:
        """Return the live session with public id ``sid``, or None."""
        with self._sessions() as session:
            row = session.execute(
                select(SsoSessionRow).where(
                    SsoSessionRow.sid == sid, SsoSessionRow.ended_at.is_(None), SsoSessionRow.expires_at > utcnow()
                )
            ).scalar_one_or_none()
        return _session(row) if row else None

    def elevate(self, sid: str, identity: Identity) -> tuple[str, SsoSession] | None:
        """Replace the live session's identity (after a second factor) and rotate its cookie.

        The public ``sid`` stays, so tokens issued in the session stay tied to it; the cookie
        value changes, so a value captured before the step-up is worthless. Returns (new
        cookie value, session), or None if the session is no longer live.
        """
        cookie = secrets.token_urlsafe(32)
        with self._sessions.begin() as session:
            row = session.execute(
                select(SsoSessionRow).where(
                    SsoSessionRow.sid == sid, SsoSessionRow.ended_at.is_(None), SsoSessionRow.expires_at > utcnow()
                ).with_for_update()
            ).scalar_one_or_none()
            if row is None:
                return None
            row.identity = identity.to_json()
            row.cookie_hash = self._master.keyed_hash(COOKIE_LABEL, cookie)
        return cookie, _session(row)

    def live_sids_for_subject(self, subject_id: str) -> list[str]:
        """Return the public ids of every live session of the broker subject ``subject_id``."""
        with self._sessions() as session:
            return list(
                session.execute(
                    select(SsoSessionRow.sid).where(
                        SsoSessionRow.subject_id == subject_id,
                        SsoSessionRow.ended_at.is_(None),
                        SsoSessionRow.expires_at > utcnow(),
                    )
                ).scalars()
            )

    def end(self, sid: str, reason: str, *, also: Callable[[Session, str], None] | None = None) -> bool:
        """End the session ``sid``; return True if it was live.

        ``also(session, subject_id)`` runs in the same transaction when this call ended it (the
        back-channel outbox is written there: ended and to-be-notified commit together or not at all).
        """
        with self._sessions.begin() as session:
            result = session.execute(
                update(SsoSessionRow)
                .where(SsoSessionRow.sid == sid, SsoSessionRow.ended_at.is_(None))
                .values(ended_at=utcnow(), end_reason=reason)
            )
            if result.rowcount and also is not None:
                subject_id = session.execute(select(SsoSessionRow.subject_id).where(SsoSessionRow.sid == sid)).scalar_one()
                also(session, subject_id)
        return bool(result.rowcount)


def _session(row: SsoSessionRow) -> SsoSession:
    return SsoSession(
        sid=row.sid,
        subject_id=row.subject_id,
        identity=Identity.from_json(row.identity),
        created_at=row.created_at,
        expires_at=row.expires_at,
    )
