"""Browser-test infrastructure: the real apps as live servers, driven by Debian's Chromium.

Each app runs in its own process (``flask run`` on a free loopback port) against its own test
database, exactly as ``make run`` starts it: migrated by ``flask db upgrade`` and loaded by
``flask demo`` — run for real by the first server of each app, whose database the later ones
start as a copy of. Playwright drives ``/usr/bin/chromium``; no browser
is ever downloaded. A failing test leaves a screenshot in ``test-artifacts/``.
"""

from __future__ import annotations

import atexit
import importlib
import json
import os
import random
import secrets
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import pyotp
import pytest
import requests
from flask import Flask
from playwright.sync_api import Browser, Page, sync_playwright
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from shared.store import SqlStore
from tests.conftest import TEST_REDIS_URL, MakeDatabaseUrl, flush_redis_prefix

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


#: Where a live server's port is picked: below Linux's ephemeral range (32768–60999), so no
#: outgoing connection can take it between the pick and the server's bind. CI runs the SQLite
#: and the PostgreSQL suites side by side on one machine: each takes its own half.
_PORTS = range(21000, 32000) if os.environ.get("TEST_DATABASE_URL") else range(10000, 21000)


def free_port() -> int:
    """A port of this run's range that nobody listens on right now."""
    while True:
        port = random.choice(_PORTS)  # a port number, not a secret: random is enough
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # taken: try another
            return port


def fresh_code(secret: str, *, steps_back: int = 0) -> str:
    """An authenticator app's code that stays valid while the browser submits it.

    ``steps_back=1`` is the previous 30-second step's code, as a phone that scanned the QR code
    a moment ago still shows it: the server accepts it only until the next step begins, so a
    code is never taken in the last 5 seconds of a step (a loaded machine can take that long
    to type and submit it).
    """
    left = 30 - time.time() % 30
    if left < 5:
        time.sleep(left + 0.2)
    return pyotp.TOTP(secret).at(time.time() - 30 * steps_back)


@dataclass
class LiveServer:
    """One app running as a real HTTP server in its own process."""

    app: str
    env: dict[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    _here: Flask | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def flask(self, *args: str) -> str:
        """Run a ``flask --app <app>`` command with the server's environment; its output."""
        return _flask(self.app, self.env, *args)

    def app_here(self) -> Flask:
        """The app built in this process from the server's environment — the same database,
        store and keys — for set-up and for reading what the server did; never serving."""
        if self._here is None:
            prefix = f"{self.app.upper()}_"
            own = {k: v for k, v in self.env.items() if k.startswith(prefix)}
            with mock.patch.dict(os.environ, {**own, f"{prefix}PREFLIGHT": "false"}):
                self._here = importlib.import_module(self.app).create_app()
        return self._here

    def flask_each(self, *commands: Sequence[str]) -> str:
        """Run several of the app's own commands (``users add …``, ``roles grant …``) in one
        process, as ``flask --app <app>`` would run each (one start-up instead of one each);
        their output. Stops at the first that fails."""
        result = subprocess.run(
            [sys.executable, "-c", _EACH, self.app, json.dumps([list(c) for c in commands])],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode:
            raise RuntimeError(f"{self.app} commands failed:\n{result.stdout}{result.stderr}")
        return result.stdout

    def add_cas_service(self, name: str, *options: str, probe: str) -> None:
        """Register a CAS service with the real command line (``clients add-cas``) and wait
        until this server serves it: each IdP process reads the registry afresh at most every
        ``CAS_SERVICE_CACHE_TTL`` seconds, so a registration made by another process may go
        unseen that long. ``probe`` is a service URL of the registration; a ``gateway`` request
        for it is sent back (303) once the service is known, refused (403) before."""
        from idp.clients.operations import CAS_SERVICE_CACHE_TTL

        self.flask("clients", "add-cas", name, *options)
        deadline = time.monotonic() + CAS_SERVICE_CACHE_TTL + 5
        while True:
            answer = requests.get(
                f"{self.url}/cas/login",
                params={"service": probe, "gateway": "true"},
                allow_redirects=False,
                timeout=10,
            )
            if answer.status_code == 303:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} not served for {probe}: {answer.status_code}")
            time.sleep(0.1)

    def add_oidc_client(self, name: str, *options: str) -> dict[str, Any]:
        """Register an OIDC client with the real command line (``clients add-oidc … --json``);
        what it printed (the secret included)."""
        output = self.flask("clients", "add-oidc", name, "--json", *options)
        return dict(json.loads(output.strip().splitlines()[-1]))

    @property
    def outbox(self) -> Path:
        """Where this server writes sms.jsonl and mail.jsonl."""
        return Path(self.env[f"{self.app.upper()}_OUTBOX_DIR"])

    def sql(self, statement: str, **params: Any) -> None:
        """Run one SQL statement on the server's database (test set-up only)."""
        from sqlalchemy import create_engine, text

        engine = create_engine(
            self.env[f"{self.app.upper()}_DATABASE_URL"].replace(
                "postgresql://", "postgresql+psycopg://"
            )
        )
        with engine.begin() as conn:
            conn.execute(text(statement), params)
        engine.dispose()

    def start(self) -> None:
        _migrated_with_demo_data(self.app, self.env)
        with self.log_path.open("wb") as log:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "flask",
                    "--app",
                    self.app,
                    "run",
                    "--no-reload",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                ],
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.app} exited at start; see {self.log_path}")
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError(f"{self.app} did not answer /healthz in 30 s; see {self.log_path}")

    def stop(self) -> None:
        if self._here is not None:
            # Close the in-process app's connections (its database, and a SQL store's).
            store = self._here.extensions["hongliu_store"]
            if isinstance(store, SqlStore):
                store.engine.dispose()
            with self._here.app_context():
                self._here.extensions["sqlalchemy"].engine.dispose()
            self._here = None
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _flask(app: str, env: Mapping[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", app, *args],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result.stdout


#: ``LiveServer.flask_each``: the app's CLI commands through Flask's CLI runner, in one process.
_EACH = """
import importlib, json, sys
app = importlib.import_module(sys.argv[1]).create_app()
runner = app.test_cli_runner()
for args in json.loads(sys.argv[2]):
    result = runner.invoke(args=args, catch_exceptions=False)
    sys.stdout.write(result.output)
    if result.exit_code:
        sys.exit(f"flask {' '.join(args)}: exit status {result.exit_code}")
"""

#: Databases migrated (``flask db upgrade``) and loaded with demo data (``flask demo``) once per
#: test run, by app, database server and the settings the demo data depends on: every later
#: live server's database starts as a copy (a SQLite backup, PostgreSQL's ``CREATE DATABASE …
#: TEMPLATE``). Each command is a Python start-up of about 1.5 s, and thirty servers start in
#: a run.
_TEMPLATES: dict[tuple[str, ...], str] = {}


def _migrated_with_demo_data(app: str, env: dict[str, str]) -> None:
    """Give a new live server's (empty) database the schema and the demo data."""
    variable = f"{app.upper()}_DATABASE_URL"
    url = env[variable]
    on_postgres = url.startswith("postgresql")
    settings = (env.get(f"{app.upper()}_SECRET_KEY", ""), env.get(f"{app.upper()}_DATA_KEY", ""))
    key = (app, str(on_postgres), *settings)
    template = _TEMPLATES.get(key)
    if template is None:
        template = _new_template(url, f"tpl{len(_TEMPLATES)}")
        template_env = {**env, variable: template}
        _flask(app, template_env, "db", "upgrade")
        _flask(app, template_env, "demo")
        _TEMPLATES[key] = template
    if on_postgres:
        target = make_url(url).database
        with _postgres_admin(url) as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)'))
            conn.execute(
                text(f'CREATE DATABASE "{target}" TEMPLATE "{make_url(template).database}"')
            )
    else:
        with (
            closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as copy,
            closing(sqlite3.connect(template.removeprefix("sqlite:///"))) as source,
        ):
            source.backup(copy)


def _new_template(url: str, suffix: str) -> str:
    """The URL of an empty database beside ``url``'s, for a template (dropped at exit)."""
    if not url.startswith("postgresql"):
        path = Path(url.removeprefix("sqlite:///"))
        return f"sqlite:///{path.with_name(f'{path.stem}_{suffix}.db')}"
    parsed = make_url(url)
    name = f"{parsed.database}_{suffix}"[:63]
    with _postgres_admin(url) as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    atexit.register(_drop_postgres_database, url, name)
    return parsed.set(database=name).render_as_string(hide_password=False)


@contextmanager
def _postgres_admin(url: str) -> Iterator[Any]:
    """An autocommit connection to the server of ``url`` (its ``postgres`` database)."""
    admin = make_url(url).set(drivername="postgresql+psycopg", database="postgres")
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def _drop_postgres_database(url: str, name: str) -> None:
    with _postgres_admin(url) as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _server_env(prefix: str, database_url: str, instance: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IDP_", "HALL_"))}
    env.update(
        {
            f"{prefix}_DATABASE_URL": database_url,
            f"{prefix}_SECRET_KEY": "e2e-secret-key-" + "y" * 32,
            f"{prefix}_OUTBOX_DIR": str(instance / "outbox"),
        }
    )
    if prefix == "IDP":
        # Every browser here comes from 127.0.0.1: per-IP limits (tested in tests/idp) would
        # otherwise start asking the whole suite for CAPTCHAs part-way through.
        env.update(
            {
                "IDP_CODE_IP_CAPTCHA_AFTER": "10000",
                "IDP_CODE_IP_HOURLY_LIMIT": "10000",
                "IDP_LOGIN_IP_CAPTCHA_AFTER": "10000",
            }
        )
    if TEST_REDIS_URL:
        env[f"{prefix}_REDIS_URL"] = TEST_REDIS_URL
        env[f"{prefix}_STORE_PREFIX"] = f"e2e-{secrets.token_hex(4)}-{prefix.lower()}:"
    return env


def _live(
    app: str, make_database_url: MakeDatabaseUrl, tmp: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    instance = tmp.mktemp(f"live_{app}")
    server = LiveServer(
        app,
        _server_env(app.upper(), make_database_url(f"e2e_{app}"), instance),
        instance / "server.log",
    )
    if app == "idp":
        # The IdP's public address is the one it serves here: discovery, tokens and messages
        # name it, as a deployed IdP names its own.
        server.env["IDP_ISSUER"] = server.url
    server.start()
    yield server
    server.stop()
    prefix = server.env.get(f"{app.upper()}_STORE_PREFIX")
    if TEST_REDIS_URL and prefix:
        flush_redis_prefix(TEST_REDIS_URL, prefix)


@pytest.fixture(scope="session")
def live_idp(
    make_database_url: MakeDatabaseUrl, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """The IdP as a live server."""
    yield from _live("idp", make_database_url, tmp_path_factory)


@pytest.fixture(scope="session")
def live_hall(
    make_database_url: MakeDatabaseUrl, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """The hall as a live server."""
    yield from _live("hall", make_database_url, tmp_path_factory)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, started once per session."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (make test does it as root)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh browser context (Chinese locale) per test; a screenshot is kept on failure."""
    context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in request.node.nodeid)
        page.screenshot(path=str(ARTIFACTS / f"{safe}.png"), full_page=True)
    context.close()
