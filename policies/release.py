"""Attribute release decided by policy (data minimisation, UK GDPR Art. 5(1)(c)).

After a permitted sign-in the engine evaluates the ``release`` action once per
candidate attribute (``context.attribute``); a service receives only the attributes
some policy releases to it. Anything not released is withheld, and so is anything
whose evaluation erred (fail closed).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence

from policies.model import PersonFacts
from policies.obligations import Outcome

#: evaluate_batch(attribute names) -> one Outcome per name, in order.
BatchEvaluator = Callable[[Sequence[str]], Sequence[Outcome]]


@dataclasses.dataclass(frozen=True, slots=True)
class ReleaseResult:
    """Released attribute names (with the policies that released each) and withheld names."""

    released: tuple[str, ...]
    reasons: dict[str, tuple[str, ...]]
    withheld: tuple[str, ...]


def candidates(person: PersonFacts, requested: Iterable[str] | None) -> tuple[str, ...]:
    """Return the sorted attribute names to consider: those requested, else every fact the person has."""
    names = set(person.facts) if requested is None else set(requested)
    return tuple(sorted(names))


def decide_release(
    person: PersonFacts, requested: Iterable[str] | None, evaluate_batch: BatchEvaluator
) -> ReleaseResult:
    """Return which candidate attributes the service may receive.

    An attribute is released only if the person has it and a policy permits its
    release without evaluation errors; every other candidate is withheld.
    """
    names = candidates(person, requested)
    present = [n for n in names if n in person.facts]
    outcomes = evaluate_batch(present) if present else []
    released: list[str] = []
    reasons: dict[str, tuple[str, ...]] = {}
    for name, outcome in zip(present, outcomes, strict=True):
        if outcome.clean_permit:
            released.append(name)
            reasons[name] = outcome.policy_ids
    withheld = tuple(n for n in names if n not in reasons)
    return ReleaseResult(released=tuple(released), reasons=reasons, withheld=withheld)
