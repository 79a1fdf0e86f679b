"""Scoping: a source asserts only what its organisation is authoritative for; the rest is dropped and audited."""

from __future__ import annotations

import datetime as dt

import pytest

from federation.errors import FederationError
from federation.identity import AssuranceLevel, Attribute, AuthnContext, Identity, SubjectRef
from federation.organisations import Organisation
from federation.scoping import ScopeRules, apply_scope

NOW = dt.datetime(2026, 11, 28, 9, tzinfo=dt.UTC)


def _org(**kw) -> Organisation:  # type: ignore[no-untyped-def]
    base = dict(id="camden", name="Camden", kind="borough", domains=("camden.test",), ods_codes=(), sources=())
    return Organisation(**{**base, **kw})


def _identity(organisation: str = "camden", roles: tuple[str, ...] = (), **attributes: str | tuple[str, ...]) -> Identity:
    return Identity(
        subject=SubjectRef("urn:test", "s"),
        organisation=organisation,
        attributes={k: Attribute(k, v, "directory:x", NOW) for k, v in attributes.items()},
        groups=(),
        roles=roles,
        authn=AuthnContext(("pwd",), AssuranceLevel.AAL1, NOW, "x"),
    )


def test_email_outside_the_organisations_domains_is_dropped() -> None:
    scoped = apply_scope(_identity(email="someone@nhs.test", name="A"), "x", "camden", ScopeRules.for_organisation(_org()))
    assert "email" not in scoped.identity.attributes and scoped.identity.text("name") == "A"
    assert scoped.dropped == ("email (outside the organisation's domains)",)


def test_email_inside_is_kept() -> None:
    scoped = apply_scope(_identity(email="amara@camden.test"), "x", "camden", ScopeRules.for_organisation(_org()))
    assert scoped.identity.text("email") == "amara@camden.test" and scoped.dropped == ()


def test_subdomain_lookalikes_are_out_of_scope() -> None:
    for value in ("a@evil-camden.test", "a@camden.test.evil", "a@sub.camden.test", "@camden.test"):
        scoped = apply_scope(_identity(email=value), "x", "camden", ScopeRules.for_organisation(_org()))
        assert "email" not in scoped.identity.attributes, value


def test_national_roles_need_the_authority() -> None:
    identity = _identity(roles=("S0080:G0450:R8000",), nrbac_roles=("R8000",))
    borough = apply_scope(identity, "x", "camden", ScopeRules.for_organisation(_org()))
    assert borough.identity.roles == () and "nrbac_roles" not in borough.identity.attributes
    nhs = apply_scope(identity, "x", "camden", ScopeRules.for_organisation(_org(asserts_national_roles=True)))
    assert nhs.identity.roles == ("S0080:G0450:R8000",)


def test_attributes_outside_the_declared_list_are_dropped() -> None:
    rules = ScopeRules.for_organisation(_org(authoritative_attributes=frozenset({"name"})))
    scoped = apply_scope(_identity(name="A", department="IT", teams=("camden-mash",)), "x", "camden", rules)
    assert set(scoped.identity.attributes) == {"name"}
    assert "teams (set by the organisation registry)" in scoped.dropped


def test_a_source_cannot_place_people_in_an_organisation_that_does_not_trust_it() -> None:
    with pytest.raises(FederationError):
        apply_scope(_identity(organisation="camden"), "barnet-adfs", "barnet", ScopeRules.for_organisation(_org()))
    trusted = ScopeRules.for_organisation(_org(accepts_sources=frozenset({"nhs-cis2"})))
    assert apply_scope(_identity(), "nhs-cis2", "nhs", trusted).identity.organisation == "camden"


def test_out_of_scope_values_from_a_directory_are_dropped_and_audited_at_sign_in(settings_factory) -> None:  # type: ignore[no-untyped-def]
    import yaml

    from broker.bootstrap import initialise
    from broker.services import build_services
    from config import load_settings
    from directories.static import hash_password

    users = settings_factory.folder / "camden-users.yaml"
    users.write_text(yaml.safe_dump({"users": [{
        "username": "rogue@camden.test", "object_id": "0b7e6c8e-4a4e-4d55-9d7f-5d2b0c9a1f01",
        "password_hash": hash_password("pw-123456"),
        "attributes": {"name": "Rogue", "email": "ceo@nhs.test", "nrbac_roles": ["R8000"], "teams": ["barnet-mash"]},
    }]}))
    document = settings_factory.document()
    document["organisations"][0]["sources"] = [{"type": "static", "id": "camden-demo", "users_file": str(users)}]
    settings = load_settings(settings_factory.write(document))
    initialise(settings)
    services = build_services(settings)
    _, session = services.login.sign_in("rogue@camden.test", "pw-123456", ip=None)
    attributes = session.identity.attributes
    assert "email" not in attributes and "nrbac_roles" not in attributes
    assert "teams" not in attributes, "teams come only from the registry's own mapping"
    record = [r for r in services.audit.records() if r.event == "attribute_out_of_scope"][0]
    assert record.details["source"] == "camden-demo"
    assert set(record.details["dropped"]) == {
        "email (outside the organisation's domains)", "nrbac_roles (no national role authority)",
        "teams (set by the organisation registry)",
    }
    assert "ceo@nhs.test" not in str(record.details), "values never reach the audit log"
    services.engine.dispose()


def test_nhs_person_attributes_come_with_national_role_authority() -> None:
    identity = _identity(ods_code="RAL", nhs_user_id="5551234")
    borough = apply_scope(identity, "x", "camden", ScopeRules.for_organisation(_org()))
    assert set(borough.identity.attributes) == set()
    nhs = apply_scope(identity, "x", "camden", ScopeRules.for_organisation(_org(asserts_national_roles=True)))
    assert set(nhs.identity.attributes) == {"ods_code", "nhs_user_id"}
