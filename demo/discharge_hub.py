"""The Hospital Discharge Hub demo: a tiny, separate OIDC relying party (authlib's Flask client).

It signs people in through the broker with the code flow and PKCE, validates the ID
token with authlib, and shows the claims it received.
"""

from __future__ import annotations

import html
import os
import secrets

from authlib.integrations.flask_client import OAuth
from flask import Flask, redirect, session, url_for

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title} – Hospital Discharge Hub</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:arial,sans-serif;margin:2rem;max-width:48rem;color:#0b0c0c}}
a,button{{font-size:1.1rem}} table{{border-collapse:collapse}} th,td{{text-align:left;padding:.4rem;border-bottom:1px solid #b1b4b6}}</style>
</head><body><header><p><strong>Hospital Discharge Hub</strong> (demo application)</p></header>
<main id="main-content"><h1>{title}</h1>{body}</main></body></html>"""


def create_demo_app(issuer: str, client_id: str, client_secret: str) -> Flask:
    """Return the demo application, registered at ``issuer`` as ``client_id``."""
    app = Flask(__name__)
    app.secret_key = secrets.token_bytes(32)
    app.config.update(SESSION_COOKIE_NAME="discharge-hub", SESSION_COOKIE_SAMESITE="Lax", SESSION_COOKIE_HTTPONLY=True)
    oauth = OAuth(app)
    oauth.register(
        "supercloud",
        client_id=client_id,
        client_secret=client_secret,
        server_metadata_url=f"{issuer}/.well-known/openid-configuration",
        client_kwargs={"scope": "openid profile email organisation", "code_challenge_method": "S256",
                       "token_endpoint_auth_method": "client_secret_basic"},
    )

    @app.route("/")
    def home() -> str:
        user = session.get("user")
        if not user:
            return PAGE.format(title="Sign in", body='<p>You are not signed in.</p><p><a href="/login">Sign in with your work account</a></p>')
        rows = "".join(
            f"<tr><th scope=\"row\">{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in sorted(user.items())
        )
        body = (
            f"<p id=\"welcome\">Signed in as {html.escape(str(user.get('name', user.get('sub'))))}.</p>"
            f"<table><caption>Claims in the ID token</caption><tbody>{rows}</tbody></table>"
            '<p><a href="/logout">Sign out of the demo</a></p>'
        )
        return PAGE.format(title="Your discharge cases", body=body)

    @app.route("/login")
    def login():  # type: ignore[no-untyped-def]
        return oauth.supercloud.authorize_redirect(url_for("callback", _external=True))

    @app.route("/callback")
    def callback():  # type: ignore[no-untyped-def]
        token = oauth.supercloud.authorize_access_token()  # validates state, PKCE, ID token (sig, iss, aud, nonce)
        session["user"] = dict(token["userinfo"])
        return redirect(url_for("home"))

    @app.route("/logout")
    def logout():  # type: ignore[no-untyped-def]
        session.clear()
        return redirect(url_for("home"))

    return app


def main() -> None:
    """Serve the demo app on 127.0.0.1:$DEMO_APP_PORT (default 8001)."""
    app = create_demo_app(
        os.environ["SUPERCLOUD_ISSUER"], os.environ.get("DISCHARGE_HUB_CLIENT_ID", "discharge-hub"),
        os.environ["DISCHARGE_HUB_CLIENT_SECRET"],
    )
    from werkzeug.serving import run_simple

    run_simple("127.0.0.1", int(os.environ.get("DEMO_APP_PORT", "8001")), app, threaded=True)


if __name__ == "__main__":
    main()
