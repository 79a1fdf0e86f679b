"""Directory sign-ins through the broker's login POST, and directory sync, against local peers.

Run from the repository root (``make bench`` runs it too; it is not a test):

    .venv/bin/python bench/directories_login_bench.py [--seconds 8] [--clients 8] [--sync-sizes 10000,100000]

1. Sign-in: starts a Samba AD DC (Camden) and an OpenLDAP slapd (Hackney), both served
   over LDAPS with their own CA, and the broker under gunicorn (``supercloud serve``,
   one worker per core, 4 threads each) with them as its sources. ``--clients`` concurrent
   clients (threads over ``--processes`` load-generator processes, each with its own
   cookie jar) sign in repeatedly on loopback: GET /login, POST /login (email, home-realm
   discovery), POST /login/password (the directory search + bind, a new SSO session and
   an audit record). Prints sign-ins per second (and per core of this machine, which also
   runs the directories and the load generator) and p50/p99 of the password POST.
2. Sync: loads N synthetic people into the slapd with ldap3 (several connections in
   parallel), then times ``DirectorySync`` over LDAPS: a full run reading and mapping
   every account, and an incremental run after 1% of them changed.

The database is PostgreSQL when one answers on 127.0.0.1:5432 (``--database-url`` to
choose), else SQLite. Servers listen on 127.0.201.x and are stopped (by pid) at the end.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import re
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import ldap3  # noqa: E402
import requests  # noqa: E402
import yaml  # noqa: E402

from config.ldap_source import LdapSourceConfig  # noqa: E402
from directories.ldap import build_ldap_directory  # noqa: E402
from directories.ldap.sync import DirectorySync  # noqa: E402
from federation.keys import MasterKey  # noqa: E402
from tests.peers import samba, slapd  # noqa: E402
from tests.support.secrets import resolved_secret  # noqa: E402

CAMDEN_ADDRESS = "127.0.201.2"
HACKNEY_ADDRESS = "127.0.201.4"
HACKNEY_TLS_NAME = "ldap.hackney.test"
CSRF = re.compile(r'name="csrf_token"(?: type="hidden")? value="([^"]+)"')
CAMDEN_USERS = ["asmith@camden.test", "jpatel@camden.test", "jsmith@camden.test", "wrongpw@camden.test"]
HACKNEY_USERS = ["rosa.khan@hackney.test", "jay.patel@hackney.test", "ada.admin@hackney.test"]

logging.getLogger("directories.ldap").setLevel(logging.ERROR)


# -- peers -------------------------------------------------------------------------------------


def make_tls(folder: Path, address: str, name: str) -> tuple[Path, Path, Path]:
    """Create a CA and a server certificate for ``name`` / ``address``; return (ca, cert, key)."""
    ca_key, ca, key, csr, cert = (folder / n for n in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem"))
    ext = folder / "san.ext"
    ext.write_text(f"subjectAltName=DNS:{name},IP:{address}\nbasicConstraints=CA:FALSE\n")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(ca_key),
            "-out", str(ca), "-days", "2", "-subj", "/CN=Hackney bench CA")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key),
            "-out", str(csr), "-subj", f"/CN={name}")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
            "-out", str(cert), "-days", "2", "-extfile", str(ext))
    return ca, cert, key


def start_slapd_tls(address: str, run_dir: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """Start Hackney's slapd on ldap:// and ldaps:// with a fresh CA, sized for 100,000 people; return (process, CA)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "data").mkdir(exist_ok=True)
    ca, cert, key = make_tls(run_dir, address, HACKNEY_TLS_NAME)
    conf = slapd._config(slapd.HACKNEY, run_dir)  # noqa: SLF001 - the test peer's config, extended
    conf = conf.replace("maxsize 67108864", "maxsize 4294967296\ndbnosync\nindex objectClass,uid,mail eq\n"
                        f'limits dn.exact="{slapd.HACKNEY.service_dn}" size=unlimited size.prtotal=unlimited time=unlimited\n')
    conf = conf.replace("database mdb", f"TLSCACertificateFile {ca}\nTLSCertificateFile {cert}\n"
                                        f"TLSCertificateKeyFile {key}\n\ndatabase mdb", 1)
    path = run_dir / "slapd.conf"
    path.write_text(conf)
    subprocess.run([slapd.find_binary("slaptest") or "slaptest", "-f", str(path), "-u"], check=True, capture_output=True)
    log = open(run_dir / "slapd.log", "wb")  # noqa: SIM115 - handed to the child
    process = subprocess.Popen(
        [slapd.find_binary("slapd") or "slapd", "-f", str(path), "-h", f"ldap://{address}:389/ ldaps://{address}:636/", "-d", "0"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    slapd._wait_ready(process, address, run_dir)  # noqa: SLF001
    slapd._load(slapd.HACKNEY, address)  # noqa: SLF001
    return process, ca


def camden_source(dc: samba.SambaDC) -> dict[str, object]:
    return {"type": "active_directory", "id": "camden-ad", "urls": [f"ldaps://{dc.address}:636"], "ca_file": str(dc.ca_file),
            "tls_server_name": samba.CAMDEN.dc_fqdn, "base_dn": samba.CAMDEN.base_dn,
            "bind_dn": samba.CAMDEN.user_dn(samba.SERVICE_ACCOUNT), "bind_password": {"env": "BENCH_CAMDEN_PASSWORD"},
            "pool_size": 16}


def hackney_source(ca: Path) -> dict[str, object]:
    return {"type": "ldap", "id": "hackney-ldap", "urls": [f"ldaps://{HACKNEY_ADDRESS}:636"], "ca_file": str(ca),
            "tls_server_name": HACKNEY_TLS_NAME, "base_dn": slapd.HACKNEY.suffix, "bind_dn": slapd.HACKNEY.service_dn,
            "bind_password": {"env": "BENCH_HACKNEY_PASSWORD"}, "user_attribute": "mail", "pool_size": 16}


# -- the broker ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def database_url(explicit: str | None, folder: Path) -> tuple[str, Callable[[], None]]:
    """Return (URL, cleanup): ``explicit``, a fresh PostgreSQL schema if one answers, else SQLite."""
    if explicit:
        return explicit, lambda: None
    try:
        import psycopg

        conninfo = "postgresql://postgres@127.0.0.1:5432/test"
        schema = f"bench_{secrets.token_hex(4)}"
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=2) as connection:
            connection.execute(f'CREATE SCHEMA "{schema}"')

        def drop() -> None:
            with psycopg.connect(conninfo, autocommit=True) as connection:
                connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

        return f"postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}", drop
    except Exception:  # noqa: BLE001 - no PostgreSQL here: SQLite
        return f"sqlite:///{folder / 'broker.db'}", lambda: None


def start_broker(folder: Path, sources: dict[str, dict[str, object]], db_url: str, workers: int) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    organisations = [
        {"id": "camden", "name": "London Borough of Camden", "kind": "borough", "domains": ["camden.test"], "sources": [sources["camden"]]},
        {"id": "hackney", "name": "London Borough of Hackney", "kind": "borough", "domains": ["hackney.test"], "sources": [sources["hackney"]]},
    ]
    document = {"broker": {"issuer": issuer, "environment": "development", "database_url": db_url,
                           "master_key": {"env": "BENCH_MASTER_KEY"}}, "organisations": organisations}
    config = folder / "bench.yaml"
    config.write_text(yaml.safe_dump(document, sort_keys=False))
    env = {**os.environ, "BENCH_MASTER_KEY": MasterKey.generate_text(), "BENCH_CAMDEN_PASSWORD": samba.SERVICE_PASSWORD,
           "BENCH_HACKNEY_PASSWORD": slapd.HACKNEY.service_password, "PYTHONPATH": str(ROOT)}
    log = open(folder / "broker.log", "wb")  # noqa: SIM115 - handed to the child
    process = subprocess.Popen(
        [sys.executable, "-m", "broker", "--config", str(config), "serve", "--port", str(port),
         "--workers", str(workers), "--threads", "4"],
        env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError((folder / "broker.log").read_text(errors="replace")[-3000:])
        try:
            if requests.get(f"{issuer}/.well-known/openid-configuration", timeout=1).status_code == 200:
                return issuer, process
        except requests.RequestException:
            time.sleep(0.2)
    raise RuntimeError("the broker did not start")


# -- load --------------------------------------------------------------------------------------


def sign_in(http: requests.Session, issuer: str, email: str, password: str) -> float:
    """Sign in once; return the password POST's latency in ms. Raises RuntimeError on failure."""
    page = http.get(f"{issuer}/login", timeout=10).text
    token = CSRF.search(page)
    if token is None:
        raise RuntimeError("no CSRF token")
    first = http.post(f"{issuer}/login", data={"csrf_token": token.group(1), "email": email}, allow_redirects=False, timeout=10)
    if first.status_code != 302:
        raise RuntimeError(f"email step answered {first.status_code}")
    started = time.perf_counter()
    second = http.post(f"{issuer}/login/password", data={"csrf_token": token.group(1), "password": password},
                       allow_redirects=False, timeout=10)
    elapsed = (time.perf_counter() - started) * 1000
    if second.status_code != 302:
        raise RuntimeError(f"password step answered {second.status_code}")
    return elapsed


def load_process(issuer: str, users: list[str], password: str, threads: int, seconds: float, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """One load-generator process: ``threads`` clients signing in until ``seconds`` pass."""
    samples: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(index: int) -> None:
        http = requests.Session()
        sign_in(http, issuer, users[index % len(users)], password)  # warm-up, not counted
        mine: list[float] = []
        n = index
        while time.monotonic() < stop:
            http.cookies.clear()
            try:
                mine.append(sign_in(http, issuer, users[n % len(users)], password))
            except (RuntimeError, requests.RequestException):
                with lock:
                    errors[0] += 1
            n += 1
        with lock:
            samples.extend(mine)

    workers = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    queue.put((samples, errors[0]))


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def run_load(issuer: str, users: list[str], password: str, clients: int, processes: int, seconds: float) -> tuple[int, int, float, list[float]]:
    """Return (sign-ins, errors, wall seconds, password POST latencies)."""
    queue: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    per = [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]
    started = time.perf_counter()
    procs = [multiprocessing.Process(target=load_process, args=(issuer, users, password, n, seconds, queue)) for n in per if n]
    for proc in procs:
        proc.start()
    results = [queue.get() for _ in procs]
    for proc in procs:
        proc.join()
    wall = time.perf_counter() - started
    samples = [s for r in results for s in r[0]]
    return len(samples), sum(r[1] for r in results), wall, samples


# -- sync --------------------------------------------------------------------------------------


def bulk_load(address: str, start: int, count: int, connections: int = 4) -> float:
    """Add people ``start .. start+count-1`` under ou=people over ``connections`` parallel binds; return seconds."""
    spec = slapd.HACKNEY

    def add_range(first: int, last: int) -> None:
        conn = ldap3.Connection(ldap3.Server(address, port=389, get_info=ldap3.NONE), user=spec.admin_dn,
                                password=spec.admin_password, auto_bind=True)
        try:
            for i in range(first, last):
                uid = f"bulk{i:06d}"
                ok = conn.add(spec.person_dn(uid), ["top", "inetOrgPerson"], {
                    "uid": uid, "cn": f"Bulk Person {i}", "sn": "Person", "givenName": "Bulk", "mail": f"{uid}@hackney.test",
                    "title": "Officer", "ou": "Bulk", "employeeNumber": f"HAC-{i:06d}", "userPassword": "Bulk-2026!"})
                if not ok:
                    raise RuntimeError(f"add {uid}: {conn.result}")
        finally:
            conn.unbind()

    started = time.perf_counter()
    step = -(-count // connections)
    threads = [threading.Thread(target=add_range, args=(start + k * step, min(start + count, start + (k + 1) * step)))
               for k in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started


def touch(address: str, uids: list[str]) -> None:
    spec = slapd.HACKNEY
    conn = ldap3.Connection(ldap3.Server(address, port=389, get_info=ldap3.NONE), user=spec.admin_dn,
                            password=spec.admin_password, auto_bind=True)
    try:
        for uid in uids:
            conn.modify(spec.person_dn(uid), {"title": [(ldap3.MODIFY_REPLACE, ["Senior Officer"])]})
    finally:
        conn.unbind()


def sync_bench(ca: Path, sizes: list[int]) -> None:
    cfg = LdapSourceConfig(
        type="ldap", id="hackney-ldap", urls=(f"ldaps://{HACKNEY_ADDRESS}:636",), ca_file=ca, tls_server_name=HACKNEY_TLS_NAME,
        base_dn=slapd.HACKNEY.suffix, bind_dn=slapd.HACKNEY.service_dn, bind_password=resolved_secret(slapd.HACKNEY.service_password),
        user_attribute="uid", response_timeout_seconds=120,
    )
    directory = build_ldap_directory(cfg)
    sync = DirectorySync(directory, page_size=1000)
    loaded = 0
    print(f"\n{'sync (OpenLDAP, LDAPS)':28} {'people':>8} {'load s':>8} {'full s':>8} {'full /s':>9} {'incr s':>8} {'changed':>8}")
    try:
        for size in sizes:
            load_s = bulk_load(HACKNEY_ADDRESS, loaded, size - loaded)
            loaded = size
            count = [0]
            started = time.perf_counter()
            full = sync.run(lambda page: count.__setitem__(0, count[0] + len(page)))
            full_s = time.perf_counter() - started
            time.sleep(1.1)  # modifyTimestamp has a one-second resolution
            changed = [f"bulk{i:06d}" for i in range(0, size, 100)]
            touch(HACKNEY_ADDRESS, changed)
            incremental = [0]
            started = time.perf_counter()
            sync.run(lambda page: incremental.__setitem__(0, incremental[0] + len(page)), full.cursor)
            incr_s = time.perf_counter() - started
            print(f"{'':28} {count[0]:>8} {load_s:>8.1f} {full_s:>8.2f} {count[0] / full_s:>9.0f} {incr_s:>8.2f} {incremental[0]:>8}")
    finally:
        directory.close()


# -- main --------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="load duration per directory")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (bounded)")
    parser.add_argument("--processes", type=int, default=2, help="load-generator processes")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="gunicorn workers")
    parser.add_argument("--sync-sizes", default="10000,100000", help="people to sync, ascending, comma-separated")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    if not (samba.binaries_available() and slapd.binaries_available()):
        print("needs samba-ad-dc, samba-ad-provision and slapd (see .ci/apt-packages-directories.txt)")
        return 2
    folder = Path(tempfile.mkdtemp(prefix="directories-login-bench-"))
    dc = samba.start_samba_dc(samba.CAMDEN, CAMDEN_ADDRESS, folder / "samba")
    ldap_process: subprocess.Popen[bytes] | None = None
    broker: subprocess.Popen[bytes] | None = None
    cleanup: Callable[[], None] = lambda: None
    try:
        ldap_process, ca = start_slapd_tls(HACKNEY_ADDRESS, folder / "slapd")
        db_url, cleanup = database_url(args.database_url, folder)
        issuer, broker = start_broker(folder, {"camden": camden_source(dc), "hackney": hackney_source(ca)}, db_url, args.workers)
        cores = os.cpu_count() or 1
        print(f"broker: gunicorn {args.workers} workers x 4 threads; database {db_url.split(':')[0]}; "
              f"{args.clients} clients in {args.processes} processes; {cores} cores shared by everything")
        print(f"{'sign-in (login POST)':28} {'n':>6} {'err':>4} {'per s':>7} {'per s/core':>10} {'p50 ms':>7} {'p99 ms':>7}")
        for label, users, password in (("Camden AD (Samba), LDAPS", CAMDEN_USERS, samba.CAMDEN_PASSWORD),
                                       ("Hackney OpenLDAP, LDAPS", HACKNEY_USERS, slapd.HACKNEY_PASSWORD)):
            n, errors, wall, samples = run_load(issuer, users, password, args.clients, args.processes, args.seconds)
            if not samples:
                print(f"{label:28} no successful sign-in ({errors} errors); see {folder / 'broker.log'}")
                continue
            rate = n / wall
            print(f"{label:28} {n:>6} {errors:>4} {rate:>7.0f} {rate / cores:>10.0f} "
                  f"{statistics.median(samples):>7.1f} {percentile(samples, 99):>7.1f}")
        broker.terminate()
        broker.wait(timeout=15)
        broker = None
        sync_bench(ca, [int(s) for s in args.sync_sizes.split(",") if s])
    finally:
        if broker is not None:
            broker.terminate()
            try:
                broker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                broker.kill()
        if ldap_process is not None:
            samba.stop_process(ldap_process)
        dc.stop()
        cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
