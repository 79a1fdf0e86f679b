"""LDAP operations on one borrowed connection: search (RFC 4511 §4.5) and simple bind (§4.2).

These functions turn ldap3's result dictionaries into entries, ``ServerFailure`` (the
pool then fails over) or ``DirectoryError``; they never log a password.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Literal

import ldap3
from ldap3.core.exceptions import LDAPSocketSendError
from ldap3.strategy.sync import SyncStrategy

from directories.errors import DirectoryError, DirectoryErrorCode
from directories.ldap import wire
from directories.ldap.attributes import RawAttributes
from directories.ldap.transport import INVALID_CREDENTIALS_RESULT, SERVER_DOWN_RESULTS, ServerFailure, close_quietly

_SCOPES = {"base": ldap3.BASE, "subtree": ldap3.SUBTREE}
_SIZE_LIMIT_EXCEEDED = 4
_NO_SUCH_OBJECT = 32


@dataclasses.dataclass(frozen=True, slots=True)
class Entry:
    """One search result entry: its DN and raw attribute values (octets)."""

    dn: str
    raw: RawAttributes


@dataclasses.dataclass(frozen=True, slots=True)
class BindOutcome:
    """The result of a simple bind: ``ok`` plus the result code and diagnostic message."""

    ok: bool
    result: int
    description: str
    diagnostic: str


def search(
    conn: ldap3.Connection,
    base: str,
    ldap_filter: str,
    attributes: Sequence[str],
    *,
    scope: Literal["base", "subtree"] = "subtree",
    size_limit: int = 0,
) -> list[Entry]:
    """Return the entries (not referrals) matching ``ldap_filter`` under ``base``.

    A size limit exceeded (result 4) returns the entries received so far. Raises
    ``ServerFailure`` for busy/unavailable or a transport error, and
    ``DirectoryError(MISCONFIGURED)`` when ``base`` does not exist (noSuchObject) or the
    server rejects the search otherwise (e.g. insufficient access for the service account).
    """
    if not _send_encoded_search(conn, base, ldap_filter, attributes, scope, size_limit):
        conn.search(
            base,
            ldap_filter,
            search_scope=_SCOPES[scope],
            attributes=list(attributes) or [ldap3.NO_ATTRIBUTES],
            size_limit=size_limit,
        )
    result = conn.result or {}
    code = result.get("result")
    if code in SERVER_DOWN_RESULTS:
        raise ServerFailure(f"search answered {result.get('description')}")
    if code not in (0, _SIZE_LIMIT_EXCEEDED):
        if code == _NO_SUCH_OBJECT and scope == "base":
            return []
        raise DirectoryError(
            DirectoryErrorCode.MISCONFIGURED,
            f"search under {base!r} failed: {result.get('description')} {result.get('message', '')}".strip(),
        )
    entries = []
    for item in conn.response or ():
        if item.get("type") == "searchResEntry":
            entries.append(Entry(dn=item["dn"], raw=dict(item.get("raw_attributes") or {})))
    return entries


def _send_encoded_search(
    conn: ldap3.Connection, base: str, ldap_filter: str, attributes: Sequence[str], scope: str, size_limit: int
) -> bool:
    """Send the search encoded by ``wire.encode_search`` and read its answer into ``conn.result``
    and ``conn.response`` as ``Connection.search`` does; return False (nothing sent) when the
    filter is one ldap3 must encode or the connection is not a plain synchronous one.

    The same octets as ldap3's, for a fraction of the CPU (pyasn1 is most of a search's cost).
    """
    if type(getattr(conn, "strategy", None)) is not SyncStrategy or conn.sasl_in_progress:
        return False
    with conn.connection_lock:
        if not conn.listening:
            return False  # closed or never opened: ldap3 reports it the usual way
        message_id = conn.server.next_message_id()
        try:
            message = wire.encode_search(message_id, base, ldap_filter, attributes, scope=scope, size_limit=size_limit)
        except wire.Unsupported:
            return False
        attribute_list = list(attributes) or [ldap3.NO_ATTRIBUTES]
        # What ldap3 keeps of an outstanding request (its response handling reads "attributes").
        request = {"type": "searchRequest", "base": base, "scope": _SCOPES[scope], "dereferenceAlias": wire.DEREF_ALWAYS,
                   "sizeLimit": size_limit, "timeLimit": 0, "typesOnly": False, "filter": ldap_filter,
                   "attributes": attribute_list, "controls": None}
        _send(conn, message_id, request, message)
        conn.post_send_search(message_id)
    return True


def _send(conn: ldap3.Connection, message_id: int, request: dict[str, object], message: bytes) -> None:
    """Record ``request`` as ldap3's ``BaseStrategy.send`` does (its response handling reads it)
    and send the encoded ``message``; the caller holds ``conn.connection_lock``.

    Raises ``LDAPSocketSendError`` (nothing left outstanding) when the socket fails.
    """
    conn.request = request
    conn.strategy._outstanding[message_id] = request  # noqa: SLF001 - as ldap3's BaseStrategy.send does
    try:
        conn.socket.sendall(message)
    except OSError as exc:
        conn.strategy._outstanding.pop(message_id, None)  # noqa: SLF001
        raise LDAPSocketSendError(f"socket sending error {exc}") from exc


def _send_encoded_bind(conn: ldap3.Connection, dn: str, password: str) -> bool | None:
    """Send the simple bind encoded by ``wire.encode_simple_bind`` and read its answer into
    ``conn.result`` and ``conn.bound`` as ``Connection.bind`` does; return whether it bound,
    or None (nothing sent) when ldap3 must do it (a password SASLprep could change, a closed
    connection, another strategy). The password is in no attribute of ``conn`` afterwards.
    """
    if type(getattr(conn, "strategy", None)) is not SyncStrategy or conn.sasl_in_progress:
        return None
    if not wire.simple_bind_encodable(dn, password):
        return None
    with conn.connection_lock:
        if conn.closed or not conn.listening:
            return None
        conn.last_error = None
        message_id = conn.server.next_message_id()
        try:
            message = wire.encode_simple_bind(message_id, dn, password)
        except wire.Unsupported:
            return None  # nothing sent: ldap3 binds (a skipped message id is harmless)
        # What ldap3 keeps of an outstanding bind, without the password.
        request = {"type": "bindRequest", "version": 3, "name": dn,
                   "authentication": {"sasl": None, "simple": "<stripped>"}, "controls": None}
        _send(conn, message_id, request, message)
        del message
        conn.post_send_single_response(message_id)
        result = conn.result or {}
        conn.bound = result.get("result") == 0
        if not conn.bound and result.get("description") and not conn.last_error:
            conn.last_error = result["description"]
        return bool(conn.bound)


def simple_bind(conn: ldap3.Connection, dn: str, password: str, *, reset_after_refusal: bool = False) -> BindOutcome:
    """Perform a simple bind as ``dn`` on ``conn`` and return its outcome.

    Callers must have refused empty passwords already: RFC 4513 §5.1.2 makes a simple
    bind with a DN and an empty password an *unauthenticated* bind, which some servers
    accept. Raises ``ServerFailure`` for busy/unavailable; the password is dropped from
    the connection object before returning. With ``reset_after_refusal`` (servers that
    keep the previous identity after a refused bind, i.e. Active Directory) the connection
    is made anonymous again or closed, see ``reset_to_anonymous``.
    """
    if not password:
        raise DirectoryError(DirectoryErrorCode.EMPTY_PASSWORD, "refused before bind")
    conn.authentication = ldap3.SIMPLE
    ok = _send_encoded_bind(conn, dn, password)
    if ok is None:
        conn.user = dn
        conn.password = password
        try:
            ok = bool(conn.bind(read_server_info=False))
        finally:
            conn.password = None
            conn.user = None
    result = conn.result or {}
    code = int(result.get("result", -1))
    if not ok and code in SERVER_DOWN_RESULTS:
        raise ServerFailure(f"bind answered {result.get('description')}")
    if not ok and code not in (INVALID_CREDENTIALS_RESULT, 48, 50, 53):
        # inappropriateAuthentication (48), insufficientAccessRights (50) and
        # unwillingToPerform (53) are refusals; anything else is a misbehaving server.
        raise ServerFailure(f"bind answered {result.get('description')} ({code})")
    outcome = BindOutcome(
        ok=ok and code == 0,
        result=code,
        description=str(result.get("description", "")),
        diagnostic=str(result.get("message", "")),
    )
    if not outcome.ok and reset_after_refusal:
        reset_to_anonymous(conn)
    return outcome


def reset_to_anonymous(conn: ldap3.Connection) -> None:
    """Make ``conn`` anonymous again after a refused bind, or close it. Returns None.

    RFC 4511 §4.2.1 says a failed bind leaves the connection anonymous, but Samba AD keeps
    the identity of the *previous* successful bind. Pooled connections must not keep
    anyone's identity past a refusal, so an anonymous simple bind (RFC 4513 §5.1.1) resets
    it; if that is refused or fails, the connection is closed and the pool discards it.
    """
    conn.authentication = ldap3.ANONYMOUS
    conn.user = None
    conn.password = None
    try:
        reset = bool(conn.bind(read_server_info=False)) and (conn.result or {}).get("result") == 0
    except Exception:  # noqa: BLE001 - any failure here only means: do not reuse this connection
        reset = False
    if not reset:
        close_quietly(conn)
