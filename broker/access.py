"""The access gate: asked before any token or assertion is issued for a service.

``OidcProvider`` (and later the SAML IdP) call ``AccessGate.check`` at sign-in, at SSO reuse
and at refresh. A gate either returns an ``AccessGrant`` saying which attributes may be
released, or raises ``AccessDenied`` / ``StepUpRequired`` (an obligation the broker must
fulfil before asking again).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Protocol

from broker.errors import BrokerError, BrokerErrorCode
from federation.identity import AssuranceLevel, Identity


@dataclasses.dataclass(frozen=True, slots=True)
class AccessGrant:
    """Permission to issue for a service; ``released`` is the set of attribute names that
    may be released (None: no attribute restriction), ``policy_ids`` what decided."""

    released: frozenset[str] | None
    policy_ids: tuple[str, ...] = ()
    claims: Mapping[str, Any] = dataclasses.field(default_factory=dict)


class AccessDenied(BrokerError):
    """Raised when policy denies the person this service; ``message`` is safe to show them."""

    def __init__(self, message: str, *, policy_ids: tuple[str, ...] = (), reasons: tuple[str, ...] = ()) -> None:
        super().__init__(BrokerErrorCode.ACCESS_DENIED, message, status=403)
        self.policy_ids = policy_ids
        self.reasons = reasons


class ObligationPending(BrokerError):
    """Raised when access would be permitted once the person fulfils an obligation."""


class StepUpRequired(ObligationPending):
    """Raised when a permit exists only at a higher assurance level than the person has now."""

    def __init__(self, minimum: AssuranceLevel, service_name: str) -> None:
        super().__init__(
            BrokerErrorCode.STEP_UP_REQUIRED,
            f"{service_name} needs a stronger sign-in ({minimum.name}) than the one you used.",
            status=403,
        )
        self.minimum = minimum


class BreakGlassNeeded(ObligationPending):
    """Raised when a permit exists only under emergency access (break-glass)."""

    def __init__(self, service_id: str, service_name: str, *, policy_ids: tuple[str, ...] = ()) -> None:
        super().__init__(
            BrokerErrorCode.ACCESS_DENIED,
            f"You can open {service_name} only under emergency access.",
            status=403,
        )
        self.service_id = service_id
        self.service_name = service_name
        self.policy_ids = policy_ids


class AccessGate(Protocol):
    """Decides whether ``identity`` may reach the service behind ``client_id`` now."""

    def check(self, identity: Identity, client_id: str, service_name: str) -> AccessGrant:
        """Return the grant. Raises AccessDenied or StepUpRequired."""
        ...


class OpenAccess:
    """A gate that lets every signed-in person reach every registered service, releasing
    what their scopes ask for: for deployments that have not configured policies yet."""

    def check(self, identity: Identity, client_id: str, service_name: str) -> AccessGrant:
        return AccessGrant(released=None)


class MfaRequirement:
    """Wraps a gate: people of ``organisations``, or anyone reaching ``clients``, need AAL2 or more."""

    def __init__(self, inner: AccessGate, *, organisations: frozenset[str], clients: frozenset[str]) -> None:
        self._inner = inner
        self._organisations = organisations
        self._clients = clients

    def check(self, identity: Identity, client_id: str, service_name: str) -> AccessGrant:
        """Raise StepUpRequired(AAL2) below AAL2 where MFA is required; otherwise ask the inner gate."""
        required = identity.organisation in self._organisations or client_id in self._clients
        if required and identity.authn.assurance < AssuranceLevel.AAL2:
            raise StepUpRequired(AssuranceLevel.AAL2, service_name)
        return self._inner.check(identity, client_id, service_name)
