"""The Social Care Case Records demo: a tiny, separate SAML 2.0 service provider (pysaml2's
``Saml2Client``) beside the Hospital Discharge Hub, so ``make demo`` shows SAML too.

It signs its AuthnRequests (HTTP-Redirect binding, RSA-SHA256), receives the broker's signed
(and encrypted) response at its AssertionConsumerService by HTTP-POST, has pysaml2 verify it
against the broker's metadata, and shows the NameID and attributes it received. Its key pair
and metadata are written on first start to the file the broker's settings name
(``saml_service_providers`` in config/demo/london.yaml); the metadata carries this run's ACS URL.
"""

from __future__ import annotations

import html
import os
import secrets
import urllib.request
from pathlib import Path
from typing import Any

from flask import Flask, abort, redirect, request, session
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.client import Saml2Client
from saml2.config import SPConfig
from saml2.metadata import create_metadata_string
from saml2.saml import NAMEID_FORMAT_PERSISTENT
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

from federation.upstream_saml.keys import generate_key_pair
from federation.upstream_saml.xmlsecurity import xmlsec_binary

ENTITY_ID = "urn:supercloud:demo:case-records"
PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title} – Social Care Case Records</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:arial,sans-serif;margin:2rem;max-width:48rem;color:#0b0c0c}}
a,button{{font-size:1.1rem}} table{{border-collapse:collapse}} th,td{{text-align:left;padding:.4rem;border-bottom:1px solid #b1b4b6}}</style>
</head><body><header><p><strong>Social Care Case Records</strong> (demo SAML service)</p></header>
<main id="main-content"><h1>{title}</h1>{body}</main></body></html>"""


def ensure_keys(folder: Path) -> tuple[Path, Path]:
    """Return (key file, certificate file) in ``folder``, generating an RSA-2048 pair on first use."""
    folder.mkdir(parents=True, exist_ok=True)
    key, cert = folder / "sp.key", folder / "sp.crt"
    if not key.exists() or not cert.exists():
        pair = generate_key_pair("Social Care Case Records (demo)", 2048)
        key.write_text(pair.key_pem)
        key.chmod(0o600)
        cert.write_text(pair.cert_pem)
    return key, cert


def sp_config(base_url: str, key: Path, cert: Path, idp_metadata: str | None) -> SPConfig:
    """Return pysaml2's configuration for this SP at ``base_url`` (signed requests, signed and
    encrypted assertions wanted, SHA-256 only)."""
    conf: dict[str, Any] = {
        "entityid": ENTITY_ID,
        "xmlsec_binary": xmlsec_binary(),
        "key_file": str(key),
        "cert_file": str(cert),
        "encryption_keypairs": [{"key_file": str(key), "cert_file": str(cert)}],
        "signing_algorithm": SIG_RSA_SHA256,
        "digest_algorithm": DIGEST_SHA256,
        "service": {"sp": {
            "name": "Social Care Case Records (demo)",
            "endpoints": {"assertion_consumer_service": [(f"{base_url}/acs", BINDING_HTTP_POST)]},
            "authn_requests_signed": True,
            "want_assertions_signed": True,
            "want_response_signed": True,
            "name_id_format": [NAMEID_FORMAT_PERSISTENT],
        }},
        "allow_unknown_attributes": True,
    }
    if idp_metadata is not None:
        conf["metadata"] = {"inline": [idp_metadata]}
    config = SPConfig()
    config.load(conf)
    return config


def write_metadata(path: Path, base_url: str, key: Path, cert: Path) -> None:
    """Write this SP's metadata (entity ID, ACS at ``base_url``, signing/encryption certificate)
    to ``path`` for the broker, replacing it atomically."""
    xml = create_metadata_string(None, config=sp_config(base_url, key, cert, None))
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_bytes(xml)
    partial.replace(path)


def create_case_records_app(issuer: str, base_url: str, key: Path, cert: Path) -> Flask:
    """Return the demo SP, trusting the broker whose issuer is ``issuer``; its IdP metadata is
    fetched from ``{issuer}/saml/metadata`` at the first sign-in."""
    app = Flask(__name__)
    app.secret_key = secrets.token_bytes(32)
    app.config.update(SESSION_COOKIE_NAME="case-records", SESSION_COOKIE_SAMESITE="Lax", SESSION_COOKIE_HTTPONLY=True)
    clients: list[Saml2Client] = []

    def client() -> Saml2Client:
        if not clients:
            with urllib.request.urlopen(f"{issuer}/saml/metadata", timeout=5) as answer:  # noqa: S310 - the configured broker
                clients.append(Saml2Client(sp_config(base_url, key, cert, answer.read().decode())))
        return clients[0]

    @app.route("/")
    def home() -> str:
        user = session.get("user")
        if not user:
            return PAGE.format(title="Sign in", body='<p>You are not signed in.</p><p><a href="/login">Sign in with your work account</a></p>')
        rows = "".join(f"<tr><th scope=\"row\">{html.escape(name)}</th><td>{html.escape(', '.join(values))}</td></tr>"
                       for name, values in sorted(user["attributes"].items()))
        body = (f"<p id=\"welcome\">Signed in. Your NameID here: <code>{html.escape(user['name_id'])}</code></p>"
                f"<table><caption>Attributes in the SAML assertion</caption><tbody>{rows}</tbody></table>"
                '<p><a href="/logout">Sign out of the demo</a></p>')
        return PAGE.format(title="Your case records", body=body)

    @app.route("/login")
    def login():  # type: ignore[no-untyped-def]
        sp = client()
        sso = f"{issuer}/saml/sso"
        request_id, authn_request = sp.create_authn_request(sso, binding=BINDING_HTTP_POST, sign=False)
        info = sp.apply_binding(BINDING_HTTP_REDIRECT, str(authn_request), sso, relay_state="/", sign=True,
                                sigalg=SIG_RSA_SHA256)
        session["outstanding"] = request_id
        return redirect(dict(info["headers"])["Location"])

    @app.route("/acs", methods=["POST"])
    def acs():  # type: ignore[no-untyped-def]
        outstanding = session.pop("outstanding", None)
        if not outstanding or "SAMLResponse" not in request.form:
            abort(400)
        try:  # pysaml2 checks the signature (broker's metadata key), audience, InResponseTo, times
            answer = client().parse_authn_request_response(request.form["SAMLResponse"], BINDING_HTTP_POST,
                                                           outstanding={outstanding: "/"})
        except Exception:  # noqa: BLE001 - any refusal by pysaml2 is a failed sign-in, shown as such
            return PAGE.format(title="Sign-in failed", body="<p>The sign-in response was not accepted.</p>"), 400
        session["user"] = {"name_id": answer.name_id.text, "attributes": {k: [str(v) for v in vs] for k, vs in answer.ava.items()}}
        return redirect("/")

    @app.route("/logout")
    def logout():  # type: ignore[no-untyped-def]
        session.clear()
        return redirect("/")

    return app


def main() -> None:
    """Serve the demo SP on 127.0.0.1:$CASE_RECORDS_PORT (default 8002), its metadata written to
    $CASE_RECORDS_METADATA (keys beside it)."""
    port = int(os.environ.get("CASE_RECORDS_PORT", "8002"))
    base_url = f"http://127.0.0.1:{port}"
    metadata = Path(os.environ["CASE_RECORDS_METADATA"])
    key, cert = ensure_keys(metadata.parent)
    write_metadata(metadata, base_url, key, cert)
    app = create_case_records_app(os.environ["SUPERCLOUD_ISSUER"], base_url, key, cert)
    from werkzeug.serving import run_simple

    run_simple("127.0.0.1", port, app, threaded=True)


if __name__ == "__main__":
    main()
