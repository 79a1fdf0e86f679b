"""Plain-language explanations of decisions, for people and for the console.

An explanation says which policies decided, which attributes of the person each of
them reads, and where every such attribute came from (the source that asserted it and
when), followed by the obligations and what was released or withheld.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from policies.bundle import CompiledPolicy
from policies.engine import PolicyEngine
from policies.model import (
    BreakGlassAlert,
    BreakGlassRequired,
    Decision,
    Obligation,
    Request,
    StepUp,
)
from policies.references import MEMBERSHIP, fact_name


@dataclasses.dataclass(frozen=True, slots=True)
class AttributeUse:
    """One attribute a policy reads: its path, current value and provenance."""

    path: str
    value: str
    source: str
    asserted_at: str | None

    def sentence(self) -> str:
        """Return the provenance of this attribute as one clause."""
        when = f" at {self.asserted_at}" if self.asserted_at else ""
        return f"{self.path} = {self.value} (from {self.source}{when})"


@dataclasses.dataclass(frozen=True, slots=True)
class PolicyAccount:
    """One policy's part in a decision."""

    policy_id: str
    effect: str
    source: str
    reads: tuple[AttributeUse, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Explanation:
    """A structured account of one decision; ``to_text()`` renders it as sentences."""

    bundle: str
    decision: str
    summary: str
    deciding: tuple[PolicyAccount, ...]
    considered: tuple[str, ...]
    obligations: tuple[str, ...]
    release: tuple[str, ...]
    errors: tuple[str, ...]

    def sentences(self) -> list[str]:
        """Return the explanation as a list of plain-language sentences."""
        lines = [self.summary]
        for account in self.deciding:
            verb = "permits" if account.effect == "permit" else "forbids"
            lines.append(f"Policy {account.policy_id} ({account.source}) {verb} this.")
            if account.reads:
                lines.append(
                    "It reads: " + "; ".join(use.sentence() for use in account.reads) + "."
                )
        if not self.deciding and self.decision == "deny" and not self.errors:
            if self.considered:
                lines.append(
                    "No policy permits this (default deny). Policies for this action and service, "
                    f"none of whose conditions held: {', '.join(self.considered)}."
                )
            else:
                lines.append("No policy covers this action on this service (default deny).")
        lines.extend(self.obligations)
        lines.extend(self.release)
        lines.extend(f"Denied because of an error (fail closed): {e}." for e in self.errors)
        return lines

    def to_text(self) -> str:
        """Return the explanation as one paragraph per sentence."""
        return "\n".join(self.sentences())

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict of the explanation."""
        return {
            "bundle": self.bundle,
            "decision": self.decision,
            "summary": self.summary,
            "deciding": [
                {
                    "policy_id": a.policy_id,
                    "effect": a.effect,
                    "source": a.source,
                    "reads": [dataclasses.asdict(u) for u in a.reads],
                }
                for a in self.deciding
            ],
            "considered": list(self.considered),
            "obligations": list(self.obligations),
            "release": list(self.release),
            "errors": list(self.errors),
            "text": self.to_text(),
        }


def explain(engine: PolicyEngine, decision: Decision) -> Explanation:
    """Return the explanation of ``decision``, made by ``engine``. Never raises for a Decision."""
    request = decision.request
    target = request.service + (f" record {request.record.id}" if request.record else "")
    verdict = "permitted" if decision.allowed else "denied"
    verb = {"sign_in": "sign in to"}.get(request.action, request.action)
    summary = f"{request.person.subject} is {verdict} to {verb} {target} under policy bundle {decision.bundle}."
    policies = engine.compiled.policies
    deciding = tuple(
        PolicyAccount(
            policy_id=pid,
            effect=policies[pid].effect,
            source=policies[pid].source,
            reads=tuple(_attribute_use(engine, request, path) for path in policies[pid].reads),
        )
        for pid in decision.policy_ids
        if pid in policies
    )
    considered = tuple(
        p.id for p in policies.values() if p.effect == "permit" and _in_scope(p, request) and p.id not in decision.policy_ids
    )
    return Explanation(
        bundle=decision.bundle,
        decision=decision.effect,
        summary=summary,
        deciding=deciding,
        considered=considered if not decision.allowed else (),
        obligations=tuple(_obligation_sentence(o) for o in decision.obligations),
        release=_release_sentences(decision),
        errors=decision.errors,
    )


def _attribute_use(engine: PolicyEngine, request: Request, path: str) -> AttributeUse:
    person = request.person
    if path == MEMBERSHIP:
        fact = person.facts.get("teams")
        teams = person.strings("teams")
        functions = {
            t.id: t.functions for t in engine.environment.teams if t.id in teams
        }
        rendered = ", ".join(
            f"{t} (functions: {', '.join(functions[t]) or 'none'})" if t in functions else f"{t} (unknown team, ignored)"
            for t in teams
        ) or "no teams"
        return AttributeUse(
            path="team membership",
            value=rendered,
            source=fact.source if fact else "no source (no teams asserted)",
            asserted_at=fact.asserted_at.isoformat() if fact else None,
        )
    if path.startswith("resource."):
        value = request.record.home_borough if request.record and path == "resource.home_borough" else "?"
        return AttributeUse(path=path, value=value, source="the request (the record asked for)", asserted_at=None)
    if path.startswith("context."):
        return AttributeUse(path=path, value="the attribute being released", source="the engine", asserted_at=None)
    name = fact_name(path)
    if name == "break_glass":
        grant = person.break_glass
        if grant is None:
            return AttributeUse(path=path, value="false", source="no break-glass grant", asserted_at=None)
        active = grant.active_at(request.now)
        return AttributeUse(
            path=path,
            value=f"{str(active).lower()} (reason code {grant.reason_code}, expires {grant.expires_at.isoformat()})",
            source="break-glass grant",
            asserted_at=grant.granted_at.isoformat(),
        )
    parts = path.split(".")
    if name == "organisation" and len(parts) > 2:
        fact = person.facts["organisation"]
        return AttributeUse(
            path=path,
            value=_organisation_attribute(engine, person.organisation, parts[2]),
            source=f"the organisation registry, for organisation {person.organisation!r} asserted by {fact.source}",
            asserted_at=fact.asserted_at.isoformat(),
        )
    if name is not None and name in person.facts:
        fact = person.facts[name]
        value = fact.value
        rendered = ", ".join(value) if isinstance(value, tuple) else str(value)
        return AttributeUse(path=path, value=rendered or "(empty)", source=fact.source, asserted_at=fact.asserted_at.isoformat())
    return AttributeUse(path=path, value="(not asserted: empty)", source="no source", asserted_at=None)


def _organisation_attribute(engine: PolicyEngine, organisation_id: str, attribute: str) -> str:
    org = engine.environment.organisation(organisation_id)
    if org is None:
        return "unknown organisation"
    if attribute == "section75_partners":
        return ", ".join(engine.environment.partners(organisation_id)) or "none"
    value: object = getattr(org, attribute, "?")
    return ", ".join(value) if isinstance(value, tuple) else str(value)


def _in_scope(policy: CompiledPolicy, request: Request) -> bool:
    """Return True if the policy's scope covers the request's action and resource."""
    action = policy.est.get("action", {})
    if isinstance(action, Mapping):
        op = action.get("op")
        if op == "==" and action.get("entity", {}).get("id") != request.action:
            return False
        if op == "in":
            ids = [e.get("id") for e in action.get("entities", [])] or [action.get("entity", {}).get("id")]
            if request.action not in ids:
                return False
    resource = policy.est.get("resource", {})
    if isinstance(resource, Mapping) and resource.get("op") in ("==", "in"):
        entity = resource.get("entity", {})
        if entity.get("type") == "Service" and entity.get("id") != request.service:
            return False
    return True


def _obligation_sentence(obligation: Obligation) -> str:
    if isinstance(obligation, StepUp):
        return (
            f"Step-up required: a permit exists at assurance level {obligation.min_assurance} "
            f"({', '.join(obligation.policy_ids)}); the person must authenticate again at "
            f"AAL{obligation.min_assurance} or higher."
        )
    if isinstance(obligation, BreakGlassRequired):
        return (
            "Access is possible only under emergency access (break glass, "
            f"{', '.join(obligation.policy_ids)}): the person must give a reason code "
            f"({obligation.reason_codes[0]}-{obligation.reason_codes[-1]}) and a free-text justification; "
            f"the grant lasts {obligation.max_duration_seconds // 60} minutes, alerts the privacy officer "
            "of their organisation and is reviewed."
        )
    if isinstance(obligation, BreakGlassAlert):
        return (
            f"This access rests on a break-glass grant (reason code {obligation.reason_code}, expires "
            f"{obligation.expires_at.isoformat()}): the privacy officer of {obligation.organisation} must be "
            "alerted (without patient or user detail) and the access enters the review queue."
        )
    return f"Obligation: {obligation!r}"


def _release_sentences(decision: Decision) -> tuple[str, ...]:
    if decision.request.action != "sign_in":
        return ()
    if not decision.allowed:
        return ("Nothing is released: access is denied.",) if decision.withheld else ()
    sentences: list[str] = []
    if decision.released:
        parts = [f"{name} ({', '.join(decision.release_policy_ids.get(name, ()))})" for name in decision.released]
        sentences.append(f"Released to {decision.request.service}: {', '.join(parts)}.")
    else:
        sentences.append(f"No attribute is released to {decision.request.service}.")
    if decision.withheld:
        sentences.append(
            f"Withheld (no policy releases them to this service; data minimisation): {', '.join(decision.withheld)}."
        )
    return tuple(sentences)
