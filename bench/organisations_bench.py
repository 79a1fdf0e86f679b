"""The organisation registry's per-request version check against a full reload.

Every request of every worker calls ``OrganisationAdmin.sync()``: one primary-key read of the
version counter, and a rebuild of the in-memory registry only when another process changed
it. This prints what that costs per request (no change: the common case) next to a full
reload from the store (what a naive per-request reload would pay), and a discovery lookup,
for the demo organisations plus N extra stored ones. Run from the repository root:

    .venv/bin/python bench/organisations_bench.py [--orgs N] [--rounds N]

SQLite file in a temporary folder (set SUPERCLOUD_TEST_DATABASE_URL to a PostgreSQL URL to
measure there); one process, one thread, nothing else running.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pytest  # noqa: E402

from broker.organisations_admin import OrganisationRecord  # noqa: E402
from tests.support.databases import fresh_database  # noqa: E402
from tests.support.settings import SettingsFactory  # noqa: E402


def _time(action, rounds: int) -> list[float]:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        samples.append((time.perf_counter() - start) * 1e6)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orgs", type=int, default=200, help="extra organisations stored (default 200)")
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    from broker.bootstrap import initialise
    from broker.services import build_services

    with tempfile.TemporaryDirectory() as folder, pytest.MonkeyPatch.context() as env, \
            fresh_database(Path(folder)) as url:
        settings = SettingsFactory(Path(folder), url, env)()
        initialise(settings)
        services = build_services(settings)
        admin = services.organisations
        for i in range(args.orgs):
            admin.create(OrganisationRecord(id=f"org-{i}", name=f"Organisation {i}", kind="borough",
                                            domains=(f"org{i}.test",)), actor="bench")
        admin.sync()
        rows = [
            ("sync(), nothing changed", _time(admin.sync, args.rounds)),
            ("reload() (full rebuild)", _time(admin.reload, max(50, args.rounds // 10))),
            ("discover(email)", _time(lambda: services.registry.discover("someone@org17.test"), args.rounds)),
        ]
        database = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
        print(f"organisation registry, {len(services.registry.organisations)} organisations, {database}, "
              f"pid {os.getpid()}")
        print(f"{'operation':<28}{'median µs':>12}{'p95 µs':>12}")
        for name, samples in rows:
            samples.sort()
            print(f"{name:<28}{statistics.median(samples):>12.1f}{samples[int(len(samples) * 0.95)]:>12.1f}")
        ratio = statistics.median(rows[1][1]) / statistics.median(rows[0][1])
        print(f"a full reload costs {ratio:.0f}x the per-request version check")
        services.engine.dispose()


if __name__ == "__main__":
    main()
