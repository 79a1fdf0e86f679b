"""Dynamic client registration over HTTP (RFC 7591 §3, RFC 7592 §2): a thin layer over
``broker.oidc.registration``. JSON in, JSON out, never cached; errors render through
``broker.web.errors`` (RFC 7591 §3.2.2 bodies, ``WWW-Authenticate: Bearer`` on 401)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, make_response, request

from broker.web.context import services
from broker.web.security import client_ip

bp = Blueprint("registration", __name__)


@bp.route("/register", methods=["POST"])
def register() -> Response:
    """Client registration endpoint (RFC 7591 §3.1): 201 with the client information."""
    body = services().oidc.registration.register(request.get_data(cache=False), request.content_type,
                                                 request.headers.get("Authorization"), ip=client_ip())
    return _json(body, 201)


@bp.route("/register/<client_id>", methods=["GET", "PUT", "DELETE"])
def configuration(client_id: str) -> Response:
    """Client configuration endpoint (RFC 7592 §2): read, replace or remove the registration."""
    registration = services().oidc.registration
    authorization = request.headers.get("Authorization")
    if request.method == "GET":
        return _json(registration.read(client_id, authorization, ip=client_ip()), 200)
    if request.method == "PUT":
        body = registration.update(client_id, request.get_data(cache=False), request.content_type, authorization, ip=client_ip())
        return _json(body, 200)
    registration.delete(client_id, authorization, ip=client_ip())
    response = make_response("", 204)
    response.headers["Cache-Control"] = "no-store"
    return response


def _json(body: object, status: int) -> Response:
    response = jsonify(body)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response
