"""Short-lived state behind one small interface: SQL by default, Redis when configured.

Used for pending authorization requests, authorization codes and replay caches. ``take``
is atomic: of any number of concurrent calls for one key, exactly one gets the value;
the key is remembered as taken until it expires, so a second use can be recognised.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any, Protocol

import redis
from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from broker.storage.database import read_only
from broker.storage.models import EphemeralStateRow
from broker.storage.types import utcnow


@dataclasses.dataclass(frozen=True, slots=True)
class Taken:
    """The result of ``take``: ``value`` for the one caller that won, else ``already_taken``."""

    value: dict[str, Any] | None
    already_taken: bool


class StateStore(Protocol):
    """Short-lived key/value state in namespaces, with expiry and atomic single use."""

    def add(self, namespace: str, key: str, value: dict[str, Any], ttl_seconds: int) -> bool:
        """Store ``value`` unless the key exists (and has not expired); return True if stored."""
        ...

    def get(self, namespace: str, key: str) -> dict[str, Any] | None:
        """Return the live, untaken value, or None; a counter reads as ``{"n": count}``."""
        ...

    def get_many(self, namespace: str, keys: list[str]) -> list[dict[str, Any] | None]:
        """Return ``get`` of each key, in order, in one round trip to the store."""
        ...

    def take(self, namespace: str, key: str) -> Taken:
        """Atomically return the value once; later calls see ``already_taken`` until expiry."""
        ...

    def delete(self, namespace: str, key: str) -> None:
        """Forget the key."""
        ...

    def incr(self, namespace: str, key: str, ttl_seconds: int) -> int:
        """Add one to the counter at key (starting a window of ``ttl_seconds`` at the first); return it."""
        ...


_READ_LIVE = select(EphemeralStateRow.key, EphemeralStateRow.value).where(
    EphemeralStateRow.namespace == bindparam("namespace"),
    EphemeralStateRow.key.in_(bindparam("keys", expanding=True)),
    EphemeralStateRow.expires_at > bindparam("now"),
    EphemeralStateRow.taken.is_(False),
)
#: ``_READ_LIVE`` for one and two keys (a sign-in reads an account's and an address's counters)
#: with plain parameters: an expanding IN is re-rendered at every execution.
_READ_LIVE_FEW = {
    count: select(EphemeralStateRow.key, EphemeralStateRow.value).where(
        EphemeralStateRow.namespace == bindparam("namespace"),
        EphemeralStateRow.key.in_([bindparam(f"key{n}") for n in range(count)]),
        EphemeralStateRow.expires_at > bindparam("now"),
        EphemeralStateRow.taken.is_(False),
    )
    for count in (1, 2)
}


class SqlStateStore:
    """``StateStore`` over the ``ephemeral_state`` table."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._engine = sessions.kw["bind"]
        self._reader = read_only(self._engine)

    def add(self, namespace: str, key: str, value: dict[str, Any], ttl_seconds: int) -> bool:
        now = utcnow()
        with self._sessions.begin() as session:
            session.execute(
                delete(EphemeralStateRow).where(
                    EphemeralStateRow.namespace == namespace,
                    EphemeralStateRow.key == key,
                    EphemeralStateRow.expires_at <= now,
                )
            )
        try:
            with self._sessions.begin() as session:
                session.execute(
                    insert(EphemeralStateRow).values(
                        namespace=namespace,
                        key=key,
                        value=json.dumps(value),
                        expires_at=now + dt.timedelta(seconds=ttl_seconds),
                        taken=False,
                    )
                )
        except IntegrityError:
            return False
        return True

    def get(self, namespace: str, key: str) -> dict[str, Any] | None:
        return self.get_many(namespace, [key])[0]

    def get_many(self, namespace: str, keys: list[str]) -> list[dict[str, Any] | None]:
        if not keys:
            return []
        # A prebuilt statement on a plain connection: reads are on every sign-in, and an ORM
        # session costs several times the query itself.
        unique = list(dict.fromkeys(keys))
        params: dict[str, Any] = {"namespace": namespace, "now": utcnow()}
        statement = _READ_LIVE_FEW.get(len(unique))
        if statement is None:
            statement, params["keys"] = _READ_LIVE, unique
        else:
            params.update({f"key{n}": key for n, key in enumerate(unique)})
        with self._reader.connect() as connection:
            rows = connection.execute(statement, params).all()
        found = {row.key: json.loads(row.value) for row in rows}
        return [found.get(key) for key in keys]

    def take(self, namespace: str, key: str) -> Taken:
        now = utcnow()
        where = (EphemeralStateRow.namespace == namespace, EphemeralStateRow.key == key)
        with self._sessions.begin() as session:
            # UPDATE ... WHERE taken = false RETURNING: the row lock makes one caller win.
            row = session.execute(
                update(EphemeralStateRow)
                .where(*where, EphemeralStateRow.taken.is_(False), EphemeralStateRow.expires_at > now)
                .values(taken=True)
                .returning(EphemeralStateRow.value)
            ).first()
            if row is not None:
                return Taken(json.loads(row.value), already_taken=False)
            seen = session.execute(
                select(EphemeralStateRow.taken).where(*where, EphemeralStateRow.expires_at > now)
            ).first()
        return Taken(None, already_taken=bool(seen and seen.taken))

    def delete(self, namespace: str, key: str) -> None:
        with self._sessions.begin() as session:
            session.execute(
                delete(EphemeralStateRow).where(EphemeralStateRow.namespace == namespace, EphemeralStateRow.key == key)
            )

    def incr(self, namespace: str, key: str, ttl_seconds: int) -> int:
        for _ in range(3):
            now = utcnow()
            try:
                with self._sessions.begin() as session:
                    row = session.execute(
                        select(EphemeralStateRow)
                        .where(EphemeralStateRow.namespace == namespace, EphemeralStateRow.key == key)
                        .with_for_update()
                    ).scalar_one_or_none()
                    if row is not None and row.expires_at > now:
                        count = int(json.loads(row.value).get("n", 0)) + 1
                        row.value = json.dumps({"n": count})
                        return count
                    if row is not None:
                        session.delete(row)
                        session.flush()
                    session.add(
                        EphemeralStateRow(
                            namespace=namespace, key=key, value=json.dumps({"n": 1}),
                            expires_at=now + dt.timedelta(seconds=ttl_seconds), taken=False,
                        )
                    )
                    return 1
            except IntegrityError:
                continue  # another writer created the counter first: count again on top of it
        raise RuntimeError("counter contention did not settle")

    def purge_expired(self) -> int:
        """Delete expired entries; return how many."""
        with self._sessions.begin() as session:
            result = session.execute(delete(EphemeralStateRow).where(EphemeralStateRow.expires_at <= utcnow()))
        return result.rowcount or 0


_TAKEN = "\x00taken"

# GET the value; if live and untaken, replace it with the tombstone keeping its TTL.
_TAKE_SCRIPT = """
local v = redis.call('GET', KEYS[1])
if not v then return {0, false} end
if v == ARGV[1] then return {1, false} end
redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL')
return {0, v}
"""


class RedisStateStore:
    """``StateStore`` over Redis; ``take`` is one Lua script, so atomic across workers and hosts."""

    def __init__(self, client: redis.Redis, prefix: str = "supercloud:") -> None:
        self._redis = client
        self._prefix = prefix
        self._take = client.register_script(_TAKE_SCRIPT)

    @classmethod
    def from_url(cls, url: str) -> RedisStateStore:
        """Return a store on the Redis server at ``url``."""
        return cls(redis.Redis.from_url(url))

    def _key(self, namespace: str, key: str) -> str:
        return f"{self._prefix}{namespace}:{key}"

    def add(self, namespace: str, key: str, value: dict[str, Any], ttl_seconds: int) -> bool:
        return bool(self._redis.set(self._key(namespace, key), json.dumps(value), nx=True, ex=ttl_seconds))

    def get(self, namespace: str, key: str) -> dict[str, Any] | None:
        raw = self._redis.get(self._key(namespace, key))
        if raw is None or raw.decode() == _TAKEN:
            return None
        value = json.loads(raw)
        return value if isinstance(value, dict) else {"n": value}  # counters (INCR) read as {"n": count}

    def get_many(self, namespace: str, keys: list[str]) -> list[dict[str, Any] | None]:
        if not keys:
            return []
        values: list[dict[str, Any] | None] = []
        for raw in self._redis.mget([self._key(namespace, key) for key in keys]):
            if raw is None or raw.decode() == _TAKEN:
                values.append(None)
            else:
                value = json.loads(raw)
                values.append(value if isinstance(value, dict) else {"n": value})
        return values

    def take(self, namespace: str, key: str) -> Taken:
        was_taken, raw = self._take(keys=[self._key(namespace, key)], args=[_TAKEN])
        if raw:
            return Taken(json.loads(raw), already_taken=False)
        return Taken(None, already_taken=bool(was_taken))

    def delete(self, namespace: str, key: str) -> None:
        self._redis.delete(self._key(namespace, key))

    def incr(self, namespace: str, key: str, ttl_seconds: int) -> int:
        pipe = self._redis.pipeline()
        name = self._key(namespace, key)
        pipe.incr(name)
        pipe.expire(name, ttl_seconds, nx=True)
        count, _ = pipe.execute()
        return int(count)
