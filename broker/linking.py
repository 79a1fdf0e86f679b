"""Account linking: one person, several accounts (a Section 75 worker with Camden AD and CIS2).

Accounts are linked only on evidence: the person proves both in one browser session (a
fresh sign-in with the first, then the second), or an administrator links them with a
recorded reason. Links are keyed by (issuer, subject) — never by matching email — and the
linked account's sign-ins then resolve to the same broker subject. Links, refusals,
conflicts and unlinking are audited.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from broker.audit import AuditEvent
from broker.errors import BrokerError, BrokerErrorCode
from broker.sessions import SsoSession, SsoSessions
from broker.storage.models import AccountLinkRow, SubjectRow
from broker.storage.types import utcnow
from broker.subjects import Subjects
from federation.identity import AuthnContext, Identity, SubjectRef

PROOF_WINDOW = dt.timedelta(minutes=15)


@dataclasses.dataclass(frozen=True, slots=True)
class Link:
    """A linked account and how it came to be linked."""

    issuer: str
    subject: str
    subject_id: str
    method: str
    evidence: dict[str, object]
    linked_at: dt.datetime
    linked_by: str


def merge(first: Identity, second: Identity) -> Identity:
    """Return one identity carrying both accounts' attributes, each with its own provenance.

    The first account's organisation and subject stay; where both assert an attribute, the
    first's value is kept; groups and roles are united; the authentication is the union of
    methods at the higher level, now.
    """
    attributes = {**second.attributes, **first.attributes}
    authn = AuthnContext(
        methods=tuple(dict.fromkeys((*first.authn.methods, *second.authn.methods))),
        assurance=max(first.authn.assurance, second.authn.assurance),
        authenticated_at=dt.datetime.now(dt.UTC),
        source=first.authn.source,
    )
    return dataclasses.replace(
        first,
        attributes=attributes,
        groups=tuple(dict.fromkeys((*first.groups, *second.groups))),
        roles=tuple(dict.fromkeys((*first.roles, *second.roles))),
        authn=authn,
    )


class AccountLinking:
    """Links, lists and unlinks accounts."""

    def __init__(self, sessions: sessionmaker[Session], subjects: Subjects, sso: SsoSessions,
                 audit: Callable[[AuditEvent], object], *, proof_window: dt.timedelta = PROOF_WINDOW) -> None:
        self._sessions = sessions
        self._subjects = subjects
        self._sso = sso
        self._audit = audit
        self._window = proof_window

    def link_proved(self, session: SsoSession, second: Identity, *, ip: str | None) -> tuple[str, SsoSession]:
        """Link ``second`` (just proved in this browser) to the person of ``session``.

        Returns (new cookie value, the session now carrying both accounts). Raises
        BrokerError(BAD_REQUEST) with a message for the person when the first sign-in is not
        fresh, the accounts are the same, already linked, or linked to someone else (audited).
        """
        first = session.identity
        age = dt.datetime.now(dt.UTC) - first.authn.authenticated_at
        if age > self._window:
            self._refuse(session.subject_id, second.subject, "first sign-in not fresh", ip)
            raise BrokerError(BrokerErrorCode.BAD_REQUEST, "Sign in again with your first account, then link the second straight away.")
        if second.subject == first.subject:
            self._refuse(session.subject_id, second.subject, "same account", ip)
            raise BrokerError(BrokerErrorCode.BAD_REQUEST, "That is the account you are signed in with. Sign in with your other account.")
        evidence = {
            "sid": session.sid,
            "first": _proof(first),
            "second": _proof(second),
        }
        self._store(second.subject, session.subject_id, "proved_both", evidence, linked_by=session.subject_id, ip=ip)
        result = self._sso.elevate(session.sid, merge(first, second))
        if result is None:
            raise BrokerError(BrokerErrorCode.SESSION_EXPIRED, "Your sign-in has expired. Sign in again.")
        return result

    def link_by_administrator(self, first: SubjectRef, second: SubjectRef, *, actor: str, reason: str) -> Link:
        """Link ``second`` to the person of ``first`` on an administrator's word, with the reason.

        Raises BrokerError(BAD_REQUEST) for a blank reason, the same account, or a conflict.
        """
        if not reason.strip():
            raise BrokerError(BrokerErrorCode.BAD_REQUEST, "a reason is required")
        if first == second:
            raise BrokerError(BrokerErrorCode.BAD_REQUEST, "the two accounts are the same")
        subject_id = self._subjects.subject_for(first)
        evidence = {"reason": reason.strip(), "first": {"issuer": first.issuer, "subject": first.subject}}
        self._store(second, subject_id, "administrator", evidence, linked_by=actor, ip=None)
        return next(link for link in self.links(subject_id) if (link.issuer, link.subject) == (second.issuer, second.subject))

    def unlink(self, ref: SubjectRef, *, actor: str, reason: str) -> bool:
        """Remove the link of ``ref``; its sign-ins resolve to its own subject again. Returns True if linked."""
        with self._sessions.begin() as session:
            row = session.get(AccountLinkRow, (ref.issuer, ref.subject))
            if row is None:
                return False
            subject_id = row.subject_id
            session.execute(delete(AccountLinkRow).where(AccountLinkRow.issuer == ref.issuer, AccountLinkRow.subject == ref.subject))
        self._audit(AuditEvent("account_unlinked", "success", actor=actor,
                               details={"subject": subject_id, "issuer": ref.issuer, "account": ref.subject, "reason": reason}))
        return True

    def links(self, subject_id: str) -> list[Link]:
        """Return the accounts linked to ``subject_id``."""
        with self._sessions() as session:
            rows = session.execute(select(AccountLinkRow).where(AccountLinkRow.subject_id == subject_id)).scalars().all()
        return [
            Link(r.issuer, r.subject, r.subject_id, r.method, json.loads(r.evidence), r.linked_at, r.linked_by) for r in rows
        ]

    def _store(self, ref: SubjectRef, subject_id: str, method: str, evidence: dict[str, object], *,
               linked_by: str, ip: str | None) -> None:
        with self._sessions() as session:
            existing = session.get(AccountLinkRow, (ref.issuer, ref.subject))
            own = session.execute(
                select(SubjectRow.id).where(SubjectRow.issuer == ref.issuer, SubjectRow.subject == ref.subject)
            ).scalar_one_or_none()
            others_linked_to_own = own is not None and session.execute(
                select(AccountLinkRow.issuer).where(AccountLinkRow.subject_id == own)
            ).first() is not None
        if existing is not None:
            reason = "already linked" if existing.subject_id == subject_id else "linked to another person"
            self._refuse(subject_id, ref, reason, ip)
            message = ("These accounts are already linked." if existing.subject_id == subject_id
                       else "That account is linked to someone else. Ask your service desk.")
            raise BrokerError(BrokerErrorCode.BAD_REQUEST, message)
        if own == subject_id:
            self._refuse(subject_id, ref, "same person", ip)
            raise BrokerError(BrokerErrorCode.BAD_REQUEST, "These accounts are already the same person.")
        if others_linked_to_own:
            self._refuse(subject_id, ref, "the account has accounts linked to it", ip)
            raise BrokerError(BrokerErrorCode.BAD_REQUEST, "That account has other accounts linked to it. Ask your service desk.")
        try:
            with self._sessions.begin() as session:
                session.add(AccountLinkRow(issuer=ref.issuer, subject=ref.subject, subject_id=subject_id, method=method,
                                           evidence=json.dumps(evidence, sort_keys=True), linked_at=utcnow(), linked_by=linked_by))
        except IntegrityError:
            self._refuse(subject_id, ref, "linked concurrently", ip)
            raise BrokerError(BrokerErrorCode.BAD_REQUEST, "That account was linked a moment ago. Try again.") from None
        self._audit(AuditEvent("account_linked", "success", actor=linked_by, ip=ip,
                               details={"subject": subject_id, "issuer": ref.issuer, "account": ref.subject, "method": method}))

    def _refuse(self, subject_id: str, ref: SubjectRef, reason: str, ip: str | None) -> None:
        self._audit(AuditEvent("account_link", "failure", actor=subject_id, ip=ip,
                               details={"issuer": ref.issuer, "account": ref.subject, "reason": reason}))


def _proof(identity: Identity) -> dict[str, object]:
    return {
        "issuer": identity.subject.issuer,
        "subject": identity.subject.subject,
        "source": identity.authn.source,
        "methods": list(identity.authn.methods),
        "assurance": identity.authn.assurance.name,
        "at": identity.authn.authenticated_at.isoformat(),
    }
