"""The broker deciding with the London policy bundle, served over real HTTP, with two demo apps.

Started once per test session (per xdist worker), on free loopback ports:

- the broker (``supercloud serve`` under gunicorn) with the London organisations, teams,
  role mappings and the Section 75 agreement of config/demo/london.yaml (user files made
  absolute), the policies in policies/bundles/london and a fresh database;
- the demo relying party (demo/discharge_hub.py) twice: as the Hospital Discharge Hub
  (client and service ``discharge-hub``, AAL2 by policy) and as Social Care Case Records
  (client and service ``case-records``, NHS staff only through break-glass).

Both demo apps listen on 127.0.0.1 and name their session cookie ``discharge-hub``; a
browser cookie is not scoped by port, so a test uses one demo app per browser context.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from federation.keys import MasterKey
from tests.support.live import CLIENT_SECRET, free_port, wait_for
from tests.support.settings import LONDON_BUNDLE, ROOT

LONDON_DEMO = ROOT / "config" / "demo" / "london.yaml"
# Environment overrides the broker reads at start-up; a developer's own must not leak in.
_OVERRIDES = ("SUPERCLOUD_CONFIG", "SUPERCLOUD_ISSUER", "SUPERCLOUD_DATABASE_URL", "SUPERCLOUD_REDIS_URL", "SUPERCLOUD_MASTER_KEY")


@dataclasses.dataclass(frozen=True)
class DemoApp:
    """One running instance of the demo relying party."""

    client_id: str
    name: str
    url: str


@dataclasses.dataclass
class LivePolicyBroker:
    """A running broker with the London policies, and its two demo applications."""

    issuer: str
    config_path: Path
    env: dict[str, str]
    discharge_hub: DemoApp
    case_records: DemoApp
    log_path: Path
    processes: list[subprocess.Popen[bytes]]

    def cli(self, *args: str, check: bool = True, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run ``supercloud --config <this broker's config> ARGS``; return the finished process.

        With ``check`` a non-zero exit raises AssertionError carrying the output.
        """
        script = Path(sys.executable).with_name("supercloud")
        command = [str(script)] if script.is_file() else [sys.executable, "-m", "broker"]
        completed = subprocess.run(
            [*command, "--config", str(self.config_path), *args],
            env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False,
        )
        if check and completed.returncode != 0:
            raise AssertionError(f"supercloud {' '.join(args)} exited {completed.returncode}:\n{completed.stdout}\n{completed.stderr}")
        return completed

    def log_tail(self, characters: int = 4000) -> str:
        """Return the end of the broker's and demo apps' shared log."""
        return self.log_path.read_text(errors="replace")[-characters:]

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
                process.wait(timeout=10)


def london_document(issuer: str, database_url: str, apps: list[DemoApp]) -> dict[str, Any]:
    """Return a broker configuration with the London demo's organisations, agreements and
    policies (paths made absolute), ``database_url``, and ``apps`` registered."""
    demo = yaml.safe_load(LONDON_DEMO.read_text(encoding="utf-8"))
    organisations = copy.deepcopy(demo["organisations"])
    for organisation in organisations:
        for source in organisation.get("sources", []):
            if "users_file" in source:
                source["users_file"] = str((LONDON_DEMO.parent / source["users_file"]).resolve())
    return {
        "broker": {
            "issuer": issuer,
            "environment": "development",
            "database_url": database_url,
            "master_key": {"env": "LIVE_MASTER_KEY"},
        },
        "policies": {"bundle": str(LONDON_BUNDLE)},
        "organisations": organisations,
        "agreements": copy.deepcopy(demo.get("agreements", [])),
        "applications": [
            {
                "client_id": app.client_id,
                "name": app.name,
                "service": app.client_id,
                "redirect_uris": [f"{app.url}/callback"],
                "post_logout_redirect_uris": [f"{app.url}/"],
                "client_secret": {"env": "LIVE_CLIENT_SECRET"},
            }
            for app in apps
        ],
    }


def start_live_policy_broker(folder: Path, database_url: str) -> LivePolicyBroker:
    """Configure and start the broker and both demo apps in ``folder``; return handles.

    Raises RuntimeError with the end of the log if anything fails to answer.
    """
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    hub = DemoApp("discharge-hub", "Hospital Discharge Hub", f"http://127.0.0.1:{free_port()}")
    records = DemoApp("case-records", "Social Care Case Records", f"http://127.0.0.1:{free_port()}")
    config_path = folder / "london-live.yaml"
    config_path.write_text(yaml.safe_dump(london_document(issuer, database_url, [hub, records]), sort_keys=False))
    env = {key: value for key, value in os.environ.items() if key not in _OVERRIDES}
    env.update({
        "LIVE_MASTER_KEY": MasterKey.generate_text(),
        "LIVE_CLIENT_SECRET": CLIENT_SECRET,
        "SUPERCLOUD_ISSUER": issuer,
        "PYTHONPATH": str(ROOT),
    })
    log_path = folder / "broker.log"
    log = open(log_path, "wb")  # noqa: SIM115 - kept open for the processes' life
    processes: list[subprocess.Popen[bytes]] = []
    try:
        broker = subprocess.Popen(
            [sys.executable, "-m", "broker", "--config", str(config_path), "serve", "--port", str(port), "--workers", "2"],
            env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        )
        processes.append(broker)
        wait_for(f"{issuer}/.well-known/openid-configuration", broker)
        for app in (hub, records):
            app_env = {**env, "DISCHARGE_HUB_CLIENT_ID": app.client_id, "DISCHARGE_HUB_CLIENT_SECRET": CLIENT_SECRET,
                       "DEMO_APP_PORT": app.url.rsplit(":", 1)[1]}
            process = subprocess.Popen([sys.executable, "-m", "demo.discharge_hub"], env=app_env, cwd=ROOT,
                                       stdout=log, stderr=subprocess.STDOUT)
            processes.append(process)
            wait_for(f"{app.url}/", process)
    except RuntimeError:
        for process in processes:
            process.kill()
        raise RuntimeError(log_path.read_text(errors="replace")[-4000:]) from None
    return LivePolicyBroker(
        issuer=issuer, config_path=config_path, env=env, discharge_hub=hub, case_records=records,
        log_path=log_path, processes=processes,
    )
