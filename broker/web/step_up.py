"""Turning a step-up obligation into the second-factor pages, without losing the request."""

from __future__ import annotations

import secrets

from flask import Response, redirect, session, url_for

from broker.access import BreakGlassNeeded, ObligationPending, StepUpRequired
from broker.oidc.authorization import AuthorizationRequest
from broker.web.context import current_session, services
from broker.web.login_views import PENDING
from federation.identity import AssuranceLevel
from federation.sources import CallbackSource

PENDING_NAMESPACE = "authreq"
PENDING_TTL_SECONDS = 1800
STEP_UP = "step_up"
BREAK_GLASS = "break_glass"


def park(authz: AuthorizationRequest) -> None:
    """Keep ``authz`` server-side (30 minutes), bound to this browser's flow cookie."""
    key = secrets.token_urlsafe(24)
    services().state.add(PENDING_NAMESPACE, key, authz.to_json(), PENDING_TTL_SECONDS)
    session[PENDING] = {"key": key, "client_id": authz.client_id}


def step_up(authz: AuthorizationRequest, exc: ObligationPending) -> Response:
    """Park ``authz`` and send the person where they can reach the level asked for.

    People who signed in at an upstream go back to it asking for the level; others use
    TOTP, which reaches AAL2; an AAL3 obligation for them needs a hardware authenticator
    from an upstream, so it is shown as it is.
    """
    if isinstance(exc, BreakGlassNeeded):
        park(authz)
        session[BREAK_GLASS] = {"service": exc.service_id, "name": exc.service_name}
        return redirect(url_for("break_glass.request_access"))
    if not isinstance(exc, StepUpRequired):
        raise exc
    sso = current_session()
    source = services().registry.source(sso.identity.authn.source) if sso else None
    if isinstance(source, CallbackSource):
        # People from an upstream step up there (OIDC acr_values, SAML RequestedAuthnContext).
        park(authz)
        return redirect(url_for("upstream.step_up", source_id=source.id, min_assurance=int(exc.minimum)))
    if exc.minimum > AssuranceLevel.AAL2:
        raise exc
    park(authz)
    session[STEP_UP] = {"reason": exc.message}
    return redirect(url_for("mfa.verify"))
