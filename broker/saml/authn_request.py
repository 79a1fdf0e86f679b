"""Reading and checking an AuthnRequest (SAML Core §3.4.1; Profiles §4.1.4.1; Bindings §3.4.5, §3.5.5).

Every check that decides where a response may go happens here, before anything is sent:
the issuer must be a registered SP, the signature (when present, and always when the SP or
its metadata requires it) must verify with a key from the SP's metadata, and the ACS must
be one its metadata lists. Until then every refusal is a page, never a response.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from broker.saml.bindings import BindingError, InboundMessage, verify_redirect_signature
from broker.saml.registry import ServiceProvider
from broker.saml.sp_metadata import BINDING_POST, Endpoint
from federation.errors import FederationError
from federation.upstream_saml.xmlsecurity import SAML, SAMLP, DocumentFacts, verify_with_any

CLOCK_SKEW = dt.timedelta(minutes=3)
MAX_AGE = dt.timedelta(minutes=10)
AUTHN_REQUEST_NODE = "urn:oasis:names:tc:SAML:2.0:protocol:AuthnRequest"


class RequestRefused(Exception):
    """An AuthnRequest that gets no SAML response (page only); ``reason`` is audited and shown."""

    def __init__(self, reason: str, *, sp: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.sp = sp


@dataclasses.dataclass(frozen=True, slots=True)
class AuthnRequest:
    """The parts of an AuthnRequest the IdP acts on."""

    id: str
    issuer: str
    issue_instant: dt.datetime
    destination: str | None
    acs_url: str | None
    acs_index: int | None
    protocol_binding: str | None
    force_authn: bool
    is_passive: bool
    name_id_format: str | None
    requested_refs: tuple[str, ...]
    comparison: str
    signed: bool


def _time(value: str | None) -> dt.datetime:
    if not value:
        raise ValueError("missing")
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _bool(value: str | None) -> bool:
    return value in {"true", "1"}


def read(facts: DocumentFacts) -> AuthnRequest:
    """Return the AuthnRequest in ``facts`` (already through ``inspect_document``).

    Raises RequestRefused for another message type, a missing ID/Issuer/IssueInstant or
    Version other than 2.0 (the issuer is not yet trusted: no response is sent).
    """
    root = facts.root
    if root.tag != f"{{{SAMLP}}}AuthnRequest":
        raise RequestRefused("the message is not an AuthnRequest")
    issuer = root.find(f"{{{SAML}}}Issuer")
    issuer_text = (issuer.text or "").strip() if issuer is not None else ""
    if not issuer_text:
        raise RequestRefused("the AuthnRequest names no Issuer (SAML Profiles §4.1.4.1)")
    if root.get("Version") != "2.0":
        raise RequestRefused("the AuthnRequest is not SAML 2.0", sp=issuer_text)
    ident = root.get("ID") or ""
    if not ident or len(ident) > 256:
        raise RequestRefused("the AuthnRequest has no usable ID", sp=issuer_text)
    try:
        instant = _time(root.get("IssueInstant"))
    except ValueError:
        raise RequestRefused("the AuthnRequest's IssueInstant is missing or not a dateTime", sp=issuer_text) from None
    policy = root.find(f"{{{SAMLP}}}NameIDPolicy")
    context = root.find(f"{{{SAMLP}}}RequestedAuthnContext")
    refs: tuple[str, ...] = ()
    comparison = "exact"
    if context is not None:
        refs = tuple((e.text or "").strip() for e in context.findall(f"{{{SAML}}}AuthnContextClassRef"))
        comparison = context.get("Comparison", "exact")
        if comparison not in {"exact", "minimum", "better", "maximum"}:
            raise RequestRefused("RequestedAuthnContext has an unknown Comparison", sp=issuer_text)
    index = root.get("AssertionConsumerServiceIndex")
    try:
        acs_index = int(index) if index is not None else None
    except ValueError:
        raise RequestRefused("AssertionConsumerServiceIndex is not a number", sp=issuer_text) from None
    return AuthnRequest(
        id=ident,
        issuer=issuer_text,
        issue_instant=instant,
        destination=root.get("Destination"),
        acs_url=root.get("AssertionConsumerServiceURL"),
        acs_index=acs_index,
        protocol_binding=root.get("ProtocolBinding"),
        force_authn=_bool(root.get("ForceAuthn")),
        is_passive=_bool(root.get("IsPassive")),
        name_id_format=policy.get("Format") if policy is not None else None,
        requested_refs=refs,
        comparison=comparison,
        signed=False,
    )


def check_signature(message: InboundMessage, facts: DocumentFacts, request: AuthnRequest, sp: ServiceProvider,
                    node: str = AUTHN_REQUEST_NODE) -> bool:
    """Verify the request's signature with the SP's metadata keys; return whether it was signed.

    Redirect binding: the query-string signature (the XML must then carry none). POST: the
    enveloped signature on the root, through xmlsec1. Raises RequestRefused for a signature
    that does not verify, or none when the SP requires one.
    """
    certificates = sp.metadata.signing_certificates
    root_id = facts.root.get("ID")
    if message.binding == "redirect":
        if facts.signed_ids:
            raise RequestRefused("a Redirect-binding message must not carry an XML signature (SAML Bindings §3.4.4.1)", sp=sp.entity_id)
        if message.signature is not None:
            try:
                ok = verify_redirect_signature(message, certificates)
            except BindingError as exc:
                raise RequestRefused(f"the request's signature was refused: {exc.reason}", sp=sp.entity_id) from None
            if not ok:
                raise RequestRefused("the request's signature does not verify with the service's registered keys", sp=sp.entity_id)
            return True
    elif root_id in facts.signed_ids:
        if not certificates:
            raise RequestRefused("the service's metadata has no signing key to verify its request", sp=sp.entity_id)
        xml = message.xml
        try:
            verify_with_any(xml, node, certificates)
        except FederationError:
            raise RequestRefused("the request's signature does not verify with the service's registered keys", sp=sp.entity_id) from None
        return True
    elif facts.signed_ids:
        raise RequestRefused("the request carries a signature that does not cover it", sp=sp.entity_id)
    if sp.requires_signed_requests:
        raise RequestRefused("the service must sign its requests, and this one is unsigned", sp=sp.entity_id)
    return False


def check_timing_and_destination(request: AuthnRequest, sso_url: str, now: dt.datetime) -> None:
    """Raise RequestRefused for a request issued in the future or over ten minutes ago, or
    sent to another Destination (a signed request must name us: Bindings §3.4.5.2, §3.5.5.2)."""
    if request.issue_instant > now + CLOCK_SKEW or request.issue_instant < now - MAX_AGE:
        raise RequestRefused("the request's IssueInstant is too old or in the future", sp=request.issuer)
    if request.destination is not None and request.destination != sso_url:
        raise RequestRefused("the request was addressed to another Destination", sp=request.issuer)
    if request.signed and request.destination is None:
        raise RequestRefused("a signed request must name its Destination", sp=request.issuer)


def choose_acs(request: AuthnRequest, sp: ServiceProvider) -> Endpoint:
    """Return the ACS to answer (SAML Core §3.4.1, Metadata §2.4.4): the URL asked for if the
    metadata lists it exactly, the index asked for, or the default. Raises RequestRefused otherwise."""
    endpoints = sp.metadata.assertion_consumers
    if request.protocol_binding is not None and request.protocol_binding != BINDING_POST:
        raise RequestRefused("the request asks for a response binding other than HTTP-POST", sp=sp.entity_id)
    if request.acs_url is not None and request.acs_index is not None:
        raise RequestRefused("the request gives both an ACS URL and an ACS index (SAML Core §3.4.1)", sp=sp.entity_id)
    if request.acs_url is not None:
        for endpoint in endpoints:
            if endpoint.location == request.acs_url:
                return endpoint
        raise RequestRefused("the request asks for a response at an address the service's metadata does not list",
                             sp=sp.entity_id)
    if request.acs_index is not None:
        for endpoint in endpoints:
            if endpoint.index == request.acs_index:
                return endpoint
        raise RequestRefused("the request names an ACS index the service's metadata does not list", sp=sp.entity_id)
    return default_acs(sp)


def default_acs(sp: ServiceProvider) -> Endpoint:
    """Return the SP's default ACS: the one marked ``isDefault``, else the first (Metadata §2.2.3)."""
    endpoints = sp.metadata.assertion_consumers
    return next((e for e in endpoints if e.is_default), endpoints[0])


def request_to_json(request: AuthnRequest) -> dict[str, Any]:
    """Return ``request`` as JSON-able data (kept while the person signs in)."""
    data = dataclasses.asdict(request)
    data["issue_instant"] = request.issue_instant.isoformat()
    data["requested_refs"] = list(request.requested_refs)
    return data


def request_from_json(data: dict[str, Any]) -> AuthnRequest:
    """Reverse ``request_to_json``."""
    values = dict(data)
    values["issue_instant"] = dt.datetime.fromisoformat(values["issue_instant"])
    values["requested_refs"] = tuple(values["requested_refs"])
    return AuthnRequest(**values)


