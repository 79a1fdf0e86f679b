"""The broker's SAML IdP over HTTP: metadata, SSO (HTTP-Redirect and HTTP-POST), IdP-initiated
sign-in and single logout — a thin layer over ``broker.saml`` (no protocol rule lives here).

A SAML message POSTed from an SP's site arrives without our SameSite=Lax cookies, so it is
re-posted once from our own origin (the same "cookie bounce" as upstream callbacks) before
the person's session is looked up.
"""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from flask import Blueprint, Response, g, make_response, redirect, render_template, request, session, url_for

from broker.access import ObligationPending, StepUpRequired
from broker.errors import BrokerError, BrokerErrorCode
from broker.saml.authn_request import RequestRefused
from broker.saml.bindings import MAX_RELAY_STATE_BYTES, BindingError, InboundMessage, decode_post, decode_redirect
from broker.audit import AuditEvent
from broker.saml.idp import LoginNeeded, ObligationDue, PendingSaml, PostTo, SamlIdp
from broker.saml.logout import Chain, LogoutRequestIn, Outbound, RedirectTo, SamlLogout
from broker.sessions import SsoSession
from broker.web.context import clear_sso_cookie, current_session, services
from broker.web.security import client_ip
from broker.web.step_up import park, step_up
from federation.sources import CallbackSource

bp = Blueprint("saml_idp", __name__)
BOUNCED = "_bounced"
MAX_FIELDS = 8
REFUSED_TITLE = "There is a problem with the service you came from"


def idp() -> SamlIdp:
    """Return the IdP. Raises BrokerError(NOT_INITIALISED) if the services were built without it."""
    found = services().saml_idp
    if found is None:
        raise BrokerError(BrokerErrorCode.NOT_INITIALISED, "SAML is not available", status=503)
    return found


@bp.route("/saml/metadata")
def metadata() -> Response:
    """The IdP's signed metadata (SAML Metadata §2.4.3, served per the Metadata Profile §4.1)."""
    response = make_response(idp().metadata())
    response.headers["Content-Type"] = "application/samlmetadata+xml"
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


def _refused(reason: str) -> BrokerError:
    return BrokerError(BrokerErrorCode.BAD_REQUEST,
                       f"The service that sent you here made a request the London Supercloud cannot accept: {reason}.")


def _inbound() -> InboundMessage | Response:
    """Decode the message of this request, or return the bounce page for a cross-site POST."""
    if request.method == "POST":
        if len(request.form) > MAX_FIELDS:
            raise BindingError("the form carries too many fields")
        if BOUNCED not in request.form:
            fields = {k: v for k, v in request.form.items() if k in {"SAMLRequest", "SAMLResponse", "RelayState"}}
            return make_response(render_template("saml_bounce.html", title="Continue to the London Supercloud",
                                                 action=request.path, fields=fields))
        return decode_post({k: v for k, v in request.form.items() if k in {"SAMLRequest", "SAMLResponse", "RelayState"}})
    return decode_redirect(request.query_string)


def _inbound_or_refuse(event: str) -> InboundMessage | Response:
    """``_inbound``, with a message its binding cannot read audited as ``event`` and refused.

    Raises BrokerError(BAD_REQUEST) (an error page) for that message.
    """
    try:
        return _inbound()
    except BindingError as exc:
        services().audit.append(AuditEvent(event, "failure", ip=client_ip(), details={"reason": exc.reason}))
        raise _refused(exc.reason) from None


@bp.route("/saml/sso", methods=["GET", "POST"])
def sso() -> Response:
    """SingleSignOnService (SAML Profiles §4.1.4.1) for the Redirect and POST bindings."""
    message = _inbound_or_refuse("saml_authn_request")
    if isinstance(message, Response):
        return message
    if message.kind != "SAMLRequest":
        services().audit.append(AuditEvent("saml_authn_request", "failure", ip=client_ip(),
                                           details={"reason": "a SAMLResponse was sent to the SSO endpoint"}))
        raise _refused("a response was sent where a request belongs")
    try:
        pending = idp().receive(message, ip=client_ip())
    except RequestRefused as exc:
        raise _refused(exc.reason) from None
    return _answer(pending, current_session())


@bp.route("/saml/idp-initiated")
def idp_initiated() -> Response:
    """Sign in to an SP from the broker (unsolicited response, SAML Profiles §4.1.5), only for
    SPs that allow it. An absolute-URL RelayState must point at the SP's own site."""
    sp_id = request.args.get("sp", "")
    relay = request.args.get("RelayState")
    if relay is not None and len(relay.encode()) > MAX_RELAY_STATE_BYTES:
        raise _refused(f"RelayState is longer than {MAX_RELAY_STATE_BYTES} bytes")
    try:
        pending = idp().idp_initiated(sp_id, relay, ip=client_ip())
    except RequestRefused as exc:
        raise _refused(exc.reason) from None
    if relay is not None and not _same_site(relay, pending.acs_url):
        services().audit.append(AuditEvent("saml_idp_initiated", "failure", client_id=sp_id[:128], ip=client_ip(),
                                           details={"reason": "RelayState points outside the service's site"}))
        raise _refused("RelayState points outside the service's own site")
    return _answer(pending, current_session())


def _same_site(relay: str, acs_url: str) -> bool:
    """True unless ``relay`` is an absolute or scheme-relative URL on another origin than the ACS."""
    parts = urlsplit(relay.strip())
    if not parts.scheme and not parts.netloc and not relay.strip().startswith(("//", "\\")):
        return True
    acs = urlsplit(acs_url)
    return (parts.scheme, parts.netloc) == (acs.scheme, acs.netloc)


def _answer(pending: PendingSaml, sso: SsoSession | None) -> Response:
    try:
        outcome = idp().answer(pending, sso, ip=client_ip())
    except RequestRefused as exc:
        raise _refused(exc.reason) from None
    if isinstance(outcome, PostTo):
        return post_to(outcome)
    if isinstance(outcome, LoginNeeded):
        park(pending)  # type: ignore[arg-type] - PendingSaml has to_json and client_id like a parked OIDC request
        source = services().registry.source(sso.identity.authn.source) if sso is not None else None
        if isinstance(source, CallbackSource):
            # ForceAuthn for someone who signed in at an upstream: back to it with ForceAuthn /
            # prompt=login, at the level they had (an upstream's silent SSO would not be fresh).
            return redirect(url_for("upstream.step_up", source_id=source.id, min_assurance=int(sso.identity.authn.assurance)))
        return redirect(url_for("login.start"))
    if isinstance(outcome, ObligationDue):
        return _obligation(pending, outcome.error)
    raise TypeError(outcome)


def _obligation(pending: PendingSaml, error: ObligationPending) -> Response:
    try:
        return step_up(pending, error)  # type: ignore[arg-type] - see park above
    except StepUpRequired:
        # A level the person cannot reach here (AAL3 without a capable upstream): the SP is told.
        session.pop("pending_authorization", None)
        try:
            return post_to(idp().no_authn_context(pending, ip=client_ip()))
        except RequestRefused as exc:
            raise _refused(exc.reason) from None


def resume_parked(value: dict, sso: SsoSession) -> Response:
    """Continue a parked SAML request after sign-in, step-up or break-glass (called by ``/authorize/resume``)."""
    return _answer(PendingSaml.from_json(value), sso)


def post_to(outcome: PostTo) -> Response:
    """Send ``outcome`` by the HTTP-POST binding: an auto-submitting form to an address from metadata."""
    return make_response(render_template("form_post.html", action=outcome.url, params=outcome.fields))


# --- single logout -------------------------------------------------------------------------------

SLO_NAMESPACE = "saml-slo"
SLO_KEY = "saml_slo"
SLO_TTL_SECONDS = 600


def _logout() -> SamlLogout:
    return SamlLogout(idp(), services().state, services().audit.append)


@bp.route("/saml/slo", methods=["GET", "POST"])
def slo() -> Response:
    """SingleLogoutService (SAML Profiles §4.4.3-4.4.4): an SP's LogoutRequest starts the chain;
    an SP's LogoutResponse moves it on."""
    message = _inbound_or_refuse("saml_logout_message")
    if isinstance(message, Response):
        return message
    logout = _logout()
    try:
        received = logout.receive(message, ip=client_ip())
    except RequestRefused as exc:
        raise _refused(exc.reason) from None
    if isinstance(received, LogoutRequestIn):
        return _sp_initiated(logout, received)
    key = session.get(SLO_KEY)
    taken = services().state.take(SLO_NAMESPACE, key) if key else None
    if taken is None or taken.value is None:
        raise BrokerError(BrokerErrorCode.SESSION_EXPIRED, "Your sign-out took too long or was interrupted. You may still be "
                          "signed in to some services: sign out of them directly.")
    chain = Chain.from_json(taken.value)
    if not logout.answered(chain, received):
        services().audit.append(AuditEvent("saml_logout_message", "failure", client_id=received.sp.entity_id[:128],
                                           ip=client_ip(), details={"reason": "LogoutResponse for another request"}))
        raise _refused("the sign-out answer does not match the request sent")
    return _continue(logout, chain)


def _sp_initiated(logout: SamlLogout, received: LogoutRequestIn) -> Response:
    sso = current_session()
    sids = [p.sid for p in logout.sessions_for(received)]
    if sso is not None and sso.sid in sids:
        sid = sso.sid
    elif sids:
        sid = sids[0]
    else:
        services().audit.append(AuditEvent("saml_logout_message", "failure", client_id=received.sp.entity_id[:128],
                                           ip=client_ip(), details={"reason": "no session for this NameID"}))
        answer = logout.refuse(received, "no session is known for this NameID")
        if answer is None:
            raise _refused("no session is known for this person")
        return _send(answer)
    for other in sorted(set(sids) - {sid}):
        # No SessionIndex names one session (SAML Core §3.7.3.2): the person's other sessions with
        # this SP end too; their OIDC applications get back-channel logout (no browser to chain through).
        services().oidc.logout.end_session(other, reason="saml_sp_initiated", actor=None, ip=client_ip())
        idp().participants.forget_session(other)
    chain = _end_session(logout, sid, initiator=received, reason="saml_sp_initiated")
    response = _continue(logout, chain)
    return clear_sso_cookie(response) if sso is not None and sso.sid == sid else response


def _end_session(logout: SamlLogout, sid: str, *, initiator: LogoutRequestIn | None, reason: str) -> Chain:
    """End SSO session ``sid`` (OIDC applications get back-channel logout) and return the SAML chain."""
    oidc = services().oidc
    names = [c.name for c in oidc.logout.clients_in(sid)]
    live = services().sso.by_sid(sid)
    result = oidc.logout.end_session(sid, reason=reason, actor=live.subject_id if live else None, ip=client_ip())
    session.clear()
    return logout.start(sid, names, result.frontchannel_urls, initiator)


def start_idp_logout(sso: SsoSession, *, return_to: str | None = None, reason: str = "user_signout") -> Response:
    """Sign the person out of the broker and of every service in their session (IdP-initiated SLO);
    ``return_to`` is where the last page continues (an OIDC application's verified post-logout URI)."""
    logout = _logout()
    chain = _end_session(logout, sso.sid, initiator=None, reason=reason)
    chain.return_to = return_to
    return clear_sso_cookie(_continue(logout, chain))


def has_saml_services(sso: SsoSession) -> bool:
    """True if a SAML SP received an assertion in ``sso`` (its sign-out needs the chain)."""
    found = services().saml_idp
    return found is not None and bool(found.participants.in_session(sso.sid))


@bp.route("/saml/logout", methods=["GET", "POST"])
def idp_logout() -> Response:
    """IdP-initiated single logout: GET asks, POST (CSRF-protected) signs out everywhere."""
    sso = current_session()
    if request.method == "GET" or sso is None:
        if sso is None:
            return make_response(render_template("message.html", title="You are signed out", paragraphs=["You are not signed in."]))
        return make_response(render_template(
            "message.html", title="Sign out",
            paragraphs=["Sign out of the London Supercloud and every service you reached through it?"], signed_in=True))
    return start_idp_logout(sso)


def _continue(logout: SamlLogout, chain: Chain) -> Response:
    hop = logout.next_hop(chain)
    if hop is not None:
        key = secrets.token_urlsafe(24)
        services().state.add(SLO_NAMESPACE, key, chain.to_json(), SLO_TTL_SECONDS)
        session[SLO_KEY] = key
        return _send(hop)
    session.pop(SLO_KEY, None)
    final = logout.finish(chain)
    if not isinstance(final, PostTo):  # a LogoutResponse by POST cannot wait for an upstream round trip
        from broker.web.upstream_logout_views import sign_out_upstream

        upstream = sign_out_upstream(
            chain.sid, target=final.url if isinstance(final, RedirectTo) else chain.return_to,
            frontchannel=tuple(chain.frontchannel),
        )
        if upstream is not None:  # on to the upstream the session came from; it sends the browser back
            return upstream
    g.csp_frame_src = sorted({f"{urlsplit(u).scheme}://{urlsplit(u).netloc}" for u in chain.frontchannel})
    return make_response(render_template(
        "saml_logged_out.html", title="You are signed out", signed_out=chain.signed_out, failed=chain.failed,
        frontchannel=chain.frontchannel,
        post=final if isinstance(final, PostTo) else None,
        target=final.url if isinstance(final, RedirectTo) else (chain.return_to if final is None else None),
    ))


def _send(outbound: Outbound) -> Response:
    if isinstance(outbound, RedirectTo):
        return redirect(outbound.url)
    return post_to(outbound)
