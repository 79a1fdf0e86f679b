"""One conformance suite for every state store: SQL (SQLite or PostgreSQL) and Redis."""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Iterator

import pytest

from broker.state import RedisStateStore, SqlStateStore, StateStore
from tests.peers import peer_missing

REDIS_URL = os.environ.get("SUPERCLOUD_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture(params=["sql", "redis"])
def store(request, services) -> Iterator[StateStore]:  # type: ignore[no-untyped-def]
    if request.param == "sql":
        yield SqlStateStore(services.db)
        return
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError:
        peer_missing("Redis", f"start redis-server on {REDIS_URL} or set SUPERCLOUD_TEST_REDIS_URL")
    prefix = f"test:{secrets.token_hex(4)}:"
    yield RedisStateStore(client, prefix=prefix)
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)


def test_add_then_get(store: StateStore) -> None:
    assert store.add("ns", "k", {"a": 1}, 60)
    assert store.get("ns", "k") == {"a": 1}
    assert store.get("other", "k") is None


def test_add_refuses_a_live_key(store: StateStore) -> None:
    assert store.add("ns", "k", {"a": 1}, 60)
    assert not store.add("ns", "k", {"a": 2}, 60)
    assert store.get("ns", "k") == {"a": 1}


def test_take_returns_the_value_once_and_remembers(store: StateStore) -> None:
    store.add("ns", "k", {"a": 1}, 60)
    first = store.take("ns", "k")
    assert first.value == {"a": 1} and not first.already_taken
    second = store.take("ns", "k")
    assert second.value is None and second.already_taken
    assert store.get("ns", "k") is None


def test_take_of_an_unknown_key_is_not_taken(store: StateStore) -> None:
    result = store.take("ns", "never")
    assert result.value is None and not result.already_taken


def test_entries_expire(store: StateStore) -> None:
    store.add("ns", "k", {"a": 1}, 1)
    time.sleep(1.3)
    assert store.get("ns", "k") is None
    assert store.take("ns", "k").value is None
    assert store.add("ns", "k", {"a": 2}, 60), "an expired key can be reused"


def test_delete(store: StateStore) -> None:
    store.add("ns", "k", {"a": 1}, 60)
    store.delete("ns", "k")
    assert store.get("ns", "k") is None


def test_exactly_one_concurrent_take_wins(store: StateStore) -> None:
    store.add("ns", "race", {"won": True}, 60)
    results = []
    barrier = threading.Barrier(8)

    def taker() -> None:
        barrier.wait()
        results.append(store.take("ns", "race"))

    threads = [threading.Thread(target=taker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(1 for r in results if r.value is not None) == 1
    assert sum(1 for r in results if r.already_taken) == 7


def test_counters_count_within_their_window_and_restart_after(store: StateStore) -> None:
    assert [store.incr("throttle", "k", 1) for _ in range(3)] == [1, 2, 3]
    time.sleep(1.3)
    assert store.incr("throttle", "k", 60) == 1


def test_concurrent_increments_are_all_counted(store: StateStore) -> None:
    barrier = threading.Barrier(6)

    def bump() -> None:
        barrier.wait()
        for _ in range(5):
            store.incr("throttle", "race", 60)

    threads = [threading.Thread(target=bump) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.incr("throttle", "race", 60) == 31


def test_get_many_reads_several_keys_in_order(store: StateStore) -> None:
    store.add("ns", "a", {"a": 1}, 60)
    store.add("ns", "b", {"b": 2}, 60)
    store.add("ns", "taken", {"t": 3}, 60)
    store.take("ns", "taken")
    store.add("other", "c", {"c": 4}, 60)
    for _ in range(2):
        store.incr("ns", "counter", 60)
    assert store.get_many("ns", ["b", "missing", "a", "taken", "c", "counter", "a"]) == [
        {"b": 2}, None, {"a": 1}, None, None, {"n": 2}, {"a": 1},
    ]
    assert store.get_many("ns", []) == []


def test_get_many_of_one_or_two_keys_answers_as_for_more(store: StateStore) -> None:
    # One and two keys (a sign-in's throttle read) take their own prebuilt statement.
    store.add("ns", "a", {"a": 1}, 60)
    store.add("ns", "taken", {"t": 3}, 60)
    store.take("ns", "taken")
    store.add("other", "b", {"b": 2}, 60)
    store.incr("ns", "counter", 60)
    assert store.get_many("ns", ["a"]) == [{"a": 1}]
    assert store.get_many("ns", ["missing"]) == [None]
    assert store.get_many("ns", ["taken"]) == [None]
    assert store.get_many("ns", ["b"]) == [None]  # another namespace's key
    assert store.get_many("ns", ["counter", "a"]) == [{"n": 1}, {"a": 1}]
    assert store.get_many("ns", ["a", "a"]) == [{"a": 1}, {"a": 1}]
    assert store.get_many("ns", ["missing", "taken"]) == [None, None]


def test_get_many_leaves_out_expired_keys(store: StateStore) -> None:
    store.add("ns", "short", {"s": 1}, 1)
    store.add("ns", "long", {"l": 1}, 60)
    time.sleep(1.3)
    assert store.get_many("ns", ["short", "long"]) == [None, {"l": 1}]
