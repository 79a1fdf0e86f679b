"""A SAML service provider built on OneLogin's python3-saml, served over real HTTP on loopback.

An independent SAML implementation for the broker's IdP interop tests: python3-saml parses,
verifies (xmlsec) and decrypts what the broker sends; nothing here re-implements SAML.
``start_python3_saml_sp`` serves a small Flask app in a thread (werkzeug, threaded) on its
own loopback address (127.<n>.<worker>.7; the SimpleSAMLphp SP uses .6) hosting one SP
entity per id, each with its own RSA-2048 key pair, under ``/<sp_id>/``:

- ``metadata``  the SP's metadata (AuthnRequestsSigned, WantAssertionsSigned, a signing and an
  encryption key, ACS by HTTP-POST, SingleLogoutService by HTTP-Redirect — python3-saml
  processes logout messages only by Redirect);
- ``login?binding=redirect|post``  sends a signed AuthnRequest by HTTP-Redirect (python3-saml's
  ``Auth.login``) or HTTP-POST (its ``OneLogin_Saml2_Authn_Request``, enveloped-signed with
  ``OneLogin_Saml2_Utils.add_sign``, in an auto-submitting form);
- ``acs``  ``Auth.process_response`` in strict mode with the expected InResponseTo;
- ``sls``  ``Auth.process_slo``: a LogoutResponse to our request, or an IdP's LogoutRequest
  (accepted only when its NameID is the session's, then answered with a signed LogoutResponse);
- ``logout?binding=redirect|post``  SP-initiated single logout;
- ``whoami``  JSON: ``authenticated``, ``attributes``, ``name_id`` (value, format, qualifiers),
  ``session_index``, ``authn_contexts``, ``raw_response`` (the SAMLResponse XML exactly as it
  was posted, before decryption), ``errors`` of the last message and ``events`` (every
  message received, with its outcome).

Security settings: strict, wantAssertionsSigned, wantMessagesSigned, wantAssertionsEncrypted,
authnRequestsSigned, logoutRequestSigned, logoutResponseSigned, RSA-SHA256 / SHA-256,
rejectDeprecatedAlgorithm. The IdP is trusted later with ``trust_idp(metadata_xml)`` (the broker
needs this SP's metadata before it starts).
"""

from __future__ import annotations

import base64
import dataclasses
import html
import secrets
import socket
import threading
from typing import Any

from tests.peers.simplesamlphp import loopback_address

RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
HTTP_REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
HTTP_POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
HOW_TO_ENABLE = "pip install -c constraints.txt python3-saml xmlsec (the project's test extra)"


def available() -> str | None:
    """Return None when python3-saml and xmlsec import (with matching libxml2), else the reason."""
    try:
        import xmlsec  # noqa: F401
        from onelogin.saml2.auth import OneLogin_Saml2_Auth  # noqa: F401
    except Exception as error:  # ImportError, or xmlsec's libxml2 version mismatch with lxml
        return f"{type(error).__name__}: {error}"
    return None


@dataclasses.dataclass
class _SpState:
    """One SP entity's key pair, its sessions (cookie -> data) and what it has received."""

    sp_id: str
    key_pem: str
    cert_pem: str
    sessions: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    events: list[dict[str, Any]] = dataclasses.field(default_factory=list)


class Python3SamlSp:
    """The running python3-saml SP app: base URL, per-SP URLs, ``trust_idp`` and ``stop``."""

    def __init__(self, address: str, sp_ids: tuple[str, ...]) -> None:
        from federation.upstream_saml.keys import generate_key_pair

        self.address = address
        self.sp_ids = sp_ids
        self._states: dict[str, _SpState] = {}
        for sp_id in sp_ids:
            pair = generate_key_pair(sp_id, bits=2048)
            self._states[sp_id] = _SpState(sp_id, pair.key_pem, pair.cert_pem)
        self._idp: dict[str, Any] | None = None
        self._idp_metadata_xml: bytes | None = None
        self._lock = threading.Lock()
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # -- URLs ---------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://address:port/``."""
        return f"http://{self.address}:{self.port}/"

    def entity_id(self, sp_id: str) -> str:
        """Return SP ``sp_id``'s entity ID (its metadata URL)."""
        return f"{self.base_url}{sp_id}/metadata"

    def private_key_pem(self, sp_id: str) -> str:
        """Return ``sp_id``'s private key (PEM): a test decrypts what the SP received with it."""
        return self._states[sp_id].key_pem

    def login_url(self, sp_id: str, binding: str = "redirect") -> str:
        """Return the URL that starts a sign-in at ``sp_id`` with an AuthnRequest by ``binding``."""
        return f"{self.base_url}{sp_id}/login?binding={binding}"

    def whoami_url(self, sp_id: str) -> str:
        """Return the JSON page of what ``sp_id`` received."""
        return f"{self.base_url}{sp_id}/whoami"

    def logout_url(self, sp_id: str, binding: str = "redirect") -> str:
        """Return the URL that starts SP-initiated single logout at ``sp_id``."""
        return f"{self.base_url}{sp_id}/logout?binding={binding}"

    # -- configuration --------------------------------------------------------------------------

    def settings(self, sp_id: str) -> dict[str, Any]:
        """Return python3-saml settings for ``sp_id`` (IdP part only once ``trust_idp`` ran)."""
        state = self._states[sp_id]
        base = f"{self.base_url}{sp_id}"
        settings: dict[str, Any] = {
            "strict": True,
            "debug": False,
            "sp": {
                "entityId": self.entity_id(sp_id),
                "assertionConsumerService": {"url": f"{base}/acs", "binding": HTTP_POST},
                "singleLogoutService": {"url": f"{base}/sls", "binding": HTTP_REDIRECT},
                "NameIDFormat": PERSISTENT,
                "x509cert": state.cert_pem,
                "privateKey": state.key_pem,
            },
            "security": {
                "authnRequestsSigned": True,
                "logoutRequestSigned": True,
                "logoutResponseSigned": True,
                "wantMessagesSigned": True,
                "wantAssertionsSigned": True,
                "wantAssertionsEncrypted": True,
                "wantNameId": True,
                "wantNameIdEncrypted": False,
                "wantAttributeStatement": False,
                "requestedAuthnContext": False,
                "signMetadata": False,
                "signatureAlgorithm": RSA_SHA256,
                "digestAlgorithm": SHA256,
                "rejectDeprecatedAlgorithm": True,
                "allowRepeatAttributeName": False,
            },
        }
        if self._idp is not None:
            settings["idp"] = self._idp
        return settings

    def metadata(self, sp_id: str) -> bytes:
        """Return ``sp_id``'s metadata XML. Raises RuntimeError if python3-saml finds it invalid."""
        from onelogin.saml2.settings import OneLogin_Saml2_Settings

        saml_settings = OneLogin_Saml2_Settings(self.settings(sp_id), sp_validation_only=True)
        xml = saml_settings.get_sp_metadata()
        errors = saml_settings.validate_metadata(xml)
        if errors:
            raise RuntimeError(f"python3-saml SP metadata invalid: {errors}")
        return xml if isinstance(xml, bytes) else xml.encode()

    def trust_idp(self, idp_metadata: bytes) -> None:
        """Trust the IdP described by ``idp_metadata`` (SSO/SLO by HTTP-Redirect; every signing
        certificate, so a key rollover in the metadata is honoured). Returns None.

        Raises RuntimeError if the metadata names no Redirect SSO endpoint or signing key.
        """
        from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser

        parsed = OneLogin_Saml2_IdPMetadataParser.parse(idp_metadata.decode())
        idp = parsed.get("idp")
        if not idp or not idp.get("singleSignOnService", {}).get("url"):
            raise RuntimeError("the IdP metadata has no HTTP-Redirect SingleSignOnService")
        if not (idp.get("x509cert") or idp.get("x509certMulti", {}).get("signing")):
            raise RuntimeError("the IdP metadata names no signing certificate")
        self._idp = idp
        self._idp_metadata_xml = idp_metadata

    def sso_post_url(self) -> str:
        """Return the IdP's HTTP-POST SSO endpoint (from its metadata). Raises RuntimeError if none."""
        return self._idp_endpoint("SingleSignOnService", HTTP_POST)

    def _idp_endpoint(self, kind: str, binding: str) -> str:
        raw = self._idp_metadata_xml
        if raw is None:
            raise RuntimeError("trust_idp has not run")
        from lxml import etree

        root = etree.fromstring(raw, etree.XMLParser(resolve_entities=False, no_network=True))
        md = "urn:oasis:names:tc:SAML:2.0:metadata"
        for endpoint in root.iter(f"{{{md}}}{kind}"):
            if endpoint.get("Binding") == binding:
                return str(endpoint.get("Location"))
        raise RuntimeError(f"the IdP metadata has no {kind} with binding {binding}")

    # -- serving --------------------------------------------------------------------------------

    def start(self) -> None:
        """Serve the app on a free port of ``address`` in a daemon thread. Returns None."""
        from werkzeug.serving import make_server

        with socket.socket() as probe:
            probe.bind((self.address, 0))
            self.port = int(probe.getsockname()[1])
        self._server = make_server(self.address, self.port, self._app(), threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="python3-saml-sp")
        self._thread.start()

    def stop(self) -> None:
        """Stop serving (waits for the thread). Returns None."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _app(self) -> Any:  # noqa: C901 - one small route per SP endpoint
        from flask import Flask, Response, abort, jsonify, redirect, request
        from onelogin.saml2.auth import OneLogin_Saml2_Auth
        from onelogin.saml2.authn_request import OneLogin_Saml2_Authn_Request
        from onelogin.saml2.logout_request import OneLogin_Saml2_Logout_Request
        from onelogin.saml2.utils import OneLogin_Saml2_Utils

        app = Flask("python3_saml_sp")
        sp = self

        def state_for(sp_id: str) -> _SpState:
            if sp_id not in sp._states:
                abort(404)
            return sp._states[sp_id]

        def request_data() -> dict[str, Any]:
            return {
                "https": "off",
                "http_host": request.host,
                "script_name": request.path,
                "get_data": request.args.copy(),
                "post_data": request.form.copy(),
                "query_string": request.query_string.decode(),
            }

        def session_of(state: _SpState) -> tuple[str, dict[str, Any]]:
            cookie = request.cookies.get(f"pysp-{state.sp_id}")
            with sp._lock:
                if cookie and cookie in state.sessions:
                    return cookie, state.sessions[cookie]
                cookie = secrets.token_urlsafe(24)
                state.sessions[cookie] = {}
                return cookie, state.sessions[cookie]

        def with_cookie(response: Any, state: _SpState, cookie: str) -> Any:
            response.set_cookie(f"pysp-{state.sp_id}", cookie, httponly=True, samesite="Lax", path=f"/{state.sp_id}/")
            return response

        def post_form(url: str, fields: dict[str, str]) -> Response:
            inputs = "".join(
                f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">' for k, v in fields.items()
            )
            return Response(
                f'<!doctype html><html lang="en"><head><title>Continue</title></head><body>'
                f'<form method="post" action="{html.escape(url)}">{inputs}'
                f'<button type="submit">Continue</button></form>'
                f'<script>document.forms[0].submit();</script></body></html>',
                content_type="text/html; charset=utf-8",
            )

        @app.get("/<sp_id>/metadata")
        def metadata(sp_id: str) -> Response:
            state_for(sp_id)
            return Response(sp.metadata(sp_id), content_type="application/samlmetadata+xml")

        @app.get("/<sp_id>/login")
        def login(sp_id: str) -> Any:
            state = state_for(sp_id)
            cookie, session = session_of(state)
            binding = request.args.get("binding", "redirect")
            relay_state = f"{sp.base_url}{sp_id}/whoami"
            if binding == "post":
                from onelogin.saml2.settings import OneLogin_Saml2_Settings

                saml_settings = OneLogin_Saml2_Settings(sp.settings(sp_id))
                authn = OneLogin_Saml2_Authn_Request(saml_settings)
                destination = sp.sso_post_url()
                xml = authn.get_xml().replace(
                    f'Destination="{saml_settings.get_idp_sso_url()}"', f'Destination="{destination}"'
                )
                signed = OneLogin_Saml2_Utils.add_sign(
                    xml, state.key_pem, state.cert_pem, sign_algorithm=RSA_SHA256, digest_algorithm=SHA256
                )
                session["request_id"] = authn.get_id()
                fields = {"SAMLRequest": base64.b64encode(signed).decode(), "RelayState": relay_state}
                return with_cookie(post_form(destination, fields), state, cookie)
            if binding != "redirect":
                abort(400)
            auth = OneLogin_Saml2_Auth(request_data(), sp.settings(sp_id))
            url = auth.login(return_to=relay_state)
            session["request_id"] = auth.get_last_request_id()
            return with_cookie(redirect(url), state, cookie)

        @app.post("/<sp_id>/acs")
        def acs(sp_id: str) -> Any:
            state = state_for(sp_id)
            cookie, session = session_of(state)
            raw = request.form.get("SAMLResponse", "")
            auth = OneLogin_Saml2_Auth(request_data(), sp.settings(sp_id))
            auth.process_response(request_id=session.pop("request_id", None))
            errors = auth.get_errors()
            event: dict[str, Any] = {"endpoint": "acs", "errors": errors, "reason": auth.get_last_error_reason()}
            try:
                event["raw_response"] = base64.b64decode(raw).decode("utf-8", "replace")
            except ValueError:
                event["raw_response"] = None
            if not errors and auth.is_authenticated():
                session.clear()
                session.update({
                    "authenticated": True,
                    "attributes": auth.get_attributes(),
                    "friendly_attributes": auth.get_friendlyname_attributes(),
                    "name_id": {
                        "value": auth.get_nameid(),
                        "format": auth.get_nameid_format(),
                        "name_qualifier": auth.get_nameid_nq(),
                        "sp_name_qualifier": auth.get_nameid_spnq(),
                    },
                    "session_index": auth.get_session_index(),
                    "authn_contexts": auth.get_last_authn_contexts(),
                    "raw_response": event["raw_response"],
                    "response_xml": _text(auth.get_last_response_xml()),
                })
            with sp._lock:
                state.events.append(event)
            if errors:
                return with_cookie(Response(f"SAML response refused: {errors} {auth.get_last_error_reason()}",
                                            status=403, content_type="text/plain"), state, cookie)
            return with_cookie(redirect(f"{sp.base_url}{sp_id}/whoami"), state, cookie)

        @app.get("/<sp_id>/whoami")
        def whoami(sp_id: str) -> Any:
            state = state_for(sp_id)
            cookie, session = session_of(state)
            body = {"sp": sp_id, "authenticated": bool(session.get("authenticated")), **session,
                    "events": list(state.events)}
            return with_cookie(jsonify(body), state, cookie)

        @app.get("/<sp_id>/logout")
        def logout(sp_id: str) -> Any:
            state = state_for(sp_id)
            cookie, session = session_of(state)
            if not session.get("authenticated"):
                return with_cookie(jsonify({"sp": sp_id, "authenticated": False}), state, cookie)
            name_id = session["name_id"]
            binding = request.args.get("binding", "redirect")
            if binding == "post":
                from onelogin.saml2.settings import OneLogin_Saml2_Settings

                saml_settings = OneLogin_Saml2_Settings(sp.settings(sp_id))
                destination = sp._idp_endpoint("SingleLogoutService", HTTP_POST)
                logout_request = OneLogin_Saml2_Logout_Request(
                    saml_settings, name_id=name_id["value"], session_index=session.get("session_index"),
                    nq=name_id["name_qualifier"], name_id_format=name_id["format"], spnq=name_id["sp_name_qualifier"],
                )
                xml = logout_request.get_xml().replace(
                    f'Destination="{saml_settings.get_idp_slo_url()}"', f'Destination="{destination}"'
                )
                signed = OneLogin_Saml2_Utils.add_sign(
                    xml, state.key_pem, state.cert_pem, sign_algorithm=RSA_SHA256, digest_algorithm=SHA256
                )
                session["logout_request_id"] = logout_request.id
                fields = {"SAMLRequest": base64.b64encode(signed).decode(), "RelayState": f"{sp.base_url}{sp_id}/whoami"}
                return with_cookie(post_form(destination, fields), state, cookie)
            auth = OneLogin_Saml2_Auth(request_data(), sp.settings(sp_id))
            url = auth.logout(
                return_to=f"{sp.base_url}{sp_id}/whoami", name_id=name_id["value"], session_index=session.get("session_index"),
                nq=name_id["name_qualifier"], name_id_format=name_id["format"], spnq=name_id["sp_name_qualifier"],
            )
            session["logout_request_id"] = auth.get_last_request_id()
            return with_cookie(redirect(url), state, cookie)

        @app.get("/<sp_id>/sls")
        def sls(sp_id: str) -> Any:
            state = state_for(sp_id)
            cookie, session = session_of(state)
            auth = OneLogin_Saml2_Auth(request_data(), sp.settings(sp_id))
            event: dict[str, Any] = {"endpoint": "sls"}
            if "SAMLRequest" in request.args:
                from onelogin.saml2.logout_request import OneLogin_Saml2_Logout_Request as LogoutRequest

                xml = _text(OneLogin_Saml2_Utils.decode_base64_and_inflate(request.args["SAMLRequest"]))
                event.update({"message": "LogoutRequest", "raw": xml, "name_id": LogoutRequest.get_nameid(xml)})
                expected = (session.get("name_id") or {}).get("value")
                if expected is not None and event["name_id"] != expected:
                    event["errors"] = ["the LogoutRequest's NameID is not this session's"]
                    with sp._lock:
                        state.events.append(event)
                    return with_cookie(Response("wrong NameID", status=400), state, cookie)
            else:
                event["message"] = "LogoutResponse"
            url = auth.process_slo(
                request_id=session.get("logout_request_id"), delete_session_cb=session.clear,
            )
            event["errors"] = auth.get_errors()
            event["reason"] = auth.get_last_error_reason()
            with sp._lock:
                state.events.append(event)
            if event["errors"]:
                return with_cookie(Response(f"SAML logout refused: {event['errors']} {event['reason']}",
                                            status=403, content_type="text/plain"), state, cookie)
            if event["message"] == "LogoutResponse":
                session.clear()
            if url:
                return with_cookie(redirect(url), state, cookie)
            return with_cookie(redirect(f"{sp.base_url}{sp_id}/whoami"), state, cookie)

        return app


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def sp_address(worker_id: str, last_octet: int = 7) -> str:
    """Return a loopback address 127.<n>.<worker>.<last_octet> this process can bind now."""
    return loopback_address(worker_id, last_octet, "the python3-saml SP")


def start_python3_saml_sp(address: str, sp_ids: tuple[str, ...]) -> Python3SamlSp:
    """Create and start the SP app on ``address`` with one SP entity per id; return it."""
    sp = Python3SamlSp(address, sp_ids)
    sp.start()
    return sp
