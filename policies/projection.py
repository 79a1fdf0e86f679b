"""What of a person a slice of policies can tell apart: people alike to it are decided once.

When the policies that may apply to an (action, service) use a person's set-valued fact
only as ``principal.groups.contains("x")``, ``.containsAny([...])`` or
``.containsAll([...])`` with literal strings, the answer depends only on which of those
strings the person holds; when they use the person's place in the hierarchy only as
``principal in <literal Team or Function>`` (in a condition or the scope), it depends
only on which of those the person is in; when they use the person's organisation only
through its attributes or by comparing it with literal organisations, it depends only
on those attributes and on which literal it is. Two people who agree on all that, on
their kind, assurance, break-glass state and on the record asked for get the same
answer from Cedar (no policy can name either of them: the slice is batchable). The
key below is exactly that; a slice that uses the person any other way gets no key, and
every person is evaluated.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any

from policies.bundle import CompiledPolicy
from policies.model import SET_FACTS, Request

_LITERAL_SET_METHODS = ("contains", "containsAny", "containsAll")
_ORGANISATION = {".": {"left": {"Var": "principal"}, "attr": "organisation"}}
_SETS = tuple(name for name in SET_FACTS if name != "teams")


class Projection:
    """The literals a slice compares a person's sets and hierarchy with (None: cannot project)."""

    def __init__(self, policies: Iterable[CompiledPolicy]) -> None:
        """Analyse the policies of one slice."""
        self.sets: dict[str, set[str]] = {name: set() for name in _SETS}
        self.ancestors: set[tuple[str, str]] = set()
        self.usable = True
        # The organisation is told apart by id only if compared with something other
        # than literals; otherwise by which literal it is and the attributes read of it.
        self.organisation_identity = False
        self.organisation_literals: set[str] = set()
        self.organisation_reads: set[str] = set()
        for policy in policies:
            self._scope(policy.est.get("principal") or {})
            for condition in policy.est.get("conditions", ()) or ():
                if isinstance(condition, Mapping):
                    self._walk(condition.get("body"))

    def key(
        self,
        request: Request,
        grant_active: bool,
        functions: Mapping[str, tuple[str, ...]],
        organisation_attribute: Callable[[str, str], Hashable],
    ) -> Hashable | None:
        """Return what the slice can see of ``request``'s person (None if the slice cannot be projected).

        ``functions`` maps each known team to its functions (unknown teams are ignored
        by the engine, so by the key too); ``organisation_attribute(id, name)`` returns an
        attribute of an organisation as the policies see it.
        """
        if not self.usable:
            return None
        person = request.person
        facts = person.facts
        above: set[tuple[str, str]] = set()
        if self.ancestors:
            for team in person.strings("teams"):
                if team in functions:
                    above.add(("Team", team))
                    above.update(("Function", f) for f in functions[team])
            above &= self.ancestors
        tested = []
        for name in _SETS:
            literals = self.sets[name]
            fact = facts.get(name) if literals else None
            if fact is None:
                tested.append(frozenset())
            else:
                value = fact.value
                tested.append(frozenset(literals.intersection(value if isinstance(value, tuple) else (value,))))
        record = (request.record.id, request.record.home_borough) if request.record else None
        organisation = person.organisation
        if self.organisation_identity:
            seen: Hashable = organisation
        else:
            seen = (
                organisation if organisation in self.organisation_literals else None,
                tuple(organisation_attribute(organisation, name) for name in sorted(self.organisation_reads)),
            )
        return (
            seen,
            str(facts["kind"].value),
            person.assurance,
            grant_active,
            record,
            frozenset(above),
            tuple(tested),
        )

    # --- analysis ----------------------------------------------------------------------------

    def _scope(self, scope: Mapping[str, Any]) -> None:
        op = scope.get("op")
        if op == "All":
            return
        entity = scope.get("entity") or {}
        if op == "in" and _is_entity(entity):
            self.ancestors.add((entity["type"], entity["id"]))
        else:
            self.usable = False

    def _walk(self, node: object) -> None:
        if isinstance(node, list):
            for item in node:
                self._walk(item)
            return
        if not isinstance(node, Mapping):
            return
        if node.get("Var") == "principal":
            self.usable = False  # the principal itself, used some way not understood here
            return
        for key, value in node.items():
            if not isinstance(value, Mapping):
                self._walk(value)
                continue
            if key in _LITERAL_SET_METHODS and self._literal_set_use(key, value):
                continue
            if key == "in" and self._literal_membership(value):
                continue
            if key in ("==", "!=") and self._organisation_compared(value):
                continue
            if key in (".", "has") and value.get("left") == _ORGANISATION:
                self.organisation_reads.add(str(value.get("attr")))  # an attribute of the organisation
                continue
            if key == "." and value.get("left") == {"Var": "principal"}:
                if value.get("attr") in self.sets:
                    self.usable = False  # a set fact used some other way
                elif value.get("attr") == "organisation":
                    self.organisation_identity = True  # the organisation itself, used some other way
                continue  # a scalar attribute: part of the key as it is
            if key == "has" and value.get("left") == {"Var": "principal"}:
                continue
            self._walk(value)

    def _organisation_compared(self, value: Mapping[str, Any]) -> bool:
        """``principal.organisation == Organisation::"x"`` (either way round): remember ``x``."""
        left, right = value.get("left"), value.get("right")
        for mine, other in ((left, right), (right, left)):
            if mine == _ORGANISATION and isinstance(other, Mapping) and isinstance(other.get("Value"), Mapping):
                entity = other["Value"].get("__entity")
                if _is_entity(entity):
                    self.organisation_literals.add(entity["id"])
                    return True
        return False

    def _literal_set_use(self, method: str, value: Mapping[str, Any]) -> bool:
        left, right = value.get("left"), value.get("right")
        if not (isinstance(left, Mapping) and isinstance(left.get("."), Mapping)):
            return False
        access = left["."]
        name = access.get("attr")
        if access.get("left") != {"Var": "principal"} or name not in self.sets:
            return False
        literals = _strings(right) if method != "contains" else _string(right)
        if literals is None:
            return False
        self.sets[name].update(literals)
        return True

    def _literal_membership(self, value: Mapping[str, Any]) -> bool:
        if value.get("left") != {"Var": "principal"}:
            return False
        right = value.get("right")
        targets = [right] if isinstance(right, Mapping) and "Value" in right else (
            right.get("Set") if isinstance(right, Mapping) else None
        )
        if not isinstance(targets, list):
            return False
        found = []
        for target in targets:
            entity = target.get("Value", {}).get("__entity") if isinstance(target, Mapping) and isinstance(
                target.get("Value"), Mapping) else None
            if not _is_entity(entity):
                return False
            found.append((entity["type"], entity["id"]))
        self.ancestors.update(found)
        return True


def _is_entity(value: object) -> bool:
    return isinstance(value, Mapping) and isinstance(value.get("type"), str) and isinstance(value.get("id"), str)


def _string(node: object) -> list[str] | None:
    if isinstance(node, Mapping) and isinstance(node.get("Value"), str):
        return [node["Value"]]
    return None


def _strings(node: object) -> list[str] | None:
    if not (isinstance(node, Mapping) and isinstance(node.get("Set"), list)):
        return None
    found = []
    for item in node["Set"]:
        value = _string(item)
        if value is None:
            return None
        found.extend(value)
    return found
