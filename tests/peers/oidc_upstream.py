"""A real upstream OpenID Provider for the tests: node oidc-provider 9 as an NHS CIS2 stand-in.

``start_oidc_upstream`` runs tests/node/oidc_upstream.mjs on a free loopback port with the
clients given (oidc-provider metadata: private_key_jwt clients name the broker's
``/jwks.json`` as their ``jwks_uri``). ``OidcUpstreamPeer.tamper`` changes the peer's next
ID token, userinfo or token answer once, for adversarial tests through the real peer.

``served_broker`` serves a broker app over real HTTP (werkzeug, in a thread) so the peer
can fetch the broker's JWKS and a browser stand-in (``requests.Session``) can follow every
redirect between the two.

When node or oidc-provider is missing the test skips with a hint (fails under CI=true).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import select
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import requests
from werkzeug.serving import make_server

from tests.peers import peer_missing
from tests.support.live import free_port
from tests.support.settings import ROOT

NODE_DIR = ROOT / "tests" / "node"
SCRIPT = NODE_DIR / "oidc_upstream.mjs"
START_TIMEOUT_SECONDS = 30.0  # it listens in well under a second; generous for a loaded CI machine
_HOW = "install Node.js 20 or later and run `npm ci` in tests/node (make test does it)"


@dataclasses.dataclass
class OidcUpstreamPeer:
    """A running oidc-provider: its issuer and process."""

    issuer: str
    process: subprocess.Popen[str]
    log_path: Path

    def tamper(self, **spec: Any) -> None:
        """Change the next ``id_token``, ``userinfo`` or ``token`` answer once (see oidc_upstream.mjs)."""
        response = requests.post(f"{self.issuer}/test/tamper", data=json.dumps(spec), timeout=5)
        response.raise_for_status()

    def reset(self) -> None:
        """Forget any tampering not yet used."""
        requests.post(f"{self.issuer}/test/tamper", data=json.dumps({"id_token": None, "userinfo": None, "token": None}),
                      timeout=5).raise_for_status()

    def stop(self) -> None:
        """Stop the peer and wait for it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def log(self) -> str:
        """The peer's stderr so far (for failure messages)."""
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""


def start_oidc_upstream(folder: Path, clients: list[dict[str, Any]], *, port: int | None = None) -> OidcUpstreamPeer:
    """Start the peer; return once it listens. Skips (fails under CI) if node or oidc-provider is missing."""
    node = shutil.which("node")
    if node is None:
        peer_missing("node oidc-provider", _HOW)
    if not (NODE_DIR / "node_modules" / "oidc-provider" / "package.json").is_file():
        peer_missing("node oidc-provider", _HOW)
    port = port or free_port()
    env = {**os.environ, "OIDC_UPSTREAM_CONFIG": json.dumps({"port": port, "host": "127.0.0.1", "clients": clients})}
    log_path = folder / "oidc_upstream.log"
    log = open(log_path, "w")  # noqa: SIM115 - kept open for the process's life
    process = subprocess.Popen([node, str(SCRIPT)], cwd=NODE_DIR, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
    ready, _, _ = select.select([process.stdout], [], [], START_TIMEOUT_SECONDS) if process.stdout else ([], [], [])
    line = process.stdout.readline() if ready and process.stdout else ""
    if not line:
        if process.poll() is None:  # alive but not listening: stop it rather than wait on it for ever
            process.kill()
        process.wait(timeout=5)
        raise RuntimeError(f"oidc_upstream.mjs did not start within {START_TIMEOUT_SECONDS:.0f} s (exit {process.returncode}): "
                           f"{log_path.read_text(errors='replace')[-3000:]}")
    return OidcUpstreamPeer(issuer=json.loads(line)["issuer"], process=process, log_path=log_path)


@contextlib.contextmanager
def served_broker(app: Any, port: int) -> Iterator[str]:
    """Serve the Flask ``app`` on 127.0.0.1:``port`` in a thread; yield its base URL."""
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def follow(session: requests.Session, url: str, *, stop_prefix: str | None = None, limit: int = 20) -> requests.Response:
    """GET ``url`` and follow redirects (across broker and upstream) by hand.

    Returns the first non-redirect response, or the redirect whose target starts with
    ``stop_prefix`` (its Location unfollowed).
    """
    response = session.get(url, allow_redirects=False, timeout=15)
    for _ in range(limit):
        location = response.headers.get("Location")
        if not (response.is_redirect and location):
            return response
        url = urljoin(url, location)
        if stop_prefix and url.startswith(stop_prefix):
            return response
        response = session.get(url, allow_redirects=False, timeout=15)
    raise AssertionError(f"more than {limit} redirects, last {url}")
