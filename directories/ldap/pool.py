"""A thread-safe pool of ldap3 connections with failover across a directory's servers.

``run(kind, operation)`` borrows a connection of ``kind`` to the first available server,
runs ``operation(conn)`` and returns its result. Connections are reused (LIFO) and each is
used by one thread at a time, so one pool serves all threads of a gunicorn worker.

"auth" connections carry only users' simple binds: a bind replaces whatever identity the
connection had (RFC 4511 §4.2.1), so after a failed or successful bind as one person the
same connection serves the next person's bind, and it is never used to search. "service"
connections are bound as the service account when opened and only search.

Processes: idle connections belong to the process that opened them. If the pool is used
in a child after ``fork`` (a gunicorn worker forked after the app was built), the child
forgets the inherited connections without touching them (their sockets are shared with
the parent) and opens its own, and gets fresh locks.

Failure handling: a *reused* connection that fails is dropped and the operation retried
once on a fresh connection to the same server (the server may just have closed an idle
connection); a fresh connection that fails counts against the server's circuit breaker and
the next server is tried. Operations must therefore be idempotent (searches and binds are).
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import ldap3
from ldap3.core.exceptions import (
    LDAPCertificateError,
    LDAPCommunicationError,
    LDAPExceptionError,
    LDAPResponseTimeoutError,
    LDAPStartTLSError,
)

from directories.errors import DirectoryError, DirectoryErrorCode
from directories.ldap.servers import Server, ServerSet
from directories.ldap.transport import ConnectionFactory, ConnectionKind, ServerFailure, close_quietly

log = logging.getLogger(__name__)
T = TypeVar("T")
# Errors of the connection or the server (fail over); other ldap3 errors are our own bugs.
_TRANSPORT_ERRORS = (
    LDAPCommunicationError,
    LDAPStartTLSError,
    LDAPCertificateError,
    LDAPResponseTimeoutError,
    OSError,  # includes ssl.SSLError and socket timeouts
)


class ConnectionPool:
    """Idle connections per (server, kind), at most ``size`` of each, plus failover."""

    def __init__(
        self,
        directory_id: str,
        factory: ConnectionFactory,
        servers: ServerSet,
        size: int,
        *,
        max_idle_seconds: float = 300.0,
        clock: Callable[[], float] = time.perf_counter,
        getpid: Callable[[], int] = os.getpid,
    ) -> None:
        self._directory_id = directory_id
        self._factory = factory
        self._servers = servers
        self._size = size
        self._max_idle = max_idle_seconds
        self._clock = clock
        # (server url, kind) -> idle connections with the time each was given back
        self._idle: dict[tuple[str, str], collections.deque[tuple[ldap3.Connection, float]]] = collections.defaultdict(
            collections.deque
        )
        self._lock = threading.Lock()
        self._closed = False
        self._getpid = getpid
        self._pid = getpid()

    @property
    def servers(self) -> ServerSet:
        """The servers this pool fails over between."""
        return self._servers

    def run(self, kind: ConnectionKind, operation: Callable[[ldap3.Connection], T]) -> T:
        """Run ``operation`` on a pooled connection of ``kind`` and return its result.

        ``operation`` raises ``ServerFailure`` (or lets an ldap3/socket error escape) to
        say the server failed; any ``DirectoryError`` it raises propagates unchanged.
        Raises ``DirectoryError(UNAVAILABLE)`` when no server could run it.
        """
        if self._closed:
            raise DirectoryError(DirectoryErrorCode.UNAVAILABLE, f"{self._directory_id}: pool closed")
        if self._getpid() != self._pid:
            self._forget_inherited()
        candidates = self._servers.candidates()
        errors: list[str] = []
        try:
            while candidates:
                server = candidates.pop(0)
                outcome = self._run_on(server, kind, operation, errors)
                if outcome is not _FAILED:
                    return outcome  # type: ignore[return-value]
        finally:
            for unused in candidates:
                self._servers.release(unused)
        detail = "; ".join(errors) if errors else "every server's circuit is open"
        raise DirectoryError(DirectoryErrorCode.UNAVAILABLE, f"{self._directory_id}: {detail}")

    def _forget_inherited(self) -> None:
        """In a forked child: drop the parent's idle connections unused (no unbind: the parent
        still owns them) and replace locks another thread of the parent may have held."""
        self._lock = threading.Lock()
        self._idle = collections.defaultdict(collections.deque)
        self._servers.after_fork()
        self._pid = self._getpid()
        log.info("directory %s: connection pool renewed in process %d", self._directory_id, self._pid)

    def _run_on(
        self, server: Server, kind: ConnectionKind, operation: Callable[[ldap3.Connection], T], errors: list[str]
    ) -> T | object:
        reused = self._take_idle(server.url, kind)
        if reused is not None:
            try:
                result = self._timed(server, reused, operation)
            except _Failed:
                close_quietly(reused)  # stale: fall through to one fresh attempt
            except DirectoryError:
                self._give_back(server.url, kind, reused)
                raise
            else:
                self._give_back(server.url, kind, reused)
                return result
        try:
            conn = self._factory.open(server.url, kind)
        except ServerFailure as exc:
            self._fail(server, str(exc), errors)
            return _FAILED
        except DirectoryError:
            self._servers.release(server)
            raise
        try:
            result = self._timed(server, conn, operation)
        except _Failed as exc:
            close_quietly(conn)
            self._fail(server, str(exc), errors)
            return _FAILED
        except DirectoryError:
            self._give_back(server.url, kind, conn)
            raise
        self._give_back(server.url, kind, conn)
        return result

    def _timed(self, server: Server, conn: ldap3.Connection, operation: Callable[[ldap3.Connection], T]) -> T:
        started = self._clock()
        try:
            result = operation(conn)
        except ServerFailure as exc:
            raise _Failed(f"{server.url}: {exc}") from None
        except _TRANSPORT_ERRORS as exc:
            raise _Failed(f"{server.url}: {type(exc).__name__}: {exc}") from None
        except DirectoryError:
            self._servers.release(server)
            raise
        except LDAPExceptionError as exc:
            # e.g. a filter ldap3 cannot encode: not the server's fault, so the circuit
            # stays closed, and the operation fails closed.
            self._servers.release(server)
            raise DirectoryError(
                DirectoryErrorCode.MISCONFIGURED, f"{self._directory_id}: {type(exc).__name__}: {exc}"
            ) from None
        self._servers.record_success(server, self._clock() - started)
        return result

    def _fail(self, server: Server, error: str, errors: list[str]) -> None:
        errors.append(error)
        log.warning("directory %s: server failed: %s", self._directory_id, error)
        self._servers.record_failure(server, error)

    def _take_idle(self, url: str, kind: str) -> ldap3.Connection | None:
        """Return the most recently used idle connection, closing any idle too long."""
        expired = []
        now = self._clock()
        with self._lock:
            idle = self._idle[(url, kind)]
            while idle and now - idle[0][1] > self._max_idle:
                expired.append(idle.popleft()[0])  # oldest first: servers drop idle connections
            conn = idle.pop()[0] if idle else None
        for old in expired:
            close_quietly(old)
        return conn

    def _give_back(self, url: str, kind: str, conn: ldap3.Connection) -> None:
        with self._lock:
            idle = self._idle[(url, kind)]
            if not self._closed and len(idle) < self._size and not conn.closed:
                idle.append((conn, self._clock()))
                return
        close_quietly(conn)

    def idle_count(self) -> int:
        """Return how many idle connections the pool holds (all servers and kinds)."""
        with self._lock:
            return sum(len(idle) for idle in self._idle.values())

    def close(self) -> None:
        """Close every idle connection; later ``run`` calls raise UNAVAILABLE. Returns None."""
        with self._lock:
            self._closed = True
            idle = [conn for conns in self._idle.values() for conn, _ in conns]
            self._idle.clear()
        for conn in idle:
            close_quietly(conn)


class _Failed(Exception):
    """Internal: the operation failed because of the server or the connection."""


_FAILED = object()
