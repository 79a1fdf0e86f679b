"""The one place that maps errors to HTTP responses: pages for people, JSON for clients."""

from __future__ import annotations

import logging
import secrets

from flask import Flask, Response, jsonify, make_response, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from broker.errors import BrokerError, OAuthError

log = logging.getLogger(__name__)

_TITLES = {
    "unknown_client": "There is a problem with the service you came from",
    "invalid_redirect_uri": "There is a problem with the service you came from",
    "session_expired": "Your sign-in has expired",
    "access_denied": "You cannot use this service",
    "step_up_required": "This service needs a stronger sign-in",
}


def install_error_handlers(app: Flask) -> None:
    """Register the handlers; nothing leaks a stack trace or a secret to the response."""

    @app.errorhandler(BrokerError)
    def _broker_error(exc: BrokerError) -> Response:
        return _page(exc.status, _TITLES.get(exc.code.value, "Sorry, there is a problem"), [exc.message])

    @app.errorhandler(OAuthError)
    def _oauth_error(exc: OAuthError) -> Response:
        response = jsonify(exc.to_json())
        response.status_code = exc.status
        if exc.status == 401 and request.path.endswith("/token"):
            response.headers["WWW-Authenticate"] = 'Basic realm="supercloud"'
        elif exc.status in (401, 403):
            response.headers["WWW-Authenticate"] = f'Bearer error="{exc.error}", error_description="{exc.description}"'
        return response

    @app.errorhandler(CSRFError)
    def _csrf_error(exc: CSRFError) -> Response:
        return _page(400, "Your form has expired", ["For your security, the page expired. Go back, refresh the page and try again."])

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        titles = {404: "Page not found", 405: "Sorry, that is not allowed here"}
        return _page(exc.code or 500, titles.get(exc.code or 500, "Sorry, there is a problem"), [exc.description or ""])

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        reference = secrets.token_hex(6)
        log.exception("unhandled error, reference %s", reference)
        return _page(500, "Sorry, there is a problem with the service", ["Try again later."], reference=reference)


def _page(status: int, title: str, paragraphs: list[str], *, reference: str | None = None) -> Response:
    return make_response(render_template("message.html", title=title, paragraphs=paragraphs, reference=reference), status)
