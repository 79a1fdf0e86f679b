"""The policy decision point: compile once, decide many times.

``PolicyEngine(compiled, environment)`` turns the environment (organisations, Section 75
agreements, teams, services) into Cedar entities once; ``decide(request)`` adds only
the person (and record) per request and evaluates the pre-parsed policies. ``decide``
is a pure function of the engine and the request; once it has a Request, any error yields a
deny that names the error (fail closed). Cedar's semantics hold: default deny, and a
matching forbid overrides every permit.

By default (``partitioned=True``) each question goes to Cedar with only the policies
whose scope can apply to its action and service (``policies.partition``) and only the
entities it can reach (``policies.entities``); both leave every answer unchanged (the
tests compare the two paths on many requests) and keep a decision's cost independent of
the size of the bundle and of London. ``partitioned=False`` evaluates the whole policy
set against the whole environment, as a reference.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any

import cedarpy

from policies import schema as names
from policies.bundle import CompiledBundle
from policies.errors import PolicyError, PolicyErrorCode
from policies.model import (
    RELEASE_ACTION,
    SET_FACTS,
    BreakGlassAlert,
    Decision,
    Environment,
    Obligation,
    Request,
)
from policies.batch import Pending, Variant, chunks, variants
from policies.entities import EntityGraph, literals_read
from policies.memo import DEFAULT_LIMIT, AnswerMemo
from policies.obligations import Outcome, find_obligations
from policies.partition import PolicyIndex, Slice
from policies.references import mentions_variable
from policies.release import decide_release


def _uid(entity_type: str, entity_id: str) -> dict[str, str]:
    return {"type": entity_type, "id": entity_id}


def _ref(entity_type: str, entity_id: str) -> dict[str, dict[str, str]]:
    return {"__entity": _uid(entity_type, entity_id)}


def environment_entities(environment: Environment) -> list[dict[str, Any]]:
    """Return the environment as Cedar JSON entities (organisations, functions, teams, services).

    Section 75 partners are derived from the agreements, so they are always symmetric.
    """
    entities: list[dict[str, Any]] = []
    for org in environment.organisations:
        entities.append(
            {
                "uid": _uid(names.ORGANISATION, org.id),
                "attrs": {
                    "name": org.name,
                    "kind": org.kind,
                    "memberships": sorted(set(org.memberships)),
                    "section75_partners": [
                        _ref(names.ORGANISATION, p) for p in sorted(environment.partners(org.id))
                    ],
                },
                "parents": [],
            }
        )
    functions = sorted({f for team in environment.teams for f in team.functions})
    entities.extend({"uid": _uid(names.FUNCTION, f), "attrs": {}, "parents": []} for f in functions)
    for team in environment.teams:
        entities.append(
            {
                "uid": _uid(names.TEAM, team.id),
                "attrs": {"name": team.name, "organisation": _ref(names.ORGANISATION, team.organisation)},
                "parents": [_uid(names.FUNCTION, f) for f in sorted(set(team.functions))],
            }
        )
    for service in environment.services:
        entities.append({"uid": _uid(names.SERVICE, service.id), "attrs": {"name": service.name}, "parents": []})
    return entities


class PolicyEngine:
    """Evaluates one compiled bundle against one environment; immutable and thread-safe."""

    def __init__(
        self, compiled: CompiledBundle, environment: Environment, *, partitioned: bool = True,
        memo_limit: int = DEFAULT_LIMIT,
    ) -> None:
        """Build the engine. Raises PolicyError(ENVIRONMENT_INVALID) listing every problem.

        ``partitioned=False`` evaluates every policy against the whole environment for
        every question (the reference path; slower, same answers). ``memo_limit`` bounds
        the answers remembered for people alike to a slice (``policies.memo``); 0 asks
        Cedar every time.
        """
        problems = environment.problems()
        if problems:
            raise PolicyError(PolicyErrorCode.ENVIRONMENT_INVALID, "invalid environment", problems)
        self._compiled = compiled
        self._environment = environment
        self._organisations = frozenset(o.id for o in environment.organisations)
        self._teams = frozenset(t.id for t in environment.teams)
        self._functions = {t.id: tuple(t.functions) for t in environment.teams}
        self._organisation_attributes: dict[str, dict[str, Hashable]] = {
            o.id: {
                "name": o.name,
                "kind": o.kind,
                "memberships": frozenset(o.memberships),
                "section75_partners": frozenset(environment.partners(o.id)),
            }
            for o in environment.organisations
        }
        self._services = frozenset(s.id for s in environment.services)
        self._release_cache: dict[tuple[str, str], Outcome] | None = (
            None if _release_depends_on_person(compiled) else {}
        )
        self._partitioned = partitioned
        self._memo = AnswerMemo(memo_limit if partitioned else 0)
        entities = environment_entities(environment)
        try:
            self._base = cedarpy.Entities.from_json_str(json.dumps(entities), compiled.schema)
        except ValueError as error:
            raise PolicyError(
                PolicyErrorCode.ENVIRONMENT_INVALID, "the environment does not fit the schema", [str(error)]
            ) from error
        self._index = PolicyIndex(compiled)
        self._cedar_names = {f"policy{i}": pid for i, pid in enumerate(compiled.policies)}
        literals = set().union(*(literals_read(p.est) for p in compiled.policies.values()))
        self._graph = EntityGraph(entities, literals, compiled.schema)

    @property
    def compiled(self) -> CompiledBundle:
        """The compiled bundle this engine evaluates."""
        return self._compiled

    @property
    def environment(self) -> Environment:
        """The environment the engine was built with."""
        return self._environment

    @property
    def memo(self) -> AnswerMemo:
        """The answers remembered for people alike to a slice (hits, misses, size)."""
        return self._memo

    @property
    def label(self) -> str:
        """``name@version`` of the bundle, recorded in every decision."""
        return self._compiled.label

    # --- the decision ------------------------------------------------------------------

    def decide(self, request: Request) -> Decision:
        """Return the Decision for ``request``.

        A permit carries the permitting policy ids, any break-glass alert obligation
        and, for ``sign_in``, the released attributes. A deny carries the forbids that
        matched (or nothing: default deny) and the obligations (step-up, break-glass)
        that would turn it into a permit. Any error during evaluation gives a deny whose
        ``errors`` say why (fail closed). Raises PolicyError(INVALID_INPUT) only when
        ``request`` is not a Request at all (there is nothing to attach a decision to).
        """
        if not isinstance(request, Request):
            raise PolicyError(
                PolicyErrorCode.INVALID_INPUT,
                f"decide() needs a policies.model.Request, not {type(request).__name__}",
            )
        return self.decide_many([request])[0]

    def decide_many(self, requests: Iterable[Request]) -> list[Decision]:
        """Return ``[decide(r) for r in requests]``, asking Cedar about many requests per call.

        Raises PolicyError(INVALID_INPUT) if an item is not a Request.
        """
        items = _requests(requests, "decide_many")
        speculative = len(items) == 1  # one request: ask its what-ifs up front, in the same call
        results: list[Decision | None] = [None] * len(items)
        pending = []
        for index, request in enumerate(items):
            try:
                unknown = self._unknown_references(request)
                if unknown:
                    results[index] = self._failed(request, unknown)
                else:
                    pending.append(self._plan(index, request, what_ifs=speculative))
            except Exception as error:  # noqa: BLE001 - fail closed, this request alone
                results[index] = self._guarded(request, lambda error=error: _reraise(error))
        self._run(pending)
        if not speculative:
            self._run_what_ifs(pending)
        for item in pending:
            results[item.index] = self._guarded(item.request, lambda item=item: self._assemble(item))
        return [r for r in results if r is not None]

    def outcome(self, request: Request) -> Outcome:
        """Return only the effect of ``decide(request)``: permitted?, the deciding @ids and any errors.

        The same answer as ``decide`` without looking for obligations or deciding
        attribute release (what replay compares). Fails closed like ``decide``; raises
        PolicyError(INVALID_INPUT) only when ``request`` is not a Request.
        """
        if not isinstance(request, Request):
            raise PolicyError(
                PolicyErrorCode.INVALID_INPUT,
                f"outcome() needs a policies.model.Request, not {type(request).__name__}",
            )
        return self.outcomes([request])[0]

    def outcomes(self, requests: Iterable[Request]) -> list[Outcome]:
        """Return ``[outcome(r) for r in requests]``, asking Cedar about many requests per call.

        Raises PolicyError(INVALID_INPUT) if an item is not a Request.
        """
        items = _requests(requests, "outcomes")
        results: list[Outcome | None] = [None] * len(items)
        pending = []
        for index, request in enumerate(items):
            try:
                unknown = self._unknown_references(request)
                if unknown:
                    results[index] = Outcome(allowed=False, policy_ids=(), errors=tuple(unknown))
                else:
                    pending.append(self._plan(index, request, what_ifs=False))
            except Exception as error:  # noqa: BLE001 - fail closed, this request alone
                results[index] = self._effect(Pending(index, request, False, ((0, False),), failure=error))
        self._run(pending)
        for item in pending:
            results[item.index] = self._effect(item)
        return [r for r in results if r is not None]

    # --- evaluation in batches ---------------------------------------------------------------

    def _plan(self, index: int, request: Request, *, what_ifs: bool) -> Pending:
        grant = request.person.break_glass
        grant_active = grant is not None and grant.active_at(request.now)
        found = self._index.slice(request.action, request.service) if self._partitioned else None
        return Pending(index, request, grant_active, variants(request, grant_active, found, what_ifs))

    def _run(self, pending: list[Pending]) -> None:
        """Fill in each pending request's Cedar answers (or its failure)."""
        if not self._partitioned:
            for item in pending:
                self._run_alone(item)
            return
        groups: dict[tuple[str, str], list[Pending]] = {}
        for item in pending:
            groups.setdefault((item.request.action, item.request.service), []).append(item)
        for (action, service), group in groups.items():
            found = self._index.slice(action, service)
            if not found.batchable:
                for item in group:
                    self._run_alone(item)
                continue
            group, alike, keys = self._alike(found, group)
            for chunk in chunks(group):
                try:
                    self._run_chunk(found, chunk)
                except Exception:  # noqa: BLE001 - one bad request: ask again one by one, each fails alone
                    for item in chunk:
                        item.known.clear()
                        self._run_alone(item)
            for item in group:
                key = keys.get(id(item))
                if key is not None and item.failure is None:
                    self._memo.remember(key, item.known, item.variants)
            for item, representative in alike:
                answer = representative.known.get(representative.current)
                if representative.failure is None and answer is not None and not answer.errors:
                    item.known = dict(representative.known)
                    item.entities, item.exclusive = None, False
                else:
                    self._run_alone(item)

    def _alike(
        self, found: Slice, group: list[Pending]
    ) -> tuple[list[Pending], list[tuple[Pending, Pending]], dict[int, Hashable]]:
        """Split ``group`` into the requests to ask Cedar about and those alike to one of them.

        Alike: the same key under the slice's projection (``policies.projection``) and the
        same variants, so Cedar's answers, what-ifs included, are the same. A request alike
        to one answered earlier in this engine's life gets the remembered answers
        (``policies.memo``) and is in neither list. Also returns, by ``id`` of each request
        asked, the key to remember its answers under.
        """
        if not found.projection.usable or (len(group) < 2 and not self._memo.enabled):
            return group, [], {}
        ask: list[Pending] = []
        alike: list[tuple[Pending, Pending]] = []
        keys: dict[int, Hashable] = {}
        seen: dict[Hashable, Pending] = {}
        for item in group:
            key = found.projection.key(item.request, item.grant_active, self._functions, self._organisation_attribute)
            if key is None:
                ask.append(item)
                continue
            full = (found.action, found.service, key, item.variants)
            remembered = self._memo.get(full) if self._memo.enabled else None
            if remembered is not None:
                item.known = remembered
                item.entities, item.exclusive = None, False
                continue
            representative = seen.get(full)
            if representative is not None:
                alike.append((item, representative))
            else:
                seen[full] = item
                keys[id(item)] = full
                ask.append(item)
        return ask, alike, keys

    def _run_what_ifs(self, pending: list[Pending]) -> None:
        """Ask, in batches, the what-if questions of the requests whose answer may need them.

        Those are the clean denies (step-up, break glass?) and the permits under an active
        grant (would it permit without?). Anything not asked here is asked one by one later.
        """
        if not self._partitioned:
            return
        extra: list[tuple[Pending, Pending]] = []
        for item in pending:
            current = item.known.get(item.current)
            if item.failure is not None or current is None or current.errors:
                continue
            if current.allowed and not item.grant_active:
                continue
            found = self._index.slice(item.request.action, item.request.service)
            wanted = tuple(v for v in variants(item.request, item.grant_active, found, True) if v != item.current)
            if wanted:
                extra.append((item, Pending(item.index, item.request, item.grant_active, wanted, virtual=True)))
        self._run([asked for _, asked in extra])
        for item, asked in extra:
            if asked.failure is None:
                item.known.update(asked.known)

    def _run_alone(self, item: Pending) -> None:
        request = item.request
        try:
            level, glass = item.current
            item.entities = self.person_entities(request, level, glass)
            item.known[item.current] = self.evaluate(request, level, glass, item.entities)
            item.exclusive = True
        except Exception as error:  # noqa: BLE001 - reported by the decision (fail closed)
            item.failure = error

    def _run_chunk(self, found: Slice, chunk: list[Pending]) -> None:
        people: list[str] = []
        own: list[dict[str, Any]] = []
        organisations: set[str] = set()
        starts: list[tuple[str, str]] = [(names.SERVICE, found.service)]
        cedar_requests: list[dict[str, Any]] = []
        slots: list[tuple[Pending, Variant]] = []
        for item in chunk:
            request = item.request
            parts = self._person_parts(request)
            for position, variant in enumerate(item.variants):
                uid = item.principal(position, variant)
                people.append(self._person_entity(parts, uid, *variant))
                cedar_request = self._cedar_request(request, request.action, {})
                cedar_request["principal"] = _uid(names.PERSON, uid)
                cedar_requests.append(cedar_request)
                slots.append((item, variant))
            organisations.add(request.person.organisation)
            starts.extend((names.TEAM, team) for team in parts[1])
            if request.record is not None:
                own.append(self._record_json(request))
                starts.append((names.ORGANISATION, request.record.home_borough))
        if len(chunk) >= _WHOLE_ENVIRONMENT_FROM:
            # Many people: one copy of the parsed environment beats parsing its reachable part again.
            delta = "[" + ",".join([*people, *(json.dumps(e) for e in own)]) + "]"
            entities = self._base.with_added_json_str(delta, self._compiled.schema)
        else:
            entities = self._graph.entities(people, organisations, starts, own)
        results = cedarpy.is_authorized_batch(cedar_requests, found.policy_set, entities, self._compiled.schema)
        for (item, variant), result in zip(slots, results, strict=True):
            item.known[variant] = _outcome(result, found.cedar_names)
        for item in chunk:
            item.entities = entities
            item.exclusive = len(chunk) == 1 and len(item.variants) == 1

    def _effect(self, item: Pending) -> Outcome:
        if item.failure is not None:
            error = item.failure
            if isinstance(error, PolicyError):
                return Outcome(allowed=False, policy_ids=(), errors=(f"{error.code.value}: {error.detail}", *error.problems))
            return Outcome(
                allowed=False, policy_ids=(),
                errors=(f"{PolicyErrorCode.EVALUATION_FAILED.value}: {type(error).__name__}: {error}",),
            )
        current = item.known[item.current]
        if current.errors:
            return Outcome(allowed=False, policy_ids=current.policy_ids, errors=current.errors)
        return current

    def _guarded(self, request: Request, work: Callable[[], Decision]) -> Decision:
        try:
            return work()
        except PolicyError as error:
            return self._failed(request, [f"{error.code.value}: {error.detail}", *error.problems])
        except Exception as error:  # noqa: BLE001 - fail closed on anything unexpected
            return self._failed(request, [f"{PolicyErrorCode.EVALUATION_FAILED.value}: {type(error).__name__}: {error}"])

    def _assemble(self, item: Pending) -> Decision:
        """Turn a pending request's answers into its Decision (asking Cedar again only if needed)."""
        if item.failure is not None:
            raise item.failure
        request = item.request
        person = request.person
        grant = person.break_glass
        grant_active = item.grant_active
        current = item.known[item.current]
        if current.errors:
            return self._failed(request, list(current.errors), policy_ids=current.policy_ids)
        what_if = self._what_if(request, item.current, item.known)
        if not current.allowed:
            return Decision(
                request=request,
                allowed=False,
                policy_ids=current.policy_ids,
                bundle=self.label,
                obligations=find_obligations(what_if, person.assurance, grant_active),
                withheld=_all_candidates(request),
                break_glass_active=grant_active,
            )
        obligations_list: list[Obligation] = []
        if grant_active and grant is not None:
            without = what_if(person.assurance, False)
            if not without.clean_permit:
                obligations_list.append(
                    BreakGlassAlert(
                        organisation=person.organisation,
                        reason_code=grant.reason_code,
                        expires_at=grant.expires_at,
                        policy_ids=current.policy_ids,
                    )
                )
        released: tuple[str, ...] = ()
        reasons: dict[str, tuple[str, ...]] = {}
        withheld: tuple[str, ...] = _all_candidates(request)
        if request.action == "sign_in":
            result = decide_release(
                person,
                request.requested_attributes,
                lambda attrs: self._evaluate_release(request, lambda: self._release_entities(item), attrs),
            )
            released, reasons, withheld = result.released, result.reasons, result.withheld
        return Decision(
            request=request,
            allowed=True,
            policy_ids=current.policy_ids,
            bundle=self.label,
            obligations=tuple(obligations_list),
            released=released,
            release_policy_ids=reasons,
            withheld=withheld,
            break_glass_active=grant_active,
        )

    def _organisation_attribute(self, organisation: str, name: str) -> Hashable:
        """Return attribute ``name`` of an organisation as Cedar sees it (for projection keys)."""
        attributes = self._organisation_attributes.get(organisation)
        if attributes is None:
            return ("unknown organisation", organisation)
        return attributes.get(name, ("no attribute", name))

    def _release_entities(self, item: Pending) -> cedarpy.Entities:
        """Return entities holding ``item``'s person under their own subject (built only when needed)."""
        usable = item.entities is not None and (
            item.exclusive or self._index.slice(RELEASE_ACTION, item.request.service).batchable
        )
        if not usable or item.entities is None:
            item.entities = self.person_entities(item.request, *item.current)
            item.exclusive = True
        return item.entities

    def _what_if(
        self, request: Request, current: Variant, known: dict[Variant, Outcome]
    ) -> Callable[[int, bool], Outcome]:
        """Return evaluate(level, glass) for this request, skipping questions whose answer cannot differ.

        Answers already known (asked up front) are reused. When no policy that may
        apply reads the assurance (or break glass), the answer at another level (or
        grant) is the answer already known, so Cedar is not asked again.
        """
        if self._partitioned:
            scope = self._index.slice(request.action, request.service)
            reads_assurance, reads_glass = scope.reads_assurance, scope.reads_break_glass
        else:
            reads_assurance = reads_glass = True
        assurance, break_glass = current

        def evaluate(level: int, glass: bool) -> Outcome:
            key = (level if reads_assurance else assurance, glass if reads_glass else break_glass)
            if key not in known:
                known[key] = self.evaluate(request, *key)
            return known[key]

        return evaluate

    def _unknown_references(self, request: Request) -> list[str]:
        problems: list[str] = []
        if request.person.organisation not in self._organisations:
            problems.append(f"unknown organisation {request.person.organisation!r}")
        if request.service not in self._services:
            problems.append(f"unknown service {request.service!r}")
        if request.record is not None and request.record.home_borough not in self._organisations:
            problems.append(f"unknown home borough {request.record.home_borough!r}")
        return problems

    def _failed(self, request: Request, errors: Sequence[str], policy_ids: tuple[str, ...] = ()) -> Decision:
        return Decision(
            request=request,
            allowed=False,
            policy_ids=policy_ids,
            bundle=self.label,
            withheld=_all_candidates(request),
            errors=tuple(errors),
        )

    # --- Cedar evaluation ----------------------------------------------------------------

    def person_entities(self, request: Request, assurance: int, break_glass: bool) -> cedarpy.Entities:
        """Return the environment plus this person (and record) as Cedar entities.

        Teams the environment does not know are left out (they cannot grant anything).
        Raises PolicyError(INVALID_INPUT) if the person does not fit the schema.
        """
        parts = self._person_parts(request)
        person = self._person_entity(parts, request.person.subject, assurance, break_glass)
        own = [self._record_json(request)] if request.record is not None else []
        try:
            if not self._partitioned:
                delta = "[" + ",".join([person, *(json.dumps(e) for e in own)]) + "]"
                return self._base.with_added_json_str(delta, self._compiled.schema)
            starts = [(names.SERVICE, request.service)]
            starts.extend((names.TEAM, team) for team in parts[1])
            if request.record is not None:
                starts.append((names.ORGANISATION, request.record.home_borough))
            return self._graph.entities([person], [request.person.organisation], starts, own)
        except ValueError as error:
            raise PolicyError(
                PolicyErrorCode.INVALID_INPUT, "the person does not fit the schema", [str(error)]
            ) from error

    def _person_parts(self, request: Request) -> tuple[str, list[str]]:
        """Return the person's attributes as JSON without the closing brace, and their known teams.

        Everything but ``assurance`` and ``break_glass``, which differ between what-if variants.
        """
        person = request.person
        attrs: dict[str, Any] = {
            "organisation": _ref(names.ORGANISATION, person.organisation),
            "kind": str(person.facts["kind"].value),
        }
        for name in SET_FACTS:
            if name != "teams":
                attrs[name] = sorted(set(person.strings(name)))
        teams = [t for t in sorted(set(person.strings("teams"))) if t in self._teams]
        return json.dumps(attrs, separators=(",", ":"))[:-1], teams

    @staticmethod
    def _person_entity(parts: tuple[str, list[str]], uid: str, assurance: int, break_glass: bool) -> str:
        """Return one person variant as a Cedar JSON entity (text)."""
        attrs, teams = parts
        parents = ",".join(f'{{"type":"{names.TEAM}","id":{json.dumps(t)}}}' for t in teams)
        return (
            f'{{"uid":{{"type":"{names.PERSON}","id":{json.dumps(uid)}}},'
            f'"attrs":{attrs},"assurance":{int(assurance)},"break_glass":{"true" if break_glass else "false"}}},'
            f'"parents":[{parents}]}}'
        )

    def _record_json(self, request: Request) -> dict[str, Any]:
        record = request.record
        if record is None:
            raise PolicyError(PolicyErrorCode.INVALID_INPUT, "no record in this request")
        return {
            "uid": _uid(names.RECORD, record.id),
            "attrs": {"home_borough": _ref(names.ORGANISATION, record.home_borough)},
            "parents": [_uid(names.SERVICE, request.service)],
        }

    def policy_set(self, action: str, service: str) -> cedarpy.PolicySet:
        """Return the policies Cedar is given for ``action`` on ``service`` (all of them when not partitioned)."""
        return self._policies(action, service)[0]

    def _policies(self, action: str, service: str) -> tuple[cedarpy.PolicySet, Mapping[str, str]]:
        """Return the policy set for ``action`` on ``service`` and the @id behind each of Cedar's names."""
        if not self._partitioned:
            return self._compiled.policy_set, self._cedar_names
        found = self._index.slice(action, service)
        return found.policy_set, found.cedar_names

    def _cedar_request(self, request: Request, action: str, context: dict[str, Any]) -> dict[str, Any]:
        if request.record is not None:
            resource = _uid(names.RECORD, request.record.id)
        else:
            resource = _uid(names.SERVICE, request.service)
        return {
            "principal": _uid(names.PERSON, request.person.subject),
            "action": _uid(names.ACTION, action),
            "resource": resource,
            "context": json.dumps(context) if context else "{}",  # text: cedarpy copies and re-encodes a dict
        }

    def evaluate(
        self, request: Request, assurance: int, break_glass: bool, entities: cedarpy.Entities | None = None
    ) -> Outcome:
        """Evaluate ``request`` as if the person had ``assurance`` and ``break_glass``.

        ``entities`` may pass the ones ``person_entities`` built for exactly these
        values. Returns the Outcome (permitted?, deciding @ids, evaluation errors);
        raises PolicyError(INVALID_INPUT) if the person does not fit the schema.
        """
        if entities is None:
            entities = self.person_entities(request, assurance, break_glass)
        policies, cedar_names = self._policies(request.action, request.service)
        result = cedarpy.is_authorized(
            self._cedar_request(request, request.action, {}),
            policies,
            entities,
            self._compiled.schema,
        )
        return _outcome(result, cedar_names)

    def _evaluate_release(
        self, request: Request, entities: Callable[[], cedarpy.Entities], attributes: Sequence[str]
    ) -> list[Outcome]:
        """Return the release Outcome of each attribute, in order.

        When no policy that could apply to ``release`` reads anything of the person
        (see ``_release_depends_on_person``), the answer depends only on the service and
        the attribute name, so it is remembered for the life of this engine.
        """
        cache = self._release_cache
        if cache is not None:
            missing = [a for a in attributes if (request.service, a) not in cache]
        else:
            missing = list(attributes)
        cedar_requests = [
            {
                **self._cedar_request(request, RELEASE_ACTION, {"attribute": attribute}),
                "resource": _uid(names.SERVICE, request.service),
            }
            for attribute in missing
        ]
        policies, cedar_names = self._policies(RELEASE_ACTION, request.service)
        results = cedarpy.is_authorized_batch(
            cedar_requests, policies, entities(), self._compiled.schema
        ) if cedar_requests else []
        fresh = {a: _outcome(r, cedar_names) for a, r in zip(missing, results, strict=True)}
        if cache is None:
            return [fresh[a] for a in attributes]
        if len(cache) < _RELEASE_CACHE_LIMIT:
            for attribute, outcome in fresh.items():
                if not outcome.errors:
                    cache[(request.service, attribute)] = outcome
        return [fresh[a] if a in fresh else cache[(request.service, a)] for a in attributes]


_RELEASE_CACHE_LIMIT = 10_000
#: From this many requests in one Cedar call on, the whole parsed environment is copied
#: instead of parsing what the requests reach.
_WHOLE_ENVIRONMENT_FROM = 32


def _release_depends_on_person(compiled: CompiledBundle) -> bool:
    """Return True unless every policy that may apply to ``release`` ignores the person.

    A policy ignores the person when its principal scope is unconstrained and its
    conditions never mention ``principal`` (so they read only the context and the
    resource: the service, which is part of the stable environment). Then a release decision is a function of (service,
    attribute) alone and may be remembered.
    """
    for policy in compiled.policies.values():
        action = policy.est.get("action") or {}
        op = action.get("op")
        if op == "==":
            applies = action.get("entity", {}).get("id") == RELEASE_ACTION
        elif op == "in":
            entities = action.get("entities") or [action.get("entity") or {}]
            applies = any(e.get("id") == RELEASE_ACTION for e in entities)
        else:
            applies = True
        if not applies:
            continue
        if (policy.est.get("principal") or {}).get("op") != "All":
            return True
        if mentions_variable(policy.est, "principal"):
            return True
    return False


_CEDAR_NAME = re.compile(r"`(policy\d+)`")


def _outcome(result: cedarpy.AuthzResult, cedar_names: Mapping[str, str]) -> Outcome:
    """Return the Outcome of one Cedar answer; errors name policies by @id, not Cedar's positional names."""
    diagnostics = result.diagnostics
    by_reason = diagnostics.id_annotations_by_reason
    policy_ids = tuple(sorted(by_reason.get(r, r) for r in diagnostics.reasons))
    errors = tuple(
        _CEDAR_NAME.sub(lambda m: f"`{cedar_names.get(m.group(1), m.group(1))}`", str(e)) for e in diagnostics.errors
    )
    return Outcome(allowed=result.allowed, policy_ids=policy_ids, errors=errors)


def _all_candidates(request: Request) -> tuple[str, ...]:
    if request.action != "sign_in":
        return ()
    if request.requested_attributes is not None:
        return tuple(sorted(set(request.requested_attributes)))
    return tuple(sorted(request.person.facts))


def _reraise(error: Exception) -> Decision:
    raise error


def _requests(requests: Iterable[Request], caller: str) -> list[Request]:
    items = list(requests)
    for item in items:
        if not isinstance(item, Request):
            raise PolicyError(
                PolicyErrorCode.INVALID_INPUT, f"{caller}() needs policies.model.Request items, not {type(item).__name__}"
            )
    return items


def decide(engine: PolicyEngine, request: Request) -> Decision:
    """Return ``engine.decide(request)``: the module-level form of the pure decision function."""
    return engine.decide(request)
