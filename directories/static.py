"""A directory read from a YAML file of users with argon2id password hashes.

For the demo and unit tests only: ``federation`` refuses to build it when the broker is
configured for production. File format::

    users:
      - username: amara.okafor@camden.test      # what the person types (case-insensitive)
        object_id: 0b7e6c8e-4a4e-4d55-9d7f-5d2b0c9a1f01   # stable id, the identity's subject
        password_hash: $argon2id$v=19$m=65536,t=3,p=4$...
        status: active                          # optional; any AccountStatus value
        attributes: {name: Amara Okafor, email: amara.okafor@camden.test}
        groups: [Adult Social Care, Care Staff]
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from directories.errors import DirectoryError, DirectoryErrorCode
from directories.records import AccountRecord, AccountStatus, GroupRef

_STATUS_ERRORS = {
    AccountStatus.DISABLED: DirectoryErrorCode.ACCOUNT_DISABLED,
    AccountStatus.LOCKED: DirectoryErrorCode.ACCOUNT_LOCKED,
    AccountStatus.EXPIRED: DirectoryErrorCode.ACCOUNT_EXPIRED,
    AccountStatus.PASSWORD_EXPIRED: DirectoryErrorCode.PASSWORD_EXPIRED,
    AccountStatus.PASSWORD_MUST_CHANGE: DirectoryErrorCode.PASSWORD_MUST_CHANGE,
}

_hasher = PasswordHasher()
_dummy_lock = threading.Lock()
_dummy_hash: str | None = None


def hash_password(password: str) -> str:
    """Return an argon2id hash of ``password`` for a users file."""
    return _hasher.hash(password)


def _dummy() -> str:
    """Return a hash to verify against for unknown users, so timing does not reveal them."""
    global _dummy_hash
    with _dummy_lock:
        if _dummy_hash is None:
            _dummy_hash = _hasher.hash(uuid.uuid4().hex)
        return _dummy_hash


class StaticDirectory:
    """A ``Directory`` over a YAML users file, loaded once at construction."""

    def __init__(self, directory_id: str, users: Mapping[str, tuple[str, AccountRecord]]) -> None:
        self._id = directory_id
        self._users = dict(users)

    @classmethod
    def from_file(cls, directory_id: str, path: Path) -> StaticDirectory:
        """Return the directory in ``path``. Raises DirectoryError(MISCONFIGURED) naming the bad entry."""
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise DirectoryError(DirectoryErrorCode.MISCONFIGURED, f"{path}: {exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("users"), list):
            raise DirectoryError(DirectoryErrorCode.MISCONFIGURED, f"{path}: expected a 'users' list")
        users: dict[str, tuple[str, AccountRecord]] = {}
        for index, entry in enumerate(data["users"]):
            username, password_hash, record = _parse_user(directory_id, entry, f"{path}: users[{index}]")
            if username in users:
                raise DirectoryError(DirectoryErrorCode.MISCONFIGURED, f"{path}: users[{index}]: duplicate {username}")
            users[username] = (password_hash, record)
        return cls(directory_id, users)

    @property
    def id(self) -> str:
        """The directory's id from configuration."""
        return self._id

    def authenticate(self, username: str, password: str) -> AccountRecord:
        """Return the record of ``username`` if ``password`` is right; see ``Directory.authenticate``."""
        if not password or not password.strip():
            raise DirectoryError(DirectoryErrorCode.EMPTY_PASSWORD, f"{self._id}: empty password refused")
        entry = self._users.get(username.strip().lower())
        if entry is None:
            _verify(_dummy(), password)
            raise DirectoryError(DirectoryErrorCode.INVALID_CREDENTIALS, f"{self._id}: no such user")
        password_hash, record = entry
        if not _verify(password_hash, password):
            raise DirectoryError(DirectoryErrorCode.INVALID_CREDENTIALS, f"{self._id}: wrong password")
        if record.status in _STATUS_ERRORS:
            raise DirectoryError(_STATUS_ERRORS[record.status], f"{self._id}: account {record.status.value}")
        return record

    def lookup(self, username: str) -> AccountRecord | None:
        """Return the record of ``username``, or None if there is no such user."""
        entry = self._users.get(username.strip().lower())
        return entry[1] if entry else None


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _parse_user(directory_id: str, entry: Any, where: str) -> tuple[str, str, AccountRecord]:
    if not isinstance(entry, dict):
        raise DirectoryError(DirectoryErrorCode.MISCONFIGURED, f"{where}: expected a mapping")
    unknown = set(entry) - {"username", "object_id", "password_hash", "status", "attributes", "groups"}
    if unknown:
        raise DirectoryError(DirectoryErrorCode.MISCONFIGURED, f"{where}: unknown keys {sorted(unknown)}")
    try:
        username = str(entry["username"]).strip().lower()
        object_id = str(uuid.UUID(str(entry["object_id"])))
        password_hash = str(entry["password_hash"])
        status = AccountStatus(entry.get("status", "active"))
    except (KeyError, ValueError) as exc:
        raise DirectoryError(DirectoryErrorCode.MISCONFIGURED, f"{where}: {exc!r}") from None
    if not password_hash.startswith("$argon2id$"):
        raise DirectoryError(DirectoryErrorCode.MISCONFIGURED, f"{where}: password_hash must be argon2id")
    attributes = entry.get("attributes") or {}
    groups = entry.get("groups") or []
    if not isinstance(attributes, dict) or not isinstance(groups, list):
        raise DirectoryError(DirectoryErrorCode.MISCONFIGURED, f"{where}: attributes must map, groups must list")
    record = AccountRecord(
        directory_id=directory_id,
        object_id=object_id,
        username=username,
        attributes={
            str(k): tuple(str(x) for x in v) if isinstance(v, list) else str(v) for k, v in attributes.items()
        },
        groups=tuple(GroupRef(id=f"{directory_id}:{g}", name=str(g)) for g in groups),
        status=status,
    )
    return username, password_hash, record
