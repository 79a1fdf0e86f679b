"""Hackney's OpenLDAP (a real slapd): nested groups expanded by the client, attacks, bind counting."""

from __future__ import annotations

import uuid

import pytest

from directories import AccountStatus, DirectoryError, DirectoryErrorCode
from directories.ldap import LdapDirectory
from tests.directories.ldap_peers import hackney_settings
from tests.peers.slapd import HACKNEY, HACKNEY_PASSWORD, SlapdServer

pytestmark = pytest.mark.peer("slapd")


def fails_with(directory: LdapDirectory, username: str, password: str) -> DirectoryError:
    with pytest.raises(DirectoryError) as info:
        directory.authenticate(username, password)
    return info.value


def test_school_admissions_officer_signs_in(hackney: LdapDirectory) -> None:
    record = hackney.authenticate("rkhan", HACKNEY_PASSWORD)
    assert record.directory_id == "hackney-ldap" and record.username == "rkhan"
    assert uuid.UUID(record.object_id)  # entryUUID
    assert record.status is AccountStatus.ACTIVE
    assert record.attributes == {
        "name": "Rosa Khan",
        "given_name": "Rosa",
        "family_name": "Khan",
        "email": "rosa.khan@hackney.test",
        "employee_id": "HAC-3310",
        "department": "Admissions",
        "job_title": "School Admissions Officer",
    }


def test_nested_groups_with_a_cycle_are_each_reported_once(hackney: LdapDirectory) -> None:
    record = hackney.authenticate("rkhan", HACKNEY_PASSWORD)
    names = [g.name for g in record.groups]
    # Admissions Officers ⊂ Admissions ⊂ Education Staff; Cycle A ⊂ Cycle B ⊂ Cycle A
    assert names == ["Admissions", "Admissions Officers", "Cycle A", "Cycle B", "Education Staff"]
    assert all(uuid.UUID(g.id) for g in record.groups)


def test_nesting_depth_is_bounded(slapd_hackney: SlapdServer, build) -> None:  # type: ignore[no-untyped-def]
    shallow = build(hackney_settings(slapd_hackney, group_max_depth=1))
    assert [g.name for g in shallow.authenticate("rkhan", HACKNEY_PASSWORD).groups] == [
        "Admissions Officers",
        "Cycle A",
    ]


@pytest.mark.parametrize("password", ["", " ", "   \t"])
def test_empty_password_sends_no_bind_to_the_server(
    hackney: LdapDirectory, slapd_hackney: SlapdServer, password: str
) -> None:
    hackney.lookup("rkhan")  # open the service connection first
    before = slapd_hackney.bind_requests()
    error = fails_with(hackney, "rkhan", password)
    assert error.code is DirectoryErrorCode.EMPTY_PASSWORD
    assert slapd_hackney.bind_requests() == before
    # control: a wrong password is one bind on the server, so the counter does see binds
    fails_with(hackney, "rkhan", "Wrong-Password-1")
    assert slapd_hackney.bind_requests() == before + 1


def test_unknown_user_costs_the_server_one_bind_like_a_known_one(
    hackney: LdapDirectory, slapd_hackney: SlapdServer
) -> None:
    hackney.lookup("rkhan")
    start = slapd_hackney.bind_requests()
    assert fails_with(hackney, "rkhan", "Wrong-Password-1").code is DirectoryErrorCode.INVALID_CREDENTIALS
    after_known = slapd_hackney.bind_requests()
    assert fails_with(hackney, "no-such-person", "Wrong-Password-1").code is DirectoryErrorCode.INVALID_CREDENTIALS
    after_unknown = slapd_hackney.bind_requests()
    assert after_known - start == after_unknown - after_known == 1


@pytest.mark.parametrize("username", ["*)(uid=*))(|(uid=*", "admin*", "*", "rkhan)(uid=*", "*)(|(objectClass=*"])
def test_filter_injection_is_inert(hackney: LdapDirectory, username: str) -> None:
    # admin1 exists with this very password: an unescaped "admin*" would sign in as admin1
    assert fails_with(hackney, username, HACKNEY_PASSWORD).code is DirectoryErrorCode.INVALID_CREDENTIALS
    assert hackney.lookup(username) is None
    assert hackney.health()[0].total_failures == 0


def test_the_real_admin1_still_works(hackney: LdapDirectory) -> None:
    assert hackney.authenticate("admin1", HACKNEY_PASSWORD).attributes["email"] == "ada.admin@hackney.test"


def test_wrong_password_and_unknown_user(hackney: LdapDirectory) -> None:
    assert fails_with(hackney, "rkhan", "Wrong-Password-1").code is DirectoryErrorCode.INVALID_CREDENTIALS
    assert fails_with(hackney, "nobody", HACKNEY_PASSWORD).code is DirectoryErrorCode.INVALID_CREDENTIALS
    assert hackney.lookup("nobody") is None


def test_never_binds_as_a_dn_typed_by_the_user(hackney: LdapDirectory) -> None:
    # a DN instead of a uid is just a username that matches nobody
    error = fails_with(hackney, HACKNEY.person_dn("rkhan"), HACKNEY_PASSWORD)
    assert error.code is DirectoryErrorCode.INVALID_CREDENTIALS


def test_lookup_returns_groups_and_status(hackney: LdapDirectory) -> None:
    record = hackney.lookup("jpatel")
    assert record is not None
    assert [g.name for g in record.groups] == ["Libraries"]
    assert record.attributes["email"] == "jay.patel@hackney.test"
