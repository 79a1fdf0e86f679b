"""The least a login POST can cost over HTTP here: a Flask app that does no work.

``bench/directories_login_bench.py`` serves it under gunicorn with the broker's worker and
thread settings and times a POST to it (table D). The view reads the form, as the broker's
does, and answers as a successful sign-in does: a 302 that sets a cookie. Not a test, not
part of the broker.
"""

from __future__ import annotations

import secrets

from flask import Flask, Response, redirect, request

app = Flask(__name__)


@app.post("/login/password")
def password() -> Response:
    """Return a 302 to /signed-in that sets a random cookie, after reading the form."""
    if not request.form.get("password"):
        return Response("no password", status=400)
    response = redirect("/signed-in", code=302)
    response.set_cookie("supercloud-session", secrets.token_urlsafe(32), httponly=True, samesite="Lax")
    return response
