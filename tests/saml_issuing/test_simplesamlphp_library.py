"""A third independent reader: SimpleSAMLphp 1.19's own SAML2 library and xmlseclibs (PHP), as its SP
uses them, check our signatures and decrypt our assertions (simplesamlphp_read.php). It shows why the
key transport is rsa-oaep-mgf1p: the SP loads its key as RSA_1_5 and accepts only MGF1P in its place.

Needs php and SimpleSAMLphp (skips with a hint without them; fails under CI=true).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from broker.saml.issuing import AssertionSpec, ResponseIssuer
from federation.upstream_saml.keys import KeyPair
from tests.peers import peer_missing
from tests.peers.simplesamlphp import HOW_TO_ENABLE, available
from tests.saml_issuing.pysaml2_sp import IDP, SP

READER = Path(__file__).with_name("simplesamlphp_read.php")


@pytest.fixture
def read(tmp_path: Path, idp_pair: KeyPair, sp_pair: KeyPair) -> Callable[[bytes], tuple[int, dict[str, Any]]]:
    """Return a reader: response XML -> (php exit status, what SimpleSAMLphp's library made of it)."""
    if not available():
        peer_missing("SimpleSAMLphp (php)", HOW_TO_ENABLE)
    cert = tmp_path / "idp.pem"
    cert.write_text(idp_pair.cert_pem)
    key = tmp_path / "sp-key.pem"
    key.write_text(sp_pair.key_pem)
    key.chmod(0o600)

    def run(xml: bytes) -> tuple[int, dict[str, Any]]:
        response = tmp_path / "response.xml"
        response.write_bytes(xml)
        done = subprocess.run(["php", str(READER), str(response), str(cert), str(key)],
                              capture_output=True, text=True, timeout=60, check=False)
        return done.returncode, json.loads(done.stdout.strip().splitlines()[-1])

    return run


@pytest.mark.parametrize("content", [None, "aes256-gcm", "aes256-cbc"])
def test_simplesamlphp_verifies_and_decrypts_our_response(
    content: str | None, read: Callable[[bytes], tuple[int, dict[str, Any]]], sp_pair: KeyPair,
    issuer: ResponseIssuer, make_spec: Callable[..., AssertionSpec],
) -> None:
    spec = make_spec(encrypt_to_cert_pem=sp_pair.cert_pem.encode() if content else None, content_encryption=content or "aes256-gcm")
    status, seen = read(issuer.issue(spec))
    assert status == 0, seen
    assert seen["response_signed"] is True
    assert seen["status"]["Code"] == "urn:oasis:names:tc:SAML:2.0:status:Success"
    (assertion,) = seen["assertions"]
    assert assertion == {
        "signed": True,
        "issuer": IDP,
        "name_id": "p-3f9c2a7be01d44c1",
        "name_id_format": "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
        "session_index": "_session-81d2",
        "audiences": [SP],
        "authn_context_class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport",
        "attributes": {"urn:oid:1.3.6.1.4.1.25178.1.2.9": ["camden"], "urn:oid:2.5.4.11": ["Children's services", "Adult social care"]},
    }


def test_simplesamlphp_refuses_a_changed_attribute_and_a_foreign_signature(
    read: Callable[[bytes], tuple[int, dict[str, Any]]], other_pair: KeyPair, issuer: ResponseIssuer,
    make_spec: Callable[..., AssertionSpec],
) -> None:
    status, seen = read(issuer.issue(make_spec(sign_response=False)).replace(b">camden<", b">hackney<"))
    assert status == 1 and "Reference validation failed" in seen["error"]
    forger = ResponseIssuer(other_pair.key_pem.encode(), other_pair.cert_pem.encode())
    status, seen = read(forger.issue(make_spec()))
    assert status == 1 and "Unable to validate Signature" in seen["error"]
