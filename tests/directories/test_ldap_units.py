"""Unit tests of the LDAP building blocks: filters, values, AD status, groups walk."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from ldap3.utils.conv import escape_filter_chars

from directories import AccountStatus, DirectoryError, DirectoryErrorCode
from directories.ldap.attributes import (
    decode_value,
    domain_sid_and_rid,
    guid_to_str,
    map_attributes,
    sid_to_bytes,
    sid_to_str,
    sid_with_rid,
)
from directories.ldap.filters import check_username, escape_bytes, escape_value, in_chain_member_filter, user_filter
from directories.ldap.groups import RecursiveGroups
from directories.ldap.operations import Entry
from directories.ldap.status import ad_account_status, ad_bind_failure, filetime_to_datetime, ppolicy_account_status

NOW = dt.datetime(2026, 11, 28, 9, 0, tzinfo=dt.UTC)


def filetime(when: dt.datetime) -> int:
    return int((when - dt.datetime(1601, 1, 1, tzinfo=dt.UTC)).total_seconds() * 10_000_000)


# -- filters (RFC 4515) -------------------------------------------------------------


@pytest.mark.parametrize(
    "hostile",
    ["*)(uid=*))(|(uid=*", "admin*", "*", "a\\2a", "x)(objectClass=*", "nul\x00byte", "(|(uid=*))"],
)
def test_hostile_usernames_cannot_change_the_filter(hostile: str) -> None:
    built = user_filter("inetOrgPerson", "uid", hostile)
    value = built[len("(&(objectClass=inetOrgPerson)(uid=") : -2]
    assert not set(value) & set("*()\x00"), built
    # every backslash starts an escape of exactly two hex digits
    assert all(value[i + 1 : i + 3].isalnum() for i, ch in enumerate(value) if ch == "\\")
    assert value == escape_filter_chars(hostile)  # agrees with ldap3's own escaping


def test_wildcards_are_escaped_not_expanded() -> None:
    assert escape_value("admin*") == r"admin\2a"
    assert user_filter("user", "sAMAccountName", "admin*") == (
        r"(&(objectCategory=person)(objectClass=user)(sAMAccountName=admin\2a))"
    )


def test_non_ascii_names_pass_through() -> None:
    assert escape_value("zoë.o'brien") == "zoë.o'brien"


def test_binary_values_are_fully_escaped() -> None:
    assert escape_bytes(b"\x01\x05*(") == r"\01\05\2a\28"


def test_dn_in_in_chain_filter_is_escaped() -> None:
    assert in_chain_member_filter("CN=Smith\\, Jo (ASC),CN=Users,DC=camden,DC=test") == (
        r"(&(objectClass=group)(member:1.2.840.113556.1.4.1941:=CN=Smith\5c, Jo \28ASC\29,CN=Users,DC=camden,DC=test))"
    )


@pytest.mark.parametrize("bad", ["", "   ", "\t", "a" * 257, "bob\nsmith", "nul\x00", None, 42])
def test_unsearchable_usernames_are_refused(bad: object) -> None:
    with pytest.raises(DirectoryError) as info:
        check_username(bad)
    assert info.value.code is DirectoryErrorCode.INVALID_CREDENTIALS


# -- binary values ----------------------------------------------------------------------


def test_object_guid_uses_microsoft_byte_order() -> None:
    raw = bytes.fromhex("7ec0831b644e7448a9f8d6622fec4cce")
    assert guid_to_str(raw) == "1b83c07e-4e64-4874-a9f8-d6622fec4cce"
    assert decode_value("objectGUID", raw) == guid_to_str(raw)
    with pytest.raises(ValueError):
        guid_to_str(raw[:15])


def test_sid_round_trip_and_primary_group() -> None:
    text = "S-1-5-21-399283740-1554228687-1772355858-1108"
    raw = sid_to_bytes(text)
    assert sid_to_str(raw) == text
    assert decode_value("objectSid", raw) == text
    domain, rid = domain_sid_and_rid(raw)
    assert rid == 1108
    assert sid_to_str(sid_with_rid(domain, 513)) == "S-1-5-21-399283740-1554228687-1772355858-513"
    with pytest.raises(ValueError):
        sid_to_str(raw[:-1])


def test_attribute_mapping() -> None:
    raw = {
        "displayName": [b"Alice Smith"],
        "MAIL": [b"alice.smith@camden.test"],
        "extensionAttribute7": [b"discharge-team"],
        "proxyAddresses": [b"smtp:a@camden.test", b"SMTP:alice.smith@camden.test"],
        "objectGUID": [bytes.fromhex("7ec0831b644e7448a9f8d6622fec4cce")],
        "photo": [b"\xff\xd8\xff"],
    }
    mapped = map_attributes(
        raw,
        {
            "name": "displayName",
            "email": "mail",
            "extension_attribute_7": "extensionAttribute7",
            "addresses": "proxyAddresses",
            "guid": "objectGUID",
            "photo": "photo",
            "department": "department",
        },
    )
    assert mapped == {
        "name": "Alice Smith",
        "email": "alice.smith@camden.test",
        "extension_attribute_7": "discharge-team",
        "addresses": ("smtp:a@camden.test", "SMTP:alice.smith@camden.test"),
        "guid": "1b83c07e-4e64-4874-a9f8-d6622fec4cce",
        "photo": "ffd8ff",
    }


# -- AD status ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subcode", "code"),
    [
        ("525", DirectoryErrorCode.INVALID_CREDENTIALS),
        ("52e", DirectoryErrorCode.INVALID_CREDENTIALS),
        ("530", DirectoryErrorCode.LOGON_NOT_PERMITTED),
        ("531", DirectoryErrorCode.LOGON_NOT_PERMITTED),
        ("532", DirectoryErrorCode.PASSWORD_EXPIRED),
        ("533", DirectoryErrorCode.ACCOUNT_DISABLED),
        ("701", DirectoryErrorCode.ACCOUNT_EXPIRED),
        ("773", DirectoryErrorCode.PASSWORD_MUST_CHANGE),
        ("775", DirectoryErrorCode.ACCOUNT_LOCKED),
    ],
)
def test_ad_bind_subcodes(subcode: str, code: DirectoryErrorCode) -> None:
    diagnostic = f"80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data {subcode}, v1db1"
    error = ad_bind_failure("camden-ad", diagnostic)
    assert error.code is code
    assert f"({subcode})" in error.detail and error.detail.startswith("camden-ad")


@pytest.mark.parametrize("diagnostic", ["", "garbage", "data 999, v1", "data 52e0"])
def test_unknown_ad_subcodes_fail_closed(diagnostic: str) -> None:
    assert ad_bind_failure("camden-ad", diagnostic).code is DirectoryErrorCode.INVALID_CREDENTIALS


def ad_entry(**values: int) -> dict[str, list[bytes]]:
    raw = {
        "userAccountControl": [b"512"],
        "accountExpires": [b"9223372036854775807"],
        "pwdLastSet": [b"134403034244550260"],
    }
    raw.update({name.replace("_", "-"): [str(v).encode()] for name, v in values.items()})
    return raw


@pytest.mark.parametrize(
    ("values", "status"),
    [
        ({}, AccountStatus.ACTIVE),
        ({"userAccountControl": 514}, AccountStatus.DISABLED),
        ({"accountExpires": filetime(NOW - dt.timedelta(minutes=1))}, AccountStatus.EXPIRED),
        ({"accountExpires": filetime(NOW + dt.timedelta(days=1))}, AccountStatus.ACTIVE),
        ({"accountExpires": 0}, AccountStatus.ACTIVE),
        ({"msDS_User_Account_Control_Computed": 16}, AccountStatus.LOCKED),
        ({"lockoutTime": 134403034245448450}, AccountStatus.LOCKED),
        # the computed attribute is authoritative: lockout duration already over
        ({"lockoutTime": 134403034245448450, "msDS_User_Account_Control_Computed": 0}, AccountStatus.ACTIVE),
        ({"pwdLastSet": 0, "msDS_User_Account_Control_Computed": 0x800000}, AccountStatus.PASSWORD_MUST_CHANGE),
        ({"msDS_User_Account_Control_Computed": 0x800000}, AccountStatus.PASSWORD_EXPIRED),
        # precedence: disabled beats everything else
        ({"userAccountControl": 514, "pwdLastSet": 0, "lockoutTime": 5}, AccountStatus.DISABLED),
    ],
)
def test_ad_account_status(values: dict[str, int], status: AccountStatus) -> None:
    assert ad_account_status(ad_entry(**values), NOW) is status


def test_unreadable_account_control_fails_closed() -> None:
    assert ad_account_status({}, NOW) is AccountStatus.DISABLED
    assert ad_account_status({"userAccountControl": [b"junk"]}, NOW) is AccountStatus.DISABLED


def test_filetime() -> None:
    assert filetime_to_datetime(0) is None
    assert filetime_to_datetime(0x7FFFFFFFFFFFFFFF) is None
    assert filetime_to_datetime(filetime(NOW)) == NOW


def test_ppolicy_status() -> None:
    assert ppolicy_account_status({}) is AccountStatus.ACTIVE
    assert ppolicy_account_status({"pwdAccountLockedTime": [b"000001010000Z"]}) is AccountStatus.LOCKED
    assert ppolicy_account_status({"pwdReset": [b"TRUE"]}) is AccountStatus.PASSWORD_MUST_CHANGE


# -- client-side group expansion ------------------------------------------------------


class FakeGroupConn:
    """Answers ``(member=...)`` searches from a dict of group DN -> member DNs."""

    def __init__(self, groups: dict[str, list[str]]) -> None:
        self.groups = groups
        self.searches = 0
        self.result: dict[str, object] = {}
        self.response: list[dict[str, object]] = []

    def search(self, base, ldap_filter, search_scope, attributes, size_limit):  # type: ignore[no-untyped-def]
        self.searches += 1
        wanted = {part.rstrip(")").lower() for part in ldap_filter.split("(member=")[1:]}
        self.response = [
            {
                "type": "searchResEntry",
                "dn": dn,
                "raw_attributes": {
                    "cn": [dn.split(",")[0][3:].encode()],
                    "entryUUID": [str(uuid.uuid5(uuid.NAMESPACE_DNS, dn)).encode()],
                },
            }
            for dn, members in self.groups.items()
            if wanted & {m.lower() for m in members}
        ]
        self.result = {"result": 0, "description": "success"}
        return True


def test_recursive_groups_survive_a_cycle() -> None:
    # u ∈ a, a ∈ b, b ∈ c, c ∈ a: a membership cycle
    conn = FakeGroupConn(
        {"cn=a,ou=g": ["uid=u,ou=p", "cn=c,ou=g"], "cn=b,ou=g": ["cn=a,ou=g"], "cn=c,ou=g": ["cn=b,ou=g"]}
    )
    groups = RecursiveGroups("ou=g", max_depth=10).groups(conn, Entry("uid=u,ou=p", {}))  # type: ignore[arg-type]
    assert [g.name for g in groups] == ["a", "b", "c"]
    assert conn.searches == 4  # u -> a -> b -> c -> (a again: nothing new, walk ends)


def test_recursive_groups_stop_at_the_depth_limit() -> None:
    chain = {f"cn=g{i},ou=g": [f"cn=g{i - 1},ou=g" if i else "uid=u,ou=p"] for i in range(30)}
    groups = RecursiveGroups("ou=g", max_depth=3).groups(FakeGroupConn(chain), Entry("uid=u,ou=p", {}))  # type: ignore[arg-type]
    assert [g.name for g in groups] == ["g0", "g1", "g2"]
