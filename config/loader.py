"""Load, validate and resolve a configuration file, reporting every problem at once."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from config.errors import ConfigError, Problem
from config.schema import Settings, is_loopback
from config.secrets import SecretRef, SecretUnavailable

CONFIG_ENV = "SUPERCLOUD_CONFIG"
# Deployment-specific values that may come from the environment instead of the file.
ENV_OVERRIDES = {
    "SUPERCLOUD_ISSUER": "issuer",
    "SUPERCLOUD_DATABASE_URL": "database_url",
    "SUPERCLOUD_REDIS_URL": "redis_url",
}


def config_path(explicit: str | os.PathLike[str] | None) -> Path:
    """Return the configuration file to use: ``explicit``, else ``$SUPERCLOUD_CONFIG``.

    Raises ConfigError if neither is given.
    """
    chosen = explicit or os.environ.get(CONFIG_ENV)
    if not chosen:
        raise ConfigError("configuration", [Problem("", f"no configuration file: pass --config or set {CONFIG_ENV}")])
    return Path(chosen)


def load_settings(path: str | os.PathLike[str], *, resolve_secrets: bool = True) -> Settings:
    """Return the validated settings in the YAML file at ``path``.

    With ``resolve_secrets`` every ``{env:}``/``{file:}`` reference is read now, so a missing
    secret is reported with the rest. Raises ConfigError listing every problem found.
    """
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, [Problem("", f"cannot read the file: {exc.strerror}")]) from None
    return parse_settings(text, source=source, base_dir=path.resolve().parent, resolve_secrets=resolve_secrets)


def parse_settings(text: str, *, source: str, base_dir: Path, resolve_secrets: bool = True) -> Settings:
    """Return settings parsed from YAML ``text``; see ``load_settings``. Raises ConfigError."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(source, [Problem(where, f"not valid YAML: {getattr(exc, 'problem', exc)}")]) from None
    if not isinstance(raw, dict):
        raise ConfigError(source, [Problem("", "the file must contain a mapping (broker:, organisations:, applications:)")])
    problems: list[Problem] = []
    overrides = {key: os.environ[var] for var, key in ENV_OVERRIDES.items() if os.environ.get(var)}
    if overrides and isinstance(raw.get("broker"), dict):
        raw = {**raw, "broker": {**raw["broker"], **overrides}}
    if "base_dir" in raw:
        problems.append(Problem("base_dir", "unknown key"))
        raw = {k: v for k, v in raw.items() if k != "base_dir"}
    try:
        settings = Settings.model_validate({**raw, "base_dir": base_dir})
    except ValidationError as exc:
        problems.extend(_pydantic_problems(exc, raw))
        raise ConfigError(source, problems) from None
    problems.extend(_semantic_problems(settings))
    if resolve_secrets:
        problems.extend(_resolve_secrets(settings, base_dir))
    if problems:
        raise ConfigError(source, problems)
    return settings


def _pydantic_problems(exc: ValidationError, raw: Any) -> list[Problem]:
    """Translate pydantic errors into problems with paths as written in the file."""
    problems = []
    for error in exc.errors(include_url=False):
        message = error["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, "):]
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        problems.append(Problem(_display_path(error["loc"], raw), message))
    return problems


def _display_path(loc: tuple[Any, ...], raw: Any) -> str:
    """Render a pydantic location as ``organisations[2].sources[0].url``.

    Locations of discriminated unions include the tag (``static``); it is not in the file,
    so elements that the raw data does not contain are skipped.
    """
    text = ""
    node = raw
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
        elif isinstance(node, Mapping) and part in node:
            text += f".{part}" if text else str(part)
            node = node[part]
        elif isinstance(node, Mapping) or node is None:
            # Either the tag of a union or a required key that is absent: name it only if absent.
            if isinstance(node, Mapping) and part not in node and not _is_union_tag(part, node):
                text += f".{part}" if text else str(part)
                node = None
        else:
            text += f".{part}" if text else str(part)
            node = None
    return text


def _is_union_tag(part: str, node: Mapping[str, Any]) -> bool:
    return node.get("type") == part


def _semantic_problems(settings: Settings) -> list[Problem]:
    """Return cross-field problems: duplicate ids or domains, production rules."""
    problems: list[Problem] = []
    problems.extend(_duplicates("organisations", "id", [o.id for o in settings.organisations]))
    source_ids = [(i, j, s.id) for i, o in enumerate(settings.organisations) for j, s in enumerate(o.sources)]
    counts = Counter(sid for _, _, sid in source_ids)
    for i, j, sid in source_ids:
        if counts[sid] > 1:
            problems.append(Problem(f"organisations[{i}].sources[{j}].id", f"source id {sid!r} is used more than once"))
    claimed: dict[str, str] = {}
    for i, org in enumerate(settings.organisations):
        for k, domain in enumerate(org.domains):
            if domain in claimed and claimed[domain] != org.id:
                problems.append(
                    Problem(f"organisations[{i}].domains[{k}]", f"{domain} is already claimed by {claimed[domain]}")
                )
            claimed.setdefault(domain, org.id)
    problems.extend(_duplicates("applications", "client_id", [a.client_id for a in settings.applications]))
    org_ids = {o.id for o in settings.organisations}
    for i, agreement in enumerate(settings.agreements):
        for k, party in enumerate(agreement.parties):
            if party not in org_ids:
                problems.append(Problem(f"agreements[{i}].parties[{k}]", f"unknown organisation {party!r}"))
    team_ids = [(i, j, t.id) for i, o in enumerate(settings.organisations) for j, t in enumerate(o.teams)]
    team_counts = Counter(tid for _, _, tid in team_ids)
    for i, j, tid in team_ids:
        if team_counts[tid] > 1:
            problems.append(Problem(f"organisations[{i}].teams[{j}].id", f"team id {tid!r} is used more than once"))
    for i, org in enumerate(settings.organisations):
        for j, src in enumerate(org.sources):
            named = getattr(src, "organisation", None)
            if named is not None and named != org.id:
                problems.append(
                    Problem(
                        f"organisations[{i}].sources[{j}].organisation",
                        f"names {named!r} but the source sits under organisation {org.id!r} (leave it out)",
                    )
                )
    if settings.policies is not None and not settings.resolve_path(settings.policies.bundle).exists():
        problems.append(Problem("policies.bundle", f"no policy bundle at {settings.resolve_path(settings.policies.bundle)}"))
    if settings.is_production:
        if not settings.broker.issuer.startswith("https://"):
            problems.append(Problem("broker.issuer", "must be https:// in production"))
        for i, org in enumerate(settings.organisations):
            for j, src in enumerate(org.sources):
                if src.type == "static":
                    problems.append(
                        Problem(
                            f"organisations[{i}].sources[{j}].type",
                            "the static directory is for demos and tests; it is refused in production",
                        )
                    )
        for i, app in enumerate(settings.applications):
            for k, uri in enumerate(app.redirect_uris):
                if uri.startswith("http://") and not is_loopback(uri):
                    problems.append(Problem(f"applications[{i}].redirect_uris[{k}]", "must be https:// in production"))
    elif not settings.broker.issuer.startswith("https://") and not is_loopback(settings.broker.issuer):
        problems.append(Problem("broker.issuer", "plain http:// is allowed only on a loopback address"))
    return problems


def _duplicates(section: str, key: str, values: list[str]) -> list[Problem]:
    counts = Counter(values)
    return [
        Problem(f"{section}[{i}].{key}", f"{value!r} is used more than once")
        for i, value in enumerate(values)
        if counts[value] > 1
    ]


def _resolve_secrets(settings: Settings, base_dir: Path) -> list[Problem]:
    """Resolve every SecretRef in ``settings``; return a problem for each that cannot be read."""
    problems = []
    for path, ref in _secret_refs(settings, ""):
        try:
            ref.resolve(base_dir)
        except SecretUnavailable as exc:
            problems.append(Problem(path, str(exc)))
    return problems


def _secret_refs(node: Any, path: str) -> Iterator[tuple[str, SecretRef]]:
    if isinstance(node, SecretRef):
        yield path, node
    elif isinstance(node, BaseModel):
        for name in type(node).model_fields:
            yield from _secret_refs(getattr(node, name), f"{path}.{name}" if path else name)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _secret_refs(item, f"{path}[{i}]")
