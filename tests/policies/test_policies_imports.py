"""The engine sits below federation: it must not import the web, SQL or LDAP stacks, nor upper packages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

FORBIDDEN = ("flask", "sqlalchemy", "ldap3", "broker", "federation", "directories", "admin_ui")


def test_policies_imports_nothing_from_above() -> None:
    code = (
        "import sys, pkgutil, importlib, policies\n"
        "for m in pkgutil.walk_packages(policies.__path__, 'policies.'):\n"
        "    importlib.import_module(m.name)\n"
        f"bad = sorted(n for n in sys.modules if n.split('.')[0] in {FORBIDDEN!r})\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[2]
    )
    assert result.stdout.strip() == ""
