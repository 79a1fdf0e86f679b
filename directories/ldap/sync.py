"""Directory sync: read and map every person of an LDAP / AD directory, page by page.

``DirectorySync(directory).run(since, on_page)`` performs one subtree search with the
Simple Paged Results control (RFC 2696) on one pooled service connection, maps each entry
to an ``AccountRecord`` (object id, username, canonical attributes, status) and hands the
records to ``on_page`` a page at a time, so memory stays bounded whatever the size of the
directory. It returns the number of records and a ``SyncCursor`` for the next run.

Incremental runs (``since`` = the previous cursor) add a change clause to the filter:

* OpenLDAP: ``(modifyTimestamp>=T)`` (RFC 4512 §3.4 operational attribute, GeneralizedTime);
  the cursor is the greatest ``modifyTimestamp`` seen, but never later than the run's start
  (below). The comparison is inclusive, so entries changed in the cursor's second are
  delivered again (consumers upsert by object id).
* Active Directory: ``(uSNChanged>=N+1)`` (MS-ADTS §3.1.1.1.9); the cursor is the rootDSE's
  ``highestCommittedUSN`` (MS-ADTS §3.1.1.3.2.9) read on the same connection before the
  searches. USNs are per domain controller: the cursor names the server that produced it,
  and a run answered by another DC must start again with a full sync.

The cursor is a high-water mark taken at the *start* of the run, as Microsoft's "polling for
changes using uSNChanged" prescribes: a change made while the run goes on, to an entry the
run has already read, would otherwise be lost for good when the run later reads an entry
changed after it (the greatest stamp seen would be above the missed change). Anything changed
after the mark is read again by the next run, harmlessly (consumers upsert). OpenLDAP has no
committed-change counter, so the mark is a time: the server's clock where the service account
may read back_monitor (``cn=Current,cn=Time,cn=Monitor``, ``monitorTimestamp``; rarely
granted), else this machine's UTC clock less ``sync_clock_skew_seconds`` (default 300) for
the two clocks' disagreement. The trade-off: every incremental run re-delivers the changes
of the last ``sync_clock_skew_seconds`` (and re-reads the members of groups changed in them);
set it to the real clock skew bound (0 when slapd shares this machine's clock). The cursor's
stored form is unchanged, so cursors stored before are read as they were.

Deletions: a deleted entry simply stops matching. On Active Directory an incremental run
also asks for the tombstones changed since the cursor, with the Show Deleted control
(``1.2.840.113556.1.4.417``, MS-ADTS §3.1.1.3.4.1.14): their object ids come back in
``SyncResult.deleted``. Where the service account may not read tombstones (AD grants it
to administrators only unless delegated) and on OpenLDAP (deletions are visible only
through syncrepl/accesslog), a leaver found by absence needs a full run: the consumer
compares the ids a full run delivered with those it holds.

Groups: with ``groups=True`` each person's groups are resolved as at sign-in (configured
group mode: nested, primary group) from every group of the directory, read once per run
(``group_index``). A membership change alone does not change the person's entry: ``member``
lives on the group, so on AD adding or removing a person (or a nested group) moves only the
group's ``uSNChanged``, and OpenLDAP's memberof overlay rewrites the member's ``memberOf``
without touching its ``modifyTimestamp`` or ``entryCSN`` (both checked against the test
peers). So an incremental run also looks at the groups, in the index it reads anyway
(each group's change stamp is read with it):

* changed groups: AD ``uSNChanged`` >= N+1; OpenLDAP ``entryCSN`` greater than the greatest
  one the last run saw (``SyncCursor.group_csn``: microseconds and a counter, so a group
  changed in the cursor's second is not found again on every run), else
  ``modifyTimestamp`` >= T. Deleted groups: AD tombstones of groups (same Show Deleted search
  as for people), by their last name. A group created, renamed or deleted changes the digest
  of every group's (id, name) kept in the cursor (``group_set``); then the consumer is also
  given the name of every group there is now, so people holding a name that no longer
  exists (a group deleted on OpenLDAP, or where tombstones cannot be read) are found too;
* the people re-read are everyone now in a changed group, directly or through groups nested
  in it (from the index), and the people the consumer holds in a changed or deleted group,
  asked through the ``holders`` callback (the people just removed: only the consumer knows
  their previous groups). They are read by DN (AD ``distinguishedName``, OpenLDAP
  ``entryDN``, RFC 5020) or object id, ``REREAD_BATCH`` to an OR filter, paged, and delivered
  like changed people; ``SyncResult.reread_for_groups`` counts them;
* the cursor covers the groups: on AD ``highestCommittedUSN`` covers them; on OpenLDAP the
  greatest ``modifyTimestamp`` / ``entryCSN`` seen among people and groups, each bounded by
  the run's start as above (``entryCSN`` embeds its time to the microsecond: the bound is the
  greatest CSN possible just before that moment, so a group changed while the group index
  was being read is found again by the next run).

A change to a group's other attributes (description) re-reads its members too (unchanged
for the consumer). Sign-in and every re-check (``broker.leavers``) read groups live regardless
(with ``group_mode: member_of``: direct groups live, nesting from the cached group graph).

AD lockout is read
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
import hashlib
import logging
import re
import uuid
from collections.abc import Callable, Iterable

import ldap3

from directories.errors import DirectoryError, DirectoryErrorCode
from directories.ldap.attributes import RawAttributes, first_text, get_all, map_attributes
from directories.ldap.directory import LdapDirectory
from directories.ldap.filters import any_of, any_of_bytes
from directories.ldap.group_index import GroupIndex, normalise_dn
from directories.ldap.operations import search
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
_CSN = re.compile(r"^\d{14}\.\d+Z#[0-9a-f]+#[0-9a-f]+#[0-9a-f]+$")  # OpenLDAP entryCSN
_HEX = re.compile(r"^[0-9a-f]{0,64}$")
_MONITOR_TIME = "cn=Current,cn=Time,cn=Monitor"  # OpenLDAP back_monitor: the server's clock
#: People re-read for group changes per search: DNs or object ids in one OR filter.
REREAD_BATCH = 200


@dataclasses.dataclass(frozen=True, slots=True)
class SyncCursor:
    """Where the next incremental run starts: ``attribute`` >= ``value`` (see the module docstring)."""

    attribute: str  # "modifyTimestamp" or "uSNChanged"
    value: str
    server: str = ""
    #: OpenLDAP: the greatest ``entryCSN`` of the groups read (exact group change detection).
    group_csn: str = ""
    #: A digest of every group's (id, name) at the last run: when it differs a group was
    #: created, renamed or deleted since.
    group_set: str = ""

    def to_json(self) -> dict[str, str]:
        """Return the cursor as a JSON-able mapping (to store between runs)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, str]) -> SyncCursor:
        """Return the cursor stored by ``to_json``. Raises ValueError if malformed."""
        cursor = cls(attribute=str(data["attribute"]), value=str(data["value"]), server=str(data.get("server", "")),
                     group_csn=str(data.get("group_csn", "")), group_set=str(data.get("group_set", "")))
        if cursor.attribute == "uSNChanged" and not cursor.value.isdigit():
            raise ValueError("uSNChanged cursor must be a number")
        if cursor.attribute == "modifyTimestamp" and not _GENERALIZED_TIME.match(cursor.value):
            raise ValueError("modifyTimestamp cursor must be GeneralizedTime (YYYYmmddHHMMSSZ)")
        if cursor.attribute not in {"uSNChanged", "modifyTimestamp"}:
            raise ValueError(f"unknown cursor attribute {cursor.attribute!r}")
        if cursor.group_csn and not _CSN.match(cursor.group_csn):
            raise ValueError("group_csn must be an entryCSN")
        if not _HEX.match(cursor.group_set):
            raise ValueError("group_set must be a hex digest")
        return cursor


@dataclasses.dataclass(frozen=True, slots=True)
class GroupChanges:
    """What an incremental run found changed among groups, handed to the ``holders`` callback.

    ``names``: the names of the groups changed (members, nesting, name ...) or deleted (AD
    tombstones) since the cursor. ``current``: every group's name now, given only when a group
    was created, renamed or deleted since the last run (a stored group name outside it is gone).
    """

    names: frozenset[str]
    current: frozenset[str] | None = None


#: ``holders(changes) -> object ids``: the people the consumer holds in a group of
#: ``changes.names``, or (when ``changes.current`` is given) in a group not in it.
Holders = Callable[[GroupChanges], Iterable[str]]


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
    #: People delivered again because a group they are (or were) in changed; counted in ``records``.
    reread_for_groups: int = 0
    #: Groups changed or deleted since the cursor (incremental runs resolving groups).
    groups_changed: int = 0


@dataclasses.dataclass(slots=True)
class _Delivered:
    """The object ids and normalised DNs already delivered in this run (each person once)."""

    ids: set[str] = dataclasses.field(default_factory=set)
    dns: set[str] = dataclasses.field(default_factory=set)

    def add(self, object_id: str, dn: str) -> None:
        self.ids.add(object_id)
        self.dns.add(normalise_dn(dn))


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
        self._batch = min(page_size, REREAD_BATCH)
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
        self._group_stamps = ("uSNChanged",) if self._is_ad else ("modifyTimestamp", "entryCSN")
        self._attributes = tuple(dict.fromkeys([
            self._object_id_attribute, self._config.user_attribute, self._change_attribute,
            *status, *primary, *self._attribute_map.values(),
        ]))

    def run(
        self, on_page: Callable[[list[AccountRecord]], None], since: SyncCursor | None = None,
        holders: Holders | None = None,
    ) -> SyncResult:
        """Deliver every person (changed since ``since``, or all) to ``on_page``; return the result.

        With groups resolved, an incremental run also delivers the people whose groups may
        have changed: everyone now in a changed group, and the people ``holders`` returns for
        the changed / deleted groups (those the consumer holds in them: the ones just removed).
        ``holders`` may be called once per run, after the changed people were delivered.

        Raises ``DirectoryError``: UNAVAILABLE (no server could run the search),
        MISCONFIGURED (the server refused it, e.g. no paging or no read access).
        """
        if since is not None and since.attribute != self._change_attribute:
            raise DirectoryError(DirectoryErrorCode.MISCONFIGURED, f"{self._config.id}: cursor is for {since.attribute}")
        return self._directory.pool.run("service", lambda conn: self._paged(conn, on_page, since, holders))

    def _filter(self, since: SyncCursor | None, clause: str = "") -> str:
        """Return the person filter: changed since ``since`` (if given), and matching ``clause``."""
        cfg = self._config
        clauses = [f"(objectClass={cfg.effective_user_object_class})", f"({cfg.user_attribute}=*)"]
        if cfg.effective_user_object_class == "user":
            clauses.insert(0, "(objectCategory=person)")
        if since is not None:
            if self._is_ad:
                clauses.append(f"(uSNChanged>={int(since.value) + 1})")
            else:
                clauses.append(f"(modifyTimestamp>={since.value})")  # validated GeneralizedTime, no escaping needed
        if clause:
            clauses.append(clause)
        return "(&" + "".join(clauses) + ")"

    def _paged(
        self,
        conn: ldap3.Connection,
        on_page: Callable[[list[AccountRecord]], None],
        since: SyncCursor | None,
        holders: Holders | None,
    ) -> SyncResult:
        server = self.server = server_url(conn)
        if since is not None and self._is_ad and since.server and since.server != server:
            log.info("directory %s: cursor is from another domain controller; running a full sync", self._config.id)
            since = None
        # the high-water mark is taken before anything is read: a change committed while the
        # run goes on (to an entry already read) is then above the next cursor, never below
        start, csn_bound = self._start_mark(conn)
        index = (GroupIndex.read(conn, self._config, self._page_size, stamps=self._group_stamps)
                 if self._resolve_groups else None)
        high = since.value if since is not None else ""
        group_csn = since.group_csn if since is not None else ""
        for _, _, stamps in index.stamped() if index is not None else ():
            if _newer(stamps[0], high, numeric=self._is_ad):
                high = stamps[0]
            if not self._is_ad and stamps[1] > group_csn:
                group_csn = stamps[1]
        # who was delivered, so a group re-read skips them (incremental runs only: a full run
        # re-reads no one, and its memory stays one page whatever the size of the directory)
        delivered = _Delivered() if index is not None and since is not None else None
        now = self._now()
        total, pages, high = self._deliver(conn, self._filter(since), on_page, index, now, delivered, high=high)
        deleted: tuple[str, ...] = ()
        deleted_groups: tuple[str, ...] = ()
        checked = False
        if self._is_ad and since is not None:
            deleted, deleted_groups, checked = self._tombstones(conn, since)
        reread = groups_changed = 0
        if index is not None and since is not None and delivered is not None:
            reread, groups_changed = self._reread_for_groups(
                conn, on_page, index, since, deleted_groups, holders, now, delivered)
            total += reread
        log.info("directory %s: sync delivered %d records in %d pages (%d re-read for %d group changes), "
                 "%d deletions", self._config.id, total, pages, reread, groups_changed, len(deleted))
        group_set = _group_set_digest(index) if index is not None else ""
        if self._is_ad:
            high = start  # highestCommittedUSN before the searches, not the greatest uSNChanged seen
        elif high:
            high = min(high, start)  # never past the run's start (both GeneralizedTime, compared as text)
            if group_csn:
                group_csn = min(group_csn, csn_bound)  # entryCSN: same rule, to the microsecond
        cursor = (SyncCursor(self._change_attribute, high, server=server, group_csn=group_csn, group_set=group_set)
                  if high else None)
        return SyncResult(records=total, pages=pages, cursor=cursor, full=since is None, server=server,
                          deleted=deleted, deletions_checked=checked, reread_for_groups=reread,
                          groups_changed=groups_changed)

    def _start_mark(self, conn: ldap3.Connection) -> tuple[str, str]:
        """Return (high-water mark, entryCSN bound) of a run starting now, read before its searches.

        Active Directory: the rootDSE's ``highestCommittedUSN`` (MS-ADTS §3.1.1.3.2.9), as
        Microsoft's "polling for changes using uSNChanged" prescribes (no CSN bound: "").
        OpenLDAP: the server's clock (``monitorTimestamp`` of ``cn=Current,cn=Time,cn=Monitor``,
        to the second) where the service account may read back_monitor, else this machine's UTC
        clock less ``sync_clock_skew_seconds`` (to the microsecond); the mark is that moment as
        GeneralizedTime rounded down to the second, the bound an entryCSN just below it.

        Raises ``ServerFailure`` (the server went away), ``DirectoryError`` MISCONFIGURED (an
        AD rootDSE without ``highestCommittedUSN``).
        """
        if self._is_ad:
            root = search(conn, "", "(objectClass=*)", ["highestCommittedUSN"], scope="base")
            usn = (first_text(root[0].raw, "highestCommittedUSN") or "") if root else ""
            if not usn.isdigit():
                raise DirectoryError(DirectoryErrorCode.MISCONFIGURED,
                                     f"{self._config.id}: the rootDSE gives no highestCommittedUSN")
            return usn, ""
        try:
            clock = search(conn, _MONITOR_TIME, "(objectClass=*)", ["monitorTimestamp"], scope="base")
        except DirectoryError:  # back_monitor refused to this account: this machine's clock instead
            clock = []
        stamp = (first_text(clock[0].raw, "monitorTimestamp") or "") if clock else ""
        if _GENERALIZED_TIME.match(stamp):
            moment = dt.datetime.strptime(stamp[:14], "%Y%m%d%H%M%S").replace(tzinfo=dt.UTC)
        else:
            moment = self._now() - dt.timedelta(seconds=self._config.sync_clock_skew_seconds)
        return f"{moment.astimezone(dt.UTC):%Y%m%d%H%M%S}Z", _csn_below(moment)

    def _deliver(
        self,
        conn: ldap3.Connection,
        ldap_filter: str,
        on_page: Callable[[list[AccountRecord]], None],
        index: GroupIndex | None,
        now: dt.datetime,
        delivered: _Delivered | None,
        *,
        high: str | None,
    ) -> tuple[int, int, str]:
        """Run one paged person search; hand every person not in ``delivered`` to ``on_page``
        (and add them to it).

        Returns (records delivered, pages, the greatest change stamp seen from ``high`` on; ""
        when ``high`` is None: a re-read does not move the cursor, as people changed meanwhile
        but not read would be skipped by the next run).
        """
        cookie: bytes | None = None
        total = pages = 0
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
                if record is not None and (delivered is None or record.object_id not in delivered.ids):
                    if index is not None:
                        record = dataclasses.replace(record, groups=index.groups_of(item["dn"], raw))
                    records.append(record)
                    stamps[record.object_id] = change
                    if delivered is not None:
                        delivered.add(record.object_id, item["dn"])
                if high is not None and _newer(change, high, numeric=self._is_ad):
                    high = change
            if records:
                self.page_changes = stamps
                on_page(records)
                total += len(records)
            pages += 1
            controls = result.get("controls") or {}
            cookie = controls.get(_PAGED_RESULTS, {}).get("value", {}).get("cookie") or None
            if not cookie:
                return total, pages, high or ""

    def _reread_for_groups(
        self,
        conn: ldap3.Connection,
        on_page: Callable[[list[AccountRecord]], None],
        index: GroupIndex,
        since: SyncCursor,
        deleted_groups: tuple[str, ...],
        holders: Holders | None,
        now: dt.datetime,
        delivered: _Delivered,
    ) -> tuple[int, int]:
        """Re-read the people whose groups may have changed since ``since``; return (people
        re-read, groups changed or deleted).

        They are everyone now in a changed group (directly or through nested groups), and the
        people ``holders`` names (those the consumer holds in a changed or deleted group, or in
        a group that no longer exists). Read in batches of DNs / object ids, paged.
        """
        changed = [(key, ref) for key, ref, stamps in index.stamped() if self._group_changed(stamps, since)]
        names = frozenset({ref.name for _, ref in changed} | set(deleted_groups))
        current = None
        if since.group_set != _group_set_digest(index):  # a group was created, renamed or deleted
            current = frozenset(ref.name for _, ref, _ in index.stamped())
        reread = 0
        dns = [dn for dn in index.members_under(key for key, _ in changed) if dn not in delivered.dns]
        dn_attribute = "distinguishedName" if self._is_ad else "entryDN"  # AD; RFC 5020 (OpenLDAP)
        for start in range(0, len(dns), self._batch):
            clause = any_of(dn_attribute, dns[start:start + self._batch])
            reread += self._deliver(conn, self._filter(None, clause), on_page, index, now, delivered, high=None)[0]
        if holders is not None and (names or current is not None):
            ids = [i for i in dict.fromkeys(holders(GroupChanges(names=names, current=current)))
                   if i not in delivered.ids]
            for start in range(0, len(ids), self._batch):
                clause = self._id_clause(ids[start:start + self._batch])
                if clause:
                    reread += self._deliver(conn, self._filter(None, clause), on_page, index, now, delivered,
                                            high=None)[0]
        return reread, len(names)

    def _group_changed(self, stamps: tuple[str, ...], since: SyncCursor) -> bool:
        if self._is_ad:
            return _newer(stamps[0], since.value, numeric=True)
        change, csn = stamps
        if since.group_csn and csn:
            return csn > since.group_csn  # exact: microseconds and a counter
        return bool(change) and change >= since.value  # inclusive, as for people

    def _id_clause(self, object_ids: list[str]) -> str:
        """Return ``(|(objectGUID=...)...)`` / ``(|(entryUUID=...)...)`` for ``object_ids`` ("" if
        none is a well-formed id)."""
        if not self._is_ad:
            return any_of("entryUUID", object_ids) if object_ids else ""
        guids = []
        for object_id in object_ids:
            try:
                guids.append(uuid.UUID(object_id).bytes_le)
            except ValueError:
                log.warning("directory %s: stored object id is not a GUID; not re-read", self._config.id)
        return any_of_bytes("objectGUID", guids) if guids else ""

    def _tombstones(
        self, conn: ldap3.Connection, since: SyncCursor
    ) -> tuple[tuple[str, ...], tuple[str, ...], bool]:
        """Return (object ids of user tombstones changed since ``since``, last names of group
        tombstones under the group base (when groups are resolved), searched?).

        A refusal (no right to read deleted objects) is not an error: deletions are then
        found by the next full run (groups: by the group set changing, see the module docstring).
        """
        classes = "(|(objectClass=user)(objectClass=group))" if self._resolve_groups else "(objectClass=user)"
        ldap_filter = f"(&(isDeleted=TRUE){classes}(uSNChanged>={int(since.value) + 1}))"
        group_base = normalise_dn(self._config.group_base_dn or self._config.base_dn)
        ids: list[str] = []
        names: list[str] = []
        cookie: bytes | None = None
        while True:
            conn.search(
                self._config.base_dn, ldap_filter, search_scope=ldap3.SUBTREE,
                attributes=["objectGUID", "uSNChanged", "objectClass", "cn", "msDS-LastKnownRDN", "lastKnownParent"],
                controls=[(_SHOW_DELETED, True, None)], paged_size=self._page_size, paged_cookie=cookie,
            )
            result = conn.result or {}
            if result.get("result") in SERVER_DOWN_RESULTS:
                raise ServerFailure(f"tombstone search answered {result.get('description')}")
            if result.get("result") != 0:
                log.info("directory %s: tombstones not readable (%s)", self._config.id, result.get("description"))
                return (), (), False
            for item in conn.response or ():
                if item.get("type") != "searchResEntry":
                    continue
                raw = dict(item.get("raw_attributes") or {})
                if b"group" in {c.lower() for c in get_all(raw, "objectClass")}:
                    parent = normalise_dn(first_text(raw, "lastKnownParent") or "")
                    name = _last_known_name(raw)
                    if name and (not parent or parent == group_base or parent.endswith("," + group_base)):
                        names.append(name)
                else:
                    object_id = first_text(raw, "objectGUID")
                    if object_id:
                        ids.append(object_id)
            cookie = (result.get("controls") or {}).get(_PAGED_RESULTS, {}).get("value", {}).get("cookie") or None
            if not cookie:
                return tuple(dict.fromkeys(ids)), tuple(dict.fromkeys(names)), True

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


def _group_set_digest(index: GroupIndex) -> str:
    """Return a digest of every group's (id, name): it changes when a group is created, renamed
    or deleted (not when members change)."""
    pairs = sorted(f"{ref.id}\t{ref.name}" for _, ref, _ in index.stamped())
    return hashlib.sha256("\n".join(pairs).encode("utf-8")).hexdigest()[:32]


def _last_known_name(raw: RawAttributes) -> str:
    """Return a tombstone's name before deletion: ``msDS-LastKnownRDN``, else its ``cn`` without
    the ``\\nDEL:<guid>`` of its delete-mangled RDN (MS-ADTS §3.1.1.5.5.6.1)."""
    name = first_text(raw, "msDS-LastKnownRDN") or first_text(raw, "cn") or ""
    return name.split("\nDEL:", 1)[0]


def _csn_below(moment: dt.datetime) -> str:
    """Return the greatest ``entryCSN`` OpenLDAP could stamp before ``moment``: its previous
    microsecond with the greatest counter, server id and modifier number (a CSN is
    ``YYYYmmddHHMMSS.ffffffZ#counter#sid#mod``, ordered as text)."""
    before = moment.astimezone(dt.UTC) - dt.timedelta(microseconds=1)
    return f"{before:%Y%m%d%H%M%S.%f}Z#ffffff#fff#ffffff"


def _newer(value: str, than: str, *, numeric: bool) -> bool:
    if not value:
        return False
    if not than:
        return True
    if numeric:
        return value.isdigit() and int(value) > int(than)
    return value > than  # GeneralizedTime of one server compares as text
