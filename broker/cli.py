"""The ``supercloud`` command line."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from broker.errors import BrokerError
from config import ConfigError, Settings, load_settings
from config.loader import config_path
from federation.errors import FederationError


def _settings(ctx: click.Context) -> Settings:
    try:
        return load_settings(config_path(ctx.obj["config"]))
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
@click.option("--config", "config", type=click.Path(dir_okay=False), help="configuration file (default: $SUPERCLOUD_CONFIG)")
@click.pass_context
def cli(ctx: click.Context, config: str | None) -> None:
    """London Supercloud identity broker."""
    ctx.ensure_object(dict)
    ctx.obj["config"] = config


@cli.group("config")
def config_group() -> None:
    """Configuration files."""


@config_group.command("check")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--no-secrets", is_flag=True, help="do not require the referenced secrets to be readable")
def config_check(file: str, no_secrets: bool) -> None:
    """Validate FILE, listing every problem with its path."""
    try:
        settings = load_settings(file, resolve_secrets=not no_secrets)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    click.echo(
        f"{file}: OK ({len(settings.organisations)} organisations, {len(settings.applications)} applications, "
        f"{settings.broker.environment})"
    )


@cli.group("db")
def db_group() -> None:
    """The database."""


@db_group.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Apply every pending migration."""
    from broker.bootstrap import migrate

    migrate(_settings(ctx))
    click.echo("database is up to date")


@db_group.command("purge")
@click.pass_context
def db_purge(ctx: click.Context) -> None:
    """Delete short-lived rows that are over: expired state-store entries (SQL store; Redis expires
    its own) and the SAML session participants of expired or ended sessions (for cron)."""
    from broker.saml.participants import Participants
    from broker.state import SqlStateStore

    services = _services(ctx)
    state = services.state.purge_expired() if isinstance(services.state, SqlStateStore) else 0
    participants = Participants(services.db).purge()
    click.echo(f"purged {state} expired state entries, {participants} SAML session participants of ended sessions")


@cli.command("init")
@click.pass_context
def init(ctx: click.Context) -> None:
    """Migrate, create signing keys and register the configured applications (idempotent)."""
    from broker.bootstrap import initialise

    result = _guard(lambda: initialise(_settings(ctx)))
    click.echo(f"initialised: {len(result.created_keys)} new signing keys, {len(result.applications)} applications")


@cli.group("keys")
def keys_group() -> None:
    """Signing keys."""


@keys_group.command("init")
@click.pass_context
def keys_init(ctx: click.Context) -> None:
    """Create a current and a next key for each algorithm where missing."""
    services = _services(ctx)
    created = services.keyring.ensure()
    click.echo(f"created {len(created)} keys")


@keys_group.command("rotate")
@click.option("--alg", type=click.Choice(["ES256", "RS256"]), help="the algorithm to rotate (with --if-due: default all)")
@click.option("--if-due", "if_due", is_flag=True, help="rotate only keys that have signed longer than --max-age-days (for cron)")
@click.option("--max-age-days", type=click.IntRange(1, 3650), default=90, show_default=True,
              envvar="SUPERCLOUD_KEY_MAX_AGE_DAYS", help="the longest a key signs before --if-due rotates it")
@click.option("--saml-sp", "saml_sp", help="rotate this upstream SAML source's generated SP keys (--if-due: all that are due)")
@click.pass_context
def keys_rotate(ctx: click.Context, alg: str | None, if_due: bool, max_age_days: int, saml_sp: str | None) -> None:
    """Promote the next key to current; the old current stays published as previous."""
    import datetime as dt

    from broker.audit import AuditEvent
    from broker.sp_key_rotation import rotate_due_sp_keys, rotate_sp_keys

    services = _services(ctx)
    if saml_sp and not if_due:
        for line in _guard(lambda: rotate_sp_keys(services, saml_sp, actor="cli")):
            click.echo(line)
        return
    if not if_due:
        if alg is None:
            raise click.UsageError("--alg is required unless --if-due is given")
        kid = _guard(lambda: services.keyring.rotate(alg))  # type: ignore[arg-type]
        services.audit.append(AuditEvent("keys_rotated", "success", actor="cli", details={"alg": alg, "current": kid}))
        click.echo(f"{alg}: current key is now {kid}")
        return
    for name in [alg] if alg else ["ES256", "RS256"]:
        rotated = _guard(lambda: services.keyring.rotate_if_due(name, dt.timedelta(days=max_age_days)))  # type: ignore[arg-type]
        if rotated is None:
            click.echo(f"{name}: not due (max age {max_age_days} days)")
            continue
        services.audit.append(AuditEvent("keys_rotated", "success", actor="schedule",
                                         details={"alg": name, "current": rotated, "max_age_days": max_age_days}))
        click.echo(f"{name}: current key is now {rotated}")
    for line in _guard(lambda: rotate_due_sp_keys(services, max_age_days)):
        click.echo(line)


@cli.group("audit")
def audit_group() -> None:
    """The audit log."""


@audit_group.command("verify")
@click.pass_context
def audit_verify(ctx: click.Context) -> None:
    """Seal what is unsealed, then check the hash chain, every record's MAC and every writer's
    numbering; exits 1 and lists every problem if the log was tampered with."""
    audit = _services(ctx).audit
    audit.seal()
    result = audit.verify()
    if result.ok:
        click.echo(f"audit log intact: {result.records} records")
        return
    for problem in result.problems:
        click.echo(problem, err=True)
    click.echo(f"audit log TAMPERED: {len(result.problems)} problem(s) in {result.records} records", err=True)
    sys.exit(1)


@audit_group.command("seal")
@click.pass_context
def audit_seal(ctx: click.Context) -> None:
    """Link every unsealed record into the hash chain (workers also do this every half second)."""
    sealed = _services(ctx).audit.seal()
    click.echo(f"sealed {sealed} records")


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=lambda: int(os.environ.get("PORT", "8000")), show_default="8000 or $PORT")
@click.option("--workers", type=int, default=2, show_default=True)
@click.option("--threads", type=int, default=4, show_default=True)
@click.option("--init/--no-init", "do_init", default=True, show_default=True, help="migrate and create keys first")
@click.pass_context
def serve_command(ctx: click.Context, host: str, port: int, workers: int, threads: int, do_init: bool) -> None:
    """Serve the broker over HTTP."""
    from broker.bootstrap import initialise
    from broker.serve import serve

    settings = _settings(ctx)
    if do_init:
        _guard(lambda: initialise(settings))
    else:
        _guard(lambda: _check_startable(settings))
    serve(config_path(ctx.obj["config"]), host=host, port=port, workers=workers, threads=threads)


def _check_startable(settings: Settings) -> None:
    from broker.services import build_services

    build_services(settings).engine.dispose()


def _services(ctx: click.Context):  # type: ignore[no-untyped-def]
    from broker.services import build_services

    services = _guard(lambda: build_services(_settings(ctx)))
    # A command that ended sessions (leavers, admins) delivers its back-channel logout tokens
    # before exiting; whatever cannot be delivered now stays in the outbox for the workers.
    ctx.call_on_close(lambda: _deliver_logout_tokens(services))
    return services


def _deliver_logout_tokens(services) -> None:  # type: ignore[no-untyped-def]
    try:
        services.oidc.logout.outbox.deliver_due()
    except Exception as exc:  # noqa: BLE001 - never fail the command for this: the rows stay for the workers
        click.echo(f"back-channel logout tokens stay queued for the serving workers ({type(exc).__name__})", err=True)


def _guard(action):  # type: ignore[no-untyped-def]
    try:
        return action()
    except (BrokerError, FederationError) as exc:
        raise click.ClickException(getattr(exc, "message", None) or str(exc)) from None


import broker.cli_policy  # noqa: E402,F401  (registers the 'supercloud policy' group)
import broker.cli_access  # noqa: E402,F401  (registers the break-glass and mfa groups)
import broker.cli_sps  # noqa: E402,F401  (registers the 'supercloud sps' group)
import broker.cli_directories  # noqa: E402,F401  (registers the 'supercloud directories' group)
import broker.cli_orgs  # noqa: E402,F401  (registers the 'supercloud orgs' group)
import broker.cli_clients  # noqa: E402,F401  (registers the 'supercloud clients' and 'logout' groups)


def main() -> None:
    """Entry point of the ``supercloud`` console script."""
    cli(obj={})


if __name__ == "__main__":
    main()
