"""Steps both app factories share: settings, database, store, web basics and preflight checks.

``idp.create_app`` and ``hall.create_app`` each declare their own settings and blueprints and
call :func:`configure_app` for everything the two have in common.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask, current_app
from flask_babel import Babel
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import event, text
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session, scoped_session
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter, Map

from shared import web
from shared.config import (
    ENVIRONMENTS,
    ConfigError,
    Setting,
    check_production_cookies,
    load_settings,
    parse_bool,
    parse_choice,
    parse_database_url,
    parse_image_url,
    parse_int,
    parse_url,
    resolve_secret_key,
)
from shared.ids import MAX_ROW_ID
from shared.store import Store, open_store

STORE_EXTENSION = "hongliu_store"
#: Seconds a pooled database connection may sit unused and still be trusted without a test.
POOL_PING_AFTER_IDLE = 2.0
#: Seconds after which a pooled connection is closed and replaced rather than reused.
POOL_RECYCLE = 1800
#: Seconds each attempt at a new PostgreSQL connection may take before the request fails
#: (503). libpq's default ``sslmode=prefer`` makes two attempts, with TLS and without.
POSTGRES_CONNECT_TIMEOUT = 3
#: Milliseconds sent data may stay unacknowledged before a PostgreSQL connection is dropped.
POSTGRES_TCP_USER_TIMEOUT_MS = 20_000
_IDLE_SINCE = "hongliu_idle_since"


def common_settings(default_site_name: str) -> tuple[Setting, ...]:
    """Settings every app has, under its own prefix."""
    return (
        Setting("ENV", "development", parse_choice(ENVIRONMENTS), "development or production"),
        Setting("SECRET_KEY", None, str, "a random string of at least 32 characters"),
        Setting(
            "DATABASE_URL",
            None,
            parse_database_url,
            "sqlite:///path.db or postgresql://user@host/db",
        ),
        Setting("REDIS_URL", None, parse_url("redis", "rediss", "unix"), "redis://host:6379/0"),
        Setting("SITE_NAME", default_site_name, str),
        Setting("SCHOOL_NAME", "红柳大学", str),
        Setting("LOGO_URL", None, parse_image_url, "https://host/logo.png or /path/logo.png"),
        Setting("HELP_PHONE", "0931-2973386", str),
        Setting("SESSION_COOKIE_SECURE", None, parse_bool, "true or false"),
        Setting("LOG_FORMAT", None, parse_choice(("text", "json")), "text or json"),
        Setting("PREFLIGHT", True, parse_bool, "check the database and store at start"),
        Setting("STORE_PREFIX", None, str, "namespace of this app's keys in Redis"),
        Setting(
            "PROXY_COUNT", 0, parse_int(0, 5), "reverse proxies in front setting X-Forwarded-*"
        ),
        Setting(
            "DATABASE_STATEMENT_TIMEOUT",
            0,
            parse_int(0, 3600),
            "seconds a PostgreSQL statement may run (0: no limit)",
        ),
    )


@dataclass(frozen=True)
class Extensions:
    """One app's Flask extensions, created unbound at import and bound by the factory."""

    db: SQLAlchemy
    migrate: Migrate
    babel: Babel
    csrf: CSRFProtect

    @classmethod
    def create(cls, model_class: type[DeclarativeBase]) -> Extensions:
        """Fresh, unbound extensions; each app has its own database and metadata."""
        return cls(SQLAlchemy(model_class=model_class), Migrate(), Babel(), CSRFProtect())


class RowIdConverter(IntegerConverter):
    """``<int:…>`` in our routes names a row: past the largest id a database column holds
    (PostgreSQL's INTEGER) the route does not match, a 404 rather than an overflow and a 500."""

    def __init__(
        self,
        url_map: Map,
        fixed_digits: int = 0,
        min: int | None = None,
        max: int | None = MAX_ROW_ID,
        signed: bool = False,
    ) -> None:
        super().__init__(url_map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


def create_flask_app(
    import_name: str,
    *,
    prefix: str,
    settings: Iterable[Setting],
    config: Mapping[str, Any] | None,
    extensions: Extensions,
    setup: Callable[[Flask], None],
) -> Flask:
    """Build an app: common configuration first, then the app's own ``setup`` step.

    Run from the command line (``config`` is None), a configuration error ends the process
    with one line naming the variable instead of a traceback; tests get the exception.
    """
    try:
        app = Flask(import_name)
        app.url_map.converters["int"] = RowIdConverter
        configure_app(app, prefix=prefix, settings=settings, overrides=config, ext=extensions)
        setup(app)
    except ConfigError as exc:
        if config is not None:
            raise
        raise SystemExit(f"{import_name}: configuration error: {exc}") from None
    return app


def configure_app(
    app: Flask,
    *,
    prefix: str,
    settings: Iterable[Setting],
    overrides: Mapping[str, Any] | None,
    ext: Extensions,
) -> None:
    """Load settings into ``app.config`` and bind the extensions and web basics."""
    db = ext.db
    values = load_settings(prefix, settings, overrides=overrides)
    if values["ENV"] == "testing" and overrides is None:
        raise ConfigError(f"{prefix}_ENV=testing is only for the test suite")
    _derive_defaults(app, prefix, values)
    app.config.update(values)
    if values["PROXY_COUNT"]:
        # Trust exactly as many X-Forwarded-* hops as there are proxies: client IPs feed audit
        # logs and rate limits, so a spoofed header must not be believed.
        count = values["PROXY_COUNT"]
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=count, x_proto=count, x_host=count, x_port=count
        )

    db.init_app(app)
    ext.migrate.init_app(app, db, directory=str(Path(app.root_path) / "migrations"))
    # First: its request id must exist before any other check can refuse the request (the
    # CSRF check's 页面已过期 page shows it, and the log lines about it carry it).
    web.setup_logging(app)
    web.setup_templates(app)
    web.setup_i18n(
        app,
        ext.babel,
        [
            str(Path(app.root_path) / "translations"),
            str(Path(web.__file__).parent / "translations"),
        ],
    )
    web.setup_csrf(app, ext.csrf)
    web.setup_security_headers(app)
    web.setup_error_pages(app, reset=db.session.rollback)
    web.setup_health(
        app, {"database": lambda: ping_database(db), "store": lambda: get_store().ping()}
    )

    with app.app_context():
        ping_idle_connections(db.engine)
        app.extensions[STORE_EXTENSION] = open_store(
            app.config["REDIS_URL"],
            db.engine,
            prefix=app.config["STORE_PREFIX"] or f"{prefix.lower()}:",
        )
        if app.config["PREFLIGHT"]:
            preflight(prefix, db)


def _derive_defaults(app: Flask, prefix: str, values: dict[str, Any]) -> None:
    production = values["ENV"] == "production"
    if values["SESSION_COOKIE_SECURE"] is None:
        values["SESSION_COOKIE_SECURE"] = production
    check_production_cookies(prefix, values)
    if values["LOG_FORMAT"] is None:
        values["LOG_FORMAT"] = "json" if production else "text"
    if not values["DATABASE_URL"]:
        if production:
            raise ConfigError(
                f"{prefix}_DATABASE_URL is not set: production needs a PostgreSQL URL, "
                "e.g. postgresql://hongliu@db.example.edu/hongliu"
            )
        os.makedirs(app.instance_path, exist_ok=True)
        values["DATABASE_URL"] = f"sqlite:///{Path(app.instance_path) / (prefix.lower() + '.db')}"
    values["SECRET_KEY"] = resolve_secret_key(prefix, values, app.instance_path)
    values["SQLALCHEMY_DATABASE_URI"] = values["DATABASE_URL"]
    # No pool_pre_ping (a SELECT 1 round trip on every checkout): connections idle longer than
    # POOL_PING_AFTER_IDLE are tested instead (see :func:`ping_idle_connections`), and none is
    # kept past POOL_RECYCLE, so firewalls and server-side idle timeouts never find one first.
    engine_options: dict[str, Any] = {"pool_pre_ping": False, "pool_recycle": POOL_RECYCLE}
    if values["DATABASE_URL"].startswith("sqlite"):
        # Wait for the single writer rather than fail at once under concurrent requests.
        engine_options["connect_args"] = {"timeout": 15}
    else:
        engine_options["connect_args"] = postgres_connect_args(values["DATABASE_STATEMENT_TIMEOUT"])
    values["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options
    # The Flask session (CSRF secret, wizard flows) under the app's own name: cookies ignore
    # ports, so on one host the two apps' cookies would otherwise collide; ``__Host-`` over
    # HTTPS keeps sibling subdomains from setting or planting it.
    app_cookie = f"hongliu_{prefix.lower()}"
    values["SESSION_COOKIE_NAME"] = (
        f"__Host-{app_cookie}" if values["SESSION_COOKIE_SECURE"] else app_cookie
    )
    values["SESSION_COOKIE_HTTPONLY"] = True
    values["SESSION_COOKIE_SAMESITE"] = "Lax"
    values["PREFERRED_URL_SCHEME"] = "https" if production else "http"
    values["WTF_CSRF_TIME_LIMIT"] = None  # tied to the session instead of a wall clock
    # Our forms carry their own messages (Chinese msgids); WTForms' catalogue would otherwise
    # be re-read from disk for every form (about 1 ms per sign-in).
    values["WTF_I18N_ENABLED"] = False
    values["TESTING"] = values["ENV"] == "testing"


def postgres_connect_args(statement_timeout: int) -> dict[str, Any]:
    """libpq limits so that a database that stops answering fails requests instead of
    hanging their threads: gthread workers are not recycled by gunicorn's timeout, and every
    thread would wait on it. A connection attempt gives up after POSTGRES_CONNECT_TIMEOUT
    seconds (libpq waits for the OS, about two minutes); keepalives notice a vanished server on
    an idle connection, and TCP_USER_TIMEOUT one that stops acknowledging what was sent (a
    partition, a failover). ``statement_timeout`` (seconds, 0 for none) bounds a server that
    answers the network but not the query; off by default because migrations and bulk jobs
    share the settings (deploy/env sets it for the web services)."""
    args: dict[str, Any] = {
        "connect_timeout": POSTGRES_CONNECT_TIMEOUT,
        "keepalives": 1,
        "keepalives_idle": 30,
        "keepalives_interval": 10,
        "keepalives_count": 3,
        "tcp_user_timeout": POSTGRES_TCP_USER_TIMEOUT_MS,
    }
    if statement_timeout:
        args["options"] = f"-c statement_timeout={statement_timeout * 1000}"
    return args


def ping_idle_connections(engine: Engine) -> None:
    """Test a pooled connection before use only when it sat idle for a while.

    A connection used moments ago is almost certainly alive, and testing it costs a round
    trip per request; one that waited longer may have been dropped (database restart, failover,
    a firewall), so it is tested first and silently replaced when dead — the pool retries
    checkout on ``DisconnectionError``. A connection that breaks while in use still fails
    that request, as it would with ``pool_pre_ping``; SQLAlchemy then discards the whole pool.
    """

    @event.listens_for(engine, "checkin")
    def _idle_from(dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        since = record.info.get(_IDLE_SINCE)
        if since is None or time.monotonic() - since < POOL_PING_AFTER_IDLE:
            return  # a fresh connection, or one returned to the pool moments ago
        try:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("SELECT 1")
            finally:
                cursor.close()
        except Exception as exc:
            raise DisconnectionError("pooled connection failed its idle check") from exc


def insert_plain(session: Session | scoped_session[Any], obj: Any) -> None:
    """INSERT a new mapped object's row with one plain statement, in ``session``'s transaction.

    For a row that needs nothing from the unit of work (the SSO session row, written once per
    sign-in): the object is not added to the session, so the unit of work — which costs
    several times the INSERT itself — is skipped. Column defaults still apply; a generated
    primary key is not read back.
    """
    mapper = sa_inspect(obj).mapper
    values = {}
    for attribute in mapper.column_attrs:
        value = getattr(obj, attribute.key)
        if value is not None:  # unset: let the column's default (or NULL) apply
            values[attribute.columns[0].key] = value
    table = mapper.local_table
    statement = _INSERTS.get(table)
    if statement is None:
        statement = _INSERTS.setdefault(table, table.insert())
    session.connection(bind_arguments={"mapper": mapper}).execute(statement, values)


_INSERTS: dict[Any, Any] = {}


def autocommit(session: Session | scoped_session[Any]) -> None:
    """Let each statement of ``session``'s next transaction commit on its own.

    For requests whose database work is reads and at most one write that needs no partner,
    such as a CAS validation (read the session, write its audit row): no BEGIN and no COMMIT
    round trips (about 5 % of a validation's CPU, measured in-process). Call it before the
    request's first query. The pool restores the connection's isolation level when it is
    returned, so the next request on it is transactional again.
    """
    session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


def get_store() -> Store:
    """The current app's ephemeral store."""
    store: Store = current_app.extensions[STORE_EXTENSION]
    return store


def ping_database(db: SQLAlchemy) -> None:
    """Raise if the database cannot answer a trivial query."""
    with db.engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def describe_url(url: str) -> str:
    """A database or Redis URL with any password hidden, for error messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


def preflight(prefix: str, db: SQLAlchemy) -> None:
    """Fail at start with one actionable line if the database or store is unreachable."""
    url = current_app.config["DATABASE_URL"]
    try:
        ping_database(db)
    except Exception as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        raise ConfigError(
            f"cannot reach the database {prefix}_DATABASE_URL={describe_url(url)}: {reason} — "
            "start the database server or correct the URL"
        ) from None
    redis_url = current_app.config["REDIS_URL"]
    try:
        get_store().ping()
    except Exception as exc:
        raise ConfigError(
            f"cannot reach Redis {prefix}_REDIS_URL={describe_url(redis_url or '')}: {exc} — "
            "start Redis or unset the variable to keep ephemeral data in the database"
        ) from None
