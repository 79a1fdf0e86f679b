"""Policy governance: propose, review, approve by a second person, activate, roll back.

SCENARIOS policy 6: only policy administrators change policies, and a change takes
effect after a second person approves it. Every step (including every refusal) is
recorded in the repository's history and emitted through the injected ``audit``
callable, e.g. ``audit("policy.bundle.approved", {"version": ..., "actor": ...})``,
after the step is stored; an exception raised by ``audit`` propagates to the caller.

The lifecycle of a version::

    propose  (policy admin; validated and its test cases run: a failing case blocks it)
       -> diff / replay (anyone may review)
    approve  (a different policy admin)
    activate (a policy admin; only an approved version)
    rollback (a policy admin; back to any version that was active before)
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterable
from typing import Any

import cedarpy

from policies.bundle import CompiledBundle, PolicyBundle, compile_bundle
from policies.diff import BundleDiff, diff_bundles
from policies.engine import PolicyEngine
from policies.errors import PolicyError, PolicyErrorCode
from policies.model import Environment
from policies.replay import RecordedDecision, ReplayReport, replay
from policies.repository import BundleRecord, BundleRepository, BundleState, HistoryEntry
from policies.testrun import TestReport, require_passing

#: The role (from the approver's or proposer's roles) that may change policies.
POLICY_ADMIN_ROLE = "policy-admin"

AuditSink = Callable[[str, dict[str, Any]], None]


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclasses.dataclass(frozen=True, slots=True)
class Proposal:
    """A stored proposal: its record and the report of its test cases (all passed)."""

    record: BundleRecord
    tests: TestReport


class PolicyGovernance:
    """The governance service over a BundleRepository; every step is audited."""

    def __init__(
        self,
        repository: BundleRepository,
        audit: AuditSink,
        *,
        clock: Callable[[], dt.datetime] = _utc_now,
        admin_role: str = POLICY_ADMIN_ROLE,
        schema: cedarpy.Schema | None = None,
    ) -> None:
        """Take the repository, the audit sink and (for tests) a clock and schema."""
        self._repository = repository
        self._audit = audit
        self._clock = clock
        self._admin_role = admin_role
        self._schema = schema

    # --- reading ------------------------------------------------------------------------

    def active(self) -> BundleRecord | None:
        """Return the record of the version in force, or None."""
        version = self._repository.active_version()
        return self._repository.get(version) if version else None

    def versions(self) -> list[BundleRecord]:
        """Return every stored version, oldest first."""
        return self._repository.versions()

    def history(self) -> list[HistoryEntry]:
        """Return every governance step, oldest first."""
        return self._repository.history()

    def compiled(self, version: str) -> CompiledBundle:
        """Return ``version`` compiled. Raises PolicyError(UNKNOWN_VERSION) or (BUNDLE_INVALID)."""
        return compile_bundle(self._record(version).bundle, self._schema)

    def active_engine(self, environment: Environment) -> PolicyEngine:
        """Return an engine for the version in force. Raises PolicyError(NO_ACTIVE_BUNDLE)."""
        record = self.active()
        if record is None:
            raise PolicyError(PolicyErrorCode.NO_ACTIVE_BUNDLE, "no policy bundle has been activated")
        return PolicyEngine(compile_bundle(record.bundle, self._schema), environment)

    # --- changing -----------------------------------------------------------------------

    def propose(self, bundle: PolicyBundle, proposer: str, proposer_roles: Iterable[str]) -> Proposal:
        """Validate ``bundle``, run its test cases and store it as a proposed version.

        Returns the Proposal. Raises PolicyError: NOT_AUTHORISED (proposer is no policy
        admin), BUNDLE_INVALID (every problem listed), BUNDLE_TESTS_FAILED (every
        failing case listed), VERSION_EXISTS, or INVALID_STATE (a bundle of another
        name). Each refusal is audited.
        """
        version = getattr(bundle, "version", "?")
        self._require_admin("propose", version, proposer, proposer_roles)
        try:
            existing = self._repository.versions()
            if existing and existing[0].bundle.name != bundle.name:
                raise PolicyError(
                    PolicyErrorCode.INVALID_STATE,
                    f"this repository governs bundle {existing[0].bundle.name!r}, not {bundle.name!r}",
                )
            compiled = compile_bundle(bundle, self._schema)
            report = require_passing(compiled)
            record = BundleRecord(
                version=bundle.version,
                bundle=bundle,
                state=BundleState.PROPOSED,
                proposer=proposer,
                proposed_at=self._clock(),
            )
            self._repository.add(record)
        except PolicyError as error:
            self._refused("propose", version, proposer, error)
            raise
        self._record_step(
            "policy.bundle.proposed", version, proposer,
            {"bundle": bundle.label, "policies": len(compiled.policies), "test_cases": len(report.results)},
        )
        return Proposal(record=record, tests=report)

    def diff(self, version: str, actor: str, against: str | None = None) -> BundleDiff:
        """Return the policy-level diff of ``version`` against ``against`` (default: the active version).

        Raises PolicyError(UNKNOWN_VERSION).
        """
        candidate = self.compiled(version)
        base_version = against if against is not None else self._repository.active_version()
        base = self.compiled(base_version) if base_version else None
        result = diff_bundles(base, candidate)
        self._record_step(
            "policy.bundle.diffed", version, actor,
            {"base": result.base, "added": list(result.added), "removed": list(result.removed),
             "changed": list(result.changed)},
        )
        return result

    def replay(
        self, version: str, actor: str, recorded: Iterable[RecordedDecision], environment: Environment
    ) -> ReplayReport:
        """Return every recorded decision ``version`` would flip, evaluated in ``environment``.

        Raises PolicyError(UNKNOWN_VERSION) or (ENVIRONMENT_INVALID).
        """
        report = replay(PolicyEngine(self.compiled(version), environment), recorded)
        self._record_step(
            "policy.bundle.replayed", version, actor,
            {"total": report.total, "flips": len(report.flips), "flipped": [f.record_id for f in report.flips]},
        )
        return report

    def approve(self, version: str, approver: str, approver_roles: Iterable[str]) -> BundleRecord:
        """Record the second person's approval of a proposed version. Returns the updated record.

        Raises PolicyError: NOT_AUTHORISED (approver is no policy admin),
        SAME_PERSON_APPROVAL (approver proposed it), INVALID_STATE (not proposed),
        UNKNOWN_VERSION. Each refusal is audited.
        """
        self._require_admin("approve", version, approver, approver_roles)
        try:
            record = self._record(version)
            if record.state is not BundleState.PROPOSED:
                raise PolicyError(
                    PolicyErrorCode.INVALID_STATE, f"version {version!r} is {record.state.value}, not proposed"
                )
            if _same_person(record.proposer, approver):
                raise PolicyError(
                    PolicyErrorCode.SAME_PERSON_APPROVAL,
                    f"{approver!r} proposed version {version!r}; a second person must approve it",
                )
            updated = dataclasses.replace(
                record, state=BundleState.APPROVED, approver=approver, approved_at=self._clock()
            )
            self._repository.replace(updated)
        except PolicyError as error:
            self._refused("approve", version, approver, error)
            raise
        self._record_step("policy.bundle.approved", version, approver, {"proposer": record.proposer})
        return updated

    def activate(self, version: str, actor: str, actor_roles: Iterable[str]) -> BundleRecord:
        """Put an approved version in force. Returns its record (now active).

        Raises PolicyError: NOT_AUTHORISED, INVALID_STATE (not approved), UNKNOWN_VERSION,
        BUNDLE_INVALID (no longer compiles against the schema).
        """
        self._require_admin("activate", version, actor, actor_roles)
        previous = self._repository.active_version()
        try:
            record = self._record(version)
            if record.state is not BundleState.APPROVED:
                raise PolicyError(
                    PolicyErrorCode.INVALID_STATE,
                    f"version {version!r} is {record.state.value}; only an approved version can be activated",
                )
            compile_bundle(record.bundle, self._schema)
            self._repository.activate(version, self._clock())
        except PolicyError as error:
            self._refused("activate", version, actor, error)
            raise
        self._record_step("policy.bundle.activated", version, actor, {"previous": previous})
        return self._record(version)

    def rollback(self, version: str, actor: str, actor_roles: Iterable[str]) -> BundleRecord:
        """Put back in force a version that was active before (it was approved then).

        Returns its record. Raises PolicyError: NOT_AUTHORISED, UNKNOWN_VERSION,
        INVALID_STATE (never active, or already active), BUNDLE_INVALID (no longer
        compiles against the schema).
        """
        self._require_admin("rollback", version, actor, actor_roles)
        previous = self._repository.active_version()
        try:
            record = self._record(version)
            if record.state is not BundleState.SUPERSEDED:
                raise PolicyError(
                    PolicyErrorCode.INVALID_STATE,
                    f"version {version!r} is {record.state.value}; only a previously active version can be restored",
                )
            compile_bundle(record.bundle, self._schema)
            self._repository.activate(version, self._clock())
        except PolicyError as error:
            self._refused("rollback", version, actor, error)
            raise
        self._record_step("policy.bundle.rolled_back", version, actor, {"previous": previous})
        return self._record(version)

    # --- helpers ------------------------------------------------------------------------

    def _record(self, version: str | None) -> BundleRecord:
        record = self._repository.get(version) if isinstance(version, str) else None
        if record is None:
            raise PolicyError(PolicyErrorCode.UNKNOWN_VERSION, f"no version {version!r}")
        return record

    def _require_admin(self, step: str, version: str, actor: str, roles: Iterable[str]) -> None:
        if isinstance(roles, str):
            roles = (roles,)
        if not isinstance(actor, str) or not actor.strip() or self._admin_role not in set(roles):
            error = PolicyError(
                PolicyErrorCode.NOT_AUTHORISED,
                f"{actor!r} may not {step} policies: the {self._admin_role!r} role is required",
            )
            self._refused(step, version, str(actor), error)
            raise error

    def _refused(self, step: str, version: str, actor: str, error: PolicyError) -> None:
        self._record_step(
            f"policy.bundle.{step}_refused", str(version), actor,
            {"code": error.code.value, "detail": error.detail, "problems": list(error.problems)},
        )

    def _record_step(self, event: str, version: str, actor: str, details: dict[str, Any]) -> None:
        entry = HistoryEntry(at=self._clock(), event=event, version=version, actor=actor, details=details)
        self._repository.append_history(entry)
        self._audit(event, {"version": version, "actor": actor, "at": entry.at.isoformat(), **details})


def _same_person(a: str, b: str) -> bool:
    """Return True if two actor ids name the same person (ids compare case-insensitively)."""
    return a.strip().casefold() == b.strip().casefold()
