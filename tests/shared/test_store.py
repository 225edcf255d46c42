"""The ephemeral store contract: every backend must pass every test here."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import MetaData, create_engine, create_mock_engine

from shared.store import RedisStore, SqlStore, Store, define_store_table
from tests.conftest import TEST_REDIS_URL, MakeDatabaseUrl, flush_redis_prefix

BACKENDS = [
    "sql",
    pytest.param(
        "redis",
        marks=pytest.mark.skipif(
            not TEST_REDIS_URL,
            reason="TEST_REDIS_URL is not set (the PostgreSQL + Redis run covers it)",
        ),
    ),
]


@pytest.fixture(scope="module")
def _sql_engine(make_database_url: MakeDatabaseUrl) -> Iterator[object]:
    url = make_database_url("store")
    engine = create_engine(url, connect_args={"timeout": 15} if url.startswith("sqlite") else {})
    metadata = MetaData()
    define_store_table(metadata)
    metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, _sql_engine: object) -> Iterator[Store]:
    """A store with a fresh key prefix, on each backend."""
    prefix = f"t{secrets.token_hex(4)}:"
    if request.param == "sql":
        yield SqlStore(_sql_engine, prefix)  # type: ignore[arg-type]
    else:
        assert TEST_REDIS_URL
        redis_store = RedisStore.from_url(TEST_REDIS_URL, prefix)
        yield redis_store
        flush_redis_prefix(TEST_REDIS_URL, prefix)
        redis_store.client.close()


def test_set_then_get_returns_value(store: Store) -> None:
    """A stored value reads back unchanged, Chinese included."""
    store.set("k", "值 value", ttl=60)
    assert store.get("k") == "值 value"


def test_get_of_missing_key_is_none(store: Store) -> None:
    """An unknown key reads as None."""
    assert store.get("missing") is None


def test_set_replaces_value_and_ttl(store: Store) -> None:
    """A second set overwrites the first value."""
    store.set("k", "one", ttl=60)
    store.set("k", "two", ttl=60)
    assert store.get("k") == "two"


def test_value_expires_after_ttl(store: Store) -> None:
    """After its TTL a value is gone for get, take and ttl."""
    store.set("k", "v", ttl=0.2)
    assert store.get("k") == "v"
    time.sleep(0.35)
    assert store.get("k") is None
    assert store.take("k") is None
    assert store.ttl("k") is None


def test_ttl_reports_remaining_seconds(store: Store) -> None:
    """ttl() is close to what was set and None for absent keys."""
    store.set("k", "v", ttl=30)
    remaining = store.ttl("k")
    assert remaining is not None and 28 < remaining <= 30
    assert store.ttl("absent") is None


def test_non_positive_ttl_is_refused(store: Store) -> None:
    """A zero TTL is a programming error, not a value that never expires."""
    with pytest.raises(ValueError):
        store.set("k", "v", ttl=0)


def test_take_returns_value_once(store: Store) -> None:
    """take() reads and deletes: the second take finds nothing."""
    store.set("ticket", "ST-1", ttl=60)
    assert store.take("ticket") == "ST-1"
    assert store.take("ticket") is None
    assert store.get("ticket") is None


def test_delete_reports_whether_something_was_removed(store: Store) -> None:
    """delete() is True for a live key and False afterwards."""
    store.set("k", "v", ttl=60)
    assert store.delete("k") is True
    assert store.delete("k") is False
    assert store.get("k") is None


def test_add_stores_only_when_absent(store: Store) -> None:
    """add() refuses to overwrite a live key but takes over an expired one."""
    assert store.add("nonce", "first", ttl=0.2) is True
    assert store.add("nonce", "second", ttl=60) is False
    assert store.get("nonce") == "first"
    time.sleep(0.35)
    assert store.add("nonce", "third", ttl=60) is True
    assert store.get("nonce") == "third"


def test_hit_counts_within_window(store: Store) -> None:
    """hit() counts events; count() reads the count without adding one."""
    assert store.count("fails") == 0
    assert [store.hit("fails", window=60) for _ in range(3)] == [1, 2, 3]
    assert store.count("fails") == 3


def test_counts_reads_several_counters_in_order(store: Store) -> None:
    """counts() gives each key's count in the order asked; absent and expired keys count 0."""
    store.hit("a", window=60)
    store.hit("a", window=60)
    store.hit("gone", window=0.2)
    store.hit("b", window=60)
    time.sleep(0.35)
    assert store.counts("b", "missing", "a", "gone") == [1, 0, 2, 0]
    assert store.counts("a") == [store.count("a")] == [2]


def test_hit_unless_counts_only_while_the_blocker_is_absent(store: Store) -> None:
    """hit_unless() counts like hit(); while the blocker lives it counts nothing (None)."""
    assert store.hit_unless("tries", 60, blocker="lock") == 1
    store.set("lock", "1", ttl=0.2)
    assert store.hit_unless("tries", 60, blocker="lock") is None
    assert store.count("tries") == 1
    time.sleep(0.35)
    assert store.hit_unless("tries", 60, blocker="lock") == 2


def test_unhit_takes_back_one_event_and_keeps_the_window(store: Store) -> None:
    """unhit() gives back one counted event: never below zero, the window's end unchanged."""
    store.hit("sent", window=60)
    store.hit("sent", window=60)
    before = store.ttl("sent")
    store.unhit("sent")
    assert store.count("sent") == 1
    remaining = store.ttl("sent")
    assert before is not None and remaining is not None and 0 < remaining <= before
    store.unhit("sent")
    store.unhit("sent")
    store.unhit("never-counted")
    assert store.count("sent") == 0
    assert store.count("never-counted") == 0
    assert store.hit("sent", window=60) == 1


def test_hit_window_restarts_after_expiry(store: Store) -> None:
    """A fixed window: once it has passed the count starts again at one."""
    store.hit("fails", window=0.2)
    store.hit("fails", window=0.2)
    time.sleep(0.35)
    assert store.count("fails") == 0
    assert store.hit("fails", window=0.2) == 1


def test_hit_does_not_extend_the_window(store: Store) -> None:
    """Later hits keep the window's original end (else a steady trickle never resets)."""
    store.hit("fails", window=0.4)
    time.sleep(0.25)
    store.hit("fails", window=0.4)
    remaining = store.ttl("fails")
    assert remaining is not None and remaining < 0.2


def test_prefixes_keep_namespaces_apart(store: Store, _sql_engine: object) -> None:
    """Two stores with different prefixes never see each other's keys."""
    store.set("shared-name", "mine", ttl=60)
    other: Store
    if isinstance(store, SqlStore):
        other = SqlStore(_sql_engine, "other:")  # type: ignore[arg-type]
    else:
        other = RedisStore(store.client, "other:")  # type: ignore[attr-defined]
    assert other.get("shared-name") is None


def test_ping_succeeds_on_reachable_backend(store: Store) -> None:
    """ping() returns quietly when the backend answers."""
    store.ping()


def _race(workers: int, action: object) -> list[object]:
    barrier = threading.Barrier(workers)
    results: list[object] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            value = action()  # type: ignore[operator]
            with lock:
                results.append(value)
        except BaseException as exc:  # surfaced below, never swallowed
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return results


def test_exactly_one_concurrent_take_wins(store: Store) -> None:
    """Of 16 threads taking the same single-use value at once, exactly one gets it."""
    for round_ in range(5):
        key = f"ticket-{round_}"
        store.set(key, "ST-secret", ttl=60)
        results = _race(16, lambda key=key: store.take(key))
        assert sorted(results, key=str).count("ST-secret") == 1
        assert results.count(None) == 15


def test_concurrent_hits_are_all_counted(store: Store) -> None:
    """Parallel failures cannot slip past a limit: every hit gets a distinct count."""
    results = _race(16, lambda: store.hit("fails", window=60))
    assert sorted(results) == list(range(1, 17))  # type: ignore[type-var]
    assert store.count("fails") == 16


def test_exactly_one_concurrent_add_wins(store: Store) -> None:
    """Replay protection: of many threads adding one nonce, exactly one succeeds."""
    results = _race(16, lambda: store.add("nonce", "x", ttl=60))
    assert results.count(True) == 1


def test_sql_store_purges_expired_rows(_sql_engine: object) -> None:
    """purge_expired() deletes rows past their expiry and keeps live ones."""
    sql = SqlStore(_sql_engine, f"p{secrets.token_hex(4)}:")  # type: ignore[arg-type]
    sql.set("old", "v", ttl=0.1)
    sql.set("live", "v", ttl=60)
    time.sleep(0.2)
    assert sql.purge_expired() >= 1
    assert sql.get("live") == "v"


def test_sql_store_rejects_unsupported_database() -> None:
    """Only SQLite and PostgreSQL are supported by the SQL backend."""
    engine = create_mock_engine("mysql://", executor=None)
    with pytest.raises(ValueError, match="SQLite and PostgreSQL"):
        SqlStore(engine)  # type: ignore[arg-type]


def test_delete_removes_several_keys_at_once(store: Store) -> None:
    """delete(a, b, c) removes every key in one call; True when any was live."""
    store.set("a", "1", ttl=60)
    store.hit("b", window=60)
    assert store.delete("a", "b", "never-set") is True
    assert store.get("a") is None and store.count("b") == 0
    assert store.delete("a", "b") is False


def test_long_keys_work_like_any_other_key(store: Store) -> None:
    """A key past 255 characters is stored, read, counted and taken as Redis does."""
    common = "oidc-state:" + "s" * 300
    first, second = common + "-first", common + "-second"
    store.set(first, "one", 60)
    store.set(second, "two", 60)
    assert (store.get(first), store.get(second)) == ("one", "two")
    assert store.take(first) == "one"
    assert store.take(first) is None
    assert store.get(second) == "two"
    assert store.delete(second) is True
    assert store.get("x" * 1000) is None
    assert store.hit("n" * 400, 60) == 1
    assert store.counts("n" * 400, "m" * 400) == [1, 0]
