"""One set of rules for where SAML metadata comes from, for upstream IdPs and for the broker's SPs
(config/saml_metadata.py), and one reader (federation/upstream_saml/metadata.fetch)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from broker.saml import sp_metadata
from config.saml_sp import SpMetadataConfig
from config.saml_source import IdpMetadataConfig
from federation.upstream_saml import metadata


@pytest.mark.parametrize(("model", "certificate"), [(SpMetadataConfig, "signer_certificate"),
                                                    (IdpMetadataConfig, "signing_certificate")])
@pytest.mark.parametrize(("fields", "message"), [
    ({}, "give exactly one of 'url' or 'file'"),
    ({"url": "https://fed.test/md", "file": "md.xml"}, "give exactly one of 'url' or 'file'"),
    ({"url": "ftp://fed.test/md"}, "absolute https:// URL"),
    ({"url": "https://fed.test/md"}, "metadata fetched from a url must be signed: give {certificate}"),
    ({"file": "md.xml", "refresh_seconds": 5}, "greater than or equal to 60"),
])
def test_both_metadata_origins_refuse_alike(model, certificate: str, fields: dict, message: str) -> None:  # type: ignore[no-untyped-def,type-arg]
    with pytest.raises(ValidationError, match=message.format(certificate=certificate).replace("(", r"\(")):
        model.model_validate(fields)
    model.model_validate({"url": "https://fed.test/md", certificate: "fed.pem"})  # signed: accepted


def test_sp_and_idp_metadata_are_read_by_the_same_reader(tmp_path: Path) -> None:
    (tmp_path / "md.xml").write_bytes(b"x" * (metadata.MAX_DOCUMENT_BYTES + 10))
    data, where = sp_metadata.fetch(SpMetadataConfig(file=Path("md.xml")), tmp_path)
    assert sp_metadata.fetch is metadata.fetch
    assert len(data) == metadata.MAX_DOCUMENT_BYTES + 1, "read one byte over the limit, so the parser refuses it"
    assert where == str(tmp_path / "md.xml")
    with pytest.raises(OSError):
        metadata.fetch(IdpMetadataConfig(file=Path("missing.xml")), tmp_path)
