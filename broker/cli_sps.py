"""``supercloud sps``: register, list and remove the SAML service providers the IdP answers.

``sps add --metadata FILE|URL`` reads the SP's metadata (a URL needs ``--signer-certificate``:
the federation's certificate its signature must verify with), checks it, and stores the SP;
its assertion consumer and logout endpoints and keys come only from that metadata, which is
re-read every ``--refresh-seconds``. Every change is audited.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from broker.audit import AuditEvent
from broker.cli import _guard, _services, cli
from broker.errors import BrokerError, BrokerErrorCode


@cli.group("sps")
def sps_group() -> None:
    """SAML service providers."""


@sps_group.command("add")
@click.option("--metadata", "source", required=True, help="metadata file or http(s) URL")
@click.option("--entity-id", default=None, help="the SP in an aggregate (default: the only SP in the metadata)")
@click.option("--name", default=None, help="shown to people (default: the entity id)")
@click.option("--service", default=None, help="the policy service id (default: the entity id)")
@click.option("--signer-certificate", type=click.Path(exists=True, dir_okay=False), default=None,
              help="PEM certificate the metadata's signature must verify with (required for a URL)")
@click.option("--name-id-format", type=click.Choice(["persistent", "transient", "email"]), default="persistent")
@click.option("--attribute-profile", type=click.Choice(["uri", "basic"]), default="uri")
@click.option("--require-signed-requests", is_flag=True)
@click.option("--idp-initiated", is_flag=True, help="allow sign-in started at the broker")
@click.option("--refresh-seconds", type=int, default=3600)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def sps_add(ctx: click.Context, source: str, entity_id: str | None, name: str | None, service: str | None,
            signer_certificate: str | None, name_id_format: str, attribute_profile: str, require_signed_requests: bool,
            idp_initiated: bool, refresh_seconds: int, as_json: bool) -> None:
    """Register an SP from its metadata."""
    from pydantic import ValidationError

    from broker.saml.registry import load_metadata
    from broker.saml.sp_metadata import fetch, parse_sp_metadata, signer_pem
    from config.saml_sp import ServiceProviderConfig, SpMetadataConfig

    services = _services(ctx)
    is_url = source.startswith(("https://", "http://"))
    try:
        origin = SpMetadataConfig(
            url=source if is_url else None,
            file=None if is_url else Path(source).resolve(),
            signer_certificate=Path(signer_certificate).resolve() if signer_certificate else None,
            refresh_seconds=refresh_seconds,
        )
    except ValidationError as exc:
        raise click.ClickException("; ".join(e["msg"] for e in exc.errors())) from None
    providers = services.saml_idp.providers

    def register():  # type: ignore[no-untyped-def]
        wanted = entity_id
        if wanted is None:
            try:
                xml, where = fetch(origin, Path.cwd())
            except OSError as exc:
                raise BrokerError(BrokerErrorCode.BAD_REQUEST, f"cannot read {source}: {type(exc).__name__}") from None
            wanted = parse_sp_metadata(xml, None, signer_pem=signer_pem(origin, Path.cwd()), where=where).entity_id
        try:
            cfg = ServiceProviderConfig(entity_id=wanted, name=name or wanted[:100], service=service, metadata=origin,
                                        name_id_format=name_id_format, attribute_profile=attribute_profile,
                                        require_signed_requests=require_signed_requests, idp_initiated=idp_initiated)
        except ValidationError as exc:
            raise BrokerError(BrokerErrorCode.BAD_REQUEST, "; ".join(e["msg"] for e in exc.errors())) from None
        if any(e == wanted and o == "config" for e, _, o in providers.list()):
            raise BrokerError(BrokerErrorCode.BAD_REQUEST, f"{wanted} is in the configuration file: change it there")
        xml, _ = load_metadata(cfg, Path.cwd())
        return providers.add(cfg, xml, origin="cli")

    try:
        added = _guard(register)
    except click.ClickException as exc:
        services.audit.append(AuditEvent("saml_sp_registered", "failure", actor="cli", client_id=(entity_id or "")[:128] or None,
                                         details={"reason": exc.message, "metadata": source[:512]}))
        raise
    services.audit.append(AuditEvent("saml_sp_registered", "success", actor="cli", client_id=added.entity_id[:128],
                                     details={"metadata": source[:512], "acs": [e.location for e in added.metadata.assertion_consumers],
                                              "signed_metadata": signer_certificate is not None}))
    summary = {"entity_id": added.entity_id, "name": added.name,
               "assertion_consumers": [e.location for e in added.metadata.assertion_consumers],
               "single_logout": [e.location for e in added.metadata.single_logout],
               "authn_requests_signed": added.requires_signed_requests,
               "encrypts_assertions": added.metadata.encryption_certificate_pem is not None}
    if as_json:
        click.echo(json.dumps(summary))
    else:
        click.echo("\n".join(f"{k}: {v}" for k, v in summary.items()))


@sps_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def sps_list(ctx: click.Context, as_json: bool) -> None:
    """List every registered SP (configured and added)."""
    rows = _services(ctx).saml_idp.providers.list()
    if as_json:
        click.echo(json.dumps([{"entity_id": e, "name": n, "origin": o} for e, n, o in rows]))
        return
    for entity, label, origin in rows:
        click.echo(f"{entity}\t{label}\t{origin}")


@sps_group.command("remove")
@click.argument("entity_id")
@click.pass_context
def sps_remove(ctx: click.Context, entity_id: str) -> None:
    """Remove an SP added with ``sps add`` (configured SPs are removed from the configuration file)."""
    services = _services(ctx)
    providers = services.saml_idp.providers
    origins = {e: o for e, _, o in providers.list()}
    if origins.get(entity_id) == "config":
        raise click.ClickException(f"{entity_id} is in the configuration file: remove it there")
    if not providers.remove(entity_id):
        raise click.ClickException(f"no SP {entity_id} is registered")
    services.audit.append(AuditEvent("saml_sp_removed", "success", actor="cli", client_id=entity_id[:128]))
    click.echo(f"removed {entity_id}")
