"""Building and signing the IdP's SAML responses, in process (SAML 2.0 Core §2, §3.2.2, §3.3.3;
Web Browser SSO Profile, SAML Profiles §4.1.4.2).

``ResponseIssuer`` turns an ``AssertionSpec`` (everything already decided: who, for which SP,
which attributes, how long) into a ``samlp:Response``. The XML is built with lxml, so every
value is escaped; signing and encryption are asked of the one XML-security module
(``federation.upstream_saml.xmlsecurity``), which names the algorithms.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
from collections.abc import Callable
from typing import Any

from lxml import etree

from federation.upstream_saml.xmlsecurity import EnvelopedSigner, encrypt_element

SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
#: Top-level status codes (SAML Core §3.2.2.2); Success is only for ``issue``.
TOP_LEVEL_ERRORS = frozenset({
    "urn:oasis:names:tc:SAML:2.0:status:Requester",
    "urn:oasis:names:tc:SAML:2.0:status:Responder",
    "urn:oasis:names:tc:SAML:2.0:status:VersionMismatch",
})
CONTENT_ENCRYPTIONS = ("aes256-gcm", "aes256-cbc")


class IssuingError(ValueError):
    """A response cannot be built as asked: a value XML cannot carry (control characters),
    a naive datetime, an assertion already expired, an unknown status code. The message says which."""


@dataclasses.dataclass(frozen=True, slots=True)
class ReleasedAttribute:
    """One attribute as the SP receives it (SAML Core §2.7.3.1): ``name`` in ``name_format``."""

    name: str
    name_format: str
    friendly_name: str | None
    values: tuple[str, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class AssertionSpec:
    """Everything a response says, decided beforehand by the IdP.

    ``in_response_to`` is None for IdP-initiated (unsolicited) responses. ``not_on_or_after``
    bounds both the bearer confirmation and the Conditions. With ``encrypt_to_cert_pem`` the
    (signed) assertion is encrypted to that certificate, AES-256-GCM unless
    ``content_encryption`` is ``"aes256-cbc"`` (an SP-level setting for SPs without GCM).
    """

    issuer: str
    sp_entity_id: str
    acs_url: str
    in_response_to: str | None
    name_id: str
    name_id_format: str
    sp_name_qualifier: str | None
    authn_instant: dt.datetime
    session_index: str
    authn_context_class_ref: str
    attributes: tuple[ReleasedAttribute, ...]
    not_on_or_after: dt.datetime
    one_time_use: bool
    sign_assertion: bool
    sign_response: bool
    encrypt_to_cert_pem: bytes | None
    content_encryption: str = "aes256-gcm"


def new_id() -> str:
    """Return an unpredictable XML ID (160 random bits) starting with an underscore (SAML Core §1.3.4)."""
    return "_" + secrets.token_hex(20)


def saml_time(value: dt.datetime) -> str:
    """Return ``value`` as a SAML ``xs:dateTime`` in UTC (SAML Core §1.3.3). Raises IssuingError if naive."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise IssuingError("SAML times must be timezone-aware")
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class ResponseIssuer:
    """Builds, signs and (when asked) encrypts the IdP's responses.

    The signing key is parsed once, here; ``issue`` and ``error`` may be called from many threads.
    Raises FederationError(MISCONFIGURED) at construction for a key that is not RSA ≥ 2048 bits or
    does not match the certificate.
    """

    def __init__(self, signing_key_pem: bytes, signing_cert_pem: bytes, *, clock: Callable[[], dt.datetime] = _utc_now) -> None:
        self._signer = EnvelopedSigner(signing_key_pem, signing_cert_pem)
        self._clock = clock

    def issue(self, spec: AssertionSpec) -> bytes:
        """Return a UTF-8 ``samlp:Response`` with status Success carrying one assertion about
        ``spec`` (SAML Core §3.3.3; SAML Profiles §4.1.4.2), signed and encrypted as ``spec`` asks:
        the assertion is signed first, then encrypted, then the response is signed.

        Raises IssuingError for a value XML cannot carry, a naive datetime, an assertion that
        would already be expired or a spec signing neither assertion nor response; FederationError(MISCONFIGURED) for a bad encryption certificate
        or content algorithm; FederationError(KEY_ERROR) if signing or encryption fails.
        """
        now = self._clock()
        issue_instant = saml_time(now)
        saml_time(spec.not_on_or_after)  # refuses a naive datetime before comparing
        if spec.not_on_or_after <= now:
            raise IssuingError("the assertion would already be expired (not_on_or_after is not in the future)")
        if not (spec.sign_assertion or spec.sign_response):
            # SAML Profiles §4.1.4.5: over HTTP-POST each assertion is signed, itself or by the Response.
            raise IssuingError("a response must be signed, its assertion or itself or both")
        if spec.content_encryption not in CONTENT_ENCRYPTIONS:
            raise IssuingError(f"content_encryption must be one of {CONTENT_ENCRYPTIONS}")
        try:
            response, response_issuer = _response(spec.issuer, spec.acs_url, spec.in_response_to, issue_instant)
            status = etree.SubElement(response, f"{{{SAMLP}}}Status")
            etree.SubElement(status, f"{{{SAMLP}}}StatusCode", Value=SUCCESS)
            assertion, assertion_issuer = _assertion(response, spec, issue_instant)
        except ValueError as exc:  # lxml refuses NUL and control characters
            raise IssuingError(f"a value cannot be carried in XML ({exc})") from None
        if spec.sign_assertion:
            self._signer.sign_element(assertion, after=assertion_issuer)
        if spec.encrypt_to_cert_pem is not None:
            # Encrypted where it stands (it declares xmlns:saml itself), then wrapped: moved under an
            # element declaring saml first, lxml would drop the assertion's own declaration.
            encrypted = encrypt_element(assertion, spec.encrypt_to_cert_pem, spec.content_encryption)
            wrapper = etree.Element(f"{{{SAML}}}EncryptedAssertion", nsmap={"saml": SAML})
            encrypted.addprevious(wrapper)
            wrapper.append(encrypted)
        if spec.sign_response:
            self._signer.sign_element(response, after=response_issuer)
        return etree.tostring(response, xml_declaration=True, encoding="UTF-8")

    def error(
        self,
        issuer: str,
        destination: str,
        in_response_to: str | None,
        status_code: str,
        sub_status_code: str | None = None,
        message: str | None = None,
        *,
        sign: bool = True,
    ) -> bytes:
        """Return a ``samlp:Response`` with no assertion and a non-success status (SAML Core
        §3.2.2.2): ``status_code`` (Requester, Responder or VersionMismatch), optionally a second-level
        ``sub_status_code`` (e.g. ``...:status:NoPassive``) and a ``message``; signed unless ``sign`` is False.

        Raises IssuingError for a top-level code that is not an error code or values XML cannot carry.
        """
        if status_code not in TOP_LEVEL_ERRORS:
            raise IssuingError(f"status_code must be one of {sorted(TOP_LEVEL_ERRORS)}")
        if sub_status_code is not None and not sub_status_code.startswith("urn:"):
            raise IssuingError("sub_status_code must be a URI")
        try:
            response, response_issuer = _response(issuer, destination, in_response_to, saml_time(self._clock()))
            status = etree.SubElement(response, f"{{{SAMLP}}}Status")
            code = etree.SubElement(status, f"{{{SAMLP}}}StatusCode", Value=status_code)
            if sub_status_code is not None:
                etree.SubElement(code, f"{{{SAMLP}}}StatusCode", Value=sub_status_code)
            if message:
                etree.SubElement(status, f"{{{SAMLP}}}StatusMessage").text = message
        except ValueError as exc:
            raise IssuingError(f"a value cannot be carried in XML ({exc})") from None
        if sign:
            self._signer.sign_element(response, after=response_issuer)
        return etree.tostring(response, xml_declaration=True, encoding="UTF-8")

    def sign_xml(self, xml: bytes, element_id: str) -> bytes:
        """Return ``xml`` with the element whose ID is ``element_id`` signed (enveloped, after its
        saml:Issuer or first): for LogoutRequest, LogoutResponse and EntityDescriptor.

        Raises FederationError(INVALID_TOKEN) for a document with a DTD, entity, comment or duplicate
        ID; FederationError(MISCONFIGURED) if no single element has that ID or it is already signed.
        """
        return self._signer.sign_document(xml, element_id)


def _response(issuer: str, destination: str, in_response_to: str | None, issue_instant: str) -> tuple[Any, Any]:
    """Return a ``samlp:Response`` holding its ``saml:Issuer`` (SAML Core §3.2.2), and that Issuer."""
    response = etree.Element(f"{{{SAMLP}}}Response", nsmap={"samlp": SAMLP})
    response.set("ID", new_id())
    response.set("Version", "2.0")
    response.set("IssueInstant", issue_instant)
    response.set("Destination", destination)
    if in_response_to is not None:
        response.set("InResponseTo", in_response_to)
    response_issuer = etree.SubElement(response, f"{{{SAML}}}Issuer", nsmap={"saml": SAML})
    response_issuer.text = issuer
    return response, response_issuer


def _assertion(response: Any, spec: AssertionSpec, issue_instant: str) -> tuple[Any, Any]:
    """Append the ``saml:Assertion`` for ``spec`` to ``response`` (SAML Core §2.3.3; it declares its
    own namespace, so it stands alone once encrypted); return it and its Issuer."""
    sub = etree.SubElement
    not_on_or_after = saml_time(spec.not_on_or_after)
    assertion = sub(response, f"{{{SAML}}}Assertion", nsmap={"saml": SAML})
    assertion.set("ID", new_id())
    assertion.set("Version", "2.0")
    assertion.set("IssueInstant", issue_instant)
    issuer = sub(assertion, f"{{{SAML}}}Issuer")
    issuer.text = spec.issuer

    subject = sub(assertion, f"{{{SAML}}}Subject")
    name_id = sub(subject, f"{{{SAML}}}NameID", Format=spec.name_id_format)
    if spec.sp_name_qualifier is not None:
        name_id.set("SPNameQualifier", spec.sp_name_qualifier)
    name_id.text = spec.name_id
    confirmation = sub(subject, f"{{{SAML}}}SubjectConfirmation", Method=BEARER)
    data = sub(confirmation, f"{{{SAML}}}SubjectConfirmationData", NotOnOrAfter=not_on_or_after, Recipient=spec.acs_url)
    if spec.in_response_to is not None:
        data.set("InResponseTo", spec.in_response_to)

    conditions = sub(assertion, f"{{{SAML}}}Conditions", NotBefore=issue_instant, NotOnOrAfter=not_on_or_after)
    audience = sub(sub(conditions, f"{{{SAML}}}AudienceRestriction"), f"{{{SAML}}}Audience")
    audience.text = spec.sp_entity_id
    if spec.one_time_use:
        sub(conditions, f"{{{SAML}}}OneTimeUse")

    statement = sub(assertion, f"{{{SAML}}}AuthnStatement", AuthnInstant=saml_time(spec.authn_instant), SessionIndex=spec.session_index)
    sub(sub(statement, f"{{{SAML}}}AuthnContext"), f"{{{SAML}}}AuthnContextClassRef").text = spec.authn_context_class_ref

    if spec.attributes:  # an AttributeStatement needs at least one Attribute (SAML Core §2.7.3)
        attributes = sub(assertion, f"{{{SAML}}}AttributeStatement")
        for released in spec.attributes:
            attribute = sub(attributes, f"{{{SAML}}}Attribute", Name=released.name, NameFormat=released.name_format)
            if released.friendly_name is not None:
                attribute.set("FriendlyName", released.friendly_name)
            for value in released.values:
                sub(attribute, f"{{{SAML}}}AttributeValue").text = value
    return assertion, issuer
