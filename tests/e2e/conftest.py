"""Browser-test infrastructure: the real apps as live servers, driven by Debian's Chromium.

Each app runs in its own process (``flask run`` on a free loopback port) against its own test
database, exactly as ``make run`` starts it. Playwright drives ``/usr/bin/chromium``; no browser
is ever downloaded. A failing test leaves a screenshot in ``test-artifacts/``.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyotp
import pytest
import requests
from playwright.sync_api import Browser, Page, sync_playwright

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

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def flask(self, *args: str) -> str:
        """Run a ``flask --app <app>`` command with the server's environment; its output."""
        result = subprocess.run(
            [sys.executable, "-m", "flask", "--app", self.app, *args],
            env=self.env,
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        )
        return result.stdout

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
        self.flask("db", "upgrade")
        self.flask("demo")
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
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


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
