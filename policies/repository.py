"""Where governed bundle versions live: a small repository protocol and an in-memory store.

The SQL implementation (one table of versions, one of history, one row naming the
active version) is ``broker.policy_store.SqlBundleRepository``; it passes the same
conformance tests (tests/policies/test_policies_repository.py) and makes ``activate``
a single transaction.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import threading
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

from policies.bundle import PolicyBundle
from policies.errors import PolicyError, PolicyErrorCode


class BundleState(enum.StrEnum):
    """Where a version is in its life: proposed -> approved -> active -> superseded."""

    PROPOSED = "proposed"
    APPROVED = "approved"
    ACTIVE = "active"
    SUPERSEDED = "superseded"


@dataclasses.dataclass(frozen=True, slots=True)
class BundleRecord:
    """One stored version of the bundle and who did what to it, when."""

    version: str
    bundle: PolicyBundle
    state: BundleState
    proposer: str
    proposed_at: dt.datetime
    approver: str | None = None
    approved_at: dt.datetime | None = None
    activated_at: dt.datetime | None = None

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (for a SQL or document store)."""
        def iso(value: dt.datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "version": self.version,
            "bundle": self.bundle.to_json(),
            "state": self.state.value,
            "proposer": self.proposer,
            "proposed_at": iso(self.proposed_at),
            "approver": self.approver,
            "approved_at": iso(self.approved_at),
            "activated_at": iso(self.activated_at),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BundleRecord:
        """Rebuild a record from ``to_json`` output. Raises PolicyError(INVALID_INPUT) if malformed."""
        def when(value: object) -> dt.datetime | None:
            return dt.datetime.fromisoformat(value) if isinstance(value, str) else None

        try:
            proposed_at = when(data["proposed_at"])
            if proposed_at is None:
                raise ValueError("proposed_at is required")
            return cls(
                version=str(data["version"]),
                bundle=PolicyBundle.from_json(data["bundle"]),
                state=BundleState(data["state"]),
                proposer=str(data["proposer"]),
                proposed_at=proposed_at,
                approver=data.get("approver"),
                approved_at=when(data.get("approved_at")),
                activated_at=when(data.get("activated_at")),
            )
        except (KeyError, ValueError, TypeError) as error:
            raise PolicyError(PolicyErrorCode.INVALID_INPUT, f"malformed bundle record: {error}") from error


@dataclasses.dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One governance step, kept in order: what happened to which version, by whom."""

    at: dt.datetime
    event: str
    version: str
    actor: str
    details: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "details", MappingProxyType(dict(self.details)))


@runtime_checkable
class BundleRepository(Protocol):
    """Storage for governed bundle versions."""

    def add(self, record: BundleRecord) -> None:
        """Store a new version. Raises PolicyError(VERSION_EXISTS) if the version is taken."""
        ...

    def get(self, version: str) -> BundleRecord | None:
        """Return the record of ``version``, or None."""
        ...

    def replace(self, record: BundleRecord) -> None:
        """Overwrite the record of an existing version. Raises PolicyError(UNKNOWN_VERSION)."""
        ...

    def versions(self) -> list[BundleRecord]:
        """Return every version, oldest proposal first."""
        ...

    def active_version(self) -> str | None:
        """Return the version in force, or None before the first activation."""
        ...

    def activate(self, version: str, at: dt.datetime) -> None:
        """Atomically make ``version`` active and the previously active one superseded.

        Raises PolicyError(UNKNOWN_VERSION).
        """
        ...

    def append_history(self, entry: HistoryEntry) -> None:
        """Append one governance step to the history."""
        ...

    def history(self) -> list[HistoryEntry]:
        """Return every governance step, oldest first."""
        ...


class InMemoryBundleRepository:
    """A BundleRepository in process memory (tests, a single-process pilot)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[str, BundleRecord] = {}
        self._active: str | None = None
        self._history: list[HistoryEntry] = []

    def add(self, record: BundleRecord) -> None:
        """Store a new version. Raises PolicyError(VERSION_EXISTS) if the version is taken."""
        with self._lock:
            if record.version in self._records:
                raise PolicyError(PolicyErrorCode.VERSION_EXISTS, f"version {record.version!r} already exists")
            self._records[record.version] = record

    def get(self, version: str) -> BundleRecord | None:
        """Return the record of ``version``, or None."""
        with self._lock:
            return self._records.get(version)

    def replace(self, record: BundleRecord) -> None:
        """Overwrite the record of an existing version. Raises PolicyError(UNKNOWN_VERSION)."""
        with self._lock:
            if record.version not in self._records:
                raise PolicyError(PolicyErrorCode.UNKNOWN_VERSION, f"no version {record.version!r}")
            self._records[record.version] = record

    def versions(self) -> list[BundleRecord]:
        """Return every version, oldest proposal first."""
        with self._lock:
            return list(self._records.values())

    def active_version(self) -> str | None:
        """Return the version in force, or None before the first activation."""
        with self._lock:
            return self._active

    def activate(self, version: str, at: dt.datetime) -> None:
        """Make ``version`` active and the previously active one superseded. Raises PolicyError(UNKNOWN_VERSION)."""
        with self._lock:
            record = self._records.get(version)
            if record is None:
                raise PolicyError(PolicyErrorCode.UNKNOWN_VERSION, f"no version {version!r}")
            if self._active is not None and self._active != version:
                previous = self._records[self._active]
                self._records[self._active] = dataclasses.replace(previous, state=BundleState.SUPERSEDED)
            self._records[version] = dataclasses.replace(record, state=BundleState.ACTIVE, activated_at=at)
            self._active = version

    def append_history(self, entry: HistoryEntry) -> None:
        """Append one governance step to the history."""
        with self._lock:
            self._history.append(entry)

    def history(self) -> list[HistoryEntry]:
        """Return every governance step, oldest first."""
        with self._lock:
            return list(self._history)
