"""Account linking: only on evidence (both proved in one session, or an administrator's recorded
reason), keyed by (issuer, subject), never by email; conflicts and unlinking audited."""

from __future__ import annotations

import dataclasses
import datetime as dt
from urllib.parse import parse_qs, urlsplit

import pytest

from broker.errors import BrokerError
from federation.identity import SubjectRef
from tests.support.fake_upstream import install_fake_upstream
from tests.support.flask_flow import password_sign_in
from tests.support.http_login import csrf_token

CAMDEN = "urn:supercloud:directory:camden-demo"


def _events(services, name):  # type: ignore[no-untyped-def]
    return [r for r in services.audit.records() if r.event == name]


def _link_with_password(client, email: str, password: str = "london-demo"):  # type: ignore[no-untyped-def]
    page = client.get("/account/link").get_data(as_text=True)
    return client.post("/account/link", data={"csrf_token": csrf_token(page), "email": email, "password": password})


def test_a_section_75_worker_links_their_nhs_account_by_proving_it(app, services) -> None:
    fake = install_fake_upstream(services)
    client = app.test_client()
    password_sign_in(client, "amara.okafor@camden.test")
    page = client.get("/account/link").get_data(as_text=True)
    started = client.post("/account/link/upstream", data={"csrf_token": csrf_token(page), "source": fake.id})
    assert fake.requests[-1].force_authn
    code = parse_qs(urlsplit(started.headers["Location"]).query)["code"][0]
    done = client.get(f"/login/callback/{fake.id}?code={code}")
    assert done.status_code == 200 and "Accounts linked" in done.get_data(as_text=True)
    amara = services.subjects.subject_for(SubjectRef(CAMDEN, services.registry.source("camden-demo")._directory.lookup("amara.okafor@camden.test").object_id))
    assert services.subjects.subject_for(SubjectRef("https://cis2.test:443/", "nhs-555")) == amara
    link = services.linking.links(amara)[0]
    assert link.method == "proved_both" and link.evidence["second"]["source"] == fake.id
    assert link.evidence["first"]["methods"] == ["pwd"]
    linked = _events(services, "account_linked")[0]
    assert linked.details["method"] == "proved_both"


def test_the_linked_session_carries_both_accounts_with_provenance(app, services) -> None:
    fake = install_fake_upstream(services)
    client = app.test_client()
    password_sign_in(client, "amara.okafor@camden.test")
    page = client.get("/account/link").get_data(as_text=True)
    started = client.post("/account/link/upstream", data={"csrf_token": csrf_token(page), "source": fake.id})
    code = parse_qs(urlsplit(started.headers["Location"]).query)["code"][0]
    client.get(f"/login/callback/{fake.id}?code={code}")
    from broker.web.security import SSO_COOKIE

    cookie = client.get_cookie(SSO_COOKIE).value
    identity = services.sso.find(cookie).identity
    assert identity.organisation == "camden"
    assert identity.roles == ("S0080:G0450:R8000",), "the NHS role came with the NHS account"
    assert identity.attributes["email"].source == "directory:camden-demo"
    assert identity.attributes["name"].source == "directory:camden-demo", "the first account's value wins a clash"
    assert set(identity.authn.methods) == {"pwd", "sc"}


def test_a_matching_email_never_links_anything(app, services) -> None:
    # Two accounts of one address in different directories stay two people until proved.
    from federation.identity import SubjectRef as Ref

    a = services.subjects.subject_for(Ref(CAMDEN, "one"))
    b = services.subjects.subject_for(Ref("urn:supercloud:directory:newham-demo", "one"))
    assert a != b and services.linking.links(a) == []


def test_a_wrong_password_links_nothing(app, services) -> None:
    client = app.test_client()
    password_sign_in(client, "amara.okafor@camden.test")
    response = _link_with_password(client, "sofia.rossi@hackney.test", "wrong")
    assert response.status_code == 400
    assert _events(services, "account_linked") == []


def test_linking_the_same_account_or_twice_is_refused(app, services) -> None:
    client = app.test_client()
    password_sign_in(client, "amara.okafor@camden.test")
    same = _link_with_password(client, "amara.okafor@camden.test")
    assert same.status_code == 400 and "account you are signed in with" in same.get_data(as_text=True)
    assert _link_with_password(client, "sofia.rossi@hackney.test").status_code == 200
    again = _link_with_password(client, "sofia.rossi@hackney.test")
    assert again.status_code == 400
    reasons = [r.details["reason"] for r in _events(services, "account_link")]
    assert "same account" in reasons and ("already linked" in reasons or "same person" in reasons)


def test_an_account_linked_to_someone_else_is_a_conflict(app, services) -> None:
    first = app.test_client()
    password_sign_in(first, "amara.okafor@camden.test")
    assert _link_with_password(first, "sofia.rossi@hackney.test").status_code == 200
    other = app.test_client()
    password_sign_in(other, "kwame.mensah@newham.test")
    conflict = _link_with_password(other, "sofia.rossi@hackney.test")
    assert conflict.status_code == 400 and "linked to someone else" in conflict.get_data(as_text=True)
    assert "linked to another person" in [r.details["reason"] for r in _events(services, "account_link")]


def test_a_stale_first_sign_in_cannot_link(app, services) -> None:
    _, session = services.login.sign_in("amara.okafor@camden.test", "london-demo", ip=None)
    old = dataclasses.replace(session.identity, authn=dataclasses.replace(
        session.identity.authn, authenticated_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)))
    stale = dataclasses.replace(session, identity=old)
    second, _ = services.login.verify_password("sofia.rossi@hackney.test", "london-demo", ip=None)
    with pytest.raises(BrokerError, match="Sign in again"):
        services.linking.link_proved(stale, second, ip=None)


def test_administrator_links_need_a_reason_and_unlinking_restores_two_people(app, services) -> None:
    a, b = SubjectRef(CAMDEN, "worker-1"), SubjectRef("https://cis2.test:443/", "nhs-777")
    with pytest.raises(BrokerError):
        services.linking.link_by_administrator(a, b, actor="tom.hughes", reason="  ")
    link = services.linking.link_by_administrator(a, b, actor="tom.hughes", reason="HR record S75-2291")
    assert link.method == "administrator" and link.evidence["reason"] == "HR record S75-2291"
    assert services.subjects.subject_for(b) == services.subjects.subject_for(a)
    assert services.linking.unlink(b, actor="tom.hughes", reason="left the team")
    assert services.subjects.subject_for(b) != services.subjects.subject_for(a)
    assert [r.event for r in services.audit.records()][-1] == "account_unlinked"
