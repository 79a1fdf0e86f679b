"""Server order, health tracking and a circuit breaker per server (domain controller).

Servers are tried in configured order. A server that fails ``failure_threshold`` times in
a row has its circuit *opened*: it is skipped for ``open_seconds``; then one caller gets a
*half-open* trial; success closes the circuit, failure opens it again. Thread-safe.
"""

from __future__ import annotations

import dataclasses
import enum
import threading
import time
from collections.abc import Callable


class CircuitState(enum.StrEnum):
    """The state of one server's circuit breaker."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclasses.dataclass(frozen=True, slots=True)
class ServerHealth:
    """A snapshot of one server's health, for the admin console and logs."""

    url: str
    state: CircuitState
    consecutive_failures: int
    total_failures: int
    total_successes: int
    last_error: str | None
    last_latency_ms: float | None


class Server:
    """One server's health and circuit. Use through ``ServerSet``."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.state = CircuitState.CLOSED
        self.consecutive_failures = 0
        self.total_failures = 0
        self.total_successes = 0
        self.last_error: str | None = None
        self.last_latency_ms: float | None = None
        self.opened_at = 0.0
        self.trial_in_flight = False


class ServerSet:
    """The ordered servers of one directory with their circuit breakers."""

    def __init__(
        self,
        urls: tuple[str, ...],
        *,
        failure_threshold: int,
        open_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not urls:
            raise ValueError("a directory needs at least one server url")
        self._servers = tuple(Server(url) for url in urls)
        self._threshold = failure_threshold
        self._open_seconds = open_seconds
        self._clock = clock
        self._lock = threading.Lock()

    def candidates(self) -> list[Server]:
        """Return the servers to try now, in configured order.

        Servers whose circuit is open are left out until ``open_seconds`` have passed;
        then exactly one caller receives the server (half-open trial) until it reports
        back. Returns an empty list when every circuit is open.
        """
        now = self._clock()
        chosen = []
        with self._lock:
            for server in self._servers:
                if server.state is CircuitState.CLOSED:
                    chosen.append(server)
                elif server.state is CircuitState.OPEN and now - server.opened_at >= self._open_seconds:
                    server.state = CircuitState.HALF_OPEN
                    server.trial_in_flight = True
                    chosen.append(server)
                elif server.state is CircuitState.HALF_OPEN and not server.trial_in_flight:
                    server.trial_in_flight = True
                    chosen.append(server)
        return chosen

    def release(self, server: Server) -> None:
        """Give back a half-open trial that was handed out but not used. Returns None."""
        with self._lock:
            server.trial_in_flight = False

    def record_success(self, server: Server, latency_seconds: float) -> None:
        """Record that ``server`` answered; closes its circuit. Returns None."""
        with self._lock:
            server.state = CircuitState.CLOSED
            server.consecutive_failures = 0
            server.total_successes += 1
            server.trial_in_flight = False
            server.last_latency_ms = latency_seconds * 1000.0

    def record_failure(self, server: Server, error: str) -> None:
        """Record that ``server`` failed; opens its circuit at the threshold. Returns None."""
        with self._lock:
            server.consecutive_failures += 1
            server.total_failures += 1
            server.last_error = error
            server.trial_in_flight = False
            if server.state is CircuitState.HALF_OPEN or server.consecutive_failures >= self._threshold:
                server.state = CircuitState.OPEN
                server.opened_at = self._clock()

    def after_fork(self) -> None:
        """In a forked child: replace the lock (a parent thread may have held it). Returns None."""
        self._lock = threading.Lock()

    def health(self) -> tuple[ServerHealth, ...]:
        """Return a snapshot of every server's health, in configured order."""
        with self._lock:
            return tuple(
                ServerHealth(
                    url=s.url,
                    state=s.state,
                    consecutive_failures=s.consecutive_failures,
                    total_failures=s.total_failures,
                    total_successes=s.total_successes,
                    last_error=s.last_error,
                    last_latency_ms=s.last_latency_ms,
                )
                for s in self._servers
            )
