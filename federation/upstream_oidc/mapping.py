"""Mapping trusted upstream claims into the canonical Identity (the generic OIDC profile).

Each attribute carries its provenance (the source id and the time of the answer); the
organisation comes from an ODS-coded claim resolved through the registry's declarations,
else it is the source's own; the upstream's ``acr``/``amr`` map onto our AAL vocabulary
through the source's configured tables (an unknown value gives AAL1: fail safe).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

from federation.errors import FederationError, FederationErrorCode
from federation.identity import AssuranceLevel, Attribute, AuthnContext, Identity, SubjectRef, build_attributes

log = logging.getLogger(__name__)

#: RFC 8176 §2 registered ``amr`` values: the only ones kept as authentication methods.
RFC8176_AMR = frozenset({
    "face", "fpt", "geo", "hwk", "iris", "kba", "mca", "mfa", "otp", "pin", "pop", "pwd", "rba", "retina", "sc",
    "sms", "swk", "tel", "user", "vbm", "wia",
})
MAX_VALUES = 64
MAX_TEXT = 1024


@dataclasses.dataclass(frozen=True, slots=True)
class MappingContext:
    """What a profile needs besides the claims."""

    source_id: str
    issuer: str
    organisation: str
    organisations_by_ods: Mapping[str, str]
    attribute_map: Mapping[str, str]
    received_at: dt.datetime


def attribute_value(value: Any) -> str | tuple[str, ...] | None:
    """Return a claim value as an attribute value (text or a tuple of texts), or None if it
    is structured (objects) or too large to be an attribute."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        text = str(value)
        return text if len(text) <= MAX_TEXT else None
    if isinstance(value, list) and len(value) <= MAX_VALUES and all(isinstance(v, str | int) for v in value):
        return tuple(str(v) for v in value)
    return None


def mapped_attributes(
    claims: Mapping[str, Any], ctx: MappingContext, extra: Mapping[str, Any] | None = None
) -> list[Attribute]:
    """Return an Attribute (provenance: the source) per mapped claim present, and per ``extra`` value."""
    pairs = [(name, claims.get(claim)) for name, claim in ctx.attribute_map.items()] + list((extra or {}).items())
    result = []
    for name, raw in pairs:
        value = attribute_value(raw) if raw is not None else None
        if value is None or value == ():
            if raw is not None:
                log.info("upstream %s: claim for attribute %s is not a plain value; not used", ctx.source_id, name)
            continue
        result.append(Attribute(name, value, ctx.source_id, ctx.received_at))
    return result


def authenticated_at(claims: Mapping[str, Any]) -> dt.datetime:
    """Return ``auth_time`` (OIDC Core §2), else ``iat``, as an aware datetime.

    Raises FederationError(INVALID_TOKEN) if it is not a plausible NumericDate.
    """
    when = claims.get("auth_time", claims.get("iat"))
    if isinstance(when, bool) or not isinstance(when, int | float) or not 0 < when < 1e11:
        raise FederationError(FederationErrorCode.INVALID_TOKEN, "auth_time is not a NumericDate")
    return dt.datetime.fromtimestamp(float(when), dt.UTC)


def amr_values(claims: Mapping[str, Any]) -> tuple[str, ...]:
    """Return the ``amr`` claim as a tuple of strings (empty if absent or malformed)."""
    amr = claims.get("amr")
    if isinstance(amr, str):
        amr = [amr]
    if not isinstance(amr, list):
        return ()
    return tuple(str(v) for v in amr[:MAX_VALUES] if isinstance(v, str))


class GenericProfile:
    """A plain OIDC provider (Entra ID, a borough's IdP): configured tables, no special claims."""

    prompt_login_always = False

    def __init__(self, acr_levels: Mapping[str, str], amr_levels: Mapping[str, str], roles_claim: str | None,
                 organisation_claim: str | None) -> None:
        self._acr = {k: AssuranceLevel[v] for k, v in acr_levels.items()}
        self._amr = {k: AssuranceLevel[v] for k, v in amr_levels.items()}
        self._roles_claim = roles_claim
        self._organisation_claim = organisation_claim

    def assurance(self, claims: Mapping[str, Any]) -> AssuranceLevel:
        """The level the upstream vouches for: its ``acr`` if mapped, else the best mapped ``amr``, else AAL1."""
        acr = claims.get("acr")
        if isinstance(acr, str) and acr in self._acr:
            return self._acr[acr]
        levels = [self._amr[m] for m in amr_values(claims) if m in self._amr]
        return max(levels, default=AssuranceLevel.AAL1)

    def identity(self, claims: Mapping[str, Any], ctx: MappingContext) -> Identity:
        """Return the canonical identity for these (already trusted) claims. Raises FederationError."""
        roles: tuple[str, ...] = ()
        if self._roles_claim and self._roles_claim in claims:
            value = attribute_value(claims[self._roles_claim])
            roles = value if isinstance(value, tuple) else ((value,) if value else ())
        organisation = ctx.organisation
        if self._organisation_claim:
            code = claims.get(self._organisation_claim)
            if isinstance(code, str):
                organisation = ctx.organisations_by_ods.get(code.upper(), ctx.organisation)
        amr = amr_values(claims)
        extra = {"upstream_amr": list(amr)} if amr else {}
        return build_identity(claims, ctx, organisation=organisation, roles=roles,
                              methods=tuple(m for m in amr if m in RFC8176_AMR), assurance=self.assurance(claims),
                              attributes=mapped_attributes(claims, ctx, extra))


def build_identity(claims: Mapping[str, Any], ctx: MappingContext, *, organisation: str, roles: tuple[str, ...],
                   methods: tuple[str, ...], assurance: AssuranceLevel, attributes: list[Attribute]) -> Identity:
    """Assemble the Identity. Raises FederationError(INVALID_TOKEN) if an attribute repeats."""
    try:
        built = build_attributes(attributes)
    except ValueError as exc:
        raise FederationError(FederationErrorCode.INVALID_TOKEN, str(exc)) from None
    return Identity(
        subject=SubjectRef(ctx.issuer, str(claims["sub"])),
        organisation=organisation,
        attributes=built,
        groups=(),
        roles=roles,
        authn=AuthnContext(methods=methods, assurance=assurance, authenticated_at=authenticated_at(claims),
                           source=ctx.source_id),
    )
