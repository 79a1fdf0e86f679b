"""Security headers, cookie names and the client address for every response."""

from __future__ import annotations

import secrets

from flask import Flask, Response, g, request

SSO_COOKIE = "supercloud-session"
FLOW_COOKIE = "supercloud-flow"


def cookie_name(base: str, secure: bool) -> str:
    """Return the cookie name: with the ``__Host-`` prefix under HTTPS (RFC 6265bis §4.1.3.2)."""
    return f"__Host-{base}" if secure else base


def client_ip() -> str | None:
    """Return the peer address of the current request (put a trusted proxy fixer in front if needed)."""
    return request.remote_addr


def csp_nonce() -> str:
    """Return this request's CSP nonce for inline scripts, creating it on first use."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return g.csp_nonce


def install_security_headers(app: Flask, *, https: bool) -> None:
    """Add the security headers every response carries; nothing dynamic is cached."""

    @app.after_request
    def _headers(response: Response) -> Response:
        nonce = csp_nonce()
        # No form-action: Chrome applies it to the redirect that follows a sign-in form,
        # which must reach the application's registered redirect URI.
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; "
            f"script-src 'self' 'nonce-{nonce}'; "
            "style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; "
            "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
        )
        # The front-channel logout page frames the applications' logout URIs (their origins only).
        frame_origins = g.get("csp_frame_src")
        if frame_origins:
            response.headers["Content-Security-Policy"] += "; frame-src " + " ".join(frame_origins)
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        # same-origin, not no-referrer: Flask-WTF checks the Referer of HTTPS form posts.
        response.headers["Referrer-Policy"] = "same-origin"
        # Nothing personal is cached; public documents (discovery, JWKS) set their own policy.
        if request.endpoint != "static" and "Cache-Control" not in response.headers:
            response.headers["Cache-Control"] = "no-store"
            response.headers["Pragma"] = "no-cache"
        if https:
            response.headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
        return response

    app.jinja_env.globals["csp_nonce"] = csp_nonce
