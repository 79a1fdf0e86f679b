"""The NHS CIS2 profile: national RBAC roles, organisations, registrations and assurance.

What CIS2 returns (see ../shared/SCENARIOS.md): ``nhsid_nrbac_roles`` lists every role
the person holds (``person_roleid``, ``org_code``, ``role_code`` "S0080:G0450:R8000",
``activity_codes`` ["B0015"] ...); with the ``selectedrole`` scope and ``prompt=login``
the ID token's ``selected_roleid`` names the role chosen for this session. Only that
ACTIVE role becomes the identity's role; its ``org_code`` (an ODS code) chooses the member
organisation that declares it, else the source's own. A person with no role still signs
in, with no roles (policy decides). ``acr`` (AAL3_ANY, AAL2_OR_AAL3_ANY, AAL2_ANY,
AAL1_USERPASS) bounds the authentication level, ``authentication_assurance_level`` ("0"-"3")
says where in those bounds it was; ``amr`` (N3_SMARTCARD, FIDO2 ...) says how.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from federation.errors import FederationError, FederationErrorCode
from federation.identity import AssuranceLevel, Identity
from federation.upstream_oidc.mapping import MappingContext, amr_values, build_identity, mapped_attributes

log = logging.getLogger(__name__)

#: acr → (lowest, highest) level it allows.
ACR_RANGES: dict[str, tuple[AssuranceLevel, AssuranceLevel]] = {
    "AAL3_ANY": (AssuranceLevel.AAL3, AssuranceLevel.AAL3),
    "AAL2_OR_AAL3_ANY": (AssuranceLevel.AAL2, AssuranceLevel.AAL3),
    "AAL2_ANY": (AssuranceLevel.AAL2, AssuranceLevel.AAL2),
    "AAL1_USERPASS": (AssuranceLevel.AAL1, AssuranceLevel.AAL1),
}
#: CIS2 amr → RFC 8176 methods.
AMR_METHODS: dict[str, tuple[str, ...]] = {
    "N3_SMARTCARD": ("sc", "pin", "mfa"),
    "FIDO2": ("hwk", "mfa"),
    "WINDOWS_HELLO": ("hwk", "pin", "mfa"),
    "IOS": ("swk", "mfa"),
    "ANDROID": ("swk", "mfa"),
    "OTP": ("otp",),
    "PASSWORD": ("pwd",),
}
REGISTRATION_CLAIMS = ("gmc_id", "nmc_id", "gdc_id", "gphc_id", "hcpc_id")
_ROLE_CODE = re.compile(r"^S\d{4}:G\d{4}:R\d{4}$")
_ACTIVITY = re.compile(r"^B\d{4}$")
_ODS = re.compile(r"^[A-Z0-9]{3,10}$")
_LEVEL = re.compile(r"^[0-3]$")


def assurance(claims: Mapping[str, Any]) -> AssuranceLevel:
    """Return the authentication level CIS2 vouches for.

    An unknown or missing ``acr`` allows AAL1 only; ``authentication_assurance_level``
    chooses within the acr's bounds, and a value below them lowers the level (an
    inconsistent answer is read at its weakest). "0" counts as AAL1, our floor.
    """
    acr = claims.get("acr")
    floor = (AssuranceLevel.AAL1, AssuranceLevel.AAL1)
    low, high = ACR_RANGES.get(acr, floor) if isinstance(acr, str) else floor
    stated = claims.get("authentication_assurance_level")
    if isinstance(stated, int) and not isinstance(stated, bool):
        stated = str(stated)
    if not isinstance(stated, str) or not _LEVEL.match(stated):
        return low
    level = AssuranceLevel(max(1, int(stated)))
    return min(level, high)


def identity_assurance(claims: Mapping[str, Any]) -> str | None:
    """Return the identity-proofing level ("0"-"3"): ``id_assurance_level`` (ID token) or
    ``idassurancelevel`` (userinfo); when both are given and differ, the lower."""
    values = []
    for name in ("id_assurance_level", "idassurancelevel"):
        value = claims.get(name)
        value = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
        if isinstance(value, str) and _LEVEL.match(value):
            values.append(value)
    return min(values) if values else None


def active_role(claims: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """Return the role whose ``person_roleid`` equals ``selected_roleid``, or None (no role).

    Raises FederationError(INVALID_TOKEN) if ``selected_roleid`` names no role the person holds
    or the roles claim is malformed.
    """
    roles = claims.get("nhsid_nrbac_roles", [])
    if not isinstance(roles, list) or not all(isinstance(r, Mapping) for r in roles):
        raise FederationError(FederationErrorCode.INVALID_TOKEN, "nhsid_nrbac_roles is malformed")
    selected = claims.get("selected_roleid")
    if selected is None or selected == "":
        if roles:
            log.info("CIS2 answer without selected_roleid: no active role")
        return None
    matches = [r for r in roles if str(r.get("person_roleid", "")) == str(selected)]
    if len(matches) != 1:
        raise FederationError(FederationErrorCode.INVALID_TOKEN, "selected_roleid names no single role of the person")
    role = matches[0]
    if not isinstance(role.get("role_code"), str) or not _ROLE_CODE.match(role["role_code"]):
        raise FederationError(FederationErrorCode.INVALID_TOKEN, "the active role's role_code is malformed")
    return role


class Cis2Profile:
    """NHS CIS2 on top of generic OIDC: ``selectedrole`` always with ``prompt=login``."""

    prompt_login_always = True

    def assurance(self, claims: Mapping[str, Any]) -> AssuranceLevel:
        """See ``assurance``."""
        return assurance(claims)

    def identity(self, claims: Mapping[str, Any], ctx: MappingContext) -> Identity:
        """Return the canonical identity for these (already trusted) CIS2 claims. Raises FederationError."""
        role = active_role(claims)
        extra: dict[str, Any] = {}
        roles: tuple[str, ...] = ()
        organisation = ctx.organisation
        if role is not None:
            roles = (role["role_code"],)
            extra["activity_codes"] = [c for c in role.get("activity_codes") or [] if isinstance(c, str) and _ACTIVITY.match(c)]
            extra["selected_role_id"] = str(role.get("person_roleid"))
            if isinstance(role.get("role_name"), str):
                extra["role_name"] = role["role_name"]
            org_code = role.get("org_code")
            if isinstance(org_code, str) and _ODS.match(org_code.upper()):
                extra["ods_code"] = org_code.upper()
                organisation = ctx.organisations_by_ods.get(org_code.upper(), ctx.organisation)
        orgs = claims.get("nhsid_user_orgs")
        if isinstance(orgs, list):
            extra["associated_ods_codes"] = [
                o["org_code"].upper() for o in orgs[:64]
                if isinstance(o, Mapping) and isinstance(o.get("org_code"), str) and _ODS.match(o["org_code"].upper())
            ]
        for claim in REGISTRATION_CLAIMS:
            if isinstance(claims.get(claim), str) and claims[claim]:
                extra[claim] = claims[claim]
        if isinstance(claims.get("nhsid_useruid"), str):
            extra["nhs_user_id"] = claims["nhsid_useruid"]
        ial = identity_assurance(claims)
        if ial is not None:
            extra["id_assurance_level"] = ial
        amr = amr_values(claims)
        if amr:
            extra["upstream_amr"] = list(amr)
        methods = tuple(dict.fromkeys(m for value in amr for m in AMR_METHODS.get(value, ())))
        return build_identity(claims, ctx, organisation=organisation, roles=roles, methods=methods,
                              assurance=assurance(claims), attributes=mapped_attributes(claims, ctx, extra))
