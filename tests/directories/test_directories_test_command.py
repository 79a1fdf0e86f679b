"""``supercloud directories test ORG``: one ✓/✗ line per check, against the real Samba AD DCs,
saying exactly what is wrong (and never printing a password)."""

from __future__ import annotations

import datetime as dt
import os
import socket
import ssl
import threading
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from broker.cli import cli
from tests.directories.broker_peers import (
    camden_source,
    export_secrets,
    hackney_source,
    newham_source,
    peer_organisations,
)
from tests.directories.ldap_peers import DEAD_PORT
from tests.peers.samba import SERVICE_PASSWORD, SambaDC
from tests.peers.slapd import SlapdServer

pytestmark = pytest.mark.peer("samba")

WRONG_ENV = "SUPERCLOUD_TEST_WRONG_LDAP_PASSWORD"
WRONG = "Not-The-Service-Password-9!"


@pytest.fixture
def run_test(settings_factory, samba_camden: SambaDC, samba_newham: SambaDC, slapd_hackney: SlapdServer):  # type: ignore[no-untyped-def]
    """Return run(camden overrides, *args) -> (Result, its lines) for ``directories test camden``."""

    def run(overrides: dict[str, Any], *args: str, organisation: str = "camden") -> tuple[Result, list[str]]:
        export_secrets()
        os.environ[WRONG_ENV] = WRONG
        document = settings_factory.document()
        document["organisations"] = peer_organisations(
            camden_source(samba_camden, **overrides), newham_source(samba_newham), hackney_source(slapd_hackney)
        )
        path = settings_factory.write(document)
        result = CliRunner().invoke(cli, ["--config", str(path), "directories", "test", organisation, *args], obj={})
        assert "Traceback" not in result.output
        assert SERVICE_PASSWORD not in result.output and WRONG not in result.output
        return result, result.output.splitlines()

    yield run
    os.environ.pop(WRONG_ENV, None)


def line(lines: list[str], start: str) -> str:
    found = [row.strip() for row in lines if row.strip().startswith(start)]
    assert found, f"no line starting {start!r} in {lines}"
    return found[0]


def test_a_good_directory_passes_every_check(run_test, samba_camden: SambaDC) -> None:
    result, lines = run_test({}, "--user", "asmith@camden.test")
    assert result.exit_code == 0, result.output
    url = f"ldaps://{samba_camden.address}:636"
    assert lines[0] == "camden-ad (active_directory, ldaps)"
    assert line(lines, f"✓ connect {url}:").endswith("ms")
    tls = line(lines, f"✓ TLS {url}:")
    assert "TLSv1.3" in tls or "TLSv1.2" in tls
    assert "DC-CAMDEN.camden.test" in tls and "trusted, issued for dc-camden.camden.test" in tls
    assert line(lines, f"✓ service account {url}:").endswith("bound as CN=svc-supercloud,CN=Users,DC=camden,DC=test")
    assert line(lines, "✓ base DN:") == "✓ base DN: DC=camden,DC=test readable"
    assert "asmith@camden.test: object id " in line(lines, "✓ lookup:") and "account active" in line(lines, "✓ lookup:")
    groups = line(lines, "✓ groups:")
    assert "Care Staff" in groups and "Adult Social Care" in groups and "Domain Users" in groups  # nested, primary
    assert not [row for row in lines if "✗" in row]


def test_member_of_mode_loads_the_group_graph_and_reads_groups_from_it(run_test) -> None:
    result, lines = run_test({"group_mode": "member_of"}, "--user", "asmith@camden.test")
    assert result.exit_code == 0, result.output
    graph = line(lines, "✓ group graph:")
    assert graph.startswith("✓ group graph: ") and " groups under DC=camden,DC=test, loaded in " in graph
    assert int(graph.split()[3]) >= 3  # at least the spec's Care Staff, Adult Social Care, Discharge Team
    groups = line(lines, "✓ groups:")
    assert "(member_of)" in groups
    assert "Care Staff" in groups and "Adult Social Care" in groups and "Domain Users" in groups  # nested, primary
    assert not [row for row in lines if "✗" in row]


def test_a_group_graph_that_cannot_be_read_is_named(run_test) -> None:
    missing = "OU=No Such Groups,DC=camden,DC=test"
    result, lines = run_test({"group_mode": "member_of", "group_base_dn": missing}, "--user", "asmith@camden.test")
    assert result.exit_code == 1
    failed = line(lines, "✗ group graph:")
    assert failed.startswith(f"✗ group graph: cannot be read under {missing}: ")
    assert failed.endswith("(sign-ins read groups live meanwhile)")


def test_group_graph_is_not_checked_in_other_modes(run_test) -> None:
    result, lines = run_test({}, "--user", "asmith@camden.test")
    assert result.exit_code == 0, result.output
    assert not [row for row in lines if "group graph" in row]


def test_a_sample_account_is_looked_up_without_user(run_test) -> None:
    result, lines = run_test({})
    assert result.exit_code == 0, result.output
    assert "account " in line(lines, "✓ lookup:")


def test_an_unknown_user_is_said_so(run_test) -> None:
    result, lines = run_test({}, "--user", "nobody-here@camden.test")
    assert result.exit_code == 1
    assert line(lines, "✗ lookup:") == "✗ lookup: no account has userPrincipalName = nobody-here@camden.test (or several do)"


def test_a_wrong_service_password_is_named(run_test, samba_camden: SambaDC) -> None:
    result, lines = run_test({"bind_password": {"env": WRONG_ENV}})
    assert result.exit_code == 1
    url = f"ldaps://{samba_camden.address}:636"
    assert line(lines, f"✓ TLS {url}:")  # reached, TLS fine: only the bind is wrong
    failed = line(lines, f"✗ service account {url}:")
    assert "bind as CN=svc-supercloud,CN=Users,DC=camden,DC=test refused" in failed and "invalidCredentials" in failed
    assert line(lines, "✗ directory:").endswith("sign-in for this organisation is unavailable")


def test_a_wrong_ca_is_named_with_the_certificate_shown(run_test, samba_camden: SambaDC, samba_newham: SambaDC) -> None:
    other_ca = samba_newham.ca_file  # Newham's CA configured for Camden's DC
    result, lines = run_test({"ca_file": str(other_ca)})
    assert result.exit_code == 1
    failed = line(lines, f"✗ TLS ldaps://{samba_camden.address}:636:")
    assert f"the server's certificate is not trusted by CA file {other_ca}" in failed
    assert "the server showed a certificate for DC-CAMDEN.camden.test issued by DC-CAMDEN.camden.test" in failed
    assert not [row for row in lines if "service account" in row]  # not attempted over an untrusted channel


def test_a_certificate_for_another_name_is_named(run_test, samba_camden: SambaDC) -> None:
    result, lines = run_test({"tls_server_name": "ldap.camden.test"})
    assert result.exit_code == 1
    failed = line(lines, f"✗ TLS ldaps://{samba_camden.address}:636:")
    assert "the server's certificate is not issued for ldap.camden.test" in failed
    assert "a certificate for DC-CAMDEN.camden.test" in failed


def test_a_stopped_server_is_named_and_the_next_one_checked(run_test, samba_camden: SambaDC) -> None:
    dead = f"ldaps://{samba_camden.address}:{DEAD_PORT}"
    live = f"ldaps://{samba_camden.address}:636"
    result, lines = run_test({"urls": [dead, live]}, "--user", "asmith@camden.test")
    assert result.exit_code == 1  # one DC down is something to fix
    assert line(lines, f"✗ connect {dead}:") == f"✗ connect {dead}: Connection refused (is the server running and listening there?)"
    assert line(lines, f"✓ service account {live}:")
    assert line(lines, "✓ lookup:")


def test_no_server_answering_says_the_organisation_is_unavailable(run_test, samba_camden: SambaDC) -> None:
    result, lines = run_test({"urls": [f"ldaps://{samba_camden.address}:{DEAD_PORT}"]})
    assert result.exit_code == 1
    assert line(lines, "✗ directory:") == "✗ directory: no server passed every check: sign-in for this organisation is unavailable"


def test_an_unknown_organisation_or_one_without_a_directory_is_refused(run_test) -> None:
    result, lines = run_test({}, organisation="atlantis")
    assert result.exit_code != 0 and "no organisation 'atlantis' in the configuration" in result.output
    result, lines = run_test({}, organisation="nhs")
    assert result.exit_code != 0 and "nhs has no LDAP or Active Directory directory" in result.output


class ExpiredTlsServer:
    """A TLS endpoint on loopback presenting an expired certificate from its own CA (what an
    LDAPS port whose certificate nobody renewed looks like to a client: the handshake fails
    before any LDAP is spoken)."""

    def __init__(self, folder: Path) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Camden Test Issuing CA")])
        now = dt.datetime.now(dt.UTC)
        ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(key.public_key())
              .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=30))
              .not_valid_after(now + dt.timedelta(days=30))
              .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(key, hashes.SHA256()))
        leaf = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, EXPIRED_NAME)]))
                .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(days=20)).not_valid_after(now - dt.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(EXPIRED_NAME)]), critical=False)
                .sign(key, hashes.SHA256()))
        self.ca_file = folder / "expired-ca.pem"
        self.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        chain, key_file = folder / "expired-cert.pem", folder / "expired-key.pem"
        chain.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(chain, key_file)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        self._listener.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                continue
            try:
                conn.settimeout(2)
                with self._context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except OSError:
                pass

    def close(self) -> None:
        self._stop.set()
        self._listener.close()


EXPIRED_NAME = "dc-expired.camden.test"


def test_an_expired_certificate_is_named(run_test, tmp_path: Path) -> None:
    server = ExpiredTlsServer(tmp_path)
    try:
        url = f"ldaps://127.0.0.1:{server.port}"
        result, lines = run_test({"urls": [url], "ca_file": str(server.ca_file), "tls_server_name": EXPIRED_NAME})
    finally:
        server.close()
    assert result.exit_code == 1
    failed = line(lines, f"✗ TLS {url}:")
    assert failed.startswith(f"✗ TLS {url}: the server's certificate has expired (certificate verify failed: certificate has expired)")
    assert f"the server showed a certificate for {EXPIRED_NAME} issued by Camden Test Issuing CA, expired on " in failed


def test_starttls_directory_with_its_first_dc_down(run_test, samba_newham: SambaDC) -> None:
    result, lines = run_test({}, "--user", "mokafor@newham.test", organisation="newham")
    assert result.exit_code == 1  # the first URL of Newham's configuration has nothing listening
    assert lines[0] == "newham-ad (active_directory, starttls)"
    assert line(lines, f"✗ connect ldap://{samba_newham.address}:{DEAD_PORT}:")
    tls = line(lines, f"✓ TLS ldap://{samba_newham.address}:389:")
    assert "(starttls)" in tls and "trusted, issued for dc-newham.newham.test" in tls
    assert "Discharge Coordinators" in line(lines, "✓ groups:") and "Hospital Discharge Team" in line(lines, "✓ groups:")


def test_a_server_that_accepts_but_never_answers_is_named(run_test, hung_server: str) -> None:
    url = hung_server.replace("ldap://", "ldaps://")
    result, lines = run_test({"urls": [url], "response_timeout_seconds": 1})
    assert result.exit_code == 1
    assert line(lines, f"✓ connect {url}:")  # TCP is accepted ...
    failed = line(lines, f"✗ TLS {url}:")  # ... but nothing answers the handshake
    assert failed.startswith(f"✗ TLS {url}: no TLS session could be set up") and "timed out" in failed
