"""Sign-in and sign-out pages: email (home-realm discovery), then password."""

from __future__ import annotations

from flask import Blueprint, Response, make_response, redirect, render_template, session, url_for

from broker.errors import BrokerError
from broker.web.context import clear_sso_cookie, current_session, services, set_sso_cookie
from broker.web.forms import EmailForm, PasswordForm
from broker.web.security import client_ip
from federation.sources import CallbackSource, PasswordSource

bp = Blueprint("login", __name__)
PENDING = "pending_authorization"
EMAIL = "login_email"


def _application_name() -> str | None:
    pending = session.get(PENDING)
    if not pending:
        return None
    client = services().clients.get(pending.get("client_id", ""))
    if client is None and services().saml_idp is not None:  # a parked SAML request names its SP
        try:
            provider = services().saml_idp.providers.get(pending.get("client_id", ""))
        except BrokerError:
            provider = None
        return provider.name if provider else None
    return client.name if client else None


@bp.route("/login", methods=["GET", "POST"])
def start() -> Response | str:
    """Ask for the work email address and find the person's organisation."""
    form = EmailForm()
    error_message = None
    if form.validate_on_submit():
        try:
            organisation = services().login.discover(form.email.data or "")
        except BrokerError as exc:
            error_message = exc.message
        else:
            email = (form.email.data or "").strip()
            if not any(isinstance(s, PasswordSource) for s in organisation.sources):
                upstream = next((s for s in organisation.sources if isinstance(s, CallbackSource)), None)
                if upstream is not None:
                    from broker.web.upstream_views import start as start_upstream

                    return start_upstream(upstream.id, login_hint=email)
            session[EMAIL] = email
            session["login_organisation"] = organisation.name
            return redirect(url_for("login.password"))
    elif not form.is_submitted() and session.get(EMAIL):
        form.email.data = session[EMAIL]
    status = 400 if form.errors or error_message else 200
    return make_response(
        render_template(
            "login_email.html", title="Sign in", form=form, error_message=error_message,
            application=_application_name(), upstream_choice=bool(services().login.upstream_sources()),
        ),
        status,
    )


@bp.route("/login/password", methods=["GET", "POST"])
def password() -> Response | str:
    """Ask for the password and sign the person in; resume a pending authorization request."""
    email = session.get(EMAIL)
    if not email:
        return redirect(url_for("login.start"))
    form = PasswordForm()
    error_message = None
    if form.validate_on_submit():
        try:
            cookie, sso, has_second_factor = services().login.password_sign_in(email, form.password.data or "", ip=client_ip())
        except BrokerError as exc:
            error_message = exc.message
        else:
            pending = session.get(PENDING)
            session.clear()  # a new sign-in starts a new browser flow state
            if pending:
                session[PENDING] = pending
            if has_second_factor:
                target = url_for("mfa.verify")  # enrolled people always sign in with their second factor
            elif pending:
                target = url_for("oidc.resume")
            else:
                target = url_for("login.signed_in")
            return set_sso_cookie(redirect(target), cookie, sso)
    status = 400 if form.errors or error_message else 200
    return make_response(
        render_template(
            "login_password.html",
            title="Enter your password",
            form=form,
            error_message=error_message,
            email=email,
            organisation=session.get("login_organisation", ""),
        ),
        status,
    )


@bp.route("/signed-in")
def signed_in() -> Response | str:
    """Tell a person who signed in directly (not for an application) that they are signed in."""
    sso = current_session()
    if sso is None:
        return redirect(url_for("login.start"))
    name = sso.identity.text("name") or "You"
    return render_template(
        "message.html",
        title="You are signed in",
        paragraphs=[f"{name} is signed in to the London Supercloud.", "You can now go to your service."],
        signed_in=True,
    )


@bp.route("/logout", methods=["GET", "POST"])
def logout() -> Response | str:
    """GET asks for confirmation; POST (with its CSRF token) ends the SSO session."""
    from flask import request

    sso = current_session()
    if request.method == "GET":
        if sso is None:
            return render_template("message.html", title="You are signed out", paragraphs=["You are not signed in."])
        return render_template(
            "message.html",
            title="Sign out",
            paragraphs=["Sign out of the London Supercloud and every service you reached through it?"],
            signed_in=True,
        )
    if sso is not None:
        from broker.web.saml_idp_views import has_saml_services, start_idp_logout

        if has_saml_services(sso):  # SAML SPs are signed out front-channel, one after the other
            return start_idp_logout(sso)
        result = services().oidc.end_session(sso, reason="user_signout", ip=client_ip())
        from broker.web.upstream_logout_views import sign_out_upstream

        upstream = sign_out_upstream(sso.sid, target=None, frontchannel=result.frontchannel_urls) if result.ended else None
        if upstream is not None:  # on to the upstream the session came from; it sends the browser back
            session.clear()
            return clear_sso_cookie(upstream)
    session.clear()
    response = make_response(
        render_template("message.html", title="You are signed out", paragraphs=["You have signed out of the London Supercloud."])
    )
    return clear_sso_cookie(response)
