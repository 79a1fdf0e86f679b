"""Run a compiled bundle's test cases: the gate every proposal must pass."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from policies.bundle import CompiledBundle
from policies.engine import PolicyEngine
from policies.errors import PolicyError, PolicyErrorCode
from policies.model import Decision
from policies.testcases import Expectation, TestCase


@dataclasses.dataclass(frozen=True, slots=True)
class CaseResult:
    """The outcome of one test case: passed?, and every mismatch if not."""

    name: str
    passed: bool
    mismatches: tuple[str, ...]
    decision: Decision


@dataclasses.dataclass(frozen=True, slots=True)
class TestReport:
    """Every case's result; ``passed`` only if every case passed."""

    __test__ = False

    bundle: str
    results: tuple[CaseResult, ...]

    @property
    def passed(self) -> bool:
        """True if every case passed (and there was at least one case)."""
        return bool(self.results) and all(r.passed for r in self.results)

    @property
    def failures(self) -> tuple[str, ...]:
        """One line per mismatch of every failing case."""
        return tuple(f"{r.name}: {m}" for r in self.results for m in r.mismatches)


def run_tests(compiled: CompiledBundle) -> TestReport:
    """Return the report of running every test case of ``compiled`` against its test environment.

    Raises PolicyError(ENVIRONMENT_INVALID) if the test environment cannot be built.
    """
    engine = PolicyEngine(compiled, compiled.tests.environment)
    return TestReport(bundle=compiled.label, results=tuple(run_case(engine, case) for case in compiled.tests.cases))


def require_passing(compiled: CompiledBundle) -> TestReport:
    """Return the report if every case passed; raise PolicyError(BUNDLE_TESTS_FAILED) listing failures.

    A bundle without test cases fails too: a policy change must come with its tests.
    """
    report = run_tests(compiled)
    if not report.results:
        raise PolicyError(PolicyErrorCode.BUNDLE_TESTS_FAILED, f"{compiled.label} has no test cases")
    if not report.passed:
        raise PolicyError(
            PolicyErrorCode.BUNDLE_TESTS_FAILED,
            f"{compiled.label}: {sum(not r.passed for r in report.results)} test case(s) failed",
            report.failures,
        )
    return report


def run_case(engine: PolicyEngine, case: TestCase) -> CaseResult:
    """Return the result of one test case evaluated by ``engine``."""
    decision = engine.decide(case.request)
    mismatches = compare(case.expect, decision)
    return CaseResult(name=case.name, passed=not mismatches, mismatches=tuple(mismatches), decision=decision)


def compare(expect: Expectation, decision: Decision) -> list[str]:
    """Return every way ``decision`` differs from ``expect`` (empty when it matches)."""
    mismatches: list[str] = []
    if decision.effect != expect.decision:
        mismatches.append(f"expected {expect.decision}, got {decision.effect}")
    if decision.errors:
        mismatches.append(f"evaluation errors: {'; '.join(decision.errors)}")
    if expect.policies is not None and sorted(expect.policies) != sorted(decision.policy_ids):
        mismatches.append(f"expected policies {sorted(expect.policies)}, got {sorted(decision.policy_ids)}")
    if expect.released is not None and sorted(expect.released) != sorted(decision.released):
        mismatches.append(f"expected released {sorted(expect.released)}, got {sorted(decision.released)}")
    if expect.obligations is not None:
        actual = [o.to_json() for o in decision.obligations]
        if len(actual) != len(expect.obligations) or not all(
            any(_matches(wanted, got) for got in actual) for wanted in expect.obligations
        ):
            mismatches.append(f"expected obligations {list(map(dict, expect.obligations))}, got {actual}")
    return mismatches


def _matches(wanted: Mapping[str, Any], got: Mapping[str, Any]) -> bool:
    return all(key in got and got[key] == value for key, value in wanted.items())
