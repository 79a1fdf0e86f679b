"""The access gate backed by the Cedar policy engine (``policies``).

Converts the canonical Identity into the engine's person facts and the configuration into
its environment, asks for a ``sign_in`` decision on the application's service, and turns
the decision into a grant (with the attributes policy releases, as claim names) or a
denial / step-up obligation.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable

from broker.access import AccessDenied, AccessGrant, BreakGlassNeeded, StepUpRequired
from config.schema import Settings
from federation.identity import AssuranceLevel, Identity
from federation.organisations import OrganisationRegistry
from broker.break_glass import Grant
from broker.policy_store import SqlBundleRepository
from policies import (
    BreakGlassAlert,
    BreakGlassRequired,
    Decision,
    Environment,
    OrganisationFacts,
    PolicyEngine,
    PolicyError,
    Request,
    Section75Agreement,
    ServiceFacts,
    StepUp,
    TeamFacts,
    compile_bundle,
    load_bundle,
)
from policies.adapters import person_from_identity_json

# The policy attribute behind each claim the provider can release.
CLAIM_ATTRIBUTE: dict[str, str] = {
    "name": "name",
    "given_name": "name",
    "family_name": "name",
    "preferred_username": "name",
    "email": "email",
    "organisation": "organisation",
    "organisation_name": "organisation",
    "job_title": "job_title",
    "department": "department",
    "groups": "groups",
    "admissions_role": "admissions_role",  # released to SAML SPs (broker.saml.attributes)
}
DENIED = "You do not have access to {service}. If you need it, ask your manager or information governance team."


def environment_from_settings(settings: Settings) -> Environment:
    """Return the policy environment (organisations, agreements, teams, services) in ``settings``."""
    services: dict[str, str] = {}
    for app in settings.applications:
        services.setdefault(app.service or app.client_id, app.name)
    for sp in settings.saml_service_providers:
        services.setdefault(sp.service_id, sp.name)
    return Environment(
        organisations=tuple(
            OrganisationFacts(id=o.id, name=o.name, kind=o.kind, memberships=tuple(o.memberships))
            for o in settings.organisations
        ),
        agreements=tuple(Section75Agreement(id=a.id, parties=tuple(a.parties)) for a in settings.agreements),
        teams=tuple(
            TeamFacts(id=t.id, name=t.name, organisation=o.id, functions=tuple(t.functions))
            for o in settings.organisations
            for t in o.teams
        ),
        services=tuple(ServiceFacts(id=sid, name=name) for sid, name in services.items()),
    )


class ActiveEngine:
    """The engine in force: the governed version activated by two people if there is one,
    else the bundle named in configuration. Re-checked every ``recheck_seconds`` so an
    activation or rollback reaches every worker and host within that time."""

    def __init__(self, repository: SqlBundleRepository, fallback: PolicyEngine, environment: Environment,
                 *, recheck_seconds: float = 30.0) -> None:
        self._repository = repository
        self._fallback = fallback
        self._environment = environment
        self._recheck = recheck_seconds
        self._lock = threading.Lock()
        self._version: str | None = None
        self._engine = fallback
        self._checked = float("-inf")

    def __call__(self) -> PolicyEngine:
        """Return the engine for the version in force now. Raises PolicyError if a stored version is unusable."""
        if time.monotonic() - self._checked < self._recheck:
            return self._engine
        with self._lock:
            if time.monotonic() - self._checked >= self._recheck:
                version = self._repository.active_version()
                if version != self._version:
                    record = self._repository.get(version) if version else None
                    self._engine = (
                        PolicyEngine(compile_bundle(record.bundle), self._environment) if record else self._fallback
                    )
                    self._version = version
                self._checked = time.monotonic()
        return self._engine


def engine_from_settings(settings: Settings) -> PolicyEngine:
    """Return an engine for the configured bundle (``settings.policies`` must be set).

    Raises PolicyError listing every problem of an invalid bundle.
    """
    if settings.policies is None:
        raise ValueError("no policy bundle configured")
    bundle = compile_bundle(load_bundle(settings.resolve_path(settings.policies.bundle)))
    return PolicyEngine(bundle, environment_from_settings(settings))


class PolicyAccess:
    """``AccessGate`` deciding with the policy engine; every decision names its policies."""

    def __init__(
        self,
        engine: Callable[[], PolicyEngine],
        registry: OrganisationRegistry,
        service_of: Callable[[str], str],
        record: Callable[[Decision], object] | None = None,
        break_glass: Callable[[str, str], Grant | None] | None = None,
    ) -> None:
        self._engine = engine
        self._registry = registry
        self._service_of = service_of
        self._record = record
        self._break_glass = break_glass

    def check(self, identity: Identity, client_id: str, service_name: str) -> AccessGrant:
        """See ``AccessGate.check``. Fails closed: any error in the engine denies."""
        organisation = self._registry.get(identity.organisation)
        service = self._service_of(client_id)
        person_key = f"{identity.subject.issuer}|{identity.subject.subject}"
        grant = self._break_glass(person_key, service) if self._break_glass else None
        try:
            person = person_from_identity_json(
                identity.to_json(),
                organisation_kind=organisation.kind if organisation else "unknown",
                break_glass=grant.for_policy() if grant else None,
            )
            decision = self._engine().decide(
                Request(
                    person,
                    "sign_in",
                    service,
                    dt.datetime.now(dt.UTC),
                    requested_attributes=tuple(sorted(set(CLAIM_ATTRIBUTE.values()))),
                )
            )
        except PolicyError as exc:
            raise AccessDenied(DENIED.format(service=service_name), reasons=(f"policy error: {exc}",)) from None
        if self._record is not None:
            self._record(decision)
        if decision.allowed:
            released = frozenset(decision.released)
            return AccessGrant(
                released=frozenset(claim for claim, attribute in CLAIM_ATTRIBUTE.items() if attribute in released),
                policy_ids=decision.policy_ids,
                claims={"break_glass": grant.claim()} if grant and any(
                    isinstance(o, BreakGlassAlert) for o in decision.obligations) else {},
            )
        for obligation in decision.obligations:
            if isinstance(obligation, StepUp):
                raise StepUpRequired(AssuranceLevel(obligation.min_assurance), service_name)
        if any(isinstance(o, BreakGlassRequired) for o in decision.obligations):
            raise BreakGlassNeeded(service, service_name, policy_ids=decision.policy_ids)
        raise AccessDenied(DENIED.format(service=service_name), policy_ids=decision.policy_ids, reasons=tuple(decision.errors))
