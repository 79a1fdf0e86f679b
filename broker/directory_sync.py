"""``supercloud directories sync``: import each organisation's directory people, end leavers' access.

For every LDAP / AD source of an organisation, ``DirectorySyncService.sync`` runs
``directories.ldap.sync.DirectorySync`` from the stored watermark (a full run when there is
none, when ``full`` is asked, or when an AD cursor names another domain controller), stores
each page in the identity store (``broker.directory_people``) and then:

* a person whose account reads disabled or expired (AD ``userAccountControl`` /
  ``accountExpires``, OpenLDAP ppolicy administrator lock), or who was deleted (an AD
  tombstone seen with the Show Deleted control, or absent from a full run), is a leaver:
  every SSO session of theirs is ended and their tokens revoked, with back-channel logout
  to the applications (``end_sessions``, i.e. ``OidcProvider.end_sessions_for_subject``);
  done once per leaving (idempotent: the next run does nothing more for them);
* the watermark is saved only after the whole run succeeded, so a failed run is repeated.

Each person's groups are resolved as at sign-in (nested, primary group) and stored with
their attributes (``groups``), so ``supercloud policy who-can / what-can`` see the teams and
job roles a sign-in would give them (``broker.identity_store``). A membership change moves
the group, not the person, so an incremental run also re-reads the people whose groups may
have changed: ``DirectorySync`` finds everyone now in a changed group, and asks this service
(its ``holders`` callback) for the people the store holds in a changed or deleted group —
those just removed (``DirectoryPeople.holding_groups``); the report line counts them.

A full run that would remove more than ``max_removed_fraction`` of a directory's people is
refused (nothing is marked deleted, no access ended, audited): a base DN or filter typo
must not look like a mass leaving. ``--allow-mass-removal`` lifts it for one run.

Every run is audited once per directory with counts only (``directory_sync``); every
ended person by ``subject_sessions_ended`` (their broker subject, not their name).
Organisations are never crossed: a run for one organisation reads its own sources and
touches only its own people.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable

from broker.audit import AuditEvent
from broker.directory_people import DELETED, GROUPS_ATTRIBUTE, DirectoryPeople, PersonChange
from config import Settings
from config.ldap_source import LdapSourceConfig
from directories.errors import DirectoryError, DirectoryErrorCode
from directories.ldap import LdapDirectory, build_ldap_directory
from directories.ldap.sync import DirectorySync, GroupChanges, SyncCursor
from federation.directory_source import directory_issuer

log = logging.getLogger(__name__)

#: ``end_sessions(subject_id, reason) -> sessions ended``.
EndSessions = Callable[[str, str], int]
DEFAULT_MAX_REMOVED_FRACTION = 0.5


@dataclasses.dataclass
class DirectorySyncReport:
    """What one directory's run did (counts only)."""

    organisation: str
    directory_id: str
    full: bool = False
    server: str = ""
    read: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    disabled: int = 0
    deleted: int = 0
    leavers: int = 0
    sessions_ended: int = 0
    deletions_checked: bool = False
    #: People read again (incremental runs) because a group they are or were in changed.
    reread_for_groups: int = 0
    error: str | None = None

    def line(self) -> str:
        """Return the one-line summary printed by the CLI."""
        if self.error:
            return f"✗ {self.organisation}/{self.directory_id}: sync failed: {self.error}"
        kind = "full" if self.full else "incremental"
        deletions = "" if self.full or self.deletions_checked else " (deletions are found by the next full run)"
        groups = "" if self.full else f" ({self.reread_for_groups} for group changes)"
        return (
            f"✓ {self.organisation}/{self.directory_id}: {kind} sync from {self.server}: {self.read} read{groups}, "
            f"{self.new} new, {self.changed} changed, {self.unchanged} unchanged, {self.disabled} disabled, "
            f"{self.deleted} deleted; {self.leavers} leavers, {self.sessions_ended} sessions ended{deletions}"
        )


class DirectorySyncService:
    """Runs directory syncs for the organisations of ``settings``."""

    def __init__(
        self,
        settings: Settings,
        people: DirectoryPeople,
        end_sessions: EndSessions,
        audit: Callable[[AuditEvent], object],
        *,
        build: Callable[[LdapSourceConfig], LdapDirectory] = build_ldap_directory,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        page_size: int = 500,
    ) -> None:
        self._settings = settings
        self._people = people
        self._end_sessions = end_sessions
        self._audit = audit
        self._build = build
        self._now = now
        self._page_size = page_size

    def directories(self, organisation: str | None = None) -> list[tuple[str, LdapSourceConfig]]:
        """Return ``ldap_sources(settings, organisation)``."""
        return ldap_sources(self._settings, organisation)

    def sync(
        self, organisation: str | None = None, *, full: bool = False, actor: str = "directory-sync",
        allow_mass_removal: bool = False, max_removed_fraction: float = DEFAULT_MAX_REMOVED_FRACTION,
    ) -> list[DirectorySyncReport]:
        """Sync every LDAP / AD directory of ``organisation`` (or of all); return one report each.

        A directory that fails (unreachable, misconfigured) is reported and audited; the
        others still run. Raises KeyError for an unknown organisation.
        """
        reports = []
        for org_id, cfg in self.directories(organisation):
            report = DirectorySyncReport(org_id, cfg.id)
            try:
                directory = self._build(cfg)
            except DirectoryError as exc:
                report.error = exc.detail
            else:
                try:
                    self._run(directory, report, full=full, actor=actor, allow_mass_removal=allow_mass_removal,
                              max_removed_fraction=max_removed_fraction)
                except DirectoryError as exc:
                    report.error = exc.detail
                finally:
                    directory.close()
            self._audit(AuditEvent(
                "directory_sync", "failure" if report.error else "success", actor=actor,
                details={k: v for k, v in dataclasses.asdict(report).items() if v is not None},
            ))
            reports.append(report)
        return reports

    def _run(
        self, directory: LdapDirectory, report: DirectorySyncReport, *, full: bool, actor: str,
        allow_mass_removal: bool, max_removed_fraction: float,
    ) -> None:
        org, directory_id = report.organisation, report.directory_id
        stored = None if full else self._people.cursor(org, directory_id)
        try:
            since = SyncCursor.from_json(stored) if stored else None
        except (KeyError, ValueError):
            log.warning("directory %s: stored sync cursor is unreadable; running a full sync", directory_id)
            since = None
        sync = DirectorySync(directory, page_size=self._page_size, groups=True)
        now = self._now()
        seen: set[str] = set()
        leavers: list[PersonChange] = []

        def on_page(records):  # type: ignore[no-untyped-def]
            changes = self._people.store(org, records, server=sync.server, changes=sync.page_changes, now=now)
            for change in changes:
                seen.add(change.object_id)
                setattr(report, change.kind, getattr(report, change.kind) + 1)
                if change.leaver:
                    leavers.append(change)

        def holders(changes: GroupChanges) -> list[str]:
            return self._people.holding_groups(org, directory_id, changes.names, known=changes.current)

        resolved = GROUPS_ATTRIBUTE not in directory.config.effective_attribute_map  # else stored groups are mapped
        result = sync.run(on_page, since, holders if resolved else None)
        report.full, report.server, report.read = result.full, result.server, result.records
        report.reread_for_groups = result.reread_for_groups
        report.deletions_checked = result.deletions_checked
        deleted: list[PersonChange] = []
        if result.full:
            absent = self._people.absent(org, directory_id, seen)
            total = len(seen) + len(absent)
            if absent and not allow_mass_removal and len(absent) > max_removed_fraction * total:
                raise _mass_removal(directory_id, len(absent), total)
            deleted = self._people.mark_deleted(org, directory_id, absent, now=now)
        elif result.deleted:
            deleted = self._people.mark_deleted(org, directory_id, result.deleted, now=now)
        report.deleted = len(deleted)
        leavers += [d for d in deleted if d.leaver]
        leavers = list({c.object_id: c for c in leavers}.values())  # a page repeated after a failover counts once
        report.disabled = sum(1 for c in leavers if c.status != DELETED)
        subjects = self._people.subjects_of(directory_issuer(directory_id), [c.object_id for c in leavers])
        for change in leavers:
            subject_id = subjects.get(change.object_id)
            if subject_id is not None:
                reason = f"leaver: {directory_id}: account {change.status} (directory sync)"
                report.sessions_ended += self._end_sessions(subject_id, reason)
            report.leavers += 1
        self._people.mark_access_ended(org, directory_id, [c.object_id for c in leavers], now=now)
        self._people.save_cursor(org, directory_id, result.cursor.to_json() if result.cursor else None,
                                 full=result.full, now=now)


def ldap_sources(settings: Settings, organisation: str | None = None) -> list[tuple[str, LdapSourceConfig]]:
    """Return (organisation id, config) of every LDAP / AD source, of one organisation or all,
    with the organisation filled in and ``ca_file`` resolved against the configuration's folder.

    Raises KeyError for an unknown organisation.
    """
    orgs = settings.organisations
    if organisation is not None:
        orgs = [o for o in orgs if o.id == organisation]
        if not orgs:
            raise KeyError(organisation)
    return [
        (org.id, source.model_copy(update={
            "organisation": org.id,
            "ca_file": settings.resolve_path(source.ca_file) if source.ca_file is not None else None,
        }))
        for org in orgs for source in org.sources if isinstance(source, LdapSourceConfig)
    ]


def _mass_removal(directory_id: str, absent: int, total: int) -> DirectoryError:
    return DirectoryError(
        DirectoryErrorCode.MISCONFIGURED,
        f"{directory_id}: a full sync would remove {absent} of {total} people; refused (check base_dn and the "
        "filter; run again with --allow-mass-removal if they really left)",
    )
