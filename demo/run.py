"""``make demo``: prepare the embedded demo (SQLite, keys, secrets) and run the broker and the demo app.

Secrets are generated on first run into ``var/demo/`` (never committed) and passed to the
processes through their environment.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from federation.keys import MasterKey

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "config" / "demo" / "london.yaml"
STATE = Path(os.environ.get("SUPERCLOUD_DEMO_STATE", ROOT / "var" / "demo"))
PERSONAS = [
    ("amara.okafor@camden.test", "Camden adult social worker, discharge team"),
    ("kwame.mensah@newham.test", "Newham discharge coordinator"),
    ("sofia.rossi@hackney.test", "Hackney school admissions officer"),
    ("tom.hughes@camden.test", "Camden information-governance security officer"),
    ("sam.leaver@camden.test", "Camden leaver (disabled: sign-in refused)"),
    ("priya.shah@camden.test", "Camden account that must change its password"),
    ("lee.locked@camden.test", "Camden locked account"),
    ("ada.mensah@nhs.test", "NHS consultant (R8000)"),
    ("ben.carter@nhs.test", "NHS nurse (R8001)"),
    ("grace.obi@nhs.test", "NHS privacy officer (R0001, B0015)"),
]
DEMO_PASSWORD = "london-demo"


def _secret(name: str, make: callable) -> str:  # type: ignore[valid-type]
    path = STATE / name
    if not path.exists():
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


def main() -> int:
    """Run until interrupted; return the exit status."""
    STATE.mkdir(parents=True, exist_ok=True)
    port = int(os.environ.get("PORT", "8000"))
    issuer = f"http://127.0.0.1:{port}"
    env = {
        "SUPERCLOUD_DATABASE_URL": f"sqlite:///{STATE / 'supercloud.db'}",
        **os.environ,
        "SUPERCLOUD_CONFIG": str(CONFIG),
        "SUPERCLOUD_ISSUER": issuer,
        "SUPERCLOUD_MASTER_KEY": _secret("master.key", MasterKey.generate_text),
        "DISCHARGE_HUB_CLIENT_SECRET": _secret("discharge-hub.secret", lambda: os.urandom(32).hex()),
    }
    supercloud = [sys.executable, "-m", "broker"]
    subprocess.run([*supercloud, "init"], env=env, check=True)
    processes = [
        subprocess.Popen([*supercloud, "serve", "--no-init", "--port", str(port)], env=env),
        subprocess.Popen([sys.executable, "-m", "demo.discharge_hub"], env=env),
    ]
    time.sleep(1.5)
    print(
        f"\nLondon Supercloud demo\n  Broker (sign-in page): {issuer}/login\n"
        f"  OIDC discovery:        {issuer}/.well-known/openid-configuration\n"
        f"  Hospital Discharge Hub (demo app): http://127.0.0.1:{os.environ.get('DEMO_APP_PORT', '8001')}/\n\n"
        f"Demo accounts (password for all: {DEMO_PASSWORD}):"
    )
    for email, who in PERSONAS:
        print(f"  {email:30} {who}")
    print("\nPress Ctrl-C to stop.", flush=True)
    try:
        while all(p.poll() is None for p in processes):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for p in processes:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in processes:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
