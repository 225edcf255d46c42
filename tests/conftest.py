"""Fixtures every test may use: fresh databases, the store backend, and app factories.

The suite runs on SQLite by default and on PostgreSQL + Redis when ``TEST_DATABASE_URL`` and
``TEST_REDIS_URL`` are set (CI does both).
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask_migrate import upgrade
from jinja2.bccache import Bucket, BytecodeCache
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from werkzeug.routing import Rule

from idp.account.codes import DELIVERIES
from idp.cas.slo import EXECUTOR as CAS_SLO_EXECUTOR
from shared.store import SqlStore
from shared.store import entries as store_entries

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL") or None
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL") or None

MakeDatabaseUrl = Callable[[str], str]


def _postgres_admin_url() -> str:
    assert TEST_DATABASE_URL
    url = make_url(TEST_DATABASE_URL)
    if url.drivername in {"postgresql", "postgres"}:
        url = url.set(drivername="postgresql+psycopg")
    return url.render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def make_database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MakeDatabaseUrl]:
    """A factory of URLs of new, empty databases: SQLite files, or PostgreSQL databases."""
    created: list[str] = []
    admin = (
        create_engine(_postgres_admin_url(), isolation_level="AUTOCOMMIT")
        if (TEST_DATABASE_URL)
        else None
    )

    def make(name: str) -> str:
        if admin is None:
            return f"sqlite:///{tmp_path_factory.mktemp('db') / (name + '.db')}"
        base = make_url(admin.url)
        database = re.sub(r"[^a-z0-9_]", "_", f"{base.database}_{name}".lower())[:60]
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{database}"'))
        created.append(database)
        return base.set(database=database).render_as_string(hide_password=False)

    yield make
    if admin is not None:
        with admin.connect() as conn:
            for database in created:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def redis_url() -> str | None:
    """The Redis to test against, or None to keep ephemeral data in SQL."""
    return TEST_REDIS_URL


def flush_redis_prefix(url: str, prefix: str) -> None:
    """Delete every key under ``prefix`` (tests share one Redis with nothing else)."""
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def _clean_tables(app: Flask) -> None:
    db = app.extensions["sqlalchemy"]
    with app.app_context(), db.engine.begin() as conn:
        for table in reversed(db.metadata.sorted_tables):
            conn.execute(table.delete())


class _CompiledTemplates(BytecodeCache):
    """Compiled templates shared by every app the tests build: each new app would otherwise
    parse and compile every template it renders again (a fifth of the app tests' time). Jinja
    checks each entry against its template's source, so an edited template is compiled anew."""

    def __init__(self) -> None:
        self.code: dict[str, bytes] = {}

    def load_bytecode(self, bucket: Bucket) -> None:
        if bucket.key in self.code:
            bucket.bytecode_from_string(self.code[bucket.key])

    def dump_bytecode(self, bucket: Bucket) -> None:
        self.code[bucket.key] = bucket.bytecode_to_string()


_TEMPLATE_CODE = _CompiledTemplates()


def _share_url_builders() -> None:
    """Let every app the tests build reuse the URL builders of the apps before it.

    Werkzeug writes and compiles a Python function per route and app to build its URLs — about
    a fifth of the app tests' time, as each test builds its own app. The function depends only
    on the rule's parsed parts and defaults (it reaches the rule's converters through the rule
    it is bound to), so rules alike share one.
    """
    compile_builder = Rule._compile_builder
    built: dict[tuple[Any, ...], Callable[..., tuple[str, str]]] = {}

    def shared(self: Rule, append_unknown: bool = True) -> Callable[..., tuple[str, str]]:
        key = (self.rule, tuple(self._trace), repr(self.defaults), append_unknown)
        if key not in built:
            built[key] = compile_builder(self, append_unknown)
        return built[key]

    Rule._compile_builder = shared  # type: ignore[method-assign]


_share_url_builders()


class AppFactory:
    """Builds an app on a database migrated once per session; cleans it after each test."""

    def __init__(
        self,
        create: Callable[[dict[str, Any]], Flask],
        prefix: str,
        database_url: str,
        redis_url: str | None,
        instance: Path,
    ) -> None:
        self.create = create
        self.prefix = prefix
        self.database_url = database_url
        self.redis_url = redis_url
        self.instance = instance
        self.run_id = secrets.token_hex(4)
        self.store_prefix = f"test-{self.run_id}-{prefix.lower()}:"
        self.apps: list[Flask] = []
        self.migrated = False

    def config(self, **overrides: Any) -> dict[str, Any]:
        """The test configuration, with ``overrides`` applied."""
        config: dict[str, Any] = {
            "ENV": "testing",
            "SECRET_KEY": "test-secret-key-" + "x" * 32,
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "PREFLIGHT": False,
            # Each session's keys apart from any other run (or the browser tests' servers).
            "STORE_PREFIX": self.store_prefix,
            "SERVER_NAME": None,
        }
        if self.prefix == "IDP":
            config["OUTBOX_DIR"] = str(self.instance / "outbox")
            # Single logout to a service no test answers fails at once; retrying it would
            # outlive the test by seconds (tests of retries ask for them).
            config["CAS_SLO_RETRIES"] = 0
            # argon2id with light parameters: the same code and algorithm, about 1 ms a hash
            # instead of 17 (hashing and verifying were a sixth of the IdP tests' time). The
            # default parameters are tested in test_passwords; the browser tests' servers and
            # the benchmarks run with them.
            config["ARGON2_MEMORY_KIB"] = 1024
            config["ARGON2_TIME_COST"] = 1
        config.update(overrides)
        return config

    def __call__(self, **overrides: Any) -> Flask:
        app = self.create(self.config(**overrides))
        app.jinja_env.bytecode_cache = _TEMPLATE_CODE
        if not self.migrated:
            with app.app_context():
                upgrade()
            self.migrated = True
        self.apps.append(app)
        return app

    def cleanup(self) -> None:
        for app in self.apps:
            # Codes and notices still being sent in the background write audit rows: let them
            # finish before the tables are emptied and the engine (their pool) disposed.
            for delivery in filter(None, map(app.extensions.get, DELIVERIES)):
                assert delivery.wait_idle(30), "a code or notice was still being sent after 30 s"
            single_logout = app.extensions.get(CAS_SLO_EXECUTOR)
            if single_logout is not None:
                single_logout.shutdown(wait=True)
            _clean_tables(app)
            store = app.extensions["hongliu_store"]
            if isinstance(store, SqlStore):
                with store.engine.begin() as conn:
                    conn.execute(store_entries.delete())
                store.engine.dispose()
            with app.app_context():
                app.extensions["sqlalchemy"].engine.dispose()
        if self.redis_url:
            flush_redis_prefix(self.redis_url, self.store_prefix)
        self.apps.clear()


@pytest.fixture(scope="session")
def _idp_factory(
    make_database_url: MakeDatabaseUrl,
    redis_url: str | None,
    tmp_path_factory: pytest.TempPathFactory,
) -> AppFactory:
    from idp import create_app

    return AppFactory(
        create_app, "IDP", make_database_url("idp"), redis_url, tmp_path_factory.mktemp("idp")
    )


@pytest.fixture(scope="session")
def _hall_factory(
    make_database_url: MakeDatabaseUrl,
    redis_url: str | None,
    tmp_path_factory: pytest.TempPathFactory,
) -> AppFactory:
    from hall import create_app

    return AppFactory(
        create_app, "HALL", make_database_url("hall"), redis_url, tmp_path_factory.mktemp("hall")
    )


@pytest.fixture
def make_idp(_idp_factory: AppFactory) -> Iterator[AppFactory]:
    """Build IdP apps for this test (``make_idp(SOME_SETTING=...)``); data is wiped afterwards."""
    yield _idp_factory
    _idp_factory.cleanup()


@pytest.fixture
def make_hall(_hall_factory: AppFactory) -> Iterator[AppFactory]:
    """Build hall apps for this test; data is wiped afterwards."""
    yield _hall_factory
    _hall_factory.cleanup()


@pytest.fixture
def idp_app(make_idp: AppFactory) -> Flask:
    """An IdP with the test configuration."""
    return make_idp()


@pytest.fixture
def hall_app(make_hall: AppFactory) -> Flask:
    """A hall with the test configuration."""
    return make_hall()


@pytest.fixture
def idp_client(idp_app: Flask) -> Any:
    """Flask test client of the IdP."""
    return idp_app.test_client()


@pytest.fixture
def hall_client(hall_app: Flask) -> Any:
    """Flask test client of the hall."""
    return hall_app.test_client()


def pytest_configure(config: pytest.Config) -> None:
    """Compile the message catalogues so English pages work under plain ``pytest`` too."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    root = Path(__file__).resolve().parents[1]
    for po in root.glob("*/**/translations/*/LC_MESSAGES/messages.po"):
        if ".venv" in po.parts:
            continue
        mo = po.with_suffix(".mo")
        if not mo.exists() or mo.stat().st_mtime < po.stat().st_mtime:
            with po.open("rb") as source:
                catalog = read_po(source)
            with mo.open("wb") as target:
                write_mo(target, catalog)
