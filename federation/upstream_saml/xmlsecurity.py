"""XML signatures and encryption: the one module that configures them (SP now, a SAML IdP later).

Everything else asks this module; nothing else names an algorithm, the xmlsec1 program or
a pysaml2 security option. Verification (and the SP's own signing) runs in the ``xmlsec1``
program through pysaml2's ``CryptoBackendXmlSec1``; what the broker's IdP issues is signed and
encrypted in process (``EnvelopedSigner``, ``encrypt_element``: the ``xmlsec`` bindings to libxmlsec1).

Policy (SAML 2.0 Core §5.4, XML Signature Profile; SAML Metadata §3):

- Signatures: RSA or ECDSA with SHA-256/384/512; digests SHA-256/384/512; never SHA-1,
  never HMAC (a "signature" by a key the sender chose). Exclusive canonicalisation; the
  enveloped-signature and exclusive-c14n transforms only; one Reference, to the parent's ID.
- Keys come only from the peer's metadata (``only_use_keys_in_metadata``), never from the
  ``KeyInfo`` of the message itself.
- Encryption (SAML Core §6): RSA-OAEP key transport (RSA-1_5 refused: Bleichenbacher),
  AES-CBC or AES-GCM content encryption (3DES refused).
- Documents: at most ``MAX_DOCUMENT_BYTES``; no DTD, no entity, no processing instruction,
  no comment (NameID comment injection); every ID unique (signature wrapping relies on
  duplicates); at most one signature per element; an assertion only where SAML Core §3.3.3
  puts it, a child of the Response (or of an EncryptedAssertion that is), never in
  Extensions, a ds:Object or another assertion (XSW7 and kin).

``inspect_document`` enforces the document rules before pysaml2 reads anything, so
an XXE or entity-expansion bomb is refused in microseconds.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as safe_fromstring

from federation.errors import FederationError, FederationErrorCode

MAX_DOCUMENT_BYTES = 512 * 1024
XMLSEC_CANDIDATES = ("/usr/bin/xmlsec1", "/usr/local/bin/xmlsec1")

DS = "http://www.w3.org/2000/09/xmldsig#"
XENC = "http://www.w3.org/2001/04/xmlenc#"
SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
MD = "urn:oasis:names:tc:SAML:2.0:metadata"
ASSERTION_TAGS = frozenset({f"{{{SAML}}}Assertion", f"{{{SAML}}}EncryptedAssertion"})

#: What we sign with (AuthnRequests, metadata, and later assertions).
SIGN_ALG = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
DIGEST_ALG = "http://www.w3.org/2001/04/xmlenc#sha256"

SIGNATURE_ALGORITHMS = frozenset({
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
})
DIGEST_ALGORITHMS = frozenset({
    "http://www.w3.org/2001/04/xmlenc#sha256",
    "http://www.w3.org/2001/04/xmldsig-more#sha384",
    "http://www.w3.org/2001/04/xmlenc#sha512",
})
CANONICALIZATIONS = frozenset({
    "http://www.w3.org/2001/10/xml-exc-c14n#",
    "http://www.w3.org/2001/10/xml-exc-c14n#WithComments",
})
TRANSFORMS = frozenset({"http://www.w3.org/2000/09/xmldsig#enveloped-signature"}) | CANONICALIZATIONS
KEY_TRANSPORT_ALGORITHMS = frozenset({
    "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p",
    "http://www.w3.org/2009/xmlenc11#rsa-oaep",
})
CONTENT_ENCRYPTION_ALGORITHMS = frozenset({
    "http://www.w3.org/2001/04/xmlenc#aes128-cbc",
    "http://www.w3.org/2001/04/xmlenc#aes192-cbc",
    "http://www.w3.org/2001/04/xmlenc#aes256-cbc",
    "http://www.w3.org/2009/xmlenc11#aes128-gcm",
    "http://www.w3.org/2009/xmlenc11#aes192-gcm",
    "http://www.w3.org/2009/xmlenc11#aes256-gcm",
})
ENCRYPTION_DIGESTS = DIGEST_ALGORITHMS | {"http://www.w3.org/2000/09/xmldsig#sha1"}  # OAEP's MGF digest only


def _refuse(reason: str) -> FederationError:
    return FederationError(FederationErrorCode.INVALID_TOKEN, reason)


def xmlsec_binary() -> str:
    """Return the path of the xmlsec1 program.

    Raises FederationError(MISCONFIGURED) naming the package to install when it is absent.
    """
    found = shutil.which("xmlsec1") or next((p for p in XMLSEC_CANDIDATES if os.access(p, os.X_OK)), None)
    if found is None:
        raise FederationError(
            FederationErrorCode.MISCONFIGURED,
            "SAML needs the xmlsec1 program (apt-get install xmlsec1): it signs and verifies XML",
        )
    return found


def pysaml2_security_options() -> dict[str, Any]:
    """Return the pysaml2 configuration keys that decide XML security (for any entity type)."""
    return {
        "xmlsec_binary": xmlsec_binary(),
        "crypto_backend": "xmlsec1",
        "delete_tmpfiles": True,
        "only_use_keys_in_metadata": True,
        "signing_algorithm": SIGN_ALG,
        "digest_algorithm": DIGEST_ALG,
        "validate_certificate": False,  # peers' certificates are pinned by metadata, often self-signed
    }


def sp_signature_requirements(signed: str) -> dict[str, bool]:
    """Return pysaml2's SP options for ``signed`` (assertion / response / both / assertion_or_response).

    Raises FederationError(MISCONFIGURED) for anything that would accept an unsigned response.
    """
    table = {
        "assertion": (True, False, False),
        "response": (False, True, False),
        "both": (True, True, False),
        "assertion_or_response": (False, False, True),
    }
    if signed not in table:
        raise FederationError(
            FederationErrorCode.MISCONFIGURED,
            f"signed: {signed!r} would accept unsigned SAML responses; require assertion, response, both "
            "or assertion_or_response",
        )
    assertions, response, either = table[signed]
    return {
        "want_assertions_signed": assertions,
        "want_response_signed": response,
        "want_assertions_or_response_signed": either,
        "authn_requests_signed": True,
    }


@dataclasses.dataclass(frozen=True, slots=True)
class DocumentFacts:
    """What ``inspect_document`` learnt: the root, the IDs of signed elements, whether any part is encrypted."""

    root: ElementTree.Element
    signed_ids: frozenset[str]
    encrypted: bool


def parse_document(xml: bytes | str) -> ElementTree.Element:
    """Parse ``xml`` refusing DTDs, entities and external references (defusedxml).

    Raises FederationError(INVALID_TOKEN) for anything else than one well-formed document
    of at most ``MAX_DOCUMENT_BYTES``.
    """
    data = xml.encode() if isinstance(xml, str) else xml
    if len(data) > MAX_DOCUMENT_BYTES:
        raise _refuse(f"document larger than {MAX_DOCUMENT_BYTES} bytes")
    try:
        data.decode("utf-8")  # the checks below read bytes: another encoding could hide what they look for
    except UnicodeDecodeError:
        raise _refuse("document is not UTF-8") from None
    declaration = data.lstrip()[:100].lower()
    if declaration.startswith(b"<?xml") and b"encoding" in declaration.split(b"?>")[0] and not any(
        f"encoding={q}{name}{q}".encode() in declaration for q in "\"'" for name in ("utf-8", "utf8")
    ):
        raise _refuse("document declares an encoding other than UTF-8")
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise _refuse("document carries a DTD or entity declaration")
    if b"<!--" in data:
        raise _refuse("document carries an XML comment")
    body = data.lstrip()
    if body.startswith(b"<?xml"):
        body = body[body.find(b"?>") + 2:]
    if b"<?" in body:
        raise _refuse("document carries a processing instruction")
    try:
        return safe_fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (DefusedXmlException, ElementTree.ParseError, ValueError) as exc:
        raise _refuse(f"not well-formed XML ({type(exc).__name__})") from None


def inspect_document(xml: bytes | str) -> DocumentFacts:
    """Check ``xml`` against the document and signature policy above; return what was found.

    Raises FederationError(INVALID_TOKEN) naming the first rule broken.
    """
    root = parse_document(xml)
    ids: set[str] = set()
    signed: set[str] = set()
    encrypted = False
    parents = {child: parent for parent in root.iter() for child in parent}
    for element in root.iter():
        ident = element.get("ID")
        if ident is not None:
            if ident in ids:
                raise _refuse("two elements carry the same ID (signature wrapping)")
            ids.add(ident)
        if element.tag in ASSERTION_TAGS and element is not root:
            parent = parents[element]
            if parent is not root and parent.tag != f"{{{SAML}}}EncryptedAssertion":
                raise _refuse("an assertion is not a child of the Response (signature wrapping)")
        if element.tag == f"{{{XENC}}}EncryptedData":
            encrypted = True
        if element.tag == f"{{{XENC}}}EncryptionMethod":
            algorithm = element.get("Algorithm", "")
            if algorithm not in KEY_TRANSPORT_ALGORITHMS | CONTENT_ENCRYPTION_ALGORITHMS:
                raise _refuse(f"encryption algorithm {algorithm!r} is not allowed")
            oaep_digest = element.find(f"{{{DS}}}DigestMethod")
            if oaep_digest is not None and oaep_digest.get("Algorithm") not in ENCRYPTION_DIGESTS:
                raise _refuse(f"OAEP digest {oaep_digest.get('Algorithm')!r} is not allowed")
        if element.tag == f"{{{DS}}}Signature":
            parent = parents.get(element)
            signed.add(_check_signature(element, parent))
    return DocumentFacts(root=root, signed_ids=frozenset(signed), encrypted=encrypted)


def _check_signature(signature: ElementTree.Element, parent: ElementTree.Element | None) -> str:
    """Check one ds:Signature (SAML Core §5.4.1-5.4.4); return the ID of the element it signs."""
    if parent is None or parent.get("ID") is None:
        raise _refuse("a signature is not enveloped by an element with an ID")
    if sum(1 for child in parent if child.tag == f"{{{DS}}}Signature") != 1:
        raise _refuse("an element carries more than one signature")
    info = signature.find(f"{{{DS}}}SignedInfo")
    if info is None:
        raise _refuse("a signature has no SignedInfo")
    c14n = info.find(f"{{{DS}}}CanonicalizationMethod")
    method = info.find(f"{{{DS}}}SignatureMethod")
    if c14n is None or c14n.get("Algorithm") not in CANONICALIZATIONS:
        raise _refuse("a signature uses a canonicalisation other than exclusive c14n")
    if method is None or method.get("Algorithm") not in SIGNATURE_ALGORITHMS:
        raise _refuse(f"signature algorithm {method.get('Algorithm') if method is not None else None!r} is not allowed")
    if method.find(f"{{{DS}}}HMACOutputLength") is not None:
        raise _refuse("an HMAC signature is not allowed")
    references = info.findall(f"{{{DS}}}Reference")
    if len(references) != 1 or references[0].get("URI") != f"#{parent.get('ID')}":
        raise _refuse("a signature does not reference exactly its enclosing element (signature wrapping)")
    for transform in references[0].iter(f"{{{DS}}}Transform"):
        if transform.get("Algorithm") not in TRANSFORMS:
            raise _refuse(f"signature transform {transform.get('Algorithm')!r} is not allowed")
    digest = references[0].find(f"{{{DS}}}DigestMethod")
    if digest is None or digest.get("Algorithm") not in DIGEST_ALGORITHMS:
        raise _refuse(f"digest algorithm {digest.get('Algorithm') if digest is not None else None!r} is not allowed")
    if signature.find(f"{{{DS}}}Object") is not None:
        raise _refuse("a signature carries a ds:Object")
    return str(parent.get("ID"))


def signing_certificates(role_descriptor: ElementTree.Element) -> list[str]:
    """Return the base64 DER certificates a metadata role descriptor declares for signing
    (``use="signing"`` or no ``use``; SAML Metadata §2.4.1.1)."""
    found = []
    for descriptor in role_descriptor.findall(f"{{{MD}}}KeyDescriptor"):
        if descriptor.get("use") in (None, "signing"):
            for cert in descriptor.iter(f"{{{DS}}}X509Certificate"):
                text = "".join((cert.text or "").split())
                if text:
                    found.append(text)
    return found


class XmlSecurity:
    """Signs and verifies whole documents with the xmlsec1 program (for metadata and tests;
    pysaml2 verifies protocol messages with the same backend and the options above)."""

    def __init__(self) -> None:
        from saml2.sigver import CryptoBackendXmlSec1

        self._backend = CryptoBackendXmlSec1(xmlsec_binary(), delete_tmpfiles=True)

    def verify_enveloped(self, xml: bytes, node_name: str, certificate_pem: str) -> None:
        """Verify the signature on the root element of ``xml`` (``node_name`` is its
        namespace-qualified type, e.g. ``urn:oasis:names:tc:SAML:2.0:metadata:EntityDescriptor``)
        against ``certificate_pem`` only.

        Raises FederationError(INVALID_TOKEN) if the root is unsigned or the signature fails.
        """
        facts = inspect_document(xml)
        root_id = facts.root.get("ID")
        if root_id is None or root_id not in facts.signed_ids or facts.root.find(f"{{{DS}}}Signature") is None:
            raise _refuse("the document's root element is not signed")
        with _temporary_file(certificate_pem.encode(), ".pem") as cert_file:
            try:
                ok = self._backend.validate_signature(xml, cert_file, "pem", node_name, root_id)
            except Exception as exc:  # noqa: BLE001 - xmlsec1 reports every failure as an exception
                raise _refuse(f"signature verification failed ({type(exc).__name__})") from None
        if not ok:
            raise _refuse("signature verification failed")

    def sign_enveloped(self, xml: bytes, node_name: str, element_id: str, key_pem: str, certificate_pem: str) -> bytes:
        """Return ``xml`` with the element ``element_id`` signed (enveloped, RSA-SHA256, exclusive
        c14n). The element must already hold an empty signature template (``signature_template``)."""
        with _temporary_file(key_pem.encode(), ".pem") as key_file, _temporary_file(certificate_pem.encode(), ".pem") as cert_file:
            com = [
                self._backend.xmlsec, "--sign", "--privkey-pem", f"{key_file},{cert_file}",
                "--id-attr:ID", node_name, "--node-id", element_id,
            ]
            with _temporary_file(xml, ".xml") as source:
                _, _, output = self._backend._run_xmlsec(com, [source])  # noqa: SLF001 - the backend's runner
        return output if isinstance(output, bytes) else output.encode()


def certificate_pem(certificate_b64: str) -> str:
    """Return a metadata ``ds:X509Certificate`` value (base64 DER) as a PEM certificate."""
    body = "".join(certificate_b64.split())
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"


def verify_with_any(xml: bytes, node_name: str, certificates_b64: tuple[str, ...]) -> None:
    """Verify the root signature of ``xml`` against one of ``certificates_b64`` (metadata rollover).

    Raises FederationError(INVALID_TOKEN) if none verifies it.
    """
    security = XmlSecurity()
    for certificate in certificates_b64:
        try:
            security.verify_enveloped(xml, node_name, certificate_pem(certificate))
            return
        except FederationError:
            continue
    raise _refuse("the root element's signature does not verify with the peer's certificates")


def signature_template(element_id: str, certificate_b64: str) -> str:
    """Return an empty enveloped ds:Signature for ``element_id`` with our algorithms (to sign)."""
    return (
        f'<ds:Signature xmlns:ds="{DS}"><ds:SignedInfo>'
        '<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>'
        f'<ds:SignatureMethod Algorithm="{SIGN_ALG}"/>'
        f'<ds:Reference URI="#{element_id}"><ds:Transforms>'
        '<ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>'
        '<ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms>'
        f'<ds:DigestMethod Algorithm="{DIGEST_ALG}"/><ds:DigestValue/></ds:Reference></ds:SignedInfo>'
        f"<ds:SignatureValue/><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{certificate_b64}"
        "</ds:X509Certificate></ds:X509Data></ds:KeyInfo></ds:Signature>"
    )


class _temporary_file:
    """A private file (0600) for xmlsec1 to read, deleted on exit."""

    def __init__(self, content: bytes, suffix: str) -> None:
        self._content = content
        self._suffix = suffix
        self._path: str | None = None

    def __enter__(self) -> str:
        fd, self._path = tempfile.mkstemp(suffix=self._suffix)
        with os.fdopen(fd, "wb") as handle:
            handle.write(self._content)
        return self._path

    def __exit__(self, *exc: object) -> None:
        if self._path is not None:
            Path(self._path).unlink(missing_ok=True)


def sign_metadata(descriptor: Any, security_context: Any) -> bytes:
    """Return a pysaml2 ``EntityDescriptor`` signed with the security context's own key
    (RSA-SHA256, SHA-256 digest), as XML bytes.

    pysaml2 advertises every algorithm xmlsec1 knows (SAML Metadata Profile for Algorithm
    Support: ``alg:DigestMethod``, ``alg:SigningMethod``), SHA-1 and MD5 included; only the
    allowed ones are kept, so no IdP is invited to sign for us with them.
    """
    from saml2.metadata import sign_entity_descriptor

    extensions = getattr(descriptor, "extensions", None)
    if extensions is not None:
        extensions.extension_elements = [
            e for e in extensions.extension_elements
            if e.tag not in {"DigestMethod", "SigningMethod"}
            or e.attributes.get("Algorithm") in SIGNATURE_ALGORITHMS | DIGEST_ALGORITHMS
        ]

    _, xml = sign_entity_descriptor(descriptor, None, security_context, sign_alg=SIGN_ALG, digest_alg=DIGEST_ALG)
    return xml if isinstance(xml, bytes) else str(xml).encode()


# --- In-process signing and encryption of what the broker issues (SAML IdP) -------------------
#
# The ``xmlsec`` bindings to libxmlsec1 sign in process with a key parsed once: no program is
# spawned per signature (pysaml2's default spawns ``xmlsec1`` twice per signed response).
# Inbound verification stays on the xmlsec1 path above.

#: Key transport for assertions we encrypt (xmlenc §5.4.2). SimpleSAMLphp 1.19 decrypts only
#: rsa-oaep-mgf1p (it loads the SP key as RSA_1_5 and maps that to MGF1P alone: xmlenc11#rsa-oaep
#: fails there with "Algorithm mismatch"). By definition its OAEP padding hashes with SHA-1 (MGF1 and
#: digest): padding, not a signature or message digest. RSA-1_5 is never used.
ISSUE_KEY_TRANSPORT = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"
#: Content encryption we offer, by the name an SP's settings use (AES-GCM unless the SP says CBC).
ISSUE_CONTENT_ENCRYPTION = {
    "aes256-gcm": "http://www.w3.org/2009/xmlenc11#aes256-gcm",
    "aes256-cbc": "http://www.w3.org/2001/04/xmlenc#aes256-cbc",
}
MIN_RSA_BITS = 2048


def _xmlsec() -> Any:
    """Import the ``xmlsec`` bindings (only the issuing side needs them).

    Raises FederationError(MISCONFIGURED) when they are missing or built against another
    libxml2 than lxml's (the bindings refuse to load then).
    """
    try:
        import xmlsec
    except Exception as exc:  # noqa: BLE001 - ImportError or xmlsec's libxml2 mismatch error
        raise FederationError(
            FederationErrorCode.MISCONFIGURED,
            f"the xmlsec package cannot be loaded ({exc}); install the pinned xmlsec and lxml",
        ) from None
    return xmlsec


def _rsa_certificate(certificate_pem: bytes, what: str) -> Any:
    """Return the cryptography certificate in ``certificate_pem`` if it holds an RSA key of at least
    ``MIN_RSA_BITS`` bits. Raises FederationError(MISCONFIGURED) otherwise."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import rsa

    try:
        certificate = x509.load_pem_x509_certificate(certificate_pem)
    except ValueError:
        raise FederationError(FederationErrorCode.MISCONFIGURED, f"{what} is not a PEM certificate") from None
    public = certificate.public_key()
    if not isinstance(public, rsa.RSAPublicKey) or public.key_size < MIN_RSA_BITS:
        raise FederationError(FederationErrorCode.MISCONFIGURED, f"{what} must hold an RSA key of at least {MIN_RSA_BITS} bits")
    return certificate


class EnvelopedSigner:
    """Signs elements of documents the broker builds, in process (SAML Core §5.4; XML Signature
    §3.1): RSA-SHA256, SHA-256 digest, exclusive c14n, the enveloped-signature transform, one
    Reference to the element's ID, our certificate in ``KeyInfo/X509Data``.

    The key is parsed once, at construction; an instance may be shared between threads (each
    signature gets its own context, holding its own copy of the key).
    """

    def __init__(self, key_pem: bytes, certificate_pem: bytes) -> None:
        """Raises FederationError(MISCONFIGURED) unless ``key_pem`` is an unencrypted RSA key of at
        least 2048 bits and ``certificate_pem`` a certificate for that same key."""
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        certificate = _rsa_certificate(certificate_pem, "the signing certificate")
        try:
            private = load_pem_private_key(key_pem, password=None)
        except (ValueError, TypeError):
            raise FederationError(FederationErrorCode.MISCONFIGURED, "the signing key is not an unencrypted PEM private key") from None
        if not isinstance(private, rsa.RSAPrivateKey) or private.public_key().public_numbers() != certificate.public_key().public_numbers():
            raise FederationError(FederationErrorCode.MISCONFIGURED, "the signing key does not belong to the signing certificate")
        xmlsec = _xmlsec()
        try:
            self._key = xmlsec.Key.from_memory(key_pem, xmlsec.constants.KeyDataFormatPem)
            self._key.load_cert_from_memory(certificate_pem, xmlsec.constants.KeyDataFormatCertPem)
        except xmlsec.Error:
            raise FederationError(FederationErrorCode.MISCONFIGURED, "libxmlsec1 cannot load the signing key") from None
        self._xmlsec = xmlsec

    def sign_element(self, element: Any, *, after: Any = None) -> None:
        """Sign the lxml ``element`` (which must carry an ``ID``) in place, its ds:Signature placed
        right after ``after`` (its Issuer, SAML Core §5.4.1) or, without one, as its first child.

        Raises FederationError(MISCONFIGURED) if the element has no ID, is already signed, or an ID
        in its document is duplicated; FederationError(KEY_ERROR) if libxmlsec1 fails to sign.
        """
        xmlsec = self._xmlsec
        element_id = element.get("ID")
        if not element_id:
            raise FederationError(FederationErrorCode.MISCONFIGURED, "an element to sign needs an ID")
        if element.find(f"{{{DS}}}Signature") is not None:
            raise FederationError(FederationErrorCode.MISCONFIGURED, f"element {element_id!r} is already signed")
        constants = xmlsec.constants
        signature = xmlsec.template.create(element, constants.TransformExclC14N, constants.TransformRsaSha256, ns="ds")
        if after is not None:
            after.addnext(signature)
        else:
            element.insert(0, signature)
        reference = xmlsec.template.add_reference(signature, constants.TransformSha256, uri=f"#{element_id}")
        xmlsec.template.add_transform(reference, constants.TransformEnveloped)
        xmlsec.template.add_transform(reference, constants.TransformExclC14N)
        xmlsec.template.add_x509_data(xmlsec.template.ensure_key_info(signature))
        try:
            xmlsec.tree.add_ids(element.getroottree().getroot(), ["ID"])
        except xmlsec.Error:
            signature.getparent().remove(signature)
            raise FederationError(FederationErrorCode.MISCONFIGURED, "two elements carry the same ID") from None
        context = xmlsec.SignatureContext()
        context.key = self._key
        try:
            context.sign(signature)
        except xmlsec.Error as exc:
            signature.getparent().remove(signature)
            raise FederationError(FederationErrorCode.KEY_ERROR, f"signing failed ({exc})") from None

    def sign_document(self, xml: bytes, element_id: str) -> bytes:
        """Return ``xml`` with the element whose ``ID`` is ``element_id`` signed (see ``sign_element``):
        the signature goes after its saml:Issuer child if it has one (LogoutRequest,
        LogoutResponse), else first (EntityDescriptor, SAML Metadata §2.3.2).

        Raises FederationError(INVALID_TOKEN) if ``xml`` breaks the document rules above
        (``inspect_document``), FederationError(MISCONFIGURED) if no single element has that ID.
        """
        inspect_document(xml)  # our own documents too: no DTD, entity, comment, duplicate ID
        from lxml import etree

        root = etree.fromstring(xml, parser=_issuing_parser())
        found = [e for e in root.iter() if isinstance(e.tag, str) and e.get("ID") == element_id]
        if len(found) != 1:
            raise FederationError(FederationErrorCode.MISCONFIGURED, f"no single element has the ID {element_id!r}")
        element = found[0]
        issuer = element.find(f"{{{SAML}}}Issuer")
        self.sign_element(element, after=issuer if issuer is not None and element.index(issuer) == 0 else None)
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _issuing_parser() -> Any:
    from lxml import etree

    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, remove_comments=False)


def encrypt_element(element: Any, recipient_certificate_pem: bytes, content_encryption: str = "aes256-gcm") -> Any:
    """Encrypt the lxml ``element`` in place for the holder of ``recipient_certificate_pem`` (SAML Core
    §6.1; xmlenc §3.4, §5.4.2): a fresh AES-256 key per element (GCM, or CBC when
    ``content_encryption`` is ``"aes256-cbc"``), transported with RSA-OAEP (``ISSUE_KEY_TRANSPORT``)
    in an EncryptedKey inside the EncryptedData's KeyInfo.

    Returns the ``xenc:EncryptedData`` element that now stands where ``element`` was; the caller
    wraps it (e.g. in saml:EncryptedAssertion). ``element`` should declare the namespaces it uses,
    as only its own subtree is encrypted.
    Raises FederationError(MISCONFIGURED) for an unknown content algorithm or a certificate that is
    not RSA of at least 2048 bits; FederationError(KEY_ERROR) if libxmlsec1 fails.
    """
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    from lxml import etree

    if content_encryption not in ISSUE_CONTENT_ENCRYPTION:
        raise FederationError(
            FederationErrorCode.MISCONFIGURED,
            f"content encryption {content_encryption!r} is not one of {sorted(ISSUE_CONTENT_ENCRYPTION)}",
        )
    recipient = _rsa_certificate(recipient_certificate_pem, "the service provider's encryption certificate").public_key()
    xmlsec = _xmlsec()
    constants = xmlsec.constants
    method = constants.TransformAes256Gcm if content_encryption == "aes256-gcm" else constants.TransformAes256Cbc
    content_key = os.urandom(32)
    template = xmlsec.template.encrypted_data_create(element, method, type=constants.TypeEncElement, ns="xenc")
    xmlsec.template.encrypted_data_ensure_cipher_value(template)
    try:
        context = xmlsec.EncryptionContext()  # no keys manager: building one costs ~8 ms (it loads a CA store)
        context.key = xmlsec.Key.from_binary_data(constants.KeyDataAes, content_key)
        encrypted = context.encrypt_xml(template, element)
    except xmlsec.Error as exc:
        raise FederationError(FederationErrorCode.KEY_ERROR, f"encryption failed ({exc})") from None
    # rsa-oaep-mgf1p is OAEP with MGF1 and the SHA-1 digest by definition (xmlenc §5.4.2): the
    # padding's hash, not a signature or message digest; the one SimpleSAMLphp 1.19 decrypts.
    transported = recipient.encrypt(content_key, padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None))
    key_info = xmlsec.template.encrypted_data_ensure_key_info(encrypted, ns="ds")
    encrypted_key = etree.SubElement(key_info, f"{{{XENC}}}EncryptedKey")
    etree.SubElement(encrypted_key, f"{{{XENC}}}EncryptionMethod", Algorithm=ISSUE_KEY_TRANSPORT)
    cipher = etree.SubElement(etree.SubElement(encrypted_key, f"{{{XENC}}}CipherData"), f"{{{XENC}}}CipherValue")
    cipher.text = base64.b64encode(transported).decode()
    return encrypted


# --- HTTP-Redirect binding: the signature over the query string (SAML Bindings §3.4.4.1) ----------
# The Redirect binding signs the URL-encoded octets ``SAMLRequest|SAMLResponse=…[&RelayState=…]&SigAlg=…``
# exactly as they stand in the URL, not the XML. Both the IdP (broker/saml) and the upstream SP
# (federation/upstream_saml) sign and verify them here and nowhere else.

#: Query-string signature algorithms accepted (the same family as XML signatures; never SHA-1, never HMAC).
QUERY_SIGNATURE_ALGORITHMS: dict[str, tuple[str, str]] = {
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256": ("rsa", "sha256"),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384": ("rsa", "sha384"),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512": ("rsa", "sha512"),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256": ("ecdsa", "sha256"),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384": ("ecdsa", "sha384"),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512": ("ecdsa", "sha512"),
}


def _hash(name: str) -> Any:
    from cryptography.hazmat.primitives import hashes

    return {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}[name]


def sign_query(octets: bytes, key_pem: str | bytes) -> bytes:
    """Return the RSA-SHA256 (``SIGN_ALG``) signature of ``octets``, the query-string parts that
    end with ``SigAlg=<SIGN_ALG>`` (SAML Bindings §3.4.4.1).

    Raises FederationError(MISCONFIGURED) if ``key_pem`` is not an RSA private key of at least
    ``MIN_RSA_BITS`` bits.
    """
    from cryptography.hazmat.primitives.asymmetric import padding

    return _query_signing_key(key_pem.encode() if isinstance(key_pem, str) else key_pem).sign(
        octets, padding.PKCS1v15(), _hash("sha256"))


@functools.lru_cache(maxsize=16)
def _query_signing_key(key_pem: bytes) -> Any:
    """Return the RSA private key in ``key_pem``, parsed and checked once per key (loading and
    validating an RSA key costs tens of milliseconds; signing with it, about one).

    Raises FederationError(MISCONFIGURED) if it is not an RSA key of at least ``MIN_RSA_BITS`` bits.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    try:
        key = serialization.load_pem_private_key(key_pem, None)
    except (ValueError, TypeError):
        raise FederationError(FederationErrorCode.MISCONFIGURED, "the signing key is not a PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < MIN_RSA_BITS:
        raise FederationError(FederationErrorCode.MISCONFIGURED,
                              f"the signing key must be RSA of at least {MIN_RSA_BITS} bits")
    return key


def verify_query(octets: bytes, sig_alg: str, signature: bytes, certificates_b64: tuple[str, ...]) -> bool:
    """Return True if ``signature`` over the raw query ``octets`` verifies under ``sig_alg`` with the
    key of one of ``certificates_b64`` (base64 DER, from the peer's metadata only), else False.

    ``sig_alg`` must be in ``QUERY_SIGNATURE_ALGORITHMS`` and match the key's type (an RSA
    algorithm never verifies with an EC key or the reverse); ECDSA signatures are the r‖s
    concatenation of XML-DSig (RFC 4051 §3.3). Raises FederationError(INVALID_TOKEN) for an
    algorithm not allowed (SHA-1, HMAC, anything else).
    """
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    allowed = QUERY_SIGNATURE_ALGORITHMS.get(sig_alg)
    if allowed is None:
        raise _refuse(f"signature algorithm {sig_alg!r} is not allowed")
    family, digest = allowed
    for certificate_b64 in certificates_b64:
        try:
            public = x509.load_der_x509_certificate(base64.b64decode(certificate_b64)).public_key()
        except ValueError:
            continue
        try:
            if family == "rsa" and isinstance(public, rsa.RSAPublicKey):
                public.verify(signature, octets, padding.PKCS1v15(), _hash(digest))
                return True
            if family == "ecdsa" and isinstance(public, ec.EllipticCurvePublicKey):
                size = (public.curve.key_size + 7) // 8
                if len(signature) != 2 * size:
                    continue
                der = encode_dss_signature(int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big"))
                public.verify(der, octets, ec.ECDSA(_hash(digest)))
                return True
        except InvalidSignature:
            continue
    return False
