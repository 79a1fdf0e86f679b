"""Directory authentication latency: pooled vs fresh connections, TCP_NODELAY on vs off.

Starts its own Samba AD DC (Camden, LDAPS) and slapd (Hackney, plain LDAP) on 127.0.200.x,
runs bounded loops of ``authenticate`` against each, prints a table with medians, p95 and
ratios, and stops the servers. Run from the repository root:

    .venv/bin/python bench/directories_bench.py [--pooled N] [--fresh N]

"pooled": one directory object, connections reused (search + bind = 2 round trips).
"fresh": a new directory per sign-in, so every sign-in opens new connections (TCP, TLS
handshake for LDAPS, service bind) as a client without pooling would.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from config.ldap_source import LdapSourceConfig  # noqa: E402
from directories.ldap import build_ldap_directory  # noqa: E402
from tests.peers import samba, slapd  # noqa: E402
from tests.support.secrets import resolved_secret  # noqa: E402

logging.getLogger("directories.ldap").setLevel(logging.ERROR)  # one plain-LDAP warning per fresh directory

CAMDEN_ADDRESS = "127.0.200.2"
HACKNEY_ADDRESS = "127.0.200.4"


def camden_config(dc: samba.SambaDC) -> LdapSourceConfig:
    return LdapSourceConfig(
        type="active_directory",
        id="camden-ad",
        organisation="camden",
        urls=(f"ldaps://{dc.address}:636",),
        ca_file=dc.ca_file,
        tls_server_name=samba.CAMDEN.dc_fqdn,
        base_dn=samba.CAMDEN.base_dn,
        bind_dn=samba.CAMDEN.user_dn(samba.SERVICE_ACCOUNT),
        bind_password=resolved_secret(samba.SERVICE_PASSWORD),
        group_mode="none",
    )


def hackney_config(server: slapd.SlapdServer) -> LdapSourceConfig:
    return LdapSourceConfig(
        type="ldap",
        id="hackney-ldap",
        organisation="hackney",
        urls=(server.url,),
        tls_mode="plain",
        allow_plain=True,
        base_dn=slapd.HACKNEY.suffix,
        bind_dn=slapd.HACKNEY.service_dn,
        bind_password=resolved_secret(slapd.HACKNEY.service_password),
        user_attribute="uid",
        group_mode="none",
    )


def timed(fn: Callable[[], object], count: int) -> list[float]:
    """Return ``count`` wall-clock durations of ``fn()`` in milliseconds (after one warm-up)."""
    fn()
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def pooled(cfg: LdapSourceConfig, username: str, password: str, nodelay: bool, count: int) -> list[float]:
    directory = build_ldap_directory(cfg, tcp_nodelay=nodelay)
    try:
        return timed(lambda: directory.authenticate(username, password), count)
    finally:
        directory.close()


def fresh(cfg: LdapSourceConfig, username: str, password: str, nodelay: bool, count: int) -> list[float]:
    def once() -> None:
        directory = build_ldap_directory(cfg, tcp_nodelay=nodelay)
        try:
            directory.authenticate(username, password)
        finally:
            directory.close()

    return timed(once, count)


def breakdown(cfg: LdapSourceConfig, username: str, password: str, count: int) -> tuple[float, float]:
    """Return the median ms of one pooled user search and of one pooled user bind."""
    directory = build_ldap_directory(cfg)
    try:
        entry, _ = directory._find(username)  # noqa: SLF001 - the benchmark looks inside on purpose
        if entry is None:
            raise SystemExit(f"{username} not found")
        search_ms = statistics.median(timed(lambda: directory._find(username), count))  # noqa: SLF001
        bind_ms = statistics.median(timed(lambda: directory._bind(entry.dn, password), count))  # noqa: SLF001
        return search_ms, bind_ms
    finally:
        directory.close()


def p95(samples: list[float]) -> float:
    return sorted(samples)[max(0, int(len(samples) * 0.95) - 1)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pooled", type=int, default=300, help="sign-ins per pooled run")
    parser.add_argument("--fresh", type=int, default=40, help="sign-ins per fresh-connection run")
    args = parser.parse_args()
    if not (samba.binaries_available() and slapd.binaries_available()):
        print("needs samba-ad-dc, samba-ad-provision and slapd (see .ci/apt-packages-directories.txt)")
        return 2
    run_root = Path(tempfile.mkdtemp(prefix="directories-bench-"))
    dc = samba.start_samba_dc(samba.CAMDEN, CAMDEN_ADDRESS, run_root / "samba")
    ldap_server = None
    try:
        ldap_server = slapd.start_slapd(slapd.HACKNEY, HACKNEY_ADDRESS, run_root / "slapd")
        targets = [
            ("Camden AD, LDAPS", camden_config(dc), "asmith@camden.test", samba.CAMDEN_PASSWORD),
            ("Hackney OpenLDAP, plain", hackney_config(ldap_server), "rkhan", slapd.HACKNEY_PASSWORD),
        ]
        print(f"{'directory':26} {'mode':8} {'TCP_NODELAY':11} {'n':>4} {'median ms':>10} {'p95 ms':>8}")
        for label, cfg, user, password in targets:
            medians: dict[tuple[str, bool], float] = {}
            for mode, runner, count in (("pooled", pooled, args.pooled), ("fresh", fresh, args.fresh)):
                for nodelay in (True, False):
                    samples = runner(cfg, user, password, nodelay, count)
                    medians[(mode, nodelay)] = statistics.median(samples)
                    print(
                        f"{label:26} {mode:8} {'on' if nodelay else 'off':11} {count:>4}"
                        f" {statistics.median(samples):>10.2f} {p95(samples):>8.2f}"
                    )
            search_ms, bind_ms = breakdown(cfg, user, password, args.pooled)
            print(f"  -> {label}: pooled sign-in = user search {search_ms:.2f} ms + user bind {bind_ms:.2f} ms")
            fresh_vs_pooled = medians[("fresh", True)] / medians[("pooled", True)]
            fresh_nagle = medians[("fresh", False)] / medians[("fresh", True)]
            pooled_nagle = medians[("pooled", False)] / medians[("pooled", True)]
            print(
                f"  -> {label}: fresh/pooled (NODELAY on) = {fresh_vs_pooled:.1f}x;"
                f" fresh NODELAY off/on = {fresh_nagle:.1f}x; pooled NODELAY off/on = {pooled_nagle:.1f}x"
            )
    finally:
        if ldap_server is not None:
            ldap_server.stop()
        dc.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
