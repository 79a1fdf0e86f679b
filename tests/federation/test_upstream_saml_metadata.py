"""IdP metadata: signature checked against the configured certificate, periodic refresh, a refused
refresh keeps the previous copy; and the configuration rules for SAML sources."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
from pydantic import ValidationError

from config.saml_source import IdpMetadataConfig, SamlSourceConfig
from federation.errors import FederationError, FederationErrorCode
from federation.upstream_saml.metadata import MetadataHolder, parse_idp_metadata
from federation.upstream_saml.xmlsecurity import inspect_document
from tests.peers.simplesamlphp import SimpleSamlPhp, simplesamlphp_barnet  # noqa: F401 - the session fixture


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _signed_metadata(idp: SimpleSamlPhp) -> bytes:
    return requests.get(idp.entity_id, timeout=5).content


def test_metadata_is_verified_refreshed_and_a_bad_refresh_keeps_the_old_copy(simplesamlphp_barnet: SimpleSamlPhp, tmp_path: Path) -> None:
    signed = _signed_metadata(simplesamlphp_barnet)
    path = tmp_path / "idp.xml"
    path.write_bytes(signed)
    clock = Clock()
    holder = MetadataHolder(IdpMetadataConfig(file=path, refresh_seconds=60), tmp_path, None,
                            simplesamlphp_barnet.metadata_signer_file.read_text(), clock=clock)
    first = holder.load()
    assert first is not None and first.entity_id == simplesamlphp_barnet.entity_id
    assert first.sso_redirect_url.endswith("/saml2/idp/SSOService.php") and first.signing_certificates
    assert holder.current() is first  # not yet due
    path.write_bytes(signed.replace(b"SSOService.php", b"SSOServiceX.php"))  # the signature no longer matches
    clock.now += 61
    assert holder.current() is first  # refused refresh: the verified copy stays
    path.write_bytes(_signed_metadata(simplesamlphp_barnet))
    clock.now += 61
    refreshed = holder.current()
    assert refreshed is not first and refreshed.entity_id == first.entity_id


def test_unsigned_metadata_is_refused_when_a_signer_is_configured(simplesamlphp_barnet: SimpleSamlPhp) -> None:
    root = inspect_document(_signed_metadata(simplesamlphp_barnet)).root
    from xml.etree import ElementTree

    from federation.upstream_saml.xmlsecurity import DS

    root.remove(root.find(f"{{{DS}}}Signature"))
    with pytest.raises(FederationError) as caught:
        parse_idp_metadata(ElementTree.tostring(root), None,
                           signer_pem=simplesamlphp_barnet.metadata_signer_file.read_text(), where="test")
    assert caught.value.code is FederationErrorCode.MISCONFIGURED and "not signed" in caught.value.reason


def test_an_aggregate_without_the_configured_entity_is_refused(simplesamlphp_barnet: SimpleSamlPhp) -> None:
    with pytest.raises(FederationError) as caught:
        parse_idp_metadata(_signed_metadata(simplesamlphp_barnet), "https://adfs.other.test/adfs/services/trust",
                           signer_pem=None, where="test")
    assert "does not describe IdP" in caught.value.reason


def _config(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"type": "saml", "id": "barnet-saml", "display_name": "Barnet",
                            "idp_metadata": {"file": "idp.xml"}}
    base.update(changes)
    return base


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"signed": "none"}, "signed: none is refused"),
        ({"idp_metadata": {"url": "https://adfs.barnet.test/md.xml"}}, "must be signed"),
        ({"idp_metadata": {"url": "https://a.test/md", "file": "x.xml", "signing_certificate": "c.pem"}}, "exactly one"),
        ({"sp_key": "-----BEGIN PRIVATE KEY-----"}, "never written inline"),
        ({"sp_key": {"env": "SP_KEY"}}, "together"),
        ({"attributes": {"urn:oid:1.2": "teams"}}, "derived by the organisation registry"),
        ({"attributes": {"urn:oid:1.2": "email", "mail": "email"}}, "same canonical name"),
        ({"clock_skew_seconds": 3600}, "less than or equal to 300"),
        ({"authn_context_levels": {"urn:x": "AAL9"}}, "AAL1"),
    ],
)
def test_unsafe_or_inconsistent_configuration_is_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        SamlSourceConfig.model_validate(_config(**changes))
    assert message in str(caught.value)
