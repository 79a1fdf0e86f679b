"""From a verified assertion to the canonical Identity: subject, attributes with provenance,
groups, and the assurance level its ``AuthnContextClassRef`` (SAML Authn Context §3.4) maps to.

The stable subject is the NameID (SAML Core §2.2.3) unless an attribute is configured; a
transient NameID (Core §8.3.8) changes at every sign-in and is refused as a subject.
Only configured attributes are taken; everything else the IdP sends is dropped.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from federation.errors import FederationError, FederationErrorCode
from federation.identity import AssuranceLevel, Attribute, AuthnContext, Identity, SubjectRef
from federation.upstream_saml.profile import VerifiedAssertion

TRANSIENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
PASSWORD_CLASSES = frozenset({
    "urn:oasis:names:tc:SAML:2.0:ac:classes:Password",
    "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport",
})
MAX_VALUES = 256
MAX_VALUE_LENGTH = 1024


@dataclasses.dataclass(frozen=True, slots=True)
class AttributeRules:
    """How one IdP's assertions become an Identity."""

    source_id: str
    organisation: str
    subject_attribute: str | None
    attributes: dict[str, str]
    groups_attribute: str | None
    levels: dict[str, AssuranceLevel]
    default_level: AssuranceLevel


def _refuse(reason: str) -> FederationError:
    return FederationError(FederationErrorCode.INVALID_TOKEN, reason)


def _values(verified: VerifiedAssertion, name: str) -> tuple[str, ...]:
    values = verified.attributes.get(name, ())
    if len(values) > MAX_VALUES or any(len(v) > MAX_VALUE_LENGTH for v in values):
        raise _refuse(f"attribute {name!r} is too large")
    return values


def assurance(verified: VerifiedAssertion, rules: AttributeRules) -> AssuranceLevel:
    """Return the level the configured mapping gives the assertion's AuthnContextClassRef."""
    if verified.class_ref is None:
        return rules.default_level
    return rules.levels.get(verified.class_ref, rules.default_level)


def to_identity(verified: VerifiedAssertion, rules: AttributeRules, idp_entity_id: str) -> Identity:
    """Return the canonical identity, its subject keyed by ``idp_entity_id``. Raises FederationError(INVALID_TOKEN) without a stable subject."""
    if rules.subject_attribute is not None:
        found = _values(verified, rules.subject_attribute)
        if len(found) != 1 or not found[0]:
            raise _refuse("the subject attribute is missing or has several values")
        subject = found[0]
    else:
        if not verified.name_id:
            raise _refuse("the assertion has no NameID")
        if verified.name_id_format == TRANSIENT:
            raise _refuse("a transient NameID is not a stable subject: configure subject_attribute")
        subject = verified.name_id
    provenance = f"upstream:{rules.source_id}"
    attributes = {}
    for saml_name, canonical in rules.attributes.items():
        values = _values(verified, saml_name)
        if values:
            value: str | tuple[str, ...] = values[0] if len(values) == 1 else values
            attributes[canonical] = Attribute(canonical, value, provenance, verified.issued_at)
    groups = tuple(dict.fromkeys(_values(verified, rules.groups_attribute))) if rules.groups_attribute else ()
    level = assurance(verified, rules)
    methods = ["pwd"] if verified.class_ref in PASSWORD_CLASSES else []
    if level >= AssuranceLevel.AAL2:
        methods.append("mfa")
    return Identity(
        subject=SubjectRef(idp_entity_id, subject),
        organisation=rules.organisation,
        attributes=attributes,
        groups=groups,
        roles=(),
        authn=AuthnContext(
            methods=tuple(methods),
            assurance=level,
            authenticated_at=min(verified.authn_instant, dt.datetime.now(dt.UTC)),
            source=rules.source_id,
        ),
    )
