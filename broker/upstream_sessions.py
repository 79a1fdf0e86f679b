"""The upstream session behind each SSO session, and logout with upstreams in both directions.

- ``UpstreamSessions`` records, per SSO session opened by an upstream sign-in, what the
  upstream said about its own session (``federation.sources.UpstreamSession``): ``sub`` and
  ``sid`` (OIDC), NameID and SessionIndex (SAML), the ID token for ``id_token_hint``
  (encrypted at rest under the master key, the SSO ``sid`` as associated data), and when
  the upstream's authentication stops vouching for the person. The SSO session's expiry is
  capped at that moment, so neither the session nor the refresh tokens and access behind it
  (which never outlive the session) outlast the upstream's authentication; the person then
  signs in at the upstream again.
- ``UpstreamLogout``: when the person signs out of the broker, ``begin`` returns the
  upstream's logout URL (OIDC RP-initiated logout) with a state kept server-side for ten
  minutes; the upstream sends the browser back to ``/logout/upstream/return``. When the
  upstream tells us a session ended (OIDC back-channel logout token), ``backchannel``
  validates it (``federation``), refuses a replayed ``jti``, finds the broker sessions that
  came from that upstream ``sid`` (or, without one, that upstream ``sub``) and ends them,
  which revokes their tokens and notifies the applications in them. Every outcome is audited.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from broker.audit import AuditEvent
from broker.errors import BrokerError, BrokerErrorCode
from broker.state import StateStore
from broker.storage.models import SsoSessionRow, UpstreamSessionRow
from broker.storage.types import utcnow
from federation.errors import FederationError
from federation.keys import MasterKey
from federation.organisations import OrganisationRegistry
from federation.sources import BackchannelLogoutSource, LogoutSource, UpstreamSession

LOGOUT_STATE_NAMESPACE = "upstream-logout"
LOGOUT_STATE_TTL_SECONDS = 600
JTI_NAMESPACE = "upstream-logout-jti"
RETURN_PATH = "/logout/upstream/return"
SLO_EVENT = "upstream_saml_logout"


class UpstreamSessions:
    """Stores the upstream session behind each SSO session."""

    def __init__(self, db: sessionmaker[Session], master_key: MasterKey) -> None:
        self._db = db
        self._master = master_key

    def record(self, sid: str, upstream: UpstreamSession) -> None:
        """Remember ``upstream`` for SSO session ``sid``; cap the session's expiry at ``upstream.not_after``."""
        token = (
            self._master.encrypt(upstream.id_token.encode(), f"upstream-id-token:{sid}".encode())
            if upstream.id_token else None
        )
        with self._db.begin() as session:
            session.merge(UpstreamSessionRow(
                sid=sid, source=upstream.source, upstream_subject=upstream.subject[:512],
                upstream_sid=upstream.session_id[:255] if upstream.session_id else None,
                name_id=json.dumps(dict(upstream.name_id), sort_keys=True) if upstream.name_id else None,
                encrypted_id_token=token, authenticated_at=upstream.authenticated_at, expires_at=upstream.not_after,
                created_at=utcnow(),
            ))
            if upstream.not_after is not None:
                session.execute(update(SsoSessionRow).where(SsoSessionRow.sid == sid,
                                                            SsoSessionRow.expires_at > upstream.not_after)
                                .values(expires_at=upstream.not_after))

    def for_sid(self, sid: str) -> UpstreamSession | None:
        """Return the upstream session behind SSO session ``sid`` (live or ended), or None."""
        with self._db() as session:
            row = session.get(UpstreamSessionRow, sid)
        if row is None:
            return None
        id_token = (
            self._master.decrypt(row.encrypted_id_token, f"upstream-id-token:{sid}".encode()).decode()
            if row.encrypted_id_token else None
        )
        return UpstreamSession(
            source=row.source, subject=row.upstream_subject, authenticated_at=row.authenticated_at,
            session_id=row.upstream_sid, id_token=id_token, name_id=json.loads(row.name_id) if row.name_id else None,
            not_after=row.expires_at,
        )

    def matching(self, source: str, *, subject: str | None, session_id: str | None) -> list[tuple[str, bool]]:
        """Return (SSO sid, still live) for every SSO session that came from upstream session
        ``session_id`` of ``source`` (and of ``subject`` when both are given), or, without a
        session id, from any session of ``subject`` there."""
        query = select(UpstreamSessionRow.sid, SsoSessionRow.ended_at, SsoSessionRow.expires_at).join(
            SsoSessionRow, SsoSessionRow.sid == UpstreamSessionRow.sid).where(UpstreamSessionRow.source == source)
        if session_id is not None:
            query = query.where(UpstreamSessionRow.upstream_sid == session_id)
            if subject is not None:
                query = query.where(UpstreamSessionRow.upstream_subject == subject)
        elif subject is not None:
            query = query.where(UpstreamSessionRow.upstream_subject == subject)
        else:
            return []
        now = utcnow()
        with self._db() as session:
            return [(sid, ended is None and expires > now) for sid, ended, expires in session.execute(query)]


@dataclasses.dataclass(frozen=True, slots=True)
class UpstreamLogoutStart:
    """Where to send the browser to sign out at the upstream."""

    source: str
    url: str


class UpstreamLogout:
    """Logout with upstream identity providers, both directions (see the module docstring)."""

    def __init__(
        self,
        *,
        sessions: UpstreamSessions,
        registry: OrganisationRegistry,
        state: StateStore,
        end_session: Callable[[str, str], bool],
        audit: Callable[[AuditEvent], object],
        issuer: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sessions = sessions
        self._registry = registry
        self._state = state
        self._end_session = end_session
        self._audit = audit
        self.return_url = issuer + RETURN_PATH
        self._clock = clock

    # --- the person signs out of the broker ------------------------------------------------------

    def begin(self, sid: str, *, continuation: dict[str, Any], ip: str | None) -> UpstreamLogoutStart | None:
        """Return the upstream logout for SSO session ``sid``, keeping ``continuation`` (what the
        broker's own sign-out page shows afterwards) until the upstream sends the browser back.

        None if the session did not come from an upstream offering logout; an upstream that
        cannot be reached is audited and skipped (the broker session is already ended).
        """
        upstream = self.sessions.for_sid(sid)
        source = self._registry.source(upstream.source) if upstream else None
        if upstream is None or not isinstance(source, LogoutSource):
            return None
        state = secrets.token_urlsafe(24)
        try:
            url = source.logout_url(upstream, return_url=self.return_url, state=state)
        except FederationError as exc:
            self._audit(AuditEvent("upstream_signout", "failure", ip=ip,
                                   details={"source": source.id, "sid": sid, "reason": f"{exc.code.value}: {exc.reason}"}))
            return None
        if url is None:
            return None
        self._state.add(LOGOUT_STATE_NAMESPACE, state, {"sid": sid, "source": source.id, "continuation": continuation},
                        LOGOUT_STATE_TTL_SECONDS)
        self._audit(AuditEvent("upstream_signout", "redirected", ip=ip, details={"source": source.id, "sid": sid}))
        return UpstreamLogoutStart(source.id, url)

    def returned(self, state: str | None, *, ip: str | None) -> dict[str, Any] | None:
        """The upstream sent the browser back: return the kept continuation (taken once), or None
        for an unknown, expired or replayed ``state``."""
        taken = self._state.take(LOGOUT_STATE_NAMESPACE, state) if state and len(state) <= 128 else None
        if taken is None or taken.value is None:
            self._audit(AuditEvent("upstream_signout", "failure", ip=ip, details={"reason": "unknown or used state"}))
            return None
        self._audit(AuditEvent("upstream_signout", "success", ip=ip,
                               details={"source": taken.value["source"], "sid": taken.value["sid"]}))
        return dict(taken.value.get("continuation") or {})

    # --- the upstream tells us a session ended ------------------------------------------------

    def backchannel(self, source_id: str, token: str, *, ip: str | None) -> int:
        """Handle a back-channel logout token POSTed by upstream ``source_id``; return how many
        live broker sessions it ended.

        Raises BrokerError(BAD_REQUEST) — answered 400 (Back-Channel Logout §2.8) and audited
        with the reason — for an unknown source, an invalid or replayed token, or one naming no
        session that came from this upstream.
        """
        source = self._registry.source(source_id)
        if not isinstance(source, BackchannelLogoutSource):
            self._refuse(source_id, "no upstream with back-channel logout has this id", ip)
        try:
            notice = source.verify_logout_token(token)
        except FederationError as exc:
            self._refuse(source_id, f"{exc.code.value}: {exc.reason}", ip)
        ended = self._end_matching(source_id, notice, ip, "upstream_backchannel_logout")
        if ended is None:
            self._refuse(source_id, "the logout token names no session that came from this upstream", ip,
                         sid=notice.session_id)
        return ended or 0

    def front_channel(self, source_id: str, raw_query: bytes, *, ip: str | None) -> FrontChannelResult:
        """Handle a SAML logout message the IdP sent through the browser to our SingleLogoutService.

        A LogoutRequest ends the broker sessions that came from that NameID and SessionIndex and
        is answered (``redirect``: our signed LogoutResponse, Success or UnknownPrincipal); a
        LogoutResponse to our own request finishes the sign-out (``continuation``). Raises
        BrokerError(BAD_REQUEST) — a page, no answer — for anything unverified (audited).
        """
        source = self._registry.source(source_id)
        if source is None or not hasattr(source, "read_logout_message"):
            self._refuse(source_id, "no upstream with single logout has this id", ip, event=SLO_EVENT)
        try:
            message = source.read_logout_message(raw_query)
        except FederationError as exc:
            self._refuse(source_id, f"{exc.code.value}: {exc.reason}", ip, event=SLO_EVENT)
        if message.kind == "response":
            continuation = self.returned(message.relay_state, ip=ip)
            if not message.success:
                self._audit(AuditEvent(SLO_EVENT, "partial", ip=ip, details={"source": source_id,
                                                                              "reason": "the IdP reported a failed logout"}))
            return FrontChannelResult(continuation=continuation or {})
        notice = message.notice
        ended = self._end_matching(source_id, notice, ip, SLO_EVENT)
        from federation.upstream_saml.source import STATUS_SUCCESS, STATUS_UNKNOWN_PRINCIPAL

        if ended is None:
            self._audit(AuditEvent(SLO_EVENT, "failure", ip=ip, details={
                "source": source_id, "reason": "the logout request names no session that came from this IdP"}))
        url = source.logout_response_url(message.request_id, message.relay_state,
                                          status=STATUS_SUCCESS if ended is not None else STATUS_UNKNOWN_PRINCIPAL)
        return FrontChannelResult(redirect=url, continuation={} if url is None else None)

    def _end_matching(self, source_id: str, notice: Any, ip: str | None, event: str) -> int | None:
        """Refuse a replayed notice; end the live sessions it names; return how many, or None if it
        names no session that came from this upstream."""
        ttl = max(1, int(notice.expires_at - self._clock()) + 120)
        jti_key = hashlib.sha256(f"{source_id}\x00{notice.token_id}".encode()).hexdigest()
        if not self._state.add(JTI_NAMESPACE, jti_key, {"source": source_id}, ttl):
            self._refuse(source_id, "logout message replayed (its jti / ID was seen before)", ip, event=event)
        found = self.sessions.matching(source_id, subject=notice.subject, session_id=notice.session_id)
        if not found:
            return None
        ended = sum(1 for sid, live in found if live and self._end_session(sid, "upstream_logout"))
        self._audit(AuditEvent(event, "success", ip=ip,
                               details={"source": source_id, "upstream_sid": notice.session_id,
                                        "sessions_ended": ended, "sids": [sid for sid, _ in found]}))
        return ended

    def _refuse(self, source_id: str, reason: str, ip: str | None, *, event: str = "upstream_backchannel_logout",
                **details: Any) -> None:
        self._audit(AuditEvent(event, "failure", ip=ip, details={"source": source_id[:64], "reason": reason, **details}))
        raise BrokerError(BrokerErrorCode.BAD_REQUEST, "The sign-out message was refused.")


@dataclasses.dataclass(frozen=True, slots=True)
class FrontChannelResult:
    """What to do with the browser after a front-channel logout message: send it on (``redirect``)
    or show the signed-out page with the kept ``continuation``."""

    redirect: str | None = None
    continuation: dict[str, Any] | None = None
