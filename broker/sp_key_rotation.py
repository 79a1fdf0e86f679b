"""Rolling over the SP keys of upstream SAML sources (``supercloud keys rotate --saml-sp``, and
``--if-due`` from cron), audited like the broker's own key rotation."""

from __future__ import annotations

from typing import Any

from broker.audit import AuditEvent
from federation.errors import FederationError, FederationErrorCode


def _rotatable(services: Any) -> list[Any]:
    return [s for org in services.registry.organisations.values() for s in org.sources if hasattr(s, "rotate_keys")]


def rotate_sp_keys(services: Any, source_id: str, *, actor: str) -> list[str]:
    """Rotate the SP keys of SAML source ``source_id`` now; return lines to print.

    Raises FederationError(MISCONFIGURED) for an unknown source or one with configured keys.
    """
    source = next((s for s in _rotatable(services) if s.id == source_id), None)
    if source is None:
        raise FederationError(FederationErrorCode.MISCONFIGURED, f"no upstream SAML source {source_id!r}")
    source.rotate_keys()
    services.audit.append(AuditEvent("saml_sp_keys_rotated", "success", actor=actor, details={"source": source_id}))
    return [f"{source_id}: SP keys rotated (the next key is now current; the old encryption key still decrypts)"]


def rotate_due_sp_keys(services: Any, max_age_days: int) -> list[str]:
    """Rotate every generated SP key set older than ``max_age_days``; return lines to print."""
    lines = []
    for source in _rotatable(services):
        try:
            rotated = source.rotate_keys(max_age_days=max_age_days)
        except FederationError:
            continue  # configured keys (sp_key): the operator rotates them
        if rotated:
            services.audit.append(AuditEvent("saml_sp_keys_rotated", "success", actor="schedule",
                                             details={"source": source.id, "max_age_days": max_age_days}))
        lines.append(f"{source.id}: SP keys {'rotated' if rotated else f'not due (max age {max_age_days} days)'}")
    return lines
