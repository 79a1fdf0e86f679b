"""The broker configured with the real directory peers as the boroughs' identity sources.

Camden: Samba AD over LDAPS (userPrincipalName); Newham: Samba AD over StartTLS with a dead
first DC (userPrincipalName); Hackney: OpenLDAP (mail). Service-account passwords reach the
settings file as ``{env: ...}`` references, as they would in production.
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
import uuid
from typing import Any

import ldap3

from tests.directories.ldap_peers import DEAD_PORT
from tests.peers.samba import CAMDEN, NEWHAM, SERVICE_ACCOUNT, SERVICE_PASSWORD, SambaDC
from tests.peers.slapd import HACKNEY, SlapdServer

CAMDEN_SECRET_ENV = "SUPERCLOUD_TEST_CAMDEN_LDAP_PASSWORD"
NEWHAM_SECRET_ENV = "SUPERCLOUD_TEST_NEWHAM_LDAP_PASSWORD"
HACKNEY_SECRET_ENV = "SUPERCLOUD_TEST_HACKNEY_LDAP_PASSWORD"
BOROUGHS = ["London boroughs"]


def export_secrets() -> dict[str, str]:
    """Put the peers' service-account passwords in the environment; return them by variable."""
    values = {
        CAMDEN_SECRET_ENV: SERVICE_PASSWORD,
        NEWHAM_SECRET_ENV: SERVICE_PASSWORD,
        HACKNEY_SECRET_ENV: HACKNEY.service_password,
    }
    os.environ.update(values)
    return values


def camden_source(dc: SambaDC, **overrides: Any) -> dict[str, Any]:
    """Camden's AD as a settings-file source."""
    return {
        "type": "active_directory",
        "id": "camden-ad",
        "urls": [f"ldaps://{dc.address}:636"],
        "tls_mode": "ldaps",
        "ca_file": str(dc.ca_file),
        "tls_server_name": CAMDEN.dc_fqdn,
        "base_dn": CAMDEN.base_dn,
        "bind_dn": CAMDEN.user_dn(SERVICE_ACCOUNT),
        "bind_password": {"env": CAMDEN_SECRET_ENV},
        "user_attribute": "userPrincipalName",
        "connect_timeout_seconds": 1,
        "response_timeout_seconds": 3,
        "min_failure_seconds": 0,
        **overrides,
    }


def newham_source(dc: SambaDC, **overrides: Any) -> dict[str, Any]:
    """Newham's AD (first DC down) as a settings-file source."""
    return {
        "type": "active_directory",
        "id": "newham-ad",
        "urls": [f"ldap://{dc.address}:{DEAD_PORT}", f"ldap://{dc.address}:389"],
        "tls_mode": "starttls",
        "ca_file": str(dc.ca_file),
        "tls_server_name": NEWHAM.dc_fqdn,
        "base_dn": NEWHAM.base_dn,
        "bind_dn": NEWHAM.user_dn(SERVICE_ACCOUNT),
        "bind_password": {"env": NEWHAM_SECRET_ENV},
        "user_attribute": "userPrincipalName",
        "connect_timeout_seconds": 1,
        "response_timeout_seconds": 3,
        "failure_threshold": 2,
        "min_failure_seconds": 0,
        **overrides,
    }


def hackney_source(server: SlapdServer, **overrides: Any) -> dict[str, Any]:
    """Hackney's OpenLDAP (plain LDAP on loopback, explicitly allowed) as a settings-file source."""
    return {
        "type": "ldap",
        "id": "hackney-ldap",
        "urls": [server.url],
        "tls_mode": "plain",
        "allow_plain": True,
        "base_dn": HACKNEY.suffix,
        "bind_dn": HACKNEY.service_dn,
        "bind_password": {"env": HACKNEY_SECRET_ENV},
        "user_attribute": "mail",
        "connect_timeout_seconds": 1,
        "response_timeout_seconds": 3,
        "min_failure_seconds": 0,
        "sync_clock_skew_seconds": 0,  # slapd runs on this machine, on its clock
        **overrides,
    }


def peer_organisations(
    camden: dict[str, Any], newham: dict[str, Any], hackney: dict[str, Any]
) -> list[dict[str, Any]]:
    """Return the three boroughs (teams and job roles keyed by directory group names) and the NHS."""
    return [
        {"id": "camden", "name": "London Borough of Camden", "kind": "borough", "domains": ["camden.test"],
         "memberships": BOROUGHS, "sources": [camden],
         "teams": [{"id": "camden-hospital-discharge", "name": "Camden Hospital Discharge", "functions": ["discharge"],
                    "groups": ["Discharge Team"]},
                   {"id": "camden-adult-social-care", "name": "Adult Social Care", "groups": ["Adult Social Care"]}],
         "role_mappings": [{"groups": ["Adult Social Care"], "job_roles": ["social-worker"]},
                           {"groups": ["Care Staff"], "job_roles": ["care-staff"]}]},
        {"id": "newham", "name": "London Borough of Newham", "kind": "borough", "domains": ["newham.test"],
         "memberships": BOROUGHS, "sources": [newham],
         "teams": [{"id": "newham-discharge", "name": "Newham Discharge Coordination", "functions": ["discharge"],
                    "groups": ["Hospital Discharge Team"]}],
         "role_mappings": [{"groups": ["Discharge Coordinators"], "job_roles": ["discharge-coordinator"]}]},
        {"id": "hackney", "name": "London Borough of Hackney", "kind": "borough", "domains": ["hackney.test"],
         "memberships": BOROUGHS, "sources": [hackney],
         "teams": [{"id": "hackney-education", "name": "Education Staff", "groups": ["Education Staff"]}],
         "role_mappings": [{"groups": ["Admissions"], "job_roles": ["admissions-officer"]}]},
        {"id": "nhs", "name": "NHS (trusts and GP practices)", "kind": "health", "domains": ["nhs.test"],
         "memberships": ["NHS", "London health organisations"]},
    ]


# -- Camden accounts made for one test (so tests never share a state they change) -------------------

UF_NORMAL_ACCOUNT = 0x200
UF_ACCOUNTDISABLE = 0x2  # MS-ADTS §2.2.16


def admin_connection(dc: SambaDC) -> ldap3.Connection:
    """Return a connection bound as Administrator over LDAPS (passwords may only be set over TLS)."""
    tls = ldap3.Tls(ca_certs_file=str(dc.ca_file), validate=ssl.CERT_REQUIRED, valid_names=[dc.spec.dc_fqdn])
    server = ldap3.Server(dc.address, port=636, use_ssl=True, tls=tls, get_info=ldap3.NONE)
    return ldap3.Connection(server, user=dc.admin_dn, password=dc.spec.admin_password, auto_bind=True)


def create_ad_user(dc: SambaDC, password: str, *, groups: tuple[str, ...] = ()) -> str:
    """Create an enabled user with a unique name in ``dc``'s domain; return its userPrincipalName."""
    sam = f"t{uuid.uuid4().hex[:12]}"
    realm = dc.spec.realm.lower()
    dn = f"CN={sam},CN=Users,{dc.spec.base_dn}"
    conn = admin_connection(dc)
    try:
        attributes = {
            "sAMAccountName": sam,
            "userPrincipalName": f"{sam}@{realm}",
            "displayName": f"Test {sam}",
            "mail": f"{sam}@{realm}",
            "unicodePwd": f'"{password}"'.encode("utf-16-le"),
            "userAccountControl": str(UF_NORMAL_ACCOUNT),
        }
        if not conn.add(dn, ["top", "person", "organizationalPerson", "user"], attributes):
            raise RuntimeError(f"add {sam} failed: {conn.result}")
        for group in groups:
            group_dn = f"CN={group},CN=Users,{dc.spec.base_dn}"
            if not conn.modify(group_dn, {"member": [(ldap3.MODIFY_ADD, [dn])]}):
                raise RuntimeError(f"add {sam} to {group} failed: {conn.result}")
    finally:
        conn.unbind()
    return f"{sam}@{realm}"


def set_ad_disabled(dc: SambaDC, upn: str, disabled: bool) -> None:
    """Disable (or enable) the account ``upn`` by writing userAccountControl, as an admin would."""
    sam = upn.split("@")[0]
    flags = UF_NORMAL_ACCOUNT | (UF_ACCOUNTDISABLE if disabled else 0)
    conn = admin_connection(dc)
    try:
        dn = f"CN={sam},CN=Users,{dc.spec.base_dn}"
        if not conn.modify(dn, {"userAccountControl": [(ldap3.MODIFY_REPLACE, [str(flags)])]}):
            raise RuntimeError(f"modify {sam} failed: {conn.result}")
    finally:
        conn.unbind()


class TcpRelay:
    """A TCP relay on ``address`` to ``target``: stands for a domain controller that can be stopped.

    ``stop()`` closes the listener and every relayed connection at once, as a DC that
    goes down does (connections reset, new ones refused).
    """

    def __init__(self, address: str, target: tuple[str, int]) -> None:
        self._target = target
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((address, 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self._target, timeout=2)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self) -> None:
        """Stop relaying: refuse new connections and reset the open ones. Returns None."""
        self._stopped.set()
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        except OSError:
            pass
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    sock.close()
                except OSError:
                    pass
