"""Benchmark the token endpoint under gunicorn on loopback, against a bare Flask endpoint.

Run: ``.venv/bin/python bench/oidc_token_bench.py [--workers 2 --threads 4 --clients 16 --seconds 5]``
(``make bench`` runs it with the defaults; tests never do).

It builds a throw-away deployment (SQLite in a temporary folder, or ``--database-url``),
serves it with gunicorn (gthread workers, no access log) on 127.0.0.1, and drives
``POST /token`` with ``--clients`` concurrent keep-alive clients (threads spread over
``--driver-processes`` processes, so the load generator is not one GIL) for:

1. ``authorization_code``: codes issued beforehand in-process for one signed-in person,
   each redeemed once with its PKCE verifier (client_secret_basic);
2. ``refresh_token``: each client rotates its own refresh-token chain;
3. ``client_credentials``: a service asking for a token for one resource.

Then the same load against a bare Flask app whose one route signs one ES256 JWT with the
broker's key code (``federation.jose``), served the same way. For each it prints tokens/s,
tokens/s per worker process, tokens per CPU-second of the server's workers (from
/proc), and p50/p99 latency, then the ratio of the broker to the bare endpoint.
Everything is bounded: time per phase, number of codes, clients, and loopback only.
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import hashlib
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
WEB_SECRET = "bench-web-secret-" + "x" * 32
SERVICE_SECRET = "bench-service-secret-" + "y" * 32
REDIRECT = "http://127.0.0.1:9/callback"
MAX_CLIENTS = 256
MAX_SECONDS = 60.0
MAX_CODES = 20000


# --- servers (run in child processes) -----------------------------------------------------


def serve_broker(config: str, port: int, workers: int, threads: int) -> None:
    """Serve the broker with gunicorn, without an access log."""
    from broker.serve import BrokerServer

    BrokerServer(Path(config), _gunicorn_options(port, workers, threads)).run()


def serve_bare(port: int, workers: int, threads: int) -> None:
    """Serve a bare Flask app whose POST /token signs one ES256 JWT."""
    from flask import Flask, jsonify
    from gunicorn.app.base import BaseApplication

    from federation import jose
    from federation.keys import generate_private_pem

    class Bare(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in _gunicorn_options(port, workers, threads).items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            key = jose.load_signing_key("ES256", generate_private_pem("ES256"))
            app = Flask("bare")

            @app.post("/token")
            def token():  # type: ignore[no-untyped-def]
                now = int(time.time())
                claims = {"iss": "http://bench", "sub": "service", "aud": "api", "client_id": "service", "iat": now,
                          "exp": now + 600, "jti": secrets.token_urlsafe(16)}
                return jsonify({"access_token": jose.sign(claims, key, typ="at+jwt"), "token_type": "Bearer", "expires_in": 600})

            @app.get("/.well-known/openid-configuration")
            def ready():  # type: ignore[no-untyped-def]
                return jsonify({})

            return app

    Bare().run()


def _gunicorn_options(port: int, workers: int, threads: int) -> dict[str, Any]:
    return {"bind": f"{HOST}:{port}", "workers": workers, "threads": threads, "worker_class": "gthread",
            "accesslog": None, "errorlog": "-", "loglevel": "warning", "timeout": 60, "keepalive": 65, "backlog": 512}


# --- deployment -------------------------------------------------------------------------------


def write_config(folder: Path, port: int, database_url: str | None) -> Path:
    """Write the bench deployment's configuration; secrets go to the environment."""
    import yaml

    from federation.keys import MasterKey

    os.environ["BENCH_MASTER_KEY"] = MasterKey.generate_text()
    os.environ["BENCH_WEB_SECRET"] = WEB_SECRET
    os.environ["BENCH_SERVICE_SECRET"] = SERVICE_SECRET
    users = ROOT / "config" / "demo" / "users" / "camden.yaml"
    document = {
        "broker": {"issuer": f"http://{HOST}:{port}", "environment": "development",
                   "database_url": database_url or f"sqlite:///{folder / 'bench.db'}", "master_key": {"env": "BENCH_MASTER_KEY"}},
        "organisations": [{"id": "camden", "name": "London Borough of Camden", "kind": "borough", "domains": ["camden.test"],
                           "sources": [{"type": "static", "id": "camden-demo", "users_file": str(users)}]}],
        "applications": [
            {"client_id": "bench-web", "name": "Bench Web", "redirect_uris": [REDIRECT], "client_secret": {"env": "BENCH_WEB_SECRET"}},
            {"client_id": "bench-service", "name": "Bench Service", "client_secret": {"env": "BENCH_SERVICE_SECRET"},
             "grant_types": ["client_credentials"], "allowed_audiences": ["bench-api"]},
        ],
    }
    path = folder / "broker.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def issue_codes(config: Path, count: int) -> list[tuple[str, str]]:
    """Initialise the deployment and issue ``count`` codes for one signed-in person; return (code, verifier) pairs."""
    from urllib.parse import parse_qs, urlsplit

    from broker.bootstrap import initialise
    from broker.oidc.authorization import AuthorizationRequest
    from broker.services import build_services
    from config import load_settings

    settings = load_settings(config)
    initialise(settings)
    services = build_services(settings)
    _, sso = services.login.sign_in("amara.okafor@camden.test", "london-demo", ip=None)
    pairs = []
    for _ in range(count):
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
        request = AuthorizationRequest(client_id="bench-web", redirect_uri=REDIRECT, scopes=frozenset({"openid", "profile", "email"}),
                                       state=None, nonce=None, code_challenge=challenge, prompt=frozenset(), max_age=None, login_hint=None)
        url = services.oidc.issue_code(request, sso, ip=None).url
        pairs.append((parse_qs(urlsplit(url).query)["code"][0], verifier))
    services.engine.dispose()
    return pairs


# --- load ----------------------------------------------------------------------------------------


def _basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def _drive(job: dict[str, Any]) -> dict[str, Any]:
    """Run one driver process: ``threads`` keep-alive clients; return latencies, counts and refresh tokens."""
    import requests

    url = f"http://{HOST}:{job['port']}/token"
    deadline = time.monotonic() + job["seconds"]
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    refresh_out: list[str] = []
    work = list(job.get("items", []))

    def client(index: int) -> None:
        http = requests.Session()
        mine: list[float] = []
        chain = job["refresh"][index] if job["kind"] == "refresh" and index < len(job["refresh"]) else None
        while time.monotonic() < deadline:
            if job["kind"] == "code":
                with lock:
                    if not work:
                        break
                    code, verifier = work.pop()
                data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier}
                headers = _basic("bench-web", WEB_SECRET)
            elif job["kind"] == "refresh":
                if chain is None:
                    break
                data, headers = {"grant_type": "refresh_token", "refresh_token": chain}, _basic("bench-web", WEB_SECRET)
            elif job["kind"] == "client_credentials":
                data, headers = {"grant_type": "client_credentials", "resource": "bench-api"}, _basic("bench-service", SERVICE_SECRET)
            else:  # bare
                data, headers = {"grant_type": "client_credentials"}, {}
            start = time.perf_counter()
            response = http.post(url, data=data, headers=headers, timeout=30)
            elapsed = time.perf_counter() - start
            if response.status_code != 200:
                with lock:
                    errors[0] += 1
                if job["kind"] == "refresh":
                    break
                continue
            mine.append(elapsed)
            body = response.json()
            if job["kind"] == "code":
                with lock:
                    refresh_out.append(body["refresh_token"])
            elif job["kind"] == "refresh":
                chain = body["refresh_token"]
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(job["threads"])]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"latencies": latencies, "errors": errors[0], "elapsed": time.monotonic() - start, "refresh": refresh_out}


def run_phase(label: str, kind: str, port: int, pids: list[int], args: argparse.Namespace, *,
              items: list[Any] | None = None, refresh: list[str] | None = None) -> tuple[float, list[str]]:
    """Drive one phase; print its figures; return (tokens/s, refresh tokens obtained)."""
    processes = args.driver_processes
    per_process = [args.clients // processes + (1 if i < args.clients % processes else 0) for i in range(processes)]
    jobs = []
    for p, threads in enumerate(per_process):
        job = {"kind": kind, "port": port, "threads": threads, "seconds": args.seconds}
        if items is not None:
            job["items"] = items[p::processes]
        if refresh is not None:
            offset = sum(per_process[:p])
            job["refresh"] = refresh[offset:offset + threads]
        jobs.append(job)
    cpu_before = _cpu_seconds(pids)
    start = time.monotonic()
    with concurrent.futures.ProcessPoolExecutor(max_workers=processes) as pool:
        results = list(pool.map(_drive, jobs))
    wall = time.monotonic() - start
    cpu = _cpu_seconds(pids) - cpu_before
    latencies = sorted(x for r in results for x in r["latencies"])
    errors = sum(r["errors"] for r in results)
    elapsed = max(r["elapsed"] for r in results)
    done = len(latencies)
    if not done:
        print(f"  {label:<22} no successful requests ({errors} errors)")
        return 0.0, []
    per_second = done / elapsed
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    per_cpu = done / cpu if cpu > 0 else float("nan")
    print(f"  {label:<22} {done:>7} tokens in {elapsed:5.1f} s  {per_second:8.0f}/s  {per_second / args.workers:7.0f}/s per worker  "
          f"{per_cpu:7.0f} per worker CPU-s  p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  errors {errors}")
    del wall
    return per_cpu, [t for r in results for t in r["refresh"]]


def _cpu_seconds(pids: list[int]) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
        except (OSError, IndexError, ValueError):
            continue
    return total


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                found.append(int(entry.name))
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _start(argv: list[str], port: int, workers: int) -> tuple[subprocess.Popen[bytes], list[int]]:
    import requests

    process = subprocess.Popen([sys.executable, __file__, *argv], cwd=ROOT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://{HOST}:{port}/.well-known/openid-configuration", timeout=1).status_code == 200:
                break
        except requests.RequestException:
            time.sleep(0.2)
    else:
        process.terminate()
        raise SystemExit("the server did not start")
    time.sleep(1.0)
    workers_pids = _children(process.pid)
    return process, workers_pids[:workers] if len(workers_pids) >= workers else workers_pids


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


def main() -> None:
    """Print the figures for the broker's three grants and the bare endpoint."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients")
    parser.add_argument("--driver-processes", type=int, default=2, help="processes the clients are spread over")
    parser.add_argument("--seconds", type=float, default=5.0, help="time bound of each phase")
    parser.add_argument("--codes", type=int, default=1500, help="authorization codes issued for the code phase")
    parser.add_argument("--database-url", help="default: SQLite in a temporary folder")
    parser.add_argument("--serve-broker", nargs=4, metavar=("CONFIG", "PORT", "WORKERS", "THREADS"), help=argparse.SUPPRESS)
    parser.add_argument("--serve-bare", nargs=3, metavar=("PORT", "WORKERS", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_broker:
        config, port, workers, threads = args.serve_broker
        serve_broker(config, int(port), int(workers), int(threads))
        return
    if args.serve_bare:
        port, workers, threads = args.serve_bare
        serve_bare(int(port), int(workers), int(threads))
        return
    args.clients = max(1, min(args.clients, MAX_CLIENTS))
    args.seconds = max(0.5, min(args.seconds, MAX_SECONDS))
    args.codes = max(1, min(args.codes, MAX_CODES))
    args.driver_processes = max(1, min(args.driver_processes, args.clients))

    print(f"token endpoint benchmark: {args.workers} gunicorn workers x {args.threads} threads, {args.clients} clients "
          f"over {args.driver_processes} processes, {args.seconds:.0f} s per phase, {os.cpu_count()} CPUs, loopback, "
          f"load average {_load()}")
    with tempfile.TemporaryDirectory(prefix="oidc-bench-") as folder:
        port = _free_port()
        config = write_config(Path(folder), port, args.database_url)
        start = time.monotonic()
        codes = issue_codes(config, args.codes)
        print(f"  issued {len(codes)} codes in {time.monotonic() - start:.1f} s "
              f"({'SQLite' if not args.database_url else args.database_url.split(':')[0]})")
        server, pids = _start(["--serve-broker", str(config), str(port), str(args.workers), str(args.threads)], port, args.workers)
        try:
            print("broker:")
            run_phase("authorization_code", "code", port, pids, args, items=codes)
            # One refresh chain per client, from codes exchanged in a small warm-up.
            extra = issue_codes_again(config, args.clients)
            _, refresh_tokens = run_phase("(warm-up codes)", "code", port, pids, args, items=extra)
            run_phase("refresh_token", "refresh", port, pids, args, refresh=refresh_tokens)
            broker_cc, _ = run_phase("client_credentials", "client_credentials", port, pids, args)
        finally:
            _stop(server)
        bare_port = _free_port()
        bare, bare_pids = _start(["--serve-bare", str(bare_port), str(args.workers), str(args.threads)], bare_port, args.workers)
        try:
            print("bare Flask endpoint signing one ES256 token:")
            bare_cc, _ = run_phase("sign one ES256 JWT", "bare", bare_port, bare_pids, args)
        finally:
            _stop(bare)
    if bare_cc:
        print(f"ratio client_credentials / bare endpoint (per worker CPU-second): {broker_cc / bare_cc:.2f}")
    # Other work on the machine inflates CPU per request too (cache, context switches): say how loaded it was.
    print(f"load average at the end: {_load()}")


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def issue_codes_again(config: Path, count: int) -> list[tuple[str, str]]:
    """Issue ``count`` more codes on the already initialised deployment."""
    return issue_codes(config, count)


if __name__ == "__main__":
    main()
