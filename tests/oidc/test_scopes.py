"""OIDF basic OP plan, scopes area (OIDC Core §5.4)."""

from __future__ import annotations

import pytest

from tests.oidc.helpers import tokens_for, verify_id_token


@pytest.mark.parametrize(
    ("scope", "present", "absent"),
    [
        ("openid", set(), {"name", "email", "organisation"}),
        ("openid profile", {"name", "given_name", "family_name"}, {"email"}),
        ("openid email", {"email"}, {"name"}),
        ("openid organisation", {"organisation", "organisation_name"}, {"email"}),
    ],
)
def test_id_token_claims_follow_the_scopes(app, services, scope, present, absent) -> None:
    tokens = tokens_for(app.test_client(), scope=scope)
    claims = verify_id_token(services, tokens["id_token"])
    assert present <= set(claims)
    assert not absent & set(claims)
    assert tokens["scope"] == " ".join(sorted(scope.split()))


def test_unknown_scopes_are_ignored(app, services) -> None:
    tokens = tokens_for(app.test_client(), scope="openid email phone address offline_access made-up")
    assert tokens["scope"] == "email openid"
