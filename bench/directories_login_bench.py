"""Directory sign-ins through the broker's login POST, and directory sync, against local peers.

Run from the repository root (``make bench`` runs it too; it is not a test):

    .venv/bin/python bench/directories_login_bench.py [--posts 60] [--seconds 8] [--clients 8] [--sync-sizes 10000,100000]

1. Sign-in: starts two Samba AD DCs (Camden over LDAPS; Newham over StartTLS with a dead
   first server URL, so every Newham sign-in runs through failover and its circuit
   breaker) and an OpenLDAP slapd (Hackney, LDAPS with its own CA), and the broker under
   gunicorn (``supercloud serve``, one worker per core, 4 threads each) with them as its
   sources. ``--clients`` concurrent clients (threads over ``--processes`` load-generator
   processes), and then one client, measure per directory and per state store:

   A. The login POST itself (POST /login/password: the directory search + bind, a new SSO
      session and an audit record). In an untimed setup phase each client prepares
      ``--posts`` flows (``--latency-posts`` for one client): GET /login and the email POST
      (home-realm discovery) with fresh cookies, keeping each flow's cookies (the broker's
      signed session) and CSRF token. All clients then pass a start barrier, the CPU meter
      starts, and the timed phase sends only the prepared password POSTs; the meter stops
      when the last client has reported.
   B. Whole sign-ins (GET /login + email POST + password POST, all timed) for ``--seconds``
      (``--latency-seconds`` for one client), as before.

   Flows are prepared with ``requests``; every timed password POST goes over a keep-alive
   ``http.client`` connection (``PostClient``), so the latency is the broker's and not the
   client library's (``requests`` adds about 0.85 ms of its own per call here).
   Every directory uses ``--group-mode`` (default ``member_of``: direct groups from the
   person's memberOf, nesting from the cached group graph; ``default`` gives in_chain on AD
   and recursive on LDAP, which read nesting live with one or more searches per sign-in).

   Each row prints: per second of wall clock; per CPU-second of the broker's gunicorn worker
   processes (their user + system time from /proc over the timed phase only: the "per core"
   figure, independent of what else the machine runs) and the worker CPU per POST/sign-in;
   the directory server's CPU per POST/sign-in (Samba or slapd, from /proc); p50/p99
   wall-clock latency of the password POST; how busy the whole machine was (cores) and the
   load average, since the load generator, the directories, PostgreSQL and other work share
   the same cores. With 8 clients on 2 cores the p50 is mostly waiting for a core; the
   one-client rows show latency without queueing. Every timed password POST must be a 302
   to /signed-in that sets the SSO cookie; anything else is counted as an error ("err",
   setup failures included) and the first one is printed.
   C. Before the broker starts: the directory part alone, ``LdapDirectory.authenticate``
      called from the bench process one at a time (``--directory-sign-ins``), with no groups
      (search + bind: the least a search-then-bind sign-in can cost; on Samba its successful
      simple bind alone is about 3.5 ms of DC CPU here) and with the group mode. A login
      POST's p50 minus this is the broker's own share.
   D. The floor, per state store: the serial steps no search-then-bind broker can skip, each
      timed alone: an HTTP POST to a Flask app that does nothing (``bench/floor_app.py`` under
      the same gunicorn settings), one state-store read (the throttle check before the bind),
      the search + bind of table C and one durable commit (the session, after the bind); their
      sum beside the one-client login POST p50 of table A.
2. Sync: loads N synthetic people into the slapd with ldap3 (several connections in
   parallel), then times ``DirectorySync`` over LDAPS: a full run reading and mapping
   every account, and an incremental run after 1% of them changed.

The database is PostgreSQL when one answers on 127.0.0.1:5432 (``--database-url`` to
choose), else SQLite. Short-lived state (throttle counters, flows) lives in that database
("sql") or in Redis ("redis", the London deployment's choice, ``broker.redis_url``): by
default the sign-in runs are made once per store, SQL first, then Redis when one answers at
``--redis-url`` (``--state-stores`` to choose); each table says which store it used.
Servers listen on 127.0.201.x and are stopped (by pid) at the end.
"""

from __future__ import annotations

import argparse
import http.client
import urllib.parse
import dataclasses
import logging
import multiprocessing
import multiprocessing.synchronize
import os
import re
import secrets
import signal
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
NEWHAM_ADDRESS = "127.0.201.3"
NEWHAM_DEAD_PORT = 1389  # nothing listens there: Newham's first "DC" is down
HACKNEY_ADDRESS = "127.0.201.4"
HACKNEY_TLS_NAME = "ldap.hackney.test"
SSO_COOKIE = "supercloud-session"  # broker.web.security.SSO_COOKIE (maybe with a __Host- prefix)
CSRF = re.compile(r'name="csrf_token"(?: type="hidden")? value="([^"]+)"')
CAMDEN_USERS = ["asmith@camden.test", "jpatel@camden.test", "jsmith@camden.test", "wrongpw@camden.test"]
NEWHAM_USERS = ["mokafor@newham.test", "jpatel@newham.test"]
HACKNEY_USERS = ["rosa.khan@hackney.test", "jay.patel@hackney.test", "ada.admin@hackney.test"]

logging.getLogger("directories.ldap").setLevel(logging.ERROR)
http_client_errors = http.client.HTTPException


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
    # The service account may read the server's clock (back_monitor), so an incremental sync's
    # cursor is the server's time at the run's start rather than this machine's less a skew allowance.
    conf = conf.replace("database monitor\n", f'database monitor\naccess to dn.base="cn=Current,cn=Time,cn=Monitor"\n'
                                               f'    by dn.exact="{slapd.HACKNEY.service_dn}" read\n    by * break\n', 1)
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


def newham_source(dc: samba.SambaDC) -> dict[str, object]:
    return {"type": "active_directory", "id": "newham-ad",
            "urls": [f"ldap://{dc.address}:{NEWHAM_DEAD_PORT}", f"ldap://{dc.address}:389"], "tls_mode": "starttls",
            "ca_file": str(dc.ca_file), "tls_server_name": samba.NEWHAM.dc_fqdn, "base_dn": samba.NEWHAM.base_dn,
            "bind_dn": samba.NEWHAM.user_dn(samba.SERVICE_ACCOUNT), "bind_password": {"env": "BENCH_CAMDEN_PASSWORD"},
            "connect_timeout_seconds": 1, "failure_threshold": 2, "pool_size": 16}


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


def redis_answers(url: str) -> bool:
    """Return True if a Redis server answers PING at ``url``."""
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def start_broker(folder: Path, sources: dict[str, dict[str, object]], db_url: str, workers: int,
                 redis_url: str | None = None, threads: int = 4) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    organisations = [
        {"id": "camden", "name": "London Borough of Camden", "kind": "borough", "domains": ["camden.test"], "sources": [sources["camden"]]},
        {"id": "newham", "name": "London Borough of Newham", "kind": "borough", "domains": ["newham.test"], "sources": [sources["newham"]]},
        {"id": "hackney", "name": "London Borough of Hackney", "kind": "borough", "domains": ["hackney.test"], "sources": [sources["hackney"]]},
    ]
    document = {"broker": {"issuer": issuer, "environment": "development", "database_url": db_url,
                           "master_key": {"env": "BENCH_MASTER_KEY"}}, "organisations": organisations}
    if redis_url:
        document["broker"]["redis_url"] = redis_url  # type: ignore[index]
    config = folder / "bench.yaml"
    config.write_text(yaml.safe_dump(document, sort_keys=False))
    env = {**os.environ, "BENCH_MASTER_KEY": MasterKey.generate_text(), "BENCH_CAMDEN_PASSWORD": samba.SERVICE_PASSWORD,
           "BENCH_HACKNEY_PASSWORD": slapd.HACKNEY.service_password, "PYTHONPATH": str(ROOT)}
    log = open(folder / "broker.log", "wb")  # noqa: SIM115 - handed to the child
    process = subprocess.Popen(
        [sys.executable, "-m", "broker", "--config", str(config), "serve", "--port", str(port),
         "--workers", str(workers), "--threads", str(threads)],
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


# -- CPU accounting (Linux /proc) ---------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # fields from "state" on (the name may hold spaces)


def children(pid: int) -> list[int]:
    """Return the live child processes of ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None and int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def process_cpu(pids: list[int]) -> float:
    """Return the user + system CPU seconds used so far by ``pids`` (live processes only)."""
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def machine_busy() -> float:
    """Return the CPU seconds every core of the machine has spent busy since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values[:8]) - idle) / CLOCK_TICKS


class CpuMeter:
    """CPU used by the broker's workers, a directory server and the whole machine over one run."""

    def __init__(self, broker_pid: int, directory_pids: list[int]) -> None:
        self._workers = children(broker_pid)  # gunicorn workers (the master only supervises)
        self._directory = directory_pids
        self._start = (process_cpu(self._workers), process_cpu(self._directory), machine_busy())

    def stop(self) -> tuple[float, float, float]:
        """Return CPU seconds used since start: (broker workers, directory server, whole machine)."""
        now = (process_cpu(self._workers), process_cpu(self._directory), machine_busy())
        return now[0] - self._start[0], now[1] - self._start[1], now[2] - self._start[2]


def tree(pid: int) -> list[int]:
    """Return ``pid`` and all its live descendants."""
    pids, frontier = [pid], [pid]
    while frontier:
        frontier = [child for parent in frontier for child in children(parent)]
        pids += frontier
    return pids


# -- load --------------------------------------------------------------------------------------


def _checked_email_step(http: requests.Session, issuer: str, email: str) -> str:
    """GET /login and POST the email; return the CSRF token. Raises RuntimeError unless the
    broker answers with the password page's redirect (home-realm discovery found the directory)."""
    token = CSRF.search(http.get(f"{issuer}/login", timeout=10).text)
    if token is None:
        raise RuntimeError("no CSRF token")
    first = http.post(f"{issuer}/login", data={"csrf_token": token.group(1), "email": email}, allow_redirects=False, timeout=10)
    if first.status_code != 302 or not first.headers.get("Location", "").endswith("/login/password"):
        raise RuntimeError(f"email step answered {first.status_code} {first.headers.get('Location')}")
    return token.group(1)


class PostClient:
    """Sends the timed password POSTs over one keep-alive ``http.client`` connection.

    The latency printed is the broker's as a lean client sees it: ``requests`` spends about
    0.85 ms of its own CPU per call on this kind of machine (a trivial Flask endpoint under
    gunicorn answers in a p50 of 0.56 ms to ``http.client`` and 1.40 ms to ``requests``),
    which would be counted as the broker's. The flows are still prepared with ``requests``.
    """

    def __init__(self, issuer: str) -> None:
        parsed = urllib.parse.urlsplit(issuer)
        self._host, self._port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self._connection = http.client.HTTPConnection(self._host, self._port, timeout=10)

    def post(self, path: str, form: dict[str, str], cookies: requests.cookies.RequestsCookieJar) -> http.client.HTTPResponse:
        """POST ``form`` to ``path`` with ``cookies``; return the read response (reconnects once if the server closed the connection)."""
        body = urllib.parse.urlencode(form)
        headers = {"Content-Type": "application/x-www-form-urlencoded",
                   "Cookie": "; ".join(f"{cookie.name}={cookie.value}" for cookie in cookies)}
        try:
            return self._send(path, body, headers)
        except (http.client.RemoteDisconnected, ConnectionError):  # the server closed an idle keep-alive
            self._connection.close()
            self._connection = http.client.HTTPConnection(self._host, self._port, timeout=10)
            return self._send(path, body, headers)

    def _send(self, path: str, body: str, headers: dict[str, str]) -> http.client.HTTPResponse:
        self._connection.request("POST", path, body=body, headers=headers)
        response = self._connection.getresponse()
        response.read()
        return response


def _checked_password_post(client: PostClient, token: str, password: str, cookies: requests.cookies.RequestsCookieJar) -> float:
    """POST the password; return its latency in ms. Raises RuntimeError unless it is a successful
    sign-in: a 302 to /signed-in (nobody here has a second factor) setting the SSO cookie."""
    started = time.perf_counter()
    second = client.post("/login/password", {"csrf_token": token, "password": password}, cookies)
    elapsed = (time.perf_counter() - started) * 1000
    location = second.getheader("Location") or ""
    if second.status != 302 or not location.endswith("/signed-in"):
        raise RuntimeError(f"password step answered {second.status} {location}")
    set_cookies = second.msg.get_all("Set-Cookie") or []
    if not any(re.match(rf"(__Host-)?{SSO_COOKIE}=[^;]+", header) for header in set_cookies):
        raise RuntimeError("password step set no SSO cookie")
    return elapsed


def sign_in(http: requests.Session, client: PostClient, issuer: str, email: str, password: str) -> float:
    """Sign in once (GET /login, email POST, password POST); return the password POST's latency
    in ms. Raises RuntimeError on anything but a successful sign-in."""
    token = _checked_email_step(http, issuer, email)
    return _checked_password_post(client, token, password, http.cookies)


@dataclasses.dataclass
class Flow:
    """A sign-in prepared up to the password page: its cookies (the broker's signed session
    holding the email) and CSRF token."""

    cookies: requests.cookies.RequestsCookieJar
    token: str


def prepare_flows(http: requests.Session, issuer: str, users: list[str], first: int, count: int) -> list[Flow]:
    """Run GET /login + email POST ``count`` times (users from index ``first``), each with fresh
    cookies; return the flows, ready for their password POST. Raises RuntimeError on failure."""
    flows = []
    for n in range(first, first + count):
        http.cookies.clear()
        token = _checked_email_step(http, issuer, users[n % len(users)])
        flows.append(Flow(http.cookies.copy(), token))
    http.cookies.clear()
    return flows


def load_process(issuer: str, users: list[str], password: str, threads: int, seconds: float, posts: int,
                 queue: multiprocessing.Queue, start: multiprocessing.synchronize.Barrier,  # type: ignore[type-arg]
                 posts_only: bool = False) -> None:
    """One load-generator process of ``threads`` clients, each warmed up once.

    ``posts_only``: each client first prepares ``posts`` flows up to the password page
    (untimed, before ``start``), then, from the moment every client (and the meter) passed
    ``start``, sends only their password POSTs. Otherwise each client signs in whole
    (GET /login, email POST, password POST) from ``start`` until ``seconds`` pass.
    Puts (latencies of successful sign-ins in ms, error count, first error) on ``queue``.
    """
    samples: list[float] = []
    errors = [0]
    first_error: list[str] = []
    lock = threading.Lock()

    def failed(exc: Exception) -> None:
        with lock:
            errors[0] += 1
            if not first_error:
                first_error.append(str(exc)[:200])

    def client(index: int) -> None:
        http = requests.Session()
        poster = PostClient(issuer)
        flows: list[Flow] = []
        try:
            sign_in(http, poster, issuer, users[index % len(users)], password)  # warm-up, not counted
            if posts_only:
                flows = prepare_flows(http, issuer, users, index, posts)
        except (RuntimeError, requests.RequestException, OSError, http_client_errors) as exc:
            failed(exc)
        finally:
            start.wait()
        mine: list[float] = []
        if posts_only:
            for flow in flows:
                try:
                    mine.append(_checked_password_post(poster, flow.token, password, flow.cookies))
                except (RuntimeError, requests.RequestException, OSError, http_client_errors) as exc:
                    failed(exc)
        else:
            stop = time.monotonic() + seconds
            n = index
            while time.monotonic() < stop:
                http.cookies.clear()
                try:
                    mine.append(sign_in(http, poster, issuer, users[n % len(users)], password))
                except (RuntimeError, requests.RequestException, OSError, http_client_errors) as exc:
                    failed(exc)
                n += 1
        with lock:
            samples.extend(mine)

    workers = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    queue.put((samples, errors[0], first_error[0] if first_error else ""))


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


@dataclasses.dataclass
class LoadResult:
    """One load run: counts, wall time, latencies and the CPU it cost."""

    n: int
    errors: int
    wall: float
    samples: list[float]
    broker_cpu: float
    directory_cpu: float
    machine_cpu: float
    load_average: float
    first_error: str = ""


def run_load(issuer: str, broker_pid: int, directory_pids: list[int], users: list[str], password: str, clients: int,
             processes: int, seconds: float, posts: int = 0) -> LoadResult:
    """Run ``clients`` clients after their warm-up; return what the timed phase took.

    ``posts`` > 0: each client prepares that many flows up to the password page (untimed),
    and the timed phase is only their password POSTs. 0: whole sign-ins for ``seconds``.
    The CPU meter starts when every client has passed the start barrier (prepared) and
    stops when the last client has reported.
    """
    queue: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    per = [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]
    start = multiprocessing.Barrier(sum(per) + 1)
    procs = [multiprocessing.Process(target=load_process,
                                     args=(issuer, users, password, n, seconds, posts, queue, start, posts > 0))
             for n in per if n]
    for proc in procs:
        proc.start()
    start.wait(timeout=600)
    meter = CpuMeter(broker_pid, directory_pids)
    started = time.perf_counter()
    results = [queue.get() for _ in procs]
    wall = time.perf_counter() - started
    broker_cpu, directory_cpu, machine_cpu = meter.stop()
    load_average = os.getloadavg()[0]
    for proc in procs:
        proc.join()
    samples = [s for r in results for s in r[0]]
    first_error = next((r[2] for r in results if r[2]), "")
    return LoadResult(len(samples), sum(r[1] for r in results), wall, samples, broker_cpu, directory_cpu, machine_cpu,
                      load_average, first_error)


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


def _row(label: str, result: LoadResult, log: Path) -> str:
    """One table row for ``result``, or a line saying nothing succeeded."""
    if not result.samples:
        return f"{label:30} no successful sign-in ({result.errors} errors: {result.first_error}); see {log}"
    n = result.n
    per_cpu = f"{n / result.broker_cpu:>10.0f}" if result.broker_cpu > 0 else f"{'-':>10}"
    return (f"{label:30} {n:>5} {result.errors:>3} {n / result.wall:>6.0f} {per_cpu} "
            f"{result.broker_cpu / n * 1000:>7.2f} {result.directory_cpu / n * 1000:>7.2f} "
            f"{statistics.median(result.samples):>7.1f} {percentile(result.samples, 99):>7.1f} "
            f"{result.machine_cpu / result.wall:>8.2f} {result.load_average:>5.2f}")


def _table(title: str, unit: str) -> None:
    print(f"\n{title}")
    print(f"{unit:30} {'n':>5} {'err':>3} {'per s':>6} {'per broker':>10} {'broker':>7} "
          f"{'dir':>7} {'p50 ms':>7} {'p99 ms':>7} {'machine':>8} {'load':>5}")
    print(f"{'':30} {'':>5} {'':>3} {'(wall)':>6} {'CPU-s':>10} {'ms CPU':>7} {'ms CPU':>7} "
          f"{'(POST)':>7} {'(POST)':>7} {'busy':>8} {'avg':>5}")


def sign_in_tables(args: argparse.Namespace, issuer: str, broker_pid: int,
                   directories: tuple[tuple[str, list[str], str, list[int]], ...], cores: int, log: Path) -> dict[str, float]:
    """Print the sign-in tables for the broker at ``issuer`` (its log at ``log``): the login
    POST alone (flows prepared ahead, untimed), then whole sign-ins; each with many clients
    and with one. Return the one-client login POST p50 (ms) per directory label."""
    errors: list[str] = []
    one_client_p50: dict[str, float] = {}
    for clients, processes in ((args.clients, args.processes), (1, 1)):
        posts = args.posts if clients > 1 else args.latency_posts
        _table(f"A. login POST only (POST /login/password; {posts} flows per client prepared ahead, untimed), "
               f"{clients} client(s)" + (" - one at a time, no queueing" if clients == 1 else ""), "login POST")
        for label, users, password, directory_pids in directories:
            result = run_load(issuer, broker_pid, directory_pids, users, password, clients, processes, 0, posts)
            print(_row(label, result, log))
            if clients == 1 and result.samples:
                one_client_p50[label] = statistics.median(result.samples)
            if result.first_error:
                errors.append(f"{label} (POST only, {clients} clients): {result.first_error}")
    for clients, processes in ((args.clients, args.processes), (1, 1)):
        _table(f"B. whole sign-in (GET /login + POST /login email + POST /login/password, all timed and in the CPU), "
               f"{clients} client(s)" + (" - one at a time" if clients == 1 else ""), "whole sign-in")
        for label, users, password, directory_pids in directories:
            result = run_load(issuer, broker_pid, directory_pids, users, password, clients, processes,
                              args.seconds if clients > 1 else args.latency_seconds)
            print(_row(label, result, log))
            if result.first_error:
                errors.append(f"{label} (whole, {clients} clients): {result.first_error}")
    print(f"\nper broker CPU-s: login POSTs (A) or whole sign-ins (B) per CPU-second of the gunicorn workers "
          f"(user + system from /proc, sampled around the timed phase only: the per-core figure). broker ms CPU: "
          f"worker CPU per POST (A) or per sign-in (B). dir ms CPU: the directory server's processes per POST/sign-in. "
          f"p50/p99: wall-clock latency of the password POST in both tables. Every timed POST is checked to be "
          f"a 302 to /signed-in setting the SSO cookie; err counts any other answer. machine busy: cores in use "
          f"on the whole machine (of {cores}).")
    for line in errors:
        print(f"first error - {line}")
    return one_client_p50


def directory_alone_table(sources: dict[str, dict[str, object]], directories: tuple[tuple[str, list[str], str, list[int]], ...],
                          secrets_by_env: dict[str, str], sign_ins: int) -> dict[str, float]:
    """Print what the directory part of a sign-in costs with no broker around it, from this
    process: ``LdapDirectory.authenticate`` with no groups (search + bind: the least any
    search-then-bind broker does) and with the source's group mode (what the broker does), one
    sign-in at a time over pooled connections. The broker's own share of a login POST is its
    p50 minus the second. Return the search + bind (no groups) p50 (ms) per directory label."""
    search_and_bind: dict[str, float] = {}
    print(f"\nC. the directory alone (LdapDirectory.authenticate from the bench process, no broker; {sign_ins} sign-ins "
          f"each, one at a time)")
    print(f"{'directory':30} {'groups':>12} {'p50 ms':>7} {'p99 ms':>7} {'dir ms CPU':>10}")
    for key, (label, users, password, directory_pids) in zip(("camden", "newham", "hackney"), directories):
        source = dict(sources[key])
        secret = source["bind_password"]
        env_name = secret["env"] if isinstance(secret, dict) else ""
        source["bind_password"] = resolved_secret(secrets_by_env[env_name], env_name)
        for mode in ("none", source.get("group_mode") or ("in_chain" if source["type"] == "active_directory" else "recursive")):
            cfg = LdapSourceConfig.model_validate({**source, "group_mode": mode, "min_failure_seconds": 0})
            directory = build_ldap_directory(cfg)
            try:
                for user in users[:2]:
                    directory.authenticate(user, password)  # warm the pools
                cache = getattr(directory.group_resolver, "cache", None)
                if cache is not None:  # member_of: load the group graph now (the warm-up started it in the background)
                    cache.refresh()
                before = process_cpu(directory_pids)
                samples = []
                for n in range(sign_ins):
                    started = time.perf_counter()
                    directory.authenticate(users[n % len(users)], password)
                    samples.append((time.perf_counter() - started) * 1000)
                cpu = (process_cpu(directory_pids) - before) / sign_ins * 1000
            finally:
                directory.close()
            print(f"{label:30} {mode:>12} {statistics.median(samples):>7.2f} {percentile(samples, 99):>7.2f} {cpu:>10.2f}")
            if mode == "none":
                search_and_bind[label] = statistics.median(samples)
    return search_and_bind


# -- the floor ---------------------------------------------------------------------------------


def start_floor_app(folder: Path, workers: int, threads: int) -> tuple[str, subprocess.Popen[bytes]]:
    """Serve ``bench/floor_app.py`` under gunicorn with the broker's worker settings; return (URL, process)."""
    port = free_port()
    log = open(folder / "floor_app.log", "wb")  # noqa: SIM115 - handed to the child
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--chdir", str(ROOT / "bench"), "--workers", str(workers),
         "--threads", str(threads), "--worker-class", "gthread" if threads > 1 else "sync", "--keep-alive", "65",
         "--bind", f"127.0.0.1:{port}", "floor_app:app"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError((folder / "floor_app.log").read_text(errors="replace")[-2000:])
        try:
            requests.post(f"{url}/login/password", data={"password": "x"}, timeout=1, allow_redirects=False)
            return url, process
        except requests.RequestException:
            time.sleep(0.2)
    process.terminate()
    raise RuntimeError("the floor app did not start")


def _p50_of(step: Callable[[], object], count: int) -> float:
    """Run ``step`` ``count`` times after 20 untimed runs; return the p50 in ms."""
    for _ in range(20):
        step()
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        step()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def floor_table(folder: Path, args: argparse.Namespace, db_url: str, redis_url: str | None,
                search_and_bind: dict[str, float], post_p50: dict[str, float], count: int = 500) -> None:
    """Print table D: the serial steps no search-then-bind broker can skip, each timed alone, their
    sum per directory, and the broker's one-client login POST p50 beside it.

    The steps: an HTTP POST answered by a Flask app doing nothing (``bench/floor_app.py`` under
    the broker's gunicorn settings); one read of the state store (the throttle check that must
    come before the bind, so that the broker stops short of AD's lockout); the directory's
    search + bind (table C, no groups); one durable commit (BEGIN, an INSERT, COMMIT) of the
    session the sign-in creates, which must follow the bind.
    """
    from sqlalchemy import create_engine, text

    url, app = start_floor_app(folder, args.workers, args.threads)
    engine = create_engine(db_url)
    try:
        poster = PostClient(url)
        jar = requests.cookies.RequestsCookieJar()

        def post() -> None:
            response = poster.post("/login/password", {"csrf_token": "t", "password": "p"}, jar)
            if response.status != 302:
                raise RuntimeError(f"floor app answered {response.status}")

        http_p50 = _p50_of(post, count)
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE bench_floor (id INTEGER PRIMARY KEY, value VARCHAR(200))"))
            connection.execute(text("INSERT INTO bench_floor (id, value) VALUES (0, 'counter')"))
        ids = iter(range(1, 1_000_000))

        def commit() -> None:
            with engine.begin() as connection:
                connection.execute(text("INSERT INTO bench_floor (id, value) VALUES (:id, :value)"),
                                   {"id": next(ids), "value": secrets.token_hex(40)})

        commit_p50 = _p50_of(commit, count)
        if redis_url:
            import redis

            client = redis.Redis.from_url(redis_url)
            read_p50 = _p50_of(lambda: client.get("bench-floor"), count)
            store = "Redis GET"
        else:
            def read() -> None:
                with engine.connect() as connection:
                    connection.execute(text("SELECT value FROM bench_floor WHERE id = 0")).first()

            read_p50 = _p50_of(read, count)
            store = "SQL SELECT"
        with engine.begin() as connection:
            connection.execute(text("DROP TABLE bench_floor"))
    finally:
        engine.dispose()
        app.terminate()
        app.wait(timeout=15)
    print(f"\nD. the floor: serial steps any search-then-bind sign-in takes here, each timed alone ({count} times, p50 ms)")
    print(f"   HTTP POST to a Flask app doing nothing {http_p50:.2f}; state read before the bind ({store}) {read_p50:.2f}; "
          f"durable commit after it {commit_p50:.2f}")
    print(f"{'directory':30} {'search+bind':>11} {'floor':>7} {'login POST':>10} {'over floor':>10}")
    for label, directory_p50 in search_and_bind.items():
        floor = http_p50 + read_p50 + directory_p50 + commit_p50
        measured = post_p50.get(label)
        shown = f"{measured:>10.2f} {measured - floor:>10.2f}" if measured is not None else f"{'-':>10} {'-':>10}"
        print(f"{label:30} {directory_p50:>11.2f} {floor:>7.2f} {shown}")
    print("floor = HTTP + state read + search+bind + commit; login POST: the one-client p50 of table A; "
          "over floor: what the broker adds (flow and CSRF check, identity mapping, subject, audit record, cookies)")


# -- main --------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="whole sign-in load duration per directory")
    parser.add_argument("--latency-seconds", type=float, default=3.0, help="duration of the one-client whole sign-in runs")
    parser.add_argument("--posts", type=int, default=60, help="login POSTs per client (prepared ahead) with --clients")
    parser.add_argument("--latency-posts", type=int, default=150, help="login POSTs in the one-client runs")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (bounded)")
    parser.add_argument("--processes", type=int, default=2, help="load-generator processes")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    parser.add_argument("--sync-sizes", default="10000,100000", help="people to sync, ascending, comma-separated")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14", help="Redis for the 'redis' state store")
    parser.add_argument("--directory-sign-ins", type=int, default=200, help="sign-ins per row of table C (0: skip it)")
    parser.add_argument("--group-mode", default="member_of",
                        help="group_mode for every directory, or 'default' (in_chain on AD, recursive on LDAP)")
    parser.add_argument("--state-stores", default=None,
                        help="comma-separated: sql, redis (default: sql, plus redis when it answers at --redis-url)")
    args = parser.parse_args()
    # Stopped by a signal, still stop the servers it started (they run in their own sessions).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.state_stores is None:
        stores = ["sql", "redis"] if redis_answers(args.redis_url) else ["sql"]
    else:
        stores = [s.strip() for s in args.state_stores.split(",") if s.strip()]
        if "redis" in stores and not redis_answers(args.redis_url):
            print(f"no Redis answers at {args.redis_url}")
            return 2
    if not (samba.binaries_available() and slapd.binaries_available()):
        print("needs samba-ad-dc, samba-ad-provision and slapd (see .ci/apt-packages-directories.txt)")
        return 2
    folder = Path(tempfile.mkdtemp(prefix="directories-login-bench-"))
    dc = samba.start_samba_dc(samba.CAMDEN, CAMDEN_ADDRESS, folder / "samba")
    newham: samba.SambaDC | None = None
    ldap_process: subprocess.Popen[bytes] | None = None
    broker: subprocess.Popen[bytes] | None = None
    cleanup: Callable[[], None] = lambda: None
    try:
        newham = samba.start_samba_dc(samba.NEWHAM, NEWHAM_ADDRESS, folder / "samba-newham")
        ldap_process, ca = start_slapd_tls(HACKNEY_ADDRESS, folder / "slapd")
        db_url, cleanup = database_url(args.database_url, folder)
        sources = {"camden": camden_source(dc), "newham": newham_source(newham), "hackney": hackney_source(ca)}
        if args.group_mode != "default":
            for source in sources.values():
                source["group_mode"] = args.group_mode
        cores = os.cpu_count() or 1
        directories = (("Camden AD (Samba), LDAPS", CAMDEN_USERS, samba.CAMDEN_PASSWORD, tree(dc.process.pid)),
                       ("Newham AD failover, StartTLS", NEWHAM_USERS, samba.NEWHAM_PASSWORD, tree(newham.process.pid)),
                       ("Hackney OpenLDAP, LDAPS", HACKNEY_USERS, slapd.HACKNEY_PASSWORD, [ldap_process.pid]))
        print(f"group mode: {args.group_mode}")
        search_and_bind: dict[str, float] = {}
        if args.directory_sign_ins > 0:
            search_and_bind = directory_alone_table(
                sources, directories, {"BENCH_CAMDEN_PASSWORD": samba.SERVICE_PASSWORD,
                                       "BENCH_HACKNEY_PASSWORD": slapd.HACKNEY.service_password}, args.directory_sign_ins)
        for store in stores:
            (folder / store).mkdir()
            issuer, broker = start_broker(folder / store, sources, db_url, args.workers,
                                          args.redis_url if store == "redis" else None, threads=args.threads)
            where = "Redis" if store == "redis" else f"the database ({db_url.split(':')[0]})"
            print(f"\n=== state store: {store} (throttle counters and flows in {where}) ===")
            print(f"broker: gunicorn {args.workers} workers x {args.threads} threads; database {db_url.split(':')[0]}; state store {store}; "
                  f"{args.clients} clients in {args.processes} processes; {cores} cores shared with the directories, "
                  f"the database, the load generator and anything else running (load average before: "
                  f"{os.getloadavg()[0]:.2f})")
            print("login POST = POST /login/password alone (A); whole sign-in = GET /login + POST /login (email) + "
                  "POST /login/password (B); CPU from /proc over each timed phase")
            post_p50 = sign_in_tables(args, issuer, broker.pid, directories, cores, folder / store / "broker.log")
            broker.terminate()
            broker.wait(timeout=15)
            broker = None
            if search_and_bind:
                floor_table(folder / store, args, db_url, args.redis_url if store == "redis" else None,
                            search_and_bind, post_p50)
        sizes = [int(s) for s in args.sync_sizes.split(",") if s]
        if sizes:
            sync_bench(ca, sizes)
    finally:
        if broker is not None:
            broker.terminate()
            try:
                broker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                broker.kill()
        if ldap_process is not None:
            samba.stop_process(ldap_process)
        if newham is not None:
            newham.stop()
        dc.stop()
        cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
