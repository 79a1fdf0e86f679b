"""Decoding raw LDAP values and mapping directory attributes to canonical names.

Values are read as raw octets (ldap3 ``raw_attributes``), so nothing depends on the
server's schema: binary attributes (objectGUID, objectSid) are decoded here explicitly.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Mapping, Sequence

RawAttributes = Mapping[str, Sequence[bytes]]

#: Attributes whose values are binary (MS-ADTS §2.2 / MS-DTYP): never decoded as text.
BINARY_ATTRIBUTES = {"objectguid": "guid", "objectsid": "sid", "msexchmailboxguid": "guid"}


def guid_to_str(raw: bytes) -> str:
    """Return an AD objectGUID (16 octets, MS-DTYP §2.3.4.2 little-endian fields) as text.

    Raises ValueError unless ``raw`` is 16 octets. The text matches what AD tools show
    (e.g. ``1b83c07e-4e64-4874-a9f8-d6622fec4cce``).
    """
    if len(raw) != 16:
        raise ValueError("objectGUID must be 16 octets")
    return str(uuid.UUID(bytes_le=raw))


def sid_to_str(raw: bytes) -> str:
    """Return a binary SID (MS-DTYP §2.4.2.2) in its string form ``S-1-5-21-...``.

    Raises ValueError when ``raw`` is not a well-formed SID.
    """
    if len(raw) < 8:
        raise ValueError("SID too short")
    revision, count = raw[0], raw[1]
    if len(raw) != 8 + 4 * count:
        raise ValueError("SID length does not match its sub-authority count")
    authority = int.from_bytes(raw[2:8], "big")
    subs = struct.unpack(f"<{count}I", raw[8:])
    return "-".join(["S", str(revision), str(authority), *map(str, subs)])


def sid_to_bytes(sid: str) -> bytes:
    """Return the binary form of a string SID ``S-1-...``. Raises ValueError when malformed."""
    parts = sid.split("-")
    if len(parts) < 3 or parts[0] != "S":
        raise ValueError(f"not a SID: {sid!r}")
    revision, authority, subs = int(parts[1]), int(parts[2]), [int(p) for p in parts[3:]]
    if not 0 <= len(subs) <= 15:
        raise ValueError("too many sub-authorities")
    return bytes([revision, len(subs)]) + authority.to_bytes(6, "big") + struct.pack(f"<{len(subs)}I", *subs)


def domain_sid_and_rid(sid: bytes) -> tuple[bytes, int]:
    """Split an account SID into its domain SID and RID (the last sub-authority).

    Raises ValueError when the SID has no sub-authority.
    """
    count = sid[1] if len(sid) > 1 else 0
    if count < 1 or len(sid) != 8 + 4 * count:
        raise ValueError("SID has no RID")
    domain = bytes([sid[0], count - 1]) + sid[2:-4]
    return domain, struct.unpack("<I", sid[-4:])[0]


def sid_with_rid(domain_sid: bytes, rid: int) -> bytes:
    """Return the SID of RID ``rid`` in domain ``domain_sid`` (e.g. a primary group)."""
    return bytes([domain_sid[0], domain_sid[1] + 1]) + domain_sid[2:] + struct.pack("<I", rid)


def decode_value(attribute: str, raw: bytes) -> str:
    """Return one attribute value as text: GUIDs and SIDs decoded, other values as UTF-8.

    Octets that are not UTF-8 (unknown binary attributes) are rendered as lowercase hex
    so they can never corrupt a record. Raises ValueError for a malformed GUID/SID.
    """
    kind = BINARY_ATTRIBUTES.get(attribute.lower())
    if kind == "guid":
        return guid_to_str(raw)
    if kind == "sid":
        return sid_to_str(raw)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.hex()


def first(raw: RawAttributes, attribute: str) -> bytes | None:
    """Return the first raw value of ``attribute`` (case-insensitive name), or None."""
    values = get_all(raw, attribute)
    return values[0] if values else None


def get_all(raw: RawAttributes, attribute: str) -> Sequence[bytes]:
    """Return every raw value of ``attribute`` (case-insensitive name); empty when absent."""
    wanted = attribute.lower()
    for name, values in raw.items():
        if name.lower() == wanted:
            return values
    return ()


def first_text(raw: RawAttributes, attribute: str) -> str | None:
    """Return the first value of ``attribute`` decoded as text, or None when absent."""
    value = first(raw, attribute)
    return None if value is None else decode_value(attribute, value)


def first_int(raw: RawAttributes, attribute: str) -> int | None:
    """Return the first value of ``attribute`` as an integer, or None when absent or not a number."""
    value = first(raw, attribute)
    if value is None:
        return None
    try:
        return int(value.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None


def map_attributes(raw: RawAttributes, mapping: Mapping[str, str]) -> dict[str, str | tuple[str, ...]]:
    """Return canonical name -> value for every mapped attribute the entry has.

    ``mapping`` is canonical name -> LDAP attribute. A single value becomes a ``str``;
    several values a ``tuple`` in directory order. Absent attributes are left out.
    """
    result: dict[str, str | tuple[str, ...]] = {}
    for canonical, attribute in mapping.items():
        values = get_all(raw, attribute)
        decoded = tuple(decode_value(attribute, v) for v in values)
        if len(decoded) == 1:
            result[canonical] = decoded[0]
        elif decoded:
            result[canonical] = decoded
    return result
