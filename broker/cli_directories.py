"""``supercloud directories``: sync people from the boroughs' directories, and test a directory's setup.

``sync [ORG]`` imports people (``broker.directory_sync``) and ends leavers' access; it
prints one line per directory and exits 1 when any directory failed. ``test ORG`` runs
``directories.ldap.diagnostics`` against each of the organisation's LDAP / AD sources and
prints one ✓/✗ line per check; it exits 1 when any check failed. Neither prints a secret.
"""

from __future__ import annotations

import sys

import click

from broker.cli import _services, _settings, cli


@cli.group("directories")
def directories_group() -> None:
    """The organisations' LDAP and Active Directory directories."""


@directories_group.command("sync")
@click.argument("organisation", required=False)
@click.option("--full", is_flag=True, help="read everyone (finds deletions by absence) instead of changes since the last run")
@click.option("--allow-mass-removal", is_flag=True, help="accept a full run that removes more than half a directory's people")
@click.option("--as", "actor", default="directory-sync", show_default=True, help="who runs it (audited)")
@click.pass_context
def sync_command(ctx: click.Context, organisation: str | None, full: bool, allow_mass_removal: bool, actor: str) -> None:
    """Import the people of ORGANISATION's directories (every organisation's if omitted)."""
    from broker.directory_people import DirectoryPeople
    from broker.directory_sync import DirectorySyncService

    services = _services(ctx)
    try:
        service = DirectorySyncService(
            services.settings, DirectoryPeople(services.db),
            lambda subject_id, reason: services.oidc.end_sessions_for_subject(subject_id, reason, actor=actor),
            services.audit.append,
        )
        try:
            reports = service.sync(organisation, full=full, actor=actor, allow_mass_removal=allow_mass_removal)
        except KeyError:
            raise click.ClickException(f"no organisation {organisation!r} in the configuration") from None
        if not reports:
            click.echo(f"{organisation or 'no organisation'} has no LDAP or Active Directory directory to sync")
            return
        for report in reports:
            click.echo(report.line())
        if any(r.error for r in reports):
            sys.exit(1)
    finally:
        services.engine.dispose()


@directories_group.command("test")
@click.argument("organisation")
@click.option("--user", "username", help="a username to look up (and expand the groups of) as a sample")
@click.pass_context
def test_command(ctx: click.Context, organisation: str, username: str | None) -> None:
    """Check ORGANISATION's directories: each server, TLS, the service account, a lookup, groups."""
    from broker.directory_sync import ldap_sources
    from directories.ldap.diagnostics import diagnose

    settings = _settings(ctx)
    try:
        sources = ldap_sources(settings, organisation)
    except KeyError:
        raise click.ClickException(f"no organisation {organisation!r} in the configuration") from None
    if not sources:
        raise click.ClickException(f"{organisation} has no LDAP or Active Directory directory")
    failed = False
    for _, cfg in sources:
        click.echo(f"{cfg.id} ({cfg.type}, {cfg.tls_mode})")
        for check in diagnose(cfg, username=username):
            click.echo(f"  {'✓' if check.ok else '✗'} {check.name}: {check.detail}")
            failed |= not check.ok
    if failed:
        sys.exit(1)
