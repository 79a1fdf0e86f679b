"""Configuration of one upstream SAML 2.0 identity provider (ADFS, Entra ID, SimpleSAMLphp ...).

The broker is the service provider (SP); the IdP sends the person back to
``{issuer}/login/callback/{id}`` with a signed response (SAML 2.0 Profiles §4.1).
A complete example (YAML, as it would sit under ``sources:`` in the broker's settings)::

    - type: saml
      id: barnet-adfs
      display_name: Barnet staff sign-in
      idp_metadata:
        url: https://adfs.barnet.test/FederationMetadata/2007-06/FederationMetadata.xml
        # file: /etc/supercloud/barnet-idp.xml          # instead of url
        signing_certificate: /etc/supercloud/barnet-metadata-signer.pem  # required with url
        refresh_seconds: 3600
      idp_entity_id: http://adfs.barnet.test/adfs/services/trust   # optional when the metadata has one IdP
      signed: assertion_or_response    # or assertion / response / both; unsigned is never accepted
      allow_unsolicited: false         # IdP-initiated responses (no InResponseTo)
      clock_skew_seconds: 60
      subject_attribute: null          # null: the NameID; else an attribute name (e.g. objectGUID)
      attributes:                      # SAML attribute Name (URI or OID) -> canonical name
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress": email
        "urn:oid:2.16.840.1.113730.3.1.241": name
      groups_attribute: "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups"
      requested_authn_context:         # AAL -> AuthnContextClassRef asked for (RequestedAuthnContext)
        AAL2: http://schemas.microsoft.com/claims/multipleauthn
      authn_context_levels:            # AuthnContextClassRef received -> AAL
        urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport: AAL1
        http://schemas.microsoft.com/claims/multipleauthn: AAL2
      sp_key: {file: /etc/supercloud/barnet-sp.key}     # optional SecretRef: PEM private key
      sp_certificate: /etc/supercloud/barnet-sp.crt    # with sp_key: its certificate (PEM)

Without ``sp_key``, the broker generates an RSA key pair and a self-signed certificate for
the SP, stored encrypted under the master key in ``sp_key_store`` (default
``var/saml-sp-{id}.enc`` beside the configuration file); share that file between hosts.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from config.saml_metadata import MetadataOriginConfig
from config.secrets import SecretRef

SLUG = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"
_CANONICAL_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
Aal = Literal["AAL1", "AAL2", "AAL3"]
#: Canonical names a SAML attribute may not be mapped to: the registry derives them.
RESERVED_NAMES = frozenset({"teams", "job_roles", "groups"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IdpMetadataConfig(MetadataOriginConfig):
    """Where the IdP's metadata comes from and how its signature is checked."""

    CERTIFICATE_FIELD: ClassVar[str] = "signing_certificate"

    signing_certificate: Path | None = Field(
        default=None, description="PEM certificate the metadata must be signed with (required with url)"
    )


class SamlSourceConfig(_Model):
    """One upstream SAML IdP; see the module docstring for a complete YAML example."""

    type: Literal["saml"]
    id: str = Field(pattern=SLUG, description="Source id, unique across the broker; names the callback URL")
    organisation: str | None = Field(default=None, pattern=SLUG, description="default: the parent organisation")
    display_name: str = Field(min_length=1, max_length=100, description="what people choose on /login/choose")
    idp_metadata: IdpMetadataConfig
    idp_entity_id: str | None = Field(default=None, min_length=1, max_length=1024)
    sp_entity_id: str | None = Field(default=None, description="default: {issuer}/saml/sp/{id} (also the metadata URL)")
    signed: Literal["assertion_or_response", "assertion", "response", "both", "none"] = Field(
        default="assertion_or_response",
        description="what must carry a valid signature; 'none' is refused (it exists to give a clear message)",
    )
    allow_unsolicited: bool = Field(default=False, description="accept IdP-initiated responses (no InResponseTo)")
    want_assertions_encrypted: bool = Field(default=False, description="refuse assertions that arrive unencrypted")
    clock_skew_seconds: int = Field(default=60, ge=0, le=300)
    subject_attribute: str | None = Field(default=None, description="attribute holding the stable subject; default NameID")
    attributes: dict[str, str] = Field(default_factory=dict, description="SAML attribute Name -> canonical name")
    groups_attribute: str | None = Field(default=None, description="SAML attribute Name whose values are groups")
    requested_authn_context: dict[Aal, str] = Field(default_factory=dict, description="AAL -> AuthnContextClassRef")
    authn_context_levels: dict[str, Aal] = Field(default_factory=dict, description="AuthnContextClassRef -> AAL")
    default_assurance: Aal = Field(default="AAL1", description="when the AuthnContextClassRef is not mapped")
    sp_key: SecretRef | None = Field(default=None, description="PEM private key of the SP; default: generated")
    sp_certificate: Path | None = Field(default=None, description="PEM certificate of sp_key")
    sp_key_store: Path | None = Field(default=None, description="where the generated key is kept encrypted")

    @field_validator("sp_key", mode="before")
    @classmethod
    def _not_inline(cls, value: object) -> object:
        if isinstance(value, str):
            raise ValueError("a secret is never written inline: use {env: NAME} or {file: PATH}")
        return value

    @field_validator("attributes")
    @classmethod
    def _attributes(cls, mapping: dict[str, str]) -> dict[str, str]:
        problems = [f"canonical name {v!r} must be lower_snake_case" for v in mapping.values() if not _CANONICAL_NAME.match(v)]
        problems += [f"{v!r} is derived by the organisation registry, not taken from an IdP" for v in mapping.values()
                     if v in RESERVED_NAMES]
        if len(set(mapping.values())) != len(mapping):
            problems.append("two SAML attributes map to the same canonical name")
        if problems:
            raise ValueError("; ".join(problems))
        return mapping

    @model_validator(mode="after")
    def _consistent(self) -> SamlSourceConfig:
        problems = []
        if self.signed == "none":
            problems.append("signed: none is refused: an upstream SAML response must carry a signed assertion or response")
        if (self.sp_key is None) != (self.sp_certificate is None):
            problems.append("give sp_key and sp_certificate together (or neither, to have the broker generate them)")
        if self.sp_key is not None and self.sp_key_store is not None:
            problems.append("sp_key_store is only for a generated key; leave it out with sp_key")
        if self.sp_entity_id is not None:
            parts = urlsplit(self.sp_entity_id)
            if not parts.scheme or len(self.sp_entity_id) > 1024:
                problems.append("sp_entity_id must be an absolute URI of at most 1024 characters (SAML Core §8.3.6)")
        if problems:
            raise ValueError("; ".join(problems))
        return self
