"""``supercloud clients`` (register, show, list, remove, rotate-secret, initial access tokens)
and ``supercloud logout deliver``.

A client registered here is validated by ``config.client_metadata.ClientMetadata``, the rules
configuration and dynamic registration use. Secrets and tokens are printed once and stored
only as keyed hashes; every change and every refusal is audited.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from broker.audit import AuditEvent
from broker.cli import _guard, _services, cli
from broker.clients import Client, UnknownClient, metadata_problems
from broker.oidc.registration import client_metadata
from config.client_metadata import GRANT_TOKEN_EXCHANGE, ClientMetadata

GRANT_CHOICES = ["authorization_code", "refresh_token", "client_credentials", "token-exchange", GRANT_TOKEN_EXCHANGE]
_DURATION = re.compile(r"^(\d+)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> dt.timedelta:
    """Return ``7d`` / ``12h`` / ``30m`` / ``90s`` / ``3600`` as a timedelta. Raises click.BadParameter."""
    match = _DURATION.match(text.strip().lower())
    if not match or int(match.group(1)) <= 0:
        raise click.BadParameter(f"{text!r} is not a duration like 7d, 12h, 30m or 3600s")
    return dt.timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def _read_jwks(path: str | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise click.BadParameter(f"cannot read {path}: {exc.strerror}", param_hint="--jwks-file") from None
    except ValueError:
        raise click.BadParameter(f"{path} is not JSON", param_hint="--jwks-file") from None
    if isinstance(data, dict) and "keys" not in data and "kty" in data:
        data = {"keys": [data]}  # a single JWK: wrap it in a set
    if not isinstance(data, dict):
        raise click.BadParameter(f"{path} must hold a JWK Set ({{\"keys\": [...]}}) or one JWK", param_hint="--jwks-file")
    return data


def _refuse(services, message: str, **details: Any) -> None:  # type: ignore[no-untyped-def]
    services.audit.append(AuditEvent("client_registered", "failure", actor="cli", details={"reason": message[:500], **details}))
    raise click.ClickException(message)


@cli.group("clients")
def clients_group() -> None:
    """Registered applications (OIDC clients) and initial access tokens for self-registration."""


@clients_group.command("add")
@click.option("--name", required=True, help="the application's name, as people see it")
@click.option("--redirect-uri", "redirect_uris", multiple=True, help="https (http only on loopback); repeat for several")
@click.option("--post-logout-redirect-uri", "post_logout", multiple=True, help="where RP-initiated logout may return to")
@click.option("--auth-method", type=click.Choice(["client_secret_basic", "client_secret_post", "private_key_jwt"]),
              default="client_secret_basic", show_default=True, help="token_endpoint_auth_method")
@click.option("--jwks-file", type=click.Path(dir_okay=False), help="for private_key_jwt: a JSON file with the public JWK Set")
@click.option("--jwks-uri", help="for private_key_jwt: where the broker fetches the public keys")
@click.option("--auth-signing-alg", type=click.Choice(["ES256", "RS256"]), help="for private_key_jwt: the one algorithm allowed")
@click.option("--signing-alg", type=click.Choice(["ES256", "RS256"]), help="ID token signing algorithm (default: the broker's)")
@click.option("--subject-type", type=click.Choice(["public", "pairwise"]), default="public", show_default=True)
@click.option("--sector-identifier", help="pairwise sector (a host); default: the redirect URIs' host")
@click.option("--backchannel-logout-uri")
@click.option("--backchannel-logout-session-required", is_flag=True)
@click.option("--frontchannel-logout-uri")
@click.option("--frontchannel-logout-session-required", is_flag=True)
@click.option("--grant-type", "grant_types", multiple=True, type=click.Choice(GRANT_CHOICES),
              help="repeat for several (default: authorization_code and refresh_token); token-exchange = RFC 8693")
@click.option("--audience", "audiences", multiple=True,
              help="a service (client id or resource URI) it may ask tokens for: needed by client_credentials and token exchange")
@click.option("--contact", "contacts", multiple=True, help="e-mail of someone responsible; repeat for several")
@click.option("--scope", help="the scope values it may ask for, space-separated (default: any we support)")
@click.option("--organisation", help="the member organisation that owns it")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
@click.pass_context
def clients_add(ctx: click.Context, name: str, redirect_uris: tuple[str, ...], post_logout: tuple[str, ...], auth_method: str,
                jwks_file: str | None, jwks_uri: str | None, auth_signing_alg: str | None, signing_alg: str | None,
                subject_type: str, sector_identifier: str | None, backchannel_logout_uri: str | None,
                backchannel_logout_session_required: bool, frontchannel_logout_uri: str | None,
                frontchannel_logout_session_required: bool, grant_types: tuple[str, ...], audiences: tuple[str, ...],
                contacts: tuple[str, ...], scope: str | None, organisation: str | None, as_json: bool) -> None:
    """Register an application; prints its client id and (for the secret methods) its secret, once."""
    services = _services(ctx)
    if organisation is not None and services.registry.get(organisation) is None:
        _refuse(services, f"no member organisation {organisation!r} (see 'supercloud orgs list')", name=name)
    grants = [GRANT_TOKEN_EXCHANGE if g == "token-exchange" else g for g in grant_types]
    fields: dict[str, Any] = {
        "name": name.strip(), "redirect_uris": list(redirect_uris), "post_logout_redirect_uris": list(post_logout),
        "token_endpoint_auth_method": auth_method, "jwks": _read_jwks(jwks_file), "jwks_uri": jwks_uri,
        "token_endpoint_auth_signing_alg": auth_signing_alg, "signing_alg": signing_alg, "subject_type": subject_type,
        "sector_identifier": sector_identifier, "backchannel_logout_uri": backchannel_logout_uri,
        "backchannel_logout_session_required": backchannel_logout_session_required,
        "frontchannel_logout_uri": frontchannel_logout_uri,
        "frontchannel_logout_session_required": frontchannel_logout_session_required,
        "allowed_audiences": list(audiences), "contacts": list(contacts), "scope": scope,
    }
    if grants:
        fields["grant_types"] = grants
    try:
        metadata = ClientMetadata.model_validate(fields)
    except ValidationError as exc:
        _refuse(services, "the application cannot be registered: " + metadata_problems(exc), name=name)
    new = services.clients.register(metadata, origin="cli", organisation=organisation)
    services.audit.append(AuditEvent("client_registered", "success", actor="cli", client_id=new.client.client_id,
                                     details={"name": metadata.name, "redirect_uris": list(metadata.redirect_uris),
                                              "grant_types": list(metadata.grant_types), "organisation": organisation,
                                              "token_endpoint_auth_method": metadata.token_endpoint_auth_method}))
    if as_json:
        body = {"client_id": new.client.client_id, **({"client_secret": new.client_secret} if new.client_secret else {}),
                **client_metadata(new.client, services.settings.broker.default_signing_alg)}
        click.echo(json.dumps(body))
        return
    click.echo(f"client_id:     {new.client.client_id}")
    if new.client_secret:
        click.echo(f"client_secret: {new.client_secret}\nThe secret is shown only now; store it in the application's secret store.")
    else:
        click.echo("No secret: the application authenticates with its private key (private_key_jwt).")


@clients_group.command("show")
@click.argument("client_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def clients_show(ctx: click.Context, client_id: str, as_json: bool) -> None:
    """Show one application's registration (never its secret)."""
    services = _services(ctx)
    found = services.clients.find(client_id)
    if found is None:
        raise click.ClickException(f"no client {client_id!r} is registered (see 'supercloud clients list')")
    client, disabled = found
    body = {"client_id": client.client_id, "origin": client.origin, "organisation": client.organisation, "removed": disabled,
            "created_at": client.created_at.isoformat() if client.created_at else None,
            "allowed_audiences": list(client.allowed_audiences),
            **client_metadata(client, services.settings.broker.default_signing_alg)}
    if as_json:
        click.echo(json.dumps(body))
        return
    for key, value in body.items():
        if value in (None, [], ""):
            continue
        click.echo(f"{key + ':':<38} {', '.join(value) if isinstance(value, list) else json.dumps(value) if isinstance(value, dict) else value}")


@clients_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def clients_list(ctx: click.Context, as_json: bool) -> None:
    """List the registered applications (removed ones are not listed)."""
    clients = sorted(_services(ctx).clients.all(), key=lambda c: c.client_id)
    if as_json:
        click.echo(json.dumps([_summary(c) for c in clients]))
        return
    if not clients:
        click.echo("no applications are registered")
    for c in clients:
        click.echo(f"{c.client_id:<28} {c.origin:<7} {c.token_endpoint_auth_method:<20} {' '.join(_short(g) for g in c.grant_types):<40} {c.name}")


def _summary(client: Client) -> dict[str, Any]:
    return {"client_id": client.client_id, "name": client.name, "origin": client.origin, "organisation": client.organisation,
            "token_endpoint_auth_method": client.token_endpoint_auth_method, "grant_types": list(client.grant_types)}


def _short(grant: str) -> str:
    return "token-exchange" if grant == GRANT_TOKEN_EXCHANGE else grant


def _managed_client(services: Any, client_id: str, in_config: str) -> Client:
    """Return the registered, live client ``client_id`` that the store manages.

    Raises ClickException when there is none, or with the message ``in_config`` when it comes
    from the configuration file (which the CLI does not edit).
    """
    found = services.clients.find(client_id)
    if found is None or found[1]:
        raise click.ClickException(f"no client {client_id!r} is registered (see 'supercloud clients list')")
    if found[0].origin == "config":
        raise click.ClickException(in_config)
    return found[0]


@clients_group.command("remove")
@click.argument("client_id")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
@click.pass_context
def clients_remove(ctx: click.Context, client_id: str, yes: bool) -> None:
    """Remove an application: it can no longer sign anyone in and every token issued to it is revoked."""
    services = _services(ctx)
    client = _managed_client(
        services, client_id, f"{client_id} is registered in the configuration file; remove it there (and run 'supercloud init')"
    )
    if not yes:
        click.confirm(f"Remove {client.name} ({client_id}) and revoke its tokens?", abort=True)
    try:
        services.clients.remove(client_id)
    except UnknownClient as exc:
        raise click.ClickException(str(exc)) from None
    services.audit.append(AuditEvent("client_removed", "success", actor="cli", client_id=client_id))
    click.echo(f"removed {client_id}; its tokens are revoked")


@clients_group.command("rotate-secret")
@click.argument("client_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def clients_rotate_secret(ctx: click.Context, client_id: str, as_json: bool) -> None:
    """Give an application a new secret; the old one stops working at once (within 2 s in every worker)."""
    services = _services(ctx)
    _managed_client(
        services, client_id, f"{client_id}'s secret comes from the configuration file ({client_id}.client_secret); change it there"
    )
    try:
        new = services.clients.rotate_secret(client_id)
    except (UnknownClient, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    services.audit.append(AuditEvent("client_secret_rotated", "success", actor="cli", client_id=client_id))
    if as_json:
        click.echo(json.dumps({"client_id": client_id, "client_secret": new.client_secret}))
    else:
        click.echo(f"client_secret: {new.client_secret}\nThe secret is shown only now; the old one no longer works.")


# --- initial access tokens (RFC 7591 §3) ----------------------------------------------------------


@clients_group.command("initial-token")
@click.option("--expires-in", "expires_in", default="7d", show_default=True, help="lifetime: 7d, 12h, 30m, 3600s (at most 90d)")
@click.option("--uses", type=int, default=1, show_default=True, help="how many applications it may register")
@click.option("--organisation", help="the member organisation that will own the applications registered with it")
@click.option("--description", help="what it is for, e.g. 'Camden rota app team'")
@click.option("--as", "actor", default="cli", show_default=True, help="who is issuing it (for the audit log)")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def initial_token(ctx: click.Context, expires_in: str, uses: int, organisation: str | None, description: str | None,
                  actor: str, as_json: bool) -> None:
    """Issue an initial access token for dynamic registration (POST /register); printed once."""
    lifetime = parse_duration(expires_in)
    services = _services(ctx)
    if organisation is not None and services.registry.get(organisation) is None:
        raise click.ClickException(f"no member organisation {organisation!r} (see 'supercloud orgs list')")
    try:
        token, record = services.oidc.initial_tokens.issue(expires_in=lifetime, max_uses=uses, organisation=organisation,
                                                           description=description, created_by=actor)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    services.audit.append(AuditEvent("initial_access_token_issued", "success", actor=actor,
                                     details={"id": record.id, "organisation": organisation, "max_uses": uses,
                                              "expires_at": record.expires_at.isoformat()}))
    endpoint = services.oidc.registration.endpoint
    if as_json:
        click.echo(json.dumps({"id": record.id, "initial_access_token": token, "expires_at": record.expires_at.isoformat(),
                               "max_uses": uses, "organisation": organisation, "registration_endpoint": endpoint}))
        return
    click.echo(f"initial access token: {token}\nid:                   {record.id}\n"
               f"expires:              {record.expires_at:%Y-%m-%d %H:%M} UTC, {uses} registration(s)\n"
               f"Give it to the team over a secure channel; it is shown only now. They POST their metadata to {endpoint}\n"
               f"with 'Authorization: Bearer <token>'.")


@clients_group.command("initial-tokens")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def initial_tokens(ctx: click.Context, as_json: bool) -> None:
    """List initial access tokens (never the tokens themselves) and how much of each is used."""
    from broker.storage.types import utcnow

    now = utcnow()
    records = _services(ctx).oidc.initial_tokens.all()
    rows = [{"id": r.id, "organisation": r.organisation, "description": r.description, "created_by": r.created_by,
             "expires_at": r.expires_at.isoformat(), "uses": r.uses, "max_uses": r.max_uses,
             "state": r.why_unusable(now) or "usable"} for r in records]
    if as_json:
        click.echo(json.dumps(rows))
        return
    if not rows:
        click.echo("no initial access tokens have been issued")
    for r in rows:
        click.echo(f"{r['id']}  {r['state']:<8} {r['uses']}/{r['max_uses']} used  expires {r['expires_at'][:16]}  "
                   f"{r['organisation'] or '-':<10} {r['description'] or ''}")


@clients_group.command("revoke-initial-token")
@click.argument("token_id")
@click.pass_context
def revoke_initial_token(ctx: click.Context, token_id: str) -> None:
    """Revoke an initial access token by its id (see 'clients initial-tokens')."""
    services = _services(ctx)
    if not services.oidc.initial_tokens.revoke(token_id):
        raise click.ClickException(f"no live initial access token has the id {token_id!r}")
    services.audit.append(AuditEvent("initial_access_token_revoked", "success", actor="cli", details={"id": token_id}))
    click.echo(f"revoked {token_id}")


# --- back-channel logout ------------------------------------------------------------------------------


@cli.group("logout")
def logout_group() -> None:
    """Back-channel logout deliveries."""


@logout_group.command("deliver")
@click.option("--wait", type=click.FloatRange(0, 3600), default=0, show_default=True,
              help="keep delivering retries that fall due within this many seconds")
@click.pass_context
def logout_deliver(ctx: click.Context, wait: float) -> None:
    """Deliver the back-channel logout tokens that are due (left by a process that stopped, or
    waiting for a retry); safe to run beside the serving workers and from cron."""
    import time

    outbox = _services(ctx).oidc.logout.outbox
    report = _guard(outbox.deliver_due)
    deadline = time.monotonic() + wait
    while wait and (due := outbox.seconds_until_due()) is not None and time.monotonic() + due <= deadline:
        time.sleep(min(max(due, 0.01), 1.0))
        report = report + outbox.deliver_due()
    pending = outbox.pending()
    click.echo(f"delivered {report.delivered}, to retry {report.retrying}, given up {report.failed}; pending now {pending}")
    if report.failed:
        sys.exit(1)
