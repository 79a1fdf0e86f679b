"""``supercloud policy``: what a policy administrator and a security officer see at the terminal."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from broker.audit import AuditLog
from broker.cli import cli
from broker.decision_log import DecisionRecorder
from policies import LONDON_BUNDLE, PolicyEngine, Request, compile_bundle, load_bundle
from policies.model import Fact
from tests.support.cli_results import ok, refused

TESTS_YAML = str(LONDON_BUNDLE / "tests.yaml")
V1 = "2026.11.28-1"
ADMIN = ("--role", "policy-admin")
MASH_AAL2 = """
@id("mash/require-aal2")
forbid (principal, action == Action::"sign_in", resource == Service::"mash")
unless { principal.assurance >= 2 };
"""


def policy(settings, *args: str) -> Result:  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, ["--config", str(settings.base_dir / "broker.yaml"), "policy", *args], obj={})


def bundle_copy(tmp_path: Path, name: str = "candidate", extra: dict[str, str] | None = None) -> Path:
    target = tmp_path / name
    shutil.copytree(LONDON_BUNDLE, target)
    for file_name, text in (extra or {}).items():
        (target / file_name).write_text(text)
    return target


def activate_v1(settings) -> None:  # type: ignore[no-untyped-def]
    ok(policy(settings, "propose", str(LONDON_BUNDLE), "--as", "alice", *ADMIN))
    ok(policy(settings, "approve", V1, "--as", "bob", *ADMIN))
    ok(policy(settings, "activate", "--as", "alice", *ADMIN))


def audit_events(services) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return [(r.event, r.outcome) for r in services.audit.records()]


# --- governance --------------------------------------------------------------------------


def test_a_change_takes_effect_only_after_a_second_person_approves(settings, services, tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = ok(policy(settings, "propose", str(LONDON_BUNDLE), "--as", "alice", *ADMIN))
    assert f"Proposed london@{V1} by alice" in out and "test case(s) passed" in out
    out = refused(policy(settings, "activate", V1, "--as", "alice", *ADMIN))
    assert "only an approved version can be activated" in out
    out = refused(policy(settings, "approve", V1, "--as", "ALICE", *ADMIN))
    assert "a second person must approve it" in out and "policy_same_person_approval" in out
    ok(policy(settings, "approve", V1, "--as", "bob", *ADMIN))
    assert f"Active: london@{V1}." in ok(policy(settings, "activate", "--as", "alice", *ADMIN))
    history = ok(policy(settings, "history", "--as", "carol"))
    assert f"{V1}" in history and "active" in history and "approved by bob" in history
    for event in ("policy.bundle.proposed", "policy.bundle.approve_refused", "policy.bundle.approved",
                  "policy.bundle.activated"):
        assert event in history
    events = audit_events(services)
    assert ("policy.bundle.approve_refused", "denied") in events
    assert ("policy.bundle.activated", "success") in events
    assert ("policy.history.read", "success") in events
    assert AuditLog.verify(services.audit).ok


def test_only_policy_administrators_change_policies(settings, services) -> None:  # type: ignore[no-untyped-def]
    out = refused(policy(settings, "propose", str(LONDON_BUNDLE), "--as", "mallory", "--role", "security-officer"))
    assert "'policy-admin' role is required" in out
    assert ("policy.bundle.propose_refused", "denied") in audit_events(services)
    ok(policy(settings, "propose", str(LONDON_BUNDLE), "--as", "alice", *ADMIN))
    assert "'policy-admin' role is required" in refused(policy(settings, "approve", V1, "--as", "mallory"))
    assert "--as NAME" in refused(policy(settings, "approve", V1, *ADMIN))
    assert "--as NAME" in refused(policy(settings, "approve", V1, "--as", "  ", *ADMIN))


def test_rollback_restores_an_earlier_active_version(settings, services, tmp_path) -> None:  # type: ignore[no-untyped-def]
    activate_v1(settings)
    candidate = bundle_copy(tmp_path, extra={"mash_aal2.cedar": MASH_AAL2})
    ok(policy(settings, "propose", str(candidate), "--version", "v2", "--as", "bob", *ADMIN))
    diff = ok(policy(settings, "diff", "v2", "--as", "carol"))
    assert f"Changes from london@{V1} to london@v2" in diff and "added: mash/require-aal2" in diff
    ok(policy(settings, "approve", "v2", "--as", "alice", *ADMIN))
    assert f"Active: london@v2 (was london@{V1})" in ok(policy(settings, "activate", "v2", "--as", "bob", *ADMIN))
    out = ok(policy(settings, "rollback", V1, "--as", "alice", *ADMIN))
    assert f"london@{V1} is active again (was london@v2)" in out
    out = refused(policy(settings, "rollback", V1, "--as", "alice", *ADMIN))
    assert "is active" in out
    assert "no version 'v9'" in refused(policy(settings, "rollback", "v9", "--as", "alice", *ADMIN))


def test_an_invalid_bundle_is_refused_with_every_problem_listed(settings, services, tmp_path) -> None:  # type: ignore[no-untyped-def]
    candidate = bundle_copy(tmp_path, extra={
        "broken.cedar": '@id("broken/one") permit (principal, action, resource) when { principal.nonexistent == 1 };\n',
        "unparsable.cedar": '@id("broken/two") permit (principal action resource);\n',
    })
    out = refused(policy(settings, "propose", str(candidate), "--version", "bad", "--as", "alice", *ADMIN))
    assert "policy_bundle_invalid" in out
    assert "broken.cedar" in out and "unparsable.cedar" in out
    assert ("policy.bundle.propose_refused", "denied") in audit_events(services)
    assert "No versions stored yet." in ok(policy(settings, "history", "--as", "carol"))


def test_a_failing_test_case_blocks_the_proposal(settings, services, tmp_path) -> None:  # type: ignore[no-untyped-def]
    candidate = bundle_copy(tmp_path)
    (candidate / "mash.cedar").write_text('@id("mash/members") forbid (principal, action, resource == Service::"mash");\n')
    out = refused(policy(settings, "propose", str(candidate), "--version", "v2", "--as", "alice", *ADMIN))
    assert "policy_bundle_tests_failed" in out
    assert "Barnet safeguarding officer reaches MASH" in out and "expected permit, got deny" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("propose", "/nonexistent/bundle"), "bundle not found: /nonexistent/bundle"),
        (("propose", TESTS_YAML), "give a bundle directory"),
        (("approve", "nope"), "no version 'nope'"),
        (("diff", "nope"), "no version 'nope'"),
        (("replay", "nope"), "no version 'nope'"),
        (("activate",), "no approved version to activate"),
        (("explain", "--person", "nhs-nurse", "--service", "mash"), "the identity store holds nobody yet"),
        (("explain", "--person", "nhs-nurse", "--service", "mash", "--people", "/no/people.yaml"),
         "people file not found: /no/people.yaml"),
        (("who-can", "mash", "--people", TESTS_YAML, "--environment", "/no/env.yaml"),
         "environment file not found: /no/env.yaml"),
        (("explain", "--person", "nobody", "--service", "mash", "--people", TESTS_YAML), "no person 'nobody'"),
        (("explain", "--person", "nhs-nurse", "--service", "mash", "--people", TESTS_YAML),
         "no policy bundle is active yet"),
    ],
)
def test_bad_input_gets_a_clear_message(settings, services, args, message) -> None:  # type: ignore[no-untyped-def]
    out = refused(policy(settings, *args, "--as", "alice", *ADMIN) if args[0] in ("propose", "approve", "activate")
                  else policy(settings, *args, "--as", "alice"))
    assert message in out


def test_malformed_people_and_environment_files_list_every_problem(settings, services, tmp_path) -> None:  # type: ignore[no-untyped-def]
    activate_v1(settings)
    people = tmp_path / "people.yaml"
    people.write_text("people:\n  a: {organisation: camden, kind: wizard, assurance: 7}\n  b: {kind: borough}\n")
    out = refused(policy(settings, "who-can", "mash", "--people", str(people), "--environment", TESTS_YAML,
                         "--as", "carol"))
    assert "a: facts.kind" in out and "a: facts.assurance" in out and "b: facts.organisation: is required" in out
    environment = tmp_path / "env.yaml"
    environment.write_text("organisations: [{id: x, kind: castle}]\nteams: [{id: t, organisation: nowhere}]\n")
    out = refused(policy(settings, "who-can", "mash", "--people", TESTS_YAML, "--environment", str(environment),
                         "--as", "carol"))
    assert "organisations[0].kind" in out and "unknown organisation 'nowhere'" in out
    (tmp_path / "bad.yaml").write_text("people: [unclosed\n")
    assert "not valid YAML" in refused(policy(settings, "what-can", "x", "--people", str(tmp_path / "bad.yaml"),
                                              "--as", "carol"))


# --- explanations and questions ---------------------------------------------------------------


def test_explain_names_policies_attributes_and_their_sources(settings, services) -> None:  # type: ignore[no-untyped-def]
    activate_v1(settings)
    out = ok(policy(settings, "explain", "--person", "camden-social-worker", "--service", "discharge-hub",
                    "--people", TESTS_YAML, "--environment", TESTS_YAML, "--as", "carol"))
    assert "camden-ad|asmith is permitted to sign in to discharge-hub" in out
    assert "discharge-hub/borough-discharge-team" in out and "from people file tests.yaml" in out
    out = ok(policy(settings, "explain", "--person", "camden-social-worker", "--service", "discharge-hub",
                    "--people", TESTS_YAML, "--environment", TESTS_YAML, "--json", "--as", "carol"))
    assert json.loads(out)["decision"] == "permit"
    out = ok(policy(settings, "explain", "--person", "nhs-consultant", "--service", "case-records", "--action", "read",
                    "--record-id", "r1", "--home-borough", "camden", "--people", TESTS_YAML,
                    "--environment", TESTS_YAML, "--as", "carol"))
    assert "is denied to read case-records record r1" in out and "break glass" in out
    assert "--record-id" in refused(policy(settings, "explain", "--person", "nhs-consultant", "--service",
                                           "case-records", "--action", "read", "--people", TESTS_YAML, "--as", "carol"))
    assert ("policy.explained", "success") in audit_events(services)


def test_who_can_and_what_can_answer_with_reasons(settings, services) -> None:  # type: ignore[no-untyped-def]
    activate_v1(settings)
    common = ("--people", TESTS_YAML, "--environment", TESTS_YAML, "--as", "carol")
    out = ok(policy(settings, "who-can", "discharge-hub", *common))
    assert out.startswith("5 of 11 people can sign in to discharge-hub")
    assert "discharge-hub/nhs-clinical-role" in out and "no policy permits (default deny)" in out
    rows = json.loads(ok(policy(settings, "who-can", "discharge-hub", "--permitted-only", "--json", *common)))["rows"]
    assert {r["decision"] for r in rows} == {"permit"} and len(rows) == 5
    assert "unknown service 'nowhere'" in refused(policy(settings, "who-can", "nowhere", *common))
    out = ok(policy(settings, "what-can", "nhs-consultant", *common))
    assert "nhs-cis2|555000000001 can sign in to 1 of 4 services" in out
    assert "permit discharge-hub" in out.replace("  ", " ")
    assert ok(policy(settings, "what-can", "nhs-cis2|555000000001", *common)) == out
    events = audit_events(services)
    assert ("policy.who_can", "success") in events and ("policy.what_can", "success") in events


def test_replay_lists_the_recorded_decisions_a_candidate_would_flip(settings, services, tmp_path) -> None:  # type: ignore[no-untyped-def]
    activate_v1(settings)
    environment = compile_bundle(load_bundle(LONDON_BUNDLE)).tests
    engine = PolicyEngine(compile_bundle(load_bundle(LONDON_BUNDLE)), environment.environment)
    recorder = DecisionRecorder(services.db)
    people = {c.request.person.subject: c.request for c in environment.cases}
    barnet = next(r for s, r in people.items() if s.startswith("barnet"))
    at_aal1 = Request(barnet.person, "sign_in", "mash", barnet.now)
    weak = dataclasses.replace(barnet.person, facts={**barnet.person.facts, "assurance": Fact(1, "test", barnet.now)})
    recorder.record_many(engine.decide(Request(p, "sign_in", "mash", barnet.now)) for p in (barnet.person, weak))
    recorder.record(engine.decide(at_aal1))
    candidate = bundle_copy(tmp_path, extra={"mash_aal2.cedar": MASH_AAL2})
    ok(policy(settings, "propose", str(candidate), "--version", "v2", "--as", "bob", *ADMIN))
    out = ok(policy(settings, "replay", "v2", "--environment", TESTS_YAML, "--as", "carol"))
    assert "Replaying 3 recorded decision(s) against london@v2: 1 would flip." in out
    assert "barnet-saml|ewright sign_in mash was permitted, would be denied (mash/require-aal2)" in out
    document = json.loads(ok(policy(settings, "replay", "v2", "--environment", TESTS_YAML, "--service", "discharge-hub",
                                    "--json", "--as", "carol")))
    assert document["total"] == 0 and document["flips"] == []
    assert "--since" in ok(policy(settings, "replay", "--help"))
    assert "not an ISO 8601 time" in refused(policy(settings, "replay", "v2", "--since", "yesterday",
                                                    "--environment", TESTS_YAML, "--as", "carol"))


# --- bundle tests ------------------------------------------------------------------------------


def test_policy_test_runs_the_cases_and_reports_coverage(settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = ok(policy(settings, "test", str(LONDON_BUNDLE)))
    assert "PASS  Barnet safeguarding officer reaches MASH" in out and "case(s) passed" in out
    candidate = bundle_copy(tmp_path, extra={"mash_aal2.cedar": MASH_AAL2})
    out = ok(policy(settings, "test", str(candidate)))
    assert "Never exercised by any case: mash/require-aal2" in out
    (candidate / "mash.cedar").write_text('@id("mash/members") forbid (principal, action, resource == Service::"mash");\n')
    out = refused(policy(settings, "test", str(candidate)))
    assert "FAIL  Barnet safeguarding officer reaches MASH" in out and "expected permit, got deny" in out
    assert "bundle directory not found" in refused(policy(settings, "test", str(tmp_path / "none")))
    (candidate / "bundle.yaml").unlink()
    assert "bundle.yaml" in refused(policy(settings, "test", str(candidate)))


def test_an_unmigrated_database_says_what_to_run(settings_factory) -> None:  # type: ignore[no-untyped-def]
    settings = settings_factory()
    out = refused(policy(settings, "history", "--as", "carol"))
    assert "supercloud db upgrade" in out


def test_a_bad_time_is_refused(settings, services) -> None:  # type: ignore[no-untyped-def]
    activate_v1(settings)
    out = refused(policy(settings, "who-can", "mash", "--people", TESTS_YAML, "--environment", TESTS_YAML,
                         "--at", "teatime", "--as", "carol"))
    assert "--at 'teatime' is not an ISO 8601 time" in out


def test_who_can_and_what_can_ask_over_the_identity_store(settings, services) -> None:  # type: ignore[no-untyped-def]
    import datetime as dt

    from broker.directory_people import DirectoryPeople
    from directories.records import AccountRecord, AccountStatus

    activate_v1(settings)
    now = dt.datetime.now(dt.UTC)

    def person(object_id: str, username: str, groups: list[str], status: AccountStatus) -> AccountRecord:
        return AccountRecord(directory_id="camden-demo", object_id=object_id, username=username,
                             attributes={"name": username.split("@")[0], "email": username, "groups": groups},
                             groups=(), status=status)

    DirectoryPeople(services.db).store("camden", [
        person("guid-1", "dana@camden.test", ["Discharge Team"], AccountStatus.ACTIVE),
        person("guid-2", "eli@camden.test", ["Adult Social Care"], AccountStatus.ACTIVE),
        person("guid-3", "left@camden.test", ["Discharge Team"], AccountStatus.DISABLED),
    ], server="ldaps://dc1.camden.test:636", changes={}, now=now)
    common = ("--environment", TESTS_YAML, "--as", "carol")
    result = policy(settings, "who-can", "discharge-hub", "--json", *common)
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    rows = {r["subject"]: r for r in document["rows"]}
    assert document["people"] == 2  # the disabled account cannot sign in: left out, and said so
    assert "1 leaver(s)" in result.stderr
    dana = rows["urn:supercloud:directory:camden-demo|guid-1"]
    eli = rows["urn:supercloud:directory:camden-demo|guid-2"]
    # Synced people are asked about as a password sign-in (AAL1): Dana's group maps to the discharge
    # team, so she is permitted once she steps up; Eli's team is not permitted at any level.
    assert dana["decision"] == "deny" and "obligation: step_up" in dana["why"], dana
    assert eli["decision"] == "deny" and "step_up" not in eli["why"], eli
    out = ok(policy(settings, "what-can", "dana@camden.test", *common))
    assert "\nurn:supercloud:directory:camden-demo|guid-1 can sign in to" in out
    out = ok(policy(settings, "explain", "--person", "dana@camden.test", "--service", "discharge-hub", *common))
    assert "directory:camden-demo" in out  # where each attribute came from
    assert "no person 'left@camden.test' in the identity store" in refused(
        policy(settings, "what-can", "left@camden.test", *common))
