"""The supercloud command line: registering applications and starting safely."""

from __future__ import annotations

import json

from click.testing import CliRunner

from broker.cli import cli
from tests.support.flask_flow import basic_auth, code_flow, exchange


def _config(settings) -> str:  # type: ignore[no-untyped-def]
    return str(settings.base_dir / "broker.yaml")


def test_clients_add_prints_a_secret_that_works_once_shown(settings, services, app) -> None:  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(
        cli, ["--config", _config(settings), "clients", "add", "--name", "Case Records", "--redirect-uri",
              "http://127.0.0.1:8001/callback", "--json"], obj={},
    )
    assert result.exit_code == 0, result.output
    created = json.loads(result.output)
    assert created["client_id"].startswith("app-") and len(created["client_secret"]) >= 40
    from broker.storage.models import ClientRow

    with services.db() as session:
        row = session.get(ClientRow, created["client_id"])
    assert created["client_secret"] not in row.secret_hash
    client = app.test_client()
    code, verifier, _ = code_flow(client, client_id=created["client_id"])
    response = exchange(client, code, verifier, headers=basic_auth(created["client_id"], created["client_secret"]))
    assert response.status_code == 200


def test_clients_add_refuses_a_bad_redirect_uri(settings, services) -> None:  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(
        cli, ["--config", _config(settings), "clients", "add", "--name", "X", "--redirect-uri", "javascript:alert(1)"], obj={}
    )
    assert result.exit_code != 0
    assert "absolute http" in result.output


def test_commands_on_an_unmigrated_database_say_what_to_run(settings_factory) -> None:  # type: ignore[no-untyped-def]
    settings = settings_factory()
    result = CliRunner().invoke(cli, ["--config", str(settings.base_dir / "broker.yaml"), "audit", "verify"], obj={})
    assert result.exit_code != 0
    assert "supercloud db upgrade" in result.output


def test_missing_configuration_is_a_clear_error(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("SUPERCLOUD_CONFIG", raising=False)
    result = CliRunner().invoke(cli, ["audit", "verify"], obj={})
    assert result.exit_code != 0
    assert "SUPERCLOUD_CONFIG" in result.output
