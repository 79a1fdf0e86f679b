"""Access to the services and the signed-in session from inside a request."""

from __future__ import annotations

from flask import current_app, g, request

from broker.services import Services
from broker.sessions import SsoSession
from broker.web.security import SSO_COOKIE, cookie_name


def services() -> Services:
    """Return the services of the running app."""
    return current_app.extensions["supercloud"]


def sso_cookie_name() -> str:
    """Return the SSO cookie's name for this deployment (``__Host-`` prefixed under HTTPS)."""
    return cookie_name(SSO_COOKIE, services().settings.broker.issuer.startswith("https://"))


def current_session() -> SsoSession | None:
    """Return the browser's live SSO session, or None (looked up once per request)."""
    if "sso_session" not in g:
        g.sso_session = services().sso.find(request.cookies.get(sso_cookie_name()))
    return g.sso_session
