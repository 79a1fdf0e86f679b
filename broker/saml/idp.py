"""The broker's SAML 2.0 identity provider (Web Browser SSO Profile, SAML Profiles §4.1): no Flask.

``receive`` turns an inbound AuthnRequest into a ``PendingSaml`` after every check that
decides where a response may go (``authn_request``); ``answer`` decides, for a person's SSO
session, between a response, a sign-in, a step-up/break-glass obligation or a SAML error
status; ``idp_initiated`` does the same for an unsolicited response to an SP that allows it.
The access gate (leavers, MFA requirement, policy) is asked before any assertion is issued,
exactly as before any OIDC code.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import threading
from collections.abc import Callable
from typing import Any

from lxml import etree

from broker.access import AccessDenied, AccessGate, AccessGrant, ObligationPending, StepUpRequired
from broker.audit import AuditEvent
from broker.errors import BrokerError
from broker.saml import authn_context, nameid
from broker.saml.attributes import released_attributes
from broker.saml.authn_request import (
    AuthnRequest,
    RequestRefused,
    check_signature,
    check_timing_and_destination,
    choose_acs,
    default_acs,
    read,
    request_from_json,
    request_to_json,
)
from broker.saml.bindings import InboundMessage, encode_post
from broker.saml.credentials import Credential, IdpCredentials
from broker.saml.issuing import AssertionSpec, ResponseIssuer, new_id, saml_time
from broker.saml.participants import Participant, Participants
from broker.saml.registry import ServiceProvider, ServiceProviders
from broker.sessions import SsoSession
from broker.state import StateStore
from broker.storage.types import utcnow
from federation.errors import FederationError
from federation.keys import MasterKey
from federation.upstream_saml.xmlsecurity import inspect_document

MD = "urn:oasis:names:tc:SAML:2.0:metadata"
DS = "http://www.w3.org/2000/09/xmldsig#"
BINDING_POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
BINDING_REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
STATUS = "urn:oasis:names:tc:SAML:2.0:status:"
REQUESTER, RESPONDER = STATUS + "Requester", STATUS + "Responder"
REPLAY_NAMESPACE = "saml-req-id"
REPLAY_TTL_SECONDS = 1800
METADATA_VALIDITY = dt.timedelta(days=7)
METADATA_CACHE_SECONDS = 3600


@dataclasses.dataclass(frozen=True, slots=True)
class PendingSaml:
    """An accepted AuthnRequest (or an IdP-initiated sign-in) waiting for the person."""

    sp_entity_id: str
    request: AuthnRequest | None
    acs_url: str
    relay_state: str | None
    received_at: dt.datetime

    @property
    def client_id(self) -> str:
        """The SP's entity id (the name the access gate and the parked-request cookie use)."""
        return self.sp_entity_id

    def to_json(self) -> dict[str, Any]:
        return {
            "protocol": "saml",
            "sp_entity_id": self.sp_entity_id,
            "request": request_to_json(self.request) if self.request else None,
            "acs_url": self.acs_url,
            "relay_state": self.relay_state,
            "received_at": self.received_at.isoformat(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PendingSaml:
        return cls(
            sp_entity_id=data["sp_entity_id"],
            request=request_from_json(data["request"]) if data.get("request") else None,
            acs_url=data["acs_url"],
            relay_state=data.get("relay_state"),
            received_at=dt.datetime.fromisoformat(data["received_at"]),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class PostTo:
    """Send the browser to ``url`` with an auto-submitting form of ``fields`` (HTTP-POST binding)."""

    url: str
    fields: dict[str, str]


@dataclasses.dataclass(frozen=True, slots=True)
class LoginNeeded:
    """The person must (re-)authenticate first (no session, or ForceAuthn)."""


@dataclasses.dataclass(frozen=True, slots=True)
class ObligationDue:
    """An obligation (step-up, break-glass) must be fulfilled first."""

    error: ObligationPending


Outcome = PostTo | LoginNeeded | ObligationDue


class SamlIdp:
    """The IdP: metadata, AuthnRequest handling and response issuing."""

    def __init__(
        self,
        *,
        issuer: str,
        providers: ServiceProviders,
        credentials: IdpCredentials,
        state: StateStore,
        master_key: MasterKey,
        access: AccessGate,
        participants: Participants,
        audit: Callable[[AuditEvent], object],
        organisation_name: Callable[[str], str | None],
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.base = issuer
        self.providers = providers
        self.credentials = credentials
        self.participants = participants
        self._state = state
        self._master = master_key
        self._access = access
        self._audit = audit
        self._organisation_name = organisation_name
        self._clock = clock
        self._issuers: dict[str, ResponseIssuer] = {}
        self._lock = threading.Lock()
        self._metadata: tuple[tuple[str, ...], float, bytes] | None = None

    # --- URLs ----------------------------------------------------------------------------

    @property
    def entity_id(self) -> str:
        return f"{self.base}/saml/metadata"

    @property
    def sso_url(self) -> str:
        return f"{self.base}/saml/sso"

    @property
    def slo_url(self) -> str:
        return f"{self.base}/saml/slo"

    # --- signing ----------------------------------------------------------------------------

    def issuer_for(self, credential: Credential) -> ResponseIssuer:
        """Return the ResponseIssuer of ``credential`` (built once per key)."""
        found = self._issuers.get(credential.kid)
        if found is None:
            with self._lock:
                found = self._issuers.get(credential.kid) or ResponseIssuer(credential.key_pem, credential.cert_pem)
                self._issuers = {credential.kid: found}  # only the current key signs
        return found

    def signer(self) -> tuple[Credential, ResponseIssuer]:
        """Return the current credential and its issuer."""
        credential = self.credentials.current()
        return credential, self.issuer_for(credential)

    # --- metadata (SAML Metadata §2.4.3) ------------------------------------------------------

    def metadata(self) -> bytes:
        """Return the IdP's signed EntityDescriptor: SSO and SLO endpoints (Redirect, POST), the
        NameID formats offered, and the current and next signing certificates (rollover)."""
        import time

        published = self.credentials.published()
        kids = tuple(c.kid for c in published)
        cached = self._metadata
        if cached is not None and cached[0] == kids and time.monotonic() - cached[1] < METADATA_CACHE_SECONDS:
            return cached[2]
        ident = new_id()
        root = etree.Element(f"{{{MD}}}EntityDescriptor", nsmap={"md": MD, "ds": DS})
        root.set("ID", ident)
        root.set("entityID", self.entity_id)
        root.set("validUntil", saml_time(self._clock() + METADATA_VALIDITY))
        idp = etree.SubElement(root, f"{{{MD}}}IDPSSODescriptor")
        idp.set("protocolSupportEnumeration", "urn:oasis:names:tc:SAML:2.0:protocol")
        idp.set("WantAuthnRequestsSigned", "false")  # required per SP (its metadata or our settings)
        for credential in published:
            key = etree.SubElement(idp, f"{{{MD}}}KeyDescriptor", use="signing")
            data = etree.SubElement(etree.SubElement(key, f"{{{DS}}}KeyInfo"), f"{{{DS}}}X509Data")
            etree.SubElement(data, f"{{{DS}}}X509Certificate").text = credential.cert_b64
        for binding in (BINDING_REDIRECT, BINDING_POST):
            etree.SubElement(idp, f"{{{MD}}}SingleLogoutService", Binding=binding, Location=self.slo_url)
        for fmt in (nameid.PERSISTENT, nameid.TRANSIENT, nameid.EMAIL):
            etree.SubElement(idp, f"{{{MD}}}NameIDFormat").text = fmt
        for binding in (BINDING_REDIRECT, BINDING_POST):
            etree.SubElement(idp, f"{{{MD}}}SingleSignOnService", Binding=binding, Location=self.sso_url)
        _, issuer = self.signer()
        signed = issuer.sign_xml(etree.tostring(root, xml_declaration=True, encoding="UTF-8"), ident)
        self._metadata = (kids, time.monotonic(), signed)
        return signed

    # --- SP-initiated SSO ---------------------------------------------------------------------

    def receive(self, message: InboundMessage, *, ip: str | None) -> PendingSaml:
        """Check an AuthnRequest; return it pending the person's session.

        Raises RequestRefused (audited) for anything that must not get a response: bad XML,
        unknown SP, bad or missing required signature, an ACS not in metadata, a stale or
        misaddressed request, a replayed request ID.
        """
        sp_id: str | None = None
        try:
            try:
                facts = inspect_document(message.xml)
            except FederationError as exc:
                raise RequestRefused(f"the request is not acceptable XML: {exc.reason}") from None
            request = read(facts)
            sp_id = request.issuer
            sp = self.providers.get(request.issuer)
            if sp is None:
                raise RequestRefused("the request comes from a service that is not registered", sp=request.issuer)
            signed = check_signature(message, facts, request, sp)
            request = dataclasses.replace(request, signed=signed)
            check_timing_and_destination(request, self.sso_url, self._clock())
            acs = choose_acs(request, sp)
            replay_key = hashlib.sha256(f"{sp.entity_id}\x00{request.id}".encode()).hexdigest()
            if not self._state.add(REPLAY_NAMESPACE, replay_key, {}, REPLAY_TTL_SECONDS):
                raise RequestRefused("the request ID has been used before (replay)", sp=sp.entity_id)
        except RequestRefused as exc:
            self._audit(AuditEvent("saml_authn_request", "failure", client_id=(exc.sp or sp_id or "")[:128] or None, ip=ip,
                                   details={"reason": exc.reason, "binding": message.binding}))
            raise
        except BrokerError as exc:  # the SP's metadata could not be read
            self._audit(AuditEvent("saml_authn_request", "failure", client_id=(sp_id or "")[:128] or None, ip=ip,
                                   details={"reason": exc.message, "binding": message.binding}))
            raise
        self._audit(AuditEvent("saml_authn_request", "success", client_id=sp.entity_id[:128], ip=ip,
                               details={"id": request.id, "binding": message.binding, "signed": signed,
                                        "force_authn": request.force_authn, "is_passive": request.is_passive}))
        return PendingSaml(sp.entity_id, request, acs.location, message.relay_state, self._clock())

    def idp_initiated(self, sp_entity_id: str, relay_state: str | None, *, ip: str | None) -> PendingSaml:
        """Return a pending unsolicited sign-in to ``sp_entity_id`` (its default ACS).

        Raises RequestRefused (audited) for an unknown SP or one that does not allow it.
        """
        sp = self.providers.get(sp_entity_id)
        reason = None
        if sp is None:
            reason = "the service is not registered"
        elif not sp.config.idp_initiated:
            reason = "the service does not accept sign-in started at the broker"
        if reason is not None or sp is None:
            self._audit(AuditEvent("saml_idp_initiated", "failure", client_id=sp_entity_id[:128] or None, ip=ip,
                                   details={"reason": reason}))
            raise RequestRefused(reason or "", sp=sp_entity_id)
        return PendingSaml(sp.entity_id, None, default_acs(sp).location, relay_state, self._clock())

    def pending_provider(self, pending: PendingSaml) -> ServiceProvider:
        """Return the SP of ``pending``. Raises RequestRefused if it was removed meanwhile."""
        sp = self.providers.get(pending.sp_entity_id)
        if sp is None or pending.acs_url not in {e.location for e in sp.metadata.assertion_consumers}:
            self._audit(AuditEvent("saml_authn_request", "failure", client_id=pending.sp_entity_id[:128],
                                   details={"reason": "the service or its ACS was removed while the person signed in"}))
            raise RequestRefused("the service is no longer registered at this address", sp=pending.sp_entity_id)
        return sp

    def answer(self, pending: PendingSaml, session: SsoSession | None, *, ip: str | None) -> Outcome:
        """Decide what happens to ``pending`` for ``session``.

        Returns ``LoginNeeded`` (no session, or ForceAuthn and the sign-in predates the request),
        ``ObligationDue`` (step-up for RequestedAuthnContext or a policy obligation), or
        ``PostTo`` the ACS carrying a signed response: Success, or an error status —
        NoPassive (IsPassive and the person would have to act), NoAuthnContext (the requested
        context cannot be reached), InvalidNameIDPolicy, RequestDenied (policy denies and the
        request is passive). Raises AccessDenied (audited) so the person sees why.
        """
        sp = self.pending_provider(pending)
        request = pending.request
        passive = bool(request and request.is_passive)
        if session is None or (request is not None and request.force_authn
                               and session.identity.authn.authenticated_at < pending.received_at):
            # ForceAuthn (SAML Core §3.4.1): a sign-in that predates the request does not count.
            if passive:
                return self._error(sp, pending, RESPONDER, STATUS + "NoPassive", "the person is not signed in", ip)
            return LoginNeeded()
        achieved = session.identity.authn.assurance
        if request is not None and request.requested_refs:
            outcome = authn_context.evaluate(request.requested_refs, request.comparison, achieved,
                                             sp.config.authn_context_class_refs)
            if outcome.action == "refuse":
                return self._error(sp, pending, RESPONDER, STATUS + "NoAuthnContext",
                                   "the requested authentication context cannot be provided", ip)
            if outcome.action == "step_up" and outcome.level is not None:
                if passive:
                    return self._error(sp, pending, RESPONDER, STATUS + "NoPassive", "a stronger sign-in is needed", ip)
                return ObligationDue(StepUpRequired(outcome.level, sp.name))
        try:
            fmt = nameid.choose_format(request.name_id_format if request else None, sp.config.name_id_format)
        except nameid.NameIdPolicyError as exc:
            return self._error(sp, pending, REQUESTER, STATUS + "InvalidNameIDPolicy", str(exc), ip)
        try:
            grant = self._check_access(session, sp, ip)
        except ObligationPending as exc:
            if passive:
                return self._error(sp, pending, RESPONDER, STATUS + "NoPassive", "the person must act first", ip)
            return ObligationDue(exc)
        except AccessDenied:
            if passive:
                return self._error(sp, pending, RESPONDER, STATUS + "RequestDenied", "access denied", ip)
            raise
        return self._issue(sp, pending, session, fmt, grant, ip)

    def no_authn_context(self, pending: PendingSaml, *, ip: str | None) -> PostTo:
        """Return the NoAuthnContext error for a step-up the person cannot make here (e.g. AAL3
        without an upstream that provides it)."""
        sp = self.pending_provider(pending)
        return self._error(sp, pending, RESPONDER, STATUS + "NoAuthnContext",
                           "the requested authentication context cannot be provided", ip)

    # --- helpers ------------------------------------------------------------------------------

    def _check_access(self, session: SsoSession, sp: ServiceProvider, ip: str | None) -> AccessGrant:
        # The gate maps a configured SP's entity id to its policy service (settings); an SP added
        # with the CLI is not in the settings, so it is named by its service id directly.
        gate_id = sp.entity_id if sp.origin == "config" else sp.config.service_id
        try:
            grant = self._access.check(session.identity, gate_id, sp.name)
        except BrokerError as exc:
            self._audit(AuditEvent("access_decision", "denied", actor=session.subject_id, client_id=sp.entity_id[:128], ip=ip,
                                   details={"reason": exc.code.value, "policy_ids": list(getattr(exc, "policy_ids", ())),
                                            "protocol": "saml"}))
            raise
        self._audit(AuditEvent("access_decision", "permitted", actor=session.subject_id, client_id=sp.entity_id[:128], ip=ip,
                               details={"policy_ids": list(grant.policy_ids), "protocol": "saml",
                                        "released": sorted(grant.released) if grant.released is not None else None}))
        return grant

    def _issue(self, sp: ServiceProvider, pending: PendingSaml, session: SsoSession, fmt: str, grant: AccessGrant,
               ip: str | None) -> PostTo:
        identity = session.identity
        value = nameid.name_id(fmt, master=self._master, sector=sp.config.sector or sp.entity_id,
                               subject_id=session.subject_id, email=identity.text("email"))
        session_index = self._master.keyed_hash("saml-session-index", f"{session.sid}\x00{sp.entity_id}")[:40]
        attributes = released_attributes(identity, self._organisation_name(identity.organisation), grant, sp)
        now = self._clock()
        lifetime = dt.timedelta(seconds=sp.config.assertion_lifetime_seconds)
        encrypt = sp.metadata.encryption_certificate_pem if sp.config.encrypt_assertion else None
        spec = AssertionSpec(
            issuer=self.entity_id,
            sp_entity_id=sp.entity_id,
            acs_url=pending.acs_url,
            in_response_to=pending.request.id if pending.request else None,
            name_id=value,
            name_id_format=fmt,
            sp_name_qualifier=sp.entity_id if fmt == nameid.PERSISTENT else None,
            authn_instant=identity.authn.authenticated_at,
            session_index=session_index,
            authn_context_class_ref=authn_context.class_ref(identity.authn.assurance, sp.config.authn_context_class_refs),
            attributes=attributes,
            not_on_or_after=min(now + lifetime, session.expires_at),
            one_time_use=sp.config.one_time_use,
            sign_assertion=sp.config.sign_assertion or sp.metadata.want_assertions_signed,
            sign_response=sp.config.sign_response,
            encrypt_to_cert_pem=encrypt,
        )
        _, issuer = self.signer()
        xml = issuer.issue(spec)
        self.participants.record(Participant(session.sid, sp.entity_id, session.subject_id, value, fmt, session_index))
        self._audit(AuditEvent("saml_assertion_issued", "success", actor=session.subject_id, client_id=sp.entity_id[:128],
                               ip=ip, details={"sid": session.sid, "in_response_to": spec.in_response_to,
                                               "name_id_format": fmt, "acr": spec.authn_context_class_ref,
                                               "attributes": [a.name for a in attributes], "encrypted": encrypt is not None}))
        return self._post(pending, xml)

    def _error(self, sp: ServiceProvider, pending: PendingSaml, status: str, sub_status: str, message: str,
               ip: str | None) -> PostTo:
        _, issuer = self.signer()
        xml = issuer.error(self.entity_id, pending.acs_url, pending.request.id if pending.request else None,
                           status, sub_status, message)
        self._audit(AuditEvent("saml_authn_request", "refused", client_id=sp.entity_id[:128], ip=ip,
                               details={"status": sub_status.rsplit(":", 1)[-1], "reason": message}))
        return self._post(pending, xml)

    @staticmethod
    def _post(pending: PendingSaml, xml: bytes) -> PostTo:
        fields = {"SAMLResponse": encode_post(xml)}
        if pending.relay_state is not None:
            fields["RelayState"] = pending.relay_state
        return PostTo(pending.acs_url, fields)

