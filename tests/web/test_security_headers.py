"""What every response tells the browser: no caching, no framing, strict cookies."""

from __future__ import annotations

from tests.support.flask_flow import password_sign_in


def test_auth_pages_are_not_cached_or_framed(app) -> None:
    response = app.test_client().get("/login")
    assert response.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "'unsafe-inline'" not in response.headers["Content-Security-Policy"]


def test_inline_script_carries_this_responses_nonce(app) -> None:
    response = app.test_client().get("/login")
    csp = response.headers["Content-Security-Policy"]
    nonce = csp.split("'nonce-")[1].split("'")[0]
    assert f'nonce="{nonce}"' in response.get_data(as_text=True)
    assert nonce not in app.test_client().get("/login").headers["Content-Security-Policy"]


def test_session_cookie_is_httponly_lax_and_new_at_every_sign_in(app) -> None:
    client = app.test_client()
    first = password_sign_in(client, "amara.okafor@camden.test")
    cookie = [h for h in first.headers.getlist("Set-Cookie") if h.startswith("supercloud-session=")][0]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    second = password_sign_in(client, "amara.okafor@camden.test")
    cookie2 = [h for h in second.headers.getlist("Set-Cookie") if h.startswith("supercloud-session=")][0]
    assert cookie.split(";")[0] != cookie2.split(";")[0]


def test_https_deployments_use_host_prefixed_secure_cookies(settings_factory, monkeypatch) -> None:
    from broker.bootstrap import initialise
    from broker.web.app import create_app

    settings = settings_factory(issuer="https://sso.london.test")
    initialise(settings)
    app = create_app(settings)
    client = app.test_client()
    base = "https://sso.london.test"
    from tests.support.http_login import csrf_token

    page = client.get("/login", base_url=base).get_data(as_text=True)
    # Browsers send a same-origin Referer on HTTPS form posts (Referrer-Policy: same-origin); the CSRF check requires it.
    referer = {"Referer": f"{base}/login"}
    flow = client.post("/login", base_url=base, headers=referer, data={"csrf_token": csrf_token(page), "email": "amara.okafor@camden.test"})
    assert any(c.startswith("__Host-supercloud-flow=") and "Secure" in c for c in flow.headers.getlist("Set-Cookie"))
    page = client.get("/login/password", base_url=base).get_data(as_text=True)
    response = client.post("/login/password", base_url=base, headers={"Referer": f"{base}/login/password"}, data={"csrf_token": csrf_token(page), "password": "london-demo"})
    cookies = response.headers.getlist("Set-Cookie")
    session_cookie = [c for c in cookies if c.startswith("__Host-supercloud-session=")]
    assert session_cookie, cookies
    assert "Secure" in session_cookie[0] and "Path=/" in session_cookie[0] and "Domain" not in session_cookie[0]
    assert "Strict-Transport-Security" in response.headers


def test_https_form_posts_from_another_site_are_refused(settings_factory) -> None:
    from broker.bootstrap import initialise
    from broker.web.app import create_app
    from tests.support.http_login import csrf_token

    settings = settings_factory(issuer="https://sso.london.test")
    initialise(settings)
    client = create_app(settings).test_client()
    base = "https://sso.london.test"
    page = client.get("/login", base_url=base).get_data(as_text=True)
    response = client.post("/login", base_url=base, headers={"Referer": "https://attacker.test/"},
                           data={"csrf_token": csrf_token(page), "email": "amara.okafor@camden.test"})
    assert response.status_code == 400


def test_discovery_and_jwks_may_be_cached_but_personal_answers_not(app) -> None:
    client = app.test_client()
    for path in ("/.well-known/openid-configuration", "/jwks.json"):
        assert client.get(path).headers["Cache-Control"] == "public, max-age=300"
    assert client.get("/login").headers["Cache-Control"] == "no-store"
