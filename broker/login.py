"""Password sign-in: home-realm discovery, authentication against the organisation's source,
and a fresh SSO session. Every attempt is audited with its precise reason; people see only
a generic message (except guidance they can act on, given after a correct password).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
from collections.abc import Callable
from typing import Any

from broker.audit import AuditEvent
from broker.errors import BrokerError, BrokerErrorCode
from broker.mfa import MfaError, TotpService
from broker.notifications import Notifications
from broker.sessions import SsoSession, SsoSessions
from broker.state import StateStore
from broker.subjects import Subjects
from broker.throttle import Throttle
from federation.errors import FederationError, FederationErrorCode
from federation.identity import AssuranceLevel, AuthnContext, Identity
from federation.organisations import Organisation, OrganisationRegistry
from federation.scoping import ScopeRules, apply_scope
from federation.sources import CallbackSource, IdentitySource, PasswordSource, SessionSource, UpstreamRequest

GENERIC_FAILURE = "Enter a correct email address and password."
MESSAGES = {
    FederationErrorCode.PASSWORD_CHANGE_REQUIRED: (
        "You need to set a new password before you can sign in. Change it the usual way for your organisation, then try again."
    ),
}
UNAVAILABLE = "Sign-in for {organisation} is unavailable at the moment. Try again in a few minutes."
UPSTREAM_FAILED = "We could not sign you in with your organisation's sign-in service. Try again."
UPSTREAM_NAMESPACE = "upstream"
UPSTREAM_TTL_SECONDS = 600
UPSTREAM_SESSION = "upstream_session"  # key in verify_upstream's extras: the federation.sources.UpstreamSession, or None
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
        throttle: Throttle,
        totp: TotpService,
        state: StateStore,
        notifications: Notifications,
    ) -> None:
        self._registry = registry
        self._subjects = subjects
        self._sso = sso
        self._audit = audit
        self._throttle = throttle
        self.totp = totp
        self._state = state
        self._notifications = notifications

    def discover(self, email: str) -> Organisation:
        """Return the organisation that serves ``email``.

        Raises BrokerError(LOGIN_FAILED) with a message for the person if no member
        organisation declares the address's domain.
        """
        email = email.strip()
        if not email or len(email) > MAX_USERNAME or "@" not in email or any(ord(c) < 32 or c == "\x7f" for c in email):
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
        cookie, session, _ = self.password_sign_in(email, password, ip=ip)
        return cookie, session

    def password_sign_in(self, email: str, password: str, *, ip: str | None) -> tuple[str, SsoSession, bool]:
        """``sign_in``, also returning whether the person has a confirmed second factor (TOTP) to
        be asked for next: read with their subject in one round trip. Raises as ``sign_in``."""
        identity, source_id = self.verify_password(email, password, ip=ip)
        return self._start_session(identity, source_id, ip=ip)

    def verify_password(self, email: str, password: str, *, ip: str | None) -> tuple[Identity, str]:
        """Check a password without opening a session; return (the scoped identity, source id).

        Used by sign-in and by account linking. Raises BrokerError as ``sign_in`` does.
        """
        organisation = self.discover(email)
        source = next((s for s in organisation.sources if isinstance(s, PasswordSource)), None)
        if source is None:
            raise BrokerError(BrokerErrorCode.LOGIN_FAILED, "Your organisation does not sign in with a password here.")
        lockout = getattr(source, "lockout", None)
        if self._throttle.blocked("password", email, ip, lockout=lockout):
            self._fail(email, organisation.id, source.id, "throttled", ip)
            raise BrokerError(BrokerErrorCode.THROTTLED, self._wait_message())
        if len(password) > MAX_PASSWORD:
            self._fail(email, organisation.id, source.id, "password too long", ip)
            self._throttle.failed("password", email, ip, lockout=lockout)
            raise BrokerError(BrokerErrorCode.LOGIN_FAILED, GENERIC_FAILURE)
        try:
            identity = source.authenticate_password(email.strip(), password)
        except FederationError as exc:
            self._fail(email, organisation.id, source.id, f"{exc.code.value}: {exc.reason}", ip)
            if exc.code is not FederationErrorCode.SOURCE_UNAVAILABLE:
                self._throttle.failed("password", email, ip, lockout=lockout)
            if exc.code is FederationErrorCode.SOURCE_UNAVAILABLE:
                raise BrokerError(BrokerErrorCode.LOGIN_FAILED, UNAVAILABLE.format(organisation=organisation.name)) from None
            raise BrokerError(BrokerErrorCode.LOGIN_FAILED, MESSAGES.get(exc.code, GENERIC_FAILURE)) from None
        return self._scoped(identity, source, ip=ip), source.id

    def _scoped(self, identity: Identity, source: IdentitySource, *, ip: str | None) -> Identity:
        """Scope what the source asserted to what its organisation is authoritative for and add
        what the registry derives (teams, job roles).

        Raises BrokerError(LOGIN_FAILED) if the source placed the person in an organisation
        that does not trust it (audited).
        """
        organisation = self._registry.get(identity.organisation)
        try:
            if organisation is None:
                raise FederationError(FederationErrorCode.INVALID_TOKEN, f"unknown organisation {identity.organisation!r}")
            scoped = apply_scope(identity, source.id, source.organisation, ScopeRules.for_organisation(organisation))
        except FederationError as exc:
            self._fail("", source.organisation, source.id, f"{exc.code.value}: {exc.reason}", ip)
            raise BrokerError(BrokerErrorCode.LOGIN_FAILED, UPSTREAM_FAILED) from None
        if scoped.dropped:
            self._audit(AuditEvent("attribute_out_of_scope", "dropped", ip=ip,
                                   details={"source": source.id, "organisation": organisation.id, "dropped": list(scoped.dropped)}))
        return organisation.enrich(scoped.identity)

    def open_session(self, identity: Identity, source_id: str, *, ip: str | None) -> tuple[str, SsoSession]:
        """Open a fresh SSO session for an identity already verified and scoped; return (cookie, session)."""
        cookie, session, _ = self._start_session(identity, source_id, ip=ip)
        return cookie, session

    def _start_session(self, identity: Identity, source_id: str, *, ip: str | None) -> tuple[str, SsoSession, bool]:
        """Return (cookie, the new session, whether its subject has a confirmed TOTP credential)."""
        subject_id, has_second_factor = self._subjects.subject_and_second_factor(identity.subject)

        def signed_in(sid: str) -> AuditEvent:
            return AuditEvent(
                "signin",
                "success",
                actor=subject_id,
                ip=ip,
                details={
                    "organisation": identity.organisation,
                    "source": source_id,
                    "methods": list(identity.authn.methods),
                    "assurance": identity.authn.assurance.name,
                    "sid": sid,
                },
            )

        # The session and its audit record commit together: one round trip fewer, and no
        # session can exist without its record.
        cookie, session = self._sso.create(identity, subject_id, audit=signed_in)
        return cookie, session, has_second_factor

    def upstream_sources(self) -> list[tuple[Organisation, CallbackSource]]:
        """Return every (organisation, upstream source) people may choose to sign in with."""
        return [
            (org, source)
            for org in self._registry.organisations.values()
            for source in org.sources
            if isinstance(source, CallbackSource)
        ]

    def start_upstream(self, source_id: str, request: UpstreamRequest, *, ip: str | None,
                       extras: dict[str, Any] | None = None) -> tuple[str, str]:
        """Begin a sign-in at an upstream identity provider; return (state key, redirect URL).

        The state is kept server-side for ten minutes and can be taken once; the web layer
        binds its key to the browser. Raises BrokerError(LOGIN_FAILED) if the source is unknown
        or cannot start.
        """
        source = self._registry.source(source_id)
        if not isinstance(source, CallbackSource):
            raise BrokerError(BrokerErrorCode.LOGIN_FAILED, "That way of signing in is not available.")
        try:
            started = source.start(request)
        except FederationError as exc:
            self._fail("", source.organisation, source.id, f"{exc.code.value}: {exc.reason}", ip)
            organisation = self._registry.get(source.organisation)
            raise BrokerError(BrokerErrorCode.LOGIN_FAILED, UNAVAILABLE.format(organisation=organisation.name if organisation else source.id)) from None
        key = secrets.token_urlsafe(24)
        kept = {"source": source.id, "state": dict(started.state), "extras": dict(extras or {})}
        self._state.add(UPSTREAM_NAMESPACE, key, kept, UPSTREAM_TTL_SECONDS)
        self._audit(AuditEvent("upstream_redirect", "success", ip=ip, details={"source": source.id}))
        return key, started.url

    def finish_upstream(self, source_id: str, key: str | None, params: dict[str, str], callback_url: str, *,
                        ip: str | None) -> tuple[str, SsoSession]:
        """Complete an upstream sign-in; return (session cookie value, the new session).

        The kept state is taken once (a replayed or forged callback finds none). Raises
        BrokerError(LOGIN_FAILED) with a message for the person; the audit log gets the reason.
        """
        identity, _ = self.verify_upstream(source_id, key, params, callback_url, ip=ip)
        cookie, session, _ = self._start_session(identity, source_id, ip=ip)
        return cookie, session

    def verify_upstream(self, source_id: str, key: str | None, params: dict[str, str], callback_url: str, *,
                        ip: str | None) -> tuple[Identity, dict[str, Any]]:
        """Validate an upstream's answer without opening a session; return (the scoped identity,
        the extras kept with the state at the start, e.g. the purpose "link").

        Raises BrokerError as ``finish_upstream`` does.
        """
        taken = self._state.take(UPSTREAM_NAMESPACE, key) if key else None
        source = self._registry.source(source_id)
        unsolicited = (
            (taken is None or (taken.value is None and not taken.already_taken))
            and isinstance(source, CallbackSource)
            and getattr(source, "accepts_unsolicited", False)
        )
        if unsolicited:
            # IdP-initiated sign-in, enabled for this IdP only: the source checks the response
            # without a request of ours (replay still caught by its assertion-id cache).
            identity, upstream = self._finish_at(source, params, {}, callback_url, ip=ip)
            return identity, {"unsolicited": True, UPSTREAM_SESSION: upstream}
        if taken is None or taken.value is None or taken.value.get("source") != source_id or not isinstance(source, CallbackSource):
            reason = "replayed callback" if taken is not None and taken.already_taken else "no sign-in in progress for this browser"
            self._fail("", source.organisation if source else "", source_id, reason, ip)
            raise BrokerError(BrokerErrorCode.SESSION_EXPIRED, "Your sign-in took too long or was interrupted. Start again.")
        identity, upstream = self._finish_at(source, params, taken.value["state"], callback_url, ip=ip)
        return identity, {**taken.value.get("extras", {}), UPSTREAM_SESSION: upstream}

    def _finish_at(self, source: CallbackSource, params: dict[str, str], state: dict[str, Any], callback_url: str, *,
                   ip: str | None) -> tuple[Identity, Any]:
        """Return (the scoped identity, the upstream session when the source reports one, else None)."""
        upstream = None
        try:
            if isinstance(source, SessionSource):
                identity, upstream = source.finish_session(params, state, callback_url)
            else:
                identity = source.finish(params, state, callback_url)
        except FederationError as exc:
            self._fail("", source.organisation, source.id, f"{exc.code.value}: {exc.reason}", ip)
            if exc.code is FederationErrorCode.SOURCE_UNAVAILABLE:
                organisation = self._registry.get(source.organisation)
                name = organisation.name if organisation else source.id
                raise BrokerError(BrokerErrorCode.LOGIN_FAILED, UNAVAILABLE.format(organisation=name)) from None
            raise BrokerError(BrokerErrorCode.LOGIN_FAILED, UPSTREAM_FAILED) from None
        return self._scoped(identity, source, ip=ip), upstream

    def second_factor(self, session: SsoSession, code: str, *, ip: str | None) -> tuple[str, SsoSession]:
        """Check a TOTP or recovery code for the session's person and raise the session to AAL2.

        Returns (new cookie value, elevated session). Raises MfaError or BrokerError(THROTTLED)
        with a message for the person; every attempt is audited.
        """
        account = f"subject:{session.subject_id}"
        if self._throttle.blocked("otp", account, ip):
            self._audit(AuditEvent("mfa_verify", "failure", actor=session.subject_id, ip=ip, details={"reason": "throttled"}))
            raise BrokerError(BrokerErrorCode.THROTTLED, self._wait_message())
        try:
            method = self.totp.verify(session.subject_id, code)
        except MfaError as exc:
            self._throttle.failed("otp", account, ip)
            self._audit(AuditEvent("mfa_verify", "failure", actor=session.subject_id, ip=ip, details={"reason": exc.reason}))
            raise
        return self._elevate(session, method, ip=ip)

    def confirm_enrolment(self, session: SsoSession, code: str, *, ip: str | None) -> tuple[str, SsoSession, list[str]]:
        """Confirm TOTP enrolment with one code; the session rises to AAL2.

        Returns (new cookie value, elevated session, recovery codes to show once).
        Raises MfaError (audited); nothing is half-enrolled.
        """
        account = f"subject:{session.subject_id}"
        if self._throttle.blocked("otp", account, ip):
            raise BrokerError(BrokerErrorCode.THROTTLED, self._wait_message())
        replacing = self.totp.is_enrolled(session.subject_id)
        try:
            codes = self.totp.confirm_enrolment(session.subject_id, code)
        except MfaError as exc:
            self._throttle.failed("otp", account, ip)
            self._audit(AuditEvent("mfa_enrol", "failure", actor=session.subject_id, ip=ip, details={"reason": exc.reason}))
            raise
        self._audit(AuditEvent("mfa_enrol", "success", actor=session.subject_id, ip=ip,
                               details={"kind": "totp", "replaced": replacing}))
        self._notifications.notify(session.subject_id, session.identity.text("email"),
                                   "mfa_replaced" if replacing else "mfa_enrolled")
        cookie, elevated = self._elevate(session, "otp", ip=ip)
        return cookie, elevated, codes

    def _elevate(self, session: SsoSession, method: str, *, ip: str | None) -> tuple[str, SsoSession]:
        identity = session.identity
        methods = tuple(dict.fromkeys((*identity.authn.methods, "otp", "mfa")))
        authn = AuthnContext(
            methods=methods,
            assurance=max(identity.authn.assurance, AssuranceLevel.AAL2),
            authenticated_at=dt.datetime.now(dt.UTC),
            source=identity.authn.source,
        )
        result = self._sso.elevate(session.sid, dataclasses.replace(identity, authn=authn))
        if result is None:
            raise BrokerError(BrokerErrorCode.SESSION_EXPIRED, "Your sign-in has expired. Sign in again.")
        self._audit(AuditEvent("mfa_verify", "success", actor=session.subject_id, ip=ip,
                               details={"method": method, "assurance": authn.assurance.name, "sid": session.sid}))
        return result

    def _wait_message(self) -> str:
        minutes = max(1, self._throttle.window_seconds // 60)
        return f"There have been too many attempts. Wait {minutes} minutes, then try again."

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
