"""Pairwise subject identifiers (OIDC Core §8.1)."""

from __future__ import annotations

from tests.oidc.conftest import SECRETS
from tests.oidc.helpers import tokens_for, verify_id_token
from tests.oidc.test_client_auth import _code_for, _token

PAIRWISE_REDIRECT = "http://127.0.0.1:8004/callback"


def _pairwise_tokens(client) -> dict:  # type: ignore[no-untyped-def]
    from tests.oidc.helpers import basic

    code, verifier = _code_for(client, "pairwise-app", PAIRWISE_REDIRECT)
    response = _token(client, code, verifier, PAIRWISE_REDIRECT, headers=basic("pairwise-app", "PAIRWISE_SECRET"))
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def test_pairwise_subject_differs_from_the_public_one_and_is_stable(app, services) -> None:
    client = app.test_client()
    public = verify_id_token(services, tokens_for(client)["id_token"])["sub"]
    first = _pairwise_tokens(client)
    pairwise = verify_id_token(services, first["id_token"], audience="pairwise-app")["sub"]
    assert pairwise != public and len(pairwise) == 64
    again = verify_id_token(services, _pairwise_tokens(app.test_client())["id_token"], audience="pairwise-app")["sub"]
    assert again == pairwise
    info = client.get("/userinfo", headers={"Authorization": f"Bearer {first['access_token']}"}).get_json()
    assert info["sub"] == pairwise
    assert SECRETS


def test_same_sector_same_subject_other_sector_other_subject(services) -> None:
    from broker.clients import Client

    def client(client_id: str, sector: str) -> Client:
        return Client(client_id=client_id, name=client_id, redirect_uris=("https://x.test/cb",), post_logout_redirect_uris=(),
                      signing_alg=None, subject_type="pairwise", sector_identifier=sector)

    subjects = services.oidc.subjects
    a, twin, other = client("a", "sector-one.test"), client("twin", "sector-one.test"), client("b", "sector-two.test")
    assert subjects.for_client(a, "subject-1") == subjects.for_client(twin, "subject-1")
    assert subjects.for_client(a, "subject-1") != subjects.for_client(other, "subject-1")
    assert subjects.for_client(a, "subject-1") != subjects.for_client(a, "subject-2")
