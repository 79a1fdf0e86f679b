"""The SP's key pairs: signing (AuthnRequests, SAML Bindings §3.4.4.1) and encryption
(assertions encrypted to us, SAML Core §6).

Either given in configuration (``sp_key`` a SecretRef, ``sp_certificate`` a PEM file; one
pair for both uses), or generated once: two RSA-3072 keys with self-signed certificates,
kept in one file encrypted under the master key (AES-256-GCM, the source id as associated
data, like the broker's other keys at rest). Every host sharing that file and the master
key publishes the same SP metadata.

xmlsec1 reads keys from files, so the keys are written to a private directory (0700, files
0600) that is removed when the process exits.
"""

from __future__ import annotations

import atexit
import base64
import dataclasses
import datetime as dt
import json
import os
import shutil
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from federation.errors import FederationError, FederationErrorCode
from federation.keys import MasterKey

RSA_BITS = 3072
CERTIFICATE_YEARS = 10


@dataclasses.dataclass(frozen=True, slots=True)
class KeyPair:
    """A PEM private key and its PEM certificate."""

    key_pem: str
    cert_pem: str

    @property
    def cert_b64(self) -> str:
        """The certificate as base64 DER, as metadata's ds:X509Certificate carries it."""
        der = x509.load_pem_x509_certificate(self.cert_pem.encode()).public_bytes(serialization.Encoding.DER)
        return base64.b64encode(der).decode()


@dataclasses.dataclass(frozen=True, slots=True)
class KeyFiles:
    """Where xmlsec1 finds one key pair."""

    key_file: str
    cert_file: str


@dataclasses.dataclass(frozen=True, slots=True)
class SpKeys:
    """The SP's signing and encryption key pairs, and their files for xmlsec1."""

    signing: KeyPair
    encryption: KeyPair
    signing_files: KeyFiles
    encryption_files: KeyFiles


def generate_key_pair(common_name: str, bits: int = RSA_BITS) -> KeyPair:
    """Return a new RSA key of ``bits`` and a self-signed certificate (SHA-256) naming ``common_name``."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])])
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365 * CERTIFICATE_YEARS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return KeyPair(key_pem.decode(), cert.public_bytes(serialization.Encoding.PEM).decode())


def check_key_pair(pair: KeyPair, what: str) -> None:
    """Raise FederationError(MISCONFIGURED) unless ``pair`` is an RSA key (>= 2048 bits) and its certificate."""
    try:
        key = serialization.load_pem_private_key(pair.key_pem.encode(), password=None)
        cert = x509.load_pem_x509_certificate(pair.cert_pem.encode())
    except ValueError:
        raise FederationError(FederationErrorCode.MISCONFIGURED, f"{what}: not a PEM private key and certificate") from None
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < 2048:
        raise FederationError(FederationErrorCode.MISCONFIGURED, f"{what}: the SP key must be RSA of at least 2048 bits")
    if cert.public_key().public_numbers() != key.public_key().public_numbers():
        raise FederationError(FederationErrorCode.MISCONFIGURED, f"{what}: the certificate does not match the key")


def load_or_create(store: Path, master: MasterKey, source_id: str, common_name: str) -> tuple[KeyPair, KeyPair]:
    """Return (signing, encryption) key pairs from the encrypted ``store``, creating it if absent.

    Creation is exclusive: of two processes starting together, one writes and both read
    its file. Raises FederationError(KEY_ERROR) if the file was not written under this
    master key for this source, MISCONFIGURED if it cannot be read or written.
    """
    associated = f"saml-sp:{source_id}".encode()
    if not store.exists():
        signing, encryption = generate_key_pair(common_name), generate_key_pair(common_name)
        blob = master.encrypt(json.dumps({"signing": dataclasses.asdict(signing),
                                          "encryption": dataclasses.asdict(encryption)}).encode(), associated)
        try:
            store.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(store, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process won; read its keys below
        except OSError as exc:
            raise FederationError(FederationErrorCode.MISCONFIGURED, f"cannot create the SAML SP key store {store}: {exc.strerror}") from None
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(base64.b64encode(blob) + b"\n")
    try:
        data = base64.b64decode(store.read_bytes().strip(), validate=True)
    except (OSError, ValueError):
        raise FederationError(FederationErrorCode.MISCONFIGURED, f"cannot read the SAML SP key store {store}") from None
    plain = json.loads(master.decrypt(data, associated))
    return KeyPair(**plain["signing"]), KeyPair(**plain["encryption"])


class _PrivateDirectory:
    """One 0700 directory per process for key files, removed at exit."""

    path: Path | None = None

    @classmethod
    def get(cls) -> Path:
        if cls.path is None or not cls.path.exists():
            cls.path = Path(tempfile.mkdtemp(prefix="supercloud-saml-"))
            os.chmod(cls.path, 0o700)
            atexit.register(shutil.rmtree, cls.path, True)
        return cls.path


def _write(name: str, content: str) -> str:
    path = _PrivateDirectory.get() / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(content)
    return str(path)


def materialise(source_id: str, signing: KeyPair, encryption: KeyPair) -> SpKeys:
    """Return ``SpKeys`` with the pairs written to the private directory for xmlsec1."""
    files = []
    for use, pair in (("signing", signing), ("encryption", encryption)):
        files.append(KeyFiles(_write(f"{source_id}-{use}.key", pair.key_pem), _write(f"{source_id}-{use}.crt", pair.cert_pem)))
    return SpKeys(signing, encryption, files[0], files[1])
