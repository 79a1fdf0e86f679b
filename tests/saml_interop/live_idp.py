"""The broker as a SAML IdP, served over real HTTP (``supercloud serve`` under gunicorn, 2 workers),
with the London organisations and policies and the interop SPs registered from their metadata.

The SPs must be running first (the broker reads their metadata files at start-up, and
``supercloud sps add --metadata`` adds more to the running broker); once the broker answers,
each SP is told to trust the broker's IdP metadata (``{issuer}/saml/metadata``).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Protocol

import requests
import yaml

from federation.keys import MasterKey
from tests.support.live import CLIENT_SECRET, free_port, wait_for
from tests.support.live_policies import _OVERRIDES, london_document
from tests.support.settings import ROOT


class InteropSp(Protocol):
    """What the broker fixture needs of an interop SP (SimpleSAMLphp or python3-saml)."""

    sp_ids: tuple[str, ...]

    def entity_id(self, sp_id: str) -> str: ...
    def metadata(self, sp_id: str) -> bytes: ...
    def trust_idp(self, idp_metadata: bytes) -> None: ...


@dataclasses.dataclass
class LiveSamlIdp:
    """A running broker with SAML SPs registered: its URLs, config and log."""

    issuer: str
    config_path: Path
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes]
    metadata_xml: bytes

    @property
    def entity_id(self) -> str:
        """The IdP's entity ID (= its metadata URL)."""
        return f"{self.issuer}/saml/metadata"

    @property
    def logout_url(self) -> str:
        """The broker's SAML sign-out page (IdP-initiated single logout)."""
        return f"{self.issuer}/saml/logout"

    def cli(self, *args: str, timeout: float = 60.0) -> str:
        """Run ``supercloud --config <this broker's config> ARGS``; return its output.

        Raises AssertionError carrying the output if it exits non-zero.
        """
        script = Path(sys.executable).with_name("supercloud")
        command = [str(script)] if script.is_file() else [sys.executable, "-m", "broker"]
        done = subprocess.run([*command, "--config", str(self.config_path), *args], env=self.env, cwd=ROOT,
                              capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise AssertionError(f"supercloud {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def log_tail(self, characters: int = 4000) -> str:
        """Return the end of the broker's log."""
        return self.log_path.read_text(errors="replace")[-characters:]

    def stop(self) -> None:
        """Terminate the broker and wait for it. Returns None."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def sp_entries(folder: Path, sps: list[tuple[InteropSp, str, dict[str, str]]],
               idp_initiated: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    """Write each SP entity's metadata to ``folder`` and return ``saml_service_providers`` entries.

    ``sps`` holds (SP instance, implementation label, SP id -> display name); SP ids in
    ``idp_initiated`` accept sign-in started at the broker.
    """
    entries = []
    for sp, label, names in sps:
        for sp_id in sp.sp_ids:
            path = folder / f"sp-{label}-{sp_id}.xml"
            path.write_bytes(sp.metadata(sp_id))
            entries.append({
                "entity_id": sp.entity_id(sp_id),
                "name": f"{names[sp_id]} ({label})",
                "service": sp_id,
                "metadata": {"file": str(path)},
                "name_id_format": "persistent",
                "idp_initiated": sp_id in idp_initiated,
            })
    return entries


def start_saml_idp(folder: Path, database_url: str, service_providers: list[dict[str, Any]]) -> LiveSamlIdp:
    """Configure and start the broker in ``folder``; return it once ``/saml/metadata`` answers.

    Raises RuntimeError with the end of the log if it does not.
    """
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    document = london_document(issuer, database_url, [])
    document["saml_service_providers"] = service_providers
    config_path = folder / "saml-idp.yaml"
    config_path.write_text(yaml.safe_dump(document, sort_keys=False))
    env = {key: value for key, value in os.environ.items() if key not in _OVERRIDES}
    env.update({"LIVE_MASTER_KEY": MasterKey.generate_text(), "LIVE_CLIENT_SECRET": CLIENT_SECRET,
                "SUPERCLOUD_ISSUER": issuer, "PYTHONPATH": str(ROOT)})
    log_path = folder / "broker.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "broker", "--config", str(config_path), "serve", "--port", str(port), "--workers", "2"],
            env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        wait_for(f"{issuer}/saml/metadata", process)
        metadata = requests.get(f"{issuer}/saml/metadata", timeout=10)
        metadata.raise_for_status()
    except (RuntimeError, requests.RequestException):
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        raise RuntimeError("the SAML IdP broker did not start:\n" + log_path.read_text(errors="replace")[-4000:]) from None
    return LiveSamlIdp(issuer=issuer, config_path=config_path, env=env, log_path=log_path, process=process,
                       metadata_xml=metadata.content)
