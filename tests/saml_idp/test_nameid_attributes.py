"""NameIDs (persistent pairwise, transient, email only where configured) and attribute release
by policy, under the SP's names and formats."""

from __future__ import annotations

import pytest
from saml2.response import StatusInvalidNameidPolicy
from saml2.saml import NAMEID_FORMAT_EMAILADDRESS, NAMEID_FORMAT_PERSISTENT, NAMEID_FORMAT_TRANSIENT

from tests.saml_idp.conftest import build_env, posted_response, send, sign_in_and_answer


def _sign_in(app, sp, email: str = "amara.okafor@camden.test", **kwargs):  # type: ignore[no-untyped-def]
    client = app.test_client()
    req_id, message = sp.authn_request(**kwargs)
    fields = posted_response(sign_in_and_answer(client, send(client, message), email))[1]
    return sp.parse(fields["SAMLResponse"], {req_id: "/"}), client


def test_persistent_nameid_is_stable_per_sp_and_unlinkable_across_sps(saml_env) -> None:
    app, services, sps = saml_env
    first, _ = _sign_in(app, sps["a"])
    again, _ = _sign_in(app, sps["a"])  # another browser, another session
    other_sp, _ = _sign_in(app, sps["b"])
    other_person, _ = _sign_in(app, sps["a"], "tom.hughes@camden.test")
    assert first.name_id.format == NAMEID_FORMAT_PERSISTENT
    assert first.name_id.sp_name_qualifier == sps["a"].entity_id
    assert first.name_id.text == again.name_id.text, "stable for one person at one SP"
    assert first.name_id.text != other_sp.name_id.text, "not correlatable across SPs"
    assert first.name_id.text != other_person.name_id.text
    # the broker's own subject id never leaks as the NameID
    session_subjects = {r.actor for r in services.audit.records() if r.event == "signin"}
    assert not session_subjects & {first.name_id.text, other_sp.name_id.text}


def test_sps_sharing_a_sector_share_the_persistent_nameid(settings_factory, sps) -> None:
    app, _, sps = build_env(settings_factory, sps, a={"sector": "camden-social-care"}, b={"sector": "camden-social-care"})
    a, _ = _sign_in(app, sps["a"])
    b, _ = _sign_in(app, sps["b"])
    assert a.name_id.text == b.name_id.text


def test_transient_nameid_changes_every_time(saml_env) -> None:
    app, _, sps = saml_env
    one, client = _sign_in(app, sps["a"], nameid_format=NAMEID_FORMAT_TRANSIENT)
    req_id, message = sps["a"].authn_request(nameid_format=NAMEID_FORMAT_TRANSIENT)
    two = sps["a"].parse(posted_response(send(client, message))[1]["SAMLResponse"], {req_id: "/"})
    assert one.name_id.format == two.name_id.format == NAMEID_FORMAT_TRANSIENT
    assert one.name_id.text != two.name_id.text


def test_email_nameid_only_for_an_sp_configured_to_insist(settings_factory, sps) -> None:
    app, services, sps = build_env(settings_factory, sps, b={"name_id_format": "email"})
    parsed, client = _sign_in(app, sps["b"])  # NameIDPolicy absent: the SP's configured format
    assert parsed.name_id.format == NAMEID_FORMAT_EMAILADDRESS
    assert parsed.name_id.text == "amara.okafor@camden.test"
    req_id, message = sps["a"].authn_request(nameid_format=NAMEID_FORMAT_EMAILADDRESS)
    acs, fields = posted_response(send(client, message))
    with pytest.raises(StatusInvalidNameidPolicy):
        sps["a"].parse(fields["SAMLResponse"], {req_id: "/"})


def test_exactly_the_attributes_the_policy_releases(settings_factory, sps) -> None:
    app, services, sps = build_env(settings_factory, sps, policies=True)
    parsed, _ = _sign_in(app, sps["a"])
    decided = [r for r in services.audit.records() if r.event == "policy_decision"][-1]
    assert decided.details["released"] == ["department", "organisation"], "what the London policy releases to case-records"
    # Only the organisation (its id and its name) and her department (SCENARIOS: "organisation,
    # team") reach the SP — not her name or email, which the broker knows and would send an SP
    # without a policy.
    assert set(parsed.ava) == {"schacHomeOrganization", "o", "ou"}
    assert parsed.ava["schacHomeOrganization"] == ["camden"]
    assert parsed.ava["o"] == ["London Borough of Camden"]
    assert parsed.ava["ou"] == ["Adult Social Care"]
    statement = parsed.assertion.attribute_statement[0]
    assert {a.name_format for a in statement.attribute} == {"urn:oasis:names:tc:SAML:2.0:attrname-format:uri"}
    decision = [r for r in services.audit.records() if r.event == "access_decision" and r.client_id == sps["a"].entity_id][-1]
    assert decision.outcome == "permitted" and "case-records/sign-in-social-workers" in decision.details["policy_ids"]


def test_basic_profile_and_per_claim_names(settings_factory, sps) -> None:
    app, _, sps = build_env(settings_factory, sps, a={"attribute_profile": "basic",
                                                      "attributes": {"email": {"name": "mail", "name_format": "basic"}}})
    parsed, _ = _sign_in(app, sps["a"])
    statement = parsed.assertion.attribute_statement[0]
    names = {a.name: a.name_format for a in statement.attribute}
    assert names["mail"] == "urn:oasis:names:tc:SAML:2.0:attrname-format:basic"
    assert names["department"] == "urn:oasis:names:tc:SAML:2.0:attrname-format:basic"
    assert "email" not in names


def test_policy_denial_shows_a_page_and_sends_nothing(settings_factory, sps) -> None:
    app, services, sps = build_env(settings_factory, sps, policies=True)
    client = app.test_client()
    req_id, message = sps["a"].authn_request()
    page = sign_in_and_answer(client, send(client, message), "tom.hughes@camden.test")
    assert page.status_code == 403
    assert "You cannot use this service" in page.get_data(as_text=True)
    assert "SAMLResponse" not in page.get_data(as_text=True)
    assert not [r for r in services.audit.records() if r.event == "saml_assertion_issued"]
    denied = [r for r in services.audit.records() if r.event == "access_decision" and r.outcome == "denied"]
    assert denied and denied[-1].client_id == sps["a"].entity_id
