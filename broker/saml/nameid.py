"""NameIDs the IdP issues (SAML Core §8.3): persistent pairwise, transient, email.

A persistent NameID is the OIDC pairwise derivation (``broker.oidc.subject_types``): a keyed
hash of the SP's sector (default its entity id) and the broker subject — stable per person
and SP, unlinkable across SPs without the master key. A transient one is random per assertion.
"""

from __future__ import annotations

import secrets

from broker.errors import BrokerError, BrokerErrorCode
from broker.oidc.subject_types import PAIRWISE_LABEL
from federation.keys import MasterKey

PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
TRANSIENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
EMAIL = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
UNSPECIFIED = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"
FORMATS = {"persistent": PERSISTENT, "transient": TRANSIENT, "email": EMAIL}


class NameIdPolicyError(Exception):
    """The requested NameID format cannot be issued (samlp:InvalidNameIDPolicy)."""


def choose_format(requested: str | None, configured: str) -> str:
    """Return the NameID format URI for a request's NameIDPolicy ``Format``.

    Absent or ``unspecified``: the SP's configured format. Persistent and transient are
    always available; email only for an SP configured for it. Raises NameIdPolicyError otherwise.
    """
    if requested in (None, "", UNSPECIFIED):
        return FORMATS[configured]
    if requested in (PERSISTENT, TRANSIENT):
        return requested
    if requested == EMAIL and configured == "email":
        return EMAIL
    raise NameIdPolicyError(f"NameID format {requested!r} is not offered to this service")


def name_id(fmt: str, *, master: MasterKey, sector: str, subject_id: str, email: str | None) -> str:
    """Return the NameID value of ``fmt`` for the person.

    Raises BrokerError(BAD_REQUEST) for email when the person has no email address.
    """
    if fmt == PERSISTENT:
        return master.keyed_hash(PAIRWISE_LABEL, f"{sector}\x00{subject_id}")
    if fmt == TRANSIENT:
        return "_" + secrets.token_hex(20)
    if fmt == EMAIL:
        if not email:
            raise BrokerError(BrokerErrorCode.BAD_REQUEST, "This service needs your email address, and none is known for you.")
        return email
    raise BrokerError(BrokerErrorCode.BAD_REQUEST, f"unknown NameID format {fmt!r}")
