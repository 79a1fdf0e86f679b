"""Telling people about security changes to their account (a second factor added, changed or reset).

Messages go to an outbox table that the deployment's mail relay drains; the broker itself
sends no mail. The text is fixed per kind and carries no secret.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from broker.storage.models import NotificationRow
from broker.storage.types import utcnow

MESSAGES = {
    "mfa_enrolled": "An authenticator app was set up for your London Supercloud sign-in.",
    "mfa_replaced": "The authenticator app for your London Supercloud sign-in was changed. If this was not you, "
    "contact your service desk now.",
    "mfa_reset": "An administrator removed the authenticator app from your London Supercloud sign-in. You will "
    "set up a new one next time you sign in. If you did not ask for this, contact your service desk now.",
}


@dataclasses.dataclass(frozen=True, slots=True)
class Notification:
    """A queued message."""

    subject_id: str
    recipient: str | None
    kind: str
    text: str
    created_at: dt.datetime


class Notifications:
    """Queues messages for people."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def notify(self, subject_id: str, recipient: str | None, kind: str) -> None:
        """Queue the message of ``kind`` for the person. Raises KeyError for an unknown kind."""
        MESSAGES[kind]  # noqa: B018 - unknown kinds are refused before anything is written
        with self._sessions.begin() as session:
            session.add(NotificationRow(subject_id=subject_id, recipient=recipient, kind=kind, created_at=utcnow()))

    def pending(self, subject_id: str | None = None) -> list[Notification]:
        """Return the messages not yet sent (for one person, or everyone), oldest first."""
        with self._sessions() as session:
            query = select(NotificationRow).where(NotificationRow.sent_at.is_(None)).order_by(NotificationRow.id)
            if subject_id is not None:
                query = query.where(NotificationRow.subject_id == subject_id)
            rows = session.execute(query).scalars().all()
        return [Notification(r.subject_id, r.recipient, r.kind, MESSAGES[r.kind], r.created_at) for r in rows]
