"""SP onboarding: ``supercloud sps add --metadata FILE|URL``, list, remove; a federation's
signature on metadata checked; ACS endpoints only from metadata."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from lxml import etree

from broker.cli import cli
from broker.saml.issuing import ResponseIssuer
from federation.upstream_saml.keys import generate_key_pair
from tests.saml_idp.conftest import build_env, posted_response, send, sign_in_and_answer


def _run(settings_path: Path, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, ["--config", str(settings_path), *args], obj={})


def _env(settings_factory, sps):  # type: ignore[no-untyped-def]
    """Only SP a is configured; b and plain are left for the command line."""
    configured = {"a": sps["a"]}
    app, services, _ = build_env(settings_factory, configured)
    metadata = app.test_client().get("/saml/metadata").get_data(as_text=True)
    for sp in sps.values():
        sp.connect(metadata)
    return app, services, settings_factory.folder / "broker.yaml"


def _federation_signed(sp, folder: Path) -> tuple[Path, Path]:  # type: ignore[no-untyped-def]
    """Return (metadata signed by a federation key, the federation's certificate)."""
    federation = generate_key_pair("London SAML federation", 2048)
    root = etree.fromstring(sp.metadata_file.read_bytes())
    root.set("ID", "_federation-md-1")
    signed = ResponseIssuer(federation.key_pem.encode(), federation.cert_pem.encode()).sign_xml(
        etree.tostring(root, xml_declaration=True, encoding="UTF-8"), "_federation-md-1")
    (folder / "federation.pem").write_text(federation.cert_pem)
    (folder / "signed.xml").write_bytes(signed)
    return folder / "signed.xml", folder / "federation.pem"


def test_sps_add_from_a_file_then_sign_in_list_and_remove(settings_factory, sps) -> None:
    app, services, config = _env(settings_factory, sps)
    b = sps["b"]
    client = app.test_client()
    _, message = b.authn_request()
    assert send(client, message).status_code == 400, "not registered yet"
    result = _run(config, "sps", "add", "--metadata", str(b.metadata_file), "--name", "Camden cases", "--json")
    assert result.exit_code == 0, result.output
    added = json.loads(result.output)
    assert added["entity_id"] == b.entity_id and added["assertion_consumers"] == [b.acs]
    assert added["authn_requests_signed"] is True and added["encrypts_assertions"] is True
    req_id, message = b.authn_request()
    parsed = b.parse(posted_response(sign_in_and_answer(client, send(client, message)))[1]["SAMLResponse"], {req_id: "/"})
    assert parsed.in_response_to == req_id
    listed = json.loads(_run(config, "sps", "list", "--json").output)
    assert {(e["entity_id"], e["origin"]) for e in listed} == {(sps["a"].entity_id, "config"), (b.entity_id, "cli")}
    refused = _run(config, "sps", "remove", sps["a"].entity_id)
    assert refused.exit_code != 0 and "configuration file" in refused.output
    assert _run(config, "sps", "remove", b.entity_id).exit_code == 0
    _, message = b.authn_request()
    assert send(app.test_client(), message).status_code == 400, "removed SPs get no answer"
    events = [(r.event, r.outcome) for r in services.audit.records() if r.event.startswith("saml_sp_")]
    assert events == [("saml_sp_registered", "success"), ("saml_sp_removed", "success")]


def test_federation_signed_metadata_is_checked(settings_factory, sps, tmp_path: Path) -> None:
    app, services, config = _env(settings_factory, sps)
    signed, federation = _federation_signed(sps["b"], tmp_path)
    ok = _run(config, "sps", "add", "--metadata", str(signed), "--signer-certificate", str(federation))
    assert ok.exit_code == 0, ok.output
    # The same metadata with an ACS rewritten after signing is refused.
    tampered = tmp_path / "tampered.xml"
    tampered.write_bytes(signed.read_bytes().replace(b"http://b.sp.test/acs", b"http://evil.test/acs"))
    bad = _run(config, "sps", "add", "--metadata", str(tampered), "--signer-certificate", str(federation))
    assert bad.exit_code != 0 and "refused" in bad.output
    # Unsigned metadata where a federation signature is expected is refused.
    unsigned = _run(config, "sps", "add", "--metadata", str(sps["plain"].metadata_file), "--signer-certificate", str(federation))
    assert unsigned.exit_code != 0 and "not signed" in unsigned.output
    # A URL without a signer certificate is refused before anything is fetched.
    no_signer = _run(config, "sps", "add", "--metadata", "https://federation.example/metadata.xml")
    assert no_signer.exit_code != 0 and "signer" in no_signer.output
    failures = [r for r in services.audit.records() if r.event == "saml_sp_registered" and r.outcome == "failure"]
    assert len(failures) == 2
    b = sps["b"]
    req_id, message = b.authn_request()
    client = app.test_client()
    acs, _ = posted_response(sign_in_and_answer(client, send(client, message)))
    assert acs == b.acs


def test_configured_sp_with_federation_signed_metadata(settings_factory, sps, tmp_path: Path) -> None:
    signed, federation = _federation_signed(sps["b"], tmp_path)
    app, services, sps = build_env(settings_factory, {"b": sps["b"]},
                                   b={"metadata": {"file": str(signed), "signer_certificate": str(federation)}})
    client = app.test_client()
    req_id, message = sps["b"].authn_request()
    acs, fields = posted_response(sign_in_and_answer(client, send(client, message)))
    assert sps["b"].parse(fields["SAMLResponse"], {req_id: "/"}).in_response_to == req_id


def test_configured_sp_with_tampered_metadata_gets_no_answer(settings_factory, sps, tmp_path: Path) -> None:
    signed, federation = _federation_signed(sps["b"], tmp_path)
    signed.write_bytes(signed.read_bytes().replace(b"http://b.sp.test/acs", b"http://evil.test/acs"))
    app, services, sps = build_env(settings_factory, {"b": sps["b"]},
                                   b={"metadata": {"file": str(signed), "signer_certificate": str(federation)}})
    _, message = sps["b"].authn_request()
    response = send(app.test_client(), message)
    assert response.status_code == 400 and "SAMLResponse" not in response.get_data(as_text=True)


def test_an_sp_added_with_the_cli_is_decided_as_its_service(settings_factory, sps) -> None:
    from tests.saml_idp.conftest import build_env

    app, services, _ = build_env(settings_factory, {"a": sps["a"]}, policies=True)
    metadata = app.test_client().get("/saml/metadata").get_data(as_text=True)
    sps["b"].connect(metadata)
    config = settings_factory.folder / "broker.yaml"
    assert _run(config, "sps", "add", "--metadata", str(sps["b"].metadata_file), "--service", "admissions").exit_code == 0
    client = app.test_client()
    _, message = sps["b"].authn_request()
    page = sign_in_and_answer(client, send(client, message), "amara.okafor@camden.test")
    assert page.status_code == 403, "a social worker is not an admissions officer"
    decided = [r for r in services.audit.records() if r.event == "policy_decision"][-1]
    assert decided.details["service"] == "admissions"


def test_sps_add_from_a_url_checks_the_federation_signature(settings_factory, sps, tmp_path: Path) -> None:
    import functools
    import http.server
    import threading

    app, services, config = _env(settings_factory, sps)
    signed, federation = _federation_signed(sps["b"], tmp_path)
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        (tmp_path / "tampered.xml").write_bytes(signed.read_bytes().replace(b"http://b.sp.test/acs", b"http://evil.test/acs"))
        bad = _run(config, "sps", "add", "--metadata", f"{base}/tampered.xml", "--signer-certificate", str(federation))
        assert bad.exit_code != 0 and "refused" in bad.output
        ok = _run(config, "sps", "add", "--metadata", f"{base}/signed.xml", "--signer-certificate", str(federation), "--json")
        assert ok.exit_code == 0, ok.output
        assert json.loads(ok.output)["assertion_consumers"] == [sps["b"].acs]
    finally:
        server.shutdown()
        server.server_close()
