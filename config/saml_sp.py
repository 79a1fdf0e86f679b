"""Configuration of one SAML 2.0 service provider (SP) that the broker's own IdP answers.

A complete example (YAML, as it sits under ``saml_service_providers:`` in the settings)::

    - entity_id: https://cases.camden.test/saml/metadata   # must equal the metadata's entityID
      name: Camden case records                           # shown to people on our pages
      service: case-records                               # the policy service (default: entity_id)
      metadata:
        file: sps/camden-cases.xml                        # or url: (then signer_certificate is required)
        # url: https://federation.example/metadata.xml
        # signer_certificate: federation-signer.pem
        refresh_seconds: 3600
      name_id_format: persistent        # persistent (pairwise, default) | transient | email
      sign_response: true               # sign the samlp:Response
      sign_assertion: true              # sign the saml:Assertion
      encrypt_assertion: true           # encrypt when the SP's metadata publishes an encryption key
      require_signed_requests: false    # refuse unsigned AuthnRequests even if metadata does not say AuthnRequestsSigned
      idp_initiated: false              # allow sign-in started at the broker (unsolicited responses)
      one_time_use: false               # add <OneTimeUse/> to the assertion's Conditions
      require_mfa: false                # everyone reaching this SP needs AAL2 (a second factor)
      attribute_profile: uri            # uri (urn:oid names, eduPerson style) | basic (plain names)
      attributes:                       # optional: claim -> the SP's own name/format
        email: {name: mail, name_format: basic}
      authn_context_class_refs:         # optional: the class reference sent for each level
        AAL1: urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport
      sector: null                      # SPs with one sector see the same persistent NameID
      assertion_lifetime_seconds: 300

The assertion consumer and single logout endpoints, and the SP's keys, come only from its
metadata: a response is never sent to an address the metadata does not list.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from config.saml_metadata import MetadataOriginConfig

Aal = Literal["AAL1", "AAL2", "AAL3"]
#: The claims an SP can receive (the OIDC claim names the access policies release).
RELEASABLE_CLAIMS = (
    "email", "name", "given_name", "family_name", "preferred_username",
    "organisation", "organisation_name", "department", "job_title", "groups", "admissions_role",
)
NAME_FORMATS = {
    "uri": "urn:oasis:names:tc:SAML:2.0:attrname-format:uri",
    "basic": "urn:oasis:names:tc:SAML:2.0:attrname-format:basic",
    "unspecified": "urn:oasis:names:tc:SAML:2.0:attrname-format:unspecified",
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SpMetadataConfig(MetadataOriginConfig):
    """Where the SP's metadata comes from and the certificate its signature must verify with."""

    CERTIFICATE_FIELD: ClassVar[str] = "signer_certificate"

    signer_certificate: Path | None = Field(default=None, description="PEM certificate of the federation that signs it")


class AttributeNameConfig(_Model):
    """The name and format an SP wants one claim under."""

    name: str = Field(min_length=1, max_length=256)
    name_format: Literal["uri", "basic", "unspecified"] = "uri"
    friendly_name: str | None = Field(default=None, max_length=64)


class ServiceProviderConfig(_Model):
    """One SAML SP; see the module docstring for a complete YAML example."""

    entity_id: str = Field(min_length=1, max_length=1024)
    name: str = Field(min_length=1, max_length=100)
    service: str | None = Field(default=None, max_length=128, description="policy service id; default entity_id")
    metadata: SpMetadataConfig | None = Field(default=None, description="absent only for SPs added with the CLI")
    name_id_format: Literal["persistent", "transient", "email"] = "persistent"
    sign_response: bool = True
    sign_assertion: bool = True
    encrypt_assertion: bool = True
    require_signed_requests: bool = False
    idp_initiated: bool = False
    one_time_use: bool = False
    require_mfa: bool = False
    attribute_profile: Literal["uri", "basic"] = "uri"
    attributes: dict[str, AttributeNameConfig] = Field(default_factory=dict)
    authn_context_class_refs: dict[Aal, str] = Field(default_factory=dict)
    sector: str | None = Field(default=None, max_length=1024)
    assertion_lifetime_seconds: int = Field(default=300, ge=30, le=3600)

    @model_validator(mode="after")
    def _checks(self) -> ServiceProviderConfig:
        unknown = sorted(set(self.attributes) - set(RELEASABLE_CLAIMS))
        if unknown:
            raise ValueError(f"attributes: unknown claims {unknown}; releasable: {list(RELEASABLE_CLAIMS)}")
        if not (self.sign_response or self.sign_assertion):
            raise ValueError("sign_response or sign_assertion must be true: an unsigned response could be forged")
        return self

    @property
    def service_id(self) -> str:
        """The service the access policies know this SP as."""
        return self.service or self.entity_id
