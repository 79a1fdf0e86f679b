"""``supercloud break-glass`` (review queue, outcomes, alerts) and ``supercloud mfa reset``.

The acting officer is named with ``--as`` until the console brings authenticated officers;
every change is audited.
"""

from __future__ import annotations

import json

import click

from broker.audit import AuditEvent
from broker.cli import _guard, _services, cli

from federation.identity import SubjectRef


@cli.group("break-glass")
def break_glass_group() -> None:
    """Emergency-access grants and their review."""


@break_glass_group.command("queue")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def queue(ctx: click.Context, as_json: bool) -> None:
    """List grants awaiting review, oldest first."""
    grants = _services(ctx).break_glass.review_queue()
    if as_json:
        click.echo(json.dumps([
            {"reference": g.reference, "organisation": g.organisation, "service": g.service, "reason_code": g.reason_code,
             "justification": g.justification, "granted_at": g.granted_at.isoformat(), "expires_at": g.expires_at.isoformat()}
            for g in grants
        ]))
        return
    if not grants:
        click.echo("no emergency access is waiting for review")
    for g in grants:
        click.echo(f"{g.reference}  {g.granted_at:%Y-%m-%d %H:%M}  {g.organisation:<10} {g.service:<14} reason {g.reason_code}: {g.justification}")


@break_glass_group.command("review")
@click.argument("reference")
@click.option("--outcome", type=click.Choice(["appropriate", "misuse", "escalated"]), required=True)
@click.option("--as", "reviewer", required=True, help="the reviewing officer")
@click.option("--notes", default="")
@click.pass_context
def review(ctx: click.Context, reference: str, outcome: str, reviewer: str, notes: str) -> None:
    """Record the outcome of the review of REFERENCE (once)."""
    grant = _guard(lambda: _services(ctx).break_glass.review(reference, outcome, reviewer=reviewer, notes=notes))
    click.echo(f"{grant.reference}: {grant.review_outcome} (reviewed by {grant.reviewed_by})")


@break_glass_group.command("alerts")
@click.argument("organisation")
@click.pass_context
def alerts(ctx: click.Context, organisation: str) -> None:
    """List the privacy-officer alerts of ORGANISATION (references only)."""
    for alert in _services(ctx).break_glass.alerts(organisation):
        click.echo(f"{alert.created_at:%Y-%m-%d %H:%M}  {alert.kind}  {alert.reference}")


@cli.group("mfa")
def mfa_group() -> None:
    """Second factors."""


@mfa_group.command("reset")
@click.option("--issuer", required=True, help="the source's issuer, e.g. urn:supercloud:directory:camden-ad")
@click.option("--subject", required=True, help="the person's subject at that source (directory object id)")
@click.option("--as", "actor", required=True, help="the administrator resetting it")
@click.option("--reason", required=True)
@click.pass_context
def reset(ctx: click.Context, issuer: str, subject: str, actor: str, reason: str) -> None:
    """Remove a person's authenticator app and recovery codes; they enrol again at next sign-in."""
    services = _services(ctx)
    subject_id = services.subjects.subject_for(SubjectRef(issuer, subject))
    removed = services.login.totp.reset(subject_id)
    if not removed:
        raise click.ClickException("that person has no second factor to reset")
    services.audit.append(AuditEvent("mfa_reset", "success", actor=actor, details={"subject": subject_id, "reason": reason}))
    services.notifications.notify(subject_id, None, "mfa_reset")
    click.echo("second factor removed; the person sets up a new one at their next sign-in")



