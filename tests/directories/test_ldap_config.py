"""LdapSourceConfig: what an operator can and cannot configure."""

from __future__ import annotations

import logging

import pytest
from pydantic import ValidationError

from config.ldap_source import LdapSourceConfig
from directories.ldap import build_ldap_directory
from tests.support.secrets import resolved_secret

BASE = {
    "type": "active_directory",
    "id": "camden-ad",
    "organisation": "camden",
    "urls": ["ldaps://dc1.camden.test", "ldaps://dc2.camden.test:636"],
    "base_dn": "DC=camden,DC=test",
    "bind_dn": "CN=svc,CN=Users,DC=camden,DC=test",
    "bind_password": resolved_secret("s3cret-service-password"),
}


def make(**overrides: object) -> LdapSourceConfig:
    return LdapSourceConfig.model_validate({**BASE, **overrides})


def test_defaults_for_active_directory() -> None:
    cfg = make()
    assert cfg.tls_mode == "ldaps"
    assert cfg.effective_group_mode == "in_chain"
    assert cfg.effective_user_object_class == "user"
    assert cfg.effective_attribute_map["email"] == "mail"


def test_defaults_for_plain_ldap() -> None:
    cfg = make(type="ldap", user_attribute="uid", urls=["ldaps://ldap.hackney.test"])
    assert cfg.effective_group_mode == "recursive"
    assert cfg.effective_user_object_class == "inetOrgPerson"
    assert cfg.effective_attribute_map["employee_id"] == "employeeNumber"


def test_plain_ldap_needs_explicit_permission() -> None:
    with pytest.raises(ValidationError, match="allow_plain"):
        make(tls_mode="plain", urls=["ldap://dc1.camden.test"])
    assert make(tls_mode="plain", urls=["ldap://dc1.camden.test"], allow_plain=True).allow_plain


def test_url_scheme_must_match_tls_mode() -> None:
    with pytest.raises(ValidationError, match="every url to be ldaps://"):
        make(urls=["ldap://dc1.camden.test"])
    with pytest.raises(ValidationError, match="every url to be ldap://"):
        make(tls_mode="starttls")


def test_urls_are_checked() -> None:
    with pytest.raises(ValidationError, match="must be ldap://"):
        make(urls=["https://dc1.camden.test"])
    with pytest.raises(ValidationError, match="credentials"):
        make(urls=["ldaps://admin:pw@dc1.camden.test"])
    with pytest.raises(ValidationError, match="repeat"):
        make(urls=["ldaps://dc1.camden.test", "ldaps://dc1.camden.test"])
    with pytest.raises(ValidationError):
        make(urls=[])


def test_unknown_keys_are_errors() -> None:
    with pytest.raises(ValidationError, match="extra"):
        make(bind_pasword="typo")


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ValidationError) as info:
        make(
            type="ldap",
            tls_mode="plain",
            urls=["ldap://x.test"],
            group_mode="in_chain",
            user_attribute="sAMAccountName",
        )
    message = str(info.value)
    assert "allow_plain" in message
    assert "in_chain" in message
    assert "sAMAccountName" in message


def test_attribute_map_names_are_validated() -> None:
    assert make(attribute_map={"extension_attribute_3": "extensionAttribute3"}).effective_attribute_map == {
        "extension_attribute_3": "extensionAttribute3"
    }
    with pytest.raises(ValidationError, match="lower_snake_case"):
        make(attribute_map={"Email": "mail"})
    with pytest.raises(ValidationError, match="not an LDAP attribute name"):
        make(attribute_map={"email": "mail)(objectClass=*"})


def test_password_never_shown() -> None:
    cfg = make()
    assert "s3cret-service-password" not in repr(cfg)
    assert "s3cret-service-password" not in str(cfg)


def test_plain_ldap_logs_a_warning_at_start_up(caplog: pytest.LogCaptureFixture) -> None:
    cfg = make(tls_mode="plain", urls=["ldap://127.0.0.1:1"], allow_plain=True)
    with caplog.at_level(logging.WARNING):
        build_ldap_directory(cfg).close()
    assert any("plain LDAP" in r.getMessage() and "camden-ad" in r.getMessage() for r in caplog.records)
    assert "s3cret" not in caplog.text


def test_tls_directory_logs_no_plain_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        build_ldap_directory(make()).close()
    assert "plain LDAP" not in caplog.text


def test_unreadable_ca_file_is_a_configuration_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from directories import DirectoryError, DirectoryErrorCode

    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate")
    with pytest.raises(DirectoryError) as info:
        build_ldap_directory(make(ca_file=bogus))
    assert info.value.code is DirectoryErrorCode.MISCONFIGURED


def test_bind_password_is_a_secret_reference_never_inline() -> None:
    with pytest.raises(ValidationError, match="never written inline"):
        make(bind_password="s3cret-service-password")
    cfg = make(bind_password={"env": "CAMDEN_LDAP_PASSWORD"})
    assert cfg.bind_password.env == "CAMDEN_LDAP_PASSWORD"


def test_unresolved_bind_password_is_a_configuration_error() -> None:
    from directories import DirectoryError, DirectoryErrorCode

    with pytest.raises(DirectoryError) as info:
        build_ldap_directory(make(bind_password={"env": "SUPERCLOUD_TEST_NEVER_SET"}))
    assert info.value.code is DirectoryErrorCode.MISCONFIGURED
    assert "SUPERCLOUD_TEST_NEVER_SET" in info.value.detail


def test_organisation_may_be_left_to_the_parent() -> None:
    base = {k: v for k, v in BASE.items() if k != "organisation"}
    assert LdapSourceConfig.model_validate(base).organisation is None
