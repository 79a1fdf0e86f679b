"""Group membership, direct and nested, reported as ``GroupRef(id, name)``.

* ``InChainGroups`` (AD): one search with LDAP_MATCHING_RULE_IN_CHAIN
  (MS-ADTS §3.1.1.3.4.4.3), plus the primary group (primaryGroupID is a RID in the
  user's domain; AD does not list it in ``member``), both in one search.
* ``TokenGroupsGroups`` (AD): the constructed ``tokenGroups`` attribute (MS-ADTS
  §3.1.1.4.5.19, base-scope read only), resolved to groups by objectSid. Includes the
  primary group and its nesting.
* ``RecursiveGroups`` (plain LDAP, e.g. OpenLDAP): ``member`` expanded level by level by
  the client, with a visited set (cycles) and a depth limit.
* ``MemberOfGroups`` (both, ``group_mode: member_of``): no LDAP operation of its own. The
  person's direct groups are their ``memberOf`` values, read with the user search (live at
  every sign-in); nesting and the AD primary group come from the per-process group graph
  (``group_graph``; up to ``group_graph_refresh_seconds`` old while reloads succeed, never
  older than ``group_graph_max_age_seconds``). Without a usable graph, or when ``memberOf``
  names a group under the base the graph does not know, it asks the live resolver (in_chain
  on AD, recursive on LDAP) on the connection it was given, and a reload starts.

Each resolver runs on a *service* connection and returns groups sorted by name.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Sequence
from typing import Protocol

import ldap3

from directories.ldap.attributes import (
    domain_sid_and_rid,
    first,
    first_int,
    first_text,
    get_all,
    sid_with_rid,
)
from directories.ldap.filters import any_of, any_of_bytes, in_chain_member_filter
from directories.ldap.group_graph import GroupGraphCache
from directories.ldap.group_index import normalise_dn
from directories.ldap.operations import Entry, search
from directories.records import GroupRef

log = logging.getLogger(__name__)
_SID_BATCH = 100
_DN_BATCH = 50


class GroupResolver(Protocol):
    """Finds the groups of one user."""

    #: Attributes the resolver needs on the user's entry (read with the user search).
    user_attributes: tuple[str, ...]

    def groups(self, conn: ldap3.Connection, user: Entry) -> tuple[GroupRef, ...]:
        """Return the user's groups (direct and nested), sorted by name."""
        ...

    def without_connection(self, user: Entry) -> tuple[GroupRef, ...] | None:
        """Return the user's groups if they can be told from ``user`` (and what the resolver
        holds) alone, else None: then ``groups`` needs a connection."""
        ...


def _group_ref(entry: Entry, id_attribute: str) -> GroupRef | None:
    group_id = first_text(entry.raw, id_attribute)
    if not group_id:
        log.warning("group %s has no %s; left out", entry.dn, id_attribute)
        return None
    return GroupRef(id=group_id, name=first_text(entry.raw, "cn") or entry.dn)


def _sorted(refs: Sequence[GroupRef | None]) -> tuple[GroupRef, ...]:
    unique = {ref.id: ref for ref in refs if ref is not None}
    return tuple(sorted(unique.values(), key=lambda r: (r.name.lower(), r.id)))


class _ReadsOnAConnection:
    """For resolvers that always answer on a service connection (``groups``), never from the
    user's entry alone."""

    def without_connection(self, user: Entry) -> tuple[GroupRef, ...] | None:
        """Return None: ``groups`` answers, on the connection it is given."""
        return None


class NoGroups(_ReadsOnAConnection):
    """Reports no groups (``group_mode: none``)."""

    user_attributes: tuple[str, ...] = ()

    def groups(self, conn: ldap3.Connection, user: Entry) -> tuple[GroupRef, ...]:
        """Return an empty tuple."""
        return ()


def primary_group_sid(user: Entry) -> bytes | None:
    """Return the objectSid of an AD user's primary group, or None if the entry lacks
    ``primaryGroupID`` or ``objectSid`` (primaryGroupID is a RID in the user's own domain)."""
    rid = first_int(user.raw, "primaryGroupID")
    sid = first(user.raw, "objectSid")
    if rid is None or sid is None:
        return None
    try:
        domain, _ = domain_sid_and_rid(sid)
    except ValueError:
        log.warning("user %s has a malformed objectSid; primary group unknown", user.dn)
        return None
    return sid_with_rid(domain, rid)


class InChainGroups(_ReadsOnAConnection):
    """AD nested groups through the in-chain matching rule, plus the primary group, in one search."""

    user_attributes = ("primaryGroupID", "objectSid")

    def __init__(self, group_base_dn: str) -> None:
        self._base = group_base_dn

    def groups(self, conn: ldap3.Connection, user: Entry) -> tuple[GroupRef, ...]:
        """Return every group ``user`` belongs to, transitively, plus the primary group.

        One search: ``(|<in-chain member filter>(objectSid=<primary group SID>))``, so a
        sign-in costs the directory one round trip for its groups. The primary group's own
        parents are not followed (AD does not list the primary group in ``member``).
        """
        in_chain = in_chain_member_filter(user.dn)
        primary = primary_group_sid(user)
        ldap_filter = in_chain if primary is None else f"(|{in_chain}{any_of_bytes('objectSid', [primary])})"
        return _sorted([_group_ref(e, "objectGUID") for e in search(conn, self._base, ldap_filter, ["cn", "objectGUID"])])


class TokenGroupsGroups(_ReadsOnAConnection):
    """AD nested groups from the constructed tokenGroups attribute (security groups only)."""

    user_attributes = ("objectSid",)

    def __init__(self, group_base_dn: str) -> None:
        self._base = group_base_dn

    def groups(self, conn: ldap3.Connection, user: Entry) -> tuple[GroupRef, ...]:
        """Return the groups named by the user's tokenGroups SIDs that exist under the base."""
        token = search(conn, user.dn, "(objectClass=*)", ["tokenGroups"], scope="base")
        sids = list(get_all(token[0].raw, "tokenGroups")) if token else []
        entries: list[Entry] = []
        for start in range(0, len(sids), _SID_BATCH):
            batch = sids[start : start + _SID_BATCH]
            entries += search(
                conn, self._base, f"(&(objectClass=group){any_of_bytes('objectSid', batch)})", ["cn", "objectGUID"]
            )
        return _sorted([_group_ref(e, "objectGUID") for e in entries])


class RecursiveGroups(_ReadsOnAConnection):
    """Plain-LDAP nested groups, expanded by the client (``member`` holds DNs, RFC 4519 §2.17)."""

    user_attributes: tuple[str, ...] = ()

    def __init__(self, group_base_dn: str, max_depth: int, id_attribute: str = "entryUUID") -> None:
        self._base = group_base_dn
        self._max_depth = max_depth
        self._id_attribute = id_attribute

    def groups(self, conn: ldap3.Connection, user: Entry) -> tuple[GroupRef, ...]:
        """Return the user's groups, following groups-in-groups up to ``max_depth`` levels.

        Each group is visited once, so a membership cycle (A ∋ B ∋ A) ends the walk
        instead of looping; hitting the depth limit is logged and the walk stops there.
        """
        seen: dict[str, Entry] = {}
        frontier = [user.dn]
        for depth in range(self._max_depth + 1):
            if not frontier:
                break
            if depth == self._max_depth:
                log.warning("group nesting of %s deeper than %d levels; stopped", user.dn, self._max_depth)
                break
            found: list[Entry] = []
            for start in range(0, len(frontier), _DN_BATCH):
                batch = frontier[start : start + _DN_BATCH]
                found += search(conn, self._base, any_of("member", batch), ["cn", self._id_attribute])
            frontier = []
            for entry in found:
                key = entry.dn.lower()
                if key not in seen:
                    seen[key] = entry
                    frontier.append(entry.dn)
        return _sorted([_group_ref(e, self._id_attribute) for e in seen.values()])


@dataclasses.dataclass(frozen=True, slots=True)
class MemberOfCounts:
    """How ``MemberOfGroups`` answered so far: from the graph, or live (and why)."""

    graph: int = 0
    live_no_graph: int = 0
    live_unknown_group: int = 0
    live_incomplete: int = 0

    @property
    def live(self) -> int:
        """Answers resolved live, whatever the reason."""
        return self.live_no_graph + self.live_unknown_group + self.live_incomplete


class MemberOfGroups:
    """Groups from the person's own ``memberOf`` plus a cached group graph (module docstring).

    ``live`` is the resolver asked when the graph cannot answer (``InChainGroups`` on AD,
    ``RecursiveGroups`` on LDAP). Thread-safe.
    """

    def __init__(
        self, cache: GroupGraphCache, live: GroupResolver, *, max_depth: int, active_directory: bool
    ) -> None:
        self._cache = cache
        self._live = live
        self._max_depth = max_depth
        self._is_ad = active_directory
        own = ("memberOf", "primaryGroupID", "objectSid") if active_directory else ("memberOf",)
        self.user_attributes: tuple[str, ...] = tuple(dict.fromkeys([*own, *live.user_attributes]))
        self._lock = threading.Lock()
        self._counts = MemberOfCounts()

    @property
    def cache(self) -> GroupGraphCache:
        """The group graph cache (to refresh it, or read its age)."""
        return self._cache

    @property
    def counts(self) -> MemberOfCounts:
        """How many answers came from the graph and how many were resolved live."""
        return self._counts

    def groups(self, conn: ldap3.Connection, user: Entry) -> tuple[GroupRef, ...]:
        """Return the user's groups (direct, nested, AD primary group), sorted by name.

        From the graph without touching ``conn`` when it may be used and knows every group
        under the base that ``memberOf`` names; otherwise from the live resolver on ``conn``
        (raising what it raises: ``ServerFailure``, ``DirectoryError``).
        """
        answer = self._from_graph(user)
        if not isinstance(answer, str):
            return answer
        if answer == "live_unknown_group":
            log.info("group graph lacks a group %s is in (created since the last load?); resolved live", user.dn)
            self._cache.request_reload()
        return self._resolve_live(conn, user, answer)

    def without_connection(self, user: Entry) -> tuple[GroupRef, ...] | None:
        """Return the user's groups from the graph, or None when ``groups`` must resolve them
        live (on a connection)."""
        answer = self._from_graph(user)
        return None if isinstance(answer, str) else answer

    def _from_graph(self, user: Entry) -> tuple[GroupRef, ...] | str:
        """Return the user's groups from the graph (counted), or why they must be resolved live:
        ``live_no_graph``, ``live_incomplete`` or ``live_unknown_group`` (a ``MemberOfCounts`` field)."""
        graph = self._cache.current()
        if graph is None:
            return "live_no_graph"
        if any(name.lower().startswith("memberof;range=") for name in user.raw):
            # AD sends a long memberOf in ranges; one ldap3 could not complete is not trusted.
            return "live_incomplete"
        direct = [normalise_dn(value.decode("utf-8", "replace")) for value in get_all(user.raw, "memberOf")]
        if any(graph.under_base(dn) and not graph.knows(dn) for dn in direct):
            return "live_unknown_group"
        primary = primary_group_sid(user) if self._is_ad else None
        self._count("graph")
        return graph.expand(direct, primary, self._max_depth, user.dn)

    def _resolve_live(self, conn: ldap3.Connection, user: Entry, reason: str) -> tuple[GroupRef, ...]:
        self._count(reason)
        return self._live.groups(conn, user)

    def _count(self, field: str) -> None:
        with self._lock:
            self._counts = dataclasses.replace(self._counts, **{field: getattr(self._counts, field) + 1})
