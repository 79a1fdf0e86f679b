"""The ABAC policy engine on Cedar: parse, validate, evaluate, explain, govern.

Pure Python over ``cedarpy``: nothing here imports Flask, SQLAlchemy, ldap3 or the
broker, federation and directories packages. The broker converts an Identity into
:class:`PersonFacts`, the organisation registry into an :class:`Environment`, and asks::

    compiled = compile_bundle(load_bundle(LONDON_BUNDLE))   # once
    engine = PolicyEngine(compiled, environment)            # once per environment change
    decision = engine.decide(Request(person, "sign_in", "discharge-hub", now))
    explain(engine, decision).to_text()
"""

from __future__ import annotations

from pathlib import Path

from policies.bundle import CompiledBundle, PolicyBundle, compile_bundle, load_bundle
from policies.engine import PolicyEngine, decide
from policies.errors import PolicyError, PolicyErrorCode
from policies.explain import Explanation, explain
from policies.model import (
    BreakGlassAlert,
    BreakGlassGrant,
    BreakGlassRequired,
    Decision,
    Environment,
    Fact,
    OrganisationFacts,
    PersonFacts,
    RecordRef,
    Request,
    Section75Agreement,
    ServiceFacts,
    StepUp,
    TeamFacts,
)
from policies.queries import summarise, what_can, who_can

#: The demo bundle expressing SCENARIOS policies 1-4.
LONDON_BUNDLE = Path(__file__).parent / "bundles" / "london"

__all__ = [
    "LONDON_BUNDLE",
    "BreakGlassAlert",
    "BreakGlassGrant",
    "BreakGlassRequired",
    "CompiledBundle",
    "Decision",
    "Environment",
    "Explanation",
    "Fact",
    "OrganisationFacts",
    "PersonFacts",
    "PolicyBundle",
    "PolicyEngine",
    "PolicyError",
    "PolicyErrorCode",
    "RecordRef",
    "Request",
    "Section75Agreement",
    "ServiceFacts",
    "StepUp",
    "TeamFacts",
    "compile_bundle",
    "decide",
    "explain",
    "load_bundle",
    "summarise",
    "what_can",
    "who_can",
]
