"""Per-request Cedar entities: only what a decision can reach, not the whole environment.

Handing Cedar the whole environment plus the person costs a copy of every organisation,
team and service on every decision, which grows with London. A Cedar expression can
only reach an entity from the request (principal, resource), through attributes and
parents, or by naming it literally; so a decision needs exactly:

* the person, their organisation and teams, and everything those reach through
  entity-valued attributes and parents (the teams' organisations and functions),
  transitively;
* the resource: the service, or the record, its home borough and its service;
* every entity a policy names literally *and reads something of* (``Team::"x".name``,
  ``Team::"x" in ...``). A literal only compared (``==``), used as the target of ``in``
  or as a scope (``principal in Team::"x"``) needs nothing of the entity itself.

An entity held only inside a set-valued attribute (an organisation's Section 75
partners) is never read: Cedar cannot take an element out of a set, only test
membership (``contains``, ``in``), which compares ids and the ancestors of the left-hand
side. So such entities are left out. Entities outside that set cannot change any answer.

The shared part (every function, the literals read) plus one organisation's reach is
built once per organisation and kept; a decision adds the person, the service, their
teams' reach and the record.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import cedarpy

from policies import schema as names

Uid = tuple[str, str]

_SAFE_BOTH = ("==", "!=", "contains", "containsAll", "containsAny")
_BASE_CACHE_LIMIT = 4096


def _uid_of(value: object) -> Uid | None:
    if isinstance(value, Mapping) and isinstance(value.get("type"), str) and isinstance(value.get("id"), str):
        return (value["type"], value["id"])
    return None


def literals_read(est: Mapping[str, Any]) -> set[Uid]:
    """Return the entities one policy names literally in a position where their data may be read.

    Conservative: a literal anywhere but an operand of ``==``/``!=``/``contains*``, the
    right of ``in`` (or a set there) or a scope counts as read.
    """
    found: set[Uid] = set()

    def walk(node: object, safe: bool) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item, safe)
            return
        if not isinstance(node, Mapping):
            return
        if "Value" in node and isinstance(node["Value"], Mapping) and "__entity" in node["Value"]:
            uid = _uid_of(node["Value"]["__entity"])
            if uid is not None and not safe:
                found.add(uid)
            return
        for key, value in node.items():
            if key in _SAFE_BOTH and isinstance(value, Mapping):
                walk(value.get("left"), True)
                walk(value.get("right"), True)
            elif key == "in" and isinstance(value, Mapping) and "left" in value:
                walk(value.get("left"), False)
                walk(value.get("right"), True)
            elif key == "Set":
                walk(value, safe)
            else:
                walk(value, False)

    for condition in est.get("conditions", ()) or ():
        if isinstance(condition, Mapping):
            walk(condition.get("body"), False)
    return found


class EntityGraph:
    """The environment as JSON fragments with their links; builds per-request Entities."""

    def __init__(
        self,
        environment_entities: Iterable[Mapping[str, Any]],
        literals: Iterable[Uid],
        schema: cedarpy.Schema,
    ) -> None:
        """Index the environment's entities (Cedar JSON) and the literals policies read."""
        self._schema = schema
        self._fragments: dict[Uid, str] = {}
        self._links: dict[Uid, tuple[Uid, ...]] = {}
        shared: list[Uid] = []
        for entity in environment_entities:
            uid = _uid_of(entity["uid"])
            if uid is None:
                continue
            self._fragments[uid] = json.dumps(entity, separators=(",", ":"))
            self._links[uid] = tuple(_references(entity))
            if uid[0] == names.FUNCTION:
                shared.append(uid)
        shared.extend(uid for uid in literals if uid in self._fragments)
        self._shared = self._reach(shared)
        self._bases: dict[str | None, tuple[cedarpy.Entities, frozenset[Uid]]] = {}
        self._reach_cache: dict[Uid, frozenset[Uid]] = {}
        self._lock = threading.Lock()

    def entities(
        self,
        people: Sequence[str],
        organisations: Iterable[str],
        starts: Iterable[Uid],
        own: Sequence[Mapping[str, Any]] = (),
    ) -> cedarpy.Entities:
        """Return Cedar entities for one or more decisions.

        ``people`` are Cedar JSON person entities (text), ``organisations`` their
        organisations' ids, ``starts`` the further environment entities the requests
        start from (the service, their teams, a record's home borough) and ``own``
        request-only entities (records). Raises ValueError if the result does not fit
        the schema.
        """
        wanted_orgs = set(organisations)
        key = next(iter(wanted_orgs)) if len(wanted_orgs) == 1 else None
        base, present = self._base(key)
        wanted: set[Uid] = set()
        if key is None:
            for organisation in wanted_orgs:
                wanted |= self._reach_of((names.ORGANISATION, organisation))
        for uid in starts:
            wanted |= self._reach_of(uid)
        for entity in own:
            for uid in _references(entity):
                wanted |= self._reach_of(uid)
        fragments = list(people)
        fragments.extend(json.dumps(entity, separators=(",", ":")) for entity in own)
        fragments.extend(self._fragments[uid] for uid in wanted - present)
        return base.with_added_json_str("[" + ",".join(fragments) + "]", self._schema)

    def _base(self, organisation: str | None) -> tuple[cedarpy.Entities, frozenset[Uid]]:
        found = self._bases.get(organisation)
        if found is not None:
            return found
        present = set(self._shared)
        if organisation is not None:
            present |= self._reach_of((names.ORGANISATION, organisation))
        document = "[" + ",".join(self._fragments[uid] for uid in sorted(present)) + "]"
        built = (cedarpy.Entities.from_json_str(document, self._schema), frozenset(present))
        with self._lock:
            if len(self._bases) >= _BASE_CACHE_LIMIT:
                self._bases.clear()
            self._bases[organisation] = built
        return built

    def _reach_of(self, start: Uid) -> frozenset[Uid]:
        found = self._reach_cache.get(start)
        if found is None:
            found = frozenset(self._reach([start]))
            with self._lock:
                if len(self._reach_cache) >= _BASE_CACHE_LIMIT * 16:
                    self._reach_cache.clear()
                self._reach_cache[start] = found
        return found

    def _reach(self, starts: Iterable[Uid]) -> set[Uid]:
        """Return the environment entities reachable from ``starts`` (attributes and parents)."""
        seen: set[Uid] = set()
        stack = [uid for uid in starts if uid in self._fragments]
        while stack:
            uid = stack.pop()
            if uid in seen:
                continue
            seen.add(uid)
            stack.extend(link for link in self._links.get(uid, ()) if link in self._fragments and link not in seen)
        return seen


def _references(entity: Mapping[str, Any]) -> list[Uid]:
    """Return the entities whose data an entity can lead to: its parents and entity-valued attributes.

    Entities inside set-valued attributes are not followed (they can only be compared).
    """
    found: list[Uid] = []
    for parent in entity.get("parents", ()) or ():
        uid = _uid_of(parent)
        if uid is not None:
            found.append(uid)

    def walk(value: object) -> None:
        if isinstance(value, Mapping):
            if "__entity" in value:
                uid = _uid_of(value["__entity"])
                if uid is not None:
                    found.append(uid)
                return
            for item in value.values():  # a record attribute: its fields can be read
                walk(item)

    walk(entity.get("attrs", {}))
    return found
