"""The decision log: every policy decision recorded compactly, so ``replay`` runs on real history.

A row keeps the request as the policies saw it and what was decided under which bundle
revision. Only what can change a decision is kept with its value: the facts the
policies read (organisation, kind, assurance, groups, teams, roles, activity codes)
with their provenance, the break-glass grant's reason code and times, the record
asked for, the attribute names requested. Every other fact (name, email ...) is kept
by name only, never by value (data minimisation: a name still shapes which attributes
are candidates for release, its value never does). The grant's free-text
justification is in the audit log, not here.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from broker.storage.models import PolicyDecisionRow
from policies.errors import PolicyError, PolicyErrorCode
from policies.model import (
    DECISION_FACTS,
    BreakGlassGrant,
    Decision,
    Fact,
    PersonFacts,
    RecordRef,
    Request,
)
from policies.replay import RecordedDecision

#: Stands in for the value of a fact no policy reads (only its name is recorded).
NOT_RECORDED = "(not recorded)"
#: Stands in for a break-glass justification (the audit log holds the text).
JUSTIFICATION_ELSEWHERE = "(recorded in the audit log)"
_FORMAT = 1
_DECODE_CACHE_LIMIT = 200_000
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_UNRECORDED = Fact(value=NOT_RECORDED, source="decision-log", asserted_at=_EPOCH)


def encode_request(request: Request) -> str:
    """Return the compact JSON form of ``request`` kept in the decision log."""
    person = request.person
    sources: list[str] = []
    times: list[str] = []

    def index(table: list[str], value: str) -> int:
        try:
            return table.index(value)
        except ValueError:
            table.append(value)
            return len(table) - 1

    facts: dict[str, list[Any]] = {}
    others: list[str] = []
    for name in sorted(person.facts):
        fact = person.facts[name]
        if name in DECISION_FACTS:
            value = list(fact.value) if isinstance(fact.value, tuple) else fact.value
            facts[name] = [value, index(sources, fact.source), index(times, fact.asserted_at.isoformat())]
        else:
            others.append(name)
    document: dict[str, Any] = {
        "v": _FORMAT,
        "sub": person.subject,
        "f": facts,
        "src": sources,
        "t": times,
    }
    if others:
        document["o"] = others
    grant = person.break_glass
    if grant is not None:
        document["bg"] = [grant.reason_code, grant.granted_at.isoformat(), grant.expires_at.isoformat()]
    if request.record is not None:
        document["rec"] = [request.record.id, request.record.home_borough]
    if request.requested_attributes is not None:
        document["req"] = list(request.requested_attributes)
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


def decode_request(text: str, action: str, service: str, now: dt.datetime) -> Request:
    """Rebuild the Request of a log row. Raises PolicyError(INVALID_INPUT) if the row is malformed."""
    person, record, requested = _decode_parts(text, {})
    return _request(person, record, requested, action, service, now)


def _request(
    person: PersonFacts,
    record: RecordRef | None,
    requested: tuple[str, ...] | None,
    action: str,
    service: str,
    now: dt.datetime,
) -> Request:
    try:
        return Request(
            person=person, action=action, service=service, now=now, record=record, requested_attributes=requested
        )
    except PolicyError as error:
        raise PolicyError(PolicyErrorCode.INVALID_INPUT, "malformed decision log entry", error.problems) from error


def _decode_parts(
    text: str, known_facts: dict[tuple[str, Any, str, str], Fact]
) -> tuple[PersonFacts, RecordRef | None, tuple[str, ...] | None]:
    """Return the person, record and requested attribute names of a log row's request column.

    ``known_facts`` holds Facts already built (immutable, so shared between people).
    """
    try:
        document = json.loads(text)
        if not isinstance(document, dict) or document.get("v") != _FORMAT:
            raise ValueError("unknown format")
        sources, times = document["src"], document["t"]
        facts: dict[str, Fact] = {}
        for name, (value, source, when) in document["f"].items():
            plain = tuple(value) if isinstance(value, list) else value
            key = (type(plain).__name__, plain, sources[source], times[when])  # True and 1 stay apart
            fact = known_facts.get(key)
            if fact is None:
                fact = Fact(value=plain, source=key[2], asserted_at=dt.datetime.fromisoformat(key[3]))
                if len(known_facts) < _DECODE_CACHE_LIMIT:
                    known_facts[key] = fact
            facts[name] = fact
        for name in document.get("o", ()):
            facts[name] = _UNRECORDED
        grant = None
        if "bg" in document:
            reason, granted, expires = document["bg"]
            grant = BreakGlassGrant(
                reason_code=reason,
                justification=JUSTIFICATION_ELSEWHERE,
                granted_at=dt.datetime.fromisoformat(granted),
                expires_at=dt.datetime.fromisoformat(expires),
            )
        record = RecordRef(*document["rec"]) if "rec" in document else None
        requested = tuple(document["req"]) if "req" in document else None
        person = PersonFacts(subject=document["sub"], facts=facts, break_glass=grant)
    except PolicyError as error:
        raise PolicyError(
            PolicyErrorCode.INVALID_INPUT, "malformed decision log entry", error.problems or (error.detail,)
        ) from error
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as error:
        raise PolicyError(PolicyErrorCode.INVALID_INPUT, f"malformed decision log entry: {error}") from error
    return person, record, requested


class DecisionRecorder:
    """Writes decisions to the log and reads them back as ``RecordedDecision`` for replay."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        """Take the session factory of the broker's database."""
        self._sessions = sessions

    def record(self, decision: Decision) -> str:
        """Store one decision (its time is the request's ``now``). Returns its record id."""
        with self._sessions.begin() as session:
            row = PolicyDecisionRow(**_row(decision))
            session.add(row)
            session.flush()
            return str(row.id)

    def record_many(self, decisions: Iterable[Decision], batch: int = 5000) -> int:
        """Store many decisions in batches of ``batch`` rows. Returns how many were stored."""
        stored = 0
        rows: list[dict[str, Any]] = []
        for decision in decisions:
            rows.append(_row(decision))
            if len(rows) >= batch:
                stored += self._insert(rows)
                rows = []
        if rows:
            stored += self._insert(rows)
        return stored

    def count(self) -> int:
        """Return how many decisions are recorded."""
        with self._sessions() as session:
            return int(session.execute(select(func.count()).select_from(PolicyDecisionRow)).scalar_one())

    def recorded(
        self,
        *,
        service: str | None = None,
        since: dt.datetime | None = None,
        limit: int | None = None,
    ) -> Iterator[RecordedDecision]:
        """Yield recorded decisions, oldest first (optionally one service's, since a time, at most ``limit``).

        A person recorded identically in many rows is rebuilt once.
        Raises PolicyError(INVALID_INPUT) at the first malformed row.
        """
        query = select(
            PolicyDecisionRow.id,
            PolicyDecisionRow.decided_at,
            PolicyDecisionRow.action,
            PolicyDecisionRow.service,
            PolicyDecisionRow.allowed,
            PolicyDecisionRow.policy_ids,
            PolicyDecisionRow.bundle,
            PolicyDecisionRow.request,
        ).order_by(PolicyDecisionRow.id)
        if service is not None:
            query = query.where(PolicyDecisionRow.service == service)
        if since is not None:
            query = query.where(PolicyDecisionRow.decided_at >= since)
        if limit is not None:
            query = query.limit(limit)
        cache: dict[str, tuple[PersonFacts, RecordRef | None, tuple[str, ...] | None]] = {}
        ids_cache: dict[str, tuple[str, ...]] = {}
        known_facts: dict[tuple[str, Any, str, str], Fact] = {}
        with self._sessions() as session:
            for row in session.execute(query.execution_options(yield_per=2000)):
                parts = cache.get(row.request)
                if parts is None:
                    parts = _decode_parts(row.request, known_facts)
                    if len(cache) < _DECODE_CACHE_LIMIT:
                        cache[row.request] = parts
                request = _request(*parts, row.action, row.service, row.decided_at)
                policy_ids = ids_cache.get(row.policy_ids)
                if policy_ids is None:
                    policy_ids = ids_cache.setdefault(row.policy_ids, tuple(json.loads(row.policy_ids)))
                yield RecordedDecision(
                    id=str(row.id), request=request, allowed=bool(row.allowed), policy_ids=policy_ids, bundle=row.bundle
                )

    def _insert(self, rows: list[dict[str, Any]]) -> int:
        with self._sessions.begin() as session:
            session.execute(insert(PolicyDecisionRow), rows)
        return len(rows)


def _row(decision: Decision) -> dict[str, Any]:
    if not isinstance(decision, Decision):
        raise PolicyError(PolicyErrorCode.INVALID_INPUT, f"expected a Decision, got {type(decision).__name__}")
    request = decision.request
    return {
        "decided_at": request.now,
        "bundle": decision.bundle[:140],
        "subject": request.person.subject,
        "action": request.action,
        "service": request.service,
        "allowed": decision.allowed,
        "policy_ids": json.dumps(list(decision.policy_ids), separators=(",", ":")),
        "request": encode_request(request),
    }
