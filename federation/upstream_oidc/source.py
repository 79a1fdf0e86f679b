"""An upstream OpenID Connect provider as a CallbackSource (authorization code flow, OIDC Core §3.1).

``start`` builds the authentication request (OIDC Core §3.1.2.1) with PKCE S256 (RFC 7636),
a fresh ``state`` and ``nonce`` kept server-side by the broker, ``acr_values`` for the
level the broker needs, ``prompt=login`` when asked to re-authenticate (always, for CIS2's
``selectedrole``) and ``login_hint``. ``finish`` checks the answer against that state
(``state``, RFC 9207 ``iss``), redeems the code with client authentication, validates the
ID token, merges userinfo, applies the claim rules and maps the result to an Identity.
Every failure is a FederationError with a precise reason; tokens and secrets are never
logged or put in a reason.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol
from urllib.parse import urlencode

from config.oidc_source import OidcSourceConfig
from federation.errors import FederationError, FederationErrorCode
from federation.identity import AssuranceLevel, Identity
from federation.sources import UpstreamLogoutNotice, UpstreamRequest, UpstreamSession, UpstreamStart
from federation.upstream_oidc import client_auth
from federation.upstream_oidc.claims import apply_rules, merge_userinfo
from federation.upstream_oidc.discovery import MetadataCache, ProviderMetadata
from federation.upstream_oidc.http import Http, HttpResponse, urllib_http
from federation.upstream_oidc.keys import UpstreamKeys
from federation.upstream_oidc.logout import end_session_url, validate_logout_token
from federation.upstream_oidc.mapping import MappingContext
from federation.upstream_oidc.tokens import validate_id_token

log = logging.getLogger(__name__)
INVALID = FederationErrorCode.INVALID_TOKEN
UNAVAILABLE = FederationErrorCode.SOURCE_UNAVAILABLE
_ERROR_CODE = re.compile(r"^[\x20-\x21\x23-\x5b\x5d-\x7e]{1,64}$")  # RFC 6749 §4.1.2.1 error


class Profile(Protocol):
    """How one kind of upstream's claims become an Identity (generic OIDC, NHS CIS2)."""

    prompt_login_always: bool

    def assurance(self, claims: Mapping[str, Any]) -> AssuranceLevel:
        """The authentication level the claims vouch for."""
        ...

    def identity(self, claims: Mapping[str, Any], ctx: MappingContext) -> Identity:
        """The canonical identity. Raises FederationError."""
        ...


class OidcUpstream:
    """One upstream OIDC provider serving one member organisation (implements CallbackSource)."""

    def __init__(
        self,
        cfg: OidcSourceConfig,
        organisation: str,
        profile: Profile,
        *,
        organisations_by_ods: Mapping[str, str],
        http: Http = urllib_http,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._cfg = cfg
        self._organisation = organisation
        self._profile = profile
        self._ods = dict(organisations_by_ods)
        self._http = http
        self._clock = clock
        self._signing_keys: client_auth.SigningKeys | None = None
        self._metadata = MetadataCache(cfg.effective_discovery_url, cfg.issuer, http,
                                       ttl_seconds=cfg.metadata_cache_seconds, timeout=cfg.http_timeout_seconds)
        self._keys = UpstreamKeys(lambda: self._metadata.get().jwks_uri, http, cfg.id_token_signing_algs,
                                  ttl_seconds=cfg.jwks_cache_seconds, timeout=cfg.http_timeout_seconds)

    @property
    def id(self) -> str:
        """The source id from configuration."""
        return self._cfg.id

    @property
    def organisation(self) -> str:
        """The member organisation this source serves by default."""
        return self._organisation

    @property
    def display_name(self) -> str:
        """What people choose on the sign-in list."""
        return self._cfg.effective_display_name

    def use_organisations_by_ods(self, organisations_by_ods: Mapping[str, str]) -> None:
        """Replace the ODS code → organisation index (the registry changed; see ``health_ods_index``)."""
        self._ods = dict(organisations_by_ods)

    def use_signing_keys(self, keys: client_auth.SigningKeys) -> None:
        """Sign ``private_key_jwt`` client assertions with the broker's key ring ``keys``."""
        self._signing_keys = keys

    # -- the authentication request ------------------------------------------------------

    def start(self, request: UpstreamRequest) -> UpstreamStart:
        """Return the redirect to the upstream's authorization endpoint and the state to keep.

        Raises FederationError(SOURCE_UNAVAILABLE) if the upstream's metadata cannot be had.
        """
        metadata = self._metadata.get()
        state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(48)  # 64 characters: RFC 7636 §4.1 asks 43-128
        params = {
            "response_type": "code",
            "client_id": self._cfg.client_id,
            "redirect_uri": request.callback_url,
            "scope": " ".join(self._cfg.effective_scopes),
            "state": state,
            "nonce": nonce,
            "code_challenge": _s256(verifier),
            "code_challenge_method": "S256",
        }
        if request.min_assurance is not None:
            wanted = self._acr_values(request.min_assurance)
            if wanted:
                params["acr_values"] = " ".join(wanted)
        force = request.force_authn or self._profile.prompt_login_always
        if force:
            params["prompt"] = "login"
        if request.login_hint:
            params["login_hint"] = request.login_hint
        if self._cfg.session_max_age_seconds is not None:
            params["max_age"] = str(self._cfg.session_max_age_seconds)  # OIDC Core §3.1.2.1
        separator = "&" if "?" in metadata.authorization_endpoint else "?"
        kept = {
            "state": state,
            "nonce": nonce,
            "code_verifier": verifier,
            "redirect_uri": request.callback_url,
            "min_assurance": int(request.min_assurance) if request.min_assurance is not None else None,
            "force_authn": force,
            "started_at": self._clock(),
        }
        return UpstreamStart(url=metadata.authorization_endpoint + separator + urlencode(params), state=kept)

    def _acr_values(self, level: AssuranceLevel) -> list[str]:
        """acr_values for ``level``, else for the nearest higher configured level (asking for
        more is safe: the answer is checked against ``level``); none for AAL1 unless configured,
        since every authentication reaches it."""
        table = self._cfg.effective_acr_values
        if level is AssuranceLevel.AAL1:
            return table.get("AAL1", [])
        for candidate in AssuranceLevel:
            if candidate >= level and candidate.name in table:
                return table[candidate.name]
        return []

    # -- the answer ------------------------------------------------------------------------

    def finish(self, params: Mapping[str, str], state: Mapping[str, Any], callback_url: str) -> Identity:
        """Validate the upstream's answer against the kept ``state``; return the canonical identity.

        Raises FederationError: INVALID_TOKEN (forged, replayed, mismatched, expired, a
        required claim missing, too low an assurance), ACCOUNT_NOT_ACTIVE (the upstream
        refused the person), SOURCE_UNAVAILABLE (the upstream cannot be reached).
        """
        return self.finish_session(params, state, callback_url)[0]

    def finish_session(self, params: Mapping[str, str], state: Mapping[str, Any],
                       callback_url: str) -> tuple[Identity, UpstreamSession]:
        """As ``finish``; also return the upstream session (``sub``, ``sid``, the ID token for a
        later ``id_token_hint``, and when the authentication stops vouching: ``auth_time`` plus
        ``session_max_age_seconds``, refused outright if already past, OIDC Core §3.1.2.1)."""
        expected_state = state.get("state")
        returned = params.get("state", "")
        if not isinstance(expected_state, str) or not hmac.compare_digest(returned.encode(), expected_state.encode()):
            raise FederationError(INVALID, "state mismatch")
        nonce = state.get("nonce")
        if not isinstance(nonce, str) or len(nonce) < 16:
            raise FederationError(INVALID, "no nonce was kept for this sign-in")
        if state.get("redirect_uri") != callback_url:
            raise FederationError(INVALID, "callback URL differs from the one the request was sent with")
        metadata = self._metadata.get()
        if "iss" in params or metadata.iss_parameter_supported:
            # RFC 9207 §2.4: an answer from another provider (mix-up) names another issuer.
            if params.get("iss") != self._cfg.issuer:
                raise FederationError(INVALID, "the answer's iss parameter is not this upstream's issuer")
        if "error" in params:
            error = params["error"] if _ERROR_CODE.match(params["error"]) else "invalid"
            raise FederationError(FederationErrorCode.ACCOUNT_NOT_ACTIVE, f"the upstream refused the sign-in: {error}")
        code = params.get("code", "")
        if not code or len(code) > 2048:
            raise FederationError(INVALID, "no authorization code in the answer")
        tokens = self._redeem(metadata, code, state)
        id_token = tokens.get("id_token")
        access_token = tokens.get("access_token")
        if not isinstance(id_token, str) or not isinstance(access_token, str):
            raise FederationError(INVALID, "the token response lacks an ID token or access token")
        if str(tokens.get("token_type", "")).lower() != "bearer":
            raise FederationError(INVALID, "the token response's token_type is not Bearer")
        now = self._clock()
        claims = validate_id_token(
            id_token,
            keys=self._keys.keys_for,
            issuer=self._cfg.issuer,
            client_id=self._cfg.client_id,
            nonce=nonce,
            algorithms=self._cfg.id_token_signing_algs,
            now=now,
            skew_seconds=self._cfg.clock_skew_seconds,
            max_age_seconds=self._cfg.max_token_age_seconds,
            access_token=access_token,
            authenticated_after=float(state["started_at"]) if state.get("force_authn") else None,
        )
        if self._cfg.userinfo and metadata.userinfo_endpoint:
            claims = merge_userinfo(claims, self._userinfo(metadata.userinfo_endpoint, access_token))
        trusted = apply_rules(self.id, claims, self._cfg.effective_claims)
        context = MappingContext(
            source_id=self.id,
            issuer=self._cfg.issuer,
            organisation=self._organisation,
            organisations_by_ods=self._ods,
            attribute_map=self._cfg.effective_attribute_map,
            received_at=dt.datetime.fromtimestamp(now, dt.UTC),
        )
        identity = self._profile.identity(trusted, context)
        wanted = state.get("min_assurance")
        if isinstance(wanted, int) and identity.authn.assurance < wanted:
            raise FederationError(
                FederationErrorCode.INVALID_CREDENTIALS,
                f"the upstream authenticated at {identity.authn.assurance.name}, AAL{wanted} was asked for",
            )
        return identity, self._session(claims, id_token, now)

    def _session(self, claims: Mapping[str, Any], id_token: str, now: float) -> UpstreamSession:
        auth_time = claims.get("auth_time")
        if not isinstance(auth_time, int | float) or isinstance(auth_time, bool):
            auth_time = claims.get("iat")
        authenticated = float(auth_time) if isinstance(auth_time, int | float) and not isinstance(auth_time, bool) else now
        max_age = self._cfg.session_max_age_seconds
        if max_age is not None and authenticated + max_age <= now - self._cfg.clock_skew_seconds:
            raise FederationError(INVALID, "auth_time is older than max_age: the upstream did not authenticate again")
        sid = claims.get("sid")
        return UpstreamSession(
            source=self.id,
            subject=str(claims["sub"]),
            authenticated_at=dt.datetime.fromtimestamp(authenticated, dt.UTC),
            session_id=sid if isinstance(sid, str) and sid else None,
            id_token=id_token,
            not_after=dt.datetime.fromtimestamp(authenticated + max_age, dt.UTC) if max_age is not None else None,
        )

    # -- logout ------------------------------------------------------------------------------

    def logout_url(self, session: UpstreamSession, *, return_url: str, state: str) -> str | None:
        """The upstream's RP-initiated logout URL for ``session`` (RP-Initiated Logout §2), or None
        if logout is off for this source or the upstream publishes no ``end_session_endpoint``.

        Raises FederationError(SOURCE_UNAVAILABLE) if the metadata cannot be had.
        """
        if not self._cfg.logout:
            return None
        endpoint = self._metadata.get().end_session_endpoint
        if not endpoint:
            return None
        return end_session_url(endpoint, id_token=session.id_token, client_id=self._cfg.client_id,
                               return_url=return_url, state=state)

    def verify_logout_token(self, token: str) -> UpstreamLogoutNotice:
        """Validate a back-channel logout token from this upstream (Back-Channel Logout §2.6).

        Raises FederationError(INVALID_TOKEN) with the reason; also when logout is off here.
        """
        if not self._cfg.logout:
            raise FederationError(INVALID, "back-channel logout is not enabled for this upstream")
        now = self._clock()
        claims = validate_logout_token(
            token, keys=self._keys.keys_for, issuer=self._cfg.issuer, client_id=self._cfg.client_id,
            algorithms=self._cfg.id_token_signing_algs, now=now, skew_seconds=self._cfg.clock_skew_seconds,
            max_age_seconds=self._cfg.logout_token_max_age_seconds,
        )
        exp = claims.get("exp")
        expires = float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else now
        return UpstreamLogoutNotice(
            source=self.id, subject=claims.get("sub"), session_id=claims.get("sid"), token_id=str(claims["jti"]),
            expires_at=max(expires, float(claims["iat"]) + self._cfg.logout_token_max_age_seconds),
        )

    def _redeem(self, metadata: ProviderMetadata, code: str, state: Mapping[str, Any]) -> dict[str, Any]:
        """Exchange the code at the token endpoint (OIDC Core §3.1.3.1-3.1.3.4)."""
        audience = metadata.token_endpoint if self._cfg.client_assertion_audience == "token_endpoint" else self._cfg.issuer
        secret = self._cfg.client_secret
        fields, headers = client_auth.authenticate(
            self._cfg.client_auth_method,
            self._cfg.client_id,
            secret=secret.reveal if secret is not None else None,
            signing_keys=self._signing_keys,
            alg=self._cfg.client_assertion_alg,
            audience=audience,
        )
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": str(state.get("redirect_uri", "")),
            "code_verifier": str(state.get("code_verifier", "")),
            **fields,
        }
        response = self._http(
            "POST", metadata.token_endpoint, data=urlencode(form).encode(), timeout=self._cfg.http_timeout_seconds,
            headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json", **headers},
        )
        body = _json_or_none(response)
        if response.status >= 500 or (response.status != 200 and body is None):
            raise FederationError(UNAVAILABLE, f"token endpoint answered HTTP {response.status}")
        if response.status != 200:
            error = body.get("error") if body else None
            error = error if isinstance(error, str) and _ERROR_CODE.match(error) else "unknown"
            raise FederationError(INVALID, f"token endpoint refused the code: {error} (HTTP {response.status})")
        if body is None:
            raise FederationError(INVALID, "token endpoint answer is not a JSON object")
        return body

    def _userinfo(self, endpoint: str, access_token: str) -> dict[str, Any]:
        """Fetch userinfo (OIDC Core §5.3) as JSON; a signed or encrypted answer is not accepted."""
        response = self._http("GET", endpoint, data=None, timeout=self._cfg.http_timeout_seconds,
                              headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"})
        if response.status >= 500:
            raise FederationError(UNAVAILABLE, f"userinfo answered HTTP {response.status}")
        if response.status != 200:
            raise FederationError(INVALID, f"userinfo refused the access token (HTTP {response.status})")
        if not response.headers.get("content-type", "").lower().startswith("application/json"):
            raise FederationError(INVALID, "userinfo is not plain JSON")
        body = _json_or_none(response)
        if body is None:
            raise FederationError(INVALID, "userinfo is not a JSON object")
        return body


def _s256(verifier: str) -> str:
    """The PKCE S256 challenge: BASE64URL(SHA256(verifier)) (RFC 7636 §4.2)."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")


def _json_or_none(response: HttpResponse) -> dict[str, Any] | None:
    try:
        return response.json()
    except ValueError:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None
