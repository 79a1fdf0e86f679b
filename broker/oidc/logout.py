"""Ending SSO sessions and telling applications: RP-initiated, front- and back-channel logout.

- RP-initiated logout (OIDC RP-Initiated Logout 1.0 §2–§3): ``id_token_hint`` verified with
  our own keys (an expired hint is still accepted), ``client_id`` must agree with it, and
  ``post_logout_redirect_uri`` must be exactly one the client registered — else no redirect.
- Back-channel (OIDC Back-Channel Logout 1.0 §2.5): a signed logout token to every
  application that received a code in the session and registered ``backchannel_logout_uri``,
  written to the durable outbox (``backchannel.py``) in the transaction that ends the session.
- Front-channel (OIDC Front-Channel Logout 1.0 §2–§4): ``frontchannel_logout_uri`` with
  ``iss`` and ``sid`` for the sign-out page to load in iframes.
- ``end_sessions_for_subject``: an admin or a leaver's account being disabled ends every
  live session of a person, revokes their tokens and notifies applications.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from broker.audit import AuditEvent
from broker.clients import Client, ClientRegistry, client_from_row
from broker.errors import BrokerError, BrokerErrorCode
from broker.keyring import KeyRing
from broker.oidc.backchannel import BackchannelOutbox, Delivery
from broker.oidc.refresh import RefreshTokens
from broker.oidc.subject_types import SubjectIdentifiers
from broker.oidc.tokens import TokenMinter
from broker.sessions import SsoSessions
from broker.storage.models import ClientRow, SessionClientRow
from broker.storage.types import utcnow
from federation import jose
from federation.errors import FederationError
from federation.keys import SIGNING_ALGS, SigningAlg

# An expired id_token_hint is still a valid hint (RP-Initiated Logout §2): accept a week-old one.
HINT_MAX_AGE_SECONDS = 7 * 24 * 3600


@dataclasses.dataclass(frozen=True, slots=True)
class EndSessionRequest:
    """A validated RP-initiated logout request."""

    client: Client | None
    hint_subject: str | None
    hint_sid: str | None
    post_logout_redirect_uri: str | None
    state: str | None

    def redirect_url(self) -> str | None:
        """Return the post-logout redirect with ``state`` (§3), or None if there is nowhere to go."""
        if not self.post_logout_redirect_uri:
            return None
        if self.state is None:
            return self.post_logout_redirect_uri
        parts = urlsplit(self.post_logout_redirect_uri)
        extra = urlencode({"state": self.state})
        return urlunsplit((parts.scheme, parts.netloc, parts.path, f"{parts.query}&{extra}" if parts.query else extra, ""))


@dataclasses.dataclass(frozen=True, slots=True)
class LogoutResult:
    """What ending a session did: whether it was live and the front-channel URLs to load."""

    ended: bool
    frontchannel_urls: tuple[str, ...]


class LogoutService:
    """Ends sessions, revokes what was issued in them and notifies applications."""

    def __init__(
        self,
        *,
        db: sessionmaker[Session],
        issuer: str,
        clients: ClientRegistry,
        sso: SsoSessions,
        minter: TokenMinter,
        refresh: RefreshTokens,
        keyring: KeyRing,
        subjects: SubjectIdentifiers,
        outbox: BackchannelOutbox,
        audit: Callable[[AuditEvent], object],
        default_alg: SigningAlg,
    ) -> None:
        self._db = db
        self._issuer = issuer
        self._clients = clients
        self._sso = sso
        self._minter = minter
        self._refresh = refresh
        self._keyring = keyring
        self._subjects = subjects
        self.outbox = outbox
        self._audit = audit
        self._default_alg = default_alg

    # --- who is in a session ---------------------------------------------------------------

    def record_client(self, sid: str, client_id: str, subject_id: str) -> None:
        """Remember that ``client_id`` received a code in session ``sid`` (idempotent)."""
        with self._db() as session:
            if session.get(SessionClientRow, (sid, client_id)) is not None:
                return
        try:
            with self._db.begin() as session:
                session.add(SessionClientRow(sid=sid, client_id=client_id, subject_id=subject_id, created_at=utcnow()))
        except IntegrityError:
            pass  # a concurrent request recorded it first

    def clients_in(self, sid: str) -> list[Client]:
        """Return the enabled clients that received a code in session ``sid``."""
        with self._db() as session:
            ids = session.execute(select(SessionClientRow.client_id).where(SessionClientRow.sid == sid)).scalars().all()
        return [c for c in (self._clients.get(i) for i in sorted(ids)) if c is not None]

    # --- RP-initiated logout ----------------------------------------------------------------

    def validate(self, params: Mapping[str, Sequence[str]]) -> EndSessionRequest:
        """Validate an end-session request (RP-Initiated Logout §2).

        Raises BrokerError(BAD_REQUEST / UNKNOWN_CLIENT / INVALID_REDIRECT_URI) — shown as a
        page, never redirected, since the redirect target is not verified.
        """
        single = {k: v[0] for k, v in params.items() if v and v[0] != ""}
        if any(len(v) > 1 for v in params.values()):
            raise BrokerError(BrokerErrorCode.BAD_REQUEST, "The sign-out request repeats a parameter.")
        if any(len(v) > 4096 for v in single.values()):
            raise BrokerError(BrokerErrorCode.BAD_REQUEST, "The sign-out request is too long.")
        hint_claims = self._verify_hint(single["id_token_hint"]) if "id_token_hint" in single else None
        client_id = single.get("client_id")
        if hint_claims is not None:
            aud = hint_claims.get("aud")
            audiences = aud if isinstance(aud, list) else [aud]
            if client_id is not None and client_id not in audiences:
                raise BrokerError(BrokerErrorCode.BAD_REQUEST, "The sign-out request names a different application than its ID token.")
            client_id = client_id or (audiences[0] if len(audiences) == 1 else None)
        client = self._clients.get(client_id) if client_id else None
        if client_id and client is None:
            raise BrokerError(BrokerErrorCode.UNKNOWN_CLIENT, "The application that sent you here is not registered.")
        redirect = single.get("post_logout_redirect_uri")
        if redirect is not None:
            if client is None:
                raise BrokerError(BrokerErrorCode.BAD_REQUEST,
                                  "The application must identify itself (id_token_hint or client_id) to be returned to.")
            if redirect not in client.post_logout_redirect_uris:
                raise BrokerError(BrokerErrorCode.INVALID_REDIRECT_URI,
                                  "The application asked to return you to an address it has not registered.")
        return EndSessionRequest(
            client=client,
            hint_subject=str(hint_claims["sub"]) if hint_claims and "sub" in hint_claims else None,
            hint_sid=str(hint_claims["sid"]) if hint_claims and "sid" in hint_claims else None,
            post_logout_redirect_uri=redirect,
            state=single.get("state"),
        )

    def hint_matches(self, request: EndSessionRequest, sid: str, subject_id: str) -> bool:
        """Return True if the request's ID token names this session (by ``sid``, else by subject)."""
        if request.client is None or request.hint_subject is None:
            return False
        if request.hint_subject != self._subjects.for_client(request.client, subject_id):
            return False
        return request.hint_sid is None or request.hint_sid == sid

    def _verify_hint(self, token: str) -> dict[str, Any]:
        try:
            return jose.verify(token, self._keyring.verification_keys(), audience=None, issuer=self._issuer,
                               typ="JWT", leeway_seconds=HINT_MAX_AGE_SECONDS)
        except FederationError:
            raise BrokerError(BrokerErrorCode.BAD_REQUEST, "The sign-out request carries an ID token this service did not issue.") from None

    # --- ending sessions ------------------------------------------------------------------------

    def end_session(self, sid: str, *, reason: str, actor: str | None, ip: str | None = None, deliver: bool = True) -> LogoutResult:
        """End session ``sid``: revoke its tokens, queue back-channel logout, return front-channel URLs.

        The outbox rows are written in the transaction that ends the session; with ``deliver``
        this process then delivers them in the background (see ``BackchannelOutbox``). Returns
        ``ended=False`` (and notifies no one) if it was not live.
        """
        clients: list[Client] = []
        subject: list[str] = []

        def enqueue(db_session: Session, subject_id: str) -> None:
            subject.append(subject_id)
            # Read in this transaction's own connection (SQLite: another connection would wait on our lock).
            rows = db_session.execute(
                select(ClientRow).join(SessionClientRow, SessionClientRow.client_id == ClientRow.client_id)
                .where(SessionClientRow.sid == sid, ClientRow.disabled.is_(False)).order_by(ClientRow.client_id)
            ).scalars().all()
            for client in map(client_from_row, rows):
                clients.append(client)
                if client.backchannel_logout_uri:
                    self.outbox.enqueue(db_session, sid=sid, client_id=client.client_id, url=client.backchannel_logout_uri,
                                        public_subject=self._subjects.for_client(client, subject_id), alg=self._alg(client),
                                        reason=reason)

        if not self._sso.end(sid, reason, also=enqueue):
            return LogoutResult(False, ())
        if deliver and any(c.backchannel_logout_uri for c in clients):
            self.outbox.kick()
        revoked = self._minter.revoke_by_sid(sid) + self._refresh.revoke_by_sid(sid)
        frontchannel = [_with_query(c.frontchannel_logout_uri, {"iss": self._issuer, "sid": sid})
                        for c in clients if c.frontchannel_logout_uri]
        self._audit(AuditEvent("signout", "success", actor=actor or subject[0], ip=ip,
                               details={"sid": sid, "reason": reason, "tokens_revoked": revoked,
                                        "notified": [c.client_id for c in clients if c.backchannel_logout_uri],
                                        "frontchannel": [c.client_id for c in clients if c.frontchannel_logout_uri]}))
        return LogoutResult(True, tuple(frontchannel))

    def sign_logout_token(self, delivery: Delivery) -> str:
        """Sign the logout token of an outbox delivery now, with the delivery's ``jti``."""
        return self._minter.logout_token(client_id=delivery.client_id, public_subject=delivery.public_subject, sid=delivery.sid,
                                         alg=delivery.alg if delivery.alg in SIGNING_ALGS else self._default_alg,  # type: ignore[arg-type]
                                         jti=delivery.jti)

    def end_sessions_for_subject(self, subject_id: str, reason: str, *, actor: str | None = None, deliver: bool = True) -> int:
        """End every live session of the broker subject (admin action or leaver), notify
        applications by back-channel, and revoke every token issued for them; return how many sessions ended."""
        count = 0
        for sid in self._sso.live_sids_for_subject(subject_id):
            count += int(self.end_session(sid, reason=reason, actor=actor or "system", deliver=deliver).ended)
        revoked = self._minter.revoke_by_subject(subject_id) + self._refresh.revoke_by_subject(subject_id)
        self._audit(AuditEvent("subject_sessions_ended", "success", actor=actor or "system",
                               details={"subject_id": subject_id, "reason": reason, "sessions": count, "tokens_revoked": revoked}))
        return count

    def _alg(self, client: Client) -> SigningAlg:
        return client.signing_alg if client.signing_alg in SIGNING_ALGS else self._default_alg  # type: ignore[return-value]


def _with_query(url: str, params: Mapping[str, str]) -> str:
    parts = urlsplit(url)
    extra = urlencode(params)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, f"{parts.query}&{extra}" if parts.query else extra, ""))
