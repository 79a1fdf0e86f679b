"""The registered SAML service providers: settings plus verified metadata, kept in the database.

SPs come from configuration (``saml_service_providers:``, origin ``config``) or from
``supercloud sps add`` (origin ``cli``); both are rows of ``saml_service_providers``, so
every worker sees the same SPs. Metadata with a ``url`` or ``file`` is re-read every
``refresh_seconds`` and its federation signature re-checked; a failed refresh keeps the
previous copy (logged). A configured SP's metadata is read the first time it is needed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import threading
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from broker.errors import BrokerError, BrokerErrorCode
from broker.saml.sp_metadata import SpMetadata, fetch, parse_sp_metadata, signer_pem
from broker.storage.models import SamlServiceProviderRow
from broker.storage.types import utcnow
from config.saml_sp import ServiceProviderConfig

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class ServiceProvider:
    """One registered SP: what we were told (``config``) and what its metadata says."""

    config: ServiceProviderConfig
    metadata: SpMetadata
    origin: str

    @property
    def entity_id(self) -> str:
        return self.config.entity_id

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def requires_signed_requests(self) -> bool:
        """True when an unsigned AuthnRequest or LogoutRequest must be refused."""
        return self.config.require_signed_requests or self.metadata.authn_requests_signed


def load_metadata(cfg: ServiceProviderConfig, base_dir: Path) -> tuple[bytes, SpMetadata]:
    """Read and verify ``cfg``'s metadata; return (xml, parsed).

    Raises BrokerError(BAD_REQUEST) if unreachable, unsigned when a signer is configured,
    or not describing ``cfg.entity_id``.
    """
    if cfg.metadata is None:
        raise BrokerError(BrokerErrorCode.BAD_REQUEST, f"SP {cfg.entity_id}: no metadata source")
    try:
        xml, where = fetch(cfg.metadata, base_dir)
    except OSError as exc:
        raise BrokerError(BrokerErrorCode.BAD_REQUEST, f"SP metadata for {cfg.entity_id} unavailable ({type(exc).__name__})") from None
    return xml, parse_sp_metadata(xml, cfg.entity_id, signer_pem=signer_pem(cfg.metadata, base_dir), where=where)


class ServiceProviders:
    """Finds SPs by entity id; adds, lists and removes them."""

    def __init__(self, db: sessionmaker[Session], configured: Iterable[ServiceProviderConfig], base_dir: Path) -> None:
        self._db = db
        self._configured = {c.entity_id: c for c in configured}
        self._base_dir = base_dir
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[dt.datetime, ServiceProvider]] = {}

    def get(self, entity_id: str) -> ServiceProvider | None:
        """Return the SP ``entity_id`` with live metadata, or None if it is not registered.

        Raises BrokerError(BAD_REQUEST) if a configured SP's metadata has never been readable.
        """
        if not entity_id or len(entity_id) > 1024:
            return None
        with self._db() as session:
            row = session.get(SamlServiceProviderRow, entity_id)
        configured = self._configured.get(entity_id)
        if configured is None and (row is None or row.origin == "config"):
            return None  # unknown, or taken out of the configuration
        if row is None or (configured is not None and row.origin == "config"
                           and json.loads(row.settings) != configured.model_dump(mode="json")):
            return self._refresh(configured, None) if configured else None
        settings = ServiceProviderConfig.model_validate(json.loads(row.settings))
        cached = self._cache.get(entity_id)
        if cached is None or cached[0] != row.updated_at:
            provider = ServiceProvider(settings, parse_sp_metadata(row.metadata_xml.encode(), entity_id, signer_pem=None,
                                                                   where="the database"), row.origin)
            self._cache[entity_id] = (row.updated_at, provider)
        else:
            provider = cached[1]
        due = settings.metadata is not None and utcnow() - row.updated_at > dt.timedelta(seconds=settings.metadata.refresh_seconds)
        if due:
            try:
                return self._refresh(settings, row.origin)
            except BrokerError as exc:
                log.warning("SAML SP metadata refresh refused for %s, keeping the previous copy: %s", entity_id, exc.message)
                self._touch(entity_id)
        return provider

    def add(self, cfg: ServiceProviderConfig, xml: bytes | None = None, *, origin: str = "cli") -> ServiceProvider:
        """Register (or replace) an SP; ``xml`` is its metadata if already read, else it is read
        from ``cfg.metadata``. Raises BrokerError(BAD_REQUEST) if the metadata is refused."""
        if xml is None:
            xml, parsed = load_metadata(cfg, self._base_dir)
        else:
            parsed = parse_sp_metadata(xml, cfg.entity_id, signer_pem=None, where="the command line")
        self._store(cfg, xml, origin)
        return ServiceProvider(cfg, parsed, origin)

    def remove(self, entity_id: str) -> bool:
        """Forget an SP added with the CLI; return True if it was registered."""
        with self._db.begin() as session:
            result = session.execute(delete(SamlServiceProviderRow).where(SamlServiceProviderRow.entity_id == entity_id))
        self._cache.pop(entity_id, None)
        return bool(result.rowcount)

    def list(self) -> list[tuple[str, str, str]]:
        """Return (entity id, name, origin) of every registered SP, configured ones included."""
        with self._db() as session:
            rows = session.execute(select(SamlServiceProviderRow)).scalars().all()
        found = {r.entity_id: (r.entity_id, json.loads(r.settings).get("name", ""), r.origin) for r in rows}
        for entity_id, cfg in self._configured.items():
            found.setdefault(entity_id, (entity_id, cfg.name, "config"))
        return [found[k] for k in sorted(found)]

    def _refresh(self, cfg: ServiceProviderConfig, origin: str | None) -> ServiceProvider:
        with self._lock:
            xml, parsed = load_metadata(cfg, self._base_dir)
            self._store(cfg, xml, origin or "config")
        return ServiceProvider(cfg, parsed, origin or "config")

    def _store(self, cfg: ServiceProviderConfig, xml: bytes, origin: str) -> None:
        with self._db.begin() as session:
            row = session.get(SamlServiceProviderRow, cfg.entity_id)
            if row is None:
                row = SamlServiceProviderRow(entity_id=cfg.entity_id)
                session.add(row)
            row.origin = origin
            row.settings = json.dumps(cfg.model_dump(mode="json"))
            row.metadata_xml = xml.decode("utf-8")
            row.updated_at = utcnow()
        self._cache.pop(cfg.entity_id, None)

    def _touch(self, entity_id: str) -> None:
        with self._db.begin() as session:
            row = session.get(SamlServiceProviderRow, entity_id)
            if row is not None:
                row.updated_at = utcnow()  # retried after another refresh period; the copy is kept
