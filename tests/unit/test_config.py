"""Configuration: every problem reported at once with its path; secrets never inline; production rules."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from config import ConfigError, load_settings
from config.loader import parse_settings

ROOT = Path(__file__).resolve().parents[2]


def _problems(text: str, tmp_path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_settings(text, source="test.yaml", base_dir=tmp_path)
    return [str(p) for p in info.value.problems]


def test_every_problem_is_reported_with_its_path(tmp_path: Path) -> None:
    problems = _problems(
        """
broker:
  issuer: http://127.0.0.1:8000/
  environment: development
  master_key: {env: X}
  colour: blue
organisations:
  - id: camden
    name: Camden
    kind: borough
    sources:
      - {type: static, id: camden}
      - {type: static, users_file: u.yaml}
  - {id: Bad Id, name: x, kind: council}
applications:
  - {client_id: ok-app, name: A, redirect_uris: ["not a url"], client_secret: {env: S}}
""",
        tmp_path,
    )
    assert "broker.issuer: must not end with '/'" in problems
    assert "broker.colour: unknown key" in problems
    assert "organisations[0].sources[0].users_file: Field required" in problems
    assert "organisations[0].sources[1].id: Field required" in problems
    assert any(p.startswith("organisations[1].id:") for p in problems)
    assert any(p.startswith("organisations[1].kind:") for p in problems)
    assert any(p.startswith("applications[0].redirect_uris:") for p in problems)


def test_semantic_problems_and_missing_secrets_are_reported_together(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    problems = _problems(
        """
broker: {issuer: "http://127.0.0.1:8000", environment: development, master_key: {env: NOT_SET_ANYWHERE}}
organisations:
  - {id: camden, name: A, kind: borough, domains: [camden.test]}
  - {id: camden, name: B, kind: borough}
  - {id: islington, name: C, kind: borough, domains: [camden.test]}
applications:
  - {client_id: app-one, name: A, redirect_uris: ["http://127.0.0.1/cb"], client_secret: {file: missing.txt}}
""",
        tmp_path,
    )
    assert "organisations[1].id: 'camden' is used more than once" in problems
    assert "organisations[2].domains[0]: camden.test is already claimed by camden" in problems
    assert "broker.master_key: environment variable NOT_SET_ANYWHERE is not set" in problems
    assert any(p.startswith("applications[0].client_secret: cannot read secret file") for p in problems)


def test_a_secret_written_inline_is_refused(tmp_path: Path) -> None:
    problems = _problems(
        'broker: {issuer: "http://127.0.0.1:8000", environment: development, master_key: "c2VjcmV0"}\n', tmp_path
    )
    assert any(p.startswith("broker.master_key:") for p in problems)


def test_production_refuses_the_static_directory_and_plain_http(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("K", "x" * 43)
    problems = _problems(
        """
broker: {issuer: "http://sso.london.test", master_key: {env: K}}
organisations:
  - id: camden
    name: Camden
    kind: borough
    sources: [{type: static, id: camden-demo, users_file: u.yaml}]
""",
        tmp_path,
    )
    assert "broker.issuer: must be https:// in production" in problems
    assert "organisations[0].sources[0].type: the static directory is for demos and tests; it is refused in production" in problems


def test_production_is_the_default_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("K", "x")
    settings = parse_settings('broker: {issuer: "https://sso.london.test", master_key: {env: K}}', source="t", base_dir=tmp_path)
    assert settings.is_production


def test_secret_values_never_appear_in_repr(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MASTER", "very-secret-master-key-value")
    settings = parse_settings('broker: {issuer: "https://sso.london.test", master_key: {env: MASTER}}', source="t", base_dir=tmp_path)
    assert settings.broker.master_key.reveal() == "very-secret-master-key-value"
    assert "very-secret" not in repr(settings) and "very-secret" not in str(settings.model_dump())


def test_yaml_syntax_errors_name_the_line(tmp_path: Path) -> None:
    problems = _problems("broker:\n  issuer: [unclosed\n", tmp_path)
    assert problems[0].startswith("line ")


def test_environment_overrides_the_deployment_values(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("K", "x")
    monkeypatch.setenv("SUPERCLOUD_ISSUER", "https://other.london.test")
    settings = parse_settings('broker: {issuer: "https://sso.london.test", master_key: {env: K}}', source="t", base_dir=tmp_path)
    assert settings.broker.issuer == "https://other.london.test"


def test_the_demo_configuration_is_valid_without_its_secrets() -> None:
    settings = load_settings(ROOT / "config" / "demo" / "london.yaml", resolve_secrets=False)
    assert {o.id for o in settings.organisations} >= {"camden", "newham", "hackney", "barnet", "nhs"}
    assert not settings.is_production


def test_config_check_command_lists_problems_and_exits_non_zero(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"broker": {"issuer": "ftp://x", "master_key": {"env": "K"}}, "applications": "none"}))
    result = subprocess.run([sys.executable, "-m", "broker", "config", "check", str(bad)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "broker.issuer: must be an absolute http:// or https:// URL" in result.stderr
    assert "applications:" in result.stderr
