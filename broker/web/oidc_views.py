"""OpenID Connect endpoints over HTTP: a thin layer over ``broker.oidc.provider``."""

from __future__ import annotations

import secrets

from flask import Blueprint, Response, jsonify, redirect, request, session, url_for

from broker.audit import AuditEvent
from broker.errors import BrokerError, BrokerErrorCode, OAuthError
from broker.oidc.authorization import AuthorizationError, AuthorizationRequest
from broker.web.context import current_session, services
from broker.web.login_views import PENDING
from broker.web.security import client_ip

bp = Blueprint("oidc", __name__)
PENDING_NAMESPACE = "authreq"
PENDING_TTL_SECONDS = 1800


@bp.route("/.well-known/openid-configuration")
def discovery() -> Response:
    """OIDC Discovery §4."""
    return _json(services().oidc.metadata(), cache_seconds=300)


@bp.route("/jwks.json")
def jwks() -> Response:
    """The JWK Set of current, next and previous signing keys."""
    return _json(services().keyring.jwks(), cache_seconds=300)


@bp.route("/authorize", methods=["GET", "POST"])
def authorize() -> Response:
    """Authorization endpoint (RFC 6749 §3.1; OIDC Core §3.1.2.1 allows GET and POST)."""
    params = request.args if request.method == "GET" else request.form
    provider = services().oidc
    try:
        client, authz = provider.validate(params.to_dict(flat=False))
    except BrokerError as exc:
        services().audit.append(
            AuditEvent("authorization_request", "failure", client_id=params.get("client_id", "")[:128] or None,
                       ip=client_ip(), details={"reason": exc.code.value})
        )
        raise
    except AuthorizationError as exc:
        services().audit.append(
            AuditEvent("authorization_request", "failure", client_id=params.get("client_id"), ip=client_ip(),
                       details={"error": exc.error, "reason": exc.description})
        )
        return redirect(provider.error_redirect(exc))
    sso = current_session()
    if not provider.needs_login(authz, sso):
        return redirect(provider.issue_code(authz, sso, ip=client_ip()))
    if "none" in authz.prompt:
        return redirect(provider.error_redirect(
            AuthorizationError("login_required", "the person is not signed in", redirect_uri=authz.redirect_uri, state=authz.state)
        ))
    key = secrets.token_urlsafe(24)
    services().state.add(PENDING_NAMESPACE, key, authz.to_json(), PENDING_TTL_SECONDS)
    session[PENDING] = {"key": key, "client_id": client.client_id}
    if authz.login_hint and "@" in authz.login_hint and len(authz.login_hint) <= 256:
        session["login_email"] = authz.login_hint
    return redirect(url_for("login.start"))


@bp.route("/authorize/resume")
def resume() -> Response:
    """Continue the authorization request that was waiting for the person to sign in."""
    pending = session.pop(PENDING, None)
    sso = current_session()
    if not pending or sso is None:
        raise BrokerError(BrokerErrorCode.SESSION_EXPIRED, "Your sign-in took too long or was interrupted. Go back to the service and start again.")
    taken = services().state.take(PENDING_NAMESPACE, pending["key"])
    if taken.value is None:
        raise BrokerError(BrokerErrorCode.SESSION_EXPIRED, "Your sign-in took too long or was interrupted. Go back to the service and start again.")
    authz = AuthorizationRequest.from_json(taken.value)
    return redirect(services().oidc.issue_code(authz, sso, ip=client_ip()))


@bp.route("/token", methods=["POST"])
def token() -> Response:
    """Token endpoint (RFC 6749 §3.2): form-encoded POST, JSON answer, never cached."""
    if request.mimetype != "application/x-www-form-urlencoded":
        raise OAuthError("invalid_request", "the body must be application/x-www-form-urlencoded")
    body = services().oidc.token(
        request.form.to_dict(flat=False), request.headers.get("Authorization"), ip=client_ip()
    )
    return _json(body)


@bp.route("/userinfo", methods=["GET", "POST"])
def userinfo() -> Response:
    """UserInfo endpoint (OIDC Core §5.3); the bearer token per RFC 6750 §2.1 or §2.2."""
    token = None
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        token = header[7:].strip()
    elif request.method == "POST" and request.mimetype == "application/x-www-form-urlencoded":
        token = request.form.get("access_token")
    return _json(services().oidc.userinfo(token))


def _json(body: object, *, cache_seconds: int = 0) -> Response:
    response = jsonify(body)
    if cache_seconds:
        response.headers["Cache-Control"] = f"public, max-age={cache_seconds}"
    return response
