"""Adapts a ``directories.Directory`` into a password identity source."""

from __future__ import annotations

import dataclasses
import datetime as dt

from directories import AccountRecord, AccountStatus, DirectoryError, DirectoryErrorCode
from directories.interfaces import Directory
from federation.errors import FederationError, FederationErrorCode
from federation.identity import AssuranceLevel, Attribute, AuthnContext, Identity, SubjectRef, build_attributes

_CHANGE_PASSWORD = {DirectoryErrorCode.PASSWORD_MUST_CHANGE, DirectoryErrorCode.PASSWORD_EXPIRED}
_NOT_ACTIVE = {
    DirectoryErrorCode.ACCOUNT_DISABLED,
    DirectoryErrorCode.ACCOUNT_LOCKED,
    DirectoryErrorCode.ACCOUNT_EXPIRED,
    DirectoryErrorCode.LOGON_NOT_PERMITTED,
}


@dataclasses.dataclass(frozen=True, slots=True)
class LockoutPolicy:
    """A directory's account lockout: ``threshold`` wrong passwords within ``window_seconds`` lock it."""

    threshold: int
    window_seconds: int


def directory_issuer(directory_id: str) -> str:
    """Return the issuer name under which a directory's subjects are keyed."""
    return f"urn:supercloud:directory:{directory_id}"


class DirectorySource:
    """A ``PasswordSource`` and ``RefreshableSource`` backed by a directory."""

    def __init__(self, source_id: str, organisation: str, directory: Directory,
                 lockout: LockoutPolicy | None = None) -> None:
        self._id = source_id
        self._organisation = organisation
        self._directory = directory
        self.lockout = lockout

    @property
    def id(self) -> str:
        """The source id (the directory's id from configuration)."""
        return self._id

    @property
    def organisation(self) -> str:
        """The organisation this directory belongs to."""
        return self._organisation

    def authenticate_password(self, username: str, password: str) -> Identity:
        """See ``PasswordSource.authenticate_password``."""
        try:
            record = self._directory.authenticate(username, password)
        except DirectoryError as exc:
            raise _translate(exc) from None
        return self._identity(record, dt.datetime.now(dt.UTC))

    def refresh(self, identity: Identity) -> Identity:
        """Re-read the account; see ``RefreshableSource.refresh``."""
        username = identity.text("username")
        if identity.subject.issuer != directory_issuer(self._directory.id) or not username:
            raise FederationError(FederationErrorCode.MISCONFIGURED, "identity is not from this directory")
        try:
            record = self._directory.lookup(username)
        except DirectoryError as exc:
            raise _translate(exc) from None
        if record is None or record.object_id != identity.subject.subject:
            raise FederationError(FederationErrorCode.ACCOUNT_NOT_ACTIVE, f"{self._id}: account no longer exists")
        if record.status is not AccountStatus.ACTIVE:
            raise FederationError(FederationErrorCode.ACCOUNT_NOT_ACTIVE, f"{self._id}: account {record.status.value}")
        refreshed = self._identity(record, dt.datetime.now(dt.UTC))
        return Identity(
            subject=refreshed.subject,
            organisation=refreshed.organisation,
            attributes=refreshed.attributes,
            groups=refreshed.groups,
            roles=refreshed.roles,
            authn=identity.authn,
        )

    def _identity(self, record: AccountRecord, now: dt.datetime) -> Identity:
        source = f"directory:{self._id}"
        values: dict[str, str | tuple[str, ...]] = {**record.attributes, "username": record.username}
        attributes = build_attributes(
            Attribute(name=name, value=value, source=source, asserted_at=now) for name, value in values.items()
        )
        return Identity(
            subject=SubjectRef(directory_issuer(self._directory.id), record.object_id),
            organisation=self._organisation,
            attributes=attributes,
            groups=tuple(sorted({g.name for g in record.groups})),
            roles=(),
            authn=AuthnContext(methods=("pwd",), assurance=AssuranceLevel.AAL1, authenticated_at=now, source=self._id),
        )


def _translate(exc: DirectoryError) -> FederationError:
    if exc.code in _CHANGE_PASSWORD:
        code = FederationErrorCode.PASSWORD_CHANGE_REQUIRED
    elif exc.code in _NOT_ACTIVE:
        code = FederationErrorCode.ACCOUNT_NOT_ACTIVE
    elif exc.code is DirectoryErrorCode.UNAVAILABLE:
        code = FederationErrorCode.SOURCE_UNAVAILABLE
    elif exc.code is DirectoryErrorCode.MISCONFIGURED:
        code = FederationErrorCode.MISCONFIGURED
    else:
        code = FederationErrorCode.INVALID_CREDENTIALS
    return FederationError(code, f"{exc.code.value}: {exc.detail}")
