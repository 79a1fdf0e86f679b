"""The broker served over real HTTP (``supercloud serve`` under gunicorn) and the demo application.

Started once per test session (per xdist worker), on free loopback ports.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
import yaml

from federation.keys import MasterKey
from tests.support.settings import ROOT, demo_organisations

CLIENT_SECRET = "live-client-secret-0123456789abcdefghijklmnop"


def free_port() -> int:
    """Return a TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen[bytes], timeout: float = 180.0) -> None:
    """Wait until ``url`` answers 200. Raises RuntimeError if the process dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


@dataclasses.dataclass
class LiveBroker:
    """A running broker: its issuer URL and the applications registered in it."""

    issuer: str
    config_path: Path
    env: dict[str, str]
    client_id: str
    client_secret: str
    redirect_uri: str
    demo_app_url: str
    processes: list[subprocess.Popen[bytes]]

    def stop(self) -> None:
        """Terminate every process, waiting for them to exit."""
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def start_live_broker(folder: Path, database_url: str) -> LiveBroker:
    """Configure, initialise and start the broker and the demo app in ``folder``; return handles."""
    port, app_port = free_port(), free_port()
    issuer = f"http://127.0.0.1:{port}"
    app_url = f"http://127.0.0.1:{app_port}"
    redirect_uri = "http://127.0.0.1:9/callback"  # a test client that never listens: tests read the Location
    document = {
        "broker": {
            "issuer": issuer,
            "environment": "development",
            "database_url": database_url,
            "master_key": {"env": "LIVE_MASTER_KEY"},
        },
        "organisations": demo_organisations(),
        "applications": [
            {
                "client_id": "test-rp",
                "name": "Test relying party",
                "redirect_uris": [redirect_uri],
                "client_secret": {"env": "LIVE_CLIENT_SECRET"},
            },
            {
                "client_id": "test-rp-rs256",
                "name": "Test relying party (RS256)",
                "redirect_uris": [redirect_uri],
                "client_secret": {"env": "LIVE_CLIENT_SECRET"},
                "signing_alg": "RS256",
            },
            {
                "client_id": "discharge-hub",
                "name": "Hospital Discharge Hub",
                "redirect_uris": [f"{app_url}/callback"],
                "client_secret": {"env": "LIVE_CLIENT_SECRET"},
            },
        ],
    }
    config_path = folder / "live.yaml"
    config_path.write_text(yaml.safe_dump(document, sort_keys=False))
    env = {
        **os.environ,
        "LIVE_MASTER_KEY": MasterKey.generate_text(),
        "LIVE_CLIENT_SECRET": CLIENT_SECRET,
        "SUPERCLOUD_ISSUER": issuer,
        "DISCHARGE_HUB_CLIENT_SECRET": CLIENT_SECRET,
        "DEMO_APP_PORT": str(app_port),
        "PYTHONPATH": str(ROOT),
    }
    log = open(folder / "broker.log", "wb")  # noqa: SIM115 - kept open for the process's life
    broker = subprocess.Popen(
        [sys.executable, "-m", "broker", "--config", str(config_path), "serve", "--port", str(port), "--workers", "2"],
        env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
    )
    processes = [broker]
    try:
        wait_for(f"{issuer}/.well-known/openid-configuration", broker)
        app = subprocess.Popen([sys.executable, "-m", "demo.discharge_hub"], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        processes.append(app)
        wait_for(f"{app_url}/", app)
    except RuntimeError:
        for process in processes:
            process.kill()
        raise RuntimeError("live broker did not start:\n" + (folder / "broker.log").read_text(errors="replace")[-4000:]) from None
    return LiveBroker(
        issuer=issuer,
        config_path=config_path,
        env=env,
        client_id="test-rp",
        client_secret=CLIENT_SECRET,
        redirect_uri=redirect_uri,
        demo_app_url=app_url,
        processes=processes,
    )
