"""Signing keys: encrypted at rest, rotated without breaking applications."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from broker.keyring import KeyRing
from broker.storage.models import SigningKeyRow
from federation import jose
from federation.errors import FederationError
from federation.keys import MasterKey


def test_private_keys_are_stored_encrypted(services) -> None:  # type: ignore[no-untyped-def]
    with services.db() as session:
        rows = session.execute(select(SigningKeyRow)).scalars().all()
    assert len(rows) == 4
    for row in rows:
        assert b"PRIVATE KEY" not in row.encrypted_private_key


def test_another_master_key_cannot_read_the_keys(services) -> None:  # type: ignore[no-untyped-def]
    other = KeyRing(services.db, MasterKey.from_text(MasterKey.generate_text()))
    with pytest.raises(FederationError):
        other.current("ES256")


def test_rotation_keeps_old_tokens_verifiable_and_publishes_the_next_key(services) -> None:  # type: ignore[no-untyped-def]
    ring = KeyRing(services.db, services.master_key)
    old = ring.current("ES256")
    token = jose.sign({"iss": "i", "aud": "a", "iat": 1, "exp": 9999999999}, old)
    published_next = {k["kid"] for k in ring.jwks()["keys"]} - {old.kid}
    new_kid = ring.rotate("ES256")
    assert new_kid in published_next, "the promoted key was published before it signed"
    assert ring.current("ES256").kid == new_kid
    assert old.kid in ring.verification_keys()
    assert jose.verify(token, ring.verification_keys(), audience="a", issuer="i")["iss"] == "i"
    ring.rotate("ES256")
    assert old.kid not in {k["kid"] for k in ring.jwks()["keys"]}, "keys two rotations old are retired"


def test_master_key_must_be_32_bytes() -> None:
    with pytest.raises(FederationError):
        MasterKey.from_text("c2hvcnQ")
    with pytest.raises(FederationError):
        MasterKey.from_text("not base64 at all!!")
