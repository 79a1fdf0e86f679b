"""The break-glass page: why access is exceptional, the reason code and the justification."""

from __future__ import annotations

from flask import Blueprint, Response, make_response, redirect, render_template, request, session, url_for

from broker.break_glass import REASONS
from broker.errors import BrokerError
from broker.web.context import current_session, services
from broker.web.login_views import PENDING
from broker.web.security import client_ip
from broker.web.step_up import BREAK_GLASS

bp = Blueprint("break_glass", __name__)


@bp.route("/break-glass", methods=["GET", "POST"])
def request_access() -> Response | str:
    """Explain, ask for a reason code (01–06) and a justification, then resume the request."""
    sso = current_session()
    wanted = session.get(BREAK_GLASS)
    if sso is None or not wanted or not session.get(PENDING):
        return redirect(url_for("login.start"))
    errors: dict[str, str] = {}
    reason, justification = "", ""
    if request.method == "POST":
        reason = request.form.get("reason", "")
        justification = request.form.get("justification", "")
        if reason not in REASONS:
            errors["reason"] = "Select the reason you need emergency access"
        if not justification.strip():
            errors["justification"] = "Explain why you need emergency access"
        if not errors:
            identity = sso.identity
            try:
                services().break_glass.grant(
                    person=f"{identity.subject.issuer}|{identity.subject.subject}", subject_id=sso.subject_id,
                    organisation=identity.organisation, service=wanted["service"], reason_code=reason,
                    justification=justification, ip=client_ip(),
                )
            except BrokerError as exc:
                errors["justification"] = exc.message
            else:
                session.pop(BREAK_GLASS, None)
                return redirect(url_for("oidc.resume"))
    page = render_template(
        "break_glass.html", title="Emergency access", service=wanted["name"], errors=errors,
        justification=justification,
        reason_items=[{"value": code, "text": f"{code}: {text}", "checked": code == reason} for code, text in REASONS.items()],
        error_list=[{"text": message, "href": f"#{field}"} for field, message in errors.items()],
    )
    return make_response(page, 400 if errors else 200)
