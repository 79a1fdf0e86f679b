"""Single logout (SAML Profiles §4.4; Core §3.7) for the broker's IdP: no Flask.

An SP's LogoutRequest (or the person signing out at the broker) ends the SSO session — the
OIDC applications in it get their back-channel logout through ``broker.oidc.logout`` — and
then every other SAML SP of the session is sent a signed LogoutRequest front-channel, one
after the other (a redirect chain; each LogoutResponse brings the browser back). The chain
ends with the initiator's LogoutResponse, or with our page listing what was signed out.

Inbound logout messages must be signed (Profiles §4.4.4.1: the requester authenticates the
message) with a key from the SP's metadata, name a session the SP is part of, and their IDs
are single use.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from typing import Any

from lxml import etree

from broker.audit import AuditEvent
from broker.saml.authn_request import CLOCK_SKEW, MAX_AGE, RequestRefused, check_signature
from broker.saml.bindings import InboundMessage, encode_post, encode_redirect
from broker.saml.idp import REPLAY_NAMESPACE, REPLAY_TTL_SECONDS, PostTo, SamlIdp
from broker.saml.issuing import new_id, saml_time
from broker.saml.participants import Participant
from broker.saml.registry import ServiceProvider
from broker.saml.sp_metadata import BINDING_POST, BINDING_REDIRECT
from broker.state import StateStore
from broker.storage.types import utcnow
from federation.errors import FederationError
from federation.upstream_saml.xmlsecurity import SAML, SAMLP, inspect_document

SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
PARTIAL = "urn:oasis:names:tc:SAML:2.0:status:PartialLogout"
REQUESTER = "urn:oasis:names:tc:SAML:2.0:status:Requester"
LOGOUT_REQUEST_NODE = "urn:oasis:names:tc:SAML:2.0:protocol:LogoutRequest"
LOGOUT_RESPONSE_NODE = "urn:oasis:names:tc:SAML:2.0:protocol:LogoutResponse"


@dataclasses.dataclass(frozen=True, slots=True)
class RedirectTo:
    """Send the browser to ``url`` (HTTP-Redirect binding, query-string signed)."""

    url: str


Outbound = PostTo | RedirectTo


@dataclasses.dataclass(frozen=True, slots=True)
class LogoutRequestIn:
    """A verified LogoutRequest from an SP."""

    sp: ServiceProvider
    id: str
    name_id: str
    session_indexes: tuple[str, ...]
    relay_state: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class LogoutResponseIn:
    """A verified LogoutResponse from an SP."""

    sp: ServiceProvider
    in_response_to: str
    success: bool


@dataclasses.dataclass
class Chain:
    """The state of one logout across a session's SAML SPs (kept server-side between hops)."""

    sid: str
    queue: list[dict[str, str]]
    signed_out: list[str]
    failed: list[str] = dataclasses.field(default_factory=list)
    current_id: str | None = None
    current_sp: str | None = None
    initiator: dict[str, str | None] | None = None
    frontchannel: list[str] = dataclasses.field(default_factory=list)
    return_to: str | None = None  # an OIDC application's verified post-logout redirect (RP-initiated)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Chain:
        return cls(**data)


class SamlLogout:
    """Reads, checks and writes logout messages; walks the chain."""

    def __init__(self, idp: SamlIdp, state: StateStore, audit: Callable[[AuditEvent], object]) -> None:
        self._idp = idp
        self._state = state
        self._audit = audit

    # --- inbound -------------------------------------------------------------------------------

    def receive(self, message: InboundMessage, *, ip: str | None) -> LogoutRequestIn | LogoutResponseIn:
        """Check a LogoutRequest or LogoutResponse. Raises RequestRefused (audited) for bad XML,
        an unknown SP, a missing or bad signature, a stale, misaddressed or replayed message."""
        sp_id: str | None = None
        try:
            try:
                facts = inspect_document(message.xml)
            except FederationError as exc:
                raise RequestRefused(f"the message is not acceptable XML: {exc.reason}") from None
            root = facts.root
            kind = {f"{{{SAMLP}}}LogoutRequest": "request", f"{{{SAMLP}}}LogoutResponse": "response"}.get(root.tag)
            if kind is None:
                raise RequestRefused("the message is not a LogoutRequest or LogoutResponse")
            issuer = root.find(f"{{{SAML}}}Issuer")
            sp_id = (issuer.text or "").strip() if issuer is not None else ""
            sp = self._idp.providers.get(sp_id)
            if sp is None:
                raise RequestRefused("the message comes from a service that is not registered", sp=sp_id)
            node = LOGOUT_REQUEST_NODE if kind == "request" else LOGOUT_RESPONSE_NODE
            if not check_signature(message, facts, None, sp, node):  # type: ignore[arg-type]
                raise RequestRefused("logout messages must be signed (SAML Profiles §4.4.4.1)", sp=sp.entity_id)
            if root.get("Version") != "2.0" or not root.get("ID"):
                raise RequestRefused("the message is not SAML 2.0 or has no ID", sp=sp.entity_id)
            if root.get("Destination") not in (None, self._idp.slo_url):
                raise RequestRefused("the message was addressed to another Destination", sp=sp.entity_id)
            _check_instant(root.get("IssueInstant"), sp.entity_id)
            replay = hashlib.sha256(f"{sp.entity_id}\x00{root.get('ID')}".encode()).hexdigest()
            if not self._state.add(REPLAY_NAMESPACE, replay, {}, REPLAY_TTL_SECONDS):
                raise RequestRefused("the message ID has been used before (replay)", sp=sp.entity_id)
            if kind == "request":
                name_id = root.find(f"{{{SAML}}}NameID")
                if name_id is None or not (name_id.text or "").strip():
                    raise RequestRefused("the LogoutRequest names no NameID (SAML Core §3.7.1)", sp=sp.entity_id)
                indexes = tuple((e.text or "").strip() for e in root.findall(f"{{{SAMLP}}}SessionIndex"))
                result: LogoutRequestIn | LogoutResponseIn = LogoutRequestIn(
                    sp, str(root.get("ID")), (name_id.text or "").strip(), indexes, message.relay_state)
            else:
                code = root.find(f"{{{SAMLP}}}Status/{{{SAMLP}}}StatusCode")
                result = LogoutResponseIn(sp, root.get("InResponseTo") or "", code is not None and code.get("Value") == SUCCESS)
        except RequestRefused as exc:
            self._audit(AuditEvent("saml_logout_message", "failure", client_id=(exc.sp or sp_id or "")[:128] or None, ip=ip,
                                   details={"reason": exc.reason, "binding": message.binding}))
            raise
        self._audit(AuditEvent("saml_logout_message", "success", client_id=sp.entity_id[:128], ip=ip,
                               details={"kind": kind, "binding": message.binding}))
        return result

    def sessions_for(self, request: LogoutRequestIn) -> list[Participant]:
        """Return the sessions the LogoutRequest's NameID (and SessionIndex) name at its SP."""
        return self._idp.participants.find(request.sp.entity_id, request.name_id, request.session_indexes)

    # --- the chain ---------------------------------------------------------------------------------

    def start(self, sid: str, signed_out: list[str], frontchannel: tuple[str, ...],
              initiator: LogoutRequestIn | None) -> Chain:
        """Return the chain for session ``sid`` (already ended): every SAML SP in it but the initiator."""
        participants = self._idp.participants.in_session(sid)
        self._idp.participants.forget_session(sid)
        queue = [dataclasses.asdict(p) for p in participants if initiator is None or p.sp_entity_id != initiator.sp.entity_id]
        names = list(signed_out)
        if initiator is not None:
            names.append(initiator.sp.name)
        return Chain(
            sid=sid, queue=queue, signed_out=names, frontchannel=list(frontchannel),
            initiator={"sp": initiator.sp.entity_id, "id": initiator.id, "relay_state": initiator.relay_state} if initiator else None,
        )

    def next_hop(self, chain: Chain) -> Outbound | None:
        """Return the LogoutRequest to send to the next SP with a logout endpoint, or None when
        every SP has been asked. SPs without one are listed as not signed out."""
        while chain.queue:
            entry = chain.queue.pop(0)
            sp = self._idp.providers.get(entry["sp_entity_id"])
            if sp is None:
                continue
            endpoint = _endpoint(sp)
            if endpoint is None:
                chain.failed.append(sp.name)
                continue
            request_id = new_id()
            xml = self._logout_request(request_id, sp, entry, endpoint[1])
            chain.current_id, chain.current_sp = request_id, sp.entity_id
            self._audit(AuditEvent("saml_logout_request_sent", "success", actor=entry["subject_id"], client_id=sp.entity_id[:128],
                                   details={"sid": chain.sid}))
            return self._send("SAMLRequest", xml, endpoint, None)
        chain.current_id = chain.current_sp = None
        return None

    def answered(self, chain: Chain, response: LogoutResponseIn) -> bool:
        """Record an SP's LogoutResponse; return False (and change nothing) if it answers
        something else than the request in flight."""
        if chain.current_id is None or response.in_response_to != chain.current_id or response.sp.entity_id != chain.current_sp:
            return False
        (chain.signed_out if response.success else chain.failed).append(response.sp.name)
        chain.current_id = chain.current_sp = None
        return True

    def finish(self, chain: Chain) -> Outbound | None:
        """Return the LogoutResponse to the initiating SP (Success, or PartialLogout if an SP
        was not signed out), or None when the person started at the broker."""
        if chain.initiator is None:
            return None
        sp = self._idp.providers.get(str(chain.initiator["sp"]))
        endpoint = _endpoint(sp) if sp else None
        if sp is None or endpoint is None:
            return None
        status = SUCCESS if not chain.failed else PARTIAL
        xml = self._logout_response(sp, str(chain.initiator["id"]), status, endpoint[2] or endpoint[1])
        return self._send("SAMLResponse", xml, endpoint, chain.initiator.get("relay_state"), response=True)

    def refuse(self, request: LogoutRequestIn, reason: str) -> Outbound | None:
        """Return a Requester LogoutResponse for a request naming no session we know (still signed)."""
        endpoint = _endpoint(request.sp)
        if endpoint is None:
            return None
        xml = self._logout_response(request.sp, request.id, REQUESTER, endpoint[2] or endpoint[1], message=reason)
        return self._send("SAMLResponse", xml, endpoint, request.relay_state, response=True)

    # --- writing -------------------------------------------------------------------------------------

    def _logout_request(self, request_id: str, sp: ServiceProvider, entry: dict[str, str], destination: str) -> bytes:
        root = etree.Element(f"{{{SAMLP}}}LogoutRequest", nsmap={"samlp": SAMLP, "saml": SAML})
        root.set("ID", request_id)
        root.set("Version", "2.0")
        root.set("IssueInstant", saml_time(utcnow()))
        root.set("Destination", destination)
        etree.SubElement(root, f"{{{SAML}}}Issuer").text = self._idp.entity_id
        name_id = etree.SubElement(root, f"{{{SAML}}}NameID", Format=entry["name_id_format"])
        if entry["name_id_format"].endswith(":persistent"):
            name_id.set("SPNameQualifier", sp.entity_id)
        name_id.text = entry["name_id"]
        etree.SubElement(root, f"{{{SAMLP}}}SessionIndex").text = entry["session_index"]
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8")

    def _logout_response(self, sp: ServiceProvider, in_response_to: str, status: str, destination: str,
                         *, message: str | None = None) -> bytes:
        root = etree.Element(f"{{{SAMLP}}}LogoutResponse", nsmap={"samlp": SAMLP, "saml": SAML})
        root.set("ID", new_id())
        root.set("Version", "2.0")
        root.set("IssueInstant", saml_time(utcnow()))
        root.set("Destination", destination)
        root.set("InResponseTo", in_response_to)
        etree.SubElement(root, f"{{{SAML}}}Issuer").text = self._idp.entity_id
        status_el = etree.SubElement(root, f"{{{SAMLP}}}Status")
        etree.SubElement(status_el, f"{{{SAMLP}}}StatusCode", Value=status)
        if message:
            etree.SubElement(status_el, f"{{{SAMLP}}}StatusMessage").text = message
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8")

    def _send(self, kind: str, xml: bytes, endpoint: tuple[str, str, str | None], relay_state: str | None,
              *, response: bool = False) -> Outbound:
        binding, location, response_location = endpoint
        url = (response_location or location) if response else location
        credential, issuer = self._idp.signer()
        if binding == BINDING_POST:
            root_id = etree.fromstring(xml).get("ID")  # noqa: S320 - our own document, just built
            fields = {kind: encode_post(issuer.sign_xml(xml, str(root_id)))}
            if relay_state is not None:
                fields["RelayState"] = relay_state
            return PostTo(url, fields)
        query = encode_redirect(kind, xml, relay_state, credential.key_pem)
        return RedirectTo(f"{url}{'&' if '?' in url else '?'}{query}")


def _endpoint(sp: ServiceProvider) -> tuple[str, str, str | None] | None:
    """Return (binding, location, response location) of the SP's SLO endpoint: POST preferred."""
    for binding in (BINDING_POST, BINDING_REDIRECT):
        for endpoint in sp.metadata.single_logout:
            if endpoint.binding == binding:
                return endpoint.binding, endpoint.location, endpoint.response_location
    return None


def _check_instant(value: str | None, sp_id: str) -> None:
    import datetime as dt

    try:
        instant = dt.datetime.fromisoformat((value or "").replace("Z", "+00:00"))
    except ValueError:
        raise RequestRefused("the message's IssueInstant is missing or not a dateTime", sp=sp_id) from None
    instant = instant if instant.tzinfo else instant.replace(tzinfo=dt.UTC)
    now = utcnow()
    if instant > now + CLOCK_SKEW or instant < now - MAX_AGE:
        raise RequestRefused("the message's IssueInstant is too old or in the future", sp=sp_id)
