"""Linking a second account to the signed-in person by proving it now, in this browser."""

from __future__ import annotations

from flask import Blueprint, Response, make_response, redirect, render_template, request, session, url_for

from broker.errors import BrokerError, BrokerErrorCode
from broker.sessions import SsoSession
from broker.web.context import current_session, services, set_sso_cookie
from broker.web.security import client_ip
from federation.identity import Identity
from federation.sources import UpstreamRequest

bp = Blueprint("linking", __name__)
LINK_PURPOSE = "link"


def _page(sso: SsoSession, *, error_message: str | None = None, linked: bool = False, status: int = 200) -> Response:
    upstreams = [{"value": s.id, "text": s.display_name, "hint": {"text": o.name}} for o, s in services().login.upstream_sources()]
    page = render_template(
        "account_link.html", title="Link another account", error_message=error_message, linked=linked,
        name=sso.identity.text("name") or sso.identity.text("username") or "You",
        links=services().linking.links(sso.subject_id), upstreams=upstreams,
    )
    return make_response(page, status)


def finish_link(sso: SsoSession | None, expected_sid: str | None, second: Identity) -> Response:
    """Link ``second`` to the session's person if the session is the one the link began in."""
    if sso is None or sso.sid != expected_sid:
        raise BrokerError(BrokerErrorCode.SESSION_EXPIRED, "Your sign-in changed while you were linking. Sign in and try again.")
    try:
        cookie, elevated = services().linking.link_proved(sso, second, ip=client_ip())
    except BrokerError as exc:
        return _page(sso, error_message=exc.message, status=400)
    return set_sso_cookie(_page(elevated, linked=True), cookie, elevated)


@bp.route("/account/link", methods=["GET", "POST"])
def link() -> Response:
    """Show linked accounts; link one proved with its email and password."""
    sso = current_session()
    if sso is None:
        return redirect(url_for("login.start"))
    if request.method == "GET":
        return _page(sso)
    try:
        second, _ = services().login.verify_password(request.form.get("email", ""), request.form.get("password", ""), ip=client_ip())
    except BrokerError as exc:
        return _page(sso, error_message=exc.message, status=400)
    return finish_link(sso, sso.sid, second)


@bp.route("/account/link/upstream", methods=["POST"])
def link_upstream() -> Response:
    """Prove a second account at an upstream (NHS smartcard, a borough's IdP) to link it."""
    sso = current_session()
    if sso is None:
        return redirect(url_for("login.start"))
    from broker.web.upstream_views import UPSTREAM, callback_url

    source_id = request.form.get("source", "")
    try:
        key, url = services().login.start_upstream(
            source_id, UpstreamRequest(callback_url(source_id), force_authn=True), ip=client_ip(),
            extras={"purpose": LINK_PURPOSE, "sid": sso.sid},
        )
    except BrokerError as exc:
        return _page(sso, error_message=exc.message, status=400)
    session[UPSTREAM] = key
    return redirect(url)
