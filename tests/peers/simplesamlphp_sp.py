"""A real SimpleSAMLphp 1.19 *service provider* for the broker's SAML IdP interop tests.

``start_simplesamlphp_sp`` writes one SimpleSAMLphp config directory holding two ``saml:SP``
auth sources (one per service, e.g. ``case-records`` and ``admissions``), each with its own
RSA-2048 key and certificate (used to sign AuthnRequests and logout messages and to receive
encrypted assertions), serves it with ``php -S`` under ``setsid`` on its own loopback address
(127.<n>.<worker>.6; the SimpleSAMLphp IdP peer uses .5) and is stopped as a process group.

The broker is trusted as the SPs' IdP by ``trust_idp(metadata_xml)``, which writes
``saml20-idp-remote.php`` from the broker's IdP metadata (SimpleSAMLphp re-reads it on every
request, so this can happen after the server starts: the broker needs the SPs' metadata
before it starts, and the SPs need the broker's after).

The instance's own docroot is SimpleSAMLphp's www (linked entry by entry) plus ``interop/``,
pages a test drives over HTTP:

- ``interop/login.php?sp=ID&sso_binding=redirect|post`` starts (or reuses) a sign-in and
  redirects to ``whoami.php``; ``sso_binding`` picks the binding of the AuthnRequest
  (``saml20-idp-remote.php`` lists only the broker's SSO endpoints of that binding for the request);
- ``interop/whoami.php?sp=ID`` answers JSON: ``authenticated``, ``attributes`` (as
  SimpleSAMLphp received them), ``name_id`` (value, format, qualifiers), ``session_index``,
  ``idp``, ``authn_context``;
- ``interop/logout.php?sp=ID&slo_binding=redirect|post`` starts SP-initiated single logout and
  ends on ``interop/loggedout.php``, which answers JSON with the logout status the IdP sent.

IdP-initiated logout arrives at SimpleSAMLphp's own SingleLogoutService
(``module.php/saml/sp/saml2-logout.php/ID``).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import requests

from tests.peers.simplesamlphp import WWW, free_port, loopback_address, php, write_instance_config

READY_TIMEOUT_SECONDS = 15.0
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
HTTP_REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
HTTP_POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
MD = "urn:oasis:names:tc:SAML:2.0:metadata"
DS = "http://www.w3.org/2000/09/xmldsig#"

_PAGES: dict[str, str] = {
    "_common.php": r"""<?php
require_once '/usr/share/simplesamlphp/lib/_autoload.php';
function interop_sp(): string {
    $sp = $_GET['sp'] ?? '';
    if (!preg_match('/^[a-z0-9-]+$/', $sp)) { http_response_code(400); exit('bad sp'); }
    return $sp;
}
function interop_json(array $body): void {
    header('Content-Type: application/json');
    header('Cache-Control: no-store');
    echo json_encode($body, JSON_PRETTY_PRINT | JSON_UNESCAPED_SLASHES);
}
function interop_base(): string {
    return \SimpleSAML\Utils\HTTP::getBaseURL();
}
""",
    "login.php": r"""<?php
require __DIR__ . '/_common.php';
$sp = interop_sp();
$as = new \SimpleSAML\Auth\Simple($sp);
$as->requireAuth(['ReturnTo' => interop_base() . 'interop/whoami.php?sp=' . $sp]);
\SimpleSAML\Utils\HTTP::redirectTrustedURL(interop_base() . 'interop/whoami.php?sp=' . $sp);
""",
    "whoami.php": r"""<?php
require __DIR__ . '/_common.php';
$sp = interop_sp();
$as = new \SimpleSAML\Auth\Simple($sp);
if (!$as->isAuthenticated()) { interop_json(['authenticated' => false, 'sp' => $sp]); exit; }
$nameId = $as->getAuthData('saml:sp:NameID');
interop_json([
    'authenticated' => true,
    'sp' => $sp,
    'attributes' => $as->getAttributes(),
    'name_id' => $nameId === null ? null : [
        'value' => $nameId->getValue(),
        'format' => $nameId->getFormat(),
        'name_qualifier' => $nameId->getNameQualifier(),
        'sp_name_qualifier' => $nameId->getSPNameQualifier(),
    ],
    'session_index' => $as->getAuthData('saml:sp:SessionIndex'),
    'idp' => $as->getAuthData('saml:sp:IdP'),
    'authn_context' => $as->getAuthData('saml:sp:AuthnContext'),
]);
""",
    "logout.php": r"""<?php
require __DIR__ . '/_common.php';
$sp = interop_sp();
$as = new \SimpleSAML\Auth\Simple($sp);
$as->logout([
    'ReturnTo' => interop_base() . 'interop/loggedout.php?sp=' . $sp,
    'ReturnStateParam' => 'LogoutState',
    'ReturnStateStage' => 'InteropLogout',
]);
""",
    "loggedout.php": r"""<?php
require __DIR__ . '/_common.php';
$sp = interop_sp();
$status = null;
if (isset($_REQUEST['LogoutState'])) {
    $state = \SimpleSAML\Auth\State::loadState((string) $_REQUEST['LogoutState'], 'InteropLogout');
    $status = $state['saml:sp:LogoutStatus'] ?? null;
}
$as = new \SimpleSAML\Auth\Simple($sp);
interop_json(['sp' => $sp, 'logout_status' => $status, 'authenticated' => $as->isAuthenticated()]);
""",
}

# saml20-idp-remote.php: only the broker's endpoints with the binding the current request asks
# for are listed (SimpleSAMLphp picks by its own binding priority, Redirect before POST).
_IDP_REMOTE = r"""<?php
$interopOrder = function (array $endpoints, string $param): array {
    $wanted = ($_GET[$param] ?? 'redirect') === 'post'
        ? 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST'
        : 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect';
    $only = array_values(array_filter($endpoints, fn ($e) => $e['Binding'] === $wanted));
    return $only ?: $endpoints;
};
$entry = %s;
$entry['SingleSignOnService'] = $interopOrder($entry['SingleSignOnService'], 'sso_binding');
$entry['SingleLogoutService'] = $interopOrder($entry['SingleLogoutService'], 'slo_binding');
$metadata[$entry['entityid']] = $entry;
"""


@dataclasses.dataclass
class SimpleSamlPhpSp:
    """A running SimpleSAMLphp instance with one ``saml:SP`` auth source per key of ``names``
    (SP id -> display name)."""

    address: str
    port: int
    directory: Path
    process: subprocess.Popen[bytes]
    names: dict[str, str]

    @property
    def sp_ids(self) -> tuple[str, ...]:
        """The ids of the ``saml:SP`` auth sources (one SP entity each)."""
        return tuple(self.names)

    @property
    def base_url(self) -> str:
        """``http://address:port/``."""
        return f"http://{self.address}:{self.port}/"

    def entity_id(self, sp_id: str) -> str:
        """Return the entity ID of SP ``sp_id`` (its metadata URL)."""
        return f"{self.base_url}module.php/saml/sp/metadata.php/{sp_id}"

    def metadata(self, sp_id: str) -> bytes:
        """Return SP ``sp_id``'s metadata XML as SimpleSAMLphp serves it. Raises on HTTP errors."""
        response = requests.get(self.entity_id(sp_id), timeout=10)
        response.raise_for_status()
        return response.content

    def private_key_pem(self, sp_id: str) -> str:
        """Return SP ``sp_id``'s private key (PEM): a test decrypts what the SP received with it."""
        return (self.directory / "cert" / f"{sp_id}.key").read_text()

    def login_url(self, sp_id: str, binding: str = "redirect") -> str:
        """Return the page that starts a sign-in at SP ``sp_id`` (AuthnRequest by ``binding``)."""
        return f"{self.base_url}interop/login.php?sp={sp_id}&sso_binding={binding}"

    def whoami_url(self, sp_id: str) -> str:
        """Return the JSON page of what SP ``sp_id`` received (or ``authenticated: false``)."""
        return f"{self.base_url}interop/whoami.php?sp={sp_id}"

    def logout_url(self, sp_id: str, binding: str = "redirect") -> str:
        """Return the page that starts SP-initiated single logout at SP ``sp_id``."""
        return f"{self.base_url}interop/logout.php?sp={sp_id}&slo_binding={binding}"

    def trust_idp(self, idp_metadata: bytes) -> None:
        """Write ``saml20-idp-remote.php`` from the IdP's metadata XML. Returns None.

        Raises RuntimeError if the metadata has no IDPSSODescriptor or no signing certificate.
        """
        entry = idp_remote_entry(idp_metadata)
        (self.directory / "metadata" / "saml20-idp-remote.php").write_text(_IDP_REMOTE % php(entry))
        _write_authsources(self.directory, self.base_url, self.names, str(entry["entityid"]))

    def log_tail(self, characters: int = 3000) -> str:
        """Return the end of SimpleSAMLphp's log and the php server's output."""
        parts = []
        for path in (self.directory / "log" / "simplesamlphp.log", self.directory / "php.log"):
            if path.exists():
                parts.append(f"--- {path.name}\n" + path.read_text(errors="replace")[-characters:])
        return "\n".join(parts)

    def stop(self) -> None:
        """Stop the php process group this helper started. Returns None."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def idp_remote_entry(idp_metadata: bytes) -> dict[str, Any]:
    """Return a ``saml20-idp-remote`` entry (entity ID, SSO and SLO endpoints, signing keys)
    read from IdP metadata XML (SAML 2.0 Metadata §2.4.3 IDPSSODescriptor).

    Raises RuntimeError if there is no IDPSSODescriptor or no signing certificate.
    """
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    root = etree.fromstring(idp_metadata, parser)
    idp = root.find(f"{{{MD}}}IDPSSODescriptor")
    if idp is None:
        raise RuntimeError("the IdP metadata has no IDPSSODescriptor")

    def endpoints(tag: str) -> list[dict[str, str]]:
        return [{"Binding": e.get("Binding", ""), "Location": e.get("Location", "")}
                for e in idp.findall(f"{{{MD}}}{tag}")]

    keys = []
    for descriptor in idp.findall(f"{{{MD}}}KeyDescriptor"):
        use = descriptor.get("use")
        for cert in descriptor.iterfind(f".//{{{DS}}}X509Certificate"):
            keys.append({"type": "X509Certificate", "signing": use in (None, "signing"),
                         "encryption": use in (None, "encryption"), "X509Certificate": "".join((cert.text or "").split())})
    if not any(k["signing"] for k in keys):
        raise RuntimeError("the IdP metadata names no signing certificate")
    return {
        "entityid": root.get("entityID"),
        "SingleSignOnService": endpoints("SingleSignOnService"),
        "SingleLogoutService": endpoints("SingleLogoutService"),
        "keys": keys,
        "signature.algorithm": RSA_SHA256,
    }


def sp_address(worker_id: str, last_octet: int = 6) -> str:
    """Return a loopback address 127.<n>.<worker>.<last_octet> this process can bind now."""
    return loopback_address(worker_id, last_octet, "a SAML SP peer")


def _key_pair(directory: Path, name: str) -> None:
    from federation.upstream_saml.keys import generate_key_pair

    pair = generate_key_pair(name, bits=2048)
    (directory / f"{name}.key").write_text(pair.key_pem)
    (directory / f"{name}.crt").write_text(pair.cert_pem)
    os.chmod(directory / f"{name}.key", 0o600)


def _auth_source(sp_id: str, entity_id: str, display_name: str) -> dict[str, Any]:
    return {
        0: "saml:SP",
        "entityID": entity_id,
        "name": {"en": display_name},
        "description": {"en": f"{display_name} (SimpleSAMLphp interop SP)"},
        "privatekey": f"{sp_id}.key",
        "certificate": f"{sp_id}.crt",
        "sign.authnrequest": True,
        "redirect.sign": True,
        "sign.logout": True,
        "validate.logout": True,
        "WantAssertionsSigned": True,
        "assertion.encryption": True,
        "signature.algorithm": RSA_SHA256,
        "NameIDPolicy": {"Format": PERSISTENT, "AllowCreate": True},
        "ProtocolBinding": HTTP_POST,
        "acs.Bindings": [HTTP_POST],
        "SingleLogoutServiceBinding": [HTTP_REDIRECT, HTTP_POST],
    }


def _write_authsources(directory: Path, base_url: str, names: dict[str, str], idp: str | None) -> None:
    sources: dict[str, Any] = {"admin": ["core:AdminPassword"]}
    for sp_id, display_name in names.items():
        sources[sp_id] = _auth_source(sp_id, f"{base_url}module.php/saml/sp/metadata.php/{sp_id}", display_name)
        if idp is not None:
            sources[sp_id]["idp"] = idp
    (directory / "config" / "authsources.php").write_text(f"<?php\n$config = {php(sources)};\n")


def _write_config(directory: Path, base_url: str, names: dict[str, str]) -> None:
    write_instance_config(directory, base_url, {
        "logging.level": 7,  # SimpleSAML\Logger::DEBUG: a failing interop test shows why
        "technicalcontact_email": "saml-sp-peer@camden.test",
        "enable.saml20-idp": False,
        "module.enable": {"core": True, "saml": True, "admin": True},
        # Debian's config.php asks for SameSite=None, which browsers refuse without Secure, and
        # SimpleSAMLphp refuses Secure over plain HTTP: Lax is what a browser keeps here.
        "session.cookie.samesite": "Lax",
        "session.cookie.name": "InteropSPSession",
        "session.authtoken.cookiename": "InteropSPAuthToken",
        "session.phpsession.cookiename": "InteropSPPHP",
        "trusted.url.domains": [],
    })
    _write_authsources(directory, base_url, names, None)
    (directory / "metadata" / "saml20-idp-remote.php").write_text("<?php\n")
    www = directory / "www"
    for entry in WWW.iterdir():
        link = www / entry.name
        if not link.exists():
            link.symlink_to(entry)
    (www / "interop").mkdir(exist_ok=True)
    for name, text in _PAGES.items():
        (www / "interop" / name).write_text(text)


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
    raise RuntimeError(f"SimpleSAMLphp SP at {url} not ready within {READY_TIMEOUT_SECONDS} s")


def start_simplesamlphp_sp(address: str, run_dir: Path, names: dict[str, str]) -> SimpleSamlPhpSp:
    """Write the config, start ``php -S`` on ``address`` and return the running SP instance,
    one auth source per key of ``names`` (SP id -> display name). Its metadata is served once
    it answers; the IdP is added later with ``trust_idp``.

    Raises RuntimeError if it does not answer.
    """
    sp_ids = tuple(names)
    port = free_port(address)
    base_url = f"http://{address}:{port}/"
    _write_config(run_dir, base_url, names)
    for sp_id in sp_ids:
        _key_pair(run_dir / "cert", sp_id)
    env = {**os.environ, "SIMPLESAMLPHP_CONFIG_DIR": str(run_dir / "config")}
    with open(run_dir / "php.log", "wb") as log:
        process = subprocess.Popen(
            ["php", "-S", f"{address}:{port}", "-t", str(run_dir / "www")],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True,
        )
    server = SimpleSamlPhpSp(address=address, port=port, directory=run_dir, process=process, names=dict(names))
    try:
        _wait_ready(process, server.entity_id(sp_ids[0]), run_dir)
    except Exception:
        server.stop()
        raise
    return server
