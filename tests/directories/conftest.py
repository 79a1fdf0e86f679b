"""Wires the real directory peers (Samba AD for Camden and Newham, OpenLDAP for Hackney).

Each peer is started once per pytest session, or once per xdist worker, each worker on
its own loopback addresses (127.0.<worker>.2/.3/.4), so ``-n 2`` is safe.
"""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parents[2]
if str(_ROOT) not in sys.path:  # make ``tests.peers`` importable however pytest is started
    sys.path.insert(0, str(_ROOT))

from config.ldap_source import LdapSourceConfig  # noqa: E402
from directories.ldap import LdapDirectory, build_ldap_directory  # noqa: E402
from tests.peers.samba import (  # noqa: E402
    CAMDEN,
    NEWHAM,
    SERVICE_ACCOUNT,
    SERVICE_PASSWORD,
    SambaDC,
    samba_camden,
    samba_newham,
)
from tests.peers.slapd import HACKNEY, SlapdServer, slapd_hackney  # noqa: E402

__all__ = ["samba_camden", "samba_newham", "slapd_hackney"]

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
        "bind_password": SERVICE_PASSWORD,
        "user_attribute": "userPrincipalName",
        "connect_timeout_seconds": 2,
        "response_timeout_seconds": 5,
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
        "bind_password": SERVICE_PASSWORD,
        "user_attribute": "sAMAccountName",
        "connect_timeout_seconds": 1,
        "response_timeout_seconds": 5,
        "failure_threshold": 2,
        "circuit_open_seconds": 60,
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
        "bind_password": HACKNEY.service_password,
        "user_attribute": "uid",
    }
    values.update(overrides)
    return LdapSourceConfig.model_validate(values)


@pytest.fixture
def build() -> Iterator[object]:
    """Return a function building directories from configs; closes them after the test."""
    built: list[LdapDirectory] = []

    def _build(cfg: LdapSourceConfig, **kwargs: object) -> LdapDirectory:
        directory = build_ldap_directory(cfg, **kwargs)  # type: ignore[arg-type]
        built.append(directory)
        return directory

    yield _build
    for directory in built:
        directory.close()


@pytest.fixture
def camden(samba_camden: SambaDC, build) -> LdapDirectory:  # type: ignore[no-untyped-def]
    """Camden's directory (LDAPS)."""
    return build(camden_settings(samba_camden))


@pytest.fixture
def newham(samba_newham: SambaDC, build) -> LdapDirectory:  # type: ignore[no-untyped-def]
    """Newham's directory (StartTLS, first DC down)."""
    return build(newham_settings(samba_newham))


@pytest.fixture
def hackney(slapd_hackney: SlapdServer, build) -> LdapDirectory:  # type: ignore[no-untyped-def]
    """Hackney's directory (plain LDAP on loopback)."""
    return build(hackney_settings(slapd_hackney))


@pytest.fixture
def hung_server(samba_newham: SambaDC) -> Iterator[str]:
    """An ``ldap://`` URL of a server that accepts TCP connections but never answers."""
    listener = socket.socket()
    listener.bind((samba_newham.address, 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def _accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
                accepted.append(conn)  # hold it open, say nothing
            except OSError:
                continue

    thread = threading.Thread(target=_accept, daemon=True)
    thread.start()
    yield f"ldap://{samba_newham.address}:{listener.getsockname()[1]}"
    stop.set()
    thread.join(timeout=2)
    for conn in accepted:
        conn.close()
    listener.close()
