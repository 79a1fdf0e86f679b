"""Directory configurations for the real peers (imported by conftest.py and the tests)."""

from __future__ import annotations

from config.ldap_source import LdapSourceConfig
from tests.peers.samba import CAMDEN, NEWHAM, SERVICE_ACCOUNT, SERVICE_PASSWORD, SambaDC
from tests.peers.slapd import HACKNEY, SlapdServer
from tests.support.secrets import resolved_secret

DEAD_PORT = 1389  # nothing listens there on the peers' addresses


def camden_settings(dc: SambaDC, **overrides: object) -> LdapSourceConfig:
    """Camden AD over LDAPS, users found by userPrincipalName."""
    values: dict[str, object] = {
        "type": "active_directory",
        "id": "camden-ad",
        "organisation": "camden",
        "urls": (f"ldaps://{dc.address}:636",),
        "tls_mode": "ldaps",
        "ca_file": dc.ca_file,
        "tls_server_name": CAMDEN.dc_fqdn,
        "base_dn": CAMDEN.base_dn,
        "bind_dn": CAMDEN.user_dn(SERVICE_ACCOUNT),
        "bind_password": resolved_secret(SERVICE_PASSWORD),
        "user_attribute": "userPrincipalName",
        "connect_timeout_seconds": 2,
        "response_timeout_seconds": 5,
        "min_failure_seconds": 0,  # the timing floor has its own test
    }
    values.update(overrides)
    return LdapSourceConfig.model_validate(values)


def newham_settings(dc: SambaDC, **overrides: object) -> LdapSourceConfig:
    """Newham AD over StartTLS; its first DC is down (nothing listens on the first URL)."""
    values: dict[str, object] = {
        "type": "active_directory",
        "id": "newham-ad",
        "organisation": "newham",
        "urls": (f"ldap://{dc.address}:{DEAD_PORT}", f"ldap://{dc.address}:389"),
        "tls_mode": "starttls",
        "ca_file": dc.ca_file,
        "tls_server_name": NEWHAM.dc_fqdn,
        "base_dn": NEWHAM.base_dn,
        "bind_dn": NEWHAM.user_dn(SERVICE_ACCOUNT),
        "bind_password": resolved_secret(SERVICE_PASSWORD),
        "user_attribute": "sAMAccountName",
        "connect_timeout_seconds": 1,
        "response_timeout_seconds": 5,
        "failure_threshold": 2,
        "circuit_open_seconds": 60,
        "min_failure_seconds": 0,
    }
    values.update(overrides)
    return LdapSourceConfig.model_validate(values)


def hackney_settings(server: SlapdServer, **overrides: object) -> LdapSourceConfig:
    """Hackney OpenLDAP over plain LDAP on loopback (explicitly allowed), users by uid."""
    values: dict[str, object] = {
        "type": "ldap",
        "id": "hackney-ldap",
        "organisation": "hackney",
        "urls": (server.url,),
        "tls_mode": "plain",
        "allow_plain": True,
        "base_dn": HACKNEY.suffix,
        "bind_dn": HACKNEY.service_dn,
        "bind_password": resolved_secret(HACKNEY.service_password),
        "user_attribute": "uid",
        "min_failure_seconds": 0,
        "sync_clock_skew_seconds": 0,  # slapd runs on this machine, on its clock
    }
    values.update(overrides)
    return LdapSourceConfig.model_validate(values)
