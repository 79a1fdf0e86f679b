"""Every group of a directory read once, so a sync resolves everyone's groups in memory.

A sign-in resolves one person's groups with a search or a few (``groups``); a sync of
100,000 people cannot afford that per person. ``GroupIndex.read(conn, cfg)`` reads every
group under the group base with a paged search — its ``member`` values (RFC 4519 §2.17:
DNs of people and of other groups), name and stable id, and on Active Directory its
``objectSid`` (for primary groups) and ``groupType`` — and ``groups_of(dn, raw)`` then
answers as the configured group mode would at sign-in:

* nested membership followed through ``member`` to any depth, each group visited once
  (a cycle A ∋ B ∋ A ends the walk); ``recursive`` and ``member_of`` modes stop at
  ``group_max_depth`` levels as they do at sign-in;
* AD: the primary group (``primaryGroupID`` is a RID in the user's domain, MS-ADTS
  §3.1.1.4.5.x; AD does not list primary members in ``member``) is added, its own parents
  not followed; ``token_groups`` mode keeps security groups only (``groupType`` bit
  0x80000000), as ``tokenGroups`` holds only those;
* ``none``: no groups.

DNs are compared case-insensitively with spaces around ``,`` and ``=`` removed.
Large AD groups' ``member`` is read in ranges by ldap3 (``member;range=...``).

For an incremental sync the index also keeps, per group, the change stamps asked for
(``stamps``: e.g. ``uSNChanged``, ``modifyTimestamp``, ``entryCSN``), read in the same search,
and ``members_under(groups)`` answers who is in those groups, directly or through nested ones.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import re
from collections.abc import Iterable, Iterator

import ldap3

from config.ldap_source import LdapSourceConfig
from directories.errors import DirectoryError, DirectoryErrorCode
from directories.ldap.attributes import (
    RawAttributes,
    domain_sid_and_rid,
    first,
    first_int,
    first_text,
    get_all,
    sid_with_rid,
)
from directories.ldap.transport import SERVER_DOWN_RESULTS, ServerFailure
from directories.records import GroupRef

log = logging.getLogger(__name__)

_PAGED_RESULTS = "1.2.840.113556.1.4.319"  # RFC 2696
_SECURITY_GROUP = 0x80000000  # MS-ADTS §2.2.12 GROUP_TYPE_SECURITY_ENABLED
_DN_SPACES = re.compile(r"\s*([,=+])\s*")


def normalise_dn(dn: str) -> str:
    """Return ``dn`` lower-cased, without spaces around ``,``, ``=`` and ``+``."""
    return _DN_SPACES.sub(r"\1", dn.strip()).lower()


@dataclasses.dataclass(frozen=True, slots=True)
class _Group:
    ref: GroupRef
    security: bool
    stamps: tuple[str, ...] = ()


class GroupIndex:
    """The groups of one directory and who is directly in each (see the module docstring)."""

    def __init__(self, cfg: LdapSourceConfig, groups: dict[str, _Group], parents: dict[str, set[str]],
                 by_sid: dict[bytes, str]) -> None:
        self._cfg = cfg
        self._groups = groups
        self._parents = parents
        self._by_sid = by_sid
        self._is_ad = cfg.type == "active_directory"
        self._mode = cfg.effective_group_mode
        self._children: dict[str, list[str]] | None = None  # built on first use by members_under

    @property
    def size(self) -> int:
        """How many groups were read."""
        return len(self._groups)

    def stamped(self) -> Iterator[tuple[str, GroupRef, tuple[str, ...]]]:
        """Yield (normalised DN, group, its values of the ``stamps`` attributes read, "" if absent)
        for every group."""
        for key, group in self._groups.items():
            yield key, group.ref, group.stamps

    def members_under(self, keys: Iterable[str]) -> set[str]:
        """Return the normalised DNs of the non-group members of the groups ``keys`` (normalised
        DNs) and of every group nested in them, at any depth (each group visited once)."""
        if self._children is None:
            children: dict[str, list[str]] = collections.defaultdict(list)
            for member, groups in self._parents.items():
                for group in groups:
                    children[group].append(member)
            self._children = dict(children)
        seen: set[str] = set()
        frontier = [k for k in dict.fromkeys(keys) if k in self._groups]
        seen.update(frontier)
        members: set[str] = set()
        while frontier:
            found = []
            for group in frontier:
                for member in self._children.get(group, ()):
                    if member in self._groups:
                        if member not in seen:
                            seen.add(member)
                            found.append(member)
                    else:
                        members.add(member)
            frontier = found
        return members

    @classmethod
    def read(cls, conn: ldap3.Connection, cfg: LdapSourceConfig, page_size: int = 500,
             stamps: tuple[str, ...] = ()) -> GroupIndex:
        """Read every group under the group base on ``conn`` (with the ``stamps`` attributes of
        each, see ``stamped``); return the index.

        Raises ``ServerFailure`` (busy/unavailable: the pool fails over) and
        ``DirectoryError(MISCONFIGURED)`` when the server refuses the search or stops it at a
        size limit (a partial index would silently drop memberships).
        """
        is_ad = cfg.type == "active_directory"
        id_attribute = "objectGUID" if is_ad else "entryUUID"
        ldap_filter = "(|(objectClass=group)(member=*))" if is_ad else "(member=*)"
        attributes = ["cn", "member", id_attribute, *(["objectSid", "groupType"] if is_ad else []), *stamps]
        groups: dict[str, _Group] = {}
        parents: dict[str, set[str]] = collections.defaultdict(set)
        by_sid: dict[bytes, str] = {}
        if cfg.effective_group_mode == "none":
            return cls(cfg, groups, parents, by_sid)
        for dn, raw in paged_search(conn, cfg.group_base_dn or cfg.base_dn, ldap_filter, attributes, page_size):
            group_id = first_text(raw, id_attribute)
            if not group_id:
                log.warning("group %s has no %s; left out", dn, id_attribute)
                continue
            key = normalise_dn(dn)
            group_type = first_int(raw, "groupType") if is_ad else None
            security = group_type is None or bool(group_type & _SECURITY_GROUP)
            groups[key] = _Group(GroupRef(id=group_id, name=first_text(raw, "cn") or dn), security,
                                 tuple(first_text(raw, a) or "" for a in stamps))
            sid = first(raw, "objectSid")
            if sid is not None:
                by_sid[bytes(sid)] = key
            for member in get_all(raw, "member"):
                parents[normalise_dn(member.decode("utf-8", "replace"))].add(key)
        return cls(cfg, groups, dict(parents), by_sid)

    def groups_of(self, dn: str, raw: RawAttributes) -> tuple[GroupRef, ...]:
        """Return the groups of the person at ``dn`` (``raw``: their attributes, for the primary
        group), sorted by name then id, as the configured group mode resolves them at sign-in."""
        if self._mode == "none":
            return ()
        limit = self._cfg.group_max_depth if self._mode in {"recursive", "member_of"} else None
        seen: set[str] = set()
        frontier = [normalise_dn(dn)]
        depth = 0
        while frontier:
            if limit is not None and depth == limit:
                log.warning("group nesting of %s deeper than %d levels; stopped", dn, limit)
                break
            found = [g for member in frontier for g in self._parents.get(member, ()) if g in self._groups]
            frontier = [g for g in dict.fromkeys(found) if g not in seen]
            seen.update(frontier)
            depth += 1
        if self._is_ad:
            primary = self._primary(raw)
            if primary is not None:
                seen.add(primary)
        refs = [self._groups[g] for g in seen]
        if self._mode == "token_groups":
            refs = [g for g in refs if g.security]
        unique = {g.ref.id: g.ref for g in refs}
        return tuple(sorted(unique.values(), key=lambda r: (r.name.lower(), r.id)))

    def _primary(self, raw: RawAttributes) -> str | None:
        rid = first_int(raw, "primaryGroupID")
        sid = first(raw, "objectSid")
        if rid is None or sid is None:
            return None
        try:
            domain, _ = domain_sid_and_rid(sid)
        except ValueError:
            return None
        return self._by_sid.get(bytes(sid_with_rid(domain, rid)))


def paged_search(
    conn: ldap3.Connection, base: str, ldap_filter: str, attributes: list[str], page_size: int
) -> Iterator[tuple[str, RawAttributes]]:
    """Yield (DN, raw attributes) of every entry under ``base`` matching ``ldap_filter``, read
    page by page with the Simple Paged Results control (RFC 2696).

    Raises ``ServerFailure`` (busy/unavailable) and ``DirectoryError(MISCONFIGURED)`` when the
    server refuses the search or stops it at a size limit (never a silently partial answer).
    """
    cookie: bytes | None = None
    while True:
        conn.search(base, ldap_filter, search_scope=ldap3.SUBTREE, attributes=attributes, paged_size=page_size,
                    paged_cookie=cookie)
        result = conn.result or {}
        code = result.get("result")
        if code in SERVER_DOWN_RESULTS:
            raise ServerFailure(f"group search answered {result.get('description')}")
        if code != 0:
            raise DirectoryError(
                DirectoryErrorCode.MISCONFIGURED,
                f"reading the groups under {base!r} failed: {result.get('description')} (a partial group index "
                "would drop memberships; allow the service account unlimited paged results)",
            )
        for item in conn.response or ():
            if item.get("type") == "searchResEntry":
                yield item["dn"], dict(item.get("raw_attributes") or {})
        cookie = (result.get("controls") or {}).get(_PAGED_RESULTS, {}).get("value", {}).get("cookie") or None
        if not cookie:
            return
