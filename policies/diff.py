"""Policy-level differences between two compiled bundles (for review before approval)."""

from __future__ import annotations

import dataclasses
import difflib

from policies.bundle import CompiledBundle


@dataclasses.dataclass(frozen=True, slots=True)
class PolicyChange:
    """One policy added, removed or changed, with a unified text diff of its canonical form."""

    policy_id: str
    kind: str  # added | removed | changed
    old_text: str
    new_text: str
    text_diff: str


@dataclasses.dataclass(frozen=True, slots=True)
class BundleDiff:
    """What a candidate version changes relative to a base version (None: nothing active yet)."""

    base: str | None
    candidate: str
    changes: tuple[PolicyChange, ...]
    tests_changed: bool

    def ids(self, kind: str) -> tuple[str, ...]:
        """Return the ids of the policies changed in this way (``added``, ``removed``, ``changed``)."""
        return tuple(c.policy_id for c in self.changes if c.kind == kind)

    @property
    def added(self) -> tuple[str, ...]:
        """Ids of policies only the candidate has."""
        return self.ids("added")

    @property
    def removed(self) -> tuple[str, ...]:
        """Ids of policies only the base has."""
        return self.ids("removed")

    @property
    def changed(self) -> tuple[str, ...]:
        """Ids of policies both have with different text."""
        return self.ids("changed")

    def to_text(self) -> str:
        """Return the diff as text: one heading per change, then its unified diff."""
        lines = [f"Changes from {self.base or '(nothing active)'} to {self.candidate}:"]
        if not self.changes:
            lines.append("  no policy changes")
        for change in self.changes:
            lines.append(f"{change.kind}: {change.policy_id}")
            lines.append(change.text_diff)
        if self.tests_changed:
            lines.append("the test cases changed")
        return "\n".join(lines)


def diff_bundles(base: CompiledBundle | None, candidate: CompiledBundle) -> BundleDiff:
    """Return the policy-level diff from ``base`` to ``candidate``, sorted by policy id.

    Policies are compared in Cedar's canonical format, so re-indenting or moving a
    policy to another file is not a change.
    """
    old = {pid: p.text for pid, p in base.policies.items()} if base else {}
    new = {pid: p.text for pid, p in candidate.policies.items()}
    changes: list[PolicyChange] = []
    for pid in sorted(set(old) | set(new)):
        before, after = old.get(pid, ""), new.get(pid, "")
        if before == after:
            continue
        kind = "added" if pid not in old else "removed" if pid not in new else "changed"
        text_diff = "\n".join(
            difflib.unified_diff(
                before.splitlines(), after.splitlines(),
                fromfile=f"{base.label if base else 'none'}:{pid}", tofile=f"{candidate.label}:{pid}", lineterm="",
            )
        )
        changes.append(PolicyChange(policy_id=pid, kind=kind, old_text=before, new_text=after, text_diff=text_diff))
    return BundleDiff(
        base=base.label if base else None,
        candidate=candidate.label,
        changes=tuple(changes),
        tests_changed=(base.bundle.tests if base else "") != candidate.bundle.tests,
    )
