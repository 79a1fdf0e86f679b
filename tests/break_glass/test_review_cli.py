"""The review queue and MFA reset from the command line: outcomes recorded once, everything audited."""

from __future__ import annotations

import json

from click.testing import CliRunner

from broker.cli import cli


def _config(settings) -> str:  # type: ignore[no-untyped-def]
    return str(settings.base_dir / "broker.yaml")


def _grant(services):  # type: ignore[no-untyped-def]
    return services.break_glass.grant(person="https://cis2.test:443/|nhs-555", subject_id="s-1", organisation="nhs",
                                      service="case-records", reason_code="04", justification="Child at risk tonight", ip=None)


def test_queue_review_and_alerts(settings, services) -> None:  # type: ignore[no-untyped-def]
    grant = _grant(services)
    runner = CliRunner()
    listed = runner.invoke(cli, ["--config", _config(settings), "break-glass", "queue", "--json"], obj={})
    assert listed.exit_code == 0 and json.loads(listed.output)[0]["reference"] == grant.reference
    alerts = runner.invoke(cli, ["--config", _config(settings), "break-glass", "alerts", "nhs"], obj={})
    assert grant.reference in alerts.output and "Child" not in alerts.output
    done = runner.invoke(cli, ["--config", _config(settings), "break-glass", "review", grant.reference,
                               "--outcome", "escalated", "--as", "grace.obi"], obj={})
    assert done.exit_code == 0 and "escalated" in done.output
    again = runner.invoke(cli, ["--config", _config(settings), "break-glass", "review", grant.reference,
                                "--outcome", "appropriate", "--as", "grace.obi"], obj={})
    assert again.exit_code != 0 and "already been reviewed" in again.output
    assert ("break_glass_reviewed", "success") in [(r.event, r.outcome) for r in services.audit.records()]


def test_mfa_reset_is_audited_and_refuses_when_nothing_to_reset(settings, services) -> None:  # type: ignore[no-untyped-def]
    import pyotp

    from federation.identity import SubjectRef

    subject_id = services.subjects.subject_for(SubjectRef("urn:supercloud:directory:camden-demo", "abc"))
    enrolment = services.login.totp.begin_enrolment(subject_id, "a@camden.test")
    services.login.totp.confirm_enrolment(subject_id, pyotp.TOTP(enrolment.secret).now())
    args = ["--config", _config(settings), "mfa", "reset", "--issuer", "urn:supercloud:directory:camden-demo",
            "--subject", "abc", "--as", "tom.hughes", "--reason", "lost phone"]
    first = CliRunner().invoke(cli, args, obj={})
    assert first.exit_code == 0, first.output
    assert not services.login.totp.is_enrolled(subject_id)
    second = CliRunner().invoke(cli, args, obj={})
    assert second.exit_code != 0 and "no second factor" in second.output
    reset = [r for r in services.audit.records() if r.event == "mfa_reset"]
    assert reset and reset[0].actor == "tom.hughes"
    assert [n.kind for n in services.notifications.pending(subject_id)] == ["mfa_reset"]
