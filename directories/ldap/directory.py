"""``LdapDirectory``: the ``Directory`` protocol over LDAP and Active Directory.

Authentication (RFC 4513 §5.1.3 simple bind, the "search then bind" pattern):

1. refuse a missing, empty or whitespace-only password (EMPTY_PASSWORD) before any I/O;
2. search, as the service account, for exactly one person whose configured attribute
   equals the username (escaped per RFC 4515);
3. bind as *the DN the search returned* (never a DN built from input) on a separate
   "auth" connection; for an unknown or ambiguous user, bind as a DN that cannot exist
   so the round trips are the same, and let every failure take at least
   ``min_failure_seconds`` (AD answers a wrong password far slower than an absent DN);
4. map an AD bind sub-code to its error; after a successful bind re-check the status
   attributes read in step 2 and fail closed on anything but ACTIVE;
5. read the groups and return the ``AccountRecord``.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import time
from collections.abc import Callable

from config.ldap_source import LdapSourceConfig
from directories.errors import DirectoryError, DirectoryErrorCode
from directories.ldap.attributes import first, first_text, map_attributes
from directories.ldap.filters import check_username, user_filter
from directories.ldap.groups import GroupResolver
from directories.ldap.operations import BindOutcome, Entry, search, simple_bind
from directories.ldap.pool import ConnectionPool
from directories.ldap.servers import ServerHealth
from directories.ldap.status import (
    AD_STATUS_ATTRIBUTES,
    PPOLICY_STATUS_ATTRIBUTES,
    STATUS_ERRORS,
    ad_account_status,
    ad_bind_failure,
    ppolicy_account_status,
)
from directories.records import AccountRecord, AccountStatus

log = logging.getLogger(__name__)
# Failures that say nothing about the account: no floor on how fast they are reported.
_NOT_PADDED = frozenset({DirectoryErrorCode.UNAVAILABLE, DirectoryErrorCode.MISCONFIGURED})
_COMPUTED_UAC = "msDS-User-Account-Control-Computed"


class LdapDirectory:
    """A directory served by LDAP / AD servers; implements ``directories.interfaces.Directory``.

    Thread-safe: one instance serves every thread of a worker process.
    """

    def __init__(
        self,
        config: LdapSourceConfig,
        pool: ConnectionPool,
        groups: GroupResolver,
        *,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._config = config
        self._pool = pool
        self._groups = groups
        self._now = now
        self._monotonic = monotonic
        self._sleep = sleep
        self._is_ad = config.type == "active_directory"
        self._object_id_attribute = "objectGUID" if self._is_ad else "entryUUID"
        self._attribute_map = config.effective_attribute_map
        status_attributes = AD_STATUS_ATTRIBUTES if self._is_ad else PPOLICY_STATUS_ATTRIBUTES
        self._search_attributes = tuple(
            dict.fromkeys(
                [
                    self._object_id_attribute,
                    config.user_attribute,
                    *status_attributes,
                    *groups.user_attributes,
                    *self._attribute_map.values(),
                ]
            )
        )
        # A DN under the base that names nobody: the target of the timing-equalising bind.
        self._dummy_dn = f"cn=supercloud-absent-{secrets.token_hex(8)},{config.base_dn}"

    @property
    def id(self) -> str:
        """The directory's id from configuration."""
        return self._config.id

    @property
    def organisation(self) -> str:
        """The organisation this directory serves ("" if its config names none); identities
        are keyed by it and ``object_id``."""
        return self._config.organisation or ""

    def authenticate(self, username: str, password: str) -> AccountRecord:
        """Check ``password`` for ``username``; return the account's record.

        Raises ``DirectoryError``: EMPTY_PASSWORD (missing/empty/whitespace password, no
        I/O at all), INVALID_CREDENTIALS (unknown user, wrong password, ambiguous name:
        indistinguishable to the caller, detail says which), ACCOUNT_DISABLED /
        ACCOUNT_LOCKED / ACCOUNT_EXPIRED / PASSWORD_EXPIRED / PASSWORD_MUST_CHANGE /
        LOGON_NOT_PERMITTED, UNAVAILABLE (no server answered), MISCONFIGURED.
        """
        if not isinstance(password, str) or not password.strip():
            raise DirectoryError(DirectoryErrorCode.EMPTY_PASSWORD, f"{self.id}: refused before any bind")
        started = self._monotonic()
        try:
            return self._authenticate(username, password)
        except DirectoryError as exc:
            if exc.code not in _NOT_PADDED:
                self._pad(started)
            raise

    def _authenticate(self, username: str, password: str) -> AccountRecord:
        try:
            name = check_username(username)
        except DirectoryError as exc:
            raise DirectoryError(exc.code, f"{self.id}: {exc.detail}") from None
        entry, why_not = self._find(name)
        if entry is None:
            self._bind(self._dummy_dn, password)
            raise DirectoryError(DirectoryErrorCode.INVALID_CREDENTIALS, f"{self.id}: {why_not}")
        outcome = self._bind(entry.dn, password)
        if not outcome.ok:
            raise self._bind_error(outcome)
        status = self._status(entry)
        if status is not AccountStatus.ACTIVE:
            raise DirectoryError(STATUS_ERRORS[status], f"{self.id}: bind succeeded but account is {status.value}")
        return self._record(entry, status)

    def _pad(self, started: float) -> None:
        """Sleep until ``min_failure_seconds`` have passed since ``started``.

        A directory answers "no such DN" much faster than "wrong password" (AD records
        the bad attempt), so without a floor the time of a failure tells who exists.
        """
        remaining = self._config.min_failure_seconds - (self._monotonic() - started)
        if remaining > 0:
            self._sleep(remaining)

    def lookup(self, username: str) -> AccountRecord | None:
        """Return the account's current record (status, attributes, groups), or None.

        None for an unknown, ambiguous or unsearchable username. No password is checked.
        Raises ``DirectoryError(UNAVAILABLE)`` when no server answers.
        """
        try:
            name = check_username(username)
        except DirectoryError:
            return None
        entry, why_not = self._find(name)
        if entry is None:
            log.info("directory %s: lookup found no account (%s)", self.id, why_not)
            return None
        return self._record(entry, self._status(entry))

    @property
    def config(self) -> LdapSourceConfig:
        """The validated configuration this directory was built from."""
        return self._config

    @property
    def group_resolver(self) -> GroupResolver:
        """The resolver that reads each person's groups (the configured ``group_mode``)."""
        return self._groups

    @property
    def pool(self) -> ConnectionPool:
        """The connection pool (for operations beyond sign-in, such as ``sync``)."""
        return self._pool

    def health(self) -> tuple[ServerHealth, ...]:
        """Return each server's health and circuit state, in configured order."""
        return self._pool.servers.health()

    def close(self) -> None:
        """Close pooled connections. Returns None."""
        self._pool.close()

    # -- steps -------------------------------------------------------------------------

    def _find(self, username: str) -> tuple[Entry | None, str]:
        """Return (the one matching entry, "") or (None, reason)."""
        cfg = self._config
        ldap_filter = user_filter(cfg.effective_user_object_class, cfg.user_attribute, username)
        entries = self._pool.run(
            "service",
            lambda conn: search(conn, cfg.base_dn, ldap_filter, self._search_attributes, size_limit=2),
        )
        if not entries:
            return None, "no such user"
        if len(entries) > 1:
            log.warning("directory %s: username matches several entries; refused", self.id)
            return None, "username matches several entries"
        return entries[0], ""

    def _bind(self, dn: str, password: str) -> BindOutcome:
        # AD (Samba at least) keeps the previous person's identity after a refused bind:
        # reset it, so a pooled connection never stays bound as someone past a refusal.
        return self._pool.run("auth", lambda conn: simple_bind(conn, dn, password, reset_after_refusal=self._is_ad))

    def _bind_error(self, outcome: BindOutcome) -> DirectoryError:
        if self._is_ad and outcome.result == 49:
            return ad_bind_failure(self.id, outcome.diagnostic)
        return DirectoryError(
            DirectoryErrorCode.INVALID_CREDENTIALS, f"{self.id}: bind refused ({outcome.description})"
        )

    def _status(self, entry: Entry) -> AccountStatus:
        if not self._is_ad:
            return ppolicy_account_status(entry.raw)
        raw = entry.raw
        if first(raw, _COMPUTED_UAC) is None:
            # Some DCs construct this attribute only for base-scope reads; without it a
            # lockoutTime left over from an expired lockout would look like a lockout.
            found = self._pool.run(
                "service", lambda conn: search(conn, entry.dn, "(objectClass=*)", [_COMPUTED_UAC], scope="base")
            )
            if found:
                raw = {**raw, **found[0].raw}
        return ad_account_status(raw, self._now())

    def _record(self, entry: Entry, status: AccountStatus) -> AccountRecord:
        object_id = first_text(entry.raw, self._object_id_attribute)
        if not object_id:
            raise DirectoryError(
                DirectoryErrorCode.MISCONFIGURED, f"{self.id}: entry has no {self._object_id_attribute}"
            )
        username = first_text(entry.raw, self._config.user_attribute) or ""
        groups = self._groups.without_connection(entry)
        if groups is None:  # only then borrow a service connection (member_of's graph needs none)
            groups = self._pool.run("service", lambda conn: self._groups.groups(conn, entry))
        return AccountRecord(
            directory_id=self.id,
            object_id=object_id,
            username=username,
            attributes=map_attributes(entry.raw, self._attribute_map),
            groups=groups,
            status=status,
        )
