"""``supercloud directories test ORG``: one ✓/✗ line per check, against the real Samba AD DCs,
saying exactly what is wrong (and never printing a password)."""

from __future__ import annotations

import os
from typing import Any

import pytest
from click.testing import CliRunner, Result

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
