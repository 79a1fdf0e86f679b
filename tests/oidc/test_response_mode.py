"""OAuth 2.0 Form Post Response Mode and RFC 9207 ``iss`` in every authorization response."""

from __future__ import annotations

import re

from tests.oidc.helpers import ISSUER, authorize, form_post_fields, tokens_for
from tests.support.flask_flow import exchange
from tests.support.settings import TEST_REDIRECT_URI


def test_form_post_delivers_code_state_and_iss_in_an_auto_submitting_form(app) -> None:
    client = app.test_client()
    tokens_for(client)
    response, verifier = authorize(client, response_mode="form_post")
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    action, fields = form_post_fields(page)
    assert action == TEST_REDIRECT_URI
    assert set(fields) == {"code", "state", "iss"} and fields["iss"] == ISSUER and fields["state"] == "state-123"
    nonce = re.search(r"'nonce-([^']+)'", response.headers["Content-Security-Policy"]).group(1)
    assert f'<script nonce="{nonce}">document.forms[0].submit();</script>' in page
    assert response.headers["Cache-Control"] == "no-store"
    assert exchange(client, fields["code"], verifier).status_code == 200


def test_form_post_errors_are_posted_too(app) -> None:
    response, _ = authorize(app.test_client(), response_mode="form_post", prompt="none")
    action, fields = form_post_fields(response.get_data(as_text=True))
    assert action == TEST_REDIRECT_URI and fields["error"] == "login_required" and fields["iss"] == ISSUER


def test_form_post_values_are_html_escaped(app) -> None:
    client = app.test_client()
    tokens_for(client)
    response, _ = authorize(client, response_mode="form_post", state='"><script>alert(1)</script>')
    page = response.get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page
    assert form_post_fields(page)[1]["state"] == '"><script>alert(1)</script>'


def test_unsupported_response_mode_is_refused_by_query(app) -> None:
    from tests.oidc.helpers import query

    for mode in ("fragment", "jwt", "web_message"):
        response, _ = authorize(app.test_client(), response_mode=mode)
        assert query(response.headers["Location"])["error"] == "invalid_request"
