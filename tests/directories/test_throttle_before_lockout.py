"""The broker stops passing wrong passwords on before Active Directory's own lockout threshold,
so nobody can lock staff out of AD through the broker (issue 8) — against a real Samba AD DC."""

from __future__ import annotations

import ldap3
import pytest

from tests.directories.broker_peers import admin_connection, camden_source, create_ad_user, hackney_source, newham_source
from tests.directories.test_broker_directory_signin import build_app
from tests.peers.samba import LOCKOUT_THRESHOLD, SambaDC
from tests.peers.slapd import SlapdServer
from tests.support.flask_flow import password_sign_in

PASSWORD = "Throttle-Test-2026!"


def _bad_password_count(dc: SambaDC, upn: str) -> tuple[int, int]:
    conn = admin_connection(dc)
    try:
        conn.search(dc.spec.base_dn, f"(userPrincipalName={upn})", attributes=["badPwdCount", "lockoutTime"])
        entry = conn.entries[0]
        lockout = entry.lockoutTime.value
        lockout_raw = 0 if lockout in (None, 0) or str(lockout).startswith("1601") else 1
        return int(entry.badPwdCount.value or 0), lockout_raw
    finally:
        conn.unbind()


@pytest.mark.peer("samba")
def test_a_brute_force_run_through_the_broker_never_locks_the_ad_account(
    settings_factory, samba_camden: SambaDC, samba_newham: SambaDC, slapd_hackney: SlapdServer
) -> None:
    app, services = build_app(
        settings_factory,
        camden_source(samba_camden, lockout_threshold=LOCKOUT_THRESHOLD),
        newham_source(samba_newham),
        hackney_source(slapd_hackney),
    )
    try:
        upn = create_ad_user(samba_camden, PASSWORD)
        client = app.test_client()
        answers = [password_sign_in(client, upn, f"guess-{n}") for n in range(LOCKOUT_THRESHOLD + 4)]
        throttled = ["too many attempts" in a.get_data(as_text=True) for a in answers]
        assert throttled.index(True) == LOCKOUT_THRESHOLD - 1, "the broker stops one failure short of AD's threshold"
        assert all(throttled[LOCKOUT_THRESHOLD - 1:])
        bad, locked = _bad_password_count(samba_camden, upn)
        assert bad == LOCKOUT_THRESHOLD - 1 and not locked, "AD saw fewer wrong passwords than its threshold"
        # The person can still sign in to AD (e.g. at their desk): the account is not locked.
        direct = ldap3.Connection(ldap3.Server(samba_camden.address, port=389, get_info=ldap3.NONE),
                                  user=upn, password=PASSWORD)
        assert direct.bind(), direct.result
        direct.unbind()
        reasons = [r.details.get("reason") for r in services.audit.records() if r.event == "signin" and r.outcome == "failure"]
        assert reasons.count("throttled") == 5
    finally:
        services.engine.dispose()
