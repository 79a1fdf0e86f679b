"""The organisation registry as administrators edit it: the service, the CLI, and a running
broker following each change without a restart (home-realm discovery and scoping)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner, Result

from broker.cli import cli
from broker.organisations_admin import OrganisationInvalid, OrganisationNotFound, OrganisationRecord
from federation.organisations import Contact
from tests.support.flask_flow import password_sign_in
from tests.support.http_login import csrf_token

ISLINGTON = OrganisationRecord(
    id="islington", name="London Borough of Islington", kind="borough", domains=("islington.test",),
    memberships=("London boroughs",),
    contacts=(Contact("privacy_officer", "Ivy Privacy", "privacy@islington.test"),),
)
UNRECOGNISED = "We do not recognise the organisation for this email address"


@pytest.fixture
def other_process(settings):  # type: ignore[no-untyped-def]
    """A second, independent set of services over the same database: another worker, the CLI or the console."""
    from broker.services import build_services

    built = build_services(settings)
    yield built
    built.engine.dispose()


def _email_page(client, email: str):  # type: ignore[no-untyped-def]
    page = client.get("/login").get_data(as_text=True)
    return client.post("/login", data={"csrf_token": csrf_token(page), "email": email})


def _events(services, event: str) -> list:  # type: ignore[no-untyped-def]
    return [r for r in services.audit.records() if r.event == event]


# --- the service --------------------------------------------------------------------------------


def test_configured_organisations_are_imported_and_listed(services) -> None:  # type: ignore[no-untyped-def]
    records = {r.id: r for r in services.organisations.list()}
    assert set(records) == {"camden", "newham", "hackney", "nhs"}
    camden = records["camden"]
    assert camden.origin == "config" and not camden.managed and camden.domains == ("camden.test",)
    assert camden.sources == ("camden-demo",)


def test_every_problem_of_a_new_organisation_is_reported_at_once_and_audited(services) -> None:  # type: ignore[no-untyped-def]
    bad = OrganisationRecord(
        id="Bad Id", name="", kind="county", domains=("camden.test", "Not a domain", "ok.test", "ok.test"),
        ods_codes=("ral",), sources=("no-such-source", "hackney-demo"), accepts_sources=("ghost",),
        contacts=(Contact("janitor", "Jo", "not-an-email"),),
    )
    with pytest.raises(OrganisationInvalid) as refused:
        services.organisations.create(bad, actor="admin:alice")
    problems = refused.value.problems
    expected = [
        "id: 'Bad Id' is not a lower-case slug",
        "name: 1 to 200 characters",
        "kind: must be one of borough, health, operator",
        "domains: ok.test is listed twice",
        "domains: 'Not a domain' is not a lower-case DNS domain",
        "ods_codes: 'ral' is not an ODS code",
        "contacts[0].role: must be one of",
        "contacts[0].email: 'not-an-email' is not an email address",
        "domains: camden.test is already claimed by camden",
        "sources: hackney-demo already serves hackney",
        "sources: unknown identity source 'no-such-source'",
        "accepts_sources: unknown identity source 'ghost'",
    ]
    for text in expected:
        assert any(p.startswith(text) for p in problems), (text, problems)
    assert services.organisations.get("Bad Id") is None
    record = _events(services, "organisation_created")[-1]
    assert record.outcome == "failure" and record.actor == "admin:alice"
    assert "domains: camden.test is already claimed by camden" in record.details["problems"]


def test_a_domain_or_ods_code_claimed_by_another_organisation_is_refused_on_update(services) -> None:  # type: ignore[no-untyped-def]
    services.organisations.update("nhs", {"ods_codes": ["RAL"]}, actor="admin:alice")
    with pytest.raises(OrganisationInvalid) as refused:
        services.organisations.update("hackney", {"domains": ["hackney.test", "camden.test"], "ods_codes": ["RAL"]},
                                      actor="admin:alice")
    assert set(refused.value.problems) == {"domains: camden.test is already claimed by camden",
                                           "ods_codes: RAL is already claimed by nhs"}
    assert services.organisations.get("hackney").domains == ("hackney.test",)  # nothing half-written
    assert services.registry.discover("x@camden.test").id == "camden"


def test_a_change_is_audited_with_before_and_after_and_the_store_then_wins(services) -> None:  # type: ignore[no-untyped-def]
    before = services.organisations.get("newham")
    changed = services.organisations.update(
        "newham", {"domains": ["newham.test", "newham.gov.test"],
                   "contacts": [{"role": "privacy_officer", "name": "Nia Officer", "email": "nia@newham.test"}]},
        actor="admin:alice", expected_revision=before.revision)
    assert changed.managed and changed.revision == before.revision + 1
    record = _events(services, "organisation_updated")[-1]
    assert record.outcome == "success" and record.details["organisation"] == "newham"
    assert record.details["before"]["domains"] == ["newham.test"]
    assert record.details["after"]["domains"] == ["newham.test", "newham.gov.test"]
    assert record.details["after"]["contacts"] == [{"role": "privacy_officer", "name": "Nia Officer", "email": "nia@newham.test"}]
    # An edit based on the old revision (someone else changed it meanwhile) is refused.
    with pytest.raises(OrganisationInvalid, match="changed by someone else"):
        services.organisations.update("newham", {"name": "Newham"}, actor="admin:bob", expected_revision=before.revision)
    # A restart seeds again from the file: a managed organisation keeps the store's declaration.
    services.organisations.seed()
    assert services.organisations.get("newham").domains == ("newham.test", "newham.gov.test")
    assert services.registry.discover("a@newham.gov.test").id == "newham"


def test_unmanaged_organisations_follow_the_file_and_import_hands_one_back(settings_factory, services) -> None:  # type: ignore[no-untyped-def]
    from broker.services import build_services

    services.organisations.update("hackney", {"name": "Hackney Council"}, actor="admin:alice")
    document = settings_factory.document()
    for org in document["organisations"]:
        if org["id"] in {"camden", "hackney"}:
            org["domains"] = [*org["domains"], f"{org['id']}.gov.test"]
    from config import load_settings

    restarted = build_services(load_settings(settings_factory.write(document)))
    try:
        assert restarted.organisations.get("camden").domains == ("camden.test", "camden.gov.test")  # follows the file
        assert restarted.organisations.get("hackney").domains == ("hackney.test",)  # managed: the store wins
        assert restarted.registry.discover("a@hackney.gov.test") is None
        restarted.organisations.import_from_config("hackney", actor="admin:alice")
        back = restarted.organisations.get("hackney")
        assert back.domains == ("hackney.test", "hackney.gov.test") and not back.managed and back.name == "London Borough of Hackney"
        assert restarted.registry.discover("a@hackney.gov.test").id == "hackney"
    finally:
        restarted.engine.dispose()


def test_retiring_needs_a_reason_and_an_unknown_id_is_not_found(services) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(OrganisationInvalid, match="say why"):
        services.organisations.retire("hackney", actor="admin:alice", reason="  ")
    with pytest.raises(OrganisationNotFound):
        services.organisations.update("no-such-org", {"name": "x"}, actor="admin:alice")
    with pytest.raises(OrganisationInvalid, match="not an editable field"):
        services.organisations.update("hackney", {"teams": []}, actor="admin:alice")


# --- a running broker follows changes made elsewhere ------------------------------------------------


def test_discovery_follows_an_organisation_added_and_retired_in_another_process(app, other_process) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    response = _email_page(client, "ivy@islington.test")
    assert response.status_code == 400 and UNRECOGNISED in response.get_data(as_text=True)
    other_process.organisations.create(ISLINGTON, actor="admin:alice")
    response = _email_page(app.test_client(), "ivy@islington.test")
    assert response.status_code == 302 and response.headers["Location"].endswith("/login/password")
    other_process.organisations.retire("islington", actor="admin:alice", reason="merged into a neighbour")
    response = _email_page(app.test_client(), "ivy@islington.test")
    assert response.status_code == 400 and UNRECOGNISED in response.get_data(as_text=True)
    assert services_of(app).organisations.get("islington").retired


def test_scoping_follows_a_change_to_what_an_organisation_is_authoritative_for(app, other_process) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    assert password_sign_in(client, "amara.okafor@camden.test").status_code == 302
    first = services_of(app).sso.find(client.get_cookie("supercloud-session").value)
    assert first.identity.text("email") == "amara.okafor@camden.test"
    other_process.organisations.update("camden", {"authoritative_attributes": ["name", "given_name", "family_name"]},
                                       actor="admin:alice")
    client = app.test_client()
    assert password_sign_in(client, "amara.okafor@camden.test").status_code == 302
    second = services_of(app).sso.find(client.get_cookie("supercloud-session").value)
    assert second.identity.text("email") is None and second.identity.text("name")
    dropped = [r for r in services_of(app).audit.records() if r.event == "attribute_out_of_scope"][-1]
    assert any(d.startswith("email") for d in dropped.details["dropped"])


def services_of(app):  # type: ignore[no-untyped-def]
    return app.extensions["supercloud"]


# --- the command line ------------------------------------------------------------------------------


def orgs(settings, *args: str) -> Result:  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, ["--config", str(settings.base_dir / "broker.yaml"), "orgs", *args], obj={})


def test_cli_lists_shows_adds_updates_and_retires(settings, services) -> None:  # type: ignore[no-untyped-def]
    listed = orgs(settings, "list")
    assert listed.exit_code == 0 and "camden" in listed.output and "camden.test" in listed.output
    added = orgs(settings, "add", "islington", "--name", "London Borough of Islington", "--kind", "borough",
                 "--domain", "islington.test", "--accepts-source", "camden-demo",
                 "--contact", "privacy_officer:Ivy Privacy:privacy@islington.test", "--as", "alice")
    assert added.exit_code == 0, added.output
    assert "privacy_officer: Ivy Privacy <privacy@islington.test>" in added.output
    shown = json.loads(orgs(settings, "show", "islington", "--json").output)
    assert shown["domains"] == ["islington.test"] and shown["origin"] == "admin" and shown["revision"] == 1
    updated = orgs(settings, "update", "islington", "--domain", "islington.test", "--domain", "islington.gov.test",
                   "--revision", "1", "--as", "alice")
    assert updated.exit_code == 0 and "islington.gov.test" in updated.output
    assert services.organisations.get("islington").domains == ("islington.test", "islington.gov.test")
    retired = orgs(settings, "retire", "islington", "--reason", "test over", "--as", "alice")
    assert retired.exit_code == 0 and "retired" in retired.output
    assert "islington" not in orgs(settings, "list").output
    assert "RETIRED" not in orgs(settings, "list", "--all").output and "retired" in orgs(settings, "list", "--all").output
    actors = {r.actor for r in services.audit.records() if r.event.startswith("organisation_")}
    assert actors == {"cli:alice"}


def test_cli_refuses_a_duplicate_domain_listing_every_problem(settings, services) -> None:  # type: ignore[no-untyped-def]
    result = orgs(settings, "add", "camden-two", "--name", "Camden again", "--kind", "borough",
                  "--domain", "camden.test", "--source", "nope", "--as", "mallory")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "domains: camden.test is already claimed by camden" in result.output
    assert "sources: unknown identity source 'nope'" in result.output
    assert "refused: 2 problem(s)" in result.output
    assert services.organisations.get("camden-two") is None
