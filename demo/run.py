"""``make demo``: prepare the embedded demo (SQLite, keys, secrets) and run the broker and the
demo apps: the Hospital Discharge Hub (OIDC) and Social Care Case Records (SAML).

Secrets are generated on first run into ``var/demo/`` (never committed) and passed to the
processes through their environment. The SAML SP's key pair and metadata go where
config/demo/london.yaml's ``saml_service_providers`` entry reads them (``var/demo/case-records/``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from config import load_settings
from demo.case_records import ENTITY_ID as CASE_RECORDS_ENTITY_ID
from demo.case_records import ensure_keys, write_metadata
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


def _case_records_metadata() -> Path:
    """Return where the broker's settings read the demo SAML SP's metadata."""
    settings = load_settings(CONFIG, resolve_secrets=False)
    entry = next(sp for sp in settings.saml_service_providers if sp.entity_id == CASE_RECORDS_ENTITY_ID)
    if entry.metadata is None or entry.metadata.file is None:
        raise SystemExit(f"{CONFIG}: the Case Records SP must read its metadata from a file")
    return entry.metadata.file if entry.metadata.file.is_absolute() else settings.base_dir / entry.metadata.file


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
    case_records_port = int(os.environ.get("CASE_RECORDS_PORT", "8002"))
    metadata = _case_records_metadata()
    write_metadata(metadata, f"http://127.0.0.1:{case_records_port}", *ensure_keys(metadata.parent))
    env["CASE_RECORDS_METADATA"] = str(metadata)
    supercloud = [sys.executable, "-m", "broker"]
    subprocess.run([*supercloud, "init"], env=env, check=True)
    processes = [
        subprocess.Popen([*supercloud, "serve", "--no-init", "--port", str(port)], env=env),
        subprocess.Popen([sys.executable, "-m", "demo.discharge_hub"], env=env),
        subprocess.Popen([sys.executable, "-m", "demo.case_records"], env=env),
    ]
    time.sleep(1.5)
    print(
        f"\nLondon Supercloud demo\n  Broker (sign-in page): {issuer}/login\n"
        f"  OIDC discovery:        {issuer}/.well-known/openid-configuration\n"
        f"  Hospital Discharge Hub (demo app): http://127.0.0.1:{os.environ.get('DEMO_APP_PORT', '8001')}/\n"
        f"  SAML IdP metadata:     {issuer}/saml/metadata\n"
        f"  Social Care Case Records (demo SAML SP): http://127.0.0.1:{case_records_port}/\n\n"
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
