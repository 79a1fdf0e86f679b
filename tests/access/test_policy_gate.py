"""Policy decides at every access: which services a person reaches and which claims each service sees."""

from __future__ import annotations

from pathlib import Path

import pytest

from federation import jose
from tests.support.flask_flow import authorize_params, code_flow, exchange, password_sign_in, pkce_pair

from tests.support.settings import LONDON_BUNDLE as BUNDLE
ISSUER = "http://127.0.0.1:8000"


def _decisions(services):  # type: ignore[no-untyped-def]
    return [r for r in services.audit.records() if r.event == "policy_decision"]


def test_admissions_officer_reaches_admissions_and_it_sees_only_organisation(policy_app) -> None:
    app, services = policy_app
    client = app.test_client()
    code, verifier, _ = code_flow(client, email="sofia.rossi@hackney.test", client_id="admissions-portal")
    from tests.support.flask_flow import basic_auth

    tokens = exchange(client, code, verifier, headers=basic_auth("admissions-portal")).get_json()
    claims = jose.verify(tokens["id_token"], services.keyring.verification_keys(), audience="admissions-portal", issuer=ISSUER)
    assert claims["organisation"] == "hackney"
    assert "name" not in claims and "email" not in claims, "data minimisation: admissions gets no name or email"
    userinfo = client.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}).get_json()
    assert set(userinfo) <= {"sub", "organisation", "organisation_name"}
    decision = _decisions(services)[0]
    assert decision.outcome == "permit"
    assert decision.details["policy_ids"] == ["admissions/borough-admissions-officers"]


def test_person_without_a_permit_is_told_and_no_code_is_issued(policy_app) -> None:
    app, services = policy_app
    client = app.test_client()
    _, challenge = pkce_pair()
    client.get("/authorize", query_string=authorize_params(challenge, client_id="admissions-portal"))
    signed = password_sign_in(client, "kwame.mensah@newham.test")
    response = client.get(signed.headers["Location"])
    assert response.status_code == 403
    assert "You do not have access to London Admissions" in response.get_data(as_text=True)
    assert "Location" not in response.headers
    assert [(r.event, r.outcome) for r in services.audit.records()][-1] == ("access_decision", "denied")


def test_password_only_sign_in_to_the_discharge_hub_needs_step_up(policy_app) -> None:
    app, services = policy_app
    client = app.test_client()
    _, challenge = pkce_pair()
    client.get("/authorize", query_string=authorize_params(challenge))
    signed = password_sign_in(client, "amara.okafor@camden.test")
    response = client.get(signed.headers["Location"])
    assert response.status_code == 302 and response.headers["Location"].endswith("/mfa")
    assert "code=" not in response.headers["Location"]
    decision = _decisions(services)[-1]
    assert decision.outcome == "deny"
    assert decision.details["obligations"][0]["kind"] == "step_up"
    assert decision.details["obligations"][0]["min_assurance"] == 2


def test_teams_and_roles_come_from_the_registry_with_provenance(policy_app) -> None:
    app, services = policy_app
    cookie, session = services.login.sign_in("amara.okafor@camden.test", "london-demo", ip=None)
    teams = session.identity.attributes["teams"]
    assert set(teams.value) == {"camden-hospital-discharge", "camden-adult-social-care"}
    assert teams.source == "organisation-registry:camden"
    assert session.identity.attributes["job_roles"].value == ("social-worker",)


def test_an_invalid_bundle_stops_the_broker_with_every_problem(policy_settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import shutil

    from broker.services import build_services
    from policies import PolicyError

    broken = tmp_path / "bundle"
    shutil.copytree(BUNDLE, broken)
    (broken / "discharge_hub.cedar").write_text('permit (principal, action == Action::"fly", resource);\nthis is not cedar')
    from broker.bootstrap import migrate

    migrate(policy_settings)
    bad = policy_settings.model_copy(update={"policies": policy_settings.policies.model_copy(update={"bundle": broken})})
    with pytest.raises(PolicyError) as info:
        build_services(bad)
    assert info.value.problems
