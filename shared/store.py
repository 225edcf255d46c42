"""The ephemeral store: short-lived, TTL'd, often single-use values shared by every process.

SMS codes, rate-limit counters, CAS tickets, OIDC codes and SSO sessions live here. Two
backends honour one contract (``tests/shared/test_store.py``): Redis when ``*_REDIS_URL`` is
set, otherwise a table in the app's own SQL database, so a laptop needs nothing but SQLite.

Values are strings (callers serialise JSON themselves). Keys are namespaced with a prefix so
both apps can share one Redis.
"""

from __future__ import annotations

import hashlib
import random
import time
from pathlib import Path
from typing import Any, Protocol, cast

import redis
from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    MetaData,
    String,
    Table,
    Text,
    case,
    create_engine,
    delete,
    event,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import ColumnElement

TABLE_NAME = "ephemeral_entries"
#: Width of the key column; longer keys are stored by digest (see :meth:`SqlStore._key`).
MAX_KEY_LENGTH = 255
_metadata = MetaData()
#: Defined once here; each app's models attach a copy to their metadata so migrations create it.
entries = Table(
    TABLE_NAME,
    _metadata,
    Column("key", String(MAX_KEY_LENGTH), primary_key=True),
    Column("value", Text, nullable=True),
    Column("counter", BigInteger, nullable=True),
    #: Expiry as milliseconds since the epoch; rows past it are treated as absent.
    Column("expires_at", BigInteger, nullable=False, index=True),
)

_BLANK: dict[str, Any] = {"value": None, "counter": None}

#: Probability that a write also purges expired rows, keeping the table small without a cron job.
PURGE_PROBABILITY = 0.01


def define_store_table(metadata: MetaData) -> Table:
    """Attach the store's table to an app's metadata, so its migrations create it."""
    return entries.to_metadata(metadata)


class Store(Protocol):
    """What both backends provide; ``ttl`` and ``window`` are in seconds."""

    def set(self, key: str, value: str, ttl: float) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds, replacing any previous value."""

    def add(self, key: str, value: str, ttl: float) -> bool:
        """Store only if ``key`` is absent (or expired); True when this call stored it."""

    def get(self, key: str) -> str | None:
        """The live value, or None."""

    def take(self, key: str) -> str | None:
        """Read and delete atomically: of concurrent takers exactly one gets the value."""

    def delete(self, *keys: str) -> bool:
        """Remove ``keys`` (one round trip); True if something live was removed."""

    def hit(self, key: str, window: float) -> int:
        """Count one event in a fixed window starting at the first event; return the count."""

    def hit_unless(self, key: str, window: float, blocker: str) -> int | None:
        """:meth:`hit`, unless ``blocker`` is live: then count nothing and return None."""

    def unhit(self, key: str) -> None:
        """Take back one event counted by :meth:`hit` in the current window (never below 0);
        the window keeps its end."""

    def count(self, key: str) -> int:
        """Events counted so far in the current window (0 when none or expired)."""

    def counts(self, *keys: str) -> list[int]:
        """:meth:`count` of each key, in order, read together (one round trip)."""

    def ttl(self, key: str) -> float | None:
        """Seconds until ``key`` expires, or None when absent."""

    def ping(self) -> None:
        """Raise if the backend cannot be reached."""


def _now_ms() -> int:
    return int(time.time() * 1000)


def _ms(seconds: float) -> int:
    if seconds <= 0:
        raise ValueError("ttl must be positive")
    return max(1, int(seconds * 1000))


class SqlStore:
    """The store as one table of the app's SQL database (SQLite or PostgreSQL).

    Every call is its own short transaction on its own connection, independent of the ORM
    session. On SQLite, do not call the store while the session holds uncommitted writes: the
    file has a single writer and the call would wait for the session's lock.
    """

    def __init__(self, engine: Engine, prefix: str = "") -> None:
        self.engine = engine
        self.prefix = prefix
        dialect = engine.dialect.name
        if dialect not in {"postgresql", "sqlite"}:
            raise ValueError(f"the SQL store supports SQLite and PostgreSQL, not {dialect}")
        self._postgres = dialect == "postgresql"

    def _upsert(
        self,
        key: str,
        values: dict[str, Any],
        where: ColumnElement[bool] | None = None,
    ) -> postgresql.Insert | sqlite.Insert:
        """INSERT … ON CONFLICT (key) DO UPDATE, in the dialect's own spelling (both agree)."""
        insert = postgresql.insert if self._postgres else sqlite.insert
        stmt = insert(entries).values(key=self._key(key), **{**_BLANK, **values})
        return stmt.on_conflict_do_update(
            index_elements=[entries.c.key], set_={**_BLANK, **values}, where=where
        )

    def _key(self, key: str) -> str:
        full = self.prefix + key
        if len(full) <= MAX_KEY_LENGTH:
            return full
        # Redis takes keys of any length, and some keys carry what a visitor sent (an OAuth
        # state): past the column's width the key is kept by its digest, readable start first,
        # so such a key is simply absent here too instead of failing the request.
        digest = hashlib.sha256(full.encode()).hexdigest()
        return f"{full[: MAX_KEY_LENGTH - len(digest) - 1]}#{digest}"

    def _maybe_purge(self) -> None:
        if random.random() < PURGE_PROBABILITY:  # noqa: S311 - not security relevant
            self.purge_expired()

    def purge_expired(self) -> int:
        """Delete every expired row; return how many went."""
        with self.engine.begin() as conn:
            result = conn.execute(delete(entries).where(entries.c.expires_at <= _now_ms()))
            return int(result.rowcount or 0)

    def set(self, key: str, value: str, ttl: float) -> None:
        """See :class:`Store`."""
        stmt = self._upsert(key, {"value": value, "expires_at": _now_ms() + _ms(ttl)})
        with self.engine.begin() as conn:
            conn.execute(stmt)
        self._maybe_purge()

    def add(self, key: str, value: str, ttl: float) -> bool:
        """See :class:`Store`."""
        now = _now_ms()
        # Take over an expired row in place; a live one stays and nothing is returned.
        stmt = self._upsert(
            key, {"value": value, "expires_at": now + _ms(ttl)}, where=entries.c.expires_at <= now
        ).returning(entries.c.key)
        with self.engine.begin() as conn:
            stored = conn.execute(stmt).first() is not None
        self._maybe_purge()
        return stored

    def get(self, key: str) -> str | None:
        """See :class:`Store`."""
        query = select(entries.c.value).where(
            entries.c.key == self._key(key), entries.c.expires_at > _now_ms()
        )
        with self.engine.connect() as conn:
            return cast("str | None", conn.execute(query).scalar())

    def take(self, key: str) -> str | None:
        """See :class:`Store`. One DELETE … RETURNING: the database picks the single winner."""
        stmt = (
            delete(entries)
            .where(entries.c.key == self._key(key), entries.c.expires_at > _now_ms())
            .returning(entries.c.value)
        )
        with self.engine.begin() as conn:
            return cast("str | None", conn.execute(stmt).scalar())

    def delete(self, *keys: str) -> bool:
        """See :class:`Store`."""
        stmt = (
            delete(entries)
            .where(entries.c.key.in_([self._key(key) for key in keys]))
            .returning(entries.c.expires_at)
        )
        with self.engine.begin() as conn:
            expiries = conn.execute(stmt).scalars().all()
        now = _now_ms()
        return any(expires > now for expires in expiries)

    def hit(self, key: str, window: float) -> int:
        """See :class:`Store`. One upsert: a new window starts when the old one has expired."""
        now = _now_ms()
        expires = now + _ms(window)
        stale = entries.c.expires_at <= now
        insert = postgresql.insert if self._postgres else sqlite.insert
        stmt = (
            insert(entries)
            .values(key=self._key(key), value=None, counter=1, expires_at=expires)
            .on_conflict_do_update(
                index_elements=[entries.c.key],
                set_={
                    "counter": case((stale, 1), else_=entries.c.counter + 1),
                    "expires_at": case((stale, expires), else_=entries.c.expires_at),
                    "value": None,
                },
            )
            .returning(entries.c.counter)
        )
        with self.engine.begin() as conn:
            counted = conn.execute(stmt).scalar()
        self._maybe_purge()
        return int(counted or 0)

    def hit_unless(self, key: str, window: float, blocker: str) -> int | None:
        """See :class:`Store`. Two statements here; the Redis store does both at once."""
        if self.get(blocker) is not None:
            return None
        return self.hit(key, window)

    def unhit(self, key: str) -> None:
        """See :class:`Store`."""
        stmt = (
            update(entries)
            .where(
                entries.c.key == self._key(key),
                entries.c.expires_at > _now_ms(),
                entries.c.counter > 0,
            )
            .values(counter=entries.c.counter - 1)
        )
        with self.engine.begin() as conn:
            conn.execute(stmt)

    def count(self, key: str) -> int:
        """See :class:`Store`."""
        return self.counts(key)[0]

    def counts(self, *keys: str) -> list[int]:
        """See :class:`Store`."""
        stored = [self._key(key) for key in keys]
        query = select(entries.c.key, entries.c.counter).where(
            entries.c.key.in_(stored), entries.c.expires_at > _now_ms()
        )
        with self.engine.connect() as conn:
            found = {key: int(counter or 0) for key, counter in conn.execute(query)}
        return [found.get(key, 0) for key in stored]

    def ttl(self, key: str) -> float | None:
        """See :class:`Store`."""
        now = _now_ms()
        query = select(entries.c.expires_at).where(
            entries.c.key == self._key(key), entries.c.expires_at > now
        )
        with self.engine.connect() as conn:
            expires = conn.execute(query).scalar()
        return None if expires is None else (expires - now) / 1000

    def ping(self) -> None:
        """See :class:`Store`."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))


# KEYS[1] = key, ARGV[1] = window in ms. INCR and the first PEXPIRE happen atomically.
_HIT_SCRIPT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return n
"""

# The same, unless KEYS[2] is live: then nothing is counted (-1). One round trip, and atomic:
# no hit slips in after the blocker appears.
_HIT_UNLESS_SCRIPT = (
    """
if redis.call('EXISTS', KEYS[2]) == 1 then
  return -1
end"""
    + _HIT_SCRIPT
)

# KEYS[1] = key. DECR keeps the key's expiry; a missing or spent counter stays as it is.
_UNHIT_SCRIPT = """
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then
  return redis.call('DECR', KEYS[1])
end
return 0
"""


class RedisStore:
    """The store in Redis: native TTLs, GETDEL for take, a Lua script for windowed counters."""

    def __init__(self, client: redis.Redis, prefix: str = "") -> None:
        self.client = client
        self.prefix = prefix
        self._hit = client.register_script(_HIT_SCRIPT)
        self._hit_unless = client.register_script(_HIT_UNLESS_SCRIPT)
        self._unhit = client.register_script(_UNHIT_SCRIPT)

    @classmethod
    def from_url(cls, url: str, prefix: str = "") -> RedisStore:
        """Connect lazily to ``url`` (``redis://host:port/db``)."""
        client = redis.Redis.from_url(
            url, decode_responses=True, socket_timeout=5, socket_connect_timeout=5
        )
        return cls(client, prefix)

    def _key(self, key: str) -> str:
        return self.prefix + key

    def set(self, key: str, value: str, ttl: float) -> None:
        """See :class:`Store`."""
        self.client.set(self._key(key), value, px=_ms(ttl))

    def add(self, key: str, value: str, ttl: float) -> bool:
        """See :class:`Store`."""
        return bool(self.client.set(self._key(key), value, px=_ms(ttl), nx=True))

    def get(self, key: str) -> str | None:
        """See :class:`Store`."""
        # redis-py types its sync and async clients alike; this one is sync.
        return cast("str | None", self.client.get(self._key(key)))

    def take(self, key: str) -> str | None:
        """See :class:`Store`."""
        return cast("str | None", self.client.getdel(self._key(key)))

    def delete(self, *keys: str) -> bool:
        """See :class:`Store`."""
        return bool(self.client.delete(*(self._key(key) for key in keys)))

    def hit(self, key: str, window: float) -> int:
        """See :class:`Store`."""
        return int(cast(int, self._hit(keys=[self._key(key)], args=[_ms(window)])))

    def hit_unless(self, key: str, window: float, blocker: str) -> int | None:
        """See :class:`Store`."""
        keys = [self._key(key), self._key(blocker)]
        counted = int(cast(int, self._hit_unless(keys=keys, args=[_ms(window)])))
        return None if counted < 0 else counted

    def unhit(self, key: str) -> None:
        """See :class:`Store`."""
        self._unhit(keys=[self._key(key)])

    def count(self, key: str) -> int:
        """See :class:`Store`."""
        return self.counts(key)[0]

    def counts(self, *keys: str) -> list[int]:
        """See :class:`Store`."""
        raws = cast("list[str | None]", self.client.mget([self._key(key) for key in keys]))
        return [int(raw) if raw is not None else 0 for raw in raws]

    def ttl(self, key: str) -> float | None:
        """See :class:`Store`."""
        remaining = int(cast(int, self.client.pttl(self._key(key))))
        return None if remaining < 0 else remaining / 1000

    def ping(self) -> None:
        """See :class:`Store`."""
        self.client.ping()


def sqlite_store_engine(engine: Engine) -> Engine:
    """A separate SQLite file beside the app's database, holding only the store's table.

    SQLite allows one writer per file: were the store in the app's file, a store call made
    while a request's transaction holds the write lock would wait for that very transaction.
    With its own file, store writes never queue behind app writes. The table is created here
    because the file holds nothing but short-lived entries (as Redis needs no schema either).
    """
    path = engine.url.database
    if not path or path == ":memory:":
        raise ValueError("the SQL store needs a file-based SQLite database")
    database = Path(path)
    store_url = engine.url.set(database=str(database.with_name(database.stem + "-store.db")))
    store_engine = create_engine(store_url, connect_args={"timeout": 15})

    @event.listens_for(store_engine, "connect")
    def _wal(dbapi_connection: Any, _record: Any) -> None:
        # WAL lets readers carry on while one writer commits.
        dbapi_connection.execute("PRAGMA journal_mode=WAL")

    entries.create(store_engine, checkfirst=True)
    return store_engine


def open_store(redis_url: str | None, engine: Engine, prefix: str) -> Store:
    """Redis when a URL is configured, else the SQL table (on SQLite, in its own file)."""
    if redis_url:
        return RedisStore.from_url(redis_url, prefix)
    if engine.dialect.name == "sqlite":
        return SqlStore(sqlite_store_engine(engine), prefix)
    return SqlStore(engine, prefix)
