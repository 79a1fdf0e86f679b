"""Build a SamlSource from its configuration (``type: saml``), refusing to start when it is unsafe.

Refused with FederationError(MISCONFIGURED) and a message saying what to fix: no xmlsec1,
signatures not required, metadata that is unsigned when it must be signed, badly signed,
expired, without a signing certificate or without an HTTP-Redirect SSO endpoint, or an SP
key that is not RSA. Metadata that cannot be fetched (the IdP is down) does not stop the
broker: its people see "Sign-in for <organisation> is unavailable" until it answers.
"""

from __future__ import annotations

import logging
from pathlib import Path

from config.saml_source import SamlSourceConfig
from config.schema import Settings
from federation.errors import FederationError, FederationErrorCode
from federation.identity import AssuranceLevel
from federation.keys import MasterKey
from federation.upstream_saml import keys as sp_keys
from federation.upstream_saml.mapping import AttributeRules
from federation.upstream_saml.metadata import MetadataHolder
from federation.upstream_saml.source import SamlSource
from federation.upstream_saml.xmlsecurity import sp_signature_requirements, xmlsec_binary

log = logging.getLogger(__name__)
SP_PATH = "/saml/sp/"
CALLBACK_PATH = "/login/callback/"
SLO_PATH = "/login/slo/"  # our SingleLogoutService (HTTP-Redirect) for this IdP


def sp_entity_id(cfg: SamlSourceConfig, issuer: str) -> str:
    """Return the SP entity ID: configured, else ``{issuer}/saml/sp/{id}`` (also its metadata URL)."""
    return cfg.sp_entity_id or f"{issuer}{SP_PATH}{cfg.id}"


def build_saml_source(cfg: SamlSourceConfig, organisation: str, settings: Settings) -> SamlSource:
    """Return the source for ``cfg``. Raises FederationError(MISCONFIGURED) (see the module docstring)."""
    xmlsec_binary()
    sp_signature_requirements(cfg.signed)
    if settings.is_production and cfg.idp_metadata.url is not None and not cfg.idp_metadata.url.startswith("https://"):
        raise FederationError(FederationErrorCode.MISCONFIGURED, f"source {cfg.id}: IdP metadata must come over https:// in production")
    entity_id = sp_entity_id(cfg, settings.broker.issuer)
    signer_pem = None
    if cfg.idp_metadata.signing_certificate is not None:
        try:
            signer_pem = settings.resolve_path(cfg.idp_metadata.signing_certificate).read_text()
        except OSError as exc:
            raise FederationError(FederationErrorCode.MISCONFIGURED,
                                  f"source {cfg.id}: cannot read the metadata signing certificate: {exc.strerror}") from None
    holder = MetadataHolder(cfg.idp_metadata, settings.base_dir, cfg.idp_entity_id, signer_pem)
    try:
        if holder.load() is None:
            log.warning("source %s: IdP metadata unreachable at start-up; sign-in unavailable until it loads", cfg.id)
    except FederationError as exc:
        raise FederationError(FederationErrorCode.MISCONFIGURED, f"source {cfg.id}: {exc.reason}") from None
    key_store = _key_store(cfg, settings, entity_id)
    if key_store is not None:
        keys = sp_keys.materialise_set(cfg.id, key_store.current())
    else:
        keys = sp_keys.materialise(cfg.id, *_configured_pair(cfg, settings))
    return SamlSource(
        source_id=cfg.id,
        organisation=organisation,
        display_name=cfg.display_name,
        sp_entity_id=entity_id,
        acs_url=f"{settings.broker.issuer}{CALLBACK_PATH}{cfg.id}",
        keys=keys,
        key_store=key_store,
        slo_url=f"{settings.broker.issuer}{SLO_PATH}{cfg.id}",
        metadata=holder,
        signed=cfg.signed,
        allow_unsolicited=cfg.allow_unsolicited,
        want_encrypted=cfg.want_assertions_encrypted,
        clock_skew_seconds=cfg.clock_skew_seconds,
        rules=AttributeRules(
            source_id=cfg.id,
            organisation=organisation,
            subject_attribute=cfg.subject_attribute,
            attributes=dict(cfg.attributes),
            groups_attribute=cfg.groups_attribute,
            levels={ref: AssuranceLevel[level] for ref, level in cfg.authn_context_levels.items()},
            default_level=AssuranceLevel[cfg.default_assurance],
        ),
        requested={AssuranceLevel[level]: ref for level, ref in cfg.requested_authn_context.items()},
    )


def _configured_pair(cfg: SamlSourceConfig, settings: Settings) -> tuple[sp_keys.KeyPair, sp_keys.KeyPair]:
    """The operator's ``sp_key``/``sp_certificate`` (one pair for both uses; rotated by replacing them)."""
    if cfg.sp_key is None or cfg.sp_certificate is None:
        raise FederationError(FederationErrorCode.MISCONFIGURED, f"source {cfg.id}: sp_key and sp_certificate go together")
    try:
        cert = settings.resolve_path(cfg.sp_certificate).read_text()
    except OSError as exc:
        raise FederationError(FederationErrorCode.MISCONFIGURED,
                              f"source {cfg.id}: cannot read sp_certificate: {exc.strerror}") from None
    pair = sp_keys.KeyPair(cfg.sp_key.reveal(), cert)
    sp_keys.check_key_pair(pair, f"source {cfg.id}")
    return pair, pair


def _key_store(cfg: SamlSourceConfig, settings: Settings, entity_id: str) -> sp_keys.KeyStore | None:
    """The generated keys' store (with rollover), or None when the keys are configured."""
    if cfg.sp_key is not None and cfg.sp_certificate is not None:
        return None
    store = settings.resolve_path(cfg.sp_key_store or Path("var") / f"saml-sp-{cfg.id}.enc")
    if settings.is_production and cfg.sp_key_store is None:
        log.warning(
            "PRODUCTION: source %s keeps its generated SAML SP key in %s; every broker host must use this same "
            "file (it is encrypted under the master key), or set sp_key/sp_certificate",
            cfg.id, store,
        )
    master = MasterKey.from_text(settings.broker.master_key.reveal())
    return sp_keys.KeyStore(store, master, cfg.id, entity_id)
