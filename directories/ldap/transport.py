"""Opening one ldap3 connection to one server: TLS, timeouts, TCP_NODELAY, service bind.

Everything that sets up ldap3 ``Server``/``Connection``/``Tls`` objects lives here; the
pool only asks for "a fresh connection of this kind to this server".
"""

from __future__ import annotations

import dataclasses
import socket
import ssl
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import ldap3
from ldap3.core.exceptions import LDAPExceptionError

from directories.errors import DirectoryError, DirectoryErrorCode

#: "service" connections are bound as the service account and only search;
#: "auth" connections only carry users' simple binds and are never used to search,
#: so a search never runs with a user's rights.
ConnectionKind = Literal["service", "auth"]

# RFC 4511 §4.1.9 result codes meaning "this server cannot serve now": try the next one.
SERVER_DOWN_RESULTS = frozenset({51, 52})  # busy, unavailable
INVALID_CREDENTIALS_RESULT = 49


class ServerFailure(Exception):
    """A server could not be reached or misbehaved; the pool then tries the next one.

    The message names the server and the reason, never a password.
    """


@dataclasses.dataclass(frozen=True, slots=True)
class TransportSettings:
    """How to reach the servers of one directory (built from ``LdapSourceConfig``)."""

    tls_mode: Literal["ldaps", "starttls", "plain"]
    ca_file: Path | None
    tls_server_name: str | None
    connect_timeout: float
    response_timeout: float
    bind_dn: str
    bind_password: str = dataclasses.field(repr=False)
    tcp_nodelay: bool = True


def set_nodelay(sock: socket.socket | None, enabled: bool) -> None:
    """Set TCP_NODELAY on ``sock`` (a TCP socket, possibly TLS-wrapped). Returns None.

    Without it, the second small write of an exchange (TLS handshake records, a request
    following another) waits for the peer's delayed ACK: ~40 ms per round on Linux.
    """
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1 if enabled else 0)


class _VerifyingTls(ldap3.Tls):
    """ldap3 ``Tls`` that verifies the chain *and* the host name with Python's ``ssl``.

    ldap3 disables ``check_hostname`` and applies its own matcher; this subclass uses an
    ``ssl.SSLContext`` with ``check_hostname=True`` (TLS 1.2 at least), so a certificate
    that does not name ``server_name`` fails the handshake (RFC 4513 §3.1.3). It also
    sets TCP_NODELAY before the handshake, which the LDAPS path offers no other hook for.
    """

    def __init__(self, context: ssl.SSLContext, server_name: str, nodelay: bool) -> None:
        super().__init__(validate=ssl.CERT_REQUIRED)
        self._context = context
        self._server_name = server_name
        self._nodelay = nodelay

    def wrap_socket(self, connection: ldap3.Connection, do_handshake: bool = False) -> None:
        """Wrap ``connection.socket`` in TLS, verifying the certificate. Raises ``ssl.SSLError``."""
        set_nodelay(connection.socket, self._nodelay)
        connection.socket = self._context.wrap_socket(
            connection.socket,
            server_side=False,
            do_handshake_on_connect=do_handshake,
            server_hostname=self._server_name,
        )


def build_ssl_context(ca_file: Path | None) -> ssl.SSLContext:
    """Return a client context trusting ``ca_file`` (or the system CAs), TLS ≥ 1.2.

    Raises ``DirectoryError(MISCONFIGURED)`` when the CA file cannot be loaded.
    """
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_file) if ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise DirectoryError(DirectoryErrorCode.MISCONFIGURED, f"cannot load CA file {ca_file}: {exc}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


class ConnectionFactory:
    """Opens fresh connections to the servers of one directory.

    ``open(url, kind)`` returns a connected ldap3 ``Connection`` (TLS established as
    configured; a "service" connection is already bound as the service account).
    """

    def __init__(self, settings: TransportSettings) -> None:
        self._settings = settings
        self._context = build_ssl_context(settings.ca_file) if settings.tls_mode != "plain" else None
        self._tls: dict[str, _VerifyingTls] = {}

    @property
    def settings(self) -> TransportSettings:
        """The settings this factory was built with."""
        return self._settings

    def _server(self, url: str) -> ldap3.Server:
        """Return a new ldap3 ``Server`` for ``url``.

        A fresh object per connection: ldap3 ``Server`` objects remember failed addresses
        for a few seconds ("invalid server address") and mutate that state without a
        lock, which would fight the circuit breaker and is unsafe across threads.
        """
        parts = urlsplit(url)
        host = parts.hostname or ""
        ldaps = parts.scheme == "ldaps"
        tls = self._tls.get(host)
        if tls is None and self._context is not None:
            tls = _VerifyingTls(self._context, self._settings.tls_server_name or host, self._settings.tcp_nodelay)
            self._tls[host] = tls
        return ldap3.Server(
            host,
            port=parts.port or (636 if ldaps else 389),
            use_ssl=ldaps,
            tls=tls,
            get_info=ldap3.NONE,
            connect_timeout=self._settings.connect_timeout,
        )

    def open(self, url: str, kind: ConnectionKind) -> ldap3.Connection:
        """Return a new, connected ``Connection`` to ``url``.

        Raises ``ServerFailure`` when the server cannot be reached, TLS cannot be set up
        (bad certificate, StartTLS refused) or it answers busy/unavailable; raises
        ``DirectoryError(MISCONFIGURED)`` when the service account's bind is refused.
        """
        settings = self._settings
        conn = ldap3.Connection(
            self._server(url),
            client_strategy=ldap3.SYNC,
            auto_bind=ldap3.AUTO_BIND_NONE,
            raise_exceptions=False,
            read_only=True,
            check_names=False,
            auto_referrals=False,
            return_empty_attributes=False,
        )
        try:
            conn.open(read_server_info=False)
            set_nodelay(conn.socket, settings.tcp_nodelay)
            conn.socket.settimeout(settings.response_timeout)
            if settings.tls_mode == "starttls" and not conn.start_tls(read_server_info=False):
                raise ServerFailure(f"{url}: StartTLS refused ({conn.result.get('description')})")
            if kind == "service":
                self._bind_service(conn, url)
        except ServerFailure:
            close_quietly(conn)
            raise
        except DirectoryError:
            close_quietly(conn)
            raise
        except (LDAPExceptionError, OSError, ssl.SSLError) as exc:
            close_quietly(conn)
            raise ServerFailure(f"{url}: {type(exc).__name__}: {exc}") from None
        return conn

    def _bind_service(self, conn: ldap3.Connection, url: str) -> None:
        settings = self._settings
        conn.authentication = ldap3.SIMPLE
        conn.user = settings.bind_dn
        conn.password = settings.bind_password
        try:
            ok = conn.bind(read_server_info=False)
        finally:
            conn.password = None  # the pool keeps connections; keep no secret on them
        if ok:
            return
        code = conn.result.get("result")
        if code in SERVER_DOWN_RESULTS:
            raise ServerFailure(f"{url}: service bind answered {conn.result.get('description')}")
        raise DirectoryError(
            DirectoryErrorCode.MISCONFIGURED,
            f"{url}: service account bind refused ({conn.result.get('description')})",
        )


def close_quietly(conn: ldap3.Connection) -> None:
    """Close ``conn`` without raising (the server may already have gone). Returns None."""
    try:
        conn.unbind()
    except Exception:  # noqa: BLE001 - closing a broken connection must never raise
        try:
            if conn.socket is not None:
                conn.socket.close()
        except OSError:
            pass
