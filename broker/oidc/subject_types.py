"""Public and pairwise subject identifiers (OIDC Core §8, §8.1).

A pairwise ``sub`` is a keyed hash (HMAC-SHA256 under a subkey of the master key) of the
client's sector and the broker's subject: stable for one sector, unlinkable across
sectors without the master key, and not reversible.
"""

from __future__ import annotations

from broker.clients import Client
from federation.keys import MasterKey

PAIRWISE_LABEL = "pairwise-subject"


class SubjectIdentifiers:
    """Returns the ``sub`` a client sees for a broker subject."""

    def __init__(self, master_key: MasterKey) -> None:
        self._master = master_key

    def for_client(self, client: Client, subject_id: str) -> str:
        """Return ``subject_id`` for a public client, its pairwise identifier for a pairwise one."""
        if client.subject_type != "pairwise":
            return subject_id
        return self._master.keyed_hash(PAIRWISE_LABEL, f"{client.sector}\x00{subject_id}")
