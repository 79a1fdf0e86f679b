"""Search filters built from untrusted input, escaped per RFC 4515.

Every value that comes from a user or from a directory entry goes through
``escape_value`` / ``escape_bytes`` before it enters a filter string; no DN is ever built
from user input (the user's DN is always the one a search returned).
"""

from __future__ import annotations

from collections.abc import Iterable

from directories.errors import DirectoryError, DirectoryErrorCode

#: AD's LDAP_MATCHING_RULE_IN_CHAIN (MS-ADTS §3.1.1.3.4.4.3): transitive membership.
IN_CHAIN_RULE = "1.2.840.113556.1.4.1941"
MAX_USERNAME_LENGTH = 256

# RFC 4515 §3: in an assertion value, '*', '(', ')', '\' and NUL must be written as
# '\' followed by two hex digits. Other characters may be escaped the same way.
_SPECIAL = {"*": r"\2a", "(": r"\28", ")": r"\29", "\\": r"\5c", "\x00": r"\00"}


def escape_value(value: str) -> str:
    """Return ``value`` escaped as an RFC 4515 assertion value (``*`` becomes ``\\2a`` ...).

    The result only ever matches ``value`` literally: wildcards and filter syntax in the
    input lose their meaning.
    """
    return "".join(_SPECIAL.get(ch, ch) for ch in value)


def escape_bytes(value: bytes) -> str:
    """Return every octet of ``value`` as ``\\xx`` (RFC 4515 §3), for binary values like objectSid."""
    return "".join(f"\\{octet:02x}" for octet in value)


def check_username(username: object) -> str:
    """Return ``username`` if it can be searched for.

    Raises ``DirectoryError(INVALID_CREDENTIALS)`` for a non-string, an empty or
    whitespace-only name, a name longer than 256 characters or one with control
    characters: such input never reaches the directory.
    """
    if not isinstance(username, str) or not username.strip():
        raise DirectoryError(DirectoryErrorCode.INVALID_CREDENTIALS, "empty username")
    if len(username) > MAX_USERNAME_LENGTH:
        raise DirectoryError(DirectoryErrorCode.INVALID_CREDENTIALS, "username too long")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in username):
        raise DirectoryError(DirectoryErrorCode.INVALID_CREDENTIALS, "control character in username")
    return username


def user_filter(object_class: str, attribute: str, username: str) -> str:
    """Return the filter finding the person whose ``attribute`` equals ``username`` exactly.

    ``object_class`` and ``attribute`` come from validated configuration; ``username``
    is escaped. For AD (object class ``user``) computers are excluded through
    ``objectCategory=person``.
    """
    clauses = [f"(objectClass={object_class})", f"({attribute}={escape_value(username)})"]
    if object_class == "user":
        clauses.insert(0, "(objectCategory=person)")
    return "(&" + "".join(clauses) + ")"


def any_of(attribute: str, values: Iterable[str]) -> str:
    """Return ``(|(attribute=v1)(attribute=v2)...)`` with each value escaped (RFC 4515).

    Raises ValueError when ``values`` is empty (an empty OR matches nothing, RFC 4526,
    and is not understood by every server).
    """
    parts = [f"({attribute}={escape_value(v)})" for v in values]
    if not parts:
        raise ValueError("any_of needs at least one value")
    return parts[0] if len(parts) == 1 else "(|" + "".join(parts) + ")"


def any_of_bytes(attribute: str, values: Iterable[bytes]) -> str:
    """Return ``(|(attribute=\\xx..)...)`` for binary values. Raises ValueError when empty."""
    parts = [f"({attribute}={escape_bytes(v)})" for v in values]
    if not parts:
        raise ValueError("any_of_bytes needs at least one value")
    return parts[0] if len(parts) == 1 else "(|" + "".join(parts) + ")"


def in_chain_member_filter(dn: str) -> str:
    """Return the AD filter for every group that has ``dn`` as a member, however nested."""
    return f"(&(objectClass=group)(member:{IN_CHAIN_RULE}:={escape_value(dn)}))"
