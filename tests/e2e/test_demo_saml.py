"""`make demo` includes one SAML service provider, Social Care Case Records (demo/case_records.py,
pysaml2): its sign-in sends a signed AuthnRequest to the broker's SSO, and Amara, signing in at
the broker, comes back to it with the attributes the London policies release."""

from __future__ import annotations

import base64
import os
import re
import signal
import subprocess
import sys
import zlib
from urllib.parse import parse_qs, urlsplit

import requests
from lxml import etree

from tests.support.live import free_port, wait_for
from tests.support.saml_browser import SamlBrowser
from tests.support.settings import ROOT

SIG_RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"


def test_the_demo_saml_sp_signs_in_through_the_broker(tmp_path) -> None:  # type: ignore[no-untyped-def]
    port, app_port, sp_port = free_port(), free_port(), free_port()
    issuer, sp = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{sp_port}"
    env = {**os.environ, "PORT": str(port), "DEMO_APP_PORT": str(app_port), "CASE_RECORDS_PORT": str(sp_port),
           "SUPERCLOUD_DEMO_STATE": str(tmp_path)}
    env.pop("SUPERCLOUD_DATABASE_URL", None)
    process = subprocess.Popen([sys.executable, "-m", "demo.run"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(f"{issuer}/login", process)
        wait_for(f"{sp}/", process)

        # The SP's sign-in link sends the browser to the broker's SSO with a signed AuthnRequest.
        login = requests.get(f"{sp}/login", allow_redirects=False, timeout=10)
        assert login.status_code == 302, login.text[:300]
        location = login.headers["Location"]
        assert location.startswith(f"{issuer}/saml/sso?"), location
        query = parse_qs(urlsplit(location).query)
        assert query["SigAlg"] == [SIG_RSA_SHA256] and query["Signature"][0], query.keys()
        request = etree.fromstring(zlib.decompress(base64.b64decode(query["SAMLRequest"][0]), -15))
        assert request.tag == "{urn:oasis:names:tc:SAML:2.0:protocol}AuthnRequest"
        assert request.get("AssertionConsumerServiceURL") == f"{sp}/acs"
        assert request.findtext("{urn:oasis:names:tc:SAML:2.0:assertion}Issuer") == "urn:supercloud:demo:case-records"

        # The broker takes it (the demo SP must sign: require_signed_requests) ...
        first = requests.get(location, allow_redirects=False, timeout=10)
        assert first.status_code in (200, 302) and "problem" not in first.text.lower(), first.text[:500]
        # ... and refuses the same request with its signature cut off or its RelayState swapped.
        unsigned = location.split("&SigAlg=")[0] if "&SigAlg=" in location else location.split("SigAlg=")[0]
        assert requests.get(unsigned, allow_redirects=False, timeout=10).status_code == 400
        tampered = location.replace("RelayState=%2F", "RelayState=%2Fevil")
        assert tampered != location and requests.get(tampered, allow_redirects=False, timeout=10).status_code == 400

        # A whole round trip: Amara signs in at the broker and the SP shows what it received.
        browser = SamlBrowser()
        page = browser.open(f"{sp}/login", email="amara.okafor@camden.test", password="london-demo")
        assert page.status_code == 200 and "Your case records" in page.text, page.text[:800]
        # pysaml2 names the released attributes by their friendly names: exactly what the policies release
        rows = dict(re.findall(r'<th scope="row">([^<]+)</th><td>([^<]*)</td>', page.text))
        assert rows == {"schacHomeOrganization": "camden", "o": "London Borough of Camden", "ou": "Adult Social Care"}, rows
        response = browser.received("SAMLResponse", f"{sp}/acs")
        assert len(response) == 1 and b"EncryptedAssertion" in response[0].xml, "the assertion travels encrypted"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        output = process.communicate(timeout=30)[0].decode(errors="replace")
    assert f"Social Care Case Records (demo SAML SP): {sp}/" in output
    assert "BEGIN" not in output and "PRIVATE KEY" not in output
    metadata = ROOT / "var" / "demo" / "case-records"
    assert oct((metadata / "sp.key").stat().st_mode & 0o777) == "0o600"
