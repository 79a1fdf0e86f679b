"""The composition root's wiring: builds every service from validated settings."""

from __future__ import annotations

import dataclasses
import datetime as dt

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from broker.access import AccessGate, MfaRequirement, OpenAccess
from broker.audit import AuditEvent, AuditLog
from broker.break_glass import BreakGlassService
from broker.linking import AccountLinking
from broker.notifications import Notifications
from broker.clients import ClientRegistry
from broker.errors import BrokerError, BrokerErrorCode
from broker.keyring import KeyRing
from broker.leavers import LeaverCheck
from broker.login import LoginService
from broker.mfa import TotpService
from broker.throttle import Throttle, ThrottleLimits
from broker.oidc.provider import Endpoints, OidcProvider
from broker.organisations_admin import OrganisationAdmin
from broker.upstream_sessions import UpstreamLogout, UpstreamSessions
from broker.oidc.tokens import TokenMinter
from broker.saml.credentials import IdpCredentials
from broker.saml.idp import SamlIdp
from broker.saml.participants import Participants
from broker.saml.registry import ServiceProviders
from broker.sessions import SsoSessions
from broker.state import RedisStateStore, SqlStateStore, StateStore
from broker.storage.database import make_engine, make_session_factory, resolve_database_url
from broker.storage.migrate import is_current
from broker.subjects import Subjects
from config.ldap_source import LdapSourceConfig
from config.schema import Settings
from federation.keys import MasterKey
from federation.organisations import OrganisationRegistry
from federation.registry import build_registry
from policies import Decision


@dataclasses.dataclass
class Services:
    """Everything the web layer and the CLI use, built once per process."""

    settings: Settings
    engine: Engine
    db: sessionmaker[Session]
    master_key: MasterKey
    audit: AuditLog
    state: StateStore
    keyring: KeyRing
    clients: ClientRegistry
    subjects: Subjects
    sso: SsoSessions
    registry: OrganisationRegistry
    login: LoginService
    oidc: OidcProvider
    break_glass: BreakGlassService
    linking: AccountLinking
    notifications: Notifications
    organisations: OrganisationAdmin | None = None  # the registry as administrators edit it (None before migration)
    upstream_logout: UpstreamLogout | None = None  # upstream sessions and logout with upstreams, both directions
    saml_idp: SamlIdp | None = None


def build_storage(settings: Settings) -> tuple[Engine, sessionmaker[Session], MasterKey]:
    """Return the engine, session factory and master key for ``settings``."""
    engine = make_engine(resolve_database_url(settings.broker.database_url, settings.base_dir))
    master = MasterKey.from_text(settings.broker.master_key.reveal())
    return engine, make_session_factory(engine), master


def build_access_gate(
    settings: Settings, registry: OrganisationRegistry, audit: AuditLog, break_glass: BreakGlassService,
    db: sessionmaker[Session],
) -> AccessGate:
    """Return the Cedar policy gate when a bundle is configured, else ``OpenAccess``.

    The configured bundle is compiled once here and is in force until a governed version is
    activated (``supercloud policy activate``). Every decision is audited and recorded for
    replay. Raises PolicyError (every problem listed) if the configured bundle is invalid.
    """
    if settings.policies is None:
        return OpenAccess()
    from broker.decision_log import DecisionRecorder
    from broker.policy_access import ActiveEngine, PolicyAccess, engine_from_settings
    from broker.policy_store import SqlBundleRepository

    configured = engine_from_settings(settings)
    engine = ActiveEngine(SqlBundleRepository(db), configured, configured.environment)
    recorder = DecisionRecorder(db)
    services_by_client = {a.client_id: a.service or a.client_id for a in settings.applications}
    services_by_client.update({sp.entity_id: sp.service_id for sp in settings.saml_service_providers})

    def record(decision: Decision) -> None:
        recorder.record(decision)
        audit.append(AuditEvent("policy_decision", "permit" if decision.allowed else "deny", actor=decision.request.person.subject,
                                details={"service": decision.request.service, "bundle": decision.bundle,
                                         "policy_ids": list(decision.policy_ids), "released": list(decision.released),
                                         "obligations": [o.to_json() for o in decision.obligations]}))

    return PolicyAccess(
        engine, registry, lambda client_id: services_by_client.get(client_id, client_id), record,
        break_glass=lambda person, service: break_glass.active(person, service),
    )


def build_services(settings: Settings, *, require_schema: bool = True) -> Services:
    """Return every service for ``settings``.

    Raises BrokerError(NOT_INITIALISED) if the database is not migrated (with
    ``require_schema``), and FederationError for a source that cannot be built.
    """
    engine, db, master = build_storage(settings)
    if require_schema and not is_current(engine):
        raise BrokerError(BrokerErrorCode.NOT_INITIALISED, "the database is not up to date: run 'supercloud db upgrade'")
    audit = AuditLog(db, master.derive("audit-chain"))
    state: StateStore = RedisStateStore.from_url(settings.broker.redis_url) if settings.broker.redis_url else SqlStateStore(db)
    keyring = KeyRing(db, master)
    clients = ClientRegistry(db, master)
    subjects = Subjects(db)
    sso = SsoSessions(db, master, dt.timedelta(minutes=settings.broker.session_lifetime_minutes), audit_log=audit)
    registry = build_registry(settings, signing_keys=keyring, replay_cache=state)
    organisations = OrganisationAdmin(db, registry, list(registry.organisations.values()), audit.append)
    if require_schema or is_current(engine):
        organisations.seed()  # the store decides from here on (see broker.organisations_admin)
    break_glass = BreakGlassService(db, audit.append)
    notifications = Notifications(db)
    endpoints = Endpoints(settings.broker.issuer)
    minter = TokenMinter(
        db,
        keyring,
        issuer=settings.broker.issuer,
        access_token_audience=endpoints.userinfo,
        access_token_lifetime=settings.broker.access_token_lifetime_seconds,
        id_token_lifetime=settings.broker.id_token_lifetime_seconds,
        audit_log=audit,
    )

    def organisation_name(organisation_id: str) -> str | None:
        org = registry.get(organisation_id)
        return org.name if org else None

    oidc = OidcProvider(
        endpoints=endpoints,
        clients=clients,
        state=state,
        minter=minter,
        sso=sso,
        master_key=master,
        audit=audit.append,
        organisation_name=organisation_name,
        code_lifetime=settings.broker.authorization_code_lifetime_seconds,
        default_alg=settings.broker.default_signing_alg,
        access=(access_gate := LeaverCheck(
            MfaRequirement(
                build_access_gate(settings, registry, audit, break_glass, db),
                organisations=frozenset(o.id for o in settings.organisations if o.require_mfa),
                clients=frozenset(a.client_id for a in settings.applications if a.require_mfa)
                | frozenset(sp.entity_id for sp in settings.saml_service_providers if sp.require_mfa),
            ),
            registry,
            lambda subject_id, reason: oidc.end_sessions_for_subject(subject_id, reason, actor="leaver-check"),
            subject_for=subjects.subject_for,
            audit=audit.append,
            recheck_seconds={s.id: s.status_recheck_seconds for o in settings.organisations for s in o.sources
                             if isinstance(s, LdapSourceConfig)},
        )),
    )
    saml_idp = SamlIdp(
        issuer=settings.broker.issuer,
        providers=ServiceProviders(db, settings.saml_service_providers, settings.base_dir),
        credentials=IdpCredentials(keyring),
        state=state,
        master_key=master,
        access=access_gate,
        participants=Participants(db),
        audit=audit.append,
        organisation_name=organisation_name,
    )
    return Services(
        saml_idp=saml_idp,
        settings=settings,
        engine=engine,
        db=db,
        master_key=master,
        audit=audit,
        state=state,
        keyring=keyring,
        clients=clients,
        subjects=subjects,
        sso=sso,
        registry=registry,
        organisations=organisations,
        upstream_logout=UpstreamLogout(
            sessions=UpstreamSessions(db, master), registry=registry, state=state, audit=audit.append,
            end_session=lambda sid, reason: oidc.logout.end_session(sid, reason=reason, actor="upstream").ended,
            issuer=settings.broker.issuer,
        ),
        login=LoginService(
            registry, subjects, sso, audit.append, Throttle(state, ThrottleLimits()),
            TotpService(db, master, state, issuer_name="London Supercloud"),
            state,
            notifications,
        ),
        notifications=notifications,
        oidc=oidc,
        break_glass=break_glass,
        linking=AccountLinking(db, subjects, sso, audit.append),
    )
