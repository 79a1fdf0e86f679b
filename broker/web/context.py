"""Access to the services and the signed-in session from inside a request."""

from __future__ import annotations

from flask import Response, current_app, g, request

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


def _secure() -> bool:
    return services().settings.broker.issuer.startswith("https://")


def set_sso_cookie(response: Response, cookie: str, sso: SsoSession) -> Response:
    """Put the SSO session's cookie on ``response`` (HttpOnly, SameSite=Lax, Secure under HTTPS)."""
    max_age = int((sso.expires_at - sso.created_at).total_seconds())
    response.set_cookie(sso_cookie_name(), cookie, max_age=max_age, path="/", secure=_secure(), httponly=True, samesite="Lax")
    return response


def clear_sso_cookie(response: Response) -> Response:
    """Remove the SSO cookie from the browser."""
    response.delete_cookie(sso_cookie_name(), path="/", secure=_secure(), httponly=True, samesite="Lax")
    return response
