"""Account records: what a directory says about one account."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping


class AccountStatus(enum.StrEnum):
    """The state of an account as its directory reports it."""

    ACTIVE = "active"
    DISABLED = "disabled"
    LOCKED = "locked"
    EXPIRED = "expired"
    PASSWORD_EXPIRED = "password_expired"
    PASSWORD_MUST_CHANGE = "password_must_change"


@dataclasses.dataclass(frozen=True, slots=True)
class GroupRef:
    """A group the account belongs to (directly or through nesting).

    ``id`` is the directory's stable identifier for the group (objectGUID / entryUUID /
    the static file's id); ``name`` is its display name (cn).
    """

    id: str
    name: str


@dataclasses.dataclass(frozen=True, slots=True)
class AccountRecord:
    """One directory account.

    ``object_id`` is the directory's stable, never-reassigned identifier (objectGUID for
    AD, entryUUID for OpenLDAP): the subject of the identity built from it, never the
    username. ``attributes`` holds canonical attribute names (``name``, ``email``,
    ``employee_id``, ``department`` ...) already mapped from the directory's own names.
    """

    directory_id: str
    object_id: str
    username: str
    attributes: Mapping[str, str | tuple[str, ...]]
    groups: tuple[GroupRef, ...] = ()
    status: AccountStatus = AccountStatus.ACTIVE
