"""Fixtures for the OIDC provider tests: a deployment with one application of each kind.

- ``discharge-hub``: the default confidential web app (client_secret_basic), with
  refresh tokens, token exchange towards ``care-records-api``, back- and front-channel logout.
- ``post-app``: client_secret_post. ``jwt-app``: private_key_jwt with an inline JWKS.
- ``pairwise-app``: pairwise subjects in sector ``sector-one.test``; ``pairwise-twin``
  in the same sector; ``service-a``: client_credentials towards ``care-records-api``.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from config import load_settings
from tests.oidc import jwt_tools
from tests.support.settings import TEST_CLIENT_ID, TEST_REDIRECT_URI, SettingsFactory

SECRETS = {
    "POST_APP_SECRET": "post-app-secret-0123456789abcdefghijklmnopqrstu",
    "PAIRWISE_SECRET": "pairwise-secret-0123456789abcdefghijklmnopqrstu",
    "SERVICE_A_SECRET": "service-a-secret-0123456789abcdefghijklmnopqrst",
    "CARE_RECORDS_SECRET": "care-records-secret-0123456789abcdefghijklmnop",
}
JWT_APP_KEY = jwt_tools.ec_key()


class LogoutReceiver:
    """A tiny HTTP server on loopback that records back-channel logout POSTs."""

    def __init__(self) -> None:
        self.received: list[dict[str, str]] = []
        self.status = 200
        self.statuses: list[int] = []  # answered first, one per request, then ``status``
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                from urllib.parse import parse_qs

                length = int(self.headers.get("Content-Length", "0"))
                body = parse_qs(self.rfile.read(length).decode())
                receiver.received.append({"path": self.path, **{k: v[0] for k, v in body.items()},
                                          "content_type": self.headers.get("Content-Type", "")})
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else receiver.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[LogoutReceiver]:
    server = LogoutReceiver()
    yield server
    server.close()


def applications(receiver_url: str) -> list[dict[str, Any]]:
    """The applications of the OIDC test deployment."""
    return [
        {
            "client_id": TEST_CLIENT_ID,
            "name": "Hospital Discharge Hub",
            "redirect_uris": [TEST_REDIRECT_URI],
            "post_logout_redirect_uris": ["http://127.0.0.1:8001/"],
            "client_secret": {"env": "TEST_CLIENT_SECRET"},
            "grant_types": ["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:token-exchange"],
            "allowed_audiences": ["care-records-api"],
            "backchannel_logout_uri": f"{receiver_url}/backchannel",
            "frontchannel_logout_uri": "http://127.0.0.1:8001/frontchannel",
        },
        {
            "client_id": "post-app",
            "name": "Post App",
            "redirect_uris": ["http://127.0.0.1:8002/callback"],
            "client_secret": {"env": "POST_APP_SECRET"},
            "token_endpoint_auth_method": "client_secret_post",
            "signing_alg": "RS256",
        },
        {
            "client_id": "jwt-app",
            "name": "JWT App",
            "redirect_uris": ["http://127.0.0.1:8003/callback"],
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": [jwt_tools.public_jwk(JWT_APP_KEY, "k1")]},
            "backchannel_logout_uri": f"{receiver_url}/jwt-app/backchannel",
        },
        {
            "client_id": "pairwise-app",
            "name": "Pairwise App",
            "redirect_uris": ["http://127.0.0.1:8004/callback"],
            "client_secret": {"env": "PAIRWISE_SECRET"},
            "subject_type": "pairwise",
            "sector_identifier": "sector-one.test",
        },
        {
            "client_id": "service-a",
            "name": "Service A",
            "client_secret": {"env": "SERVICE_A_SECRET"},
            "grant_types": ["client_credentials"],
            "allowed_audiences": ["care-records-api", "https://api.example.test/records"],
        },
        {
            "client_id": "care-records-api",
            "name": "Care Records API",
            "client_secret": {"env": "CARE_RECORDS_SECRET"},
            "grant_types": ["client_credentials"],
            "allowed_audiences": ["discharge-hub"],
        },
    ]


@pytest.fixture
def settings(settings_factory: SettingsFactory, receiver: LogoutReceiver, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """The OIDC test deployment's settings (overrides the suite-wide ``settings``)."""
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    document = settings_factory.document()
    document["applications"] = applications(receiver.url)
    return load_settings(settings_factory.write(document))
