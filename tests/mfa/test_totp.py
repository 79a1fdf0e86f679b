"""TOTP enrolment and verification: each step once, recovery codes once, nothing half-enrolled."""

from __future__ import annotations

import threading
import time

import pyotp
import pytest

from broker.mfa import MfaError


@pytest.fixture
def subject(services) -> str:  # type: ignore[no-untyped-def]
    from federation.identity import SubjectRef

    return services.subjects.subject_for(SubjectRef("urn:test", "person-1"))


def _enrol(services, subject: str) -> tuple[str, list[str]]:  # type: ignore[no-untyped-def]
    totp = services.login.totp
    enrolment = totp.begin_enrolment(subject, "amara.okafor@camden.test")
    now = time.time()
    codes = totp.confirm_enrolment(subject, pyotp.TOTP(enrolment.secret).at(now), now=now)
    return enrolment.secret, codes


def test_enrolment_counts_only_after_a_right_code(services, subject) -> None:  # type: ignore[no-untyped-def]
    totp = services.login.totp
    enrolment = totp.begin_enrolment(subject, "amara.okafor@camden.test")
    assert enrolment.uri.startswith("otpauth://totp/London%20Supercloud:amara.okafor%40camden.test?secret=")
    assert enrolment.qr_svg.startswith("<?xml")
    with pytest.raises(MfaError):
        totp.confirm_enrolment(subject, "000000" if pyotp.TOTP(enrolment.secret).now() != "000000" else "111111")
    assert not totp.is_enrolled(subject), "a wrong confirmation must not enrol"
    assert totp.pending_enrolment(subject, "x").secret == enrolment.secret, "the enrolment stays pending for another try"
    codes = totp.confirm_enrolment(subject, pyotp.TOTP(enrolment.secret).now())
    assert totp.is_enrolled(subject)
    assert len(codes) == 10 and len(set(codes)) == 10


def test_secret_is_encrypted_at_rest(services, subject) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from broker.storage.models import MfaCredentialRow

    secret, _ = _enrol(services, subject)
    with services.db() as session:
        row = session.execute(select(MfaCredentialRow)).scalar_one()
    assert secret.encode() not in row.encrypted_secret


def test_each_time_step_is_accepted_once(services, subject) -> None:  # type: ignore[no-untyped-def]
    secret, _ = _enrol(services, subject)
    later = time.time() + 60
    code = pyotp.TOTP(secret).at(later)
    assert services.login.totp.verify(subject, code, now=later) == "otp"
    with pytest.raises(MfaError, match="already been used"):
        services.login.totp.verify(subject, code, now=later)


def test_codes_one_step_either_side_are_accepted_but_not_further(services, subject) -> None:  # type: ignore[no-untyped-def]
    secret, _ = _enrol(services, subject)
    base = time.time() + 300
    totp = pyotp.TOTP(secret)
    assert services.login.totp.verify(subject, totp.at(base - 30), now=base) == "otp"
    with pytest.raises(MfaError, match="wrong or has expired"):
        services.login.totp.verify(subject, totp.at(base - 120), now=base + 30)


def test_an_older_step_is_refused_after_a_newer_one(services, subject) -> None:  # type: ignore[no-untyped-def]
    secret, _ = _enrol(services, subject)
    base = time.time() + 600
    totp = pyotp.TOTP(secret)
    services.login.totp.verify(subject, totp.at(base + 30), now=base)
    with pytest.raises(MfaError):
        services.login.totp.verify(subject, totp.at(base), now=base)


def test_concurrent_double_submission_accepts_once(services, subject) -> None:  # type: ignore[no-untyped-def]
    secret, _ = _enrol(services, subject)
    later = time.time() + 900
    code = pyotp.TOTP(secret).at(later)
    results: list[str] = []
    barrier = threading.Barrier(6)

    def submit() -> None:
        barrier.wait()
        try:
            results.append(services.login.totp.verify(subject, code, now=later))
        except MfaError:
            results.append("refused")

    threads = [threading.Thread(target=submit) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("otp") == 1 and results.count("refused") == 5


def test_recovery_codes_work_once(services, subject) -> None:  # type: ignore[no-untyped-def]
    _, codes = _enrol(services, subject)
    assert services.login.totp.verify(subject, codes[0].upper()) == "recovery"
    with pytest.raises(MfaError):
        services.login.totp.verify(subject, codes[0])
    assert services.login.totp.verify(subject, codes[1]) == "recovery"


@pytest.mark.parametrize("code", ["", "12345", "1234567", "abcdef", "12 34 5x", "' OR 1=1 --", "a" * 500])
def test_malformed_codes_are_refused(services, subject, code: str) -> None:  # type: ignore[no-untyped-def]
    _enrol(services, subject)
    with pytest.raises(MfaError):
        services.login.totp.verify(subject, code)


def test_reset_removes_the_factor(services, subject) -> None:  # type: ignore[no-untyped-def]
    _, codes = _enrol(services, subject)
    assert services.login.totp.reset(subject)
    assert not services.login.totp.is_enrolled(subject)
    with pytest.raises(MfaError):
        services.login.totp.verify(subject, codes[2])


def test_the_sign_in_read_of_subject_and_second_factor_follows_links(services) -> None:  # type: ignore[no-untyped-def]
    # A password sign-in reads the subject and "has a second factor" in one statement: it must
    # answer for the linked person (whose factor it is), and only for a confirmed credential.
    from federation.identity import SubjectRef

    first, second, other = SubjectRef("urn:test", "linked-1"), SubjectRef("urn:test:other", "linked-2"), SubjectRef("urn:test", "x")
    person = services.subjects.subject_for(first)
    services.linking.link_by_administrator(first, second, actor="admin", reason="test")
    assert services.subjects.subject_and_second_factor(second) == (person, False)
    services.login.totp.begin_enrolment(person, "amara.okafor@camden.test")  # begun, not confirmed: no factor yet
    assert services.subjects.subject_and_second_factor(first) == (person, False)
    _enrol(services, person)
    assert services.subjects.subject_and_second_factor(first) == (person, True)
    assert services.subjects.subject_and_second_factor(second) == (person, True)
    stranger, has_factor = services.subjects.subject_and_second_factor(other)  # first sight: created, no factor
    assert stranger not in (person, None) and has_factor is False
