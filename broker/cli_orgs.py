"""``supercloud orgs``: the organisation registry (list, show, add, update, retire, import).

Goes through the same service as the console (``broker.organisations_admin``): every
problem is listed at once, every change audited with before and after. The acting
administrator is named with ``--as`` until the console brings authenticated officers.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from broker.cli import _services, cli
from broker.organisations_admin import OrganisationInvalid, OrganisationNotFound, OrganisationRecord
from federation.organisations import Contact

_LISTS = ("domain", "ods_code", "source", "accepts_source", "attribute", "membership")
_FIELD = {"domain": "domains", "ods_code": "ods_codes", "source": "sources", "accepts_source": "accepts_sources",
          "attribute": "authoritative_attributes", "membership": "memberships"}


def _contact(text: str) -> dict[str, str]:
    """ROLE:NAME:EMAIL → a contact mapping (validated by the service)."""
    role, _, rest = text.partition(":")
    name, _, email = rest.rpartition(":")
    return {"role": role.strip(), "name": name.strip(), "email": email.strip()}


def _fail(problems: tuple[str, ...] | list[str]) -> None:
    for problem in problems:
        click.echo(f"  - {problem}", err=True)
    click.echo(f"refused: {len(problems)} problem(s)", err=True)
    sys.exit(1)


def _show(record: OrganisationRecord) -> str:
    lines = [f"{record.id}: {record.name} ({record.kind})" + ("  RETIRED" if record.retired else ""),
             f"  origin {record.origin}, {'managed in the store' if record.managed else 'follows the configuration file'}, "
             f"revision {record.revision}"]
    for name, value in record.declaration().items():
        if name in {"name", "kind"}:
            continue
        if name == "contacts":
            value = [f"{c['role']}: {c['name']} <{c['email']}>" for c in value]
        lines.append(f"  {name}: {value if not isinstance(value, list) else ', '.join(map(str, value)) or '-'}")
    return "\n".join(lines)


def _as_json(record: OrganisationRecord) -> dict[str, Any]:
    return {"id": record.id, **record.declaration(), "origin": record.origin, "managed": record.managed,
            "revision": record.revision, "retired": record.retired}


@cli.group("orgs")
def orgs_group() -> None:
    """Member organisations (the registry home-realm discovery and scoping use)."""


@orgs_group.command("list")
@click.option("--all", "include_retired", is_flag=True, help="include retired organisations")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def orgs_list(ctx: click.Context, include_retired: bool, as_json: bool) -> None:
    """List organisations."""
    records = _services(ctx).organisations.list(include_retired=include_retired)
    if as_json:
        click.echo(json.dumps([_as_json(r) for r in records]))
        return
    for r in records:
        state = "retired" if r.retired else ("managed" if r.managed else "config")
        click.echo(f"{r.id:<24} {r.kind:<9} {state:<8} {', '.join(r.domains) or '-'}")


@orgs_group.command("show")
@click.argument("organisation_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def orgs_show(ctx: click.Context, organisation_id: str, as_json: bool) -> None:
    """Show one organisation."""
    record = _services(ctx).organisations.get(organisation_id)
    if record is None:
        raise click.ClickException(f"no organisation {organisation_id!r}")
    click.echo(json.dumps(_as_json(record)) if as_json else _show(record))


def _list_options(command: Any) -> Any:
    for name in reversed(_LISTS):
        command = click.option(f"--{name.replace('_', '-')}", name, multiple=True,
                               help=f"{_FIELD[name]} (repeat; on update replaces the whole list)")(command)
    return command


@orgs_group.command("add")
@click.argument("organisation_id")
@click.option("--name", required=True)
@click.option("--kind", required=True, help="borough, health or operator")
@_list_options
@click.option("--contact", "contacts", multiple=True, help="ROLE:NAME:EMAIL, e.g. privacy_officer:Jo Bloggs:jo@x.test")
@click.option("--national-roles/--no-national-roles", default=False, help="its sources may assert NHS national RBAC roles")
@click.option("--as", "actor", required=True, help="the administrator making the change (audited)")
@click.pass_context
def orgs_add(ctx: click.Context, organisation_id: str, name: str, kind: str, contacts: tuple[str, ...],
             national_roles: bool, actor: str, **lists: tuple[str, ...]) -> None:
    """Add an organisation (it lives in the store only)."""
    contact_maps = [_contact(c) for c in contacts]
    record = OrganisationRecord(
        id=organisation_id, name=name, kind=kind, domains=lists["domain"], ods_codes=lists["ods_code"],
        sources=lists["source"], accepts_sources=lists["accepts_source"],
        authoritative_attributes=lists["attribute"] or None, asserts_national_roles=national_roles,
        memberships=lists["membership"], contacts=tuple(Contact(**c) for c in contact_maps),
    )
    try:
        stored = _services(ctx).organisations.create(record, actor=f"cli:{actor}")
    except OrganisationInvalid as exc:
        _fail(exc.problems)
    click.echo(_show(stored))


@orgs_group.command("update")
@click.argument("organisation_id")
@click.option("--name")
@click.option("--kind")
@_list_options
@click.option("--contact", "contacts", multiple=True, help="ROLE:NAME:EMAIL (replaces every contact)")
@click.option("--national-roles/--no-national-roles", default=None)
@click.option("--revision", "expected_revision", type=int, help="refuse if someone changed it since this revision")
@click.option("--as", "actor", required=True, help="the administrator making the change (audited)")
@click.pass_context
def orgs_update(ctx: click.Context, organisation_id: str, name: str | None, kind: str | None, contacts: tuple[str, ...],
                national_roles: bool | None, expected_revision: int | None, actor: str, **lists: tuple[str, ...]) -> None:
    """Change an organisation; only the options given change. From now on the store wins over the file."""
    changes: dict[str, Any] = {}
    if name is not None:
        changes["name"] = name
    if kind is not None:
        changes["kind"] = kind
    for option, values in lists.items():
        if values:
            changes[_FIELD[option]] = list(values)
    if contacts:
        changes["contacts"] = [_contact(c) for c in contacts]
    if national_roles is not None:
        changes["asserts_national_roles"] = national_roles
    if not changes:
        raise click.UsageError("nothing to change")
    try:
        stored = _services(ctx).organisations.update(organisation_id, changes, actor=f"cli:{actor}",
                                                     expected_revision=expected_revision)
    except OrganisationNotFound:
        raise click.ClickException(f"no live organisation {organisation_id!r}") from None
    except OrganisationInvalid as exc:
        _fail(exc.problems)
    click.echo(_show(stored))


@orgs_group.command("retire")
@click.argument("organisation_id")
@click.option("--reason", required=True)
@click.option("--as", "actor", required=True, help="the administrator making the change (audited)")
@click.pass_context
def orgs_retire(ctx: click.Context, organisation_id: str, reason: str, actor: str) -> None:
    """Retire an organisation: it leaves home-realm discovery; its sources sign no one in."""
    try:
        stored = _services(ctx).organisations.retire(organisation_id, actor=f"cli:{actor}", reason=reason)
    except OrganisationNotFound:
        raise click.ClickException(f"no live organisation {organisation_id!r}") from None
    except OrganisationInvalid as exc:
        _fail(exc.problems)
    click.echo(f"{stored.id}: retired")


@orgs_group.command("import")
@click.argument("organisation_ids", nargs=-1, required=True)
@click.option("--as", "actor", required=True, help="the administrator making the change (audited)")
@click.pass_context
def orgs_import(ctx: click.Context, organisation_ids: tuple[str, ...], actor: str) -> None:
    """Hand organisations back to the configuration file (its declaration replaces the store's)."""
    service = _services(ctx).organisations
    for organisation_id in organisation_ids:
        try:
            stored = service.import_from_config(organisation_id, actor=f"cli:{actor}")
        except OrganisationNotFound:
            raise click.ClickException(f"the configuration file does not declare {organisation_id!r}") from None
        except OrganisationInvalid as exc:
            _fail(exc.problems)
        click.echo(f"{stored.id}: follows the configuration file again (revision {stored.revision})")
