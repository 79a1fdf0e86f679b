"""Keys and an issuer for the issuing tests (RSA-2048, made once per session)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from broker.saml.issuing import AssertionSpec, ReleasedAttribute, ResponseIssuer
from federation.upstream_saml.keys import KeyPair, generate_key_pair
from tests.saml_issuing.pysaml2_sp import ACS, IDP, REQUEST_ID, SP

URI = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"
PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
PPT = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
ORGANISATION = ReleasedAttribute("urn:oid:1.3.6.1.4.1.25178.1.2.9", URI, "schacHomeOrganization", ("camden",))
DEPARTMENT = ReleasedAttribute("urn:oid:2.5.4.11", URI, "ou", ("Children's services", "Adult social care"))


@pytest.fixture(scope="session")
def idp_pair() -> KeyPair:
    return generate_key_pair("Supercloud test IdP")


@pytest.fixture(scope="session")
def sp_pair() -> KeyPair:
    return generate_key_pair("Case records SP encryption")


@pytest.fixture(scope="session")
def other_pair() -> KeyPair:
    return generate_key_pair("Someone else")


@pytest.fixture(scope="session")
def issuer(idp_pair: KeyPair) -> ResponseIssuer:
    return ResponseIssuer(idp_pair.key_pem.encode(), idp_pair.cert_pem.encode())


@pytest.fixture
def make_spec() -> Callable[..., AssertionSpec]:
    """Return a builder of a Camden social worker's assertion for the case-records SP; keywords override fields."""

    def build(**changes: Any) -> AssertionSpec:
        now = dt.datetime.now(dt.UTC)
        spec = AssertionSpec(
            issuer=IDP,
            sp_entity_id=SP,
            acs_url=ACS,
            in_response_to=REQUEST_ID,
            name_id="p-3f9c2a7be01d44c1",
            name_id_format=PERSISTENT,
            sp_name_qualifier=SP,
            authn_instant=now - dt.timedelta(seconds=20),
            session_index="_session-81d2",
            authn_context_class_ref=PPT,
            attributes=(ORGANISATION, DEPARTMENT),
            not_on_or_after=now + dt.timedelta(minutes=5),
            one_time_use=False,
            sign_assertion=True,
            sign_response=True,
            encrypt_to_cert_pem=None,
        )
        return dataclasses.replace(spec, **changes)

    return build
