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
from tests.directories.ldap_peers import camden_settings, hackney_settings, newham_settings  # noqa: E402
from tests.peers.samba import SambaDC, samba_camden, samba_newham, samba_newham_dc2  # noqa: E402
from tests.peers.slapd import SlapdServer, slapd_hackney  # noqa: E402

__all__ = ["samba_camden", "samba_newham", "samba_newham_dc2", "slapd_hackney"]


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
