"""Real Samba AD domain controllers for the test suite, one per borough, on loopback.

``start_samba_dc(spec, address, run_root)`` returns a running ``SambaDC``:

* provisioning (``samba-tool domain provision`` + users and groups) runs once and is
  cached as a tarball under ``cache_dir()`` keyed by a hash of this file and the domain
  spec, so later sessions restore it in about a second (the DC's files do not depend on
  their path once ``smb.conf`` is rewritten, so one cache serves every xdist worker);
* the DC listens only on ``address`` (LDAP 389, LDAPS 636: Samba's ports are fixed, so
  every xdist worker gets its own address, see ``worker_address``);
* per-session state that decays with time (account lockout) is applied after start;
* ``stop()`` ends the process it started, by pid; ``start()`` starts it again.

Newham has two real DCs: ``samba_newham`` is the first, restored from a "pair" tarball in
which a second DC was joined to it once (``samba-tool domain join NEWHAM.TEST DC``, with
``--server=<first DC's address>`` and ``--dns-backend=NONE`` as there is no DNS), and
``samba_newham_dc2`` starts that second DC on its own address (127.0.<worker>.13). Without
DNS the DCs cannot find each other for scheduled replication, so ``replicate(dc1, dc2)``
pulls changes on demand (``samba-tool drs replicate --local``); the second DC is brought up
to date when it starts. It serves the first DC's certificate (one name and CA for both).
Provisioning also lets the service account read tombstones (``samba_deleted_objects.py``).
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import ldap3
import pytest

from tests.peers import peer_missing

SAMBA_BINARIES = ("samba", "samba-tool")
HOW_TO_ENABLE = "install samba-ad-dc samba-ad-provision (see .ci/apt-packages-directories.txt)"
READY_TIMEOUT_SECONDS = 40.0
LOCKOUT_THRESHOLD = 5


@dataclasses.dataclass(frozen=True)
class AdUser:
    """A user to create; ``state`` is one of active, disabled, must_change, expired, locked."""

    sam: str
    password: str
    given_name: str
    surname: str
    mail: str | None = None
    department: str | None = None
    job_title: str | None = None
    employee_id: str | None = None
    office: str | None = None
    cn: str | None = None  # a CN other than the sAMAccountName (set by renaming after creation)
    state: str = "active"


@dataclasses.dataclass(frozen=True)
class AdGroup:
    """A security group; ``members`` name users (sAMAccountName) or other groups."""

    name: str
    members: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class AdDomainSpec:
    """Everything that defines one provisioned domain (hashed into the cache key)."""

    realm: str  # CAMDEN.TEST
    netbios: str  # CAMDEN
    host_name: str  # dc-camden
    staging_address: str  # where the DC runs once while provisioning (distinct per domain)
    admin_password: str
    users: tuple[AdUser, ...]
    groups: tuple[AdGroup, ...]

    @property
    def base_dn(self) -> str:
        """The domain's naming context, e.g. ``DC=camden,DC=test``."""
        return ",".join(f"DC={part}" for part in self.realm.lower().split("."))

    @property
    def dc_fqdn(self) -> str:
        """The DC's DNS name, which its TLS certificate names."""
        return f"{self.host_name}.{self.realm.lower()}"

    def user_dn(self, sam: str) -> str:
        """Return user ``sam``'s DN: CN=<cn or sam>,CN=Users,... (RDN escaped per RFC 4514)."""
        cn = next((u.cn for u in self.users if u.sam == sam and u.cn), sam)
        return f"CN={escape_rdn(cn)},CN=Users,{self.base_dn}"


@dataclasses.dataclass
class SambaDC:
    """A running Samba AD DC. ``second_directory``: where the domain's second DC (joined to
    this one when provisioned) was restored, for ``start_second_dc``; None for a lone DC."""

    spec: AdDomainSpec
    address: str
    directory: Path
    process: subprocess.Popen[bytes]
    second_directory: Path | None = None

    @property
    def ca_file(self) -> Path:
        """Samba's self-signed CA (PEM) that signed the DC's certificate."""
        return self.directory / "private" / "tls" / "ca.pem"

    @property
    def admin_dn(self) -> str:
        """The Administrator's DN."""
        return self.spec.user_dn("Administrator")

    def stop(self) -> None:
        """Stop the DC this helper started (by pid) and wait for it. Returns None."""
        stop_process(self.process)

    @property
    def running(self) -> bool:
        """True while the DC's process runs."""
        return self.process.poll() is None

    def start(self) -> None:
        """Start the (stopped) DC again from its directory and wait until it answers. Returns None."""
        if self.running:
            return
        self.process = _start_process(self.directory)
        _wait_ready(self.process, self.address, self.directory)


def escape_rdn(value: str) -> str:
    """Return ``value`` escaped as an RDN attribute value (RFC 4514 §2.4)."""
    escaped = "".join("\\" + ch if ch in ',+"\\<>;=' else ch for ch in value)
    if escaped.startswith(("#", " ")):
        escaped = "\\" + escaped
    return escaped[:-1] + "\\ " if escaped.endswith(" ") else escaped


def cache_dir() -> Path:
    """Return the directory holding provisioned-domain tarballs (created if needed).

    ``SUPERCLOUD_TEST_CACHE`` wins; else ``$XDG_CACHE_HOME/supercloud-test-cache``; else
    ``/tmp/supercloud-test-cache``.
    """
    explicit = os.environ.get("SUPERCLOUD_TEST_CACHE")
    if explicit:
        path = Path(explicit)
    elif os.environ.get("XDG_CACHE_HOME"):
        path = Path(os.environ["XDG_CACHE_HOME"]) / "supercloud-test-cache"
    else:
        path = Path(tempfile.gettempdir()) / "supercloud-test-cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


def worker_index(worker_id: str) -> int:
    """Return 0 for ``master`` (no xdist) and N for xdist worker ``gwN``."""
    return int(worker_id[2:]) if worker_id.startswith("gw") and worker_id[2:].isdigit() else 0


def worker_address(last_octet: int, worker_id: str) -> str:
    """Return a free loopback address for a peer of this worker: 127.<n>.<worker>.<last_octet>.

    Normally n = 0, so without xdist (and for gw0) Camden is 127.0.0.2, Newham 127.0.0.3
    and Hackney 127.0.0.4. When another test session on the machine already listens
    there (port 389), the next n is tried, so concurrent sessions do not collide.
    """
    worker = worker_index(worker_id)
    for second in range(0, 200):
        address = f"127.{second}.{worker}.{last_octet}"
        if not port_in_use(address, 389) and not port_in_use(address, 636):
            return address
    raise RuntimeError(f"no free loopback address for peer .{last_octet} of worker {worker_id}")


def find_binary(name: str) -> str | None:
    """Return the path of program ``name`` on PATH or in /usr/sbin, /sbin (daemons live there), or None."""
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    return shutil.which(name, path=search)


def _binary(name: str) -> str:
    path = find_binary(name)
    if path is None:
        raise RuntimeError(f"{name} is not installed")
    return path


def binaries_available() -> bool:
    """Return True when Samba's DC binaries are installed."""
    return all(find_binary(b) for b in SAMBA_BINARIES)


def stop_process(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Terminate ``process`` (one we started), then kill it if it lingers. Returns None."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


def port_in_use(address: str, port: int) -> bool:
    """Return True when something already listens on ``address:port``."""
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((address, port)) == 0


# -- provisioning -------------------------------------------------------------------

_ROOT_MARK = "@@SUPERCLOUD_ROOT@@"
_IP_MARK = "@@SUPERCLOUD_IP@@"
_DELETED_OBJECTS_SCRIPT = Path(__file__).with_name("samba_deleted_objects.py")


def _cache_key(spec: AdDomainSpec) -> str:
    digest = hashlib.sha256()
    digest.update(Path(__file__).read_bytes())
    digest.update(_DELETED_OBJECTS_SCRIPT.read_bytes())
    digest.update(json.dumps(dataclasses.asdict(spec), sort_keys=True).encode())
    digest.update(subprocess.run([_binary("samba"), "-V"], capture_output=True, check=False).stdout)
    return digest.hexdigest()[:20]


def _tool(conf: Path, *args: str) -> None:
    result = subprocess.run(
        [_binary("samba-tool"), *args, "-s", str(conf)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"samba-tool {' '.join(args[:3])} failed: {result.stderr[-2000:]}")


def _smb_conf_options(directory: Path, address: str) -> list[str]:
    return [
        f"interfaces = {address}/8",
        "bind interfaces only = yes",
        "server services = ldap",
        f"pid directory = {directory}/run",
        f"ncalrpc dir = {directory}/ncalrpc",
        f"winbindd socket directory = {directory}/winbindd",
        f"log file = {directory}/log.%m",
    ]


def _provision(spec: AdDomainSpec, directory: Path, address: str) -> None:
    """Provision ``spec`` into ``directory`` and start/stop it once (TLS keys, LDAP edits)."""
    shutil.rmtree(directory, ignore_errors=True)
    options = [f"--option={o}" for o in _smb_conf_options(directory, address)]
    result = subprocess.run(
        [
            _binary("samba-tool"), "domain", "provision", f"--targetdir={directory}", f"--realm={spec.realm}",
            f"--domain={spec.netbios}", "--server-role=dc", "--dns-backend=NONE", "--use-rfc2307",
            f"--adminpass={spec.admin_password}", f"--host-name={spec.host_name}", f"--host-ip={address}",
            *options,
        ],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"samba-tool domain provision failed: {result.stderr[-2000:]}")
    conf = directory / "etc" / "smb.conf"
    text = conf.read_text().replace("[global]\n", "[global]\n\tldap server require strong auth = no\n", 1)
    conf.write_text(text)
    _tool(conf, "domain", "passwordsettings", "set", f"--account-lockout-threshold={LOCKOUT_THRESHOLD}")
    for user in spec.users:
        args = ["user", "create", user.sam, user.password, "--use-username-as-cn"]
        args += [f"--given-name={user.given_name}", f"--surname={user.surname}"]
        if user.mail:
            args.append(f"--mail-address={user.mail}")
        if user.department:
            args.append(f"--department={user.department}")
        if user.job_title:
            args.append(f"--job-title={user.job_title}")
        if user.state == "must_change":
            args.append("--must-change-at-next-login")
        _tool(conf, *args)
        if user.state == "disabled":
            _tool(conf, "user", "disable", user.sam)
        if user.state == "expired":
            _tool(conf, "user", "setexpiry", user.sam, "--days=0")
    for group in spec.groups:
        _tool(conf, "group", "add", group.name)
    for group in spec.groups:
        _tool(conf, "group", "addmembers", group.name, ",".join(group.members))
    process = _start_process(directory)
    try:
        _wait_ready(process, address, directory)
        _set_ldap_attributes(spec, address)
        _grant_tombstone_read(spec, directory, address)
    finally:
        stop_process(process)


def _samba_python() -> str:
    """Return the interpreter samba-tool runs with (it has Samba's Python bindings)."""
    first_line = Path(_binary("samba-tool")).read_text(errors="replace").splitlines()[0]
    return first_line.removeprefix("#!").strip().split()[0]


def _grant_tombstone_read(spec: AdDomainSpec, directory: Path, address: str) -> None:
    """Let the service account see tombstones (Show Deleted), as an administrator would delegate."""
    from ldap3.protocol.formatters.formatters import format_sid

    conn = ldap3.Connection(ldap3.Server(address, port=389, get_info=ldap3.NONE), user=spec.user_dn("Administrator"),
                            password=spec.admin_password, auto_bind=True)
    try:
        conn.search(spec.user_dn(SERVICE_ACCOUNT), "(objectClass=*)", search_scope=ldap3.BASE, attributes=["objectSid"])
        sid = format_sid(conn.response[0]["raw_attributes"]["objectSid"][0])
    finally:
        conn.unbind()
    result = subprocess.run(
        [_samba_python(), "-I", str(_DELETED_OBJECTS_SCRIPT), str(directory / "etc" / "smb.conf"),
         str(directory / "private" / "sam.ldb"), spec.base_dn, sid],
        capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"granting tombstone read failed: {result.stderr[-2000:]}")


def _set_ldap_attributes(spec: AdDomainSpec, address: str) -> None:
    """Set attributes samba-tool cannot (employeeID, physicalDeliveryOfficeName, displayName)."""
    conn = ldap3.Connection(
        ldap3.Server(address, port=389, get_info=ldap3.NONE),
        user=spec.user_dn("Administrator"),
        password=spec.admin_password,
        auto_bind=True,
    )
    try:
        for user in spec.users:
            changes: dict[str, list[tuple[str, list[str]]]] = {
                "displayName": [(ldap3.MODIFY_REPLACE, [f"{user.given_name} {user.surname}"])]
            }
            if user.employee_id:
                changes["employeeID"] = [(ldap3.MODIFY_REPLACE, [user.employee_id])]
            if user.office:
                changes["physicalDeliveryOfficeName"] = [(ldap3.MODIFY_REPLACE, [user.office])]
            created_dn = f"CN={user.sam},CN=Users,{spec.base_dn}"
            if not conn.modify(created_dn, changes):
                raise RuntimeError(f"modify {user.sam} failed: {conn.result}")
            if user.cn and not conn.modify_dn(created_dn, f"CN={escape_rdn(user.cn)}"):
                raise RuntimeError(f"rename {user.sam} failed: {conn.result}")
    finally:
        conn.unbind()


def _start_process(directory: Path) -> subprocess.Popen[bytes]:
    log = open(directory / "samba.stdout", "ab")  # noqa: SIM115 - handed to the child
    try:
        return subprocess.Popen(
            [_binary("samba"), "-s", str(directory / "etc" / "smb.conf"), "-F", "--no-process-group", "-M", "single"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    finally:
        log.close()


def _wait_ready(process: subprocess.Popen[bytes], address: str, directory: Path) -> None:
    """Wait until an anonymous rootDSE search answers; raise RuntimeError after the timeout."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = (directory / "samba.stdout").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"samba exited with {process.returncode}: {tail}")
        try:
            conn = ldap3.Connection(
                ldap3.Server(address, port=389, get_info=ldap3.NONE, connect_timeout=0.5),
                auto_bind=True,
                receive_timeout=1,
            )
            ok = conn.search("", "(objectClass=*)", search_scope=ldap3.BASE, attributes=["namingContexts"])
            conn.unbind()
            if ok:
                return
        except Exception:  # noqa: BLE001 - not listening yet
            pass
        time.sleep(0.1)
    stop_process(process)
    raise RuntimeError(f"samba on {address} not ready within {READY_TIMEOUT_SECONDS} s")


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _cached_tarball(spec: AdDomainSpec) -> Path:
    """Return the tarball of ``spec`` provisioned, provisioning it first if not cached.

    A file lock makes concurrent workers provision each domain once.
    """
    key = _cache_key(spec)
    cache = cache_dir()
    tarball = cache / f"samba-{spec.netbios.lower()}-{key}.tar.gz"
    with _file_lock(cache / f"samba-{spec.netbios.lower()}.lock"):
        if tarball.exists():
            return tarball
        staging_root = Path(tempfile.mkdtemp(prefix=f"samba-provision-{spec.netbios.lower()}-"))
        directory = staging_root / "dc"
        try:
            _provision(spec, directory, spec.staging_address)
            conf = directory / "etc" / "smb.conf"
            text = conf.read_text().replace(str(directory), _ROOT_MARK)
            conf.write_text(text.replace(f"{spec.staging_address}/8", f"{_IP_MARK}/8"))
            partial = tarball.with_suffix(".partial")
            with tarfile.open(partial, "w:gz") as archive:
                archive.add(
                    directory,
                    arcname="dc",
                    filter=lambda info: (
                        None if info.name.endswith(("ldapi", ".stdout")) or "/log." in info.name else info
                    ),
                )
            partial.rename(tarball)
            for stale in cache.glob(f"samba-{spec.netbios.lower()}-*.tar.gz"):
                if stale != tarball:  # provisioned by an older version of this file
                    stale.unlink(missing_ok=True)
        finally:
            shutil.rmtree(staging_root, ignore_errors=True)
    return tarball


def _restore(tarball: Path, parent: Path) -> None:
    """Extract a cached tarball (``dc`` and, for a pair, ``dc2``) into ``parent`` (emptied first)."""
    shutil.rmtree(parent, ignore_errors=True)
    parent.mkdir(parents=True)
    with tarfile.open(tarball, "r:gz") as archive:
        archive.extractall(parent, filter="tar")


def _set_services(directory: Path, services: str) -> None:
    """Rewrite the ``server services`` line of the DC's smb.conf. Returns None."""
    conf = directory / "etc" / "smb.conf"
    lines = [f"\tserver services = {services}" if line.strip().startswith("server services") else line
             for line in conf.read_text().splitlines()]
    conf.write_text("\n".join(lines) + "\n")


def start_samba_dc(spec: AdDomainSpec, address: str, run_root: Path, *, second: SecondDcSpec | None = None) -> SambaDC:
    """Restore (or provision) ``spec`` under ``run_root``, start it on ``address``, return it.

    With ``second``, the domain is restored with a second DC already joined (see
    ``start_second_dc``); this first DC then also runs the RPC server the second one
    replicates from. Accounts whose state is ``locked`` are locked out with failed binds
    after start. Raises RuntimeError when the address is taken or the DC does not become ready.
    """
    if port_in_use(address, 389):
        raise RuntimeError(f"{address}:389 is already in use (another test session?)")
    tarball = _cached_pair_tarball(spec, second) if second is not None else _cached_tarball(spec)
    parent = run_root / spec.netbios.lower()
    _restore(tarball, parent)
    directory = parent / "dc"
    conf = directory / "etc" / "smb.conf"
    conf.write_text(conf.read_text().replace(_ROOT_MARK, str(directory)).replace(_IP_MARK, address))
    second_directory = None
    if second is not None:
        second_directory = parent / "dc2"
        conf2 = second_directory / "etc" / "smb.conf"
        conf2.write_text(conf2.read_text().replace(_ROOT2_MARK, str(second_directory)))
        _set_services(directory, PAIR_FIRST_SERVICES)
    process = _start_process(directory)
    _wait_ready(process, address, directory)
    dc = SambaDC(spec=spec, address=address, directory=directory, process=process, second_directory=second_directory)
    try:
        for user in spec.users:
            if user.state == "locked":
                lock_out(dc, user)
    except Exception:
        dc.stop()
        raise
    return dc


# -- a second domain controller, really joined (samba-tool domain join ... DC) ----------------

_ROOT2_MARK = "@@SUPERCLOUD_ROOT2@@"
_IP2_MARK = "@@SUPERCLOUD_IP2@@"
#: The first DC of a pair also runs RPC (DRSUAPI: the second DC replicates from it), and
#: while the second one joins, CLDAP (finding the DC) and the KDC.
PAIR_FIRST_SERVICES = "ldap, rpc"
_JOIN_FIRST_SERVICES = "ldap, cldap, rpc, kdc"
SECOND_DC_SERVICES = "ldap"


@dataclasses.dataclass(frozen=True)
class SecondDcSpec:
    """A second DC of a domain: its host name and the addresses both DCs use while it joins."""

    host_name: str  # dc2-newham
    staging_address: str
    first_staging_address: str


def _cached_pair_tarball(spec: AdDomainSpec, second: SecondDcSpec) -> Path:
    """Return the tarball of ``spec`` with ``second`` joined as a second DC (``dc`` and ``dc2``).

    Joining writes to both DCs' databases (the new DC's account, its NTDS settings), so
    the pair is cached together, under its own lock. Without DNS, the join names the first
    DC by address (``--server``) and provisions no DNS (``--dns-backend=NONE``). The
    second DC presents the first DC's TLS certificate and key (one name, one CA, as a
    load-balanced ``dc-newham`` name would): Samba's self-made CA cannot sign another.
    """
    net = spec.netbios.lower()
    digest = hashlib.sha256((_cache_key(spec) + json.dumps(dataclasses.asdict(second))).encode()).hexdigest()[:20]
    cache = cache_dir()
    tarball = cache / f"samba-{net}-pair-{digest}.tar.gz"
    with _file_lock(cache / f"samba-{net}-pair.lock"):
        if tarball.exists():
            return tarball
        single = _cached_tarball(spec)
        staging_root = Path(tempfile.mkdtemp(prefix=f"samba-join-{net}-"))
        try:
            _restore(single, staging_root)
            first, joined = staging_root / "dc", staging_root / "dc2"
            conf = first / "etc" / "smb.conf"
            conf.write_text(conf.read_text().replace(_ROOT_MARK, str(first)).replace(_IP_MARK, second.first_staging_address))
            _set_services(first, _JOIN_FIRST_SERVICES)
            process = _start_process(first)
            try:
                _wait_ready(process, second.first_staging_address, first)
                _join(spec, second, joined)
            finally:
                stop_process(process)
            conf2 = joined / "etc" / "smb.conf"
            text = conf2.read_text()
            if "ldap server require strong auth" not in text:
                text = text.replace("[global]\n", "[global]\n\tldap server require strong auth = no\n", 1)
            conf2.write_text(text.replace(str(joined), _ROOT2_MARK).replace(f"{second.staging_address}/8", f"{_IP2_MARK}/8"))
            shutil.rmtree(joined / "private" / "tls", ignore_errors=True)
            shutil.copytree(first / "private" / "tls", joined / "private" / "tls")
            _set_services(first, "ldap")
            conf.write_text(conf.read_text().replace(str(first), _ROOT_MARK).replace(
                f"{second.first_staging_address}/8", f"{_IP_MARK}/8"))
            partial = tarball.with_suffix(".partial")
            with tarfile.open(partial, "w:gz") as archive:
                for name in ("dc", "dc2"):
                    archive.add(staging_root / name, arcname=name, filter=lambda info: (
                        None if info.name.endswith(("ldapi", ".stdout")) or "/log." in info.name else info
                    ))
            partial.rename(tarball)
            for stale in cache.glob(f"samba-{net}-pair-*.tar.gz"):
                if stale != tarball:
                    stale.unlink(missing_ok=True)
        finally:
            shutil.rmtree(staging_root, ignore_errors=True)
    return tarball


def _join(spec: AdDomainSpec, second: SecondDcSpec, directory: Path) -> None:
    """``samba-tool domain join <realm> DC`` into ``directory``; raise RuntimeError with its output."""
    for sub in ("run", "ncalrpc", "winbindd"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    options = [
        f"interfaces = {second.staging_address}/8", "bind interfaces only = yes", f"server services = {SECOND_DC_SERVICES}",
        f"pid directory = {directory}/run", f"ncalrpc dir = {directory}/ncalrpc",
        f"winbindd socket directory = {directory}/winbindd", f"log file = {directory}/log.%m",
        "ldap server require strong auth = no", f"netbios name = {second.host_name.upper()}",
        f"realm = {spec.realm}", f"workgroup = {spec.netbios}",
    ]
    result = subprocess.run(
        [_binary("samba-tool"), "domain", "join", spec.realm.lower(), "DC", "-U", "Administrator",
         f"--password={spec.admin_password}", f"--server={second.first_staging_address}", "--dns-backend=NONE",
         f"--targetdir={directory}", *[f"--option={o}" for o in options]],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"samba-tool domain join failed: {result.stdout[-1000:]} {result.stderr[-3000:]}")


def start_second_dc(first: SambaDC, address: str) -> SambaDC:
    """Start the second DC of ``first``'s domain (restored with it) on ``address``; return it.

    Raises RuntimeError when ``first`` was started without a second DC, the address is
    taken or the DC does not become ready.
    """
    if first.second_directory is None:
        raise RuntimeError(f"{first.spec.realm} was started without a second DC")
    if port_in_use(address, 389):
        raise RuntimeError(f"{address}:389 is already in use (another test session?)")
    directory = first.second_directory
    conf = directory / "etc" / "smb.conf"
    conf.write_text(conf.read_text().replace(_IP2_MARK, address))
    process = _start_process(directory)
    _wait_ready(process, address, directory)
    dc = SambaDC(spec=first.spec, address=address, directory=directory, process=process)
    replicate(first, dc)  # what changed on the first DC since the pair was cached
    return dc


def replicate(source: SambaDC, destination: SambaDC) -> str:
    """Pull the domain partition's changes from ``source`` into ``destination`` now; return samba-tool's report.

    ``samba-tool drs replicate --local`` (MS-DRSR IDL_DRSGetNCChanges, including secrets),
    on demand: without DNS, the DCs cannot find each other for scheduled replication.
    Raises RuntimeError with samba-tool's output on failure.
    """
    result = subprocess.run(
        [_binary("samba-tool"), "drs", "replicate", destination.address, source.address, source.spec.base_dn, "--local",
         "-s", str(destination.directory / "etc" / "smb.conf"), "-U", f"Administrator%{source.spec.admin_password}"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"samba-tool drs replicate failed: {result.stdout[-1000:]} {result.stderr[-2000:]}")
    return result.stdout.strip()


def lock_out(dc: SambaDC, user: AdUser) -> None:
    """Lock ``user`` out with LOCKOUT_THRESHOLD failed binds. Returns None."""
    server = ldap3.Server(dc.address, port=389, get_info=ldap3.NONE)
    for attempt in range(LOCKOUT_THRESHOLD):
        conn = ldap3.Connection(server, user=dc.spec.user_dn(user.sam), password=f"wrong-{attempt}-{user.password}")
        conn.bind()
        conn.unbind()


# -- the boroughs (SCENARIOS.md) ------------------------------------------------------

SERVICE_ACCOUNT = "svc-supercloud"
SERVICE_PASSWORD = "Svc-Directory-Read-2026!"
CAMDEN_PASSWORD = "Camden-Care-2026!"
NEWHAM_PASSWORD = "Newham-Discharge-2026!"

CAMDEN = AdDomainSpec(
    realm="CAMDEN.TEST",
    netbios="CAMDEN",
    host_name="dc-camden",
    staging_address="127.0.250.2",
    admin_password="Camden-Admin-2026!",
    users=(
        AdUser(SERVICE_ACCOUNT, SERVICE_PASSWORD, "Supercloud", "Service"),
        AdUser(
            "asmith", CAMDEN_PASSWORD, "Alice", "Smith", mail="alice.smith@camden.test",
            department="Adult Social Care", job_title="Social Worker", employee_id="CAM-10442",
            office="Crowndale Centre",
        ),
        AdUser("jleaver", CAMDEN_PASSWORD, "Jamie", "Leaver", mail="jamie.leaver@camden.test", state="disabled"),
        AdUser("pnew", CAMDEN_PASSWORD, "Priya", "New", mail="priya.new@camden.test", state="must_change"),
        AdUser("tlocked", CAMDEN_PASSWORD, "Tom", "Locked", mail="tom.locked@camden.test", state="locked"),
        AdUser("cexpired", CAMDEN_PASSWORD, "Chris", "Expired", mail="chris.expired@camden.test", state="expired"),
        AdUser("jpatel", CAMDEN_PASSWORD, "Jay", "Patel", mail="jay.patel@camden.test", department="Housing"),
        AdUser("wrongpw", CAMDEN_PASSWORD, "Wendy", "Wrong", mail="wendy.wrong@camden.test"),
        # an agency worker whose DN needs escaping: "CN=Smith\\, Jo (Agency),CN=Users,..."
        AdUser("jsmith", CAMDEN_PASSWORD, "Jo", "Smith", mail="jo.smith@camden.test", cn="Smith, Jo (Agency)"),
    ),
    groups=(
        AdGroup("Care Staff", ("Adult Social Care",)),
        AdGroup("Adult Social Care", ("asmith", "jsmith")),
        AdGroup("Discharge Team", ("asmith",)),
    ),
)  # fmt: skip

NEWHAM = AdDomainSpec(
    realm="NEWHAM.TEST",
    netbios="NEWHAM",
    host_name="dc-newham",
    staging_address="127.0.250.3",
    admin_password="Newham-Admin-2026!",
    users=(
        AdUser(SERVICE_ACCOUNT, SERVICE_PASSWORD, "Supercloud", "Service"),
        AdUser(
            "mokafor", NEWHAM_PASSWORD, "Mary", "Okafor", mail="mary.okafor@newham.test",
            department="Hospital Discharge", job_title="Discharge Coordinator", employee_id="NEW-2207",
        ),
        AdUser("jpatel", NEWHAM_PASSWORD, "Jay", "Patel", mail="jay.patel@newham.test", department="Parking"),
    ),
    groups=(
        AdGroup("Hospital Discharge Team", ("Discharge Coordinators",)),
        AdGroup("Discharge Coordinators", ("mokafor",)),
    ),
)  # fmt: skip


def _dc_fixture(spec: AdDomainSpec, last_octet: int, second: SecondDcSpec | None = None):  # type: ignore[no-untyped-def]
    @pytest.fixture(scope="session")
    def fixture(worker_id: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SambaDC]:
        if not binaries_available():
            peer_missing("Samba AD DC", HOW_TO_ENABLE)
        dc = start_samba_dc(
            spec, worker_address(last_octet, worker_id), tmp_path_factory.mktemp(f"samba-{spec.netbios.lower()}"),
            second=second,
        )
        try:
            yield dc
        finally:
            dc.stop()

    return fixture


NEWHAM_DC2 = SecondDcSpec(host_name="dc2-newham", staging_address="127.0.250.23", first_staging_address="127.0.250.13")

#: Session fixtures: import them into a conftest.py (``from tests.peers.samba import samba_camden``).
samba_camden = _dc_fixture(CAMDEN, 2)
samba_newham = _dc_fixture(NEWHAM, 3, NEWHAM_DC2)


@pytest.fixture(scope="session")
def samba_newham_dc2(samba_newham: SambaDC, worker_id: str) -> Iterator[SambaDC]:
    """Newham's second domain controller (joined to ``samba_newham``), on 127.0.<worker>.13."""
    dc = start_second_dc(samba_newham, worker_address(13, worker_id))
    try:
        yield dc
    finally:
        dc.stop()
