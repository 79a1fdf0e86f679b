"""The group graph of ``group_mode: member_of``: every group with its parents, cached per process.

``load_group_graph(conn, cfg)`` reads every group under the group base with one paged
search (RFC 2696, ``group_index.paged_search``): its name (``cn``), stable id (AD
``objectGUID``, LDAP ``entryUUID``), on AD its ``objectSid`` (primary groups), and its own
``memberOf`` — the groups it is nested in. Which entries are groups is what the live
resolvers use: on AD ``(objectClass=group)`` (as ``InChainGroups``), on LDAP every entry
with ``member`` (as ``RecursiveGroups`` and ``GroupIndex``).

``GroupGraph.expand`` turns a person's direct groups (their own ``memberOf``, read with the
sign-in's user search) into all their groups: parents followed breadth first, each group
once (a cycle A ∋ B ∋ A ends), at most ``group_max_depth`` levels; on AD the primary group
(``primaryGroupID``, a RID in the user's domain; AD lists it in no ``memberOf``) added by
SID without following its parents. Only groups in the graph (under the group base) are
reported, and nesting is followed through them only, as ``RecursiveGroups`` does (AD's
in-chain rule also walks through groups outside the group base: with a group base narrower
than the domain, a chain that leaves the base and comes back is not followed here).

``GroupGraphCache`` keeps one graph per directory per process and says when it may be used:

* younger than ``refresh_seconds``: used;
* older: still used, and one reload runs in a background thread (single flight: one load at
  a time per cache; a failed load is logged and retried ``refresh_seconds`` after it began);
* older than ``max_age_seconds`` (reloads failing) or none loaded yet: not used — the caller
  resolves live — and a reload is started. The first sign-ins after start are thus live
  ones while the first load runs in the background: no sign-in waits for a whole group read.

Freshness, therefore: what the person's own entry says (direct membership, the primary
group's RID) is live at every sign-in; nesting, group names and which SID is which group
(a primary group created since the last load is missing until the next) are at most
``refresh_seconds`` (plus one load) old while reloads succeed, never more than
``max_age_seconds``. A group created since the last load that a person is put into directly
is no staleness: their ``memberOf`` names a group under the base the graph lacks, so that
sign-in is resolved live (and a reload starts, at most one a second).

``memberOf`` is the back link the server keeps of every ``member`` value: AD always (MS-ADTS
linked attributes; the primary group excepted), OpenLDAP with slapo-memberof(5) or dynlist
configured for every group class. Fork-safe: a cache used in a child process after ``fork``
gets a new lock and forgets a load the parent had in flight.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping

import ldap3

from config.ldap_source import LdapSourceConfig
from directories.errors import DirectoryError
from directories.ldap.attributes import first, first_text, get_all
from directories.ldap.group_index import normalise_dn, paged_search
from directories.records import GroupRef

log = logging.getLogger(__name__)

#: A reload asked for because a person names a group the graph lacks is started at most this often.
UNKNOWN_GROUP_RELOAD_GAP_SECONDS = 1.0
_PAGE_SIZE = 500


@dataclasses.dataclass(frozen=True, slots=True)
class GroupGraph:
    """Groups under one base (keys: DNs as ``normalise_dn`` gives them) and their parents."""

    base: str
    groups: Mapping[str, GroupRef]
    parents: Mapping[str, tuple[str, ...]]
    by_sid: Mapping[bytes, str] = dataclasses.field(default_factory=dict)

    @property
    def size(self) -> int:
        """How many groups the graph holds."""
        return len(self.groups)

    def under_base(self, dn: str) -> bool:
        """Return whether the normalised ``dn`` is the group base or below it."""
        return dn == self.base or dn.endswith("," + self.base)

    def knows(self, dn: str) -> bool:
        """Return whether the normalised ``dn`` is a group of the graph."""
        return dn in self.groups

    def expand(
        self, direct: Iterable[str], primary_sid: bytes | None, max_depth: int, who: str = ""
    ) -> tuple[GroupRef, ...]:
        """Return the groups reached from the normalised DNs ``direct`` (level 1) through parents,
        at most ``max_depth`` levels, plus the group whose objectSid is ``primary_sid`` (its parents
        not followed); sorted by name then id. Groups not in the graph are ignored. Reaching the
        depth limit with parents left is logged (``who`` names the person) and the walk stops.
        """
        frontier = [dn for dn in dict.fromkeys(direct) if dn in self.groups]
        seen = set(frontier)
        depth = 1
        while frontier:
            found = [p for dn in frontier for p in self.parents.get(dn, ()) if p in self.groups and p not in seen]
            if not found:
                break
            if depth == max_depth:
                log.warning("group nesting of %s deeper than %d levels; stopped", who, max_depth)
                break
            frontier = list(dict.fromkeys(found))
            seen.update(frontier)
            depth += 1
        if primary_sid is not None and (primary := self.by_sid.get(bytes(primary_sid))) is not None:
            seen.add(primary)
        unique = {self.groups[dn].id: self.groups[dn] for dn in seen}
        return tuple(sorted(unique.values(), key=lambda r: (r.name.lower(), r.id)))


def group_filter(cfg: LdapSourceConfig) -> str:
    """Return the filter selecting groups: AD ``(objectClass=group)``, LDAP ``(member=*)``."""
    return "(objectClass=group)" if cfg.type == "active_directory" else "(member=*)"


def load_group_graph(conn: ldap3.Connection, cfg: LdapSourceConfig, page_size: int = _PAGE_SIZE) -> GroupGraph:
    """Read every group under ``cfg``'s group base on ``conn`` (a service connection); return the graph.

    Raises ``ServerFailure`` (the pool fails over) and ``DirectoryError(MISCONFIGURED)`` when
    the server refuses the paged search or stops it at a size limit (a partial graph would
    drop nesting). A group without a stable id is logged and left out.
    """
    is_ad = cfg.type == "active_directory"
    id_attribute = "objectGUID" if is_ad else "entryUUID"
    base = cfg.group_base_dn or cfg.base_dn
    attributes = ["cn", id_attribute, "memberOf", *(["objectSid"] if is_ad else [])]
    groups: dict[str, GroupRef] = {}
    parents: dict[str, tuple[str, ...]] = {}
    by_sid: dict[bytes, str] = {}
    for dn, raw in paged_search(conn, base, group_filter(cfg), attributes, page_size):
        group_id = first_text(raw, id_attribute)
        if not group_id:
            log.warning("group %s has no %s; left out", dn, id_attribute)
            continue
        key = normalise_dn(dn)
        groups[key] = GroupRef(id=group_id, name=first_text(raw, "cn") or dn)
        parents[key] = tuple(normalise_dn(v.decode("utf-8", "replace")) for v in get_all(raw, "memberOf"))
        sid = first(raw, "objectSid")
        if sid is not None:
            by_sid[bytes(sid)] = key
    return GroupGraph(base=normalise_dn(base), groups=groups, parents=parents, by_sid=by_sid)


def _start_daemon_thread(name: str, target: Callable[[], None]) -> None:
    threading.Thread(target=target, name=name, daemon=True).start()


class GroupGraphCache:
    """One directory's group graph in this process, reloaded in the background (module docstring).

    ``load`` returns a fresh graph or raises (``DirectoryError`` when no server could answer).
    ``clock`` (monotonic seconds), ``spawn`` (runs a job in a background thread) and
    ``getpid`` exist for tests.
    """

    def __init__(
        self,
        name: str,
        load: Callable[[], GroupGraph],
        *,
        refresh_seconds: float,
        max_age_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        spawn: Callable[[str, Callable[[], None]], None] = _start_daemon_thread,
        getpid: Callable[[], int] = os.getpid,
    ) -> None:
        if max_age_seconds < refresh_seconds:
            raise ValueError("max_age_seconds must be at least refresh_seconds")
        self._name = name
        self._load = load
        self._refresh = refresh_seconds
        self._max_age = max_age_seconds
        self._clock = clock
        self._spawn = spawn
        self._getpid = getpid
        self._pid = getpid()
        self._lock = threading.Lock()
        self._graph: GroupGraph | None = None
        self._loaded_at = -math.inf  # when the load that produced the graph began
        self._loading = False
        self._last_attempt: float | None = None  # when the last load began
        self._last_failed = False
        self._loads = 0

    @property
    def loads(self) -> int:
        """How many loads succeeded in this process (background and ``refresh``)."""
        return self._loads

    def age(self) -> float:
        """Seconds since the load of the current graph began (infinite when there is none)."""
        return self._clock() - self._loaded_at

    def current(self) -> GroupGraph | None:
        """Return the graph if it may be used (no older than max age), else None (resolve live).

        Starts a background reload when the graph is missing or older than refresh seconds
        and none is running (after a failure, not before refresh seconds since it began).
        """
        self._after_fork()
        now = self._clock()
        with self._lock:
            graph, age = self._graph, now - self._loaded_at
            if graph is None or age >= self._refresh:
                self._start_locked(now, self._refresh)
        return graph if graph is not None and age <= self._max_age else None

    def request_reload(self) -> None:
        """Start a background reload unless one runs or began less than a second ago (or, after a
        failed one, less than refresh seconds ago). Returns None."""
        self._after_fork()
        with self._lock:
            gap = self._refresh if self._last_failed else min(self._refresh, UNKNOWN_GROUP_RELOAD_GAP_SECONDS)
            self._start_locked(self._clock(), gap)

    def refresh(self) -> GroupGraph:
        """Load the graph now in this thread and return it (warm-up, tests).

        Raises what ``load`` raises (the current graph is kept).
        """
        self._after_fork()
        started = self._clock()
        graph = self._load()
        self._store(graph, started, background=False)
        return graph

    # -- internals ---------------------------------------------------------------------

    def _start_locked(self, now: float, gap: float) -> None:
        if self._loading or (self._last_attempt is not None and now - self._last_attempt < gap):
            return
        self._loading = True
        self._last_attempt = now
        try:
            self._spawn(f"group-graph-{self._name}", lambda: self._background(now))
        except RuntimeError as exc:  # no thread can be started (interpreter shutting down)
            self._loading = False
            log.warning("directory %s: group graph reload not started: %s", self._name, exc)

    def _background(self, started: float) -> None:
        try:
            graph = self._load()
        except DirectoryError as exc:
            self._failed(f"{exc.code.value}: {exc.detail}")
        except Exception as exc:  # noqa: BLE001 - a reload must never leave the flag set
            log.exception("directory %s: group graph reload failed unexpectedly", self._name)
            self._failed(type(exc).__name__)
        else:
            self._store(graph, started, background=True)

    def _failed(self, reason: str) -> None:
        with self._lock:
            self._loading = False
            self._last_failed = True
            age = self._clock() - self._loaded_at
        log.warning(
            "directory %s: group graph reload failed (%s); retried in %.0f s; the graph in use is %s",
            self._name, reason, self._refresh, "missing" if math.isinf(age) else f"{age:.0f} s old",
        )  # fmt: skip

    def _store(self, graph: GroupGraph, started: float, *, background: bool) -> None:
        with self._lock:
            if background:
                self._loading = False
            if started >= self._loaded_at:  # never replace a newer snapshot by an older one
                self._graph, self._loaded_at = graph, started
                self._last_failed = False
            self._loads += 1
        log.info("directory %s: group graph loaded (%d groups)", self._name, graph.size)

    def _after_fork(self) -> None:
        """In a forked child: new lock, and no load in flight (the parent's thread is not here)."""
        pid = self._getpid()
        if pid != self._pid:
            self._lock = threading.Lock()
            self._loading = False
            self._last_attempt = None
            self._pid = pid
