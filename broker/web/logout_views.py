"""RP-initiated logout over HTTP (OIDC RP-Initiated Logout 1.0) with front-channel iframes
(OIDC Front-Channel Logout 1.0 §4): a thin layer over ``broker.oidc.logout``."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, Response, g, make_response, redirect, render_template, request, session

from broker.audit import AuditEvent
from broker.errors import BrokerError, BrokerErrorCode
from broker.oidc.logout import EndSessionRequest
from broker.web.context import current_session, services, sso_cookie_name
from broker.web.security import client_ip
from broker.web.upstream_logout_views import sign_out_upstream

bp = Blueprint("logout", __name__)
PENDING_LOGOUT = "pending_logout"


@bp.route("/end-session", methods=["GET", "POST"])
def end_session() -> Response:
    """The end_session_endpoint (RP-Initiated Logout §2): GET or form POST from the application."""
    params = request.args if request.method == "GET" else request.form
    logout = services().oidc.logout
    try:
        end = logout.validate(params.to_dict(flat=False))
    except BrokerError as exc:
        services().audit.append(AuditEvent("end_session_request", "failure", client_id=(params.get("client_id") or "")[:128] or None,
                                           ip=client_ip(), details={"reason": exc.code.value, "message": exc.message}))
        raise
    sso = current_session()
    if sso is None:
        return _finish(end, frontchannel=())
    if logout.hint_matches(end, sso.sid, sso.subject_id):
        return _sign_out(end)
    # Without a hint naming this session, ask the person (RP-Initiated Logout §2: the OP SHOULD ask).
    session[PENDING_LOGOUT] = {
        "client_id": end.client.client_id if end.client else None,
        "post_logout_redirect_uri": end.post_logout_redirect_uri,
        "state": end.state,
    }
    name = end.client.name if end.client else None
    return make_response(render_template("logout_confirm.html", title="Sign out", application=name))


@bp.route("/end-session/confirm", methods=["POST"])
def confirm() -> Response:
    """The person confirmed (CSRF-protected form) that they want to sign out."""
    pending = session.pop(PENDING_LOGOUT, None)
    if pending is None:
        raise BrokerError(BrokerErrorCode.SESSION_EXPIRED, "Your sign-out took too long. Go back to the service and sign out again.")
    client = services().clients.get(pending["client_id"]) if pending.get("client_id") else None
    redirect_uri = pending.get("post_logout_redirect_uri")
    if redirect_uri and (client is None or redirect_uri not in client.post_logout_redirect_uris):
        redirect_uri = None  # the registration changed meanwhile: never send the person to an unregistered URI
    end = EndSessionRequest(client=client, hint_subject=None, hint_sid=None, post_logout_redirect_uri=redirect_uri,
                            state=pending.get("state"))
    if current_session() is None:
        return _finish(end, frontchannel=())
    return _sign_out(end)


def _sign_out(end: EndSessionRequest) -> Response:
    sso = current_session()
    if sso is not None:
        from broker.web.saml_idp_views import has_saml_services, start_idp_logout

        if has_saml_services(sso):  # SAML SPs of the session are signed out front-channel first
            return start_idp_logout(sso, return_to=end.redirect_url(), reason="rp_initiated" if end.client else "user_signout")
    result = services().oidc.end_session(sso, reason="rp_initiated" if end.client else "user_signout", ip=client_ip()) if sso else None
    session.clear()
    frontchannel = result.frontchannel_urls if result else ()
    # Sign out at the upstream the session came from too, when it offers logout (broker.upstream_sessions).
    upstream = sign_out_upstream(sso.sid if sso else None, target=end.redirect_url(), frontchannel=frontchannel) if result and result.ended else None
    response = upstream or _finish(end, frontchannel=frontchannel)
    secure = services().settings.broker.issuer.startswith("https://")
    response.delete_cookie(sso_cookie_name(), path="/", secure=secure, httponly=True, samesite="Lax")
    return response


def _finish(end: EndSessionRequest, *, frontchannel: tuple[str, ...]) -> Response:
    target = end.redirect_url()
    if not frontchannel and target:
        return redirect(target)
    g.csp_frame_src = sorted({f"{urlsplit(u).scheme}://{urlsplit(u).netloc}" for u in frontchannel})
    return make_response(render_template("logged_out.html", title="You are signed out", frontchannel=frontchannel, target=target))
