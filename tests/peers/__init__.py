"""Real protocol peers for the test suite (Samba AD, OpenLDAP, SimpleSAMLphp, node, Chromium).

Each peer is started once per test session. When a peer cannot be found, a test skips
with a message saying how to enable it, except under ``CI=true``, where it fails: CI
must never pass by skipping the real-peer tests.
"""

from __future__ import annotations

import os

import pytest


def in_ci() -> bool:
    """Return True when running under CI (``CI=true``)."""
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def peer_missing(peer: str, how_to_enable: str) -> None:
    """Skip (or, under CI, fail) the current test because ``peer`` is not available.

    Never returns: raises pytest's skip or fail outcome.
    """
    message = f"{peer} is not available; {how_to_enable}"
    if in_ci():
        pytest.fail(f"CI=true: {message}", pytrace=False)
    pytest.skip(message)
