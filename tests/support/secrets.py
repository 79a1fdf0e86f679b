"""Resolved secret references for tests that build configuration models in code."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from config.secrets import SecretRef


def resolved_secret(value: str, env: str | None = None) -> SecretRef:
    """Return a ``SecretRef`` to ``{env: NAME}`` already resolved to ``value``.

    The variable (``env``, else one named after a hash of the value) is set in this
    process's environment, so a configuration file naming it, or a broker started as a
    child process, resolves the same value.
    """
    name = env or "SUPERCLOUD_TEST_SECRET_" + hashlib.sha256(value.encode()).hexdigest()[:12].upper()
    os.environ[name] = value
    ref = SecretRef(env=name)
    ref.resolve(Path.cwd())
    return ref
