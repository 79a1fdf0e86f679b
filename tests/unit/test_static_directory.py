"""The static demo directory and its adapter into an identity source."""

from __future__ import annotations

from pathlib import Path

import pytest

from directories import DirectoryError, DirectoryErrorCode
from directories.static import StaticDirectory, hash_password
from federation.directory_source import DirectorySource
from federation.errors import FederationError, FederationErrorCode
from federation.identity import AssuranceLevel

DEMO = Path(__file__).resolve().parents[2] / "config" / "demo" / "users" / "camden.yaml"


@pytest.fixture(scope="module")
def camden() -> StaticDirectory:
    return StaticDirectory.from_file("camden-demo", DEMO)


def test_right_password_gives_the_account(camden: StaticDirectory) -> None:
    record = camden.authenticate("Amara.Okafor@camden.test ", "london-demo")
    assert record.attributes["name"] == "Amara Okafor"
    assert {g.name for g in record.groups} >= {"Adult Social Care", "Care Staff"}


@pytest.mark.parametrize(
    ("username", "password", "code"),
    [
        ("amara.okafor@camden.test", "wrong", DirectoryErrorCode.INVALID_CREDENTIALS),
        ("nobody@camden.test", "london-demo", DirectoryErrorCode.INVALID_CREDENTIALS),
        ("amara.okafor@camden.test", "", DirectoryErrorCode.EMPTY_PASSWORD),
        ("amara.okafor@camden.test", "  ", DirectoryErrorCode.EMPTY_PASSWORD),
        ("sam.leaver@camden.test", "london-demo", DirectoryErrorCode.ACCOUNT_DISABLED),
        ("lee.locked@camden.test", "london-demo", DirectoryErrorCode.ACCOUNT_LOCKED),
        ("priya.shah@camden.test", "london-demo", DirectoryErrorCode.PASSWORD_MUST_CHANGE),
        ("*", "london-demo", DirectoryErrorCode.INVALID_CREDENTIALS),
    ],
)
def test_refusals_carry_a_precise_code(camden: StaticDirectory, username: str, password: str, code) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DirectoryError) as info:
        camden.authenticate(username, password)
    assert info.value.code is code


def test_a_disabled_account_is_not_revealed_by_a_wrong_password(camden: StaticDirectory) -> None:
    with pytest.raises(DirectoryError) as info:
        camden.authenticate("sam.leaver@camden.test", "guess")
    assert info.value.code is DirectoryErrorCode.INVALID_CREDENTIALS


def test_identity_is_keyed_by_directory_and_object_id_with_provenance(camden: StaticDirectory) -> None:
    identity = DirectorySource("camden-demo", "camden", camden).authenticate_password("amara.okafor@camden.test", "london-demo")
    assert identity.subject.issuer == "urn:supercloud:directory:camden-demo"
    assert identity.subject.subject == camden.lookup("amara.okafor@camden.test").object_id
    assert identity.organisation == "camden"
    assert identity.attributes["email"].source == "directory:camden-demo"
    assert identity.authn.assurance is AssuranceLevel.AAL1 and identity.authn.methods == ("pwd",)


def test_refresh_notices_a_leaver(tmp_path: Path) -> None:
    users = tmp_path / "users.yaml"
    entry = "  - {username: a@camden.test, object_id: 0b7e6c8e-4a4e-4d55-9d7f-5d2b0c9a1f01, password_hash: '%s'%s}\n"
    users.write_text("users:\n" + entry % (hash_password("pw-1"), ""))
    identity = DirectorySource("d", "camden", StaticDirectory.from_file("d", users)).authenticate_password("a@camden.test", "pw-1")
    users.write_text("users:\n" + entry % (hash_password("pw-1"), ", status: disabled"))
    source = DirectorySource("d", "camden", StaticDirectory.from_file("d", users))
    with pytest.raises(FederationError) as info:
        source.refresh(identity)
    assert info.value.code is FederationErrorCode.ACCOUNT_NOT_ACTIVE


@pytest.mark.parametrize(
    "content",
    [
        "users: {}",
        "users:\n  - {username: a, object_id: not-a-uuid, password_hash: $argon2id$x}",
        "users:\n  - {username: a, object_id: 0b7e6c8e-4a4e-4d55-9d7f-5d2b0c9a1f01, password_hash: plaintext}",
        "users:\n  - {username: a, object_id: 0b7e6c8e-4a4e-4d55-9d7f-5d2b0c9a1f01, password_hash: $argon2id$x, role: admin}",
        ": : :",
    ],
)
def test_malformed_users_files_are_refused(tmp_path: Path, content: str) -> None:
    path = tmp_path / "users.yaml"
    path.write_text(content)
    with pytest.raises(DirectoryError) as info:
        StaticDirectory.from_file("d", path)
    assert info.value.code is DirectoryErrorCode.MISCONFIGURED


def test_the_broker_refuses_to_build_a_static_source_in_production(settings) -> None:  # type: ignore[no-untyped-def]
    from federation.registry import build_registry

    production = settings.model_copy(update={"broker": settings.broker.model_copy(update={"environment": "production"})})
    with pytest.raises(FederationError) as info:
        build_registry(production)
    assert "refused in production" in info.value.reason
