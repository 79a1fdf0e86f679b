"""Check one directory's setup and say exactly what is wrong (``supercloud directories test``).

``diagnose(cfg, username=None)`` returns a list of ``Check`` (name, ok, detail), in order:

for each server URL, in the configured order:
  1. ``connect``: a TCP connection within ``connect_timeout_seconds``;
  2. ``TLS`` (unless ``tls_mode: plain``): the handshake with the configured CA and host
     name (RFC 4513 §3.1.3); a failure names the reason (expired, not trusted by the CA
     file, issued for other names) and the certificate the server showed;
  3. ``service account``: the simple bind of ``bind_dn``;
then once, on the first server that passed them:
  4. ``base DN``: a base-scope read of ``base_dn``;
  5. ``group graph`` (``group_mode: member_of`` only): the graph of every group under the
     group base loaded now, in this process, as a worker loads it in the background
     (without it, sign-ins resolve groups live until a load succeeds);
  6. ``lookup``: the account ``username`` (or, without one, the first account the user
     filter finds) with its status;
  7. ``groups``: its groups, expanded as configured (nested, primary group).

Details never contain the service account's password, nor any user's.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import socket
import ssl
import time
import warnings
from urllib.parse import urlsplit

import ldap3
from cryptography import x509
from cryptography.x509.oid import ExtensionOID, NameOID

from config.ldap_source import LdapSourceConfig
from config.secrets import SecretUnavailable
from directories.errors import DirectoryError
from directories.ldap import build_ldap_directory
from directories.ldap.filters import user_filter
from directories.ldap.group_graph import GroupGraphCache
from directories.ldap.operations import search
from directories.ldap.transport import ConnectionFactory, ServerFailure, TransportSettings, close_quietly

_MAX_GROUPS_SHOWN = 8


@dataclasses.dataclass(frozen=True, slots=True)
class Check:
    """One check's outcome: ``name`` (e.g. ``TLS ldaps://dc1:636``), ``ok`` and a one-line ``detail``."""

    name: str
    ok: bool
    detail: str


def diagnose(cfg: LdapSourceConfig, *, username: str | None = None) -> list[Check]:
    """Run the checks of the module docstring against ``cfg``; return them in order (never raises
    for a directory fault: each becomes a failed check)."""
    checks: list[Check] = []
    try:
        password = cfg.bind_password.reveal()
    except SecretUnavailable as exc:
        return [Check("service account password", False, f"cannot be read: {exc}")]
    settings = TransportSettings(
        tls_mode=cfg.tls_mode, ca_file=cfg.ca_file, tls_server_name=cfg.tls_server_name,
        connect_timeout=cfg.connect_timeout_seconds, response_timeout=cfg.response_timeout_seconds,
        bind_dn=cfg.bind_dn, bind_password=password,
    )
    try:
        factory = ConnectionFactory(settings)
    except DirectoryError as exc:
        return [Check("CA file", False, exc.detail)]
    working: str | None = None
    for url in cfg.urls:
        if _server_checks(factory, cfg, url, checks) and working is None:
            working = url
    if working is None:
        checks.append(Check("directory", False, "no server passed every check: sign-in for this organisation is unavailable"))
        return checks
    checks += _directory_checks(cfg, working, username)
    return checks


def _server_checks(factory: ConnectionFactory, cfg: LdapSourceConfig, url: str, checks: list[Check]) -> bool:
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or (636 if parts.scheme == "ldaps" else 389)
    started = time.perf_counter()
    try:
        socket.create_connection((host, port), timeout=cfg.connect_timeout_seconds).close()
    except TimeoutError:
        checks.append(Check(f"connect {url}", False, f"no answer within {cfg.connect_timeout_seconds:g} s (timed out)"))
        return False
    except OSError as exc:
        checks.append(Check(f"connect {url}", False, f"{exc.strerror or exc} (is the server running and listening there?)"))
        return False
    checks.append(Check(f"connect {url}", True, f"TCP connection in {1000 * (time.perf_counter() - started):.0f} ms"))
    server_name = cfg.tls_server_name or host
    if cfg.tls_mode != "plain":
        try:
            conn = factory.open(url, "auth")
        except ServerFailure as exc:
            checks.append(Check(f"TLS {url}", False, _tls_failure(cfg, url, server_name, str(exc))))
            return False
        try:
            der = conn.socket.getpeercert(binary_form=True) if isinstance(conn.socket, ssl.SSLSocket) else None
            version = conn.socket.version() if isinstance(conn.socket, ssl.SSLSocket) else "?"
        finally:
            close_quietly(conn)
        described = _describe(der) if der else "a certificate"
        checks.append(Check(f"TLS {url}", True, f"{version} ({cfg.tls_mode}); {described}; trusted, issued for {server_name}"))
    else:
        checks.append(Check(f"TLS {url}", True, "not used (tls_mode: plain, explicitly allowed): passwords cross the network in clear"))
    try:
        close_quietly(factory.open(url, "service"))
    except DirectoryError as exc:
        why = _after_url(exc.detail, url).removeprefix("service account bind refused").strip()
        checks.append(Check(f"service account {url}", False, f"bind as {cfg.bind_dn} refused {why}".rstrip()))
        return False
    except ServerFailure as exc:
        checks.append(Check(f"service account {url}", False, _after_url(str(exc), url)))
        return False
    checks.append(Check(f"service account {url}", True, f"bound as {cfg.bind_dn}"))
    return True


def _directory_checks(cfg: LdapSourceConfig, url: str, username: str | None) -> list[Check]:
    checks: list[Check] = []
    directory = build_ldap_directory(cfg.model_copy(update={"urls": (url,)}))
    try:
        try:
            found = directory.pool.run("service", lambda conn: search(conn, cfg.base_dn, "(objectClass=*)", ["objectClass"], scope="base"))
        except DirectoryError as exc:
            return [Check("base DN", False, f"{cfg.base_dn}: {exc.detail}")]
        if not found:
            return [Check("base DN", False, f"{cfg.base_dn} does not exist or the service account cannot read it")]
        checks.append(Check("base DN", True, f"{cfg.base_dn} readable"))
        cache = getattr(directory.group_resolver, "cache", None)
        if cache is not None:
            checks.append(_group_graph_check(cache, cfg))
        if username is None:
            ldap_filter = user_filter(cfg.effective_user_object_class, cfg.user_attribute, "*").replace("\\2a", "*")
            sample = directory.pool.run(
                "service", lambda conn: search(conn, cfg.base_dn, ldap_filter, [cfg.user_attribute], size_limit=1)
            )
            if not sample:
                checks.append(Check("lookup", False, f"no account with {cfg.user_attribute} under {cfg.base_dn}"))
                return checks
            username = _first(sample[0], cfg.user_attribute)
        try:
            record = directory.lookup(username)
        except DirectoryError as exc:
            checks.append(Check("lookup", False, f"{username}: {exc.detail}"))
            return checks
        if record is None:
            checks.append(Check("lookup", False, f"no account has {cfg.user_attribute} = {username} (or several do)"))
            return checks
        checks.append(Check("lookup", True, f"{username}: object id {record.object_id}, account {record.status.value}"))
        names = sorted(g.name for g in record.groups)
        shown = ", ".join(names[:_MAX_GROUPS_SHOWN]) + (" ..." if len(names) > _MAX_GROUPS_SHOWN else "")
        mode = cfg.effective_group_mode
        if mode == "none":
            checks.append(Check("groups", True, "not read (group_mode: none)"))
        elif names:
            checks.append(Check("groups", True, f"{len(names)} group{'s' if len(names) != 1 else ''} ({mode}): {shown}"))
        else:
            checks.append(Check("groups", True, f"{username} is in no group the service account can read ({mode}; "
                                              f"check group_base_dn {cfg.group_base_dn or cfg.base_dn} if that is wrong)"))
    finally:
        directory.close()
    return checks


def _group_graph_check(cache: GroupGraphCache, cfg: LdapSourceConfig) -> Check:
    """Load ``member_of``'s group graph now; return the check saying how many groups it holds,
    or why it could not be read (then sign-ins fall back to reading groups live)."""
    base = cfg.group_base_dn or cfg.base_dn
    started = time.perf_counter()
    try:
        graph = cache.refresh()
    except DirectoryError as exc:
        return Check("group graph", False, f"cannot be read under {base}: {exc.detail} (sign-ins read groups live meanwhile)")
    took = 1000 * (time.perf_counter() - started)
    return Check("group graph", True, f"{graph.size} group{'s' if graph.size != 1 else ''} under {base}, loaded in {took:.0f} ms")


def _first(entry: object, attribute: str) -> str:
    raw = getattr(entry, "raw", {}) or {}
    for key, values in raw.items():
        if key.lower() == attribute.lower() and values:
            value = values[0]
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return ""


def _after_url(detail: str, url: str) -> str:
    return detail[len(url) + 2:] if detail.startswith(f"{url}: ") else detail


def _tls_failure(cfg: LdapSourceConfig, url: str, server_name: str, error: str) -> str:
    """Say why the handshake failed, naming the certificate the server showed."""
    reason = _reason(_after_url(error, url))
    shown = _peek_certificate(cfg, url)
    ca = f"CA file {cfg.ca_file}" if cfg.ca_file else "the system CAs"
    lowered = reason.lower()
    if "expired" in lowered:
        why = "the server's certificate has expired"
    elif "hostname mismatch" in lowered or "doesn't match" in lowered or "not valid for" in lowered:
        why = f"the server's certificate is not issued for {server_name}"
    elif "self-signed" in lowered or "unable to get local issuer" in lowered or "unknown ca" in lowered:
        why = f"the server's certificate is not trusted by {ca}"
    elif "certificate" in lowered:
        why = "the server's certificate was refused"
    else:
        why = "no TLS session could be set up"
    return f"{why} ({reason})" + (f"; the server showed {shown}" if shown else "")


def _peek_certificate(cfg: LdapSourceConfig, url: str) -> str | None:
    """Return a description of the certificate ``url`` presents, read without verifying it, or None."""
    parts = urlsplit(url)
    tls = _UnverifiedTls()
    server = ldap3.Server(parts.hostname or "", port=parts.port or (636 if parts.scheme == "ldaps" else 389),
                          use_ssl=parts.scheme == "ldaps", tls=tls, get_info=ldap3.NONE,
                          connect_timeout=cfg.connect_timeout_seconds)
    conn = ldap3.Connection(server, auto_bind=ldap3.AUTO_BIND_NONE, raise_exceptions=False,
                            receive_timeout=max(1, round(cfg.response_timeout_seconds)))  # whole seconds only
    try:
        conn.open(read_server_info=False)
        if cfg.tls_mode == "starttls" and not conn.start_tls(read_server_info=False):
            return None
        der = conn.socket.getpeercert(binary_form=True) if isinstance(conn.socket, ssl.SSLSocket) else None
        return _describe(der) if der else None
    except Exception:  # noqa: BLE001 - a best-effort description only
        return None
    finally:
        close_quietly(conn)


class _UnverifiedTls(ldap3.Tls):
    """ldap3 ``Tls`` that accepts any certificate: only to *show* the certificate a server
    presents after the verified handshake failed; nothing is sent over it."""

    def __init__(self) -> None:
        super().__init__(validate=ssl.CERT_NONE)
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self._context.check_hostname = False
        self._context.verify_mode = ssl.CERT_NONE

    def wrap_socket(self, connection: ldap3.Connection, do_handshake: bool = False) -> None:
        """Wrap ``connection.socket`` in TLS without verifying the peer."""
        connection.socket = self._context.wrap_socket(connection.socket, server_side=False, do_handshake_on_connect=True)


_SSL_REASON = re.compile(r"verify failed: (.+?)(?: \(_ssl\.c:\d+\)|['\"]|$)")


def _reason(error: str) -> str:
    """Return the TLS library's own words for a verification failure (e.g. "certificate has
    expired"), without ldap3's wrapping; other errors unchanged."""
    found = _SSL_REASON.search(error.replace("\\'", "").replace("\\", ""))
    if found:
        return "certificate verify failed: " + found.group(1).strip().rstrip(".")
    return error


def _describe(der: bytes) -> str:
    """Return "a certificate for <names> issued by <CA>, valid until|expired on <date>"."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Samba's own CA makes negative serial numbers
            cert = x509.load_der_x509_certificate(der)
        return _describe_certificate(cert)
    except ValueError:
        return "a certificate that cannot be parsed"


def _describe_certificate(cert: x509.Certificate) -> str:
    names = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    try:
        san = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
        names += [str(n) for n in san.get_values_for_type(x509.DNSName)]
        names += [str(n) for n in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        pass
    issuer = ", ".join(str(a.value) for a in cert.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)) or cert.issuer.rfc4514_string()
    expires = cert.not_valid_after_utc
    state = "expired on" if expires < dt.datetime.now(dt.UTC) else "valid until"
    return (f"a certificate for {', '.join(dict.fromkeys(names)) or cert.subject.rfc4514_string()} issued by {issuer}, "
            f"{state} {expires:%Y-%m-%d %H:%M} UTC")
