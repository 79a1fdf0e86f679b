"""Second factors: TOTP (RFC 6238) with pyotp, and one-time recovery codes.

Each time step is accepted at most once per person (pyotp alone would accept a code again
within its window): the credential row remembers the last step used, and a code is
accepted only by an update that moves that mark forward, so two concurrent submissions
of one code accept once. Secrets are encrypted at rest; recovery codes are stored only as
keyed hashes and shown once.
"""

from __future__ import annotations

import base64
import dataclasses
import hmac
import io
import re
import secrets
import time
import uuid

import pyotp
import qrcode
import qrcode.image.svg
from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from broker.errors import BrokerError, BrokerErrorCode
from broker.state import StateStore
from broker.storage.models import MfaCredentialRow, RecoveryCodeRow
from broker.storage.types import utcnow
from federation.keys import MasterKey

ENROL_NAMESPACE = "totp-enrol"
ENROL_TTL_SECONDS = 900
RECOVERY_LABEL = "recovery-code"
RECOVERY_CODES = 10
STEP_SECONDS = 30
WINDOW = 1  # steps either side of now (RFC 6238 §5.2)
_CODE = re.compile(r"^\d{6}$")
_RECOVERY = re.compile(r"^[a-z0-9]{5}-[a-z0-9]{5}$")


class MfaError(BrokerError):
    """Raised for a wrong, reused, late or malformed code; ``message`` is safe to show."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(BrokerErrorCode.MFA_FAILED, message)
        self.reason = reason


@dataclasses.dataclass(frozen=True, slots=True)
class Enrolment:
    """A pending enrolment: the secret (base32, for typing), its otpauth URI and a QR code (SVG)."""

    secret: str
    uri: str
    qr_svg: str


_TOTP_ENROLLED = (
    select(MfaCredentialRow.id)
    .where(MfaCredentialRow.subject_id == bindparam("subject_id"), MfaCredentialRow.kind == "totp")
    .limit(1)
)


class TotpService:
    """Enrols, verifies and resets TOTP second factors."""

    def __init__(self, sessions: sessionmaker[Session], master_key: MasterKey, state: StateStore, *, issuer_name: str) -> None:
        self._sessions = sessions
        self._master = master_key
        self._state = state
        self._issuer_name = issuer_name

    def is_enrolled(self, subject_id: str) -> bool:
        """Return True if the person has a confirmed TOTP credential (asked on every sign-in:
        a prebuilt read on a plain connection, no ORM session)."""
        with self._sessions.kw["bind"].connect() as connection:
            return connection.execute(_TOTP_ENROLLED, {"subject_id": subject_id}).first() is not None

    def begin_enrolment(self, subject_id: str, account_name: str) -> Enrolment:
        """Start (or restart) an enrolment; nothing counts until ``confirm_enrolment``."""
        secret = pyotp.random_base32(32)
        sealed = base64.b64encode(self._master.encrypt(secret.encode(), subject_id.encode())).decode()
        self._state.delete(ENROL_NAMESPACE, subject_id)
        self._state.add(ENROL_NAMESPACE, subject_id, {"secret": sealed}, ENROL_TTL_SECONDS)
        uri = pyotp.TOTP(secret).provisioning_uri(name=account_name, issuer_name=self._issuer_name)
        return Enrolment(secret=secret, uri=uri, qr_svg=_qr_svg(uri))

    def pending_enrolment(self, subject_id: str, account_name: str) -> Enrolment | None:
        """Return the enrolment begun and not yet confirmed, or None."""
        pending = self._state.get(ENROL_NAMESPACE, subject_id)
        if pending is None:
            return None
        secret = self._master.decrypt(base64.b64decode(pending["secret"]), subject_id.encode()).decode()
        uri = pyotp.TOTP(secret).provisioning_uri(name=account_name, issuer_name=self._issuer_name)
        return Enrolment(secret=secret, uri=uri, qr_svg=_qr_svg(uri))

    def confirm_enrolment(self, subject_id: str, code: str, *, now: float | None = None) -> list[str]:
        """Confirm the pending enrolment with one code; return ten recovery codes (shown once).

        Replaces any earlier credential and recovery codes in the same transaction.
        Raises MfaError if nothing is pending or the code is wrong; the enrolment stays pending.
        """
        pending = self._state.get(ENROL_NAMESPACE, subject_id)
        if pending is None:
            raise MfaError("Your set-up expired. Start again.", "no pending enrolment")
        secret = self._master.decrypt(base64.b64decode(pending["secret"]), subject_id.encode()).decode()
        step = _matching_step(secret, _clean(code), now)
        if step is None:
            raise MfaError("Enter the 6-digit code shown in your authenticator app", "wrong enrolment code")
        codes = [_recovery_code() for _ in range(RECOVERY_CODES)]
        taken = self._state.take(ENROL_NAMESPACE, subject_id)
        if taken.value is None:
            raise MfaError("Your set-up expired. Start again.", "enrolment confirmed twice")
        with self._sessions.begin() as session:
            session.execute(delete(MfaCredentialRow).where(MfaCredentialRow.subject_id == subject_id))
            session.execute(delete(RecoveryCodeRow).where(RecoveryCodeRow.subject_id == subject_id))
            session.add(
                MfaCredentialRow(
                    id=str(uuid.uuid4()), subject_id=subject_id, kind="totp",
                    encrypted_secret=self._master.encrypt(secret.encode(), subject_id.encode()),
                    created_at=utcnow(), last_used_step=step,
                )
            )
            for recovery in codes:
                session.add(RecoveryCodeRow(code_hash=self._recovery_hash(recovery), subject_id=subject_id, created_at=utcnow()))
        return codes

    def verify(self, subject_id: str, code: str, *, now: float | None = None) -> str:
        """Accept a TOTP code (each step once) or an unused recovery code; return the method
        (``otp`` or ``recovery``). Raises MfaError for anything else."""
        cleaned = _clean(code)
        if _RECOVERY.match(cleaned):
            return self._use_recovery(subject_id, cleaned)
        if not _CODE.match(cleaned):
            raise MfaError("Enter the 6-digit code shown in your authenticator app", "malformed code")
        with self._sessions() as session:
            row = session.execute(
                select(MfaCredentialRow).where(MfaCredentialRow.subject_id == subject_id, MfaCredentialRow.kind == "totp")
            ).scalar_one_or_none()
        if row is None:
            raise MfaError("Set up your authenticator app first", "not enrolled")
        secret = self._master.decrypt(row.encrypted_secret, subject_id.encode()).decode()
        step = _matching_step(secret, cleaned, now)
        if step is None:
            raise MfaError("The code is wrong or has expired. Enter the code shown in your app now", "wrong code")
        with self._sessions.begin() as session:
            moved = session.execute(
                update(MfaCredentialRow)
                .where(
                    MfaCredentialRow.id == row.id,
                    (MfaCredentialRow.last_used_step.is_(None)) | (MfaCredentialRow.last_used_step < step),
                )
                .values(last_used_step=step)
            )
        if moved.rowcount != 1:
            raise MfaError("That code has already been used. Wait for the next code in your app", "code reused")
        return "otp"

    def reset(self, subject_id: str) -> bool:
        """Remove the person's credential and recovery codes (admin reset); return True if one existed."""
        with self._sessions.begin() as session:
            removed = session.execute(delete(MfaCredentialRow).where(MfaCredentialRow.subject_id == subject_id))
            session.execute(delete(RecoveryCodeRow).where(RecoveryCodeRow.subject_id == subject_id))
        return bool(removed.rowcount)

    def _use_recovery(self, subject_id: str, code: str) -> str:
        with self._sessions.begin() as session:
            used = session.execute(
                update(RecoveryCodeRow)
                .where(
                    RecoveryCodeRow.code_hash == self._recovery_hash(code),
                    RecoveryCodeRow.subject_id == subject_id,
                    RecoveryCodeRow.used_at.is_(None),
                )
                .values(used_at=utcnow())
            )
        if used.rowcount != 1:
            raise MfaError("The recovery code is wrong or has been used", "bad recovery code")
        return "recovery"

    def _recovery_hash(self, code: str) -> str:
        return self._master.keyed_hash(RECOVERY_LABEL, code)


def _clean(code: str) -> str:
    return re.sub(r"[\s]", "", code or "").lower()[:32]


def _matching_step(secret: str, code: str, now: float | None) -> int | None:
    """Return the time step within ±WINDOW whose code equals ``code`` (constant-time compare), or None."""
    if not _CODE.match(code):
        return None
    totp = pyotp.TOTP(secret, interval=STEP_SECONDS)
    current = int((now if now is not None else time.time()) // STEP_SECONDS)
    found = None
    for step in range(current - WINDOW, current + WINDOW + 1):
        if hmac.compare_digest(totp.at(step * STEP_SECONDS), code):
            found = step
    return found


def _recovery_code() -> str:
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    raw = "".join(secrets.choice(alphabet) for _ in range(10))
    return f"{raw[:5]}-{raw[5:]}"


def _qr_svg(uri: str) -> str:
    image = qrcode.make(uri, image_factory=qrcode.image.svg.SvgPathImage, box_size=10, border=4)
    buffer = io.BytesIO()
    image.save(buffer)
    return buffer.getvalue().decode()
