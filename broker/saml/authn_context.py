"""Authentication context (SAML Authn Context, SAML Core §3.3.2.2.1 RequestedAuthnContext).

One vocabulary of assurance (``AssuranceLevel``): the broker's assertions carry the class
reference for the level the session actually achieved — by default the same URI as the OIDC
``acr`` (``urn:supercloud:aal2``), or the SP's configured reference for that level.
Requested class references understood: ours, the SP's configured ones, SAML's
``Password``/``PasswordProtectedTransport`` (AAL1) and REFEDS MFA (AAL2).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from federation.identity import AssuranceLevel

PASSWORD_PROTECTED = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
KNOWN_REFS: dict[str, AssuranceLevel] = {
    "urn:oasis:names:tc:SAML:2.0:ac:classes:Password": AssuranceLevel.AAL1,
    PASSWORD_PROTECTED: AssuranceLevel.AAL1,
    "https://refeds.org/profile/mfa": AssuranceLevel.AAL2,
    **{level.acr: level for level in AssuranceLevel},
}
COMPARISONS = ("exact", "minimum", "better", "maximum")


def class_ref(level: AssuranceLevel, configured: Mapping[str, str]) -> str:
    """Return the AuthnContextClassRef the assertion carries for ``level``."""
    return configured.get(level.name, level.acr)


def level_of(ref: str, configured: Mapping[str, str]) -> AssuranceLevel | None:
    """Return the level a requested class reference stands for, or None if unknown."""
    for name, value in configured.items():
        if value == ref:
            return AssuranceLevel[name]
    return KNOWN_REFS.get(ref)


@dataclasses.dataclass(frozen=True, slots=True)
class ContextOutcome:
    """What a RequestedAuthnContext asks of the session: ``ok``, ``step_up`` to ``level``,
    or ``refuse`` (samlp:NoAuthnContext)."""

    action: str
    level: AssuranceLevel | None = None


def evaluate(refs: tuple[str, ...], comparison: str, achieved: AssuranceLevel,
             configured: Mapping[str, str]) -> ContextOutcome:
    """Decide a RequestedAuthnContext against the ``achieved`` level (SAML Core §3.3.2.2.1).

    No class references: ``ok``. An unknown reference is ignored if others are known; if
    none is known, ``refuse``. ``exact``: the achieved level must be one listed (a lower one
    can be stepped up to the lowest listed); ``minimum``: at least the lowest listed;
    ``better``: above the lowest listed; ``maximum``: at most the highest listed.
    """
    if not refs:
        return ContextOutcome("ok")
    levels = sorted({lvl for lvl in (level_of(r, configured) for r in refs) if lvl is not None})
    if not levels:
        return ContextOutcome("refuse")
    lowest, highest = levels[0], levels[-1]
    if comparison == "maximum":
        return ContextOutcome("ok") if achieved <= highest else ContextOutcome("refuse")
    if comparison == "better":
        if lowest >= AssuranceLevel.AAL3:
            return ContextOutcome("refuse")
        wanted = AssuranceLevel(lowest + 1)
        return ContextOutcome("ok") if achieved >= wanted else ContextOutcome("step_up", wanted)
    if comparison == "minimum":
        return ContextOutcome("ok") if achieved >= lowest else ContextOutcome("step_up", lowest)
    if achieved in levels:
        return ContextOutcome("ok")
    if achieved < lowest:
        return ContextOutcome("step_up", lowest)
    return ContextOutcome("refuse")
