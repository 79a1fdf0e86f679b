"""Attributes released to an SP (SAML Core §2.7.3.1), by policy, under the SP's names and formats.

The access gate's grant names the claims policy releases (the OIDC claim names, e.g.
``email``, ``department``); only those are considered, taken from the canonical Identity as
the OIDC side takes them (``broker.oidc.claims``). Each is sent under the SP's profile:
``uri`` (urn:oid names, eduPerson/SCHAC style, with a FriendlyName) or ``basic`` (the claim
name), or a name configured for that SP. If the SP's metadata lists RequestedAttributes,
only those names are sent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from broker.access import AccessGrant
from broker.oidc.claims import SCOPE_CLAIMS, scope_claims
from broker.saml.issuing import ReleasedAttribute
from broker.saml.registry import ServiceProvider
from config.saml_sp import NAME_FORMATS
from federation.identity import Identity

#: claim -> (urn:oid name, FriendlyName)
URI_NAMES: dict[str, tuple[str, str]] = {
    "email": ("urn:oid:0.9.2342.19200300.100.1.3", "mail"),
    "name": ("urn:oid:2.16.840.1.113730.3.1.241", "displayName"),
    "given_name": ("urn:oid:2.5.4.42", "givenName"),
    "family_name": ("urn:oid:2.5.4.4", "sn"),
    "preferred_username": ("urn:oid:0.9.2342.19200300.100.1.1", "uid"),
    "organisation": ("urn:oid:1.3.6.1.4.1.25178.1.2.9", "schacHomeOrganization"),
    "organisation_name": ("urn:oid:2.5.4.10", "o"),
    "department": ("urn:oid:2.5.4.11", "ou"),
    "job_title": ("urn:oid:2.5.4.12", "title"),
    "groups": ("urn:oid:1.3.6.1.4.1.5923.1.5.1.1", "isMemberOf"),
    "admissions_role": ("urn:supercloud:attribute:admissions_role", "admissionsRole"),
}
BREAK_GLASS_ATTRIBUTE = "urn:supercloud:attribute:break_glass"
_ALL_SCOPES = frozenset(SCOPE_CLAIMS)


def attribute_for(claim: str, sp: ServiceProvider) -> tuple[str, str, str | None]:
    """Return (Name, NameFormat URI, FriendlyName) under which ``sp`` receives ``claim``."""
    override = sp.config.attributes.get(claim)
    if override is not None:
        return override.name, NAME_FORMATS[override.name_format], override.friendly_name
    if sp.config.attribute_profile == "basic":
        return claim, NAME_FORMATS["basic"], None
    name, friendly = URI_NAMES[claim]
    return name, NAME_FORMATS["uri"], friendly


def released_attributes(identity: Identity, organisation_name: str | None, grant: AccessGrant,
                        sp: ServiceProvider) -> tuple[ReleasedAttribute, ...]:
    """Return exactly the attributes ``grant`` releases that ``sp`` can receive (and, if its
    metadata lists any, requested), with their values; empty values are left out."""
    claims = scope_claims(identity, _ALL_SCOPES, organisation_name)
    if identity.text("admissions_role"):
        claims["admissions_role"] = identity.text("admissions_role")
    requested = sp.metadata.requested_attributes
    out = []
    for claim in URI_NAMES:
        if grant.released is not None and claim not in grant.released:
            continue
        if claim not in claims:
            continue
        name, fmt, friendly = attribute_for(claim, sp)
        if requested is not None and name not in requested:
            continue
        out.append(ReleasedAttribute(name=name, name_format=fmt, friendly_name=friendly, values=_values(claims[claim])))
    out.extend(_grant_attributes(grant.claims))
    return tuple(a for a in out if a.values)


def _values(value: Any) -> tuple[str, ...]:
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value if str(v))
    return (str(value),) if str(value) else ()


def _grant_attributes(extra: Mapping[str, Any]) -> list[ReleasedAttribute]:
    """Attributes the grant itself adds: a break-glass grant's reference, so the SP sees it."""
    if "break_glass" not in extra:
        return []
    return [ReleasedAttribute(name=BREAK_GLASS_ATTRIBUTE, name_format=NAME_FORMATS["uri"], friendly_name="breakGlass",
                              values=(json.dumps(extra["break_glass"], sort_keys=True, separators=(",", ":")),))]
