"""``supercloud policy``: govern, test, explain and query the access policies.

Changes follow SCENARIOS policy 6: ``propose`` (validated, its test cases run), ``diff``
and ``replay`` against recorded decisions, ``approve`` by a second policy administrator,
``activate``, and ``rollback`` to any earlier active version; ``history`` lists every
step. Every command that touches the store is audited. The acting person is
``--as NAME`` with ``--role`` flags until the console brings authenticated officers.

People for ``explain``, ``who-can`` and ``what-can`` come from the identity store (every
person a directory sync stored, as ``broker.identity_store`` describes), or from a YAML file
of person facts (``--people FILE``, the shape of a bundle's tests.yaml ``people:``) for
what-if questions about people not yet synced; the environment (organisations, agreements, teams, services)
from ``--environment FILE`` (the shape of tests.yaml ``environment:``), else from the
configuration.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, NoReturn

import click
import yaml

from broker.audit import AuditEvent, AuditLog
from broker.cli import _services, cli
from broker.decision_log import DecisionRecorder
from broker.policy_store import SqlBundleRepository
from policies.bundle import PolicyBundle, compile_bundle, load_bundle
from policies.engine import PolicyEngine
from policies.errors import PolicyError, PolicyErrorCode
from policies.explain import explain as explain_decision
from policies.governance import PolicyGovernance
from policies.model import Environment, PersonFacts, RecordRef, Request
from policies.queries import summarise, what_can, who_can
from policies.repository import BundleState
from policies.testrun import run_tests

# Audit detail keys AuditLog refuses (they look like secrets) and what they are stored as.
_RENAMED_KEYS = {"code": "error_code"}
_ACTIONS = ("sign_in", "read", "write")


# --- plumbing ------------------------------------------------------------------------------


def _fail(message: str, problems: Iterable[str] = ()) -> NoReturn:
    lines = [message, *(f"  - {p}" for p in problems)]
    raise click.ClickException("\n".join(lines))


def _policy_error(error: PolicyError) -> NoReturn:
    _fail(f"{error.detail or error.code.value} [{error.code.value}]", error.problems)


def audit_sink(audit: AuditLog) -> Callable[[str, dict[str, Any]], None]:
    """Return the governance audit sink writing to ``audit`` (refusals recorded as ``denied``)."""

    def sink(event: str, details: dict[str, Any]) -> None:
        safe = {_RENAMED_KEYS.get(k, k): v for k, v in details.items()}
        outcome = "denied" if event.endswith("_refused") else "success"
        audit.append(AuditEvent(event[:64], outcome, actor=str(details.get("actor", ""))[:255] or None, details=safe))

    return sink


class _Context:
    """What every store-backed command needs, built lazily from the configuration."""

    def __init__(self, ctx: click.Context) -> None:
        self.services = _services(ctx)
        self.settings = self.services.settings
        self.audit = self.services.audit
        self.governance = PolicyGovernance(SqlBundleRepository(self.services.db), audit_sink(self.audit))
        self.decisions = DecisionRecorder(self.services.db)

    def query_audited(self, event: str, actor: str, details: dict[str, Any]) -> None:
        self.audit.append(AuditEvent(event, "success", actor=actor, details=details))


def _actor(value: str | None) -> str:
    if value is None or not value.strip():
        _fail("say who is acting: --as NAME (and --role policy-admin to change policies)")
    return value.strip()


def _load_yaml(path: str, what: str) -> Any:
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        _fail(f"{what} file not found: {path}")
    except IsADirectoryError:
        _fail(f"{what} must be a file, not a directory: {path}")
    except (OSError, UnicodeDecodeError) as error:
        _fail(f"cannot read {what} file {path}: {error}")
    except yaml.YAMLError as error:
        _fail(f"{what} file {path} is not valid YAML: {error}")


def load_environment(path: str) -> Environment:
    """Return the Environment in YAML file ``path`` (top level, or under ``environment:``).

    Raises click.ClickException listing every problem.
    """
    data = _load_yaml(path, "environment")
    if isinstance(data, Mapping) and "environment" in data:
        data = data["environment"]
    if not isinstance(data, Mapping):
        _fail(f"environment file {path}: must be a mapping of organisations, agreements, teams and services")
    try:
        return Environment.from_mapping(data)
    except PolicyError as error:
        _fail(f"environment file {path} is invalid", error.problems or (error.detail,))


def load_people(path: str) -> dict[str, PersonFacts]:
    """Return the people in YAML file ``path`` by persona name (top level, or under ``people:``).

    Every fact is given the file as its source and the file's modification time as when
    it was asserted. Raises click.ClickException listing every problem of every person.
    """
    data = _load_yaml(path, "people")
    if isinstance(data, Mapping) and "people" in data:
        data = data["people"]
    if not isinstance(data, Mapping) or not data:
        _fail(f"people file {path}: must be a mapping of persona name to person facts")
    when = dt.datetime.fromtimestamp(Path(path).stat().st_mtime, dt.UTC)
    source = f"people file {Path(path).name}"
    people: dict[str, PersonFacts] = {}
    problems: list[str] = []
    for name, facts in data.items():
        if not isinstance(facts, Mapping):
            problems.append(f"{name}: must be a mapping of facts")
            continue
        try:
            people[str(name)] = PersonFacts.from_mapping(
                {"subject": str(name), **facts}, default_source=source, default_time=when
            )
        except PolicyError as error:
            problems.extend(f"{name}: {p}" for p in error.problems or (error.detail,))
    if problems:
        _fail(f"people file {path} is invalid", problems)
    return people


def _find_person(people: Mapping[str, PersonFacts], wanted: str, where: str = "the people file") -> PersonFacts:
    if wanted in people:
        return people[wanted]
    for person in people.values():
        if person.subject == wanted:
            return person
    _fail(f"no person {wanted!r} in {where} (give a username or persona name, or a subject)", sorted(people)[:20])


def _people(context: _Context, path: str | None) -> tuple[dict[str, PersonFacts], str]:
    """Return the people asked about (from ``path``, else the identity store) and where they came from."""
    if path is not None:
        return load_people(path), "the people file"
    from broker.identity_store import people_in_store

    found = people_in_store(context.services.db, context.services.registry)
    if not found.people:
        _fail("the identity store holds nobody yet: run 'supercloud directories sync', or give --people FILE")
    left_out = [f"{found.leavers} leaver(s) (disabled, expired or deleted) left out"] if found.leavers else []
    for line in [*left_out, *(f"left out: {u}" for u in found.unusable)]:
        click.echo(line, err=True)
    return dict(found.people), "the identity store"


def _environment(context: _Context, path: str | None) -> Environment:
    if path is not None:
        return load_environment(path)
    from broker.policy_access import environment_from_settings

    return environment_from_settings(context.settings)


def _engine(context: _Context, version: str | None, environment: Environment) -> PolicyEngine:
    try:
        if version is None:
            return context.governance.active_engine(environment)
        return PolicyEngine(context.governance.compiled(version), environment)
    except PolicyError as error:
        if error.code is PolicyErrorCode.NO_ACTIVE_BUNDLE:
            _fail("no policy bundle is active yet: activate one, or name a stored one with --version")
        _policy_error(error)


def _read_bundle(path: str, version: str | None) -> PolicyBundle:
    target = Path(path)
    try:
        if target.is_dir():
            bundle = load_bundle(target)
        elif target.is_file() and target.suffix == ".json":
            bundle = PolicyBundle.from_json(json.loads(target.read_text(encoding="utf-8")))
        elif target.is_file() and target.name in ("bundle.yaml", "bundle.yml"):
            bundle = load_bundle(target.parent)
        elif target.exists():
            _fail(f"{path}: give a bundle directory, its bundle.yaml, or a bundle exported as .json")
        else:
            _fail(f"bundle not found: {path}")
    except json.JSONDecodeError as error:
        _fail(f"{path} is not valid JSON: {error}")
    except (OSError, UnicodeDecodeError) as error:
        _fail(f"cannot read {path}: {error}")
    except PolicyError as error:
        _policy_error(error)
    return bundle.with_version(version) if version else bundle


def _now(value: str | None) -> dt.datetime:
    if value is None:
        return dt.datetime.now(dt.UTC)
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        _fail(f"--at {value!r} is not an ISO 8601 time")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _emit(as_json: bool, document: Any, text: str) -> None:
    click.echo(json.dumps(document, indent=2, default=str) if as_json else text)


actor_option = click.option("--as", "actor", metavar="NAME", help="who is acting (audited)")
role_option = click.option("--role", "roles", multiple=True, metavar="ROLE", help="a role of the actor (repeatable)")
json_option = click.option("--json", "as_json", is_flag=True, help="print JSON")
people_option = click.option(
    "--people", "people_file", type=str,
    help="YAML file of person facts (tests.yaml shape) instead of the identity store",
)
environment_option = click.option(
    "--environment", "environment_file", type=str,
    help="YAML file of organisations, agreements, teams, services (default: the configuration)",
)
version_option = click.option("--version", "version", help="a stored version (default: the active one)")
at_option = click.option("--at", "at", help="decide as at this ISO 8601 time (default: now)")


# --- the group ----------------------------------------------------------------------------


@cli.group("policy")
def policy_group() -> None:
    """Access policies: propose, review, approve, activate, explain, query."""


@policy_group.command("propose")
@click.argument("path")
@click.option("--version", "version", help="store the bundle under this version instead of bundle.yaml's")
@actor_option
@role_option
@click.pass_context
def propose(ctx: click.Context, path: str, version: str | None, actor: str | None, roles: tuple[str, ...]) -> None:
    """Propose the bundle at PATH (a directory, its bundle.yaml or a .json export) as a new version."""
    who = _actor(actor)
    bundle = _read_bundle(path, version)
    context = _Context(ctx)
    try:
        proposal = context.governance.propose(bundle, who, roles)
    except PolicyError as error:
        _policy_error(error)
    record = proposal.record
    click.echo(
        f"Proposed {record.bundle.label} by {who}: {len(record.bundle.sources)} file(s), "
        f"{len(proposal.tests.results)} test case(s) passed."
    )
    click.echo(
        f"Next: review it ('supercloud policy diff {record.version}', 'supercloud policy replay {record.version}'); "
        "a second policy administrator approves it; then activate."
    )


@policy_group.command("diff")
@click.argument("version")
@click.option("--against", help="compare with this version (default: the active one)")
@actor_option
@json_option
@click.pass_context
def diff(ctx: click.Context, version: str, against: str | None, actor: str | None, as_json: bool) -> None:
    """Show what VERSION changes, policy by policy, against the active version."""
    who = _actor(actor)
    context = _Context(ctx)
    try:
        result = context.governance.diff(version, who, against)
    except PolicyError as error:
        _policy_error(error)
    document = {
        "base": result.base, "candidate": result.candidate, "tests_changed": result.tests_changed,
        "changes": [{"policy_id": c.policy_id, "kind": c.kind, "diff": c.text_diff} for c in result.changes],
    }
    _emit(as_json, document, result.to_text())


@policy_group.command("replay")
@click.argument("version")
@click.option("--service", help="only decisions about this service")
@click.option("--since", help="only decisions at or after this ISO 8601 time")
@click.option("--limit", type=click.IntRange(min=1), help="at most this many decisions (oldest first)")
@environment_option
@actor_option
@json_option
@click.pass_context
def replay(
    ctx: click.Context, version: str, service: str | None, since: str | None, limit: int | None,
    environment_file: str | None, actor: str | None, as_json: bool,
) -> None:
    """Replay recorded decisions against VERSION and list every one it would flip."""
    who = _actor(actor)
    context = _Context(ctx)
    environment = _environment(context, environment_file)
    start = _now(since) if since else None
    try:
        recorded = context.decisions.recorded(service=service, since=start, limit=limit)
        report = context.governance.replay(version, who, recorded, environment)
    except PolicyError as error:
        _policy_error(error)
    document = {
        "candidate": report.candidate, "total": report.total,
        "flips": [
            {"record_id": f.record_id, "subject": f.subject, "action": f.action, "service": f.service,
             "record": f.record, "was": "permit" if f.was_allowed else "deny",
             "now": "permit" if f.now_allowed else "deny", "policy_ids": list(f.new_policy_ids),
             "errors": list(f.new_errors)}
            for f in report.flips
        ],
    }
    _emit(as_json, document, report.to_text())


@policy_group.command("approve")
@click.argument("version")
@actor_option
@role_option
@click.pass_context
def approve(ctx: click.Context, version: str, actor: str | None, roles: tuple[str, ...]) -> None:
    """Approve VERSION as the second policy administrator (not the one who proposed it)."""
    who = _actor(actor)
    context = _Context(ctx)
    try:
        record = context.governance.approve(version, who, roles)
    except PolicyError as error:
        _policy_error(error)
    click.echo(f"Approved {record.bundle.label} (proposed by {record.proposer}, approved by {who}).")
    click.echo(f"Next: 'supercloud policy activate {record.version}'.")


@policy_group.command("activate")
@click.argument("version", required=False)
@actor_option
@role_option
@click.pass_context
def activate(ctx: click.Context, version: str | None, actor: str | None, roles: tuple[str, ...]) -> None:
    """Put an approved version in force (VERSION may be left out when exactly one is approved)."""
    who = _actor(actor)
    context = _Context(ctx)
    if version is None:
        approved = [r.version for r in context.governance.versions() if r.state is BundleState.APPROVED]
        if not approved:
            _fail("no approved version to activate: a version must be proposed, then approved by a second person")
        if len(approved) > 1:
            _fail("several versions are approved; name the one to activate", approved)
        version = approved[0]
    try:
        previous = context.governance.active()
        record = context.governance.activate(version, who, roles)
    except PolicyError as error:
        _policy_error(error)
    was = f" (was {previous.bundle.label})" if previous else ""
    click.echo(f"Active: {record.bundle.label}{was}.")


@policy_group.command("rollback")
@click.argument("version")
@actor_option
@role_option
@click.pass_context
def rollback(ctx: click.Context, version: str, actor: str | None, roles: tuple[str, ...]) -> None:
    """Put back in force VERSION, a version that was active before."""
    who = _actor(actor)
    context = _Context(ctx)
    try:
        previous = context.governance.active()
        record = context.governance.rollback(version, who, roles)
    except PolicyError as error:
        _policy_error(error)
    was = f" (was {previous.bundle.label})" if previous else ""
    click.echo(f"Rolled back: {record.bundle.label} is active again{was}.")


@policy_group.command("history")
@actor_option
@json_option
@click.pass_context
def history(ctx: click.Context, actor: str | None, as_json: bool) -> None:
    """List every stored version and every governance step, oldest first."""
    who = _actor(actor)
    context = _Context(ctx)
    versions = context.governance.versions()
    steps = context.governance.history()
    context.query_audited("policy.history.read", who, {"versions": len(versions), "steps": len(steps)})
    document = {
        "versions": [
            {"version": r.version, "state": r.state.value, "proposer": r.proposer, "approver": r.approver,
             "proposed_at": r.proposed_at, "approved_at": r.approved_at, "activated_at": r.activated_at}
            for r in versions
        ],
        "history": [
            {"at": e.at, "event": e.event, "version": e.version, "actor": e.actor, "details": dict(e.details)}
            for e in steps
        ],
    }
    lines = ["Versions:"] if versions else ["No versions stored yet."]
    for r in versions:
        approval = f", approved by {r.approver}" if r.approver else ""
        lines.append(f"  {r.version:<24} {r.state.value:<10} proposed by {r.proposer}{approval}")
    if steps:
        lines.append("History:")
    for e in steps:
        detail = e.details.get("detail") if e.event.endswith("_refused") else None
        lines.append(f"  {e.at.isoformat(timespec='seconds')}  {e.event:<32} {e.version:<24} {e.actor}"
                     + (f"  ({detail})" if detail else ""))
    _emit(as_json, document, "\n".join(lines))


@policy_group.command("explain")
@click.option("--person", "person_name", required=True, help="a username (identity store), persona name (--people) or subject")
@click.option("--service", required=True)
@click.option("--action", type=click.Choice(_ACTIONS), default="sign_in", show_default=True)
@click.option("--record-id", help="the case record (read / write)")
@click.option("--home-borough", help="the record's home borough (read / write)")
@people_option
@environment_option
@version_option
@at_option
@actor_option
@json_option
@click.pass_context
def explain(
    ctx: click.Context, person_name: str, service: str, action: str, record_id: str | None,
    home_borough: str | None, people_file: str | None, environment_file: str | None, version: str | None,
    at: str | None, actor: str | None, as_json: bool,
) -> None:
    """Explain the decision for one person and service: policies, attributes read and their sources."""
    who = _actor(actor)
    context = _Context(ctx)
    people, where = _people(context, people_file)
    person = _find_person(people, person_name, where)
    record = None
    if action != "sign_in":
        if not record_id or not home_borough:
            _fail(f"--action {action} needs --record-id and --home-borough")
        try:
            record = RecordRef(record_id, home_borough)
        except PolicyError as error:
            _policy_error(error)
    engine = _engine(context, version, _environment(context, environment_file))
    try:
        decision = engine.decide(Request(person, action, service, _now(at), record=record))
    except PolicyError as error:
        _policy_error(error)
    explanation = explain_decision(engine, decision)
    context.query_audited(
        "policy.explained", who,
        {"subject": person.subject, "service": service, "action": action, "bundle": engine.label,
         "decision": decision.effect},
    )
    _emit(as_json, explanation.to_json(), explanation.to_text())


@policy_group.command("who-can")
@click.argument("service")
@click.option("--permitted-only", is_flag=True, help="list only the people permitted")
@people_option
@environment_option
@version_option
@at_option
@actor_option
@json_option
@click.pass_context
def who_can_command(
    ctx: click.Context, service: str, permitted_only: bool, people_file: str | None,
    environment_file: str | None, version: str | None, at: str | None, actor: str | None, as_json: bool,
) -> None:
    """Who can sign in to SERVICE, with the policies that decide for each person."""
    who = _actor(actor)
    context = _Context(ctx)
    people, _ = _people(context, people_file)
    environment = _environment(context, environment_file)
    if service not in {s.id for s in environment.services}:
        _fail(f"unknown service {service!r}", [f"known: {', '.join(sorted(s.id for s in environment.services))}"])
    engine = _engine(context, version, environment)
    rows = who_can(engine, service, people.values(), now=_now(at), include_denied=not permitted_only)
    permitted = sum(d.allowed for _, d in rows)
    context.query_audited(
        "policy.who_can", who, {"service": service, "bundle": engine.label, "people": len(people), "permitted": permitted}
    )
    document = {
        "service": service, "bundle": engine.label, "people": len(people), "permitted": permitted,
        "rows": [{"subject": p.subject, "decision": d.effect, "why": summarise(d)} for p, d in rows],
    }
    lines = [f"{permitted} of {len(people)} people can sign in to {service} under {engine.label}:"]
    lines.extend(f"  {d.effect:<6} {p.subject:<32} {summarise(d)}" for p, d in rows)
    _emit(as_json, document, "\n".join(lines))


@policy_group.command("what-can")
@click.argument("person_name", metavar="PERSON")
@click.option("--permitted-only", is_flag=True, help="list only the services permitted")
@people_option
@environment_option
@version_option
@at_option
@actor_option
@json_option
@click.pass_context
def what_can_command(
    ctx: click.Context, person_name: str, permitted_only: bool, people_file: str | None,
    environment_file: str | None, version: str | None, at: str | None, actor: str | None, as_json: bool,
) -> None:
    """Which services PERSON can sign in to, with the policies that decide each."""
    who = _actor(actor)
    context = _Context(ctx)
    people, where = _people(context, people_file)
    person = _find_person(people, person_name, where)
    engine = _engine(context, version, _environment(context, environment_file))
    try:
        rows = what_can(engine, person, now=_now(at), include_denied=not permitted_only)
    except PolicyError as error:
        _policy_error(error)
    permitted = sum(d.allowed for _, d in rows)
    context.query_audited(
        "policy.what_can", who, {"subject": person.subject, "bundle": engine.label, "permitted": permitted}
    )
    document = {
        "subject": person.subject, "bundle": engine.label,
        "rows": [{"service": s, "decision": d.effect, "why": summarise(d)} for s, d in rows],
    }
    lines = [f"{person.subject} can sign in to {permitted} of {len(rows)} services under {engine.label}:"]
    lines.extend(f"  {d.effect:<6} {s:<24} {summarise(d)}" for s, d in rows)
    _emit(as_json, document, "\n".join(lines))


@policy_group.command("test")
@click.argument("directory")
@json_option
def test_command(directory: str, as_json: bool) -> None:
    """Run the test cases of the bundle in DIRECTORY; report failures and policies never exercised."""
    if not Path(directory).is_dir():
        _fail(f"bundle directory not found: {directory}")
    try:
        compiled = compile_bundle(load_bundle(directory))
        report = run_tests(compiled)
    except PolicyError as error:
        _policy_error(error)
    exercised = {
        pid
        for result in report.results
        for pid in (*result.decision.policy_ids,
                    *(p for ids in result.decision.release_policy_ids.values() for p in ids),
                    *(p for o in result.decision.obligations for p in o.policy_ids))
    }
    unexercised = sorted(set(compiled.policies) - exercised)
    passed = sum(r.passed for r in report.results)
    document = {
        "bundle": compiled.label, "passed": passed, "failed": len(report.results) - passed,
        "cases": [{"name": r.name, "passed": r.passed, "mismatches": list(r.mismatches)} for r in report.results],
        "never_exercised": unexercised,
        "coverage": f"{len(compiled.policies) - len(unexercised)}/{len(compiled.policies)}",
    }
    lines = [f"{'PASS' if r.passed else 'FAIL'}  {r.name}" + "".join(f"\n      {m}" for m in r.mismatches)
             for r in report.results]
    lines.append(
        f"{compiled.label}: {passed} of {len(report.results)} case(s) passed; "
        f"{document['coverage']} policies exercised"
    )
    if unexercised:
        lines.append("Never exercised by any case: " + ", ".join(unexercised))
    _emit(as_json, document, "\n".join(lines))
    if not report.passed:
        sys.exit(1)


