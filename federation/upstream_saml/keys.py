"""The SP's key pairs: signing (AuthnRequests, SAML Bindings §3.4.4.1) and encryption
(assertions encrypted to us, SAML Core §6).

Either given in configuration (``sp_key`` a SecretRef, ``sp_certificate`` a PEM file; one
pair for both uses, rotated by the operator replacing them), or generated: RSA-3072 keys
with self-signed certificates, kept in one file encrypted under the master key (AES-256-GCM,
the source id as associated data, like the broker's other keys at rest). Every host sharing
that file and the master key publishes the same SP metadata.

Generated keys roll over like the broker's JWKS (``broker.keyring``): for each use there is
a *current* key and a *next* key, both published in our SP metadata (SAML Metadata §2.4.1.1:
several KeyDescriptors per use), so an IdP that cached our metadata already knows the key
we move to. ``rotate`` makes next current, the old current *previous*, and creates a new
next; we sign AuthnRequests with the current signing key and decrypt assertions encrypted
to current, next or previous (an IdP still encrypting to what it cached keeps working until
the rotation after). The previous key is not published. Rotation takes an exclusive lock
on the store and replaces the file atomically; running processes notice the new file by its
modification stamp (``KeyStore.current``).

xmlsec1 reads keys from files, so the keys are written to a private directory (0700, files
0600) that is removed when the process exits.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import dataclasses
import datetime as dt
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
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
    """The SP's signing and encryption key pairs, and their files for xmlsec1.

    ``signing``/``encryption`` are the current pairs; ``published_signing`` and
    ``published_encryption`` the certificates' files to list in metadata (current, then next);
    ``decryption_files`` every pair an assertion may be encrypted to (current, next, previous).
    """

    signing: KeyPair
    encryption: KeyPair
    signing_files: KeyFiles
    encryption_files: KeyFiles
    published_signing: tuple[KeyFiles, ...] = ()
    published_encryption: tuple[KeyFiles, ...] = ()
    decryption_files: tuple[KeyFiles, ...] = ()
    version: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class SpKeySet:
    """Generated SP keys in rollover: current and next per use, and the previous encryption key."""

    signing: KeyPair
    signing_next: KeyPair
    encryption: KeyPair
    encryption_next: KeyPair
    encryption_previous: KeyPair | None
    rotated_at: dt.datetime

    def to_json(self) -> dict[str, object]:
        """The stored form (version 2 of the key store)."""
        return {
            "v": 2,
            "rotated_at": self.rotated_at.isoformat(),
            "signing": [dataclasses.asdict(self.signing), dataclasses.asdict(self.signing_next)],
            "encryption": [dataclasses.asdict(p) for p in
                           (self.encryption, self.encryption_next, *((self.encryption_previous,) if self.encryption_previous else ()))],
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> SpKeySet:
        """Read version 2 of the key store. Raises KeyError/TypeError for another shape."""
        signing = [KeyPair(**p) for p in data["signing"]]  # type: ignore[union-attr]
        encryption = [KeyPair(**p) for p in data["encryption"]]  # type: ignore[union-attr]
        return cls(signing[0], signing[1], encryption[0], encryption[1], encryption[2] if len(encryption) > 2 else None,
                   dt.datetime.fromisoformat(str(data["rotated_at"])))

    def rotated(self, common_name: str) -> SpKeySet:
        """Next becomes current, current becomes previous (encryption), a new next is made."""
        return SpKeySet(self.signing_next, generate_key_pair(common_name), self.encryption_next,
                        generate_key_pair(common_name), self.encryption, dt.datetime.now(dt.UTC))


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


class KeyStore:
    """The encrypted file holding one SAML source's generated keys, with rollover.

    ``current`` re-reads the file only when its modification stamp changed (one ``stat``),
    so a rotation made by another process (``supercloud keys rotate``) reaches every worker.
    """

    def __init__(self, path: Path, master: MasterKey, source_id: str, common_name: str) -> None:
        self.path = path
        self._master = master
        self._source_id = source_id
        self._common_name = common_name
        self._associated = f"saml-sp:{source_id}".encode()
        self._cached: tuple[tuple[int, int, int], SpKeySet] | None = None
        self._lock = threading.Lock()

    def current(self) -> SpKeySet:
        """Return the key set, creating the store (or upgrading a one-key store) if needed.

        Raises FederationError(KEY_ERROR) if the file was not written under this master key
        for this source, MISCONFIGURED if it cannot be read or written.
        """
        with self._lock:
            stamp = self._stamp()
            if self._cached is not None and stamp is not None and self._cached[0] == stamp:
                return self._cached[1]
            keys = self._read() if stamp is not None else None
            if keys is None:
                with self._exclusive():
                    keys = self._read() if self._stamp() is not None else None
                    if keys is None:
                        old = load_or_create(self.path, self._master, self._source_id, self._common_name)
                        keys = SpKeySet(old[0], generate_key_pair(self._common_name), old[1],
                                        generate_key_pair(self._common_name), None, dt.datetime.now(dt.UTC))
                        self._write(keys)
            self._cached = (self._stamp() or (0, 0, 0), keys)
            return keys

    def rotate(self) -> SpKeySet:
        """Roll over (see the module docstring) under an exclusive lock; return the new set."""
        self.current()  # the store exists in version 2 from here on (taking the lock itself if it must)
        with self._exclusive():
            keys = self._read()
            if keys is None:
                raise FederationError(FederationErrorCode.MISCONFIGURED, f"the SAML SP key store {self.path} changed shape")
            rotated = keys.rotated(self._common_name)
            self._write(rotated)
        with self._lock:
            self._cached = None
        return rotated

    def rotate_if_due(self, max_age: dt.timedelta) -> SpKeySet | None:
        """Rotate when the current keys are older than ``max_age``; return the new set, or None."""
        if dt.datetime.now(dt.UTC) - self.current().rotated_at < max_age:
            return None
        return self.rotate()

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            info = self.path.stat()
        except FileNotFoundError:
            return None
        return info.st_ino, info.st_mtime_ns, info.st_size

    def _read(self) -> SpKeySet | None:
        """The version-2 set in the file, or None for a version-1 (one key per use) store."""
        try:
            data = base64.b64decode(self.path.read_bytes().strip(), validate=True)
        except (OSError, ValueError):
            raise FederationError(FederationErrorCode.MISCONFIGURED, f"cannot read the SAML SP key store {self.path}") from None
        plain = json.loads(self._master.decrypt(data, self._associated))
        return SpKeySet.from_json(plain) if plain.get("v") == 2 else None

    def _write(self, keys: SpKeySet) -> None:
        blob = base64.b64encode(self._master.encrypt(json.dumps(keys.to_json()).encode(), self._associated)) + b"\n"
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(blob)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        except OSError as exc:
            raise FederationError(FederationErrorCode.MISCONFIGURED,
                                  f"cannot write the SAML SP key store {self.path}: {exc.strerror}") from None

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """An exclusive advisory lock shared by every process using this store."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path.with_name(f".{self.path.name}.lock"), os.O_WRONLY | os.O_CREAT, 0o600)
        except OSError as exc:
            raise FederationError(FederationErrorCode.MISCONFIGURED,
                                  f"cannot lock the SAML SP key store {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


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


def _files(source_id: str, use: str, pair: KeyPair) -> KeyFiles:
    tag = hashlib.sha256(pair.cert_pem.encode()).hexdigest()[:12]  # a new file per key: none rewritten while in use
    return KeyFiles(_write(f"{source_id}-{use}-{tag}.key", pair.key_pem), _write(f"{source_id}-{use}-{tag}.crt", pair.cert_pem))


def materialise(source_id: str, signing: KeyPair, encryption: KeyPair) -> SpKeys:
    """Return ``SpKeys`` for one fixed pair per use (configured keys: no rollover), written for xmlsec1."""
    signing_files, encryption_files = _files(source_id, "signing", signing), _files(source_id, "encryption", encryption)
    return SpKeys(signing, encryption, signing_files, encryption_files, (signing_files,), (encryption_files,),
                  (encryption_files,), version=signing_files.cert_file + encryption_files.cert_file)


def materialise_set(source_id: str, keys: SpKeySet) -> SpKeys:
    """Return ``SpKeys`` for a rollover set: current and next published, current/next/previous decrypting."""
    signing = (_files(source_id, "signing", keys.signing), _files(source_id, "signing", keys.signing_next))
    encryption = (_files(source_id, "encryption", keys.encryption), _files(source_id, "encryption", keys.encryption_next))
    previous = (_files(source_id, "encryption", keys.encryption_previous),) if keys.encryption_previous else ()
    return SpKeys(keys.signing, keys.encryption, signing[0], encryption[0], signing, encryption, encryption + previous,
                  version="|".join(f.cert_file for f in (*signing, *encryption, *previous)))
