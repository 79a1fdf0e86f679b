"""Second-factor pages: TOTP verification (and recovery codes), and enrolment with a QR code."""

from __future__ import annotations

import base64

from flask import Blueprint, Response, make_response, redirect, render_template, request, session, url_for

from broker.errors import BrokerError
from broker.web.context import current_session, services, set_sso_cookie
from broker.web.security import client_ip
from broker.web.step_up import PENDING, STEP_UP

bp = Blueprint("mfa", __name__)


def _next_url() -> str:
    return url_for("oidc.resume") if session.get(PENDING) else url_for("login.signed_in")


def _service_name() -> str | None:
    pending = session.get(PENDING)
    client = services().clients.get(pending["client_id"]) if pending else None
    return client.name if client else None


def _reason() -> str | None:
    step = session.get(STEP_UP)
    return step.get("reason") if step else None


@bp.route("/mfa", methods=["GET", "POST"])
def verify() -> Response | str:
    """Ask for the TOTP (or a recovery) code; on success the session reaches AAL2 and the flow resumes."""
    sso = current_session()
    if sso is None:
        return redirect(url_for("login.start"))
    login = services().login
    if not login.totp.is_enrolled(sso.subject_id):
        return redirect(url_for("mfa.setup"))
    error_message = None
    if request.method == "POST":
        try:
            cookie, elevated = login.second_factor(sso, request.form.get("code", ""), ip=client_ip())
        except BrokerError as exc:
            error_message = exc.message
        else:
            session.pop(STEP_UP, None)
            return set_sso_cookie(redirect(_next_url()), cookie, elevated)
    page = render_template(
        "mfa_verify.html", title="Enter your security code", error_message=error_message,
        service=_service_name(), reason=_reason(),
    )
    return make_response(page, 400 if error_message else 200)


@bp.route("/mfa/setup", methods=["GET", "POST"])
def setup() -> Response | str:
    """Enrol an authenticator app: QR code and typed key, confirmed by one code before it counts."""
    sso = current_session()
    if sso is None:
        return redirect(url_for("login.start"))
    login = services().login
    if login.totp.is_enrolled(sso.subject_id) and sso.identity.authn.assurance < 2:
        # Replacing a second factor needs the current one first.
        return redirect(url_for("mfa.verify"))
    account = sso.identity.text("email") or sso.identity.text("username") or sso.subject_id
    error_message = None
    if request.method == "POST":
        try:
            cookie, elevated, codes = login.confirm_enrolment(sso, request.form.get("code", ""), ip=client_ip())
        except BrokerError as exc:
            error_message = exc.message
        else:
            session.pop(STEP_UP, None)
            page = render_template("mfa_recovery.html", title="Your authenticator app is set up", codes=codes, next_url=_next_url())
            return set_sso_cookie(make_response(page), cookie, elevated)
    enrolment = login.totp.pending_enrolment(sso.subject_id, account) or login.totp.begin_enrolment(sso.subject_id, account)
    page = render_template(
        "mfa_setup.html",
        title="Set up your authenticator app",
        error_message=error_message,
        service=_service_name(),
        reason=_reason(),
        qr_base64=base64.b64encode(enrolment.qr_svg.encode()).decode(),
        secret_groups=" ".join(enrolment.secret[i : i + 4] for i in range(0, len(enrolment.secret), 4)),
    )
    return make_response(page, 400 if error_message else 200)
