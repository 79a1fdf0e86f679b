"""Replay recorded past decisions against a candidate bundle: which would flip?"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from policies.engine import PolicyEngine
from policies.errors import PolicyError, PolicyErrorCode
from policies.model import Decision, Request


@dataclasses.dataclass(frozen=True, slots=True)
class RecordedDecision:
    """A decision from the decision log: the request as it was asked and what was decided."""

    id: str
    request: Request
    allowed: bool
    policy_ids: tuple[str, ...] = ()
    bundle: str = ""

    @classmethod
    def from_decision(cls, record_id: str, decision: Decision) -> RecordedDecision:
        """Return the recorded form of a decision the engine made."""
        return cls(
            id=record_id,
            request=decision.request,
            allowed=decision.allowed,
            policy_ids=decision.policy_ids,
            bundle=decision.bundle,
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Flip:
    """A recorded decision the candidate would decide the other way."""

    record_id: str
    subject: str
    action: str
    service: str
    record: str | None
    was_allowed: bool
    now_allowed: bool
    old_policy_ids: tuple[str, ...]
    new_policy_ids: tuple[str, ...]
    new_errors: tuple[str, ...]

    def sentence(self) -> str:
        """Return the flip as one line of text."""
        was = "permitted" if self.was_allowed else "denied"
        now = "permitted" if self.now_allowed else "denied"
        target = self.service + (f" record {self.record}" if self.record else "")
        by = ", ".join(self.new_policy_ids) or ("errors: " + "; ".join(self.new_errors) if self.new_errors else "default deny")
        return f"{self.record_id}: {self.subject} {self.action} {target} was {was}, would be {now} ({by})"


@dataclasses.dataclass(frozen=True, slots=True)
class ReplayReport:
    """Every flip the candidate would cause, out of ``total`` recorded decisions."""

    candidate: str
    total: int
    flips: tuple[Flip, ...]

    @property
    def newly_denied(self) -> tuple[Flip, ...]:
        """Flips from permit to deny."""
        return tuple(f for f in self.flips if f.was_allowed)

    @property
    def newly_permitted(self) -> tuple[Flip, ...]:
        """Flips from deny to permit."""
        return tuple(f for f in self.flips if not f.was_allowed)

    def to_text(self) -> str:
        """Return the report as text, one line per flip."""
        lines = [f"Replaying {self.total} recorded decision(s) against {self.candidate}: {len(self.flips)} would flip."]
        lines.extend(f.sentence() for f in self.flips)
        return "\n".join(lines)


def replay(engine: PolicyEngine, recorded: Iterable[RecordedDecision]) -> ReplayReport:
    """Return every recorded decision ``engine`` would decide the other way.

    Only the effect is compared (``PolicyEngine.outcomes``: no obligation search or
    attribute release, many decisions per Cedar call), so replaying a long history
    stays fast. Raises PolicyError(INVALID_INPUT) if an item is not a RecordedDecision.
    """
    flips: list[Flip] = []
    total = 0
    block: list[RecordedDecision] = []

    def flush() -> None:
        for item, outcome in zip(block, engine.outcomes([b.request for b in block]), strict=True):
            if outcome.allowed != item.allowed:
                flips.append(
                    Flip(
                        record_id=item.id,
                        subject=item.request.person.subject,
                        action=item.request.action,
                        service=item.request.service,
                        record=item.request.record.id if item.request.record else None,
                        was_allowed=item.allowed,
                        now_allowed=outcome.allowed,
                        old_policy_ids=item.policy_ids,
                        new_policy_ids=outcome.policy_ids,
                        new_errors=outcome.errors,
                    )
                )
        block.clear()

    for item in recorded:
        if not isinstance(item, RecordedDecision):
            raise PolicyError(PolicyErrorCode.INVALID_INPUT, f"replay: expected RecordedDecision, got {type(item).__name__}")
        total += 1
        block.append(item)
        if len(block) >= _BLOCK:
            flush()
    flush()
    return ReplayReport(candidate=engine.label, total=total, flips=tuple(flips))


#: Recorded decisions evaluated together (``PolicyEngine.outcomes``); bounds memory on long histories.
_BLOCK = 20_000
