"""Obligations: what a person could do to turn a deny into a permit.

After a deny, the engine asks "what if?" questions of the same compiled policies:
would a permit exist at a higher assurance level (step-up), or only under an
emergency-access grant (break-glass)? The questions are evaluated by a callable the
engine supplies, so this module holds only the search order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from policies.model import ASSURANCE_LEVELS, BreakGlassRequired, Obligation, StepUp


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """One Cedar evaluation: permitted?, the @ids that decided, and any evaluation errors."""

    allowed: bool
    policy_ids: tuple[str, ...]
    errors: tuple[str, ...] = ()

    @property
    def clean_permit(self) -> bool:
        """True for a permit reached without any evaluation error (fail closed otherwise)."""
        return self.allowed and not self.errors


#: evaluate(assurance, break_glass) -> Outcome, for the same person, action and resource.
Evaluator = Callable[[int, bool], Outcome]


def find_obligations(evaluate: Evaluator, assurance: int, break_glass_active: bool) -> tuple[Obligation, ...]:
    """Return the obligations that would turn the current deny into a permit.

    Tries each higher assurance level first (lowest first, so the step-up asks for the
    minimum level that permits); if none permits and no grant is active, tries an
    emergency-access grant at the current level and then at each higher level. Returns
    ``(StepUp,)``, ``(BreakGlassRequired,)``, ``(BreakGlassRequired, StepUp)`` or ``()``
    when nothing the person can do would permit.
    """
    higher = [level for level in ASSURANCE_LEVELS if level > assurance]
    for level in higher:
        outcome = evaluate(level, break_glass_active)
        if outcome.clean_permit:
            return (StepUp(min_assurance=level, policy_ids=outcome.policy_ids),)
    if break_glass_active:
        return ()
    for level in [assurance, *higher]:
        outcome = evaluate(level, True)
        if outcome.clean_permit:
            required = BreakGlassRequired(policy_ids=outcome.policy_ids)
            if level == assurance:
                return (required,)
            return (required, StepUp(min_assurance=level, policy_ids=outcome.policy_ids))
    return ()
