"""OAuth 2.0 Token Exchange (RFC 8693) for a service calling another on a person's behalf.

The acting client presents an access token of ours that it received (``subject_token``,
type ``access_token``) and names the target with ``audience`` or ``resource``, which
must be among its ``allowed_audiences``. The access gate is asked again for the person
and the target; the new token carries ``act`` naming the acting client (§4.1), nested
over any earlier actor, and never outlives the sign-in session behind it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from broker.access import AccessGrant
from broker.clients import Client, ClientRegistry
from broker.errors import BrokerError, OAuthError
from broker.oidc.grants import requested_audience, requested_scopes
from broker.oidc.subject_types import SubjectIdentifiers
from broker.oidc.tokens import TokenGrant, TokenMinter
from broker.sessions import SsoSession, SsoSessions
from federation.keys import SigningAlg

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"


class TokenExchange:
    """Implements the token-exchange grant (RFC 8693 §2)."""

    def __init__(
        self,
        *,
        clients: ClientRegistry,
        minter: TokenMinter,
        sso: SsoSessions,
        subjects: SubjectIdentifiers,
        check_access: Callable[[SsoSession, str, "str | None"], AccessGrant],
        alg_for: Callable[[Client], SigningAlg],
    ) -> None:
        self._clients = clients
        self._minter = minter
        self._sso = sso
        self._subjects = subjects
        self._check_access = check_access
        self._alg_for = alg_for

    def exchange(self, client: Client, values: Mapping[str, str], form: Mapping[str, Sequence[str]],
                 *, ip: str | None) -> tuple[dict[str, Any], str]:
        """Return (the RFC 8693 §2.2.1 response plus ``_audience`` for the audit, the broker subject).

        Raises OAuthError: invalid_request, invalid_target, invalid_grant, invalid_scope.
        """
        if values.get("subject_token_type") != ACCESS_TOKEN_TYPE:
            raise OAuthError("invalid_request", f"subject_token_type must be {ACCESS_TOKEN_TYPE}")
        if "actor_token" in values or "actor_token_type" in values:
            raise OAuthError("invalid_request", "actor_token is not supported; the authenticated client is the actor")
        if values.get("requested_token_type", ACCESS_TOKEN_TYPE) != ACCESS_TOKEN_TYPE:
            raise OAuthError("invalid_request", f"only {ACCESS_TOKEN_TYPE} can be issued")
        subject_token = values.get("subject_token")
        if not subject_token:
            raise OAuthError("invalid_request", "subject_token is required")
        audience = requested_audience(form, client, required=True) or ()
        subject = self._minter.verify_access_token(subject_token, audience=None)
        if subject is None:
            raise OAuthError("invalid_grant", "subject_token is not a valid, current access token of this issuer")
        if subject.client_id != client.client_id and client.client_id not in subject.audience:
            raise OAuthError("invalid_grant", "subject_token was issued neither to nor for this client")
        if not subject.subject_id or not subject.sid:
            raise OAuthError("invalid_grant", "subject_token does not stand for a signed-in person")
        session = self._sso.by_sid(subject.sid)
        if session is None or session.subject_id != subject.subject_id:
            raise OAuthError("invalid_grant", "the sign-in session behind subject_token has ended")
        target = self._clients.get(audience[0]) if len(audience) == 1 else None
        try:
            self._check_access(session, target.client_id if target else client.client_id, ip)
        except BrokerError as exc:
            raise OAuthError("invalid_grant", f"the person may not reach the target service ({exc.code.value})") from None
        scopes = requested_scopes(values, subject.scopes)
        act: dict[str, Any] = {"sub": client.client_id}
        if subject.act:
            act["act"] = subject.act
        public = self._subjects.for_client(target, subject.subject_id) if target else subject.public_subject
        response = self._minter.mint(
            TokenGrant(client_id=client.client_id, subject_id=subject.subject_id, public_subject=public, sid=subject.sid,
                       scopes=scopes, nonce=None, auth_time=subject.auth_time, acr=subject.acr, amr=(), claims={},
                       code_hash=None, audience=audience, act=act, id_token=False, kind="exchange",
                       family_id=subject.family_id),
            self._alg_for(client),
        )
        response["issued_token_type"] = ACCESS_TOKEN_TYPE
        response["_audience"] = list(audience)
        return response, subject.subject_id
