"""A real SimpleSAMLphp 1.19 IdP for the test suite: Barnet's SAML sign-in, on loopback.

``simplesamlphp_barnet`` (session scope) writes a SimpleSAMLphp config directory (an IdP
with ``exampleauth:UserPass`` users: a Barnet safeguarding officer in "MASH", and a
librarian), a fresh IdP signing key and a separate metadata-signing key, serves it with
``php -S`` on its own loopback address under ``setsid`` and stops the process group at the
end. The broker is registered in ``saml20-sp-remote.php`` from the broker's own SP
metadata (built by ``build_saml_source`` over the running IdP's metadata): two SPs sharing
one key pair, ``barnet-saml`` (signed assertions) and ``barnet-saml-enc`` (signed and
encrypted assertions). Both validate our signed AuthnRequests.

The login page is an HTML form; ``idp_login`` drives it with requests.
"""

from __future__ import annotations

import dataclasses
import html
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
import requests
import yaml

from tests.peers import peer_missing
from tests.peers.samba import worker_index

HOW_TO_ENABLE = "apt-get install simplesamlphp php-xml php-mbstring xmlsec1 (see .ci/apt-packages-saml.txt)"
WWW = Path("/usr/share/simplesamlphp/www")
READY_TIMEOUT_SECONDS = 15.0
ISSUER = "http://127.0.0.1:8000"  # the broker's issuer in tests/support/settings.py
MASTER_KEY_ENV = "SIMPLESAMLPHP_PEER_MASTER_KEY"
OFFICER_PASSWORD = "Barnet-Safeguarding-2026!"
LIBRARIAN_PASSWORD = "Barnet-Libraries-2026!"
MFA_CLASS = "https://refeds.org/profile/mfa"
PASSWORD_CLASS = "urn:oasis:names:tc:SAML:2.0:ac:classes:Password"
ATTR_MAIL = "urn:oid:0.9.2342.19200300.100.1.3"
ATTR_NAME = "urn:oid:2.16.840.1.113730.3.1.241"
ATTR_UID = "urn:oid:0.9.2342.19200300.100.1.1"
ATTR_TITLE = "urn:oid:2.5.4.12"
ATTR_GROUPS = "http://schemas.xmlsoap.org/claims/Group"

USERS: dict[str, dict[str, list[str]]] = {
    f"officer:{OFFICER_PASSWORD}": {
        "uid": ["b.okafor"],
        ATTR_UID: ["b.okafor"],
        ATTR_MAIL: ["bola.okafor@barnet.test"],
        ATTR_NAME: ["Bola Okafor"],
        ATTR_TITLE: ["Safeguarding Officer"],
        ATTR_GROUPS: ["MASH", "Children's Services"],
    },
    f"librarian:{LIBRARIAN_PASSWORD}": {
        "uid": ["l.ward"],
        ATTR_UID: ["l.ward"],
        ATTR_MAIL: ["lee.ward@barnet.test"],
        ATTR_NAME: ["Lee Ward"],
        ATTR_GROUPS: ["Libraries"],
    },
}


@dataclasses.dataclass
class SimpleSamlPhp:
    """A running SimpleSAMLphp IdP and what a broker configuration needs to trust it."""

    address: str
    port: int
    directory: Path
    process: subprocess.Popen[bytes]
    idp_key_pem: str
    idp_cert_pem: str
    metadata_signer_file: Path
    sp_key_file: Path
    sp_cert_file: Path

    @property
    def base_url(self) -> str:
        """``http://address:port/``."""
        return f"http://{self.address}:{self.port}/"

    @property
    def entity_id(self) -> str:
        """The IdP's entity ID (its metadata URL)."""
        return f"{self.base_url}saml2/idp/metadata.php"

    def source_config(self, source_id: str = "barnet-saml", **overrides: Any) -> dict[str, Any]:
        """Return the broker's ``type: saml`` source for this IdP (as YAML would give it)."""
        config: dict[str, Any] = {
            "type": "saml",
            "id": source_id,
            "display_name": "Barnet staff sign-in",
            "idp_metadata": {"url": self.entity_id, "signing_certificate": str(self.metadata_signer_file)},
            "idp_entity_id": self.entity_id,
            "signed": "assertion",
            "attributes": {ATTR_MAIL: "email", ATTR_NAME: "name", ATTR_TITLE: "job_title", ATTR_UID: "username"},
            "groups_attribute": ATTR_GROUPS,
            "requested_authn_context": {"AAL2": MFA_CLASS},
            "authn_context_levels": {PASSWORD_CLASS: "AAL1", MFA_CLASS: "AAL2"},
            "sp_key": {"file": str(self.sp_key_file)},
            "sp_certificate": str(self.sp_cert_file),
        }
        config.update(overrides)
        return config

    def stop(self) -> None:
        """Stop the php process group this helper started. Returns None."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def available() -> bool:
    """Return True when php, SimpleSAMLphp, php-xml, php-mbstring and xmlsec1 are installed."""
    from shutil import which

    if not (which("php") and which("xmlsec1") and WWW.exists()):
        return False
    modules = subprocess.run(["php", "-m"], capture_output=True, text=True, check=False).stdout.lower().split()
    return {"dom", "mbstring"} <= set(modules)


def php(value: Any) -> str:
    """Return ``value`` (str, bool, int, None, list, dict) as a PHP literal."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, list):
        return "[" + ", ".join(php(v) for v in value) + "]"
    if isinstance(value, dict):
        return "[" + ", ".join(f"{php(k)} => {php(v)}" for k, v in value.items()) + "]"
    raise TypeError(type(value))


def _key_pair(directory: Path, name: str) -> tuple[str, str]:
    from federation.upstream_saml.keys import generate_key_pair

    pair = generate_key_pair(name, bits=2048)  # test keys: quicker to make
    (directory / f"{name}.key").write_text(pair.key_pem)
    (directory / f"{name}.crt").write_text(pair.cert_pem)
    os.chmod(directory / f"{name}.key", 0o600)
    return pair.key_pem, pair.cert_pem


def free_port(address: str) -> int:
    """Return a TCP port free on ``address`` now."""
    with socket.socket() as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])


def loopback_address(worker_id: str, last_octet: int, what: str) -> str:
    """Return a loopback address 127.<n>.<worker>.<last_octet> this process can bind now."""
    worker = worker_index(worker_id)
    for second in range(0, 200):
        address = f"127.{second}.{worker}.{last_octet}"
        try:
            with socket.socket() as probe:
                probe.bind((address, 0))
            return address
        except OSError:
            continue
    raise RuntimeError(f"no loopback address for {what} (.{last_octet})")


def _address(worker_id: str) -> str:
    return loopback_address(worker_id, 5, "SimpleSAMLphp")


def write_instance_config(directory: Path, base_url: str, settings: dict[str, Any]) -> None:
    """Create an instance's folders and its config.php: Debian's defaults, the settings every
    instance here shares (its own folders, salts and sessions, plain HTTP), then ``settings``."""
    for sub in ("config", "metadata", "cert", "data", "tmp", "log", "sessions", "www"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    config = {
        "baseurlpath": base_url,
        "certdir": str(directory / "cert") + "/",
        "metadatadir": str(directory / "metadata") + "/",
        "metadata.sources": [{"type": "flatfile", "directory": str(directory / "metadata")}],
        "datadir": str(directory / "data") + "/",
        "tempdir": str(directory / "tmp"),
        "loggingdir": str(directory / "log") + "/",
        "logging.handler": "file",
        "logging.logfile": "simplesamlphp.log",
        "secretsalt": os.urandom(16).hex(),
        "auth.adminpassword": os.urandom(16).hex(),
        "timezone": "UTC",
        "session.cookie.secure": False,
        "session.phpsession.savepath": str(directory / "sessions"),
        "store.type": "phpsession",
        "showerrors": True,
        "errorreporting": False,
        **settings,
    }
    (directory / "config" / "config.php").write_text(
        "<?php\nrequire '/etc/simplesamlphp/config.php';\n"
        f"$config = array_merge($config, {php(config)});\n"
    )


def _write_config(directory: Path, base_url: str) -> None:
    write_instance_config(directory, base_url, {
        "technicalcontact_email": "saml-peer@barnet.test",
        "enable.saml20-idp": True,
        "module.enable": {"exampleauth": True, "core": True, "saml": True, "admin": True},
        "session.cookie.name": "BarnetIdPSession",
        "session.phpsession.cookiename": "BarnetIdPPHP",
        "metadata.sign.enable": True,
        "metadata.sign.privatekey": "metadata-signer.key",
        "metadata.sign.certificate": "metadata-signer.crt",
        "metadata.sign.algorithm": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    })
    (directory / "config" / "authsources.php").write_text(
        "<?php\n$config = " + php({"admin": ["core:AdminPassword"], "barnet-staff": ["exampleauth:UserPass", *[]]}) + ";\n"
        f"$config['barnet-staff'] = array_merge($config['barnet-staff'], {php(USERS)});\n"
    )
    mfa = (
        "if (($attributes['uid'][0] ?? '') === 'b.okafor') { $state['saml:AuthnContextClassRef'] = "
        f"{php(MFA_CLASS)}; }}"
    )
    hosted = {
        "host": "__DEFAULT__",
        "privatekey": "idp.key",
        "certificate": "idp.crt",
        "auth": "barnet-staff",
        "signature.algorithm": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
        "authproc": {5: {"class": "core:PHP", "code": mfa}},
    }
    (directory / "metadata" / "saml20-idp-hosted.php").write_text(
        f"<?php\n$metadata['__DYNAMIC:1__'] = {php(hosted)};\n"
    )
    (directory / "metadata" / "saml20-sp-remote.php").write_text("<?php\n")


def _wait_ready(process: subprocess.Popen[bytes], url: str, directory: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"php exited: {(directory / 'php.log').read_text(errors='replace')[-2000:]}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError(f"SimpleSAMLphp at {url} not ready within {READY_TIMEOUT_SECONDS} s")


def _sp_remote(sp_metadata: bytes, encrypt: bool) -> tuple[str, dict[str, Any]]:
    """Return (entity ID, saml20-sp-remote entry) from the broker's SP metadata."""
    from federation.upstream_saml.xmlsecurity import DS, MD, parse_document

    root = parse_document(sp_metadata)
    sp = root.find(f"{{{MD}}}SPSSODescriptor")
    if sp is None:
        raise RuntimeError("the broker's SP metadata has no SPSSODescriptor")
    acs = [
        {"Binding": s.get("Binding"), "Location": s.get("Location"), "index": int(s.get("index", "0"))}
        for s in sp.findall(f"{{{MD}}}AssertionConsumerService")
    ]
    slo = [{"Binding": s.get("Binding"), "Location": s.get("Location")} for s in sp.findall(f"{{{MD}}}SingleLogoutService")]
    keys = []
    for descriptor in sp.findall(f"{{{MD}}}KeyDescriptor"):
        cert = "".join((descriptor.findtext(f".//{{{DS}}}X509Certificate") or "").split())
        use = descriptor.get("use")
        keys.append({"type": "X509Certificate", "signing": use in (None, "signing"),
                     "encryption": use in (None, "encryption"), "X509Certificate": cert})
    entry = {
        "AssertionConsumerService": acs,
        "keys": keys,
        "validate.authnrequest": True,
        "saml20.sign.assertion": True,
        "saml20.sign.response": False,
        "assertion.encryption": encrypt,
        # Single logout with the broker (Redirect binding), signed both ways.
        **({"SingleLogoutService": slo} if slo else {}),
        "sign.logout": True,
        "validate.logout": True,
        "signature.algorithm": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
        "NameIDFormat": "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
        "attributes.NameFormat": "urn:oasis:names:tc:SAML:2.0:attrname-format:uri",
        "authproc": {10: {"class": "saml:AttributeNameID", "attribute": "uid",
                          "Format": "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"},
                     20: {"class": "core:AttributeLimit",
                          **{str(i): a for i, a in enumerate(a for a in USERS[f"officer:{OFFICER_PASSWORD}"] if a != "uid")}}},
    }
    return str(root.get("entityID")), entry


def _broker_sp_metadata(server: SimpleSamlPhp, source_id: str, run_dir: Path) -> bytes:
    """Build the broker's SP metadata for ``source_id`` exactly as the broker would serve it."""
    from config import load_settings
    from federation.keys import MasterKey
    from federation.upstream_saml import build_saml_source

    os.environ.setdefault(MASTER_KEY_ENV, MasterKey.generate_text())
    document = {
        "broker": {"issuer": ISSUER, "environment": "development", "master_key": {"env": MASTER_KEY_ENV},
                   "database_url": f"sqlite:///{run_dir}/unused.db"},
        "organisations": [{"id": "barnet", "name": "London Borough of Barnet", "kind": "borough",
                           "domains": ["barnet.test"], "sources": [server.source_config(source_id)]}],
    }
    path = run_dir / f"{source_id}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    settings = load_settings(path)
    source = build_saml_source(settings.organisations[0].sources[0], "barnet", settings)
    return source.sp_metadata()


def start_simplesamlphp(address: str, run_dir: Path) -> SimpleSamlPhp:
    """Write the config, start php -S on ``address``, register the broker's SPs; return the server.

    Raises RuntimeError if it does not answer.
    """
    port = free_port(address)
    base_url = f"http://{address}:{port}/"
    _write_config(run_dir, base_url)
    cert_dir = run_dir / "cert"
    idp_key, idp_cert = _key_pair(cert_dir, "idp")
    _key_pair(cert_dir, "metadata-signer")
    _key_pair(cert_dir, "broker-sp")
    env = {**os.environ, "SIMPLESAMLPHP_CONFIG_DIR": str(run_dir / "config")}
    with open(run_dir / "php.log", "wb") as log:
        process = subprocess.Popen(
            ["php", "-S", f"{address}:{port}", "-t", str(WWW)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True,
        )
    server = SimpleSamlPhp(
        address=address, port=port, directory=run_dir, process=process, idp_key_pem=idp_key, idp_cert_pem=idp_cert,
        metadata_signer_file=cert_dir / "metadata-signer.crt", sp_key_file=cert_dir / "broker-sp.key",
        sp_cert_file=cert_dir / "broker-sp.crt",
    )
    try:
        _wait_ready(process, server.entity_id, run_dir)
        entries = dict(
            _sp_remote(_broker_sp_metadata(server, source_id, run_dir), encrypt)
            for source_id, encrypt in (("barnet-saml", False), ("barnet-saml-enc", True))
        )
        (run_dir / "metadata" / "saml20-sp-remote.php").write_text(
            "<?php\n" + "".join(f"$metadata[{php(k)}] = {php(v)};\n" for k, v in entries.items())
        )
    except Exception:
        server.stop()
        raise
    return server


_FORM = re.compile(r"<form[^>]*action=\"([^\"]*)\"[^>]*>(.*?)</form>", re.S | re.I)
_INPUT = re.compile(r"<input([^>]*)>", re.I)
_ATTR = re.compile(r'(\w+)="([^"]*)"')


def form_fields(page: str) -> tuple[str, dict[str, str]]:
    """Return (action, hidden and text fields) of the first form on ``page``."""
    match = _FORM.search(page)
    if not match:
        raise LookupError(f"no form on the page: {page[:300]}")
    fields = {}
    for attrs in _INPUT.findall(match.group(2)):
        parsed = {k.lower(): html.unescape(v) for k, v in _ATTR.findall(attrs)}
        if "name" in parsed:
            fields[parsed["name"]] = parsed.get("value", "")
    return html.unescape(match.group(1)), fields


def idp_login(session: requests.Session, sso_url: str, username: str, password: str) -> dict[str, str]:
    """Follow the broker's redirect to the IdP, log in with the HTML form, and return the
    fields of the auto-submitting POST back to the broker (``SAMLResponse``, maybe ``RelayState``)
    together with ``action``. Raises AssertionError with the page if login fails."""
    page = session.get(sso_url, timeout=10)
    action, fields = form_fields(page.text)
    fields.update({"username": username, "password": password})
    answer = session.post(urljoin(page.url, action), data=fields, timeout=10)
    if "SAMLResponse" not in answer.text:
        raise AssertionError(f"SimpleSAMLphp did not answer with a SAMLResponse ({answer.status_code}): {answer.text[:800]}")
    post_action, post_fields = form_fields(answer.text)
    return {"action": post_action, **post_fields}


@pytest.fixture(scope="session")
def simplesamlphp_barnet(worker_id: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleSamlPhp]:
    """Barnet's SAML IdP (SimpleSAMLphp) on 127.<n>.<worker>.5 for the whole session."""
    if not available():
        peer_missing("SimpleSAMLphp", HOW_TO_ENABLE)
    server = start_simplesamlphp(_address(worker_id), tmp_path_factory.mktemp("simplesamlphp-barnet"))
    try:
        yield server
    finally:
        server.stop()


# -- forging responses for attack tests ------------------------------------------------------

SAML_NS = "urn:oasis:names:tc:SAML:2.0:assertion"
SAMLP_NS = "urn:oasis:names:tc:SAML:2.0:protocol"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
ASSERTION_NODE = "urn:oasis:names:tc:SAML:2.0:assertion:Assertion"


def decode_response(fields: dict[str, str]) -> bytes:
    """Return the XML of the ``SAMLResponse`` in ``fields``."""
    import base64

    return base64.b64decode(fields["SAMLResponse"])


def with_response(fields: dict[str, str], xml: bytes) -> dict[str, str]:
    """Return ``fields`` carrying ``xml`` as the ``SAMLResponse``."""
    import base64

    return {**fields, "SAMLResponse": base64.b64encode(xml).decode()}


def resign_assertion(xml: bytes, key_pem: str, cert_pem: str) -> bytes:
    """Return ``xml`` with its (modified) assertion's signature replaced by one made with
    ``key_pem`` (the IdP's own key to test rules behind the signature, or another key)."""
    from lxml import etree

    from federation.upstream_saml.keys import KeyPair
    from federation.upstream_saml.xmlsecurity import XmlSecurity, signature_template

    root = etree.fromstring(xml)
    assertion = root.find(f"{{{SAML_NS}}}Assertion")
    for old in assertion.findall(f"{{{DS_NS}}}Signature"):
        assertion.remove(old)
    ident = assertion.get("ID")
    assertion.find(f"{{{SAML_NS}}}Issuer").addnext(etree.fromstring(signature_template(ident, KeyPair(key_pem, cert_pem).cert_b64)))
    return XmlSecurity().sign_enveloped(etree.tostring(root), ASSERTION_NODE, ident, key_pem, cert_pem)
