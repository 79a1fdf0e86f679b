"""Search requests encoded straight to BER (RFC 4511 §4.5.1, §5.1), without pyasn1.

ldap3 builds every request as a tree of pyasn1 objects and encodes it generically: about
two thirds of the client CPU of a search, and searches are most of what a sign-in asks of a
directory. ``encode_search`` produces the same octets (checked against ldap3's own encoder
in tests/directories/test_ldap_wire.py) for the filters this package builds: ``&``, ``|``,
``!``, equality, presence, ordering, approximate and extensible matches (RFC 4515 §3),
with ``\\xx`` escapes turned into octets. Anything else (substrings, malformed input) raises
``Unsupported`` and the caller lets ldap3 encode it, so behaviour never depends on this module.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

#: RFC 4511 §4.5.1: derefAliases; ldap3's default, which ``operations.search`` always used.
DEREF_ALWAYS = 3
_SCOPES = {"base": 0, "one": 1, "subtree": 2}
_ESCAPE = re.compile(rb"\\([0-9a-fA-F]{2})")
_ATTRIBUTE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.;-]*")


class Unsupported(ValueError):
    """This filter is not one ``encode_search`` encodes; let ldap3 do it."""


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    octets = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(octets),)) + octets


def _tlv(tag: int, content: bytes) -> bytes:
    return bytes((tag,)) + _length(len(content)) + content


def _integer(tag: int, value: int) -> bytes:
    return _tlv(tag, value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big", signed=True))


def _octets(tag: int, value: str | bytes) -> bytes:
    return _tlv(tag, value.encode() if isinstance(value, str) else value)


def _value(text: str) -> bytes:
    """Return an assertion value's octets: ``\\xx`` escapes decoded (RFC 4515 §3), the rest UTF-8.

    Raises Unsupported for a backslash not followed by two hex digits or an unescaped
    ``*``, ``(`` or ``)``.
    """
    raw = text.strip().encode()
    if b"*" in raw or b"(" in raw or b")" in raw or raw.count(b"\\") != len(_ESCAPE.findall(raw)):
        raise Unsupported("value needs ldap3")
    return _ESCAPE.sub(lambda m: bytes((int(m.group(1), 16),)), raw)


def _attribute(text: str) -> str:
    name = text.strip()
    if not _ATTRIBUTE.fullmatch(name):
        raise Unsupported("attribute description needs ldap3")
    return name


def _item(text: str) -> bytes:
    """Encode one simple filter item (the text between its parentheses)."""
    left, sep, right = text.partition("=")
    if not sep:
        raise Unsupported("no '=' in filter item")
    if left.endswith("~"):
        return _tlv(0xA8, _octets(0x04, _attribute(left[:-1])) + _octets(0x04, _value(right)))
    if left.endswith(">"):
        return _tlv(0xA5, _octets(0x04, _attribute(left[:-1])) + _octets(0x04, _value(right)))
    if left.endswith("<"):
        return _tlv(0xA6, _octets(0x04, _attribute(left[:-1])) + _octets(0x04, _value(right)))
    if left.endswith(":"):
        return _extensible(left[:-1], right)
    if right == "*":
        return _octets(0x87, _attribute(left))
    return _tlv(0xA3, _octets(0x04, _attribute(left)) + _octets(0x04, _value(right)))


def _extensible(left: str, right: str) -> bytes:
    """MatchingRuleAssertion (RFC 4511 §4.5.1.7.7): ``attr[:dn][:rule]`` or ``[:dn]:rule``."""
    parts = left.strip().split(":")
    attribute, dn, rule = "", False, ""
    if parts[0] == "":
        if len(parts) == 2 and parts[1].lower() != "dn":
            rule = parts[1]
        elif len(parts) == 3 and parts[1].lower() == "dn":
            dn, rule = True, parts[2]
        else:
            raise Unsupported("extensible match needs ldap3")
    elif len(parts) == 1:
        attribute = parts[0]
    elif len(parts) == 2:
        attribute = parts[0]
        if parts[1].lower() == "dn":
            dn = True
        else:
            rule = parts[1]
    elif len(parts) == 3 and parts[1].lower() == "dn":
        attribute, dn, rule = parts[0], True, parts[2]
    else:
        raise Unsupported("extensible match needs ldap3")
    content = b""
    if rule:
        content += _octets(0x81, _attribute(rule))
    if attribute:
        content += _octets(0x82, _attribute(attribute))
    content += _octets(0x83, _value(right))
    if dn:
        content += _tlv(0x84, b"\xff")
    return _tlv(0xA9, content)


def encode_filter(text: str) -> bytes:
    """Return the BER Filter (RFC 4511 §4.5.1.7) for an RFC 4515 string filter.

    Raises Unsupported for what this module leaves to ldap3 (substrings, malformed input).
    """
    encoded, end = _filter(text.strip(), 0)
    if end != len(text.strip()):
        raise Unsupported("trailing text after filter")
    return encoded


def _filter(text: str, pos: int) -> tuple[bytes, int]:
    if pos >= len(text) or text[pos] != "(":
        raise Unsupported("filter must start with '('")
    pos += 1
    if pos < len(text) and text[pos] in "&|!":
        op = text[pos]
        pos += 1
        children = []
        while pos < len(text) and text[pos] == "(":
            child, pos = _filter(text, pos)
            children.append(child)
        if pos >= len(text) or text[pos] != ")" or not children or (op == "!" and len(children) != 1):
            raise Unsupported("malformed boolean filter")
        tag = {"&": 0xA0, "|": 0xA1, "!": 0xA2}[op]
        return _tlv(tag, b"".join(children)), pos + 1
    end = text.find(")", pos)
    if end < 0 or "(" in text[pos:end]:
        raise Unsupported("malformed filter item")
    return _item(text[pos:end]), end + 1


def encode_search(
    message_id: int,
    base: str,
    ldap_filter: str,
    attributes: Sequence[str],
    *,
    scope: str = "subtree",
    size_limit: int = 0,
    time_limit: int = 0,
) -> bytes:
    """Return the LDAPMessage carrying a SearchRequest (RFC 4511 §4.5.1), typesOnly false,
    aliases always dereferenced. ``attributes`` empty means "1.1" (no attributes, §4.5.1.8).

    Raises Unsupported when the filter is one ldap3 must encode.
    """
    selection = b"".join(_octets(0x04, a) for a in (attributes or ("1.1",)))
    request = (
        _octets(0x04, base)
        + _integer(0x0A, _SCOPES[scope])
        + _integer(0x0A, DEREF_ALWAYS)
        + _integer(0x02, size_limit)
        + _integer(0x02, time_limit)
        + _tlv(0x01, b"\x00")
        + encode_filter(ldap_filter)
        + _tlv(0x30, selection)
    )
    return _tlv(0x30, _integer(0x02, message_id) + _tlv(0x63, request))


def simple_bind_encodable(dn: str, password: str) -> bool:
    """True for a DN and a non-empty password of printable ASCII, which SASLprep (RFC 4013,
    applied by ldap3) leaves unchanged: what ``encode_simple_bind`` encodes itself."""
    return bool(password) and bool(dn) and all(0x20 <= ord(ch) <= 0x7E for ch in password)


def encode_simple_bind(message_id: int, dn: str, password: str) -> bytes:
    """Return the LDAPMessage carrying a version 3 simple BindRequest (RFC 4511 §4.2).

    Raises Unsupported unless ``simple_bind_encodable(dn, password)``, so ldap3 prepares it.
    """
    if not simple_bind_encodable(dn, password):
        raise Unsupported("password or DN needs ldap3")
    request = _integer(0x02, 3) + _octets(0x04, dn) + _octets(0x80, password)
    return _tlv(0x30, _integer(0x02, message_id) + _tlv(0x60, request))
