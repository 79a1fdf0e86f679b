"""directories/ldap/wire.py encodes search requests to exactly the octets ldap3 (pyasn1) sends,
for every kind of filter the directories build, including hostile usernames; what it does
not encode it refuses (ldap3 then encodes it), never encodes differently."""

from __future__ import annotations

import ldap3
import pytest
from ldap3.operation.bind import bind_operation
from ldap3.operation.search import search_operation
from ldap3.protocol.rfc4511 import LDAPMessage, MessageID, ProtocolOp
from ldap3.utils.asn1 import encode

from directories.ldap.filters import any_of, any_of_bytes, in_chain_member_filter, user_filter
from directories.ldap.wire import Unsupported, encode_filter, encode_search, encode_simple_bind

HOSTILE = ["*", "*)(objectClass=*", ")(|(memberOf=*", "a\x00b", "\\2a", "Zoë Ünïcødé", "back\\slash", "  padded  ", "é" * 200]
FILTERS = [
    *(user_filter("user", "userPrincipalName", name) for name in HOSTILE),
    *(user_filter("inetOrgPerson", "mail", name) for name in HOSTILE),
    any_of("member", ["uid=rosa.khan,ou=people,dc=hackney,dc=test"]),
    any_of("member", [f"cn=group {i},ou=groups,dc=hackney,dc=test" for i in range(50)]),
    in_chain_member_filter("CN=Jo (Contractor),CN=Users,DC=camden,DC=test"),
    "(|" + in_chain_member_filter("CN=A\\, B,DC=x") + any_of_bytes("objectSid", [bytes(range(28))]) + ")",
    f"(&(objectClass=group){any_of_bytes('objectSid', [bytes([i] * 24) for i in range(100)])})",
    "(objectClass=*)",
    "(!(userAccountControl:1.2.840.113556.1.4.803:=2))",
    "(modifyTimestamp>=20260101000000Z)",
    "(uSNChanged<=12345)",
    "(cn~=smith)",
    "(cn:dn:2.5.13.5:=x)",
    "(:dn:2.5.13.5:=x)",
    "(:1.2.3:=x)",
    "(cn:=x)",
    "( cn = spaced )",
    "(cn=)",
]


def _ldap3(message_id: int, base: str, ldap_filter: str, attributes: list[str], scope: str, size_limit: int) -> bytes:
    request = search_operation(base, ldap_filter, {"base": ldap3.BASE, "subtree": ldap3.SUBTREE}[scope], ldap3.DEREF_ALWAYS,
                               attributes or [ldap3.NO_ATTRIBUTES], size_limit, 0, False, True, True, None, None, False)
    message = LDAPMessage()
    message["messageID"] = MessageID(message_id)
    message["protocolOp"] = ProtocolOp().setComponentByName("searchRequest", request)
    return bytes(encode(message))


@pytest.mark.parametrize("ldap_filter", FILTERS)
@pytest.mark.parametrize(
    ("message_id", "base", "attributes", "scope", "size_limit"),
    [
        (1, "dc=camden,dc=test", [], "subtree", 2),
        (127, "ou=people,dc=hackney,dc=test", ["cn", "objectGUID"], "subtree", 0),
        (128, "CN=Jo,CN=Users,DC=camden,DC=test", ["msDS-User-Account-Control-Computed"], "base", 0),
        (70_000, "dc=x," * 60 + "dc=test", [f"extensionAttribute{i}" for i in range(1, 16)], "subtree", 100_000),
        (2**31 - 1, "", ["*"], "base", 0),
    ],
)
def test_the_octets_are_ldap3s(ldap_filter: str, message_id: int, base: str, attributes: list[str], scope: str,
                               size_limit: int) -> None:
    mine = encode_search(message_id, base, ldap_filter, attributes, scope=scope, size_limit=size_limit)
    assert mine == _ldap3(message_id, base, ldap_filter, attributes, scope, size_limit)


@pytest.mark.parametrize(
    "ldap_filter",
    ["(cn=a*b)", "(cn=*a)", "(cn=a\\zz)", "(cn=a\\2)", "cn=a", "(cn=a", "(&)", "(!(a=b)(c=d))", "(cn=a)(cn=b)",
     "(c n=a)", "(cn:a:b:c:=x)", "(=x)", "(cn)"],
)
def test_what_it_does_not_encode_it_refuses(ldap_filter: str) -> None:
    with pytest.raises(Unsupported):
        encode_filter(ldap_filter)


def test_an_escaped_wildcard_is_a_literal_star_not_a_substring() -> None:
    # (mail=\2a) asks for the value "*" (RFC 4515 §3): an equality match, never presence.
    encoded = encode_filter(user_filter("inetOrgPerson", "mail", "*"))
    assert b"\x87" not in encoded and b"\xa4" not in encoded
    assert b"\x04\x01*" in encoded


@pytest.mark.parametrize("dn", ["uid=rosa.khan,ou=people,dc=hackney,dc=test", "CN=Jo (x)\\, y,DC=camden,DC=test", "cn=" + "é" * 300])
@pytest.mark.parametrize("password", [" !\"#$%&'()*+,-./0123456789:;<=>?@[\\]^_`{|}~AZaz", "a", "x" * 300, " spaced "])
@pytest.mark.parametrize("message_id", [1, 128, 99_999])
def test_a_simple_bind_is_ldap3s_octets(dn: str, password: str, message_id: int) -> None:
    request = bind_operation(3, ldap3.SIMPLE, dn, password, auto_encode=True)
    message = LDAPMessage()
    message["messageID"] = MessageID(message_id)
    message["protocolOp"] = ProtocolOp().setComponentByName("bindRequest", request)
    assert encode_simple_bind(message_id, dn, password) == bytes(encode(message))


@pytest.mark.parametrize("password", ["", "Ünïcødé-2026", "tab\there", "nul\x00", "nbsp\u00a0x"])
def test_a_password_saslprep_could_change_is_left_to_ldap3(password: str) -> None:
    # RFC 4013 maps or prohibits these (non-ASCII, controls): ldap3 prepares them as before.
    with pytest.raises(Unsupported):
        encode_simple_bind(1, "cn=x", password)


def _sign_ins_without_ldap3_encoding(directory, username: str, password: str, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Authenticate with ldap3's own search and bind encoders made unusable: every request must take the wire path."""
    from directories.ldap import operations

    try:  # warm up: the pool opens its connections (and binds the service account) through ldap3
        directory.authenticate(username, password)
    except Exception:  # noqa: BLE001 - refusals are what some callers test
        pass
    with monkeypatch.context() as patched:
        patched.setattr(operations.ldap3.Connection, "search", lambda *a, **k: pytest.fail("ldap3 encoded a search"))
        original_bind = operations.ldap3.Connection.bind

        def bind(conn, *args, **kwargs):  # type: ignore[no-untyped-def]
            if conn.authentication == ldap3.SIMPLE:
                pytest.fail("ldap3 encoded a simple bind")
            return original_bind(conn, *args, **kwargs)  # the anonymous reset after a refusal stays ldap3's

        patched.setattr(operations.ldap3.Connection, "bind", bind)
        return directory.authenticate(username, password)


def test_openldap_sign_in_is_answered_the_same_through_the_wire_encoder(hackney, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from tests.peers.slapd import HACKNEY_PASSWORD

    fast = _sign_ins_without_ldap3_encoding(hackney, "rkhan", HACKNEY_PASSWORD, monkeypatch)
    from directories.ldap import wire

    monkeypatch.setattr(wire, "encode_search", lambda *a, **k: (_ for _ in ()).throw(wire.Unsupported("test: ldap3 path")))
    monkeypatch.setattr(wire, "encode_simple_bind", lambda *a, **k: (_ for _ in ()).throw(wire.Unsupported("test: ldap3 path")))
    slow = hackney.authenticate("rkhan", HACKNEY_PASSWORD)
    assert fast == slow
    assert fast.groups  # nested groups were found through several encoded searches


def test_active_directory_sign_in_is_answered_the_same_through_the_wire_encoder(camden, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from tests.peers.samba import CAMDEN_PASSWORD

    fast = _sign_ins_without_ldap3_encoding(camden, "asmith@camden.test", CAMDEN_PASSWORD, monkeypatch)
    from directories.ldap import wire

    monkeypatch.setattr(wire, "encode_search", lambda *a, **k: (_ for _ in ()).throw(wire.Unsupported("test: ldap3 path")))
    monkeypatch.setattr(wire, "encode_simple_bind", lambda *a, **k: (_ for _ in ()).throw(wire.Unsupported("test: ldap3 path")))
    slow = camden.authenticate("asmith@camden.test", CAMDEN_PASSWORD)
    assert fast == slow
    assert fast.groups  # in-chain + primary group search, encoded here


def test_an_injection_attempt_finds_no_one_through_the_wire_encoder(hackney, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from directories import DirectoryError, DirectoryErrorCode
    from tests.peers.slapd import HACKNEY_PASSWORD

    for name in ("*", "*)(objectClass=*", ")(|(mail=*", "\\2a"):
        with pytest.raises(DirectoryError) as caught:
            _sign_ins_without_ldap3_encoding(hackney, name, HACKNEY_PASSWORD, monkeypatch)
        assert caught.value.code is DirectoryErrorCode.INVALID_CREDENTIALS


def test_a_wrong_ad_password_through_the_wire_bind_keeps_its_sub_code_and_no_identity(camden, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from directories import DirectoryError, DirectoryErrorCode
    from tests.peers.samba import CAMDEN_PASSWORD

    with pytest.raises(DirectoryError) as caught:
        _sign_ins_without_ldap3_encoding(camden, "asmith@camden.test", "Wrong-Password-1", monkeypatch)
    assert caught.value.code is DirectoryErrorCode.INVALID_CREDENTIALS
    assert "52e" in caught.value.detail  # AD's sub-code for a wrong password reached the audit detail
    # The pooled auth connection was reset (anonymous): the next person's sign-in is theirs alone.
    record = _sign_ins_without_ldap3_encoding(camden, "jpatel@camden.test", CAMDEN_PASSWORD, monkeypatch)
    assert record.username.lower().startswith("jpatel")
