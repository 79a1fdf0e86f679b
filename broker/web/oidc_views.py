"""OpenID Connect endpoints over HTTP: a thin layer over ``broker.oidc.provider``."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, make_response, redirect, render_template, request, session, url_for

from broker.access import AccessDenied, ObligationPending, StepUpRequired
from broker.audit import AuditEvent
from broker.errors import BrokerError, BrokerErrorCode, OAuthError
from broker.oidc.authorization import AuthorizationError, AuthorizationRequest, AuthorizationResponse
from broker.sessions import SsoSession
from broker.web.context import current_session, services
from broker.web.login_views import PENDING
from broker.web.security import client_ip
from broker.web.step_up import PENDING_NAMESPACE, park, step_up
from federation.identity import AssuranceLevel

bp = Blueprint("oidc", __name__)
FORM_MIMETYPE = "application/x-www-form-urlencoded"


@bp.route("/.well-known/openid-configuration")
def discovery() -> Response:
    """OIDC Discovery §4."""
    return _json(services().oidc.metadata(), cache_seconds=300)


@bp.route("/.well-known/oauth-authorization-server")
def oauth_metadata() -> Response:
    """RFC 8414 §3: the same metadata."""
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
        return respond(provider.error_response(exc))
    sso = current_session()
    if sso is not None and not provider.needs_login(authz, sso):
        return _issue(authz, sso)
    if "none" in authz.prompt:
        services().audit.append(
            AuditEvent("authorization_request", "failure", client_id=client.client_id, ip=client_ip(),
                       details={"error": "login_required", "reason": "prompt=none and the person must sign in"})
        )
        return respond(provider.login_required(authz))
    park(authz)
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
    if taken.value.get("protocol") == "saml":  # a parked SAML AuthnRequest (broker.web.saml_idp_views)
        from broker.web.saml_idp_views import resume_parked

        return resume_parked(taken.value, sso)
    authz = AuthorizationRequest.from_json(taken.value)
    return _issue(authz, sso)


def _issue(authz: AuthorizationRequest, sso: SsoSession) -> Response:
    """Issue the code. An obligation (step-up, break-glass), or ``acr_values`` above the
    session's level that a second factor can reach, parks the request and sends the person
    to fulfil it; with ``prompt=none`` no page is shown and the application gets
    ``interaction_required`` or ``access_denied`` instead (OIDC Core §3.1.2.6)."""
    provider = services().oidc
    silent = "none" in authz.prompt
    wanted = provider.acr_shortfall(authz, sso)
    if wanted is not None and wanted <= AssuranceLevel.AAL2:
        if silent:
            return _silent_failure(authz, "interaction_required", f"acr_values asks for {wanted.acr}: the person must sign in again")
        client = services().clients.get(authz.client_id)
        return step_up(authz, StepUpRequired(wanted, client.name if client else authz.client_id))
    try:
        return respond(provider.issue_code(authz, sso, ip=client_ip()))
    except ObligationPending as exc:
        if silent:
            return _silent_failure(authz, "interaction_required", "the service needs the person to act first")
        return step_up(authz, exc)
    except AccessDenied:
        if silent:
            return _silent_failure(authz, "access_denied", "the person may not use this service")
        raise


def _silent_failure(authz: AuthorizationRequest, error: str, description: str) -> Response:
    services().audit.append(AuditEvent("authorization_request", "failure", client_id=authz.client_id, ip=client_ip(),
                                       details={"error": error, "reason": description}))
    return respond(services().oidc.interaction_required(authz, error, description))


@bp.route("/token", methods=["POST"])
def token() -> Response:
    """Token endpoint (RFC 6749 §3.2): form-encoded POST, JSON answer, never cached."""
    _require_form()
    body = services().oidc.token(request.form.to_dict(flat=False), request.headers.get("Authorization"), ip=client_ip())
    return _json(body)


@bp.route("/introspect", methods=["POST"])
def introspect() -> Response:
    """Token introspection (RFC 7662 §2)."""
    _require_form()
    return _json(services().oidc.introspect(request.form.to_dict(flat=False), request.headers.get("Authorization"), ip=client_ip()))


@bp.route("/revoke", methods=["POST"])
def revoke() -> Response:
    """Token revocation (RFC 7009 §2): 200 with an empty body, whether or not the token was known."""
    _require_form()
    services().oidc.revoke(request.form.to_dict(flat=False), request.headers.get("Authorization"), ip=client_ip())
    return make_response("", 200)


@bp.route("/userinfo", methods=["GET", "POST"])
def userinfo() -> Response:
    """UserInfo endpoint (OIDC Core §5.3); the bearer token per RFC 6750 §2.1 or §2.2."""
    token = None
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        token = header[7:].strip()
    elif request.method == "POST" and request.mimetype == FORM_MIMETYPE:
        token = request.form.get("access_token")
    return _json(services().oidc.userinfo(token, ip=client_ip()))


def respond(response: AuthorizationResponse) -> Response:
    """Send an authorization response: a 302 (``query``) or an auto-submitting form
    (``form_post``, OAuth 2.0 Form Post Response Mode §2) whose script carries the CSP nonce."""
    if response.response_mode == "form_post":
        return make_response(render_template("form_post.html", action=response.redirect_uri, params=response.params))
    return redirect(response.url)


def _require_form() -> None:
    if request.mimetype != FORM_MIMETYPE:
        raise OAuthError("invalid_request", "the body must be application/x-www-form-urlencoded")


def _json(body: object, *, cache_seconds: int = 0) -> Response:
    response = jsonify(body)
    if cache_seconds:
        response.headers["Cache-Control"] = f"public, max-age={cache_seconds}"
    return response
