"""Signing keys: scheduled rotation (``supercloud keys rotate --if-due``) keeps tokens verifying."""

from __future__ import annotations

import datetime as dt

from click.testing import CliRunner
from sqlalchemy import update

from broker.cli import cli
from broker.storage.models import SigningKeyRow
from broker.storage.types import utcnow
from tests.oidc.helpers import tokens_for, verify_id_token


def _rotate(settings, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, ["--config", str(settings.base_dir / "broker.yaml"), "keys", "rotate", *args], obj={})


def test_rotate_if_due_does_nothing_for_young_keys(settings, services) -> None:
    result = _rotate(settings, "--if-due", "--max-age-days", "30")
    assert result.exit_code == 0, result.output
    assert "ES256: not due" in result.output and "RS256: not due" in result.output


def test_rotate_if_due_rotates_old_keys_and_old_tokens_still_verify(settings, services, app) -> None:
    client = app.test_client()
    before = tokens_for(client)
    old_kid = services.keyring.current("ES256").kid
    with services.db.begin() as session:
        session.execute(update(SigningKeyRow).where(SigningKeyRow.status == "current")
                        .values(activated_at=utcnow() - dt.timedelta(days=31)))
    result = _rotate(settings, "--if-due", "--max-age-days", "30", "--alg", "ES256")
    assert result.exit_code == 0 and "ES256: current key is now" in result.output
    services.keyring._loaded_at = 0.0
    assert services.keyring.current("ES256").kid != old_kid
    published = {k["kid"]: k for k in client.get("/jwks.json").get_json()["keys"]}
    assert old_kid in published, "the previous key stays published"
    verify_id_token(services, before["id_token"])
    after = tokens_for(client)
    assert verify_id_token(services, after["id_token"])["sub"]


def test_rotate_without_alg_or_if_due_is_a_usage_error(settings, services) -> None:
    assert _rotate(settings).exit_code != 0
