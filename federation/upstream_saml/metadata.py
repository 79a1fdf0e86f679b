"""The IdP's metadata (SAML 2.0 Metadata §2): fetched from a URL or read from a file, its
signature checked against a configured certificate, one IdP entity selected, and refreshed
periodically.

Only the selected ``EntityDescriptor`` is given to pysaml2, so a certificate of another
entity in an aggregate can never verify this IdP's responses. Metadata that declares no
signing certificate or no HTTP-Redirect SingleSignOnService is refused: responses could not
be verified, or requests not sent.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from xml.etree import ElementTree

from config.saml_metadata import MetadataOriginConfig
from config.saml_source import IdpMetadataConfig
from federation.errors import FederationError, FederationErrorCode
from federation.upstream_saml.xmlsecurity import (
    MAX_DOCUMENT_BYTES,
    MD,
    XmlSecurity,
    inspect_document,
    parse_document,
    signing_certificates,
)

log = logging.getLogger(__name__)
SAML2_PROTOCOL = "urn:oasis:names:tc:SAML:2.0:protocol"
BINDING_REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
RETRY_SECONDS = 60.0


@dataclasses.dataclass(frozen=True, slots=True)
class IdpMetadata:
    """One IdP as its (verified) metadata describes it."""

    entity_id: str
    entity_xml: str
    sso_redirect_url: str
    signing_certificates: tuple[str, ...]
    valid_until: dt.datetime | None
    slo_redirect_url: str | None = None  # SingleLogoutService, HTTP-Redirect (SAML Profiles §4.4)
    slo_response_url: str | None = None  # its ResponseLocation, else its Location


def _misconfigured(reason: str) -> FederationError:
    return FederationError(FederationErrorCode.MISCONFIGURED, reason)


def _parse_time(value: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(value.strip())
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def parse_idp_metadata(xml: bytes, entity_id: str | None, *, signer_pem: str | None, where: str) -> IdpMetadata:
    """Return the IdP ``entity_id`` (or the only IdP) described by ``xml``.

    With ``signer_pem`` the root must be signed by that certificate. Raises
    FederationError(MISCONFIGURED) with a message naming ``where`` and what is wrong.
    """
    try:
        if signer_pem is not None:
            root = parse_document(xml)
            node = root.tag.replace("{", "").replace("}", ":")
            XmlSecurity().verify_enveloped(xml, node, signer_pem)
        root = inspect_document(xml).root
    except FederationError as exc:
        raise _misconfigured(f"IdP metadata from {where} refused: {exc.reason}") from None
    if root.tag not in {f"{{{MD}}}EntityDescriptor", f"{{{MD}}}EntitiesDescriptor"}:
        raise _misconfigured(f"IdP metadata from {where} is not SAML metadata")
    now = dt.datetime.now(dt.UTC)
    valid_until = None
    if root.get("validUntil"):
        try:
            valid_until = _parse_time(root.get("validUntil", ""))
        except ValueError:
            raise _misconfigured(f"IdP metadata from {where}: validUntil is not a dateTime") from None
        if valid_until <= now:
            raise _misconfigured(f"IdP metadata from {where} expired at {valid_until.isoformat()}")
    entities = [root] if root.tag == f"{{{MD}}}EntityDescriptor" else list(root.iter(f"{{{MD}}}EntityDescriptor"))
    idps = [e for e in entities if _idp_descriptor(e) is not None]
    if entity_id is not None:
        idps = [e for e in idps if e.get("entityID") == entity_id]
    if len(idps) != 1:
        wanted = f"IdP {entity_id!r}" if entity_id else "exactly one IdP (set idp_entity_id)"
        raise _misconfigured(f"IdP metadata from {where} does not describe {wanted}")
    entity = idps[0]
    descriptor = _idp_descriptor(entity)
    if descriptor is None:  # filtered above; kept for type checkers
        raise _misconfigured(f"IdP metadata from {where} has no SAML 2.0 IDPSSODescriptor")
    certificates = tuple(signing_certificates(descriptor))
    found_id = entity.get("entityID", "")
    if not certificates:
        raise _misconfigured(
            f"IdP metadata for {found_id} declares no signing certificate: its responses could not be verified"
        )
    sso = [s.get("Location", "") for s in descriptor.findall(f"{{{MD}}}SingleSignOnService")
           if s.get("Binding") == BINDING_REDIRECT]
    if not sso or not sso[0].startswith(("https://", "http://")):
        raise _misconfigured(f"IdP metadata for {found_id} has no HTTP-Redirect SingleSignOnService")
    slo = [s for s in descriptor.findall(f"{{{MD}}}SingleLogoutService") if s.get("Binding") == BINDING_REDIRECT
           and s.get("Location", "").startswith(("https://", "http://"))]
    return IdpMetadata(
        entity_id=found_id,
        entity_xml=ElementTree.tostring(entity, encoding="unicode"),
        sso_redirect_url=sso[0],
        signing_certificates=certificates,
        valid_until=valid_until,
        slo_redirect_url=slo[0].get("Location") if slo else None,
        slo_response_url=(slo[0].get("ResponseLocation") or slo[0].get("Location")) if slo else None,
    )


def saml2_descriptor(entity: ElementTree.Element, role: str) -> ElementTree.Element | None:
    """Return the entity's first ``role`` descriptor (``IDPSSODescriptor`` or ``SPSSODescriptor``)
    that supports SAML 2.0 (SAML Metadata §2.4.1 protocolSupportEnumeration), or None."""
    for descriptor in entity.findall(f"{{{MD}}}{role}"):
        if SAML2_PROTOCOL in descriptor.get("protocolSupportEnumeration", "").split():
            return descriptor
    return None


def _idp_descriptor(entity: ElementTree.Element) -> ElementTree.Element | None:
    return saml2_descriptor(entity, "IDPSSODescriptor")


def fetch(cfg: MetadataOriginConfig, base_dir: Path) -> tuple[bytes, str]:
    """Return (metadata bytes, where they came from) for an IdP's or an SP's metadata origin: the
    file (relative to ``base_dir``) or the URL, read up to one byte over ``MAX_DOCUMENT_BYTES`` so
    the parser refuses an oversized document. Raises OSError if unreachable or unreadable."""
    if cfg.file is not None:
        path = cfg.file if cfg.file.is_absolute() else base_dir / cfg.file
        return path.read_bytes()[: MAX_DOCUMENT_BYTES + 1], str(path)
    url = str(cfg.url)
    request = urllib.request.Request(url, headers={"Accept": "application/samlmetadata+xml, application/xml"})
    with urllib.request.urlopen(request, timeout=cfg.timeout_seconds) as response:  # noqa: S310 - http(s) checked in config
        return response.read(MAX_DOCUMENT_BYTES + 1), url


class MetadataHolder:
    """The current IdP metadata, refetched every ``refresh_seconds``.

    A failed refresh keeps the previous metadata (until its ``validUntil``) and is retried a
    minute later; it is logged without the document. ``on_change`` is called with new metadata.
    """

    def __init__(self, cfg: IdpMetadataConfig, base_dir: Path, entity_id: str | None, signer_pem: str | None,
                 *, clock: Callable[[], float] = time.monotonic) -> None:
        self._cfg = cfg
        self._base_dir = base_dir
        self._entity_id = entity_id
        self._signer = signer_pem
        self._clock = clock
        self._lock = threading.Lock()
        self._current: IdpMetadata | None = None
        self._next_fetch = 0.0

    def load(self) -> IdpMetadata | None:
        """Fetch now. Returns None if the origin is unreachable (logged);
        raises FederationError(MISCONFIGURED) if what it serves is refused."""
        try:
            data, where = fetch(self._cfg, self._base_dir)
        except OSError as exc:
            log.warning("SAML IdP metadata unavailable from %s: %s", self._cfg.url or self._cfg.file, type(exc).__name__)
            self._next_fetch = self._clock() + RETRY_SECONDS
            return None
        metadata = parse_idp_metadata(data, self._entity_id, signer_pem=self._signer, where=where)
        if self._entity_id is None:
            self._entity_id = metadata.entity_id  # pin the entity on first load
        self._current = metadata
        self._next_fetch = self._clock() + self._cfg.refresh_seconds
        return metadata

    def current(self) -> IdpMetadata:
        """Return live metadata, refreshing when due.

        Raises FederationError(SOURCE_UNAVAILABLE) when none is available or it has expired.
        """
        if self._clock() >= self._next_fetch:
            with self._lock:
                if self._clock() >= self._next_fetch:
                    try:
                        self.load()
                    except FederationError as exc:
                        log.warning("SAML IdP metadata refresh refused, keeping the previous copy: %s", exc.reason)
                        self._next_fetch = self._clock() + RETRY_SECONDS
        current = self._current
        if current is None:
            raise FederationError(FederationErrorCode.SOURCE_UNAVAILABLE, "the IdP's metadata has not been loaded")
        if current.valid_until is not None and current.valid_until <= dt.datetime.now(dt.UTC):
            raise FederationError(FederationErrorCode.SOURCE_UNAVAILABLE, "the IdP's metadata has expired")
        return current
