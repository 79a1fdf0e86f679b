"""Evaluate only the policies that can apply: slices of a bundle by action and service.

Cedar checks a policy's scope (``action == ...``, ``resource == / in Service::"s"``)
before its conditions, and a policy whose scope does not match a request is neither
satisfied nor evaluated (so it can raise no error either). Leaving such policies out
of the set handed to Cedar therefore changes nothing about the answer: the same
permits and forbids match, forbid still overrides permit, and with nothing matching
it is still a default deny. Each slice holds, for one (action, service):

* every policy whose action scope may include the action (``==``, ``in [...]``, or
  unconstrained) and whose resource scope may include the service or one of its
  records (``== / in Service::"s"`` for that service, or anything not naming a
  service: unconstrained, ``is``, a Record, another type);
* what the slice reads of the person, so "what if" questions (step-up, break glass)
  whose answer cannot differ are not asked again;
* whether any of its policies names a Person entity: if none does, no answer can
  depend on which other people are in the entity set, so many people (and "what if"
  variants of one person) can be evaluated in one Cedar call.

A request whose resource is a Record of service ``s`` uses the slice of ``s``: a
record's only parent is its service, so ``resource in Service::"t"`` never matches it
for ``t != s``.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Mapping
from typing import Any

import cedarpy

from policies import schema as names
from policies.bundle import CompiledBundle, CompiledPolicy
from policies.projection import Projection

_ANY = None


@dataclasses.dataclass(frozen=True, slots=True)
class Slice:
    """The policies that may apply to one (action, service), pre-parsed for Cedar."""

    action: str
    service: str
    policy_ids: tuple[str, ...]
    policy_set: cedarpy.PolicySet
    cedar_names: Mapping[str, str]
    reads_assurance: bool
    reads_break_glass: bool
    batchable: bool
    projection: Projection


def action_scope(est: Mapping[str, Any]) -> frozenset[str] | None:
    """Return the action ids a policy's scope admits, or None for any action."""
    scope = est.get("action") or {}
    op = scope.get("op")
    if op == "==":
        entity = scope.get("entity") or {}
        return frozenset({str(entity.get("id"))}) if entity.get("type", "").endswith("Action") else _ANY
    if op == "in" and isinstance(scope.get("entities"), list):
        return frozenset(str(e.get("id")) for e in scope["entities"])
    # ``action in Action::"group"`` admits the group's members too: the London schema has
    # no action groups, but stay safe and treat it (and anything unfamiliar) as "any".
    return _ANY


def service_scope(est: Mapping[str, Any]) -> str | None:
    """Return the one service a policy's resource scope is confined to, or None if it may be any."""
    scope = est.get("resource") or {}
    op = scope.get("op")
    if op in ("==", "in"):
        entity = scope.get("entity") or {}
    elif op == "is" and "in" in scope:
        entity = (scope.get("in") or {}).get("entity") or {}
    else:
        return _ANY
    if entity.get("type") == names.SERVICE and isinstance(entity.get("id"), str):
        return str(entity["id"])
    return _ANY


def _reads(policy: CompiledPolicy, attribute: str) -> bool:
    # Conservative: any mention of the attribute's name anywhere in the policy counts.
    return f'"{attribute}"' in json.dumps(dict(policy.est))


class PolicyIndex:
    """Slices of one compiled bundle, built on first use and kept; thread-safe."""

    def __init__(self, compiled: CompiledBundle) -> None:
        """Index every policy of ``compiled`` by the actions and service its scope admits."""
        self._compiled = compiled
        self._scopes = [
            (policy, action_scope(policy.est), service_scope(policy.est)) for policy in compiled.policies.values()
        ]
        self._slices: dict[tuple[str, str], Slice] = {}
        self._lock = threading.Lock()

    def slice(self, action: str, service: str) -> Slice:
        """Return the slice for ``action`` on ``service`` (or one of its records)."""
        key = (action, service)
        found = self._slices.get(key)
        if found is not None:
            return found
        chosen = [
            policy
            for policy, actions, scoped_service in self._scopes
            if (actions is _ANY or action in actions) and (scoped_service is _ANY or scoped_service == service)
        ]
        built = Slice(
            action=action,
            service=service,
            policy_ids=tuple(p.id for p in chosen),
            policy_set=policy_set_of(chosen),
            cedar_names={f"policy{i}": p.id for i, p in enumerate(chosen)},
            reads_assurance=any(_reads(p, "assurance") for p in chosen),
            reads_break_glass=any(_reads(p, "break_glass") for p in chosen),
            batchable=not any(_reads(p, names.PERSON) for p in chosen),
            projection=Projection(chosen),
        )
        with self._lock:
            if len(self._slices) < _SLICE_LIMIT:
                self._slices[key] = built
        return built


_SLICE_LIMIT = 100_000


def policy_set_of(policies: list[CompiledPolicy]) -> cedarpy.PolicySet:
    """Return a Cedar PolicySet of exactly these policies (their parsed JSON form, @id kept)."""
    document = {
        "staticPolicies": {f"policy{i}": dict(p.est) for i, p in enumerate(policies)},
        "templates": {},
        "templateLinks": [],
    }
    return cedarpy.PolicySet.from_json_str(json.dumps(document))
