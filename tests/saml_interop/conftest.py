"""Fixtures for the SAML IdP interop tests: independent SPs (SimpleSAMLphp 1.19 and OneLogin's
python3-saml) on loopback, and the real SimpleSAMLphp IdP peer used to prove the SP harnesses.

A missing peer skips with how to enable it, or fails under ``CI=true`` (tests.peers.peer_missing).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peers import peer_missing
from tests.peers import python3_saml_sp as pysp
from tests.peers import simplesamlphp
from tests.peers.simplesamlphp import simplesamlphp_barnet  # noqa: F401 (fixture)
from tests.peers.simplesamlphp_sp import SimpleSamlPhpSp, sp_address, start_simplesamlphp_sp
from tests.saml_interop.live_idp import LiveSamlIdp, sp_entries, start_saml_idp

SERVICES = {"case-records": "Social Care Case Records", "admissions": "London Admissions"}


def simplesamlphp_sp_instance(worker_id: str, folder: Path, names: dict[str, str], address: str | None = None) -> SimpleSamlPhpSp:
    """Start a SimpleSAMLphp SP instance (on 127.<n>.<worker>.6 unless ``address`` is given),
    or skip/fail (CI) when SimpleSAMLphp is missing."""
    if not simplesamlphp.available():
        peer_missing("SimpleSAMLphp", simplesamlphp.HOW_TO_ENABLE)
    return start_simplesamlphp_sp(address or sp_address(worker_id, 6), folder, names)


def python3_saml_instance(worker_id: str, sp_ids: tuple[str, ...]) -> pysp.Python3SamlSp:
    """Start a python3-saml SP app, or skip/fail (CI) when python3-saml/xmlsec cannot load."""
    problem = pysp.available()
    if problem is not None:
        peer_missing("python3-saml", f"{pysp.HOW_TO_ENABLE} ({problem})")
    return pysp.start_python3_saml_sp(pysp.sp_address(worker_id, 7), sp_ids)


@pytest.fixture(scope="session")
def simplesamlphp_sp(worker_id: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleSamlPhpSp]:
    """SimpleSAMLphp SPs ``case-records`` and ``admissions`` on 127.<n>.<worker>.6 for the session."""
    server = simplesamlphp_sp_instance(worker_id, tmp_path_factory.mktemp("simplesamlphp-sp"), SERVICES)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def python3_saml_sp(worker_id: str) -> Iterator[pysp.Python3SamlSp]:
    """python3-saml SPs ``case-records`` and ``admissions`` on 127.<n>.<worker>.7 for the session."""
    sp = python3_saml_instance(worker_id, tuple(SERVICES))
    try:
        yield sp
    finally:
        sp.stop()


@pytest.fixture(scope="session")
def simplesamlphp_sp_same_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleSamlPhpSp]:
    """A SimpleSAMLphp ``case-records`` SP on 127.0.0.1 (another port: the broker's own site), for Chromium.

    SimpleSAMLphp keeps the pending sign-in in its session cookie. ``SameSite=None`` (what it
    would use on HTTPS) needs ``Secure``, which SimpleSAMLphp refuses over plain HTTP, so the
    peers set ``Lax``; Chromium withholds a Lax cookie from the broker's cross-site HTTP-POST to
    the ACS (SimpleSAMLphp then takes the response as unsolicited). On the broker's own site the
    cookie travels, as a ``SameSite=None; Secure`` cookie would for an SP on HTTPS.
    """
    server = simplesamlphp_sp_instance("master", tmp_path_factory.mktemp("simplesamlphp-sp-same-site"),
                                       {"case-records": SERVICES["case-records"]}, address="127.0.0.1")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def saml_idp(simplesamlphp_sp: SimpleSamlPhpSp, python3_saml_sp: pysp.Python3SamlSp,
             simplesamlphp_sp_same_site: SimpleSamlPhpSp, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveSamlIdp]:
    """The broker as SAML IdP (London policies) with five SPs registered from their metadata
    files: ``case-records`` and ``admissions`` at SimpleSAMLphp and at python3-saml, and the
    same-site SimpleSAMLphp ``case-records`` for Chromium. Four are in the configuration file;
    python3-saml's ``admissions`` is added to the running broker with ``supercloud sps add``. Only the ``admissions`` SPs accept
    IdP-initiated sign-in. Every SP peer trusts the broker's IdP
    metadata once it answers."""
    from tests.support.databases import fresh_database

    folder = tmp_path_factory.mktemp("saml-idp")
    peers = [(simplesamlphp_sp, "SimpleSAMLphp", SERVICES), (python3_saml_sp, "python3-saml", SERVICES),
             (simplesamlphp_sp_same_site, "SimpleSAMLphp in Chromium", SERVICES)]
    entries = sp_entries(folder, peers, idp_initiated=frozenset({"admissions"}))
    # python3-saml's admissions SP is not in the file: an operator adds it to the running broker.
    [by_cli] = [e for e in entries if e["entity_id"] == python3_saml_sp.entity_id("admissions")]
    entries.remove(by_cli)
    with fresh_database(folder) as url:
        idp = start_saml_idp(folder, url, entries)
        try:
            added = json.loads(idp.cli("sps", "add", "--metadata", by_cli["metadata"]["file"], "--name", by_cli["name"],
                                       "--service", "admissions", "--idp-initiated", "--json"))
            assert added["entity_id"] == by_cli["entity_id"] and added["encrypts_assertions"] is True, added
            for sp, _, _ in peers:
                sp.trust_idp(idp.metadata_xml)
            yield idp
        finally:
            idp.stop()
