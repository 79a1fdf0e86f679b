"""Directory sync into the identity store: ``supercloud directories sync`` end to end, from OpenLDAP.

    .venv/bin/python bench/directories_sync_store_bench.py [--sizes 10000[,100000]]

For each size N: loads N synthetic people into a private slapd (plain LDAP on loopback
127.0.250.41; the LDAPS read cost alone is in directories_login_bench.py), then times
``DirectorySyncService.sync`` — paged read, mapping, upsert into ``directory_people`` on
PostgreSQL (a fresh schema; SQLite if none answers), each person's groups (everyone is in
one of 20 team groups, nested in one staff group: read once per run), watermark — for:

* full (first run): N people new;
* incremental, nothing changed;
* incremental after 1 % of the people changed (``title``);
* full again (reconciling every entryUUID: N unchanged);
* full after 1 % were deleted (each deletion marked, no sessions to end).

Prints seconds and people per second per run. Figures depend on the machine and on
what else runs on it (two cores shared here).
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import ldap3
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from broker.bootstrap import initialise  # noqa: E402
from broker.directory_people import DirectoryPeople  # noqa: E402
from broker.directory_sync import DirectorySyncService  # noqa: E402
from federation.keys import MasterKey  # noqa: E402
from broker.services import build_services  # noqa: E402
from config import load_settings  # noqa: E402
from tests.peers import slapd  # noqa: E402

ADDRESS = "127.0.250.41"
SPEC = slapd.HACKNEY


def database_url(folder: Path) -> tuple[str, object]:
    """Return (URL, cleanup): a fresh PostgreSQL schema if one answers, else SQLite in ``folder``."""
    try:
        import psycopg

        conninfo = "postgresql://postgres@127.0.0.1:5432/test"
        schema = f"bench_sync_{secrets.token_hex(4)}"
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=2) as connection:
            connection.execute(f'CREATE SCHEMA "{schema}"')

        def drop() -> None:
            with psycopg.connect(conninfo, autocommit=True) as connection:
                connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

        return f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}", drop
    except Exception:  # noqa: BLE001 - no PostgreSQL here: SQLite
        return f"sqlite:///{folder / 'broker.db'}", lambda: None


def admin() -> ldap3.Connection:
    return ldap3.Connection(ldap3.Server(ADDRESS, port=389, get_info=ldap3.NONE), user=SPEC.admin_dn,
                            password=SPEC.admin_password, auto_bind=True)


def bulk_load(start: int, count: int, connections: int = 4) -> float:
    """Add people ``start .. start+count-1`` over parallel connections; return seconds."""

    def add_range(first: int, last: int) -> None:
        conn = admin()
        try:
            for i in range(first, last):
                uid = f"sync{i:06d}"
                if not conn.add(SPEC.person_dn(uid), ["top", "inetOrgPerson"], {
                    "uid": uid, "cn": f"Sync Person {i}", "sn": "Person", "givenName": "Sync",
                    "mail": f"{uid}@hackney.test", "title": "Officer", "employeeNumber": f"HAC-{i:06d}",
                }):
                    raise RuntimeError(f"add {uid}: {conn.result}")
        finally:
            conn.unbind()

    started = time.perf_counter()
    step = -(-count // connections)
    threads = [threading.Thread(target=add_range, args=(start + k * step, min(start + count, start + (k + 1) * step)))
               for k in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


TEAMS = 20


def add_memberships(start: int, count: int) -> float:
    """Put people ``start .. start+count-1`` in one of TEAMS groups each, all nested in one
    "Sync Staff" group (so every person has two groups, one through nesting); return seconds."""
    started = time.perf_counter()
    conn = admin()
    try:
        for k in range(TEAMS):
            members = [SPEC.person_dn(f"sync{i:06d}") for i in range(start, start + count) if i % TEAMS == k]
            dn = f"cn=Sync Team {k},{SPEC.suffix}"
            if not conn.add(dn, ["top", "groupOfNames"], {"cn": f"Sync Team {k}", "member": members[:1]}):
                if conn.result.get("result") != 68:  # already exists (a larger size adds to it)
                    raise RuntimeError(f"add group: {conn.result}")
                members_to_add = members
            else:
                members_to_add = members[1:]
            for chunk in range(0, len(members_to_add), 1000):
                if members_to_add[chunk:chunk + 1000] and not conn.modify(
                        dn, {"member": [(ldap3.MODIFY_ADD, members_to_add[chunk:chunk + 1000])]}):
                    raise RuntimeError(f"add members: {conn.result}")
        teams = [f"cn=Sync Team {k},{SPEC.suffix}" for k in range(TEAMS)]
        conn.add(f"cn=Sync Staff,{SPEC.suffix}", ["top", "groupOfNames"], {"cn": "Sync Staff", "member": teams})
    finally:
        conn.unbind()
    return time.perf_counter() - started


def modify(uids: list[str], delete: bool = False) -> None:
    conn = admin()
    try:
        for uid in uids:
            if delete:
                conn.delete(SPEC.person_dn(uid))
            else:
                conn.modify(SPEC.person_dn(uid), {"title": [(ldap3.MODIFY_REPLACE, ["Senior Officer"])]})
    finally:
        conn.unbind()


def timed(service: DirectorySyncService, *, full: bool) -> tuple[float, object]:
    started = time.perf_counter()
    [report] = service.sync("hackney", full=full, allow_mass_removal=True)
    elapsed = time.perf_counter() - started
    if report.error:
        raise RuntimeError(report.error)
    return elapsed, report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000", help="comma-separated directory sizes, e.g. 10000,100000")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    if not slapd.binaries_available():
        print("slapd is not installed: skipped")
        return 0
    folder = Path(tempfile.mkdtemp(prefix="bench-sync-"))
    url, drop = database_url(folder)
    test_config = slapd._config  # noqa: SLF001 - the test peer's config, sized for 100,000 people
    slapd._config = lambda spec, directory: test_config(spec, directory).replace(  # type: ignore[assignment]  # noqa: SLF001
        "maxsize 67108864", "maxsize 4294967296\ndbnosync\nindex objectClass,uid,mail eq\n"
        f'limits dn.exact="{SPEC.service_dn}" size=unlimited size.prtotal=unlimited time=unlimited\n')
    server = slapd.start_slapd(SPEC, ADDRESS, folder / "slapd")
    os.environ["BENCH_MASTER_KEY"] = MasterKey.generate_text()
    os.environ["BENCH_HACKNEY_PASSWORD"] = SPEC.service_password
    document = {
        "broker": {"issuer": "http://127.0.0.1:8000", "environment": "development", "database_url": url,
                   "master_key": {"env": "BENCH_MASTER_KEY"}},
        "organisations": [{
            "id": "hackney", "name": "London Borough of Hackney", "kind": "borough", "domains": ["hackney.test"],
            "sources": [{"type": "ldap", "id": "hackney-ldap", "urls": [server.url], "tls_mode": "plain",
                         "allow_plain": True, "base_dn": SPEC.suffix, "bind_dn": SPEC.service_dn,
                         "bind_password": {"env": "BENCH_HACKNEY_PASSWORD"}, "user_attribute": "mail",
                         "response_timeout_seconds": 120}],
        }],
    }
    config = folder / "bench.yaml"
    config.write_text(yaml.safe_dump(document, sort_keys=False))
    settings = load_settings(config)
    initialise(settings)
    services = build_services(settings)
    service = DirectorySyncService(
        settings, DirectoryPeople(services.db),
        lambda subject_id, reason: services.oidc.end_sessions_for_subject(subject_id, reason, actor="bench"),
        services.audit.append, page_size=1000,
    )
    database = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    print(f"directory sync into the identity store (OpenLDAP plain LDAP on loopback -> {database}), page size 1000")
    print(f"{'people':>8} {'run':<34} {'read':>7} {'seconds':>8} {'people/s':>9}")
    loaded = 0
    try:
        for size in sizes:
            load_s = bulk_load(loaded, size - loaded) + add_memberships(loaded, size - loaded)
            loaded = size
            print(f"{size:>8} {'(load into slapd)':<34} {'':>7} {load_s:>8.1f}")
            runs = []
            runs.append(("full, first run" if size == sizes[0] else "full, people added", *timed(service, full=True)))
            sample = next(p for p in DirectoryPeople(services.db).people("hackney") if p.username == "sync000003@hackney.test")
            if sample.attributes.get("groups") != ["Sync Staff", "Sync Team 3"]:  # the figures count real group work
                raise RuntimeError(f"groups not resolved: {sample.attributes.get('groups')}")
            runs.append(("incremental, nothing changed", *timed(service, full=False)))
            time.sleep(1.1)  # modifyTimestamp has one-second resolution
            modify([f"sync{i:06d}" for i in range(0, size, 100)])
            runs.append(("incremental, 1 % changed", *timed(service, full=False)))
            runs.append(("full again (reconcile)", *timed(service, full=True)))
            modify([f"sync{i:06d}" for i in range(50, size, 100)], delete=True)
            runs.append(("full, 1 % deleted", *timed(service, full=True)))
            for name, seconds, report in runs:
                rate = f"{report.read / seconds:>9.0f}" if report.read else f"{'':>9}"  # type: ignore[attr-defined]
                extra = f" new {report.new} changed {report.changed} deleted {report.deleted}"  # type: ignore[attr-defined]
                print(f"{size:>8} {name:<34} {report.read:>7} {seconds:>8.2f} {rate}{extra}")  # type: ignore[attr-defined]
    finally:
        services.engine.dispose()
        server.stop()
        drop()  # type: ignore[operator]
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
