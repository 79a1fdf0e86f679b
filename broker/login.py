"""Password sign-in: home-realm discovery, authentication against the organisation's source,
and a fresh SSO session. Every attempt is audited with its precise reason; people see only
a generic message (except guidance they can act on, given after a correct password).
"""

from __future__ import annotations

from collections.abc import Callable

from broker.audit import AuditEvent
from broker.errors import BrokerError, BrokerErrorCode
from broker.sessions import SsoSession, SsoSessions
from broker.subjects import Subjects
from federation.errors import FederationError, FederationErrorCode
from federation.organisations import Organisation, OrganisationRegistry
from federation.sources import PasswordSource

GENERIC_FAILURE = "Enter a correct email address and password."
MESSAGES = {
    FederationErrorCode.PASSWORD_CHANGE_REQUIRED: (
        "You need to set a new password before you can sign in. Change it the usual way for your organisation, then try again."
    ),
    FederationErrorCode.SOURCE_UNAVAILABLE: "We cannot reach your organisation's sign-in service right now. Try again in a few minutes.",
}
MAX_USERNAME = 256
MAX_PASSWORD = 1024


class LoginService:
    """Signs people in with a password through their organisation's directory."""

    def __init__(
        self,
        registry: OrganisationRegistry,
        subjects: Subjects,
        sso: SsoSessions,
        audit: Callable[[AuditEvent], object],
    ) -> None:
        self._registry = registry
        self._subjects = subjects
        self._sso = sso
        self._audit = audit

    def discover(self, email: str) -> Organisation:
        """Return the organisation that serves ``email``.

        Raises BrokerError(LOGIN_FAILED) with a message for the person if no member
        organisation declares the address's domain.
        """
        email = email.strip()
        if not email or len(email) > MAX_USERNAME or "@" not in email:
            raise BrokerError(BrokerErrorCode.LOGIN_FAILED, "Enter your work email address, like name@camden.test")
        organisation = self._registry.discover(email)
        if organisation is None:
            raise BrokerError(
                BrokerErrorCode.LOGIN_FAILED,
                "We do not recognise the organisation for this email address. Check it is your work email address.",
            )
        return organisation

    def sign_in(self, email: str, password: str, *, ip: str | None) -> tuple[str, SsoSession]:
        """Authenticate ``email`` with ``password``; return (session cookie value, the new session).

        Raises BrokerError(LOGIN_FAILED) with a message for the person; the audit log gets the reason.
        """
        organisation = self.discover(email)
        source = next((s for s in organisation.sources if isinstance(s, PasswordSource)), None)
        if source is None:
            raise BrokerError(BrokerErrorCode.LOGIN_FAILED, "Your organisation does not sign in with a password here.")
        if len(password) > MAX_PASSWORD:
            self._fail(email, organisation.id, source.id, "password too long", ip)
            raise BrokerError(BrokerErrorCode.LOGIN_FAILED, GENERIC_FAILURE)
        try:
            identity = source.authenticate_password(email.strip(), password)
        except FederationError as exc:
            self._fail(email, organisation.id, source.id, f"{exc.code.value}: {exc.reason}", ip)
            raise BrokerError(BrokerErrorCode.LOGIN_FAILED, MESSAGES.get(exc.code, GENERIC_FAILURE)) from None
        identity = organisation.enrich(identity)
        subject_id = self._subjects.subject_for(identity.subject)
        cookie, session = self._sso.create(identity, subject_id)
        self._audit(
            AuditEvent(
                "signin",
                "success",
                actor=subject_id,
                ip=ip,
                details={
                    "organisation": organisation.id,
                    "source": source.id,
                    "method": "pwd",
                    "assurance": identity.authn.assurance.name,
                    "sid": session.sid,
                },
            )
        )
        return cookie, session

    def _fail(self, email: str, organisation: str, source: str, reason: str, ip: str | None) -> None:
        self._audit(
            AuditEvent(
                "signin",
                "failure",
                actor=email.strip().lower()[:MAX_USERNAME],
                ip=ip,
                details={"organisation": organisation, "source": source, "reason": reason},
            )
        )
