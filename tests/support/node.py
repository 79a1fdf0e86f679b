"""Node.js peers: the openid-client relying party in tests/node, run as a subprocess.

``npm ci`` in tests/node installs the pinned packages (openid-client, axe-core). When node
or those packages are missing, the calling test skips with a hint, or fails under CI=true.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.peers import peer_missing
from tests.support.settings import DEMO_PASSWORD, ROOT

NODE_DIR = ROOT / "tests" / "node"
NODE_MODULES = NODE_DIR / "node_modules"
RP_SCRIPT = NODE_DIR / "rp_code_flow.mjs"
_HOW = "run `npm ci` in tests/node (make test does it)"


def node_executable() -> str:
    """Return the path of ``node``; skip (fail under CI) the test if it or the packages are missing."""
    node = shutil.which("node")
    if node is None:
        peer_missing("node openid-client", f"install Node.js 20 or later, then {_HOW}")
    if not (NODE_MODULES / "openid-client" / "package.json").is_file():
        peer_missing("node openid-client", _HOW)
    return node  # type: ignore[return-value]  # peer_missing never returns


def node_module_file(*parts: str) -> Path:
    """Return a file inside tests/node/node_modules; skip (fail under CI) if it is not installed."""
    path = NODE_MODULES.joinpath(*parts)
    if not path.is_file():
        peer_missing(f"node package file {'/'.join(parts)}", _HOW)
    return path


class RelyingPartyFailed(AssertionError):
    """The openid-client relying party exited with an error (its stderr is the message)."""


def run_relying_party(
    *,
    issuer: str,
    client_id: str,
    client_secret: str,
    redirect_uri: str,
    email: str,
    password: str = DEMO_PASSWORD,
    alg: str | None = None,
    mode: str = "signin",
    timeout: float = 60.0,
) -> dict[str, Any]:
    """Run rp_code_flow.mjs and return the JSON object it prints.

    Secrets go through the environment, not argv. Raises RelyingPartyFailed (with node's
    stderr) when the script exits non-zero.
    """
    command = [
        node_executable(), str(RP_SCRIPT),
        "--issuer", issuer, "--client-id", client_id, "--redirect-uri", redirect_uri,
        "--email", email, "--mode", mode,
    ]
    if alg:
        command += ["--alg", alg]
    env = {**os.environ, "RP_CLIENT_SECRET": client_secret, "RP_PASSWORD": password}
    completed = subprocess.run(command, cwd=NODE_DIR, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if completed.returncode != 0:
        raise RelyingPartyFailed(f"openid-client RP exited {completed.returncode}:\n{completed.stderr.strip()[-3000:]}")
    return json.loads(completed.stdout)
