"""Break-glass: emergency access that policy never blocks and that never goes unseen (SCENARIOS policy 3).

A person whom policy would permit only under emergency access states a reason code (01–06)
and a justification; the grant is time-boxed (one hour at most), raises an alert to the
privacy officer of the person's organisation carrying only a reference, and waits in a
review queue until someone records an outcome. Every step is audited.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import secrets
import uuid
from collections.abc import Callable

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from broker.audit import AuditEvent
from broker.errors import BrokerError, BrokerErrorCode
from broker.storage.models import BreakGlassGrantRow, PrivacyAlertRow
from broker.storage.types import utcnow
from policies import BreakGlassGrant

log = logging.getLogger(__name__)

# Reason codes for emergency access to records, as people choose them.
REASONS: dict[str, str] = {
    "01": "The person is receiving emergency care and cannot consent",
    "02": "There is an immediate risk to the person's safety",
    "03": "There is an immediate risk to someone else's safety",
    "04": "A safeguarding concern needs urgent action",
    "05": "A court order or legal duty requires access now",
    "06": "Another urgent reason (explain below)",
}
OUTCOMES = ("appropriate", "misuse", "escalated")
MAX_DURATION = dt.timedelta(hours=1)
MAX_JUSTIFICATION = 2000


@dataclasses.dataclass(frozen=True, slots=True)
class Grant:
    """A stored break-glass grant."""

    id: str
    reference: str
    person: str
    subject_id: str
    organisation: str
    service: str
    reason_code: str
    justification: str
    granted_at: dt.datetime
    expires_at: dt.datetime
    review_outcome: str | None
    reviewed_by: str | None

    def for_policy(self) -> BreakGlassGrant:
        """Return the grant as the policy engine's input."""
        return BreakGlassGrant(
            reason_code=self.reason_code, justification=self.justification,
            granted_at=self.granted_at, expires_at=self.expires_at,
        )

    def claim(self) -> dict[str, str]:
        """Return the ``break_glass`` claim tokens carry: reference, reason code and expiry only."""
        return {"reference": self.reference, "reason_code": self.reason_code, "expires_at": self.expires_at.isoformat()}


@dataclasses.dataclass(frozen=True, slots=True)
class Alert:
    """A privacy-officer alert: organisation, reference and time, nothing more."""

    organisation: str
    reference: str
    kind: str
    created_at: dt.datetime


class BreakGlassService:
    """Grants, alerts and the review queue."""

    def __init__(self, sessions: sessionmaker[Session], audit: Callable[[AuditEvent], object], *,
                 duration: dt.timedelta = MAX_DURATION) -> None:
        self._sessions = sessions
        self._audit = audit
        self._duration = min(duration, MAX_DURATION)

    def grant(self, *, person: str, subject_id: str, organisation: str, service: str, reason_code: str,
              justification: str, ip: str | None) -> Grant:
        """Record a grant, raise the privacy-officer alert and audit both; return the grant.

        Raises BrokerError(BAD_REQUEST) with a message for the person for an unknown reason
        code or a blank or over-long justification; nothing is written then.
        """
        justification = (justification or "").strip()
        if reason_code not in REASONS:
            raise BrokerError(BrokerErrorCode.BAD_REQUEST, "Select the reason you need emergency access")
        if not justification:
            raise BrokerError(BrokerErrorCode.BAD_REQUEST, "Explain why you need emergency access")
        if len(justification) > MAX_JUSTIFICATION:
            raise BrokerError(BrokerErrorCode.BAD_REQUEST, f"Your explanation must be {MAX_JUSTIFICATION} characters or fewer")
        now = utcnow()
        row = BreakGlassGrantRow(
            id=str(uuid.uuid4()), reference=f"BG-{secrets.token_hex(4).upper()}", person=person, subject_id=subject_id,
            organisation=organisation, service=service, reason_code=reason_code, justification=justification,
            granted_at=now, expires_at=now + self._duration,
        )
        with self._sessions.begin() as session:
            session.add(row)
            session.add(PrivacyAlertRow(organisation=organisation, reference=row.reference, kind="break_glass", created_at=now))
        grant = _grant(row)
        self._audit(AuditEvent("break_glass_granted", "success", actor=subject_id, ip=ip,
                               details={"reference": grant.reference, "service": service, "reason_code": reason_code,
                                        "expires_at": grant.expires_at.isoformat()}))
        self._audit(AuditEvent("privacy_alert_raised", "success", actor="system",
                               details={"organisation": organisation, "reference": grant.reference}))
        log.warning("break-glass alert for the privacy officer of %s: reference %s", organisation, grant.reference)
        return grant

    def active(self, person: str, service: str, *, now: dt.datetime | None = None) -> Grant | None:
        """Return the person's live grant for ``service``, or None."""
        now = now or utcnow()
        with self._sessions() as session:
            row = session.execute(
                select(BreakGlassGrantRow)
                .where(BreakGlassGrantRow.person == person, BreakGlassGrantRow.service == service,
                       BreakGlassGrantRow.granted_at <= now, BreakGlassGrantRow.expires_at > now)
                .order_by(BreakGlassGrantRow.granted_at.desc())
                .limit(1)
            ).scalar_one_or_none()
        return _grant(row) if row else None

    def review_queue(self) -> list[Grant]:
        """Return every grant still awaiting review, oldest first."""
        with self._sessions() as session:
            rows = session.execute(
                select(BreakGlassGrantRow).where(BreakGlassGrantRow.review_outcome.is_(None)).order_by(BreakGlassGrantRow.granted_at)
            ).scalars().all()
        return [_grant(r) for r in rows]

    def review(self, reference: str, outcome: str, *, reviewer: str, notes: str = "") -> Grant:
        """Record the review outcome of a grant once.

        Raises BrokerError(BAD_REQUEST) for an unknown outcome or reference, a grant already
        reviewed, or a reviewer reviewing their own access.
        """
        if outcome not in OUTCOMES:
            raise BrokerError(BrokerErrorCode.BAD_REQUEST, f"outcome must be one of {', '.join(OUTCOMES)}")
        with self._sessions.begin() as session:
            row = session.execute(select(BreakGlassGrantRow).where(BreakGlassGrantRow.reference == reference)).scalar_one_or_none()
            if row is None:
                raise BrokerError(BrokerErrorCode.BAD_REQUEST, f"no break-glass grant {reference}")
            if reviewer in {row.subject_id, row.person}:
                raise BrokerError(BrokerErrorCode.BAD_REQUEST, "nobody reviews their own emergency access")
            done = session.execute(
                update(BreakGlassGrantRow)
                .where(BreakGlassGrantRow.id == row.id, BreakGlassGrantRow.review_outcome.is_(None))
                .values(review_outcome=outcome, reviewed_by=reviewer, reviewed_at=utcnow(), review_notes=notes[:MAX_JUSTIFICATION])
            )
            if done.rowcount != 1:
                raise BrokerError(BrokerErrorCode.BAD_REQUEST, f"{reference} has already been reviewed")
        self._audit(AuditEvent("break_glass_reviewed", "success", actor=reviewer,
                               details={"reference": reference, "outcome": outcome}))
        with self._sessions() as session:
            return _grant(session.execute(select(BreakGlassGrantRow).where(BreakGlassGrantRow.reference == reference)).scalar_one())

    def alerts(self, organisation: str) -> list[Alert]:
        """Return the privacy-officer alerts of ``organisation``, newest first."""
        with self._sessions() as session:
            rows = session.execute(
                select(PrivacyAlertRow).where(PrivacyAlertRow.organisation == organisation).order_by(PrivacyAlertRow.id.desc())
            ).scalars().all()
        return [Alert(r.organisation, r.reference, r.kind, r.created_at) for r in rows]


def _grant(row: BreakGlassGrantRow) -> Grant:
    return Grant(
        id=row.id, reference=row.reference, person=row.person, subject_id=row.subject_id, organisation=row.organisation,
        service=row.service, reason_code=row.reason_code, justification=row.justification, granted_at=row.granted_at,
        expires_at=row.expires_at, review_outcome=row.review_outcome, reviewed_by=row.reviewed_by,
    )
