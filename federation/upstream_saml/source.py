"""An upstream SAML 2.0 IdP as a CallbackSource (Web Browser SSO profile, SAML Profiles §4.1).

``start`` sends a signed AuthnRequest with HTTP-Redirect and keeps its ID in the state the
broker binds to this browser; ``finish`` takes the HTTP-POST response and accepts it only
if it answers that ID (so a response stolen from another browser's sign-in is refused),
passes pysaml2's verification and our profile checks, and its assertion ID has not been
seen before (a replay cache shared by every instance, kept until the assertion expires).
RelayState is never sent and never followed. With ``ForceAuthn`` (step-up) the
``AuthnInstant`` must not predate the request (SAML Core §3.4.1: the IdP MUST authenticate
the presenter directly rather than rely on a previous context), and the mapped level must
reach the one asked for.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import hashlib
import secrets
import threading
from xml.etree import ElementTree
from collections.abc import Mapping
from typing import Any, Protocol

from federation.errors import FederationError, FederationErrorCode
from federation.identity import AssuranceLevel, Identity
from federation.sources import UpstreamLogoutNotice, UpstreamRequest, UpstreamSession, UpstreamStart
from federation.upstream_saml import redirect
from federation.upstream_saml import sp
from federation.upstream_saml.keys import KeyStore, SpKeys, materialise_set
from federation.upstream_saml.mapping import AttributeRules, assurance, to_identity
from federation.upstream_saml.metadata import IdpMetadata, MetadataHolder
from federation.upstream_saml.profile import Expectations, check_response
from federation.upstream_saml.xmlsecurity import SAML, SAMLP, inspect_document, parse_document, verify_with_any

REPLAY_NAMESPACE = "saml-assertion"
RESPONSE_NODE = "urn:oasis:names:tc:SAML:2.0:protocol:Response"
MAX_RESPONSE_CHARS = 700_000


class ReplayCache(Protocol):
    """The part of the broker's StateStore a replay cache needs: ``add`` is atomic and
    returns False when the key is already present (and unexpired)."""

    def add(self, namespace: str, key: str, value: dict[str, Any], ttl_seconds: int) -> bool:
        """Store ``value`` unless the key exists; return True if stored."""
        ...


def _refuse(reason: str) -> FederationError:
    return FederationError(FederationErrorCode.INVALID_TOKEN, reason)


class SamlSource:
    """One upstream SAML IdP; implements ``CallbackSource``."""

    def __init__(self, *, source_id: str, organisation: str, display_name: str, sp_entity_id: str, acs_url: str,
                 keys: SpKeys, metadata: MetadataHolder, signed: str, allow_unsolicited: bool,
                 want_encrypted: bool, clock_skew_seconds: int, rules: AttributeRules,
                 requested: Mapping[AssuranceLevel, str], key_store: KeyStore | None = None,
                 slo_url: str | None = None) -> None:
        self._id = source_id
        self._organisation = organisation
        self._display_name = display_name
        self.sp_entity_id = sp_entity_id
        self.acs_url = acs_url
        self._keys = keys
        self._key_store = key_store
        self.slo_url = slo_url
        self._key_set = None
        self._metadata = metadata
        self._signed = signed
        self._allow_unsolicited = allow_unsolicited
        self._want_encrypted = want_encrypted
        self._skew = dt.timedelta(seconds=clock_skew_seconds)
        self._rules = rules
        self._requested = dict(requested)
        self._replay: ReplayCache | None = None
        self._lock = threading.Lock()
        self._client: tuple[IdpMetadata, sp.BrokerSp] | None = None
        self._client_keys = ""

    @property
    def accepts_unsolicited(self) -> bool:
        """True if this IdP is enabled for IdP-initiated (unsolicited) responses (SAML Profiles §4.1.5)."""
        return self._allow_unsolicited

    @property
    def id(self) -> str:
        """The source's id from configuration."""
        return self._id

    @property
    def organisation(self) -> str:
        """The member organisation this IdP signs people in for."""
        return self._organisation

    @property
    def display_name(self) -> str:
        """What people choose on the organisation list."""
        return self._display_name

    def use_replay_cache(self, cache: ReplayCache) -> None:
        """Give the source the broker's shared replay cache (without one, ``finish`` refuses everything)."""
        self._replay = cache

    def _current_keys(self) -> SpKeys:
        """Our keys now: for generated keys, re-read when the store was rotated (one stat per call)."""
        if self._key_store is None:
            return self._keys
        keys = self._key_store.current()
        if keys != self._key_set:
            self._keys, self._key_set = materialise_set(self._id, keys), keys
        return self._keys

    def rotate_keys(self, *, max_age_days: int | None = None) -> bool:
        """Roll our SP keys over (``max_age_days``: only if the current ones are older); return True
        if they were rotated. Raises FederationError(MISCONFIGURED) for configured keys (``sp_key``),
        which the operator rotates by replacing them."""
        if self._key_store is None:
            raise FederationError(FederationErrorCode.MISCONFIGURED,
                                  f"source {self._id}: its SP key is configured (sp_key); replace it to rotate")
        if max_age_days is None:
            self._key_store.rotate()
            return True
        return self._key_store.rotate_if_due(dt.timedelta(days=max_age_days)) is not None

    def _sp(self) -> tuple[IdpMetadata, sp.BrokerSp]:
        """Return (current IdP metadata, the pysaml2 client built on it), rebuilt when metadata or our keys change."""
        metadata = self._metadata.current()
        with self._lock:
            keys = self._current_keys()
            if self._client is None or self._client[0] is not metadata or self._client_keys != keys.version:
                self._client_keys = keys.version
                self._client = (metadata, sp.build_client(
                    entity_id=self.sp_entity_id, acs_url=self.acs_url, keys=keys, idp=metadata,
                    signed=self._signed, allow_unsolicited=self._allow_unsolicited,
                    clock_skew_seconds=int(self._skew.total_seconds()), display_name=self._display_name,
                    slo_url=self.slo_url,
                ))
            return self._client

    def sp_metadata(self) -> bytes:
        """Return our signed SP metadata (for the IdP's administrators and ``/saml/sp/<id>``)."""
        with self._lock:
            keys = self._current_keys()
        _, client = self._sp()
        return sp.sp_metadata(client, keys)

    def _class_refs(self, level: AssuranceLevel | None) -> tuple[str, ...]:
        if level is None:
            return ()
        refs = tuple(ref for aal, ref in sorted(self._requested.items()) if aal >= level)
        if not refs:
            raise FederationError(
                FederationErrorCode.MISCONFIGURED,
                f"no AuthnContextClassRef is configured for {level.name} or above (requested_authn_context)",
            )
        return refs

    def start(self, request: UpstreamRequest) -> UpstreamStart:
        """Return the redirect carrying a signed AuthnRequest and the state to keep (its ID)."""
        if request.callback_url != self.acs_url:
            raise FederationError(FederationErrorCode.MISCONFIGURED, "the callback URL is not the SP's ACS")
        metadata, client = self._sp()
        request_id, url = sp.authn_request(
            client, metadata, acs_url=self.acs_url, force_authn=request.force_authn,
            class_refs=self._class_refs(request.min_assurance),
        )
        state = {"request_id": request_id, "idp": metadata.entity_id,
                 "min_assurance": request.min_assurance.value if request.min_assurance else None,
                 "force_authn": request.force_authn, "started_at": int(dt.datetime.now(dt.UTC).timestamp())}
        return UpstreamStart(url=url, state=state)

    def finish(self, params: Mapping[str, str], state: Mapping[str, Any], callback_url: str) -> Identity:
        """Verify the POSTed ``SAMLResponse`` against the kept ``state``; return the identity (see ``finish_session``)."""
        return self.finish_session(params, state, callback_url)[0]

    def finish_session(self, params: Mapping[str, str], state: Mapping[str, Any],
                       callback_url: str) -> tuple[Identity, UpstreamSession]:
        """Verify the POSTed ``SAMLResponse`` against the kept ``state``; return the identity and the
        IdP's session (NameID and SessionIndex for logout; ``SessionNotOnOrAfter`` bounds it).

        Raises FederationError(INVALID_TOKEN) for anything unsigned, forged, replayed,
        expired, misaddressed or answering another request; SOURCE_UNAVAILABLE when
        metadata or the replay cache is missing.
        """
        if self._replay is None:
            raise FederationError(FederationErrorCode.SOURCE_UNAVAILABLE, "no replay cache: assertions cannot be accepted")
        if callback_url != self.acs_url:
            raise _refuse("the response did not arrive at our assertion consumer service")
        encoded = params.get("SAMLResponse", "")
        if not encoded or len(encoded) > MAX_RESPONSE_CHARS:
            raise _refuse("no SAMLResponse, or one too large")
        try:
            document = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise _refuse("SAMLResponse is not base64") from None
        facts = inspect_document(document)
        request_id = state.get("request_id") if isinstance(state.get("request_id"), str) else None
        metadata, client = self._sp()
        if state.get("idp") not in (None, metadata.entity_id):
            raise _refuse("the sign-in was started with another IdP")
        try:
            response = client.consume(encoded, request_id)
        except FederationError:
            raise
        except Exception as exc:  # noqa: BLE001 - pysaml2 raises many types; none may escape unaudited
            raise _refuse(f"pysaml2 refused the response ({type(exc).__name__})") from None
        if response is None:
            raise _refuse("pysaml2 found the response invalid (destination, status or issue instant)")
        if facts.encrypted:
            inspect_document(response.xmlstr)  # the decrypted assertion obeys the same signature rules
        if self._signed == "assertion_or_response" and facts.root.get("ID") in facts.signed_ids:
            # A Response signature that is there must verify. pysaml2 7.5 refuses a bad one too,
            # but its parser retries "without requiring" it; this keeps the rule ours (fail closed).
            verify_with_any(document, RESPONSE_NODE, metadata.signing_certificates)
        now = dt.datetime.now(dt.UTC)
        verified = check_response(response, facts, Expectations(
            idp_entity_id=metadata.entity_id, sp_entity_id=self.sp_entity_id, acs_url=self.acs_url,
            request_id=request_id, allow_unsolicited=self._allow_unsolicited, signed=self._signed,
            want_encrypted=self._want_encrypted, clock_skew=self._skew,
        ), now)
        started_at = state.get("started_at")
        if state.get("force_authn") and isinstance(started_at, int) and (
            verified.authn_instant < dt.datetime.fromtimestamp(started_at, dt.UTC) - self._skew
        ):
            raise _refuse("ForceAuthn was asked but the IdP did not authenticate the person again (AuthnInstant)")
        wanted = state.get("min_assurance")
        if isinstance(wanted, int) and assurance(verified, self._rules) < wanted:
            raise _refuse("the IdP authenticated the person below the assurance level asked for")
        ttl = max(1, int((verified.replay_until - now).total_seconds()) + 1)
        key = hashlib.sha256(f"{metadata.entity_id}\x00{verified.assertion_id}".encode()).hexdigest()
        if not self._replay.add(REPLAY_NAMESPACE, key, {"source": self._id}, ttl):
            raise _refuse("assertion replayed (its ID was seen before)")
        if verified.session_not_on_or_after is not None and verified.session_not_on_or_after <= now:
            raise _refuse("the IdP's session ended already (SessionNotOnOrAfter)")
        name_id = {k: v for k, v in (("value", verified.name_id), ("format", verified.name_id_format),
                                     ("name_qualifier", verified.name_qualifier),
                                     ("sp_name_qualifier", verified.sp_name_qualifier)) if v}
        session = UpstreamSession(
            source=self._id, subject=verified.name_id or "", authenticated_at=verified.authn_instant,
            session_id=verified.session_index, name_id=name_id or None, not_after=verified.session_not_on_or_after,
        )
        return to_identity(verified, self._rules, metadata.entity_id), session

    # --- single logout ------------------------------------------------------------------------

    def logout_url(self, session: UpstreamSession, *, return_url: str, state: str) -> str | None:
        """A signed LogoutRequest (SAML Core §3.7.1) for ``session`` to the IdP's HTTP-Redirect
        SingleLogoutService with RelayState ``state``; the IdP answers at our SLO endpoint (not
        ``return_url``). None if the IdP declares no SLO, or the sign-in recorded no NameID."""
        metadata, _ = self._sp()
        if metadata.slo_redirect_url is None or self.slo_url is None or not session.name_id:
            return None
        now = dt.datetime.now(dt.UTC)
        root = ElementTree.Element(f"{{{SAMLP}}}LogoutRequest", {
            "ID": logout_request_id(state), "Version": "2.0", "IssueInstant": _saml_time(now),
            "Destination": metadata.slo_redirect_url, "NotOnOrAfter": _saml_time(now + LOGOUT_SKEW)})
        ElementTree.SubElement(root, f"{{{SAML}}}Issuer").text = self.sp_entity_id
        attributes = {name: session.name_id[key] for key, name in (("format", "Format"), ("name_qualifier", "NameQualifier"),
                                                                     ("sp_name_qualifier", "SPNameQualifier"))
                      if session.name_id.get(key)}
        ElementTree.SubElement(root, f"{{{SAML}}}NameID", attributes).text = session.name_id.get("value", session.subject)
        if session.session_id:
            ElementTree.SubElement(root, f"{{{SAMLP}}}SessionIndex").text = session.session_id
        query = redirect.encode("SAMLRequest", ElementTree.tostring(root), state, self._current_keys().signing.key_pem)
        return metadata.slo_redirect_url + ("&" if "?" in metadata.slo_redirect_url else "?") + query

    def read_logout_message(self, raw_query: bytes) -> LogoutMessage:
        """Verify a LogoutRequest or LogoutResponse the IdP sent to our SLO endpoint (HTTP-Redirect).

        Checks: signed by the IdP's metadata key (``xmlsecurity.verify_query``: RSA/ECDSA, SHA-256+), Issuer the IdP, Destination our
        SLO URL, IssueInstant and NotOnOrAfter within bounds, a plain NameID (requests); for a
        response, InResponseTo the ID of the request we sent with its RelayState.
        Raises FederationError(INVALID_TOKEN) with the reason.
        """
        metadata, _ = self._sp()
        message = redirect.decode(raw_query)
        redirect.verify(message, metadata.signing_certificates)
        root = parse_document(message.xml)
        expected_tag = f"{{{SAMLP}}}{'LogoutRequest' if message.kind == 'SAMLRequest' else 'LogoutResponse'}"
        if root.tag != expected_tag:
            raise _refuse(f"expected {expected_tag.split('}')[1]}")
        if root.get("Version") != "2.0" or not root.get("ID"):
            raise _refuse("not a SAML 2.0 message with an ID")
        if (root.findtext(f"{{{SAML}}}Issuer") or "").strip() != metadata.entity_id:
            raise _refuse("the logout message's Issuer is not the configured IdP")
        if root.get("Destination") != self.slo_url:
            raise _refuse("the logout message is not addressed to our SingleLogoutService (Destination)")
        now = dt.datetime.now(dt.UTC)
        try:
            issued = dt.datetime.fromisoformat(str(root.get("IssueInstant")).replace("Z", "+00:00"))
        except ValueError:
            raise _refuse("IssueInstant missing or malformed") from None
        if abs(now - issued) > LOGOUT_SKEW + self._skew:
            raise _refuse("IssueInstant is too far from now")
        if message.kind == "SAMLResponse":
            if not message.relay_state or root.get("InResponseTo") != logout_request_id(message.relay_state):
                raise _refuse("InResponseTo is not the logout request we sent")
            status = root.find(f"{{{SAMLP}}}Status/{{{SAMLP}}}StatusCode")
            return LogoutMessage("response", message.relay_state,
                                 success=status is not None and status.get("Value") == STATUS_SUCCESS)
        not_after = root.get("NotOnOrAfter")
        expires = now + LOGOUT_SKEW
        if not_after:
            try:
                expires = dt.datetime.fromisoformat(not_after.replace("Z", "+00:00"))
            except ValueError:
                raise _refuse("NotOnOrAfter malformed") from None
            if expires + self._skew <= now:
                raise _refuse("the logout request has expired (NotOnOrAfter)")
        name_id = root.find(f"{{{SAML}}}NameID")
        if name_id is None or not (name_id.text or "").strip():
            raise _refuse("the logout request names no one (an EncryptedID is not accepted)")
        indexes = [(e.text or "").strip() for e in root.findall(f"{{{SAMLP}}}SessionIndex") if (e.text or "").strip()]
        if len(indexes) > 1:
            raise _refuse("more than one SessionIndex")
        notice = UpstreamLogoutNotice(source=self._id, subject=name_id.text.strip(),
                                      session_id=indexes[0] if indexes else None,
                                      token_id=str(root.get("ID")), expires_at=expires.timestamp())
        return LogoutMessage("request", message.relay_state, notice=notice, request_id=str(root.get("ID")))

    def logout_response_url(self, request_id: str, relay_state: str | None, *, status: str) -> str | None:
        """Our signed LogoutResponse to the IdP's SingleLogoutService (answering ``request_id``), or None
        if the IdP declares none."""
        metadata, _ = self._sp()
        if metadata.slo_response_url is None:
            return None
        root = ElementTree.Element(f"{{{SAMLP}}}LogoutResponse", {
            "ID": "_" + secrets.token_hex(20), "Version": "2.0", "IssueInstant": _saml_time(dt.datetime.now(dt.UTC)),
            "Destination": metadata.slo_response_url, "InResponseTo": request_id})
        ElementTree.SubElement(root, f"{{{SAML}}}Issuer").text = self.sp_entity_id
        code = ElementTree.SubElement(ElementTree.SubElement(root, f"{{{SAMLP}}}Status"), f"{{{SAMLP}}}StatusCode",
                                      {"Value": STATUS_SUCCESS if status == STATUS_SUCCESS else STATUS_REQUESTER})
        if status not in (STATUS_SUCCESS, STATUS_REQUESTER):
            ElementTree.SubElement(code, f"{{{SAMLP}}}StatusCode", {"Value": status})
        query = redirect.encode("SAMLResponse", ElementTree.tostring(root), relay_state, self._current_keys().signing.key_pem)
        return metadata.slo_response_url + ("&" if "?" in metadata.slo_response_url else "?") + query


# --- single logout with the IdP (SAML Profiles §4.4, HTTP-Redirect) ---------------------------------

LOGOUT_SKEW = dt.timedelta(minutes=5)
STATUS_SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
STATUS_REQUESTER = "urn:oasis:names:tc:SAML:2.0:status:Requester"
STATUS_UNKNOWN_PRINCIPAL = "urn:oasis:names:tc:SAML:2.0:status:UnknownPrincipal"


@dataclasses.dataclass(frozen=True, slots=True)
class LogoutMessage:
    """A verified logout message from the IdP: a ``request`` (``notice`` says whom to sign out,
    ``request_id`` what to answer) or a ``response`` to ours (``success``)."""

    kind: str
    relay_state: str | None
    notice: UpstreamLogoutNotice | None = None
    request_id: str | None = None
    success: bool = False


def logout_request_id(state: str) -> str:
    """The ID of our LogoutRequest sent with RelayState ``state`` (so the response's InResponseTo
    is checked without keeping anything more than the state)."""
    return "_" + hashlib.sha256(f"slo\x00{state}".encode()).hexdigest()[:40]


def _saml_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
