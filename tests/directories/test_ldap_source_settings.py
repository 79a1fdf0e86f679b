"""LDAP / AD sources in the broker's settings file: the union, secrets, organisation, warnings."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import yaml

from config import ConfigError
from config.ldap_source import LdapSourceConfig
from config.loader import parse_settings
from federation.directory_source import DirectorySource
from federation.registry import build_registry
from federation.sources import PasswordSource, RefreshableSource


def document(source: dict[str, Any], *, environment: str = "development") -> dict[str, Any]:
    issuer = "https://broker.london.test" if environment == "production" else "http://127.0.0.1:8000"
    return {
        "broker": {"issuer": issuer, "environment": environment, "master_key": {"env": "TEST_MASTER_KEY"}},
        "organisations": [
            {"id": "camden", "name": "London Borough of Camden", "kind": "borough", "domains": ["camden.test"],
             "sources": [source]},
        ],
    }


AD = {
    "type": "active_directory",
    "id": "camden-ad",
    "urls": ["ldaps://dc1.camden.test:636"],
    "base_dn": "DC=camden,DC=test",
    "bind_dn": "CN=svc-supercloud,CN=Users,DC=camden,DC=test",
    "bind_password": {"env": "CAMDEN_LDAP_PASSWORD"},
}


def parse(doc: dict[str, Any], tmp_path: Path) -> Any:
    return parse_settings(yaml.safe_dump(doc), source="broker.yaml", base_dir=tmp_path)


def problems(doc: dict[str, Any], tmp_path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(doc, tmp_path)
    return [str(p) for p in info.value.problems]


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    from federation.keys import MasterKey

    monkeypatch.setenv("TEST_MASTER_KEY", MasterKey.generate_text())
    monkeypatch.setenv("CAMDEN_LDAP_PASSWORD", "Svc-Directory-Read-2026!")


def test_ldap_source_is_in_the_union_and_its_secret_resolved(tmp_path: Path) -> None:
    settings = parse(document(AD), tmp_path)
    source = settings.organisations[0].sources[0]
    assert isinstance(source, LdapSourceConfig)
    assert source.bind_password.reveal() == "Svc-Directory-Read-2026!"
    assert "Svc-Directory" not in repr(settings)


@pytest.mark.parametrize("kind", ["ldap", "active_directory"])
def test_registry_builds_a_password_and_refreshable_source(tmp_path: Path, kind: str) -> None:
    source = {**AD, "type": kind}
    if kind == "ldap":
        source.update(user_attribute="uid", urls=["ldaps://ldap.camden.test"])
    registry = build_registry(parse(document(source), tmp_path))
    built = registry.source("camden-ad")
    assert isinstance(built, DirectorySource)
    assert isinstance(built, PasswordSource) and isinstance(built, RefreshableSource)
    assert built.organisation == "camden"


def test_error_paths_do_not_show_the_union_tag(tmp_path: Path) -> None:
    found = problems(document({**AD, "urls": ["https://dc1.camden.test"], "colour": "blue"}), tmp_path)
    assert any(p.startswith("organisations[0].sources[0].urls: ") for p in found), found
    assert "organisations[0].sources[0].colour: unknown key" in found
    assert not any("active_directory" in p.split(":")[0] for p in found)
    missing = problems(document({k: v for k, v in AD.items() if k != "base_dn"}), tmp_path)
    assert "organisations[0].sources[0].base_dn: Field required" in missing


def test_inline_password_is_refused_with_its_path(tmp_path: Path) -> None:
    found = problems(document({**AD, "bind_password": "Svc-Directory-Read-2026!"}), tmp_path)
    assert any(p.startswith("organisations[0].sources[0].bind_password: ") and "inline" in p for p in found), found
    assert not any("Svc-Directory-Read-2026!" in p for p in found)


def test_missing_secret_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CAMDEN_LDAP_PASSWORD")
    found = problems(document(AD), tmp_path)
    assert "organisations[0].sources[0].bind_password: environment variable CAMDEN_LDAP_PASSWORD is not set" in found


def test_unknown_source_type_is_reported(tmp_path: Path) -> None:
    found = problems(document({**AD, "type": "kerberos"}), tmp_path)
    assert any(p.startswith("organisations[0].sources[0]") and "ldap" in p for p in found), found


def test_organisation_must_be_the_parent(tmp_path: Path) -> None:
    assert parse(document({**AD, "organisation": "camden"}), tmp_path).organisations[0].sources[0].organisation == "camden"
    found = problems(document({**AD, "organisation": "newham"}), tmp_path)
    assert any(p.startswith("organisations[0].sources[0].organisation: names 'newham'") for p in found), found


def test_plain_ldap_in_production_warns_at_start_up(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    plain = {**AD, "urls": ["ldap://dc1.camden.test"], "tls_mode": "plain", "allow_plain": True}
    settings = parse(document(plain, environment="production"), tmp_path)
    with caplog.at_level(logging.WARNING):
        build_registry(settings)
    assert any("PRODUCTION" in r.getMessage() and "camden-ad" in r.getMessage() for r in caplog.records)
    assert "Svc-Directory" not in caplog.text
    found = problems(document({**plain, "allow_plain": False}, environment="production"), tmp_path)
    assert any("allow_plain" in p for p in found)
