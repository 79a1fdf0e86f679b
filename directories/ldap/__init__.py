"""LDAP and Active Directory directories over ldap3.

``build_ldap_directory(cfg)`` turns one validated ``LdapSourceConfig`` into a thread-safe
``Directory`` with its own connection pool and per-server circuit breakers. Modules, one
job each: ``transport`` (TLS, timeouts, TCP_NODELAY), ``servers`` (order, health, circuit
breaker), ``pool`` (reuse and failover), ``filters`` (RFC 4515), ``operations`` (search,
bind), ``status`` (AD sub-codes and account flags), ``groups`` (nesting), ``group_graph``
(the cached group graph of ``group_mode: member_of``), ``attributes`` (binary values,
canonical names), ``directory`` (the flow).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from config.ldap_source import LdapSourceConfig
from config.secrets import SecretUnavailable
from directories.errors import DirectoryError, DirectoryErrorCode
from directories.ldap.directory import LdapDirectory
from directories.ldap.group_graph import GroupGraphCache, load_group_graph
from directories.ldap.groups import (
    GroupResolver,
    InChainGroups,
    MemberOfGroups,
    NoGroups,
    RecursiveGroups,
    TokenGroupsGroups,
)
from directories.ldap.pool import ConnectionPool
from directories.ldap.servers import CircuitState, ServerHealth, ServerSet
from directories.ldap.transport import ConnectionFactory, TransportSettings

log = logging.getLogger(__name__)

__all__ = ["CircuitState", "LdapDirectory", "ServerHealth", "build_ldap_directory"]


def build_group_resolver(cfg: LdapSourceConfig, pool: ConnectionPool | None = None) -> GroupResolver:
    """Return the group resolver for ``cfg.effective_group_mode``.

    ``member_of`` needs ``pool``: its group graph is loaded in the background on one of the
    pool's service connections. Raises ValueError for ``member_of`` without a pool.
    """
    base = cfg.group_base_dn or cfg.base_dn
    mode = cfg.effective_group_mode
    is_ad = cfg.type == "active_directory"
    if mode == "in_chain":
        return InChainGroups(base)
    if mode == "token_groups":
        return TokenGroupsGroups(base)
    if mode == "recursive":
        return RecursiveGroups(base, cfg.group_max_depth, "objectGUID" if is_ad else "entryUUID")
    if mode == "member_of":
        if pool is None:
            raise ValueError("group_mode member_of needs the directory's connection pool")
        cache = GroupGraphCache(
            cfg.id,
            lambda: pool.run("service", lambda conn: load_group_graph(conn, cfg)),
            refresh_seconds=cfg.group_graph_refresh_seconds,
            max_age_seconds=cfg.group_graph_max_age_seconds,
        )
        live: GroupResolver = InChainGroups(base) if is_ad else RecursiveGroups(base, cfg.group_max_depth)
        return MemberOfGroups(cache, live, max_depth=cfg.group_max_depth, active_directory=is_ad)
    return NoGroups()


def build_ldap_directory(
    cfg: LdapSourceConfig,
    *,
    tcp_nodelay: bool = True,
    clock: Callable[[], float] = time.monotonic,
) -> LdapDirectory:
    """Return a ``Directory`` for ``cfg`` (no connection is opened until first use).

    Logs a warning when the directory sends passwords without TLS (``tls_mode: plain``,
    accepted only with ``allow_plain``). Raises ``DirectoryError(MISCONFIGURED)`` when the
    CA file cannot be loaded or the service account's password (a ``SecretRef``) was never
    resolved. ``tcp_nodelay=False`` exists for the benchmark only;
    ``clock`` (the circuit breaker's) for tests.
    """
    if cfg.tls_mode == "plain":
        log.warning(
            "directory %s uses plain LDAP: passwords cross the network unencrypted (allow_plain is set)",
            cfg.id,
        )
    try:
        bind_password = cfg.bind_password.reveal()
    except SecretUnavailable as exc:
        raise DirectoryError(DirectoryErrorCode.MISCONFIGURED, f"{cfg.id}: {exc}") from None
    settings = TransportSettings(
        tls_mode=cfg.tls_mode,
        ca_file=cfg.ca_file,
        tls_server_name=cfg.tls_server_name,
        connect_timeout=cfg.connect_timeout_seconds,
        response_timeout=cfg.response_timeout_seconds,
        bind_dn=cfg.bind_dn,
        bind_password=bind_password,
        tcp_nodelay=tcp_nodelay,
    )
    servers = ServerSet(
        cfg.urls, failure_threshold=cfg.failure_threshold, open_seconds=cfg.circuit_open_seconds, clock=clock
    )
    pool = ConnectionPool(
        cfg.id, ConnectionFactory(settings), servers, cfg.pool_size, max_idle_seconds=cfg.pool_max_idle_seconds
    )
    return LdapDirectory(cfg, pool, build_group_resolver(cfg, pool))
