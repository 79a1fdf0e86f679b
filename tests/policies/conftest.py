"""Shared fixtures for the policy engine tests: the London bundle compiled once, an engine."""

from __future__ import annotations

import pytest

from policies import LONDON_BUNDLE
from policies.bundle import CompiledBundle, PolicyBundle, compile_bundle, load_bundle
from policies.engine import PolicyEngine


@pytest.fixture(scope="session")
def london_bundle() -> PolicyBundle:
    """The demo bundle as stored on disk."""
    return load_bundle(LONDON_BUNDLE)


@pytest.fixture(scope="session")
def london(london_bundle: PolicyBundle) -> CompiledBundle:
    """The demo bundle, compiled once."""
    return compile_bundle(london_bundle)


@pytest.fixture(scope="session")
def engine(london: CompiledBundle) -> PolicyEngine:
    """An engine over the demo bundle and its test environment."""
    return PolicyEngine(london, london.tests.environment)
