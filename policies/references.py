"""Which attributes a policy reads, derived from its Cedar JSON (EST) form.

Used by explanations ("this policy read principal.organisation.kind") and to tell a
security officer which facts about a person a policy depends on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: The pseudo-path recorded when a policy tests the principal's team/function membership.
MEMBERSHIP = "principal in (team membership)"
_VARIABLES = ("principal", "resource", "context", "action")


def attribute_paths(est: Mapping[str, Any]) -> tuple[str, ...]:
    """Return the sorted attribute paths one policy reads (``principal.organisation.kind``).

    ``est`` is one policy in Cedar's JSON form. A test of the principal's hierarchy
    (``principal in Function::"discharge"``, in the scope or a condition) is reported
    as :data:`MEMBERSHIP`. Never raises on unfamiliar node shapes: they are walked
    generically.
    """
    found: set[str] = set()
    principal_scope = est.get("principal")
    if isinstance(principal_scope, Mapping) and principal_scope.get("op") in ("in", "is"):
        if principal_scope.get("op") == "in" or "in" in principal_scope:
            found.add(MEMBERSHIP)
    for condition in est.get("conditions", ()) or ():
        if isinstance(condition, Mapping):
            _walk(condition.get("body"), found)
    return tuple(sorted(found))


def _chain(node: object) -> list[str] | None:
    """Return [var, attr, attr...] if ``node`` is an attribute chain rooted at a variable."""
    parts: list[str] = []
    while isinstance(node, Mapping):
        if "." in node and isinstance(node["."], Mapping):
            parts.append(str(node["."].get("attr")))
            node = node["."].get("left")
        elif "Var" in node:
            if node["Var"] not in _VARIABLES:
                return None
            return [str(node["Var"]), *reversed(parts)]
        else:
            return None
    return None


def _walk(node: object, found: set[str]) -> None:
    if isinstance(node, list):
        for item in node:
            _walk(item, found)
        return
    if not isinstance(node, Mapping):
        return
    for key, value in node.items():
        if key in (".", "has") and isinstance(value, Mapping):
            chain = _chain(value.get("left"))
            if chain is not None and chain[0] != "action":
                found.add(".".join([*chain, str(value.get("attr"))]))
                continue
        if key in ("in", "is") and isinstance(value, Mapping):
            left = value.get("left")
            if isinstance(left, Mapping) and left.get("Var") == "principal" and (key == "in" or "in" in value):
                found.add(MEMBERSHIP)
        _walk(value, found)


def fact_name(path: str) -> str | None:
    """Return the person fact a path reads (``principal.organisation.kind`` -> ``organisation``).

    Team membership reads ``teams``; paths not rooted at the principal return None.
    """
    if path == MEMBERSHIP:
        return "teams"
    parts = path.split(".")
    if len(parts) >= 2 and parts[0] == "principal":
        return parts[1]
    return None


def mentions_variable(est: Mapping[str, Any], variable: str) -> bool:
    """Return True if any condition of the policy refers to ``variable`` (e.g. ``principal``) at all."""

    def walk(node: object) -> bool:
        if isinstance(node, list):
            return any(walk(item) for item in node)
        if isinstance(node, Mapping):
            if node.get("Var") == variable:
                return True
            return any(walk(value) for value in node.values())
        return False

    return any(walk(c.get("body")) for c in est.get("conditions", ()) or () if isinstance(c, Mapping))
