"""The SAML session participants (whom single logout must reach) do not outlive their sessions:
an expired session's rows and those of a session ended without the logout chain (after a grace
period in which a late LogoutRequest from the SP still finds the person) are purged, by
``supercloud db purge`` and, every few minutes, by a serving worker."""

from __future__ import annotations

import datetime as dt

from click.testing import CliRunner
from sqlalchemy import select, update

from broker.cli import cli
from broker.saml.participants import ENDED_GRACE, PURGE_EVERY, Participant, Participants
from broker.storage.models import SamlSessionParticipantRow, SsoSessionRow
from broker.storage.types import utcnow
from tests.saml_idp.conftest import posted_response, send, sign_in_and_answer


def _rows(services) -> dict[str, set[str]]:  # type: ignore[no-untyped-def]
    with services.db() as session:
        rows = session.execute(select(SamlSessionParticipantRow)).scalars().all()
    found: dict[str, set[str]] = {}
    for row in rows:
        found.setdefault(row.sid, set()).add(row.sp_entity_id)
    return found


def _three_sessions(saml_env):  # type: ignore[no-untyped-def]
    app, services, sps = saml_env
    for _ in range(3):
        client = app.test_client()
        req_id, message = sps["a"].authn_request()
        sps["a"].parse(posted_response(sign_in_and_answer(client, send(client, message)))[1]["SAMLResponse"],
                       {req_id: "/"})
    with services.db() as session:
        sids = list(session.execute(select(SsoSessionRow.sid).order_by(SsoSessionRow.created_at)).scalars())
    assert len(sids) == 3 and set(_rows(services)) == set(sids), "each sign-in recorded its SP"
    return services, sps, sids


def test_expired_and_long_ended_sessions_lose_their_participants(saml_env) -> None:  # type: ignore[no-untyped-def]
    services, sps, (live, ended, expired) = _three_sessions(saml_env)
    participants: Participants = services.saml_idp.participants
    participants.record(Participant("no-such-session", sps["b"].entity_id, "s", "n", "f", "i"))
    assert services.sso.end(ended, "leaver")  # ended without the logout chain (no browser)
    with services.db.begin() as session:
        session.execute(update(SsoSessionRow).where(SsoSessionRow.sid == expired)
                        .values(expires_at=utcnow() - dt.timedelta(seconds=1)))

    assert participants.purge() == 2, "the expired session's row and the orphan go at once"
    assert set(_rows(services)) == {live, ended}
    # within the grace, an SP's late LogoutRequest for the ended session still finds the person
    name_id = participants.in_session(ended)[0].name_id
    assert {p.sid for p in participants.find(sps["a"].entity_id, name_id, ())} == {live, ended}

    assert participants.purge(now=utcnow() + ENDED_GRACE + dt.timedelta(seconds=1)) == 1
    assert set(_rows(services)) == {live}, "a live session keeps its SPs"
    assert {p.sid for p in participants.find(sps["a"].entity_id, name_id, ())} == {live}
    assert participants.purge() == 0


def test_db_purge_command(saml_env) -> None:  # type: ignore[no-untyped-def]
    services, _, (live, _, expired) = _three_sessions(saml_env)
    with services.db.begin() as session:
        session.execute(update(SsoSessionRow).where(SsoSessionRow.sid == expired)
                        .values(expires_at=utcnow() - dt.timedelta(seconds=1)))
    services.state.add("purge-test", "k", {"x": 1}, 1)
    with services.db.begin() as session:  # the state entry expired a minute ago
        from broker.storage.models import EphemeralStateRow

        session.execute(update(EphemeralStateRow).where(EphemeralStateRow.namespace == "purge-test")
                        .values(expires_at=utcnow() - dt.timedelta(minutes=1)))
    result = CliRunner().invoke(cli, ["--config", str(services.settings.base_dir / "broker.yaml"), "db", "purge"], obj={})
    assert result.exit_code == 0, result.output
    assert "1 SAML session participants of ended sessions" in result.output
    assert "purged 0 expired state entries" not in result.output, result.output
    assert expired not in _rows(services) and live in _rows(services)


def test_a_serving_worker_purges_every_few_minutes(saml_env) -> None:  # type: ignore[no-untyped-def]
    services, sps, (live, _, expired) = _three_sessions(saml_env)
    now = [0.0]
    participants = Participants(services.db, clock=lambda: now[0])
    with services.db.begin() as session:
        session.execute(update(SsoSessionRow).where(SsoSessionRow.sid == expired)
                        .values(expires_at=utcnow() - dt.timedelta(seconds=1)))
    participants.record(Participant(live, sps["b"].entity_id, "s", "n", "f", "i"))
    assert expired in _rows(services), "not yet due"
    now[0] = PURGE_EVERY + 1
    participants.record(Participant(live, sps["b"].entity_id, "s", "n2", "f", "i"))
    assert expired not in _rows(services) and _rows(services)[live] == {sps["a"].entity_id, sps["b"].entity_id}
