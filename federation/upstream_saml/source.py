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
import datetime as dt
import hashlib
import threading
from collections.abc import Mapping
from typing import Any, Protocol

from federation.errors import FederationError, FederationErrorCode
from federation.identity import AssuranceLevel, Identity
from federation.sources import UpstreamRequest, UpstreamStart
from federation.upstream_saml import sp
from federation.upstream_saml.keys import KeyStore, SpKeys, materialise_set
from federation.upstream_saml.mapping import AttributeRules, assurance, to_identity
from federation.upstream_saml.metadata import IdpMetadata, MetadataHolder
from federation.upstream_saml.profile import Expectations, check_response
from federation.upstream_saml.xmlsecurity import inspect_document, verify_with_any

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
                 requested: Mapping[AssuranceLevel, str], key_store: KeyStore | None = None) -> None:
        self._id = source_id
        self._organisation = organisation
        self._display_name = display_name
        self.sp_entity_id = sp_entity_id
        self.acs_url = acs_url
        self._keys = keys
        self._key_store = key_store
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
        """Verify the POSTed ``SAMLResponse`` against the kept ``state``; return the identity.

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
        return to_identity(verified, self._rules, metadata.entity_id)
