"""SAML SP key rollover against a real SimpleSAMLphp 1.19 IdP that encrypts assertions to us.

Our SP metadata publishes a current and a next key for signing and for encryption; after
``supercloud keys rotate --saml-sp`` the next becomes current. An IdP that cached the old
metadata (encrypting to the old current key, checking our AuthnRequests against the old
current and next signing certificates) keeps working, and so does one that encrypts to
the key that was next; one rotation later the oldest key is gone and an IdP still using it
is refused.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from broker.cli import cli
from config import load_settings
from federation.upstream_saml.xmlsecurity import DS, MD, parse_document
from tests.peers.simplesamlphp import (
    OFFICER_PASSWORD,
    SimpleSamlPhp,
    _sp_remote,
    idp_login,
    php,
    simplesamlphp_barnet,  # noqa: F401 - the session fixture
)
from tests.support.http_login import csrf_token

SOURCE = "barnet-roll"
ENCRYPTED = "{urn:oasis:names:tc:SAML:2.0:assertion}EncryptedAssertion"


def _certificates(metadata: bytes) -> dict[str, list[str]]:
    """Our SP metadata's certificates by use, in document order."""
    sp = parse_document(metadata).find(f"{{{MD}}}SPSSODescriptor")
    found: dict[str, list[str]] = {"signing": [], "encryption": []}
    for descriptor in sp.findall(f"{{{MD}}}KeyDescriptor"):
        cert = "".join((descriptor.findtext(f".//{{{DS}}}X509Certificate") or "").split())
        for use in ([descriptor.get("use")] if descriptor.get("use") else ["signing", "encryption"]):
            found[use].append(cert)
    return found


class Rollover:
    """The broker (Flask test client) with a generated-key, encrypted-assertion Barnet source."""

    def __init__(self, settings_factory: Any, idp: SimpleSamlPhp, store: Path) -> None:
        from broker.bootstrap import initialise
        from broker.services import build_services
        from broker.web.app import create_app

        document = settings_factory.document()
        document["organisations"].append({
            "id": "barnet", "name": "London Borough of Barnet", "kind": "borough", "domains": ["barnet.test"],
            "sources": [idp.source_config(SOURCE, sp_key=None, sp_certificate=None, sp_key_store=str(store),
                                          want_assertions_encrypted=True)]})
        self.config_path = settings_factory.write(document)
        settings = load_settings(self.config_path)
        initialise(settings)
        self.services = build_services(settings)
        self.app = create_app(settings, services=self.services)
        self.app.config["TESTING"] = True
        self.idp = idp
        self._remote = idp.directory / "metadata" / "saml20-sp-remote.php"
        self._original = self._remote.read_text()

    @property
    def source(self) -> Any:
        return self.services.registry.source(SOURCE)

    def metadata(self) -> bytes:
        return self.source.sp_metadata()

    def idp_caches(self, metadata: bytes, *, encrypt_to: str) -> None:
        """Register our SP at the IdP as it would from ``metadata``, encrypting to ``encrypt_to`` only."""
        entity_id, entry = _sp_remote(metadata, encrypt=True)
        entry["keys"] = [k for k in entry["keys"] if k["signing"] and not k["encryption"]] + [
            {"type": "X509Certificate", "signing": False, "encryption": True, "X509Certificate": encrypt_to}]
        self._remote.write_text(self._original + f"$metadata[{php(entity_id)}] = {php(entry)};\n")

    def rotate(self) -> str:
        result = CliRunner().invoke(cli, ["--config", str(self.config_path), "keys", "rotate", "--saml-sp", SOURCE], obj={})
        assert result.exit_code == 0, result.output
        return result.output

    def sign_in(self) -> Any:
        """One sign-in at the IdP; return the broker's answer to the IdP's POST."""
        client = self.app.test_client()
        page = client.get("/login/choose").get_data(as_text=True)
        started = client.post("/login/choose", data={"csrf_token": csrf_token(page), "source": SOURCE})
        assert started.status_code == 302, started.get_data(as_text=True)[:500]
        fields = idp_login(requests.Session(), started.headers["Location"], "officer", OFFICER_PASSWORD)
        assert parse_document(base64.b64decode(fields["SAMLResponse"])).find(ENCRYPTED) is not None
        return client.post(f"/login/callback/{SOURCE}", data={k: v for k, v in fields.items() if k != "action"})

    def close(self) -> None:
        self._remote.write_text(self._original)
        self.services.engine.dispose()


@pytest.fixture
def rollover(settings_factory, simplesamlphp_barnet: SimpleSamlPhp, tmp_path: Path):  # type: ignore[no-untyped-def]
    world = Rollover(settings_factory, simplesamlphp_barnet, tmp_path / "barnet-roll-sp.enc")
    yield world
    world.close()


def _signed_in(response: Any) -> bool:
    return response.status_code == 302 and response.headers["Location"].endswith("/signed-in")


def test_metadata_publishes_current_and_next_keys_for_each_use(rollover: Rollover) -> None:
    before = _certificates(rollover.metadata())
    assert len(before["signing"]) == 2 and len(before["encryption"]) == 2
    assert len(set(before["signing"] + before["encryption"])) == 4  # four distinct keys
    assert "rotated" in rollover.rotate()
    after = _certificates(rollover.metadata())
    assert after["signing"][0] == before["signing"][1] and after["encryption"][0] == before["encryption"][1]
    assert before["encryption"][0] not in after["encryption"]  # the previous key decrypts but is not published
    assert after["signing"][1] not in before["signing"] and after["encryption"][1] not in before["encryption"]
    stored = (rollover.source._key_store.path).read_bytes()
    assert b"PRIVATE KEY" not in stored and b"PRIVATE KEY" not in base64.b64decode(stored)
    rotated = [r for r in rollover.services.audit.records() if r.event == "saml_sp_keys_rotated"]
    assert rotated and rotated[-1].details == {"source": SOURCE}


def test_an_idp_with_cached_metadata_keeps_working_across_a_rotation(rollover: Rollover) -> None:
    cached = rollover.metadata()
    current, upcoming = _certificates(cached)["encryption"]
    rollover.idp_caches(cached, encrypt_to=current)
    assert _signed_in(rollover.sign_in())
    rollover.rotate()  # another process (the CLI) rotates; the running broker notices the store changed
    # The IdP still holds the old metadata: it encrypts to the old current key and checks our
    # AuthnRequest (now signed with the key that was next) against the certificates it cached.
    assert _signed_in(rollover.sign_in())
    # The IdP refreshes and encrypts to the key that was next, now current.
    rollover.idp_caches(rollover.metadata(), encrypt_to=upcoming)
    assert _certificates(rollover.metadata())["encryption"][0] == upcoming
    assert _signed_in(rollover.sign_in())


def test_one_rotation_later_the_oldest_key_no_longer_decrypts(rollover: Rollover) -> None:
    cached = rollover.metadata()
    oldest = _certificates(cached)["encryption"][0]
    rollover.rotate()
    rollover.rotate()
    rollover.idp_caches(rollover.metadata(), encrypt_to=oldest)
    refused = rollover.sign_in()
    assert refused.status_code == 400 and "We could not sign you in" in refused.get_data(as_text=True)
    failure = [r for r in rollover.services.audit.records() if r.event == "signin"][-1]
    assert failure.outcome == "failure" and failure.details["source"] == SOURCE


def test_an_idp_encrypting_to_the_next_key_before_rotation_is_understood(rollover: Rollover) -> None:
    metadata = rollover.metadata()
    rollover.idp_caches(metadata, encrypt_to=_certificates(metadata)["encryption"][1])
    assert _signed_in(rollover.sign_in())


def test_configured_keys_are_not_rotated_by_the_broker(settings_factory, simplesamlphp_barnet) -> None:  # type: ignore[no-untyped-def]
    document = settings_factory.document()
    document["organisations"].append({"id": "barnet", "name": "London Borough of Barnet", "kind": "borough",
                                      "domains": ["barnet.test"], "sources": [simplesamlphp_barnet.source_config("barnet-saml")]})
    path = settings_factory.write(document)
    from broker.bootstrap import initialise

    initialise(load_settings(path))
    result = CliRunner().invoke(cli, ["--config", str(path), "keys", "rotate", "--saml-sp", "barnet-saml"], obj={})
    assert result.exit_code != 0 and "configured (sp_key); replace it to rotate" in result.output
