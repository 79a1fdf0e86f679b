"""Benchmark the HTTP-Redirect binding's query-string signature (SAML Bindings §3.4.4.1), which
every single-logout hop signs (the IdP's LogoutRequests, the upstream SP's logout messages).

Run: ``.venv/bin/python bench/saml_redirect_bench.py [--seconds 2]`` (``make bench`` runs it).

Prints, per CPU-second of this process: ``redirect.encode`` (DEFLATE, base64, RSA-2048
RSA-SHA256 signature through ``xmlsecurity.sign_query``, the key parsed and checked once);
the same signature with the key parsed from PEM on every call (what both Redirect
implementations did before they were merged); and ``decode`` + ``is_signed_by`` (verification
with the metadata certificate). Then the ratio of the first two.
"""

from __future__ import annotations

import argparse
import base64
import resource
import time
from collections.abc import Callable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from federation.upstream_saml import redirect
from federation.upstream_saml.keys import generate_key_pair

XML = b'<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_x">' + b"x" * 1500 + b"</samlp:LogoutRequest>"


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _rate(work: Callable[[], object], seconds: float) -> float:
    """Return calls per CPU-second of ``work`` over about ``seconds`` of wall time."""
    work()
    calls, start_wall, start_cpu = 0, time.perf_counter(), _cpu()
    while time.perf_counter() - start_wall < seconds:
        work()
        calls += 1
    return calls / max(_cpu() - start_cpu, 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    pair = generate_key_pair("bench", 2048)
    certificate = base64.b64encode(x509.load_pem_x509_certificate(pair.cert_pem.encode())
                                   .public_bytes(serialization.Encoding.DER)).decode()
    query = redirect.encode("SAMLRequest", XML, "relay-state", pair.key_pem)
    message = redirect.decode(query.encode())
    if not redirect.is_signed_by(message, (certificate,)):
        raise SystemExit("the benchmark's own signature does not verify")

    def parse_every_time() -> bytes:
        key = serialization.load_pem_private_key(pair.key_pem.encode(), None)
        return key.sign(message.signed_octets or b"", padding.PKCS1v15(), hashes.SHA256())  # type: ignore[union-attr]

    ours = _rate(lambda: redirect.encode("SAMLRequest", XML, "relay-state", pair.key_pem), args.seconds)
    before = _rate(parse_every_time, args.seconds)
    verify = _rate(lambda: redirect.is_signed_by(redirect.decode(query.encode()), (certificate,)), args.seconds)
    print(f"redirect encode + sign (key parsed once):  {ours:8.0f} /CPU-s")
    print(f"sign with the key parsed on every call:    {before:8.0f} /CPU-s")
    print(f"redirect decode + verify:                  {verify:8.0f} /CPU-s")
    print(f"ratio encode+sign / parse-every-call:      {ours / before:8.1f}x")


if __name__ == "__main__":
    main()
