"""Bring a deployment to a usable state: schema, signing keys, configured applications."""

from __future__ import annotations

import dataclasses

from broker.audit import AuditEvent
from broker.services import build_services
from broker.storage.database import make_engine, resolve_database_url
from broker.storage.migrate import upgrade
from config.schema import Settings


@dataclasses.dataclass(frozen=True, slots=True)
class InitResult:
    """What ``initialise`` did: the kids of keys it created and the applications it synced."""

    created_keys: list[str]
    applications: list[str]


def migrate(settings: Settings) -> None:
    """Apply every pending migration to the configured database."""
    engine = make_engine(resolve_database_url(settings.broker.database_url, settings.base_dir))
    try:
        upgrade(engine)
    finally:
        engine.dispose()


def initialise(settings: Settings) -> InitResult:
    """Migrate, create missing signing keys and register the configured applications. Idempotent."""
    migrate(settings)
    services = build_services(settings)
    try:
        created = services.keyring.ensure()
        services.clients.sync_from_config(settings.applications)
        if created:
            services.audit.append(AuditEvent("keys_created", "success", actor="system", details={"kids": created}))
        return InitResult(created_keys=created, applications=[a.client_id for a in settings.applications])
    finally:
        services.engine.dispose()
