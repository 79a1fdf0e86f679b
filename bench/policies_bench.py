"""Benchmark the policy engine: compile once and evaluate many, against re-parsing every time.

Run: ``.venv/bin/python bench/policies_bench.py [--seconds 2]``

Every figure uses the London bundle and the requests of its own test cases (a mix of
permits with attribute release, step-up and break-glass denies, record reads):

1. engine: ``PolicyEngine.decide`` on a bundle compiled once (the broker's path);
2. re-parse: ``compile_bundle`` + ``PolicyEngine`` + ``decide`` for every request;
3. Cedar alone: ``cedarpy.is_authorized`` with pre-parsed PolicySet, Schema and
   Entities handles, against passing the policy text, schema text and entity JSON
   every call (one sign-in question each, no obligations or release).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cedarpy  # noqa: E402

from policies import LONDON_BUNDLE  # noqa: E402
from policies.bundle import compile_bundle, load_bundle  # noqa: E402
from policies.engine import PolicyEngine, environment_entities  # noqa: E402
from policies.schema import schema_text  # noqa: E402


def rate(label: str, work: Callable[[], int], seconds: float) -> float:
    """Run ``work`` (which returns how many decisions it made) for ``seconds``; print and return decisions/s."""
    work()  # warm up
    done = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        done += work()
    elapsed = time.perf_counter() - start
    per_second = done / elapsed
    print(f"  {label:<58} {per_second:>10,.0f} decisions/s  ({elapsed / done * 1e6:,.0f} µs each)")
    return per_second


def main() -> None:
    """Print decisions/second for each path and the ratios between them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time spent on each measurement")
    args = parser.parse_args()

    bundle = load_bundle(LONDON_BUNDLE)
    start = time.perf_counter()
    compiled = compile_bundle(bundle)
    compile_ms = (time.perf_counter() - start) * 1000
    environment = compiled.tests.environment
    engine = PolicyEngine(compiled, environment)
    requests = [case.request for case in compiled.tests.cases]
    permits = sum(engine.decide(r).allowed for r in requests)
    print(f"London bundle {compiled.label}: {len(compiled.policies)} policies, compiled in {compile_ms:.1f} ms")
    print(f"Request mix: {len(requests)} requests from its test cases ({permits} permit, {len(requests) - permits} deny)")
    print(f"Python {sys.version.split()[0]}, cedarpy, {args.seconds:.1f} s per measurement\n")

    def engine_once() -> int:
        for request in requests:
            engine.decide(request)
        return len(requests)

    def reparse_each_time() -> int:
        for request in requests:
            PolicyEngine(compile_bundle(bundle), environment).decide(request)
        return len(requests)

    print("Full decisions (obligations, attribute release, fail-closed checks):")
    fast = rate("compile once, evaluate many (PolicyEngine.decide)", engine_once, args.seconds)
    slow = rate("re-parse and validate the bundle for every request", reparse_each_time, args.seconds)
    print(f"  ratio: compile-once is {fast / slow:,.1f}x faster\n")

    policy_text = "\n".join(bundle.sources[name] for name in sorted(bundle.sources))
    schema_source = schema_text()
    sign_ins = [r for r in requests if r.action == "sign_in"]
    deltas = []
    for request in sign_ins:
        handle = engine.person_entities(request, request.person.assurance, False)
        deltas.append(
            (
                {
                    "principal": {"type": "Person", "id": request.person.subject},
                    "action": {"type": "Action", "id": "sign_in"},
                    "resource": {"type": "Service", "id": request.service},
                    "context": {},
                },
                handle,
                json.loads(str(handle)) if str(handle).startswith("[") else None,
            )
        )
    base_entities = environment_entities(environment)

    def cedar_handles() -> int:
        for cedar_request, handle, _ in deltas:
            cedarpy.is_authorized(cedar_request, compiled.policy_set, handle, compiled.schema)
        return len(deltas)

    def cedar_text() -> int:
        for cedar_request, _, entity_json in deltas:
            entities = entity_json if entity_json is not None else base_entities
            cedarpy.is_authorized(cedar_request, policy_text, entities, schema_source)
        return len(deltas)

    print("Cedar alone (one is_authorized per sign-in request):")
    fast_cedar = rate("pre-parsed PolicySet + Schema + Entities handles", cedar_handles, args.seconds)
    slow_cedar = rate("policy text + schema text + entity JSON every call", cedar_text, args.seconds)
    print(f"  ratio: handles are {fast_cedar / slow_cedar:,.1f}x faster")


if __name__ == "__main__":
    main()
