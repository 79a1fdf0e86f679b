"""The questions security officers ask: who can reach X, and what can Y reach?

Both answers are ordinary decisions over the people or services handed in (the
console passes the directory's people, or a sample), so every answer carries the
policies that decided, the obligations and can be explained.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from policies.engine import PolicyEngine
from policies.errors import PolicyError, PolicyErrorCode
from policies.model import Decision, PersonFacts, RecordRef, Request


#: People decided together (``PolicyEngine.decide_many``); bounds memory on large populations.
_BLOCK = 20_000


def summarise(decision: Decision) -> str:
    """Return one line for a console table: the deciding policies, obligations or errors."""
    if decision.errors:
        return "error: " + "; ".join(decision.errors)
    parts = [", ".join(decision.policy_ids) or "no policy permits (default deny)"]
    parts.extend(f"obligation: {o.kind}" for o in decision.obligations)
    return "; ".join(parts)


def who_can(
    engine: PolicyEngine,
    service: str,
    persons: Iterable[PersonFacts],
    *,
    now: dt.datetime,
    action: str = "sign_in",
    record: RecordRef | None = None,
    include_denied: bool = True,
) -> list[tuple[PersonFacts, Decision]]:
    """Return (person, decision) for every person asked about, in the order given.

    With ``include_denied=False`` only permitted people are returned. Decisions that
    would need a step-up or break-glass are denies carrying those obligations.
    Raises PolicyError(INVALID_INPUT) if an item is not PersonFacts or the request is malformed.
    """
    rows: list[tuple[PersonFacts, Decision]] = []
    block: list[PersonFacts] = []

    def flush() -> None:
        requests = [Request(person=p, action=action, service=service, now=now, record=record) for p in block]
        for person, decision in zip(block, engine.decide_many(requests), strict=True):
            if include_denied or decision.allowed:
                rows.append((person, decision))
        block.clear()

    for person in persons:
        if not isinstance(person, PersonFacts):
            raise PolicyError(PolicyErrorCode.INVALID_INPUT, f"who_can: expected PersonFacts, got {type(person).__name__}")
        block.append(person)
        if len(block) >= _BLOCK:
            flush()
    flush()
    return rows


def what_can(
    engine: PolicyEngine,
    person: PersonFacts,
    services: Iterable[str] | None = None,
    *,
    now: dt.datetime,
    include_denied: bool = True,
) -> list[tuple[str, Decision]]:
    """Return (service id, sign-in decision) for each service (default: every service the engine knows).

    Raises PolicyError(INVALID_INPUT) if ``person`` or a service id is malformed.
    """
    if services is None:
        services = [s.id for s in engine.environment.services]
    services = list(services)
    decisions = engine.decide_many([Request(person=person, action="sign_in", service=s, now=now) for s in services])
    return [(s, d) for s, d in zip(services, decisions, strict=True) if include_denied or d.allowed]
