"""Building an upstream OIDC source from its configuration (used by ``federation.registry``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from config.oidc_source import OidcSourceConfig
from federation.errors import FederationError, FederationErrorCode
from federation.upstream_oidc.cis2 import Cis2Profile
from federation.upstream_oidc.http import Http, urllib_http
from federation.upstream_oidc.mapping import GenericProfile
from federation.upstream_oidc.source import OidcUpstream


def health_ods_index(organisations: Iterable[tuple[str, str, Iterable[str]]]) -> dict[str, str]:
    """Return ODS code → organisation id over ``(id, kind, ods_codes)`` of health organisations.

    An upstream may place a person in an organisation only by an ODS code that organisation
    declares; boroughs and the operator are never reached this way.
    """
    index: dict[str, str] = {}
    for org_id, kind, codes in organisations:
        if kind == "health":
            for code in codes:
                index.setdefault(code.upper(), org_id)
    return index


def build_oidc_source(cfg: OidcSourceConfig, organisation: str, organisations_by_ods: Mapping[str, str], *,
                      production: bool, http: Http = urllib_http) -> OidcUpstream:
    """Return the source for ``cfg``. Nothing is fetched here: an upstream that is down at
    start-up shows "Sign-in for <organisation> is unavailable" until it answers.

    Raises FederationError(MISCONFIGURED) for a plain-http issuer in production.
    """
    if production and not cfg.issuer.startswith("https://"):
        raise FederationError(FederationErrorCode.MISCONFIGURED, f"source {cfg.id}: the issuer must be https:// in production")
    profile = (
        Cis2Profile()
        if cfg.type == "nhs_cis2"
        else GenericProfile(cfg.acr_levels, cfg.amr_levels, cfg.roles_claim, cfg.organisation_claim)
    )
    return OidcUpstream(cfg, organisation, profile, organisations_by_ods=organisations_by_ods, http=http)
