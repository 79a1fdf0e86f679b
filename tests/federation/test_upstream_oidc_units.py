"""Upstream OIDC and the CIS2 profile, piece by piece: configuration, discovery, keys, client
authentication, claims and the mapping onto the canonical Identity (no network: a fake ``Http``)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from pydantic import ValidationError

from config import load_settings
from config.errors import ConfigError
from config.oidc_source import OidcSourceConfig
from federation import jose
from federation.errors import FederationError, FederationErrorCode
from federation.identity import AssuranceLevel
from federation.keys import generate_private_pem
from federation.sources import CallbackSource, UpstreamRequest
from federation.upstream_oidc import cis2, client_auth
from federation.upstream_oidc.build import build_oidc_source, health_ods_index
from federation.upstream_oidc.claims import apply_rules, merge_userinfo
from federation.upstream_oidc.discovery import MetadataCache, parse_metadata
from federation.upstream_oidc.http import HttpResponse
from federation.upstream_oidc.keys import UpstreamKeys
from federation.upstream_oidc.mapping import GenericProfile, MappingContext

CIS2_ISSUER = "https://am.nhsidentity.spineservices.nhs.uk:443/openam/oauth2/realms/root/realms/NHSIdentity/realms/Healthcare"
CIS2_BASE = "https://am.nhsidentity.spineservices.nhs.uk:443/openam/oauth2/realms/root/realms/NHSIdentity/realms/Healthcare"


def _metadata(issuer: str = CIS2_ISSUER, **overrides: Any) -> dict[str, Any]:
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{CIS2_BASE}/authorize",
        "token_endpoint": f"{CIS2_BASE}/access_token",
        "jwks_uri": f"{CIS2_BASE}/connect/jwk_uri",
        "userinfo_endpoint": f"{CIS2_BASE}/userinfo",
        "code_challenge_methods_supported": ["S256", "plain"],
        **overrides,
    }


class FakeHttp:
    """Answers by URL; counts calls."""

    def __init__(self, routes: Mapping[str, Any]) -> None:
        self.routes = dict(routes)
        self.calls: list[tuple[str, str, dict[str, str], bytes | None]] = []

    def __call__(self, method: str, url: str, *, headers: Mapping[str, str], data: bytes | None, timeout: float) -> HttpResponse:
        self.calls.append((method, url, dict(headers), data))
        answer = self.routes.get(url)
        if answer is None:
            raise FederationError(FederationErrorCode.SOURCE_UNAVAILABLE, "cannot reach it")
        status, body = answer if isinstance(answer, tuple) else (200, answer)
        return HttpResponse(status, {"content-type": "application/json"}, json.dumps(body).encode())


# --- configuration -------------------------------------------------------------------------


def test_cis2_defaults_are_the_nhs_shape() -> None:
    cfg = OidcSourceConfig.model_validate({"type": "nhs_cis2", "id": "nhs-cis2", "issuer": CIS2_ISSUER, "client_id": "c"})
    assert cfg.effective_discovery_url == f"{CIS2_ISSUER}/.well-known/openid-configuration"
    assert "selectedrole" in cfg.effective_scopes and "nationalrbacaccess" in cfg.effective_scopes
    assert cfg.effective_acr_values == {"AAL2": ["AAL2_OR_AAL3_ANY"], "AAL3": ["AAL3_ANY"]}
    assert cfg.client_auth_method == "private_key_jwt" and cfg.effective_claims.required == ("name", "nhsid_useruid")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"issuer": "http://cis2.example"}, "plain http only on a loopback"),
        ({"issuer": f"{CIS2_ISSUER}?x=1"}, "query"),
        ({"client_auth_method": "client_secret_post", "client_secret": "inline"}, "never written inline"),
        ({"client_auth_method": "client_secret_post"}, "needs a client_secret"),
        ({"client_secret": {"env": "X"}}, "remove client_secret"),
        ({"acr_levels": {"AAL3_ANY": "AAL3"}}, "built into the NHS CIS2 profile"),
        ({"client_auth_method": "client_secret_basic", "client_secret": {"env": "X"}}, "private_key_jwt or client_secret_post"),
        ({"scopes": ["profile"]}, "must include 'openid'"),
        ({"claims": {"required": ["name"], "optional": ["name"]}}, "both required and optional"),
        ({"id_token_signing_algs": ["HS256"]}, "ES256"),
        ({"unknown": 1}, "Extra inputs"),
    ],
)
def test_bad_configuration_is_refused(changes: dict[str, Any], message: str) -> None:
    document = {"type": "nhs_cis2", "id": "nhs-cis2", "issuer": CIS2_ISSUER, "client_id": "c", **changes}
    with pytest.raises(ValidationError, match=message):
        OidcSourceConfig.model_validate(document)


def test_loader_reports_problems_with_their_paths(settings_factory: Any) -> None:  # type: ignore[no-untyped-def]
    document = settings_factory.document()
    nhs = next(i for i, o in enumerate(document["organisations"]) if o["id"] == "nhs")
    document["organisations"][nhs]["sources"] = [
        {"type": "nhs_cis2", "id": "nhs-cis2", "issuer": CIS2_ISSUER, "client_id": "c",
         "client_auth_method": "client_secret_post", "client_secret": "inline-secret"},
        {"type": "oidc", "id": "entra", "issuer": "http://login.example/tenant/v2.0", "client_id": "c"},
    ]
    with pytest.raises(ConfigError) as caught:
        load_settings(settings_factory.write(document))
    problems = {p.path: p.message for p in caught.value.problems}
    assert "never written inline" in problems[f"organisations[{nhs}].sources[0].client_secret"]
    assert "loopback" in problems[f"organisations[{nhs}].sources[1].issuer"]
    assert "inline-secret" not in str(caught.value)
    document["organisations"][nhs]["sources"] = [
        {"type": "oidc", "id": "entra", "issuer": "https://login.example/tenant/v2.0", "client_id": "c",
         "client_auth_method": "client_secret_basic", "client_secret": {"env": "NOT_SET_ANYWHERE"}},
    ]
    with pytest.raises(ConfigError) as caught:
        load_settings(settings_factory.write(document))
    problems = {p.path: p.message for p in caught.value.problems}
    assert "NOT_SET_ANYWHERE is not set" in problems[f"organisations[{nhs}].sources[0].client_secret"]


def test_an_upstream_source_is_built_from_settings_and_offers_callbacks(settings_factory: Any) -> None:  # type: ignore[no-untyped-def]
    from federation.registry import build_registry

    document = settings_factory.document()
    for org in document["organisations"]:
        if org["id"] == "nhs":
            org["sources"] = [{"type": "nhs_cis2", "id": "nhs-cis2", "issuer": CIS2_ISSUER, "client_id": "c"}]
    document["organisations"].append({"id": "royal-free", "name": "Royal Free", "kind": "health", "ods_codes": ["RAL"],
                                      "accepts_sources": ["nhs-cis2"]})
    document["organisations"].append({"id": "uclh", "name": "UCLH", "kind": "health", "ods_codes": ["RRV"]})
    registry = build_registry(load_settings(settings_factory.write(document)), signing_keys=object())  # type: ignore[arg-type]
    source = registry.source("nhs-cis2")
    assert isinstance(source, CallbackSource) and source.organisation == "nhs"
    assert source.display_name == "NHS smartcard or security key (CIS2)"
    assert source._ods == {"RAL": "royal-free"}  # uclh does not accept the source  # noqa: SLF001


def test_a_plain_http_issuer_is_refused_in_production() -> None:
    cfg = OidcSourceConfig.model_validate({"type": "oidc", "id": "x", "issuer": "http://127.0.0.1:9", "client_id": "c"})
    with pytest.raises(FederationError) as caught:
        build_oidc_source(cfg, "nhs", {}, production=True)
    assert caught.value.code is FederationErrorCode.MISCONFIGURED


def test_only_health_organisations_are_reached_by_ods_code() -> None:
    index = health_ods_index([("royal-free", "health", ["ral"]), ("camden", "borough", ["XYZ"])])
    assert index == {"RAL": "royal-free"}


# --- discovery -----------------------------------------------------------------------------


def test_cis2_issuer_with_443_must_match_exactly() -> None:
    assert parse_metadata(_metadata(), CIS2_ISSUER).issuer == CIS2_ISSUER
    without_port = CIS2_ISSUER.replace(":443", "")
    for published, configured in ((without_port, CIS2_ISSUER), (CIS2_ISSUER, without_port), (CIS2_ISSUER + "/", CIS2_ISSUER)):
        with pytest.raises(FederationError, match="expected exactly"):
            parse_metadata(_metadata(published), configured)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"token_endpoint": "http://am.nhs.example/access_token"}, "token_endpoint"),
        ({"jwks_uri": None}, "jwks_uri"),
        ({"authorization_endpoint": "https://user:pw@am.nhs.example/authorize"}, "authorization_endpoint"),
        ({"code_challenge_methods_supported": ["plain"]}, "PKCE S256"),
    ],
)
def test_unsafe_metadata_is_refused(override: dict[str, Any], message: str) -> None:
    document = {k: v for k, v in _metadata(**override).items() if v is not None}
    with pytest.raises(FederationError, match=message):
        parse_metadata(document, CIS2_ISSUER)


def test_metadata_is_cached_and_a_blip_serves_the_last_good_copy() -> None:
    url = f"{CIS2_ISSUER}/.well-known/openid-configuration"
    http = FakeHttp({url: _metadata()})
    now = [0.0]
    cache = MetadataCache(url, CIS2_ISSUER, http, ttl_seconds=100, timeout=1, clock=lambda: now[0])
    cache.get()
    cache.get()
    assert len(http.calls) == 1
    now[0] = 150.0
    http.routes[url] = (503, {})
    assert cache.get().issuer == CIS2_ISSUER  # stale but within one more ttl
    now[0] = 400.0
    with pytest.raises(FederationError) as caught:
        cache.get()
    assert caught.value.code is FederationErrorCode.SOURCE_UNAVAILABLE


# --- keys ----------------------------------------------------------------------------------


def _public(alg: str, kid: str) -> dict[str, Any]:
    key = jose.load_signing_key(alg, generate_private_pem(alg))  # type: ignore[arg-type]
    return {**key.public_jwk, "kid": kid}


def test_only_usable_public_signing_keys_are_taken_from_a_jwks() -> None:
    rsa = _public("RS256", "good-rsa")
    ec = {k: v for k, v in _public("ES256", "good-ec").items() if k != "alg"}  # alg inferred from kty/crv
    jwks = {"keys": [
        rsa, ec,
        {**_public("RS256", "enc"), "use": "enc"},
        {**_public("RS256", "mislabelled"), "alg": "ES256"},
        {**_public("RS256", "dup")}, {**_public("RS256", "dup")},
        {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac", "alg": "HS256"},
        {**_public("RS256", "private"), "d": "AAAA"},
        {k: v for k, v in _public("RS256", "x").items() if k != "kid"},
        "not a key",
    ]}
    assert set(jose.verification_keys_from_jwks(jwks, {"RS256", "ES256"})) == {"good-rsa", "good-ec"}
    assert set(jose.verification_keys_from_jwks(jwks, {"RS256"})) == {"good-rsa"}
    assert jose.verification_keys_from_jwks({"keys": "nope"}, {"RS256"}) == {}


def test_an_unknown_kid_refetches_at_most_once_per_floor() -> None:
    url = "https://idp.example/jwks"
    http = FakeHttp({url: {"keys": [_public("RS256", "k1")]}})
    now = [0.0]
    keys = UpstreamKeys(lambda: url, http, {"RS256"}, ttl_seconds=3600, timeout=1, clock=lambda: now[0])
    assert set(keys.keys_for("k1")) == {"k1"}
    http.routes[url] = {"keys": [_public("RS256", "k1"), _public("RS256", "k2")]}
    assert set(keys.keys_for("k2")) == {"k1"}  # forged kids cannot make us fetch in a loop
    now[0] = 31.0
    assert set(keys.keys_for("k2")) == {"k1", "k2"}  # after the floor, a rotation is picked up
    assert len(http.calls) == 2


# --- client authentication ------------------------------------------------------------------


class _Ring:
    def __init__(self) -> None:
        self.key = jose.load_signing_key("RS256", generate_private_pem("RS256"))

    def current(self, alg: str) -> jose.SigningKey:
        assert alg == "RS256"
        return self.key


def test_private_key_jwt_assertion_is_rfc7523_shaped_and_unique() -> None:
    ring = _Ring()
    endpoint = f"{CIS2_BASE}/access_token"
    form, headers = client_auth.authenticate("private_key_jwt", "client-1", secret=None, signing_keys=ring, alg="RS256",
                                             audience=endpoint)
    again, _ = client_auth.authenticate("private_key_jwt", "client-1", secret=None, signing_keys=ring, alg="RS256",
                                        audience=endpoint)
    assert headers == {} and form["client_assertion_type"] == client_auth.ASSERTION_TYPE
    pinned = {ring.key.kid: jose.verification_key(ring.key.public_jwk)}
    claims = jose.verify(form["client_assertion"], pinned, audience=endpoint, issuer="client-1")
    second = jose.verify(again["client_assertion"], pinned, audience=endpoint, issuer="client-1")
    assert claims["sub"] == "client-1" and claims["exp"] - claims["iat"] == 60 and claims["jti"] != second["jti"]


def test_client_secret_basic_encodes_each_part() -> None:
    _, headers = client_auth.authenticate("client_secret_basic", "a:b", secret=lambda: "p@ss word", signing_keys=None,
                                          alg="RS256", audience="x")
    import base64

    decoded = base64.b64decode(headers["Authorization"].removeprefix("Basic ")).decode()
    assert [unquote(part) for part in decoded.split(":")] == ["a:b", "p@ss word"] and decoded.count(":") == 1


def test_private_key_jwt_without_keys_fails_closed() -> None:
    with pytest.raises(FederationError) as caught:
        client_auth.authenticate("private_key_jwt", "c", secret=None, signing_keys=None, alg="RS256", audience="x")
    assert caught.value.code is FederationErrorCode.MISCONFIGURED


# --- the authentication request ---------------------------------------------------------------


def _source(**overrides: Any):  # type: ignore[no-untyped-def]
    cfg = OidcSourceConfig.model_validate({"type": "nhs_cis2", "id": "nhs-cis2", "issuer": CIS2_ISSUER, "client_id": "c",
                                           **overrides})
    http = FakeHttp({cfg.effective_discovery_url: _metadata()})
    return build_oidc_source(cfg, "nhs", {}, production=True, http=http)


@pytest.mark.parametrize(
    ("level", "expected"),
    [(None, None), (AssuranceLevel.AAL1, None), (AssuranceLevel.AAL2, "AAL2_OR_AAL3_ANY"), (AssuranceLevel.AAL3, "AAL3_ANY")],
)
def test_acr_values_follow_the_level_asked(level: AssuranceLevel | None, expected: str | None) -> None:
    started = _source().start(UpstreamRequest(callback_url="https://broker.example/cb", min_assurance=level))
    query = parse_qs(urlsplit(started.url).query)
    assert query.get("acr_values") == ([expected] if expected else None)
    assert query["prompt"] == ["login"]  # CIS2: selectedrole needs prompt=login
    assert started.url.startswith(f"{CIS2_BASE}/authorize?")


def test_a_generic_upstream_asks_prompt_login_only_when_forced() -> None:
    source = _source(type="oidc", scopes=["openid"], acr_values={"AAL3": ["phr"]})
    plain = parse_qs(urlsplit(source.start(UpstreamRequest(callback_url="https://b/cb")).url).query)
    forced = parse_qs(urlsplit(source.start(UpstreamRequest(callback_url="https://b/cb", force_authn=True,
                                                            min_assurance=AssuranceLevel.AAL2)).url).query)
    assert "prompt" not in plain and forced["prompt"] == ["login"] and forced["acr_values"] == ["phr"]


def test_discovery_down_makes_the_source_unavailable() -> None:
    cfg = OidcSourceConfig.model_validate({"type": "nhs_cis2", "id": "nhs-cis2", "issuer": CIS2_ISSUER, "client_id": "c"})
    source = build_oidc_source(cfg, "nhs", {}, production=True, http=FakeHttp({}))
    with pytest.raises(FederationError) as caught:
        source.start(UpstreamRequest(callback_url="https://b/cb"))
    assert caught.value.code is FederationErrorCode.SOURCE_UNAVAILABLE


# --- claims and mapping ------------------------------------------------------------------------


def _ctx(**overrides: Any) -> MappingContext:
    return MappingContext(**{"source_id": "nhs-cis2", "issuer": CIS2_ISSUER, "organisation": "nhs",
                             "organisations_by_ods": {"RAL": "royal-free"},
                             "attribute_map": {"name": "name", "email": "email"},
                             "received_at": dt.datetime.now(dt.UTC), **overrides})


def _role(roleid: str, code: str = "S0010:G0020:R8000", org: str = "RAL", activities: list[str] | None = None) -> dict[str, Any]:
    return {"person_roleid": roleid, "person_orgid": "1", "org_code": org, "role_code": code, "role_name": "x",
            "activity_codes": activities or [], "workgroups_codes": [], "aow_codes": []}


def _claims(**overrides: Any) -> dict[str, Any]:
    return {"sub": "555", "iat": int(time.time()), "auth_time": int(time.time()), "name": "Dr A", "acr": "AAL3_ANY",
            "amr": ["N3_SMARTCARD"], "authentication_assurance_level": "3", **overrides}


@pytest.mark.parametrize(
    ("acr", "aal", "expected"),
    [
        ("AAL3_ANY", "3", AssuranceLevel.AAL3),
        ("AAL3_ANY", None, AssuranceLevel.AAL3),
        ("AAL3_ANY", "1", AssuranceLevel.AAL1),  # inconsistent: read at its weakest
        ("AAL2_OR_AAL3_ANY", "3", AssuranceLevel.AAL3),
        ("AAL2_OR_AAL3_ANY", "2", AssuranceLevel.AAL2),
        ("AAL2_OR_AAL3_ANY", None, AssuranceLevel.AAL2),
        ("AAL2_ANY", "3", AssuranceLevel.AAL2),  # cannot exceed what the acr allows
        ("AAL1_USERPASS", "3", AssuranceLevel.AAL1),
        ("AAL1_USERPASS", "0", AssuranceLevel.AAL1),
        ("SOMETHING_NEW", "3", AssuranceLevel.AAL1),
        (None, "3", AssuranceLevel.AAL1),
        ("AAL3_ANY", "9", AssuranceLevel.AAL3),
    ],
)
def test_cis2_assurance_mapping(acr: str | None, aal: str | None, expected: AssuranceLevel) -> None:
    claims = {k: v for k, v in {"acr": acr, "authentication_assurance_level": aal}.items() if v is not None}
    assert cis2.assurance(claims) is expected


def test_identity_assurance_takes_both_spellings_and_the_lower() -> None:
    assert cis2.identity_assurance({"idassurancelevel": "3"}) == "3"
    assert cis2.identity_assurance({"id_assurance_level": 2}) == "2"
    assert cis2.identity_assurance({"id_assurance_level": "3", "idassurancelevel": "1"}) == "1"
    assert cis2.identity_assurance({"idassurancelevel": "high"}) is None


def test_the_active_role_is_the_selected_one() -> None:
    claims = _claims(selected_roleid="2", nhsid_nrbac_roles=[_role("1", "S0080:G0450:R5080", "RRV"),
                                                             _role("2", activities=["B0172", "not-a-code"])])
    identity = cis2.Cis2Profile().identity(claims, _ctx())
    assert identity.roles == ("S0010:G0020:R8000",) and identity.value("activity_codes") == ("B0172",)
    assert identity.organisation == "royal-free" and identity.text("ods_code") == "RAL"
    assert identity.authn.methods == ("sc", "pin", "mfa") and identity.value("upstream_amr") == ("N3_SMARTCARD",)
    assert all(a.source == "nhs-cis2" for a in identity.attributes.values())
    assert identity.subject.issuer == CIS2_ISSUER and identity.authn.source == "nhs-cis2"


def test_without_a_selected_role_there_is_no_role_and_an_unknown_ods_code_keeps_the_source_organisation() -> None:
    identity = cis2.Cis2Profile().identity(_claims(nhsid_nrbac_roles=[_role("1")]), _ctx())
    assert identity.roles == () and identity.organisation == "nhs"
    other = cis2.Cis2Profile().identity(_claims(selected_roleid="1", nhsid_nrbac_roles=[_role("1", org="ZZZ")]), _ctx())
    assert other.organisation == "nhs" and other.roles == ("S0010:G0020:R8000",)


@pytest.mark.parametrize(
    "claims",
    [
        {"selected_roleid": "9", "nhsid_nrbac_roles": [_role("1")]},
        {"selected_roleid": "1", "nhsid_nrbac_roles": [_role("1"), _role("1")]},
        {"selected_roleid": "1", "nhsid_nrbac_roles": [_role("1", code="R8000; DROP")]},
        {"nhsid_nrbac_roles": {"not": "a list"}},
    ],
)
def test_bad_role_claims_are_refused(claims: dict[str, Any]) -> None:
    with pytest.raises(FederationError) as caught:
        cis2.Cis2Profile().identity(_claims(**claims), _ctx())
    assert caught.value.code is FederationErrorCode.INVALID_TOKEN


def test_generic_profile_maps_acr_amr_roles_and_organisation() -> None:
    profile = GenericProfile({"urn:mfa": "AAL2"}, {"hwk": "AAL3"}, "roles", "ods")
    identity = profile.identity(_claims(acr="urn:other", amr=["hwk", "custom"], roles=["admin"], ods="ral"), _ctx())
    assert identity.authn.assurance is AssuranceLevel.AAL3 and identity.authn.methods == ("hwk",)
    assert identity.roles == ("admin",) and identity.organisation == "royal-free"
    assert profile.assurance({"acr": "urn:mfa", "amr": ["hwk"]}) is AssuranceLevel.AAL2  # the acr decides
    assert profile.assurance({}) is AssuranceLevel.AAL1


def test_userinfo_must_be_about_the_same_subject_and_cannot_override_the_id_token() -> None:
    merged = merge_userinfo({"sub": "1", "name": "signed"}, {"sub": "1", "name": "unsigned", "email": "e@x"})
    assert merged == {"sub": "1", "name": "signed", "email": "e@x"}
    with pytest.raises(FederationError, match="userinfo sub"):
        merge_userinfo({"sub": "1"}, {"sub": "2"})
    with pytest.raises(FederationError, match="userinfo sub"):
        merge_userinfo({"sub": "1"}, {})


def test_claim_rules_refuse_missing_required_and_drop_unexpected(caplog: pytest.LogCaptureFixture) -> None:
    from config.oidc_source import ClaimRules

    rules = ClaimRules(required=("name",), optional=("email",), ignored=("tokenName",))
    caplog.set_level(logging.INFO)
    kept = apply_rules("nhs-cis2", {"sub": "1", "name": "n", "email": "e", "tokenName": "t", "surprise": "secret-value"}, rules)
    assert kept == {"sub": "1", "name": "n", "email": "e"}
    assert "surprise" in caplog.text and "secret-value" not in caplog.text and "tokenName" not in caplog.text
    for empty in (None, "", []):
        with pytest.raises(FederationError, match="required claim 'name'"):
            apply_rules("nhs-cis2", {"sub": "1", "name": empty}, rules)


def test_a_malformed_auth_time_is_refused_not_a_crash() -> None:
    for value in ("yesterday", True, -5, 1e12):
        with pytest.raises(FederationError, match="NumericDate"):
            cis2.Cis2Profile().identity(_claims(auth_time=value), _ctx())


def test_unexpected_claim_names_cannot_forge_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    from config.oidc_source import ClaimRules

    caplog.set_level(logging.INFO)
    apply_rules("nhs-cis2", {"sub": "1", "evil\nINFO forged line": "x"}, ClaimRules())
    assert "<unprintable>" in caplog.text and "forged line" not in caplog.text


def test_finish_refuses_kept_state_without_a_nonce() -> None:
    source = _source()
    started = source.start(UpstreamRequest(callback_url="https://b/cb"))
    state = {**started.state, "nonce": ""}
    with pytest.raises(FederationError, match="no nonce"):
        source.finish({"state": started.state["state"], "code": "c"}, state, "https://b/cb")
