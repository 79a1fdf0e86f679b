"""The Flask application factory (the composition root for HTTP)."""

from __future__ import annotations

import jinja2
from flask import Flask
from flask_wtf.csrf import CSRFProtect
from govuk_frontend_wtf.main import WTFormsHelpers

from broker.services import Services, build_services
from broker.web import saml_idp_views
from broker.web import break_glass_views, linking_views, login_views, logout_views, mfa_views, oidc_views, saml_sp_views, upstream_views
from broker.web import upstream_logout_views
from broker.web import registration_views
from broker.web.errors import install_error_handlers
from broker.web.security import FLOW_COOKIE, cookie_name, install_security_headers
from config.schema import Settings


def create_app(settings: Settings, *, services: Services | None = None) -> Flask:
    """Return the broker's Flask app for ``settings`` (services built unless given).

    Raises BrokerError(NOT_INITIALISED) if the database has not been migrated.
    """
    services = services or build_services(settings)
    https = settings.broker.issuer.startswith("https://")
    app = Flask(__name__, static_folder="static", template_folder="templates")
    app.config.update(
        SECRET_KEY=services.master_key.derive("flask-session"),
        SESSION_COOKIE_NAME=cookie_name(FLOW_COOKIE, https),
        SESSION_COOKIE_SECURE=https,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_PATH="/",
        PERMANENT_SESSION_LIFETIME=1800,
        WTF_CSRF_TIME_LIMIT=1800,
        MAX_CONTENT_LENGTH=64 * 1024,
        PREFERRED_URL_SCHEME="https" if https else "http",
    )
    app.extensions["supercloud"] = services
    app.jinja_loader = jinja2.ChoiceLoader(
        [
            jinja2.FileSystemLoader(app.root_path + "/templates"),
            jinja2.PrefixLoader(
                {
                    "govuk_frontend_jinja": jinja2.PackageLoader("govuk_frontend_jinja"),
                    "govuk_frontend_wtf": jinja2.PackageLoader("govuk_frontend_wtf"),
                }
            ),
        ]
    )
    app.jinja_env.autoescape = True
    WTFormsHelpers(app)
    csrf = CSRFProtect(app)
    app.register_blueprint(login_views.bp)
    app.register_blueprint(oidc_views.bp)
    app.register_blueprint(logout_views.bp)
    app.register_blueprint(mfa_views.bp)
    app.register_blueprint(upstream_views.bp)
    app.register_blueprint(break_glass_views.bp)
    app.register_blueprint(linking_views.bp)
    app.register_blueprint(saml_sp_views.bp)
    app.register_blueprint(upstream_logout_views.bp)
    app.register_blueprint(saml_idp_views.bp)
    # SAML messages come cross-site from SPs, authenticated by their own signatures.
    csrf.exempt(saml_idp_views.sso)
    csrf.exempt(saml_idp_views.slo)
    app.register_blueprint(registration_views.bp)
    # Machine-to-machine endpoints authenticate the client instead of a browser session.
    csrf.exempt(oidc_views.token)
    csrf.exempt(oidc_views.userinfo)
    csrf.exempt(oidc_views.authorize)
    # An upstream's answer is bound to the browser by the kept state, not a form token.
    csrf.exempt(upstream_views.callback)
    csrf.exempt(oidc_views.introspect)
    csrf.exempt(oidc_views.revoke)
    csrf.exempt(logout_views.end_session)
    csrf.exempt(upstream_logout_views.backchannel)  # server to server: the signed logout token authenticates it
    csrf.exempt(registration_views.register)  # RFC 7591/7592: bearer tokens, no browser
    csrf.exempt(registration_views.configuration)
    install_security_headers(app, https=https)
    install_error_handlers(app)
    outbox = services.oidc.logout.outbox

    @app.before_request
    def _backchannel_sweep() -> None:
        # Every worker delivers back-channel logout tokens left due by any process (one that died,
        # or a retry whose pause is over); at most one look per 30 s, in a background thread.
        outbox.sweep()

    if services.organisations is not None:
        # At most one read of the registry's version counter per request, and none within
        # broker.organisations_recheck_seconds of the last (0: every request); a change made by
        # any process (console, CLI, another worker) is picked up within that bound, without a restart.
        organisations = services.organisations
        recheck_seconds = settings.broker.organisations_recheck_seconds

        @app.before_request
        def _organisations_in_step() -> None:
            organisations.sync(recheck_seconds)

    @app.route("/")
    def index():  # type: ignore[no-untyped-def]
        from flask import redirect, url_for

        return redirect(url_for("login.start"))

    return app
