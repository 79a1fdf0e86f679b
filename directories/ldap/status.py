"""Account status: AD bind sub-codes and account attributes, OpenLDAP ppolicy attributes.

AD reports why a simple bind failed in the diagnostic message of result 49
(``80090308: LdapErr: DSID-..., comment: AcceptSecurityContext error, data 533, v...``);
the ``data`` value is a Win32 error code (MS-ADTS §3.1.1.3.4.1.x / MS-ERREF).
"""

from __future__ import annotations

import datetime as dt
import re

from directories.errors import DirectoryError, DirectoryErrorCode
from directories.ldap.attributes import RawAttributes, first, first_int, get_all
from directories.records import AccountStatus

# userAccountControl flags (MS-ADTS §2.2.16).
UF_ACCOUNTDISABLE = 0x0002
UF_LOCKOUT = 0x0010
UF_DONT_EXPIRE_PASSWD = 0x10000
UF_PASSWORD_EXPIRED = 0x800000

#: Attributes to read from an AD account to compute its status.
AD_STATUS_ATTRIBUTES = (
    "userAccountControl",
    "msDS-User-Account-Control-Computed",
    "accountExpires",
    "pwdLastSet",
    "lockoutTime",
)
#: Operational attributes of the OpenLDAP ppolicy overlay (draft-behera-ldap-password-policy).
PPOLICY_STATUS_ATTRIBUTES = ("pwdAccountLockedTime", "pwdReset")

_NEVER = (0, 0x7FFFFFFFFFFFFFFF)
_FILETIME_EPOCH = dt.datetime(1601, 1, 1, tzinfo=dt.UTC)
_SUBCODE = re.compile(r"\bdata ([0-9a-fA-F]{1,8})\b")

#: AD bind sub-code -> (error code, audit reason).
AD_BIND_SUBCODES: dict[str, tuple[DirectoryErrorCode, str]] = {
    "525": (DirectoryErrorCode.INVALID_CREDENTIALS, "user not found (525)"),
    "52e": (DirectoryErrorCode.INVALID_CREDENTIALS, "invalid credentials (52e)"),
    "530": (DirectoryErrorCode.LOGON_NOT_PERMITTED, "logon not permitted at this time (530)"),
    "531": (DirectoryErrorCode.LOGON_NOT_PERMITTED, "logon not permitted at this workstation (531)"),
    "532": (DirectoryErrorCode.PASSWORD_EXPIRED, "password expired (532)"),
    "533": (DirectoryErrorCode.ACCOUNT_DISABLED, "account disabled (533)"),
    "701": (DirectoryErrorCode.ACCOUNT_EXPIRED, "account expired (701)"),
    "773": (DirectoryErrorCode.PASSWORD_MUST_CHANGE, "user must reset password (773)"),
    "775": (DirectoryErrorCode.ACCOUNT_LOCKED, "account locked out (775)"),
}

#: Account status -> the error an authentication attempt reports for it.
STATUS_ERRORS: dict[AccountStatus, DirectoryErrorCode] = {
    AccountStatus.DISABLED: DirectoryErrorCode.ACCOUNT_DISABLED,
    AccountStatus.LOCKED: DirectoryErrorCode.ACCOUNT_LOCKED,
    AccountStatus.EXPIRED: DirectoryErrorCode.ACCOUNT_EXPIRED,
    AccountStatus.PASSWORD_EXPIRED: DirectoryErrorCode.PASSWORD_EXPIRED,
    AccountStatus.PASSWORD_MUST_CHANGE: DirectoryErrorCode.PASSWORD_MUST_CHANGE,
}


def filetime_to_datetime(value: int) -> dt.datetime | None:
    """Return a Windows FILETIME (100 ns since 1601, UTC) as a datetime; None for "never" (0 / max)."""
    if value in _NEVER or value < 0:
        return None
    try:
        return _FILETIME_EPOCH + dt.timedelta(microseconds=value // 10)
    except OverflowError:
        return None


def ad_bind_failure(directory_id: str, diagnostic: str) -> DirectoryError:
    """Return the ``DirectoryError`` for an AD bind that failed with result 49.

    The sub-code in ``diagnostic`` selects the code; an unknown or missing sub-code is
    ``INVALID_CREDENTIALS`` (fail closed). ``detail`` carries the reason for the audit log.
    """
    match = _SUBCODE.search(diagnostic or "")
    subcode = match.group(1).lower() if match else ""
    code, reason = AD_BIND_SUBCODES.get(
        subcode, (DirectoryErrorCode.INVALID_CREDENTIALS, f"bind refused ({subcode or 'no sub-code'})")
    )
    return DirectoryError(code, f"{directory_id}: {reason}")


def ad_account_status(raw: RawAttributes, now: dt.datetime) -> AccountStatus:
    """Return an AD account's status from ``AD_STATUS_ATTRIBUTES``.

    Precedence: disabled, expired (accountExpires in the past), locked
    (msDS-User-Account-Control-Computed UF_LOCKOUT, or lockoutTime ≠ 0 when the computed
    attribute is absent), must change (pwdLastSet = 0), password expired (computed
    UF_PASSWORD_EXPIRED), else active. An unreadable userAccountControl is "disabled":
    an entry we cannot interpret may not sign in.
    """
    uac = first_int(raw, "userAccountControl")
    if uac is None or uac & UF_ACCOUNTDISABLE:
        return AccountStatus.DISABLED
    expires = first_int(raw, "accountExpires")
    expires_at = filetime_to_datetime(expires) if expires is not None else None
    if expires_at is not None and expires_at <= now:
        return AccountStatus.EXPIRED
    computed = first_int(raw, "msDS-User-Account-Control-Computed")
    if computed is not None:
        locked = bool(computed & UF_LOCKOUT)
    else:
        locked = bool(first_int(raw, "lockoutTime")) or bool(uac & UF_LOCKOUT)
    if locked:
        return AccountStatus.LOCKED
    if first_int(raw, "pwdLastSet") == 0 and not uac & UF_DONT_EXPIRE_PASSWD:
        return AccountStatus.PASSWORD_MUST_CHANGE
    if (computed or 0) & UF_PASSWORD_EXPIRED or uac & UF_PASSWORD_EXPIRED:
        return AccountStatus.PASSWORD_EXPIRED
    return AccountStatus.ACTIVE


def ppolicy_account_status(raw: RawAttributes) -> AccountStatus:
    """Return a plain-LDAP account's status from the ppolicy overlay's attributes.

    ``pwdAccountLockedTime`` present: locked; ``pwdReset: TRUE``: must change; else active.
    """
    if first(raw, "pwdAccountLockedTime") is not None:
        return AccountStatus.LOCKED
    if any(v.strip().upper() == b"TRUE" for v in get_all(raw, "pwdReset")):
        return AccountStatus.PASSWORD_MUST_CHANGE
    return AccountStatus.ACTIVE
