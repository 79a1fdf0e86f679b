"""The organisation registry as administrators edit it: stored, validated, audited, live.

Precedence between the configuration file and the store (one rule, stated once):

- The configuration file stays the bootstrap. At start-up (``seed``) each organisation the
  file declares that the store lacks is imported (``origin: config``).
- A config-declared organisation that no administrator has edited (``managed: false``)
  follows the file: its stored declaration is overwritten from the file at every start.
- The first change an administrator makes (``update`` or ``retire``) marks it ``managed``:
  from then on the store wins and the file's entry for it is ignored (start-up logs a
  warning naming the organisation when the two differ). ``supercloud orgs import ID``
  hands it back to the file (the file's declaration replaces the stored one, audited).
- Organisations created by an administrator (``origin: admin``) live only in the store.
- Identity sources are built only from the file (they carry secrets and endpoints); an
  organisation refers to sources by id. Teams and role mappings also come only from the
  file (not editable here).

Every change is validated with every problem reported at once (``OrganisationInvalid``),
written with the organisation's revision and a bump of one version counter in the same
transaction, and audited with the declaration before and after. Each worker compares the
counter at most once per ``broker.organisations_recheck_seconds`` (``sync``: one primary-key
read; default 1 s, 0 = every request) and rebuilds the in-memory registry only when it
moved, so home-realm discovery and scoping follow a change made in any process without a
restart, within that bound.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from broker.audit import AuditEvent
from broker.storage.models import OrganisationRow, OrganisationsVersionRow
from broker.storage.types import utcnow
from config.schema import DOMAIN, EMAIL, SLUG
from federation.organisations import Contact, Organisation, OrganisationRegistry
from federation.sources import IdentitySource
from federation.upstream_oidc.build import health_ods_index

log = logging.getLogger(__name__)
KINDS = ("borough", "health", "operator")
CONTACT_ROLES = ("privacy_officer", "security_contact", "technical_contact", "service_desk")
_SLUG = re.compile(SLUG)
_ODS = re.compile(r"^[A-Z0-9]{3,10}$")  # ODS organisation codes: 3 (trusts) to 6 (GP practices) upper-case alphanumerics
_ATTRIBUTE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_VERSION_ROW = 1
# Built once and run on a plain connection: this read is on every request's path, and an
# ORM session per request cost more than the rest of a client_credentials grant's reads.
_READ_VERSION = select(OrganisationsVersionRow.version).where(OrganisationsVersionRow.id == _VERSION_ROW)
EDITABLE = ("name", "kind", "domains", "ods_codes", "sources", "accepts_sources", "authoritative_attributes",
            "asserts_national_roles", "memberships", "contacts")


class OrganisationInvalid(ValueError):
    """A change refused; ``problems`` lists every reason, each naming its field."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = tuple(problems)


class OrganisationNotFound(LookupError):
    """No (live) organisation has this id."""


@dataclasses.dataclass(frozen=True, slots=True)
class OrganisationRecord:
    """One organisation's editable declaration and its bookkeeping.

    ``sources`` are ids of identity sources (built from the configuration file) that serve
    its people; ``accepts_sources`` ids of other organisations' sources trusted to sign its
    people in; ``authoritative_attributes`` None means the standard person attributes.
    """

    id: str
    name: str
    kind: str
    domains: tuple[str, ...] = ()
    ods_codes: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    accepts_sources: tuple[str, ...] = ()
    authoritative_attributes: tuple[str, ...] | None = None
    asserts_national_roles: bool = False
    memberships: tuple[str, ...] = ()
    contacts: tuple[Contact, ...] = ()
    origin: str = "admin"
    managed: bool = True
    revision: int = 0
    retired: bool = False

    def declaration(self) -> dict[str, Any]:
        """The editable fields as JSON-ready values (what is stored and audited)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "domains": list(self.domains),
            "ods_codes": list(self.ods_codes),
            "sources": list(self.sources),
            "accepts_sources": list(self.accepts_sources),
            "authoritative_attributes": (
                list(self.authoritative_attributes) if self.authoritative_attributes is not None else None
            ),
            "asserts_national_roles": self.asserts_national_roles,
            "memberships": list(self.memberships),
            "contacts": [dataclasses.asdict(c) for c in self.contacts],
        }

    @classmethod
    def from_declaration(cls, organisation_id: str, data: Mapping[str, Any], **bookkeeping: Any) -> OrganisationRecord:
        """Build a record from ``declaration()``-shaped data (no validation: see ``validate``)."""
        attributes = data.get("authoritative_attributes")
        return cls(
            id=organisation_id,
            name=str(data.get("name", "")),
            kind=str(data.get("kind", "")),
            domains=tuple(data.get("domains") or ()),
            ods_codes=tuple(data.get("ods_codes") or ()),
            sources=tuple(data.get("sources") or ()),
            accepts_sources=tuple(data.get("accepts_sources") or ()),
            authoritative_attributes=tuple(attributes) if attributes is not None else None,
            asserts_national_roles=bool(data.get("asserts_national_roles", False)),
            memberships=tuple(data.get("memberships") or ()),
            contacts=tuple(
                Contact(str(c.get("role", "")), str(c.get("name", "")), str(c.get("email", "")))
                for c in data.get("contacts") or ()
                if isinstance(c, Mapping)
            ),
            **bookkeeping,
        )


def record_from_organisation(org: Organisation) -> OrganisationRecord:
    """The declaration of a config-built ``Organisation`` (sources by id)."""
    return OrganisationRecord(
        id=org.id, name=org.name, kind=org.kind, domains=org.domains, ods_codes=org.ods_codes,
        sources=tuple(s.id for s in org.sources), accepts_sources=tuple(sorted(org.accepts_sources)),
        authoritative_attributes=tuple(sorted(org.authoritative_attributes)) if org.authoritative_attributes is not None else None,
        asserts_national_roles=org.asserts_national_roles, memberships=org.memberships, contacts=org.contacts,
        origin="config", managed=False,
    )


class OrganisationAdmin:
    """Lists, creates, updates and retires organisations; keeps the live registry in step.

    ``configured`` are the organisations the configuration file declares, built with their
    sources (``federation.registry.build_registry``); ``registry`` is the live registry every
    other service reads, replaced in place when the store changes.
    """

    def __init__(
        self,
        db: sessionmaker[Session],
        registry: OrganisationRegistry,
        configured: Iterable[Organisation],
        audit: Callable[[AuditEvent], object],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._registry = registry
        self._configured = {o.id: o for o in configured}
        self._sources: dict[str, IdentitySource] = {s.id: s for o in self._configured.values() for s in o.sources}
        self._source_owner = {s.id: o.id for o in self._configured.values() for s in o.sources}
        self._audit = audit
        self._version: int | None = None
        self._lock = threading.Lock()
        self._clock = clock
        self._checked_at = float("-inf")  # when sync last read the version counter (``clock`` seconds)

    # --- start-up and keeping in step ------------------------------------------------------

    def seed(self) -> None:
        """Import config-declared organisations the store lacks; refresh unmanaged ones from the file.

        Logs a warning for a managed organisation whose file entry differs from the store.
        Then loads the registry from the store. Two processes starting together: the one that
        loses the race to insert retries once and finds the other's rows.
        """
        try:
            self._seed()
        except IntegrityError:
            self._seed()
        self.reload()

    def _seed(self) -> None:
        changed = False
        with self._db.begin() as session:
            rows = {r.id: r for r in session.execute(select(OrganisationRow)).scalars()}
            now = utcnow()
            for org in self._configured.values():
                wanted = record_from_organisation(org).declaration()
                row = rows.get(org.id)
                if row is None:
                    session.add(OrganisationRow(id=org.id, document=_dump(wanted), origin="config", managed=False,
                                                revision=1, created_at=now, updated_at=now))
                    changed = True
                elif not row.managed and row.origin == "config" and json.loads(row.document) != wanted:
                    row.document, row.revision, row.updated_at, row.retired_at = _dump(wanted), row.revision + 1, now, None
                    changed = True
                elif row.managed and json.loads(row.document) != wanted:
                    log.warning("organisation %s is managed by administrators: the store's declaration is used, "
                                "its entry in the configuration file is ignored ('supercloud orgs import %s' hands "
                                "it back to the file)", org.id, org.id)
            if changed or session.get(OrganisationsVersionRow, _VERSION_ROW) is None:
                self._bump(session)

    def sync(self, max_age: float = 0.0) -> bool:
        """Reload the registry if any process changed the store since; return True if it did.

        One primary-key read of the version counter (called once per request), skipped when
        this process last read it less than ``max_age`` seconds ago (0: read every time), so
        a change made by another process is seen within ``max_age`` seconds. Changes made
        through this object reload at once (``_changed``).
        """
        now = self._clock()  # taken before the read: a change committed during it is seen by the next one
        if max_age > 0 and now - self._checked_at < max_age:
            return False
        with self._db.kw["bind"].connect() as connection:
            version = connection.execute(_READ_VERSION).scalar_one_or_none()
        self._checked_at = now
        if version == self._version:
            return False
        self.reload()
        return True

    def reload(self) -> None:
        """Rebuild the live registry from the store (live organisations only)."""
        with self._lock:
            with self._db() as session:
                version = session.execute(
                    select(OrganisationsVersionRow.version).where(OrganisationsVersionRow.id == _VERSION_ROW)
                ).scalar_one_or_none()
                rows = list(session.execute(select(OrganisationRow).where(OrganisationRow.retired_at.is_(None))).scalars())
            organisations = [self._organisation(_record(row)) for row in rows]
            self._registry.replace(organisations)
            self._reindex_ods(organisations)
            self._version = version

    def _reindex_ods(self, organisations: list[Organisation]) -> None:
        """Give each upstream that places people by ODS code the live index: a health organisation
        that is the source's own or accepts it (as ``federation.registry`` does at start-up)."""
        for org in organisations:
            for source in org.sources:
                if hasattr(source, "use_organisations_by_ods"):
                    source.use_organisations_by_ods(health_ods_index(
                        (o.id, o.kind, o.ods_codes) for o in organisations
                        if o.id == org.id or source.id in o.accepts_sources))

    def _organisation(self, record: OrganisationRecord) -> Organisation:
        base = self._configured.get(record.id)
        return Organisation(
            id=record.id,
            name=record.name,
            kind=record.kind,
            domains=record.domains,
            ods_codes=record.ods_codes,
            sources=tuple(self._sources[s] for s in record.sources if s in self._sources),
            memberships=record.memberships,
            teams=base.teams if base else (),
            role_mappings=base.role_mappings if base else (),
            authoritative_attributes=(
                frozenset(record.authoritative_attributes) if record.authoritative_attributes is not None else None
            ),
            asserts_national_roles=record.asserts_national_roles,
            accepts_sources=frozenset(record.accepts_sources),
            contacts=record.contacts,
        )

    # --- reading -------------------------------------------------------------------------------

    def list(self, *, include_retired: bool = False) -> list[OrganisationRecord]:
        """Return every organisation (live ones only unless ``include_retired``), ordered by id."""
        with self._db() as session:
            query = select(OrganisationRow).order_by(OrganisationRow.id)
            if not include_retired:
                query = query.where(OrganisationRow.retired_at.is_(None))
            return [_record(r) for r in session.execute(query).scalars()]

    def get(self, organisation_id: str) -> OrganisationRecord | None:
        """Return the organisation (live or retired) with this id, or None."""
        with self._db() as session:
            row = session.get(OrganisationRow, organisation_id)
            return _record(row) if row else None

    def known_sources(self) -> dict[str, str]:
        """Every identity source id the configuration built, with the organisation it is configured under."""
        return dict(self._source_owner)

    # --- changing ---------------------------------------------------------------------------------

    def create(self, record: OrganisationRecord, *, actor: str) -> OrganisationRecord:
        """Add a new organisation (``origin: admin``); return it as stored.

        Raises OrganisationInvalid (every problem; the refusal is audited).
        """
        problems = []
        if not _SLUG.match(record.id or ""):
            problems.append(f"id: {record.id!r} is not a lower-case slug (letters, digits, hyphens)")
        with self._db.begin() as session:
            if session.get(OrganisationRow, record.id) is not None:
                problems.append(f"id: organisation {record.id!r} already exists (retired ones too: ids are not reused)")
            problems += self._problems(session, record)
            stored = dataclasses.replace(record, origin="admin", managed=True, revision=1, retired=False)
            if not problems:
                now = utcnow()
                session.add(OrganisationRow(id=record.id, document=_dump(stored.declaration()), origin="admin",
                                            managed=True, revision=1, created_at=now, updated_at=now))
                self._bump(session)
        if problems:  # audited outside the transaction (the audit log writes in its own)
            self._refused("organisation_created", record.id, actor, problems)
        self._changed("organisation_created", record.id, actor, None, stored.declaration())
        return stored

    def update(self, organisation_id: str, changes: Mapping[str, Any], *, actor: str,
               expected_revision: int | None = None) -> OrganisationRecord:
        """Change some editable fields of a live organisation; return it as stored.

        ``changes`` maps field names of ``EDITABLE`` to new values (lists for tuples, contacts
        as mappings). With ``expected_revision`` a concurrent edit since that revision is
        refused. Raises OrganisationNotFound, OrganisationInvalid (every problem; audited).
        """
        unknown = sorted(set(changes) - set(EDITABLE))
        with self._db.begin() as session:
            row = session.execute(select(OrganisationRow).where(OrganisationRow.id == organisation_id).with_for_update()
                                  ).scalar_one_or_none()
            if row is None or row.retired_at is not None:
                raise OrganisationNotFound(organisation_id)
            before = json.loads(row.document)
            problems = [f"{name}: not an editable field" for name in unknown]
            if expected_revision is not None and expected_revision != row.revision:
                problems.append(f"revision: changed by someone else meanwhile (now {row.revision}, you edited {expected_revision})")
            merged = {**before, **{k: v for k, v in changes.items() if k in EDITABLE}}
            problems += _shape_problems(merged)
            record = OrganisationRecord.from_declaration(organisation_id, merged) if not problems else None
            if record is not None:
                problems += self._problems(session, record)
            if not problems and record is not None:
                after = record.declaration()
                row.document, row.managed, row.revision, row.updated_at = _dump(after), True, row.revision + 1, utcnow()
                self._bump(session)
                stored = _record(row)
        if problems or record is None:
            self._refused("organisation_updated", organisation_id, actor, problems)
        self._changed("organisation_updated", organisation_id, actor, before, after)
        return stored

    def retire(self, organisation_id: str, *, actor: str, reason: str) -> OrganisationRecord:
        """Retire a live organisation: it leaves discovery and scoping (its sources sign no one in).

        Its id is never reused. Raises OrganisationNotFound, OrganisationInvalid (no reason
        given, or another organisation still accepts one of its sources).
        """
        with self._db.begin() as session:
            row = session.execute(select(OrganisationRow).where(OrganisationRow.id == organisation_id).with_for_update()
                                  ).scalar_one_or_none()
            if row is None or row.retired_at is not None:
                raise OrganisationNotFound(organisation_id)
            problems = [] if reason.strip() else ["reason: say why the organisation is retired"]
            own = set(json.loads(row.document).get("sources") or ())
            for other in session.execute(select(OrganisationRow).where(OrganisationRow.retired_at.is_(None),
                                                                       OrganisationRow.id != organisation_id)).scalars():
                shared = own & set(json.loads(other.document).get("accepts_sources") or ())
                if shared:
                    problems.append(f"accepts_sources: {other.id} still accepts {', '.join(sorted(shared))}; change it first")
            before = json.loads(row.document)
            if not problems:
                row.retired_at, row.managed, row.revision, row.updated_at = utcnow(), True, row.revision + 1, utcnow()
                self._bump(session)
                stored = _record(row)
        if problems:
            self._refused("organisation_retired", organisation_id, actor, problems)
        self._changed("organisation_retired", organisation_id, actor, before, None, reason=reason.strip()[:500])
        return stored

    def import_from_config(self, organisation_id: str, *, actor: str) -> OrganisationRecord:
        """Hand an organisation back to the configuration file: its declaration there replaces the
        stored one (and revives it if retired); it stops being managed. Raises OrganisationNotFound
        if the file does not declare it."""
        org = self._configured.get(organisation_id)
        if org is None:
            raise OrganisationNotFound(organisation_id)
        wanted = record_from_organisation(org).declaration()
        with self._db.begin() as session:
            row = session.get(OrganisationRow, organisation_id)
            before = json.loads(row.document) if row else None
            problems = self._problems(session, record_from_organisation(org))
            now = utcnow()
            if problems:
                pass
            elif row is None:
                session.add(OrganisationRow(id=org.id, document=_dump(wanted), origin="config", managed=False,
                                            revision=1, created_at=now, updated_at=now))
            else:
                row.document, row.origin, row.managed, row.retired_at = _dump(wanted), "config", False, None
                row.revision, row.updated_at = row.revision + 1, now
            if not problems:
                self._bump(session)
        if problems:
            self._refused("organisation_imported", organisation_id, actor, problems)
        self._changed("organisation_imported", organisation_id, actor, before, wanted)
        stored = self.get(organisation_id)
        if stored is None:  # retired by another process in the meantime
            raise OrganisationNotFound(organisation_id)
        return stored

    # --- helpers ------------------------------------------------------------------------------------

    def _problems(self, session: Session, record: OrganisationRecord) -> list[str]:
        """Every problem with ``record`` against the other live organisations and the known sources."""
        problems = _field_problems(record)
        others = [
            _record(r)
            for r in session.execute(
                select(OrganisationRow).where(OrganisationRow.retired_at.is_(None), OrganisationRow.id != record.id)
            ).scalars()
        ]
        for other in others:
            for domain in sorted(set(record.domains) & set(other.domains)):
                problems.append(f"domains: {domain} is already claimed by {other.id}")
            for code in sorted(set(record.ods_codes) & set(other.ods_codes)):
                problems.append(f"ods_codes: {code} is already claimed by {other.id}")
            for source in sorted(set(record.sources) & set(other.sources)):
                problems.append(f"sources: {source} already serves {other.id}")
        for source in record.sources:
            if source not in self._sources:
                problems.append(f"sources: unknown identity source {source!r}")
            elif self._source_owner[source] != record.id:
                problems.append(f"sources: {source} is configured under {self._source_owner[source]}, not {record.id}")
        for source in record.accepts_sources:
            if source not in self._sources:
                problems.append(f"accepts_sources: unknown identity source {source!r}")
        return problems

    def _refused(self, event: str, organisation_id: str, actor: str, problems: Sequence[str]) -> None:
        self._audit(AuditEvent(event, "failure", actor=actor,
                               details={"organisation": str(organisation_id)[:64], "problems": list(problems)}))
        raise OrganisationInvalid(problems)

    def _changed(self, event: str, organisation_id: str, actor: str, before: Any, after: Any, **extra: Any) -> None:
        self._audit(AuditEvent(event, "success", actor=actor,
                               details={"organisation": organisation_id, "before": before, "after": after, **extra}))
        self.reload()

    @staticmethod
    def _bump(session: Session) -> None:
        result = session.execute(update(OrganisationsVersionRow).where(OrganisationsVersionRow.id == _VERSION_ROW)
                                 .values(version=OrganisationsVersionRow.version + 1))
        if not result.rowcount:
            try:
                with session.begin_nested():
                    session.add(OrganisationsVersionRow(id=_VERSION_ROW, version=1))
            except IntegrityError:  # another process created it first
                session.execute(update(OrganisationsVersionRow).where(OrganisationsVersionRow.id == _VERSION_ROW)
                                .values(version=OrganisationsVersionRow.version + 1))


def _shape_problems(data: Mapping[str, Any]) -> list[str]:
    """Type problems of a declaration built from untyped input (CLI, console forms)."""
    problems = []
    for name in ("domains", "ods_codes", "sources", "accepts_sources", "memberships"):
        value = data.get(name)
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            problems.append(f"{name}: must be a list of strings")
    attributes = data.get("authoritative_attributes")
    if attributes is not None and (not isinstance(attributes, (list, tuple)) or not all(isinstance(v, str) for v in attributes)):
        problems.append("authoritative_attributes: must be a list of strings or absent")
    if not isinstance(data.get("asserts_national_roles"), bool):
        problems.append("asserts_national_roles: must be true or false")
    contacts = data.get("contacts")
    if not isinstance(contacts, (list, tuple)) or not all(isinstance(c, Mapping) for c in contacts):
        problems.append("contacts: must be a list of {role, name, email}")
    return problems


def _field_problems(record: OrganisationRecord) -> list[str]:
    """Syntax problems of one record's fields, each naming its field."""
    problems = []
    if not record.name.strip() or len(record.name) > 200:
        problems.append("name: 1 to 200 characters")
    if record.kind not in KINDS:
        problems.append(f"kind: must be one of {', '.join(KINDS)}")
    for name in ("domains", "ods_codes", "sources", "accepts_sources"):
        values = getattr(record, name)
        for value in sorted({v for v in values if values.count(v) > 1}):
            problems.append(f"{name}: {value} is listed twice")
    for domain in record.domains:
        if domain != domain.lower() or not DOMAIN.match(domain):
            problems.append(f"domains: {domain!r} is not a lower-case DNS domain")
    for code in record.ods_codes:
        if not _ODS.match(code):
            problems.append(f"ods_codes: {code!r} is not an ODS code (3-10 upper-case letters and digits)")
    for attribute in record.authoritative_attributes or ():
        if not _ATTRIBUTE.match(attribute):
            problems.append(f"authoritative_attributes: {attribute!r} is not an attribute name")
    for i, contact in enumerate(record.contacts):
        if contact.role not in CONTACT_ROLES:
            problems.append(f"contacts[{i}].role: must be one of {', '.join(CONTACT_ROLES)}")
        if not contact.name.strip() or len(contact.name) > 200:
            problems.append(f"contacts[{i}].name: 1 to 200 characters")
        if len(contact.email) > 254 or not EMAIL.match(contact.email):
            problems.append(f"contacts[{i}].email: {contact.email!r} is not an email address")
    for membership in record.memberships:
        if not membership.strip() or len(membership) > 200:
            problems.append("memberships: each 1 to 200 characters")
    return problems


def _record(row: OrganisationRow) -> OrganisationRecord:
    return OrganisationRecord.from_declaration(
        row.id, json.loads(row.document), origin=row.origin, managed=row.managed, revision=row.revision,
        retired=row.retired_at is not None,
    )


def _dump(declaration: Mapping[str, Any]) -> str:
    return json.dumps(declaration, sort_keys=True, separators=(",", ":"))
