"""A real OpenLDAP slapd for the test suite: Hackney's directory, on loopback.

``start_slapd(spec, address, run_dir)`` writes a slapd.conf (core, cosine, inetorgperson,
nis schemas; back_mdb with the memberof and refint overlays), checks it with slaptest,
starts slapd on ``address:389`` and loads the entries over LDAP (``slapadd``
would bypass the memberof overlay). slapd starts in well under a second, so nothing is
cached. ``SlapdServer.bind_requests()`` reads back_monitor's bind counter, so tests can
observe the binds the server really received.
"""

from __future__ import annotations

import dataclasses
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import ldap3
import pytest

from tests.peers import peer_missing
from tests.peers.samba import find_binary, port_in_use, stop_process, worker_address

HOW_TO_ENABLE = "install slapd (see .ci/apt-packages-directories.txt)"
READY_TIMEOUT_SECONDS = 15.0
SCHEMA_DIR = Path("/etc/ldap/schema")
MODULE_DIR = Path("/usr/lib/ldap")


@dataclasses.dataclass(frozen=True)
class LdapPerson:
    """An inetOrgPerson under ou=people."""

    uid: str
    password: str
    given_name: str
    surname: str
    mail: str
    title: str | None = None
    ou: str | None = None
    employee_number: str | None = None


@dataclasses.dataclass(frozen=True)
class LdapGroup:
    """A groupOfNames under ou=groups; ``members`` name people (uid) or groups (cn)."""

    cn: str
    members: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class LdapDirectorySpec:
    """The tree to load; ``extra_members`` are added after every group exists (for cycles)."""

    suffix: str
    admin_password: str
    service_password: str
    people: tuple[LdapPerson, ...]
    groups: tuple[LdapGroup, ...]
    extra_members: tuple[tuple[str, str], ...] = ()  # (group cn, member cn or uid)

    @property
    def admin_dn(self) -> str:
        """The rootdn."""
        return f"cn=admin,{self.suffix}"

    @property
    def service_dn(self) -> str:
        """The read-only service account the broker binds as."""
        return f"cn=svc-supercloud,ou=services,{self.suffix}"

    def person_dn(self, uid: str) -> str:
        """Return the DN of person ``uid``."""
        return f"uid={uid},ou=people,{self.suffix}"

    def group_dn(self, cn: str) -> str:
        """Return the DN of group ``cn``."""
        return f"cn={cn},ou=groups,{self.suffix}"

    def member_dn(self, name: str) -> str:
        """Return the DN of a member named by uid (a person) or cn (a group)."""
        if any(p.uid == name for p in self.people):
            return self.person_dn(name)
        return self.group_dn(name)


@dataclasses.dataclass
class SlapdServer:
    """A running slapd."""

    spec: LdapDirectorySpec
    address: str
    directory: Path
    process: subprocess.Popen[bytes]
    _monitor: ldap3.Connection | None = dataclasses.field(default=None, repr=False)

    @property
    def url(self) -> str:
        """``ldap://address:389``."""
        return f"ldap://{self.address}:389"

    def admin_connection(self) -> ldap3.Connection:
        """Return a new plain-LDAP connection bound as the rootdn (for tests that change entries)."""
        return ldap3.Connection(ldap3.Server(self.address, port=389, get_info=ldap3.NONE), user=self.spec.admin_dn,
                                password=self.spec.admin_password, auto_bind=True)

    def bind_requests(self) -> int:
        """Return how many BIND requests slapd has received so far (back_monitor's counter).

        Reads cn=Bind,cn=Operations,cn=Monitor over a connection bound once as the rootdn,
        so reading the counter does not change it.
        """
        if self._monitor is None:
            self._monitor = ldap3.Connection(
                ldap3.Server(self.address, port=389, get_info=ldap3.NONE),
                user=self.spec.admin_dn,
                password=self.spec.admin_password,
                auto_bind=True,
            )
        self._monitor.search(
            "cn=Bind,cn=Operations,cn=Monitor",
            "(objectClass=*)",
            search_scope=ldap3.BASE,
            attributes=["monitorOpInitiated"],
        )
        return int(self._monitor.response[0]["raw_attributes"]["monitorOpInitiated"][0])

    def stop(self) -> None:
        """Stop the slapd this helper started (by pid). Returns None."""
        if self._monitor is not None:
            self._monitor.unbind()
            self._monitor = None
        stop_process(self.process)


def binaries_available() -> bool:
    """Return True when slapd and slaptest are installed with the schemas and modules we use."""
    return bool(find_binary("slapd") and find_binary("slaptest")) and (MODULE_DIR / "back_mdb.la").exists()


def _config(spec: LdapDirectorySpec, directory: Path) -> str:
    schemas = "\n".join(f"include {SCHEMA_DIR / name}.schema" for name in ("core", "cosine", "inetorgperson", "nis"))
    return f"""{schemas}
modulepath {MODULE_DIR}
moduleload back_mdb
moduleload memberof
moduleload refint
moduleload ppolicy
pidfile {directory}/slapd.pid
argsfile {directory}/slapd.args

database mdb
suffix "{spec.suffix}"
rootdn "{spec.admin_dn}"
rootpw {spec.admin_password}
directory {directory}/data
maxsize 67108864
overlay memberof
overlay refint
refint_attributes member
overlay ppolicy
access to attrs=userPassword
    by self write
    by anonymous auth
    by * none
access to *
    by dn.exact="{spec.service_dn}" read
    by self read
    by * none

database monitor
access to *
    by dn.exact="{spec.admin_dn}" read
    by * none
"""


def _entries(spec: LdapDirectorySpec) -> list[tuple[str, list[str], dict[str, object]]]:
    dc = spec.suffix.split(",")[0].split("=")[1]
    entries: list[tuple[str, list[str], dict[str, object]]] = [
        (spec.suffix, ["top", "dcObject", "organization"], {"dc": dc, "o": f"London Borough of {dc.title()}"}),
    ]
    for ou in ("people", "groups", "services"):
        entries.append((f"ou={ou},{spec.suffix}", ["top", "organizationalUnit"], {"ou": ou}))
    entries.append(
        (
            spec.service_dn,
            ["top", "person", "simpleSecurityObject"],
            {"cn": "svc-supercloud", "sn": "Service", "userPassword": spec.service_password},
        )
    )
    for person in spec.people:
        attributes: dict[str, object] = {
            "uid": person.uid,
            "cn": f"{person.given_name} {person.surname}",
            "givenName": person.given_name,
            "sn": person.surname,
            "mail": person.mail,
            "userPassword": person.password,
        }
        if person.title:
            attributes["title"] = person.title
        if person.ou:
            attributes["ou"] = person.ou
        if person.employee_number:
            attributes["employeeNumber"] = person.employee_number
        entries.append((spec.person_dn(person.uid), ["top", "inetOrgPerson"], attributes))
    for group in spec.groups:
        members = [spec.member_dn(m) for m in group.members]
        entries.append((spec.group_dn(group.cn), ["top", "groupOfNames"], {"cn": group.cn, "member": members}))
    return entries


def _wait_ready(process: subprocess.Popen[bytes], address: str, directory: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"slapd exited: {(directory / 'slapd.log').read_text(errors='replace')[-2000:]}")
        try:
            conn = ldap3.Connection(
                ldap3.Server(address, port=389, get_info=ldap3.NONE, connect_timeout=0.5), auto_bind=True
            )
            conn.unbind()
            return
        except Exception:  # noqa: BLE001 - not listening yet
            time.sleep(0.05)
    stop_process(process)
    raise RuntimeError(f"slapd on {address} not ready within {READY_TIMEOUT_SECONDS} s")


def start_slapd(spec: LdapDirectorySpec, address: str, run_dir: Path) -> SlapdServer:
    """Write the config, start slapd on ``address:389``, load ``spec``; return the server.

    Raises RuntimeError when the address is taken, the config is invalid or loading fails.
    """
    if port_in_use(address, 389):
        raise RuntimeError(f"{address}:389 is already in use (another test session?)")
    (run_dir / "data").mkdir(parents=True, exist_ok=True)
    conf = run_dir / "slapd.conf"
    conf.write_text(_config(spec, run_dir))
    check = subprocess.run(
        [find_binary("slaptest") or "slaptest", "-f", str(conf), "-u"], capture_output=True, text=True, check=False
    )
    if check.returncode != 0:
        raise RuntimeError(f"slaptest rejected the config: {check.stderr[-2000:]}")
    with open(run_dir / "slapd.log", "wb") as log:
        process = subprocess.Popen(
            [find_binary("slapd") or "slapd", "-f", str(conf), "-h", f"ldap://{address}:389/", "-d", "0"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    server = SlapdServer(spec=spec, address=address, directory=run_dir, process=process)
    try:
        _wait_ready(process, address, run_dir)
        _load(spec, address)
    except Exception:
        server.stop()
        raise
    return server


def _load(spec: LdapDirectorySpec, address: str) -> None:
    conn = ldap3.Connection(
        ldap3.Server(address, port=389, get_info=ldap3.NONE),
        user=spec.admin_dn,
        password=spec.admin_password,
        auto_bind=True,
    )
    try:
        for dn, classes, attributes in _entries(spec):
            if not conn.add(dn, classes, attributes):
                raise RuntimeError(f"add {dn} failed: {conn.result}")
        for group, member in spec.extra_members:
            if not conn.modify(spec.group_dn(group), {"member": [(ldap3.MODIFY_ADD, [spec.member_dn(member)])]}):
                raise RuntimeError(f"add {member} to {group} failed: {conn.result}")
    finally:
        conn.unbind()


# -- Hackney (SCENARIOS.md) -------------------------------------------------------------

HACKNEY_PASSWORD = "Hackney-Admissions-2026!"
HACKNEY = LdapDirectorySpec(
    suffix="dc=hackney,dc=test",
    admin_password="Hackney-Root-2026!",
    service_password="Svc-Hackney-Read-2026!",
    people=(
        LdapPerson(
            "rkhan", HACKNEY_PASSWORD, "Rosa", "Khan", "rosa.khan@hackney.test",
            title="School Admissions Officer", ou="Admissions", employee_number="HAC-3310",
        ),
        LdapPerson("jpatel", HACKNEY_PASSWORD, "Jay", "Patel", "jay.patel@hackney.test", title="Librarian"),
        LdapPerson("admin1", HACKNEY_PASSWORD, "Ada", "Admin", "ada.admin@hackney.test"),
    ),
    groups=(
        LdapGroup("Admissions Officers", ("rkhan",)),
        LdapGroup("Admissions", ("Admissions Officers",)),
        LdapGroup("Education Staff", ("Admissions",)),
        LdapGroup("Cycle A", ("rkhan",)),
        LdapGroup("Cycle B", ("Cycle A",)),
        LdapGroup("Libraries", ("jpatel",)),
    ),
    extra_members=(("Cycle A", "Cycle B"),),
)  # fmt: skip


@pytest.fixture(scope="session")
def slapd_hackney(worker_id: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlapdServer]:
    """Hackney's OpenLDAP on 127.0.<worker>.4:389 for the whole session (stopped at the end)."""
    if not binaries_available():
        peer_missing("OpenLDAP slapd", HOW_TO_ENABLE)
    server = start_slapd(HACKNEY, worker_address(4, worker_id), tmp_path_factory.mktemp("slapd-hackney"))
    try:
        yield server
    finally:
        server.stop()
