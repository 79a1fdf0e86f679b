"""Build configuration files for tests over the demo organisations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from config import Settings, load_settings
from federation.keys import MasterKey

ROOT = Path(__file__).resolve().parents[2]
DEMO_USERS = ROOT / "config" / "demo" / "users"
LONDON_BUNDLE = ROOT / "policies" / "bundles" / "london"
DEMO_PASSWORD = "london-demo"
TEST_CLIENT_ID = "discharge-hub"
TEST_CLIENT_SECRET = "test-client-secret-0123456789abcdefghijklmnop"
TEST_REDIRECT_URI = "http://127.0.0.1:8001/callback"


def demo_organisations() -> list[dict[str, Any]]:
    """Return the organisations of the London demo, with absolute paths to the demo users."""
    def static(org: str) -> list[dict[str, Any]]:
        return [{"type": "static", "id": f"{org}-demo", "users_file": str(DEMO_USERS / f"{org}.yaml")}]

    boroughs = ["London boroughs"]
    return [
        {"id": "camden", "name": "London Borough of Camden", "kind": "borough", "domains": ["camden.test"], "sources": static("camden"),
         "memberships": boroughs,
         "teams": [{"id": "camden-hospital-discharge", "name": "Camden Hospital Discharge", "functions": ["discharge"],
                    "groups": ["Discharge Team"]},
                   {"id": "camden-adult-social-care", "name": "Adult Social Care", "groups": ["Adult Social Care"]}],
         "role_mappings": [{"groups": ["Adult Social Care", "Children's Social Care"], "job_roles": ["social-worker"]}]},
        {"id": "newham", "name": "London Borough of Newham", "kind": "borough", "domains": ["newham.test"], "sources": static("newham"),
         "memberships": boroughs,
         "teams": [{"id": "newham-discharge", "name": "Newham Discharge Coordination", "functions": ["discharge"],
                    "groups": ["Discharge Team"]}],
         "role_mappings": [{"groups": ["Discharge Team"], "job_roles": ["discharge-coordinator"]}]},
        {"id": "hackney", "name": "London Borough of Hackney", "kind": "borough", "domains": ["hackney.test"], "sources": static("hackney"),
         "memberships": boroughs,
         "role_mappings": [{"groups": ["School Admissions"], "job_roles": ["admissions-officer"]}]},
        {"id": "nhs", "name": "NHS (trusts and GP practices)", "kind": "health", "domains": ["nhs.test"],
         "memberships": ["NHS", "London health organisations"], "asserts_national_roles": True},
    ]


class SettingsFactory:
    """Writes a configuration file into a temporary folder and loads it."""

    def __init__(self, folder: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
        self.folder = folder
        self.database_url = database_url
        self._monkeypatch = monkeypatch
        monkeypatch.setenv("TEST_MASTER_KEY", MasterKey.generate_text())
        monkeypatch.setenv("TEST_CLIENT_SECRET", TEST_CLIENT_SECRET)

    def document(self, **broker: Any) -> dict[str, Any]:
        """Return the configuration as a dict, with ``broker`` keys overridden."""
        return {
            "broker": {
                "issuer": "http://127.0.0.1:8000",
                "environment": "development",
                "database_url": self.database_url,
                "master_key": {"env": "TEST_MASTER_KEY"},
                "organisations_recheck_seconds": 0,  # tests expect a change made elsewhere to be seen at once
                **broker,
            },
            "organisations": demo_organisations(),
            "applications": [
                {
                    "client_id": TEST_CLIENT_ID,
                    "name": "Hospital Discharge Hub",
                    "redirect_uris": [TEST_REDIRECT_URI],
                    "post_logout_redirect_uris": ["http://127.0.0.1:8001/"],
                    "client_secret": {"env": "TEST_CLIENT_SECRET"},
                }
            ],
        }

    def write(self, document: dict[str, Any], name: str = "broker.yaml") -> Path:
        """Write ``document`` as YAML and return its path."""
        path = self.folder / name
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        return path

    def __call__(self, **broker: Any) -> Settings:
        return load_settings(self.write(self.document(**broker)))
