"""Signing in at an upstream identity provider (NHS CIS2, a borough's ADFS or Entra ID) and back.

The state of each upstream sign-in is kept server-side; its key rides in this browser's
flow cookie. A SAML response arrives as a cross-site POST, which a SameSite=Lax cookie does
not accompany: such a callback is answered with a form that re-posts it from our own origin
(a "cookie bounce"), so the state stays bound to the browser without SameSite=None.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, make_response, redirect, render_template, request, session, url_for

from broker.login import UPSTREAM_SESSION
from broker.web.context import current_session, services, set_sso_cookie
from broker.web.linking_views import LINK_PURPOSE, finish_link
from broker.web.login_views import PENDING
from broker.web.security import client_ip
from federation.identity import AssuranceLevel
from federation.sources import UpstreamRequest

bp = Blueprint("upstream", __name__)
UPSTREAM = "upstream_state"
BOUNCED = "_bounced"
MAX_PARAMS = 16


def callback_url(source_id: str) -> str:
    """Return the absolute callback URL registered at the upstream for ``source_id``."""
    return f"{services().settings.broker.issuer}/login/callback/{source_id}"


def start(source_id: str, *, login_hint: str | None = None, min_assurance: AssuranceLevel | None = None,
          force_authn: bool = False) -> Response:
    """Redirect the browser to the upstream; remember the state key in the flow cookie."""
    key, url = services().login.start_upstream(
        source_id,
        UpstreamRequest(callback_url(source_id), login_hint=login_hint, min_assurance=min_assurance, force_authn=force_authn),
        ip=client_ip(),
    )
    session[UPSTREAM] = key
    return redirect(url)


@bp.route("/login/choose", methods=["GET", "POST"])
def choose() -> Response | str:
    """Let the person pick their organisation's sign-in (for example "NHS smartcard")."""
    choices = services().login.upstream_sources()
    error_message = None
    if request.method == "POST":
        chosen = request.form.get("source", "")
        if chosen in {source.id for _, source in choices}:
            return start(chosen)
        error_message = "Select how you sign in"
    items = [{"value": source.id, "text": source.display_name, "hint": {"text": org.name}} for org, source in choices]
    page = render_template("login_choose.html", title="How do you sign in?", items=items, error_message=error_message)
    return make_response(page, 400 if error_message else 200)


@bp.route("/login/upstream/<source_id>")
def step_up(source_id: str) -> Response:
    """Send a signed-in person back to their upstream for a higher assurance (step-up)."""
    try:
        level = AssuranceLevel(int(request.args.get("min_assurance", "2")))
    except ValueError:
        abort(400)
    return start(source_id, min_assurance=level, force_authn=True)


@bp.route("/login/callback/<source_id>", methods=["GET", "POST"])
def callback(source_id: str) -> Response | str:
    """The upstream's answer (OIDC redirect or SAML POST): finish the sign-in and carry on."""
    params = request.args if request.method == "GET" else request.form
    if len(params) > MAX_PARAMS:
        abort(400)
    if request.method == "POST" and UPSTREAM not in session and not params.get(BOUNCED):
        fields = {k: v for k, v in params.items() if k != BOUNCED}
        return render_template("bounce.html", title="Continue signing in", action=request.path, fields=fields)
    key = session.pop(UPSTREAM, None)
    values = {k: v for k, v in params.items() if k not in {BOUNCED, "csrf_token"}}
    identity, extras = services().login.verify_upstream(source_id, key, values, callback_url(source_id), ip=client_ip())
    if extras.get("purpose") == LINK_PURPOSE:
        return finish_link(current_session(), extras.get("sid"), identity)
    cookie, sso = services().login.open_session(identity, source_id, ip=client_ip())
    if extras.get(UPSTREAM_SESSION) is not None:
        # For logout in either direction and the upstream's session lifetime (broker.upstream_sessions).
        services().upstream_logout.sessions.record(sso.sid, extras[UPSTREAM_SESSION])
    pending = session.get(PENDING)
    session.clear()
    if pending:
        session[PENDING] = pending
    target = url_for("oidc.resume") if pending else url_for("login.signed_in")
    return set_sso_cookie(redirect(target), cookie, sso)
