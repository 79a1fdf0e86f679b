"""The broker's signing keys: generated, stored encrypted, loaded once, published for rollover.

For each algorithm there is one ``current`` key (signs), one ``next`` key (published so
applications cache it before it signs) and, after a rotation, one ``previous`` key (still
published, so tokens it signed keep verifying).
"""

from __future__ import annotations

import datetime as dt
import threading
import time

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from broker.errors import BrokerError, BrokerErrorCode
from broker.storage.models import SigningKeyRow
from broker.storage.types import utcnow
from federation.jose import SigningKey, VerificationKey, load_signing_key, verification_key
from federation.keys import SIGNING_ALGS, MasterKey, SigningAlg, generate_private_pem

PUBLISHED = ("current", "next", "previous")
RELOAD_SECONDS = 60.0


class KeyRing:
    """Signing keys for every allowed algorithm, cached in process and reloaded each minute."""

    def __init__(self, sessions: sessionmaker[Session], master_key: MasterKey) -> None:
        self._sessions = sessions
        self._master = master_key
        self._lock = threading.Lock()
        self._parsed: dict[str, SigningKey] = {}
        self._status: dict[str, tuple[str, str]] = {}
        self._verification: dict[str, VerificationKey] = {}
        self._loaded_at = 0.0

    def ensure(self) -> list[str]:
        """Create a current and a next key for each algorithm that lacks them; return new kids."""
        created = []
        with self._sessions.begin() as session:
            for alg in SIGNING_ALGS:
                present = {r.status for r in session.execute(select(SigningKeyRow).where(SigningKeyRow.alg == alg)).scalars()}
                for status in ("current", "next"):
                    if status not in present:
                        created.append(self._add(session, alg, status))
        self._loaded_at = 0.0
        return created

    def rotate(self, alg: SigningAlg) -> str:
        """Retire previous, demote current, promote next, create a new next; return the new current kid.

        Raises BrokerError(NOT_INITIALISED) if the algorithm has no next key.
        """
        now = utcnow()
        with self._sessions.begin() as session:
            rows = {r.status: r for r in session.execute(select(SigningKeyRow).where(SigningKeyRow.alg == alg)).scalars() if r.status in PUBLISHED}
            if "next" not in rows or "current" not in rows:
                raise BrokerError(BrokerErrorCode.NOT_INITIALISED, f"no {alg} keys: run 'supercloud keys init'")
            if "previous" in rows:
                rows["previous"].status, rows["previous"].retired_at = "retired", now
            rows["current"].status = "previous"
            rows["next"].status, rows["next"].activated_at = "current", now
            self._add(session, alg, "next")
            promoted = rows["next"].kid
        self._loaded_at = 0.0
        return promoted

    def rotate_if_due(self, alg: SigningAlg, max_age: dt.timedelta) -> str | None:
        """Rotate ``alg`` if its current key has signed for longer than ``max_age``; return the
        new current kid, or None if not yet due. Raises BrokerError(NOT_INITIALISED) if no keys."""
        with self._sessions() as session:
            row = session.execute(
                select(SigningKeyRow).where(SigningKeyRow.alg == alg, SigningKeyRow.status == "current")
            ).scalar_one_or_none()
        if row is None:
            raise BrokerError(BrokerErrorCode.NOT_INITIALISED, f"no {alg} keys: run 'supercloud keys init'")
        since = row.activated_at or row.created_at
        if utcnow() - since < max_age:
            return None
        return self.rotate(alg)

    def current(self, alg: SigningAlg) -> SigningKey:
        """Return the key that signs for ``alg``. Raises BrokerError(NOT_INITIALISED) if none."""
        self._refresh()
        for kid, (row_alg, status) in self._status.items():
            if row_alg == alg and status == "current":
                return self._parsed[kid]
        raise BrokerError(BrokerErrorCode.NOT_INITIALISED, f"no current {alg} key: run 'supercloud keys init'", status=500)

    def published(self, alg: SigningAlg) -> dict[str, SigningKey]:
        """Return the published keys of ``alg`` by status (``current``, ``next``, ``previous``;
        each present only if it exists), for SAML metadata and assertion signing."""
        self._refresh()
        return {status: self._parsed[kid] for kid, (row_alg, status) in self._status.items() if row_alg == alg}

    def verification_keys(self) -> dict[str, VerificationKey]:
        """Return every published key (current, next, previous) by kid, for verifying our own tokens."""
        self._refresh()
        return self._verification

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """Return the JWK Set (RFC 7517 §5) of published public keys."""
        self._refresh()
        return {"keys": [dict(self._parsed[kid].public_jwk) for kid in sorted(self._parsed)]}

    def _add(self, session: Session, alg: SigningAlg, status: str) -> str:
        pem = generate_private_pem(alg)
        key = load_signing_key(alg, pem)
        session.add(
            SigningKeyRow(
                kid=key.kid,
                alg=alg,
                status=status,
                encrypted_private_key=self._master.encrypt(pem, key.kid.encode()),
                created_at=utcnow(),
                activated_at=utcnow() if status == "current" else None,
            )
        )
        return key.kid

    def _refresh(self) -> None:
        if time.monotonic() - self._loaded_at < RELOAD_SECONDS and self._parsed:
            return
        with self._lock:
            if time.monotonic() - self._loaded_at < RELOAD_SECONDS and self._parsed:
                return
            with self._sessions() as session:
                rows = session.execute(select(SigningKeyRow).where(SigningKeyRow.status.in_(PUBLISHED))).scalars().all()
            parsed = {}
            for row in rows:
                # Parse each PEM once per process: parsing costs tens of milliseconds.
                parsed[row.kid] = self._parsed.get(row.kid) or load_signing_key(
                    row.alg, self._master.decrypt(row.encrypted_private_key, row.kid.encode())
                )
            self._parsed = parsed
            # Built once per reload, not per token verified (an RSA JWK costs a key construction).
            self._verification = {kid: self._verification.get(kid) or verification_key(key.public_jwk) for kid, key in parsed.items()}
            self._status = {row.kid: (row.alg, row.status) for row in rows}
            self._loaded_at = time.monotonic()
