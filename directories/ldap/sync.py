"""Directory sync: read and map every person of an LDAP / AD directory, page by page.

``DirectorySync(directory).run(since, on_page)`` performs one subtree search with the
Simple Paged Results control (RFC 2696) on one pooled service connection, maps each entry
to an ``AccountRecord`` (object id, username, canonical attributes, status) and hands the
records to ``on_page`` a page at a time, so memory stays bounded whatever the size of the
directory. It returns the number of records and a ``SyncCursor`` for the next run.

Incremental runs (``since`` = the previous cursor) add a change clause to the filter:

* OpenLDAP: ``(modifyTimestamp>=T)`` (RFC 4512 §3.4 operational attribute, GeneralizedTime);
  the cursor is the greatest ``modifyTimestamp`` seen. The comparison is inclusive, so
  entries changed in the cursor's second are delivered again (consumers upsert by object id).
* Active Directory: ``(uSNChanged>=N+1)`` (MS-ADTS §3.1.1.1.9); the cursor is the greatest
  ``uSNChanged`` seen. USNs are per domain controller: the cursor names the server that
  produced it, and a run answered by another DC must start again with a full sync.

Deletions: a deleted entry simply stops matching. On Active Directory an incremental run
also asks for the tombstones changed since the cursor, with the Show Deleted control
(``1.2.840.113556.1.4.417``, MS-ADTS §3.1.1.3.4.1.14): their object ids come back in
``SyncResult.deleted``. Where the service account may not read tombstones (AD grants it
to administrators only unless delegated) and on OpenLDAP (deletions are visible only
through syncrepl/accesslog), a leaver found by absence needs a full run: the consumer
compares the ids a full run delivered with those it holds. With ``groups=True`` each
person's groups are resolved as at sign-in (configured group mode: nested, primary group)
from every group of the directory, read once per run (``group_index``);
on AD a membership change alone does not change the person's ``uSNChanged`` (``member``
lives on the group), so an incremental run sees it only when something else about the
person changed, a full run always. Sign-in and every re-check (``broker.leavers``) read
groups live regardless (with ``group_mode: member_of``: direct groups live, nesting from
the cached group graph). AD lockout is read
from the attributes returned by the subtree search (``lockoutTime``), so an expired lockout
may still read as LOCKED here; the live checks use the computed attribute. An OpenLDAP
account locked by an administrator (ppolicy ``pwdAccountLockedTime: 000001010000Z``, a
lock that never expires, draft-behera-ldap-password-policy §5.3.3) reads as DISABLED.

USNs are per domain controller: an incremental AD run whose cursor names another server
than the one answering is run as a full run instead (``SyncResult.full`` says so).

A server failure mid-run fails over to the next server and restarts the search there, so
pages may be delivered twice: ``on_page`` must be idempotent. Nothing is logged but counts.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import re
from collections.abc import Callable

import ldap3

from directories.errors import DirectoryError, DirectoryErrorCode
from directories.ldap.attributes import first_text, map_attributes
from directories.ldap.directory import LdapDirectory
from directories.ldap.group_index import GroupIndex
from directories.ldap.status import AD_STATUS_ATTRIBUTES, PPOLICY_STATUS_ATTRIBUTES, ad_account_status, ppolicy_account_status
from directories.ldap.transport import SERVER_DOWN_RESULTS, ServerFailure
from directories.records import AccountRecord, AccountStatus

log = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE = 500
_PAGED_RESULTS = "1.2.840.113556.1.4.319"  # RFC 2696
_SIZE_LIMIT_EXCEEDED = 4  # RFC 4511 §4.1.9
_SHOW_DELETED = "1.2.840.113556.1.4.417"  # MS-ADTS §3.1.1.3.4.1.14 LDAP_SERVER_SHOW_DELETED_OID
_PERMANENT_LOCK = "000001010000Z"  # ppolicy: locked by an administrator until unlocked
_GENERALIZED_TIME = re.compile(r"^\d{14}(?:\.\d+)?Z$")


@dataclasses.dataclass(frozen=True, slots=True)
class SyncCursor:
    """Where the next incremental run starts: ``attribute`` >= ``value`` (see the module docstring)."""

    attribute: str  # "modifyTimestamp" or "uSNChanged"
    value: str
    server: str = ""

    def to_json(self) -> dict[str, str]:
        """Return the cursor as a JSON-able mapping (to store between runs)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, str]) -> SyncCursor:
        """Return the cursor stored by ``to_json``. Raises ValueError if malformed."""
        cursor = cls(attribute=str(data["attribute"]), value=str(data["value"]), server=str(data.get("server", "")))
        if cursor.attribute == "uSNChanged" and not cursor.value.isdigit():
            raise ValueError("uSNChanged cursor must be a number")
        if cursor.attribute == "modifyTimestamp" and not _GENERALIZED_TIME.match(cursor.value):
            raise ValueError("modifyTimestamp cursor must be GeneralizedTime (YYYYmmddHHMMSSZ)")
        if cursor.attribute not in {"uSNChanged", "modifyTimestamp"}:
            raise ValueError(f"unknown cursor attribute {cursor.attribute!r}")
        return cursor


@dataclasses.dataclass(frozen=True, slots=True)
class SyncResult:
    """What one run did: records delivered, pages, the cursor for the next run.

    ``full`` is True when every person was read (so absence means deletion); ``server`` is
    the URL of the server that answered; ``deleted`` holds the object ids of AD tombstones
    changed since the cursor, and ``deletions_checked`` whether that search could be made.
    """

    records: int
    pages: int
    cursor: SyncCursor | None
    full: bool
    server: str = ""
    deleted: tuple[str, ...] = ()
    deletions_checked: bool = False


class DirectorySync:
    """Full and incremental reads of every person in one ``LdapDirectory``."""

    def __init__(
        self,
        directory: LdapDirectory,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        groups: bool = False,
    ) -> None:
        """``groups``: also resolve each person's groups (nested, primary group) as a sign-in
        would with the directory's group mode, from every group read once per run (``GroupIndex``)."""
        if not 1 <= page_size <= 5000:
            raise ValueError("page_size must be between 1 and 5000")
        self._directory = directory
        self._config = directory.config
        self._page_size = page_size
        self._now = now
        self._is_ad = self._config.type == "active_directory"
        #: While ``on_page`` runs: object id -> the change stamp (uSNChanged / modifyTimestamp) read.
        self.page_changes: dict[str, str] = {}
        #: The URL of the server answering the current (or last) run.
        self.server = ""
        self._object_id_attribute = "objectGUID" if self._is_ad else "entryUUID"
        self._change_attribute = "uSNChanged" if self._is_ad else "modifyTimestamp"
        self._attribute_map = self._config.effective_attribute_map
        status = AD_STATUS_ATTRIBUTES if self._is_ad else PPOLICY_STATUS_ATTRIBUTES
        self._resolve_groups = groups and self._config.effective_group_mode != "none"
        primary = ("primaryGroupID", "objectSid") if self._is_ad and self._resolve_groups else ()
        self._attributes = tuple(dict.fromkeys([
            self._object_id_attribute, self._config.user_attribute, self._change_attribute,
            *status, *primary, *self._attribute_map.values(),
        ]))

    def run(self, on_page: Callable[[list[AccountRecord]], None], since: SyncCursor | None = None) -> SyncResult:
        """Deliver every person (changed since ``since``, or all) to ``on_page``; return the result.

        Raises ``DirectoryError``: UNAVAILABLE (no server could run the search),
        MISCONFIGURED (the server refused it, e.g. no paging or no read access).
        """
        if since is not None and since.attribute != self._change_attribute:
            raise DirectoryError(DirectoryErrorCode.MISCONFIGURED, f"{self._config.id}: cursor is for {since.attribute}")
        return self._directory.pool.run("service", lambda conn: self._paged(conn, on_page, since))

    def _filter(self, since: SyncCursor | None) -> str:
        cfg = self._config
        clauses = [f"(objectClass={cfg.effective_user_object_class})", f"({cfg.user_attribute}=*)"]
        if cfg.effective_user_object_class == "user":
            clauses.insert(0, "(objectCategory=person)")
        if since is not None:
            if self._is_ad:
                clauses.append(f"(uSNChanged>={int(since.value) + 1})")
            else:
                clauses.append(f"(modifyTimestamp>={since.value})")  # validated GeneralizedTime, no escaping needed
        return "(&" + "".join(clauses) + ")"

    def _paged(
        self,
        conn: ldap3.Connection,
        on_page: Callable[[list[AccountRecord]], None],
        since: SyncCursor | None,
    ) -> SyncResult:
        server = self.server = server_url(conn)
        if since is not None and self._is_ad and since.server and since.server != server:
            log.info("directory %s: cursor is from another domain controller; running a full sync", self._config.id)
            since = None
        ldap_filter = self._filter(since)
        index = GroupIndex.read(conn, self._config, self._page_size) if self._resolve_groups else None
        cookie: bytes | None = None
        high = since.value if since is not None else ""
        total = pages = 0
        now = self._now()
        while True:
            conn.search(
                self._config.base_dn, ldap_filter, search_scope=ldap3.SUBTREE, attributes=list(self._attributes),
                paged_size=self._page_size, paged_cookie=cookie,
            )
            result = conn.result or {}
            code = result.get("result")
            if code in SERVER_DOWN_RESULTS:
                raise ServerFailure(f"paged search answered {result.get('description')}")
            if code == _SIZE_LIMIT_EXCEEDED:
                # Never return a truncated directory as if it were complete: a sync that
                # silently stops at the limit would make everyone beyond it look deleted.
                raise DirectoryError(
                    DirectoryErrorCode.MISCONFIGURED,
                    f"{self._config.id}: the server stopped the paged search at its size limit; allow the service "
                    "account unlimited paged results (OpenLDAP: limits ... size.prtotal=unlimited; AD: MaxPageSize "
                    "is per page and is not the problem)",
                )
            if code != 0:
                raise DirectoryError(
                    DirectoryErrorCode.MISCONFIGURED,
                    f"{self._config.id}: paged search failed: {result.get('description')} {result.get('message', '')}".strip(),
                )
            records = []
            stamps: dict[str, str] = {}
            for item in conn.response or ():
                if item.get("type") != "searchResEntry":
                    continue
                raw = dict(item.get("raw_attributes") or {})
                record = self._record(raw, now)
                change = first_text(raw, self._change_attribute) or ""
                if record is not None:
                    if index is not None:
                        record = dataclasses.replace(record, groups=index.groups_of(item["dn"], raw))
                    records.append(record)
                    stamps[record.object_id] = change
                if _newer(change, high, numeric=self._is_ad):
                    high = change
            if records:
                self.page_changes = stamps
                on_page(records)
                total += len(records)
            pages += 1
            controls = result.get("controls") or {}
            cookie = controls.get(_PAGED_RESULTS, {}).get("value", {}).get("cookie") or None
            if not cookie:
                break
        deleted: tuple[str, ...] = ()
        checked = False
        if self._is_ad and since is not None:
            deleted, checked, high = self._tombstones(conn, since, high)
        log.info("directory %s: sync delivered %d records in %d pages, %d deletions", self._config.id, total, pages,
                 len(deleted))
        cursor = SyncCursor(self._change_attribute, high, server=server) if high else None
        return SyncResult(records=total, pages=pages, cursor=cursor, full=since is None, server=server,
                          deleted=deleted, deletions_checked=checked)

    def _tombstones(self, conn: ldap3.Connection, since: SyncCursor, high: str) -> tuple[tuple[str, ...], bool, str]:
        """Return (object ids of user tombstones changed since ``since``, searched?, new high USN).

        A refusal (no right to read deleted objects) is not an error: deletions are then
        found by the next full run.
        """
        ldap_filter = f"(&(isDeleted=TRUE)(objectClass=user)(uSNChanged>={int(since.value) + 1}))"
        ids: list[str] = []
        cookie: bytes | None = None
        while True:
            conn.search(
                self._config.base_dn, ldap_filter, search_scope=ldap3.SUBTREE,
                attributes=["objectGUID", "uSNChanged"], controls=[(_SHOW_DELETED, True, None)],
                paged_size=self._page_size, paged_cookie=cookie,
            )
            result = conn.result or {}
            if result.get("result") in SERVER_DOWN_RESULTS:
                raise ServerFailure(f"tombstone search answered {result.get('description')}")
            if result.get("result") != 0:
                log.info("directory %s: tombstones not readable (%s)", self._config.id, result.get("description"))
                return (), False, high
            for item in conn.response or ():
                if item.get("type") != "searchResEntry":
                    continue
                raw = dict(item.get("raw_attributes") or {})
                object_id = first_text(raw, "objectGUID")
                if object_id:
                    ids.append(object_id)
                change = first_text(raw, "uSNChanged") or ""
                if _newer(change, high, numeric=True):
                    high = change
            cookie = (result.get("controls") or {}).get(_PAGED_RESULTS, {}).get("value", {}).get("cookie") or None
            if not cookie:
                return tuple(dict.fromkeys(ids)), True, high

    def _record(self, raw: dict[str, list[bytes]], now: dt.datetime) -> AccountRecord | None:
        object_id = first_text(raw, self._object_id_attribute)
        username = first_text(raw, self._config.user_attribute)
        if not object_id or not username:
            return None
        status = ad_account_status(raw, now) if self._is_ad else ppolicy_account_status(raw)
        if status is AccountStatus.LOCKED and not self._is_ad and first_text(raw, "pwdAccountLockedTime") == _PERMANENT_LOCK:
            status = AccountStatus.DISABLED
        return AccountRecord(
            directory_id=self._config.id,
            object_id=object_id,
            username=username,
            attributes=map_attributes(raw, self._attribute_map),
            groups=(),
            status=status,
        )


def server_url(conn: ldap3.Connection) -> str:
    """Return the URL (``ldaps://host:port``) of the server ``conn`` talks to."""
    server = conn.server
    return f"{'ldaps' if server.ssl else 'ldap'}://{server.host}:{server.port}"


def _newer(value: str, than: str, *, numeric: bool) -> bool:
    if not value:
        return False
    if not than:
        return True
    if numeric:
        return value.isdigit() and int(value) > int(than)
    return value > than  # GeneralizedTime of one server compares as text
