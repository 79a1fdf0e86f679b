"""Logout with upstream identity providers over HTTP: a thin layer over ``broker.upstream_sessions``.

- ``POST /login/backchannel-logout/<source>``: an upstream's back-channel logout token
  (OIDC Back-Channel Logout 1.0 §2.5, form field ``logout_token``); 200 when accepted, 400
  with ``invalid_request`` otherwise (§2.8), never cached.
- ``GET /logout/upstream/return``: the upstream sends the browser back after its own
  sign-out; the broker's sign-out page (front-channel iframes, the application's
  ``post_logout_redirect_uri``) is shown then.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, Response, g, jsonify, make_response, redirect, render_template, request

from broker.errors import BrokerError, BrokerErrorCode
from broker.sessions import SsoSession
from broker.web.context import clear_sso_cookie, services
from broker.web.security import client_ip

bp = Blueprint("upstream_logout", __name__)
MAX_TOKEN_CHARS = 16_384


@bp.route("/login/backchannel-logout/<source_id>", methods=["POST"])
def backchannel(source_id: str) -> Response:
    """Receive an upstream's logout token and end the broker sessions that came from that upstream session."""
    tokens = request.form.getlist("logout_token")
    token = tokens[0] if len(tokens) == 1 and len(tokens[0]) <= MAX_TOKEN_CHARS else ""  # else refused (and audited) as malformed
    logout = services().upstream_logout
    accepted = False
    if logout is not None:
        try:
            logout.backchannel(source_id[:64], token, ip=client_ip())
            accepted = True
        except BrokerError:
            accepted = False  # audited with the precise reason by the service
    if accepted:
        response = make_response("", 200)
    else:
        response = jsonify({"error": "invalid_request", "error_description": "the logout token was refused"})
        response.status_code = 400
    response.headers["Cache-Control"] = "no-store"
    return response


def sign_out_upstream(sid: str | None, *, target: str | None, frontchannel: tuple[str, ...]) -> Response | None:
    """After the broker ended SSO session ``sid``: the redirect to its upstream's logout, or None if there is none.

    ``target`` (where the person goes next: an application's post-logout redirect, or a SAML
    LogoutResponse sent by redirect) and ``frontchannel`` (iframe URLs) are kept server-side
    and used when the upstream sends the browser back.
    """
    logout = services().upstream_logout
    if sid is None or logout is None:
        return None
    started = logout.begin(sid, continuation={"target": target, "frontchannel": list(frontchannel)}, ip=client_ip())
    return redirect(started.url) if started else None


@bp.route("/login/slo/<source_id>")
def saml_slo(source_id: str) -> Response:
    """Our SAML SingleLogoutService (HTTP-Redirect): the IdP's LogoutRequest (ends the broker
    session, answered with our LogoutResponse) or its LogoutResponse to ours (finish signing out)."""
    logout = services().upstream_logout
    if logout is None:
        raise BrokerError(BrokerErrorCode.BAD_REQUEST, "Single logout is not available.")
    result = logout.front_channel(source_id[:64], request.query_string, ip=client_ip())
    if result.redirect:
        return clear_sso_cookie(redirect(result.redirect))
    return clear_sso_cookie(_signed_out(result.continuation))


@bp.route("/logout/upstream/return")
def returned() -> Response:
    """The upstream signed the person out and sent them back: finish the broker's sign-out page."""
    logout = services().upstream_logout
    continuation = logout.returned(request.args.get("state"), ip=client_ip()) if logout else None
    return _signed_out(continuation)


def _signed_out(continuation: dict | None) -> Response:
    if not continuation:
        return make_response(render_template("message.html", title="You are signed out",
                                             paragraphs=["You have signed out of the London Supercloud."]))
    target = continuation.get("target")
    frontchannel = tuple(continuation.get("frontchannel") or ())
    if not frontchannel and target:
        return redirect(target)
    g.csp_frame_src = sorted({f"{urlsplit(u).scheme}://{urlsplit(u).netloc}" for u in frontchannel})
    return make_response(render_template("logged_out.html", title="You are signed out", frontchannel=frontchannel,
                                         target=target))
