"""Bundles: loading, compiling once, and refusing an invalid bundle with every problem listed."""

from __future__ import annotations

from pathlib import Path

import cedarpy
import pytest

from policies.bundle import PolicyBundle, compile_bundle, load_bundle, split_policies
from policies.errors import PolicyError, PolicyErrorCode
from policies.testrun import run_tests

GOOD = '''@id("ok")
permit (principal, action == Action::"sign_in", resource == Service::"svc")
when { principal.assurance >= 2 };'''


def refused(bundle: PolicyBundle) -> PolicyError:
    with pytest.raises(PolicyError) as caught:
        compile_bundle(bundle)
    assert caught.value.code is PolicyErrorCode.BUNDLE_INVALID
    return caught.value


def test_the_london_bundle_compiles_with_ids_and_reads(london) -> None:
    assert london.label == "london@2026.11.28-1"
    assert isinstance(london.policy_set, cedarpy.PolicySet)
    assert "discharge-hub/require-aal2" in london.policies
    policy = london.policies["discharge-hub/borough-discharge-team"]
    assert policy.effect == "permit" and policy.source == "discharge_hub.cedar"
    assert "principal.organisation.kind" in policy.reads
    assert policy.text.startswith('@id("discharge-hub/borough-discharge-team")')


def test_an_invalid_bundle_is_refused_with_every_problem_listed() -> None:
    bundle = PolicyBundle(
        name="Bad Name",
        version="",
        sources={
            "a.cedar": GOOD,
            "broken.cedar": "permit (principal, action, resource) when { 1 + };",
            "types.cedar": '''
@id("unknown-attribute")
permit (principal, action == Action::"sign_in", resource) when { principal.salary > 10 };
@id("wrong-type")
permit (principal, action == Action::"sign_in", resource) when { principal.assurance == "high" };
@id("unknown-action")
permit (principal, action == Action::"delete", resource);
permit (principal, action == Action::"sign_in", resource);
@id("ok")
permit (principal, action == Action::"sign_in", resource);
@id("Has Spaces")
permit (principal, action == Action::"sign_in", resource);
''',
        },
        tests="cases: [{name: x, person: nobody, service: svc, expect: {decision: maybe}}]",
    )
    error = refused(bundle)
    text = "\n".join(error.problems)
    expected = [
        "name:",
        "version:",
        "broken.cedar: policy #1 does not parse",
        "[unknown-attribute]",
        "salary",
        "[wrong-type]",
        "[unknown-action]",
        "has no @id",
        "@id('ok') is also used in a.cedar",
        "@id('Has Spaces') must match",
        "unknown persona 'nobody'",
        "expect.decision: must be permit or deny",
    ]
    for fragment in expected:
        assert fragment in text, f"{fragment!r} missing from:\n{text}"
    assert str(len(error.problems)) in error.detail


def test_templates_are_refused() -> None:
    template = '@id("t")\npermit (principal == ?principal, action == Action::"sign_in", resource);'
    assert any("templates" in p for p in refused(PolicyBundle("t", "1", {"t.cedar": template})).problems)


def test_an_empty_bundle_is_refused() -> None:
    assert any("at least one" in p for p in refused(PolicyBundle("t", "1", {})).problems)


def test_bad_file_names_and_invalid_yaml_are_reported() -> None:
    error = refused(PolicyBundle("t", "1", {"../evil.cedar": GOOD}, tests="cases: [unclosed"))
    text = " ".join(error.problems)
    assert "file names must match" in text and "not valid YAML" in text


def test_a_bundle_round_trips_through_json(london_bundle: PolicyBundle) -> None:
    assert PolicyBundle.from_json(london_bundle.to_json()) == london_bundle
    with pytest.raises(PolicyError):
        PolicyBundle.from_json({"name": "x"})
    with pytest.raises(PolicyError):
        PolicyBundle.from_json({"name": "x", "version": "1", "sources": {"a.cedar": 3}})


def test_load_bundle_reports_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as caught:
        load_bundle(tmp_path / "nowhere")
    assert caught.value.code is PolicyErrorCode.BUNDLE_INVALID


def test_load_bundle_needs_name_and_version(tmp_path: Path) -> None:
    (tmp_path / "bundle.yaml").write_text("description: no name\n")
    with pytest.raises(PolicyError, match="needs name and version"):
        load_bundle(tmp_path)


def test_a_failing_test_case_is_reported_with_its_mismatches(london_bundle: PolicyBundle) -> None:
    tests = london_bundle.tests.replace(
        "expect: {decision: permit, policies: [mash/members]}", "expect: {decision: deny}"
    ).replace(
        "      policies: [mash/members]\n      released: [agency, mash_membership]",
        "      policies: [mash/members]\n      released: [agency]",
    )
    assert tests != london_bundle.tests
    report = run_tests(compile_bundle(PolicyBundle("london", "x", london_bundle.sources, tests)))
    assert not report.passed
    assert any("expected released ['agency'], got ['agency', 'mash_membership']" in f for f in report.failures)


def test_split_policies_ignores_semicolons_in_strings_and_comments() -> None:
    text = '// a; b\n@id("x;") permit (principal, action, resource) when { "a\\";" == "b" }; // c;\nforbid (principal, action, resource);'
    assert split_policies(text) == [
        '@id("x;") permit (principal, action, resource) when { "a\\";" == "b" };',
        "forbid (principal, action, resource);",
    ]


def test_every_broken_policy_of_a_file_is_reported_and_the_rest_still_validated() -> None:
    text = """
@id("one") permit (principal, action == Action::"sign_in", resource) when { 1 + };
// a comment; with a semicolon
@id("two") permit (principal, action == Action::"sign_in", resource) when { principal.salary > 1 };
@id("three") permit (principal, action == Action::"sign_in", resource) when { principal.assurance >= 2 };
@id("four") permit (principal, action == , resource);
@id("five") permit (principal, action, resource)
"""
    problems = refused(PolicyBundle("t", "1", {"a.cedar": text})).problems
    assert problems == (
        "a.cedar: policy #1 (one) does not parse: unexpected token `}`",
        "a.cedar: policy #4 (four) does not parse: unexpected token `,`",
        "a.cedar: policy #5 (five) does not parse: unexpected end of input",
        "a.cedar: [two] attribute `salary` on entity type `Person` not found",
    )
