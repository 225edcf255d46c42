"""phpCAS — the Apereo PHP CAS client that Moodle's, WordPress's and Drupal's CAS plugins and
the campus's own PHP systems sign in with — against the IdP as a live server.

Debian's ``php-cas`` (phpCAS 1.6) runs in a small application (``tests/interop/phpcas/router.php``)
served by PHP's built-in server, one process per set-up, with file sessions in the test's tmp
directory; ``requests`` plays the browser, signing in on the IdP's form with its CSRF token.
Each protected page prints, as JSON, what the application learns: ``phpCAS::getUser()``,
``phpCAS::getAttributes()`` and its PHP session id. Without the packages (``php-cli``,
``php-cas``, ``php-curl``, ``php-xml``) the tests are skipped locally; under CI (``CI`` set) that
is a failure (``deploy/system-deps.sh`` installs them).

phpCAS builds ``https://`` URLs for the CAS server from a host, port and path; the application
sets each endpoint's URL itself, since the live IdP speaks plain http on loopback. Single logout
works by session id: after validating a ticket phpCAS renames the PHP session to the SHA-256 of
that ticket, and the IdP's logoutRequest names the ticket (``SessionIndex``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import signal
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, parse_qs, quote, urlsplit

import pytest
import requests

from tests.e2e.conftest import LiveServer, free_port, fresh_code
from tests.e2e.test_console import _enable_totp
from tests.interop.apache_support import (
    _CSRF,
    await_listening,
    eventually,
    is_sign_in_form,
    redirect_target,
    sign_in,
    sign_out_at_idp,
    signed_in_on_the_form,
)
from tests.interop.test_python_cas import PASSWORD, add_user

PHP = Path(os.environ.get("PHP_PATH", "/usr/bin/php"))
#: phpCAS's entry point, on PHP's include path (``php-cas``).
PHPCAS = Path("/usr/share/php/CAS.php")
#: The PHP extensions phpCAS needs, by the Debian package that brings each.
EXTENSIONS = {"curl": "php-curl", "dom": "php-xml"}
ROUTER = Path(__file__).with_name("phpcas") / "router.php"
#: Every phpCAS page here lies under this path (the application's /phpcas/signed-out too).
SERVICE_PATTERN = r"http://127\.0\.0\.1:\d+/phpcas/.*"
RELEASED = ("name", "account", "kind", "department", "department_name", "phone")
#: phpCAS's protocol constant by set-up, and the IdP endpoint it validates at.
PROTOCOLS = {"cas2": ("2.0", "serviceValidate"), "cas3": ("3.0", "p3/serviceValidate")}


@functools.cache
def missing() -> str | None:
    """Why the phpCAS interop tests cannot run here, or None."""
    files = {PHP: "php-cli", PHPCAS: "php-cas"}
    absent = [package for path, package in files.items() if not path.exists()]
    if PHP.exists():
        loaded = (
            subprocess.run(
                [str(PHP), "-r", 'echo implode(" ", get_loaded_extensions());'],
                capture_output=True,
                text=True,
                timeout=30,
            )
            .stdout.lower()
            .split()
        )
        absent += [package for name, package in EXTENSIONS.items() if name not in loaded]
    if not absent:
        return None
    return (
        f"Debian packages missing: {' '.join(absent)} — run `make system-deps` as root "
        f"(or see deploy/system-deps.sh)"
    )


#: Skipped before the live IdP starts when the packages are missing; under CI the fixture
#: below fails instead.
pytestmark = pytest.mark.skipif(
    missing() is not None and not os.environ.get("CI"), reason=str(missing())
)


@pytest.fixture(scope="module", autouse=True)
def _php_available() -> None:
    reason = missing()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: the phpCAS interop tests must run)")
    pytest.skip(reason)


@dataclass
class PhpCasApp:
    """One PHP built-in server running the phpCAS application for one protocol version."""

    name: str
    protocol: str
    idp_url: str
    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def sessions(self) -> Path:
        """PHP's ``session.save_path``: one ``sess_<id>`` file per session."""
        return self.directory / "sessions"

    @property
    def session_name(self) -> str:
        """Its session cookie: browsers share cookies between the ports of one host."""
        return f"PHPCAS_{self.name.upper()}"

    @property
    def server_log(self) -> Path:
        return self.directory / "server.log"

    @property
    def trace_log(self) -> Path:
        """phpCAS's own trace (``phpCAS::setLogger``)."""
        return self.directory / "phpcas.log"

    def start(self) -> None:
        """Run ``php -S`` until it answers. Several workers: the IdP's logout request must be
        served while a browser's request waits on the IdP."""
        self.sessions.mkdir(parents=True)
        settings = {
            "session.save_path": str(self.sessions),
            "session.name": self.session_name,
            # Errors and notices (Debian's phpCAS deprecates its own CAS.php on every include)
            # go to the server's log, as on a production server, not into the page.
            "display_errors": "0",
            "log_errors": "1",
        }
        env = {
            **os.environ,
            "PHP_CLI_SERVER_WORKERS": "3",
            "HONGLIU_IDP_URL": self.idp_url,
            "PHPCAS_PROTOCOL": self.protocol,
            "PHPCAS_BASE": self.url,
            "PHPCAS_LOG": str(self.trace_log),
        }
        with self.server_log.open("wb") as out:
            self.process = subprocess.Popen(
                [
                    str(PHP),
                    *(f"-d{name}={value}" for name, value in settings.items()),
                    "-S",
                    f"127.0.0.1:{self.port}",
                    str(ROUTER),
                ],
                cwd=self.directory,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() ends the workers too
            )
        await_listening(self.process, self.port, f"php {self.name}", self.logs)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def log_sizes(self) -> tuple[int, int]:
        """How far the server's output and the trace go now (see :meth:`logs`)."""
        server, trace = (
            p.stat().st_size if p.exists() else 0 for p in (self.server_log, self.trace_log)
        )
        return server, trace

    def logs(self, since: tuple[int, int] = (0, 0)) -> str:
        """The server's output and phpCAS's trace (from the given sizes on)."""
        parts = []
        for path, start in zip((self.server_log, self.trace_log), since, strict=True):
            if path.exists():
                with path.open("rb") as log:
                    log.seek(start)
                    parts.append(f"--- {path}\n{log.read().decode('utf-8', 'replace')}")
        return "\n".join(parts)

    def session_file(self, session_id: str) -> Path:
        return self.sessions / f"sess_{session_id}"


@pytest.fixture(scope="module")
def phpcas_service(live_idp: LiveServer) -> None:
    """The PHP applications' CAS registration: name, 学工号, kind, phone and department."""
    live_idp.add_cas_service(
        "phpCAS 互通测试",
        *("--service", SERVICE_PATTERN),
        *(option for name in RELEASED for option in ("--attribute", name)),
        probe="http://127.0.0.1:1/phpcas/",
    )


@pytest.fixture(scope="module")
def apps(
    live_idp: LiveServer, phpcas_service: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[str], PhpCasApp]]:
    """``app(setup)``: the phpCAS application speaking ``setup``'s protocol (started once)."""
    started: dict[str, PhpCasApp] = {}

    def app(setup: str) -> PhpCasApp:
        if setup not in started:
            protocol, _endpoint = PROTOCOLS[setup]
            directory = tmp_path_factory.mktemp(f"phpcas_{setup}")
            started[setup] = PhpCasApp(setup, protocol, live_idp.url, directory)
            started[setup].start()
        return started[setup]

    yield app
    for running in started.values():
        running.stop()


@pytest.fixture(autouse=True)
def _logs_on_failure(
    request: pytest.FixtureRequest, apps: Callable[[str], PhpCasApp], live_idp: LiveServer
) -> Iterator[None]:
    """A failed test prints what PHP, phpCAS and the IdP logged meanwhile."""
    failed_before = request.session.testsfailed
    running = [apps(setup) for setup in PROTOCOLS]
    marks = [app.log_sizes() for app in running]
    idp_mark = live_idp.log_path.stat().st_size
    yield
    if request.session.testsfailed == failed_before:
        return
    for app, mark in zip(running, marks, strict=True):
        print(app.logs(mark))
    with live_idp.log_path.open("rb") as log:
        log.seek(idp_mark)
        print(f"--- {live_idp.log_path}\n{log.read().decode('utf-8', 'replace')}")


@pytest.fixture(scope="module")
def account(live_idp: LiveServer) -> str:
    """One active account (赵六) with a verified phone, in a department with a Chinese name."""
    account = add_user(live_idp)
    live_idp.sql(
        "INSERT INTO departments (code, name, updated_at) SELECT 'PHPX', '外国语学院·日语系', "
        "CURRENT_TIMESTAMP WHERE NOT EXISTS (SELECT 1 FROM departments WHERE code = 'PHPX')"
    )
    live_idp.sql(
        "UPDATE users SET department_id = (SELECT id FROM departments WHERE code = 'PHPX') "
        "WHERE account = :a",
        a=account,
    )
    return account


def visit(browser: requests.Session, url: str, idp: LiveServer, account: str) -> requests.Response:
    """``browser`` opens ``url``, signing ``account`` in on the IdP's form if it comes up."""
    return sign_in(browser, url, idp_url=idp.url, account=account, password=PASSWORD)


def seen(page: requests.Response) -> dict[str, Any]:
    """What the application printed: phpCAS's user and attributes, and its session."""
    assert page.status_code == 200, (page.status_code, page.url, page.text[:800])
    assert page.headers["Content-Type"].startswith("application/json"), page.text[:800]
    return dict(json.loads(page.content.decode("utf-8")))


def session_for(ticket: str) -> str:
    """The PHP session id phpCAS gives a session once ``ticket`` is validated (no salt set)."""
    return hashlib.sha256(ticket.encode()).hexdigest()


def ticket_of(page: requests.Response, page_url: str) -> str:
    """The service ticket the IdP sent the browser to ``page_url`` with."""
    tickets = [
        parse_qs(urlsplit(hop.headers["Location"]).query)["ticket"][0]
        for hop in page.history
        if hop.headers.get("Location", "").startswith(page_url)
        and "ticket=" in hop.headers["Location"]
    ]
    assert len(tickets) == 1 and re.fullmatch(r"ST-[A-Za-z0-9]{43}", tickets[0]), tickets
    return tickets[0]


def validation_request(idp: LiveServer, ticket: str) -> SplitResult:
    """The request by which the application validated ``ticket``, from the IdP's log."""
    log = idp.log_path.read_text("utf-8", "replace")
    found = [
        m.group(1) for m in re.finditer(r'"GET (\S+) HTTP', log) if f"ticket={ticket}" in m.group(1)
    ]
    assert len(found) == 1, found
    return urlsplit(found[0])


def login_redirect(browser: requests.Session, url: str, idp: LiveServer) -> dict[str, list[str]]:
    """phpCAS's redirect to the IdP's /cas/login for ``url``: its query."""
    target = redirect_target(browser.get(url, allow_redirects=False, timeout=10))
    assert target.startswith(f"{idp.url}/cas/login?"), target
    return parse_qs(urlsplit(target).query)


@pytest.mark.parametrize("setup", ["cas2", "cas3"])
def test_phpcas_signs_in_with_the_account_number(
    live_idp: LiveServer, account: str, apps: Callable[[str], PhpCasApp], setup: str
) -> None:
    """forceAuthentication sends the browser to /cas/login with the exact service URL (a query
    with Chinese in it included); after the form phpCAS validates the ticket at the version's
    endpoint, renames its session after the ticket and sees the 学工号; CAS 3.0 brings the
    released attributes, Chinese intact, and the protocol's own; CAS 2.0 none."""
    app = apps(setup)
    _version, endpoint = PROTOCOLS[setup]
    browser = requests.Session()
    page_url = f"{app.url}/phpcas/whoami?from=%E9%97%A8%E6%88%B7&page=2"
    assert login_redirect(browser, page_url, live_idp) == {"service": [page_url]}

    page = visit(browser, page_url, live_idp, account)
    assert signed_in_on_the_form(page) and page.url == page_url  # the ticket taken off again
    ticket = ticket_of(page, page_url)
    shown = seen(page)
    assert shown["user"] == account
    session_id = session_for(ticket)
    assert shown["session_id"] == session_id == browser.cookies[app.session_name]
    assert app.session_file(session_id).exists()
    validation = validation_request(live_idp, ticket)
    assert validation.path == f"/cas/{endpoint}"
    assert parse_qs(validation.query) == {"service": [page_url], "ticket": [ticket]}

    attributes = shown["attributes"]
    if setup == "cas2":
        assert attributes == {}
    else:
        assert attributes["name"] == "赵六" and attributes["account"] == account
        assert attributes["kind"] == "student" and attributes["department"] == "PHPX"
        assert attributes["department_name"] == "外国语学院·日语系"
        assert re.fullmatch(r"1370000\d{4}", attributes["phone"])
        assert attributes["isFromNewLogin"] == "true"
        assert attributes["longTermAuthenticationRequestTokenUsed"] == "false"
        assert attributes["authenticationMethod"] == "password"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", attributes["authenticationDate"])

    again = seen(browser.get(page_url, allow_redirects=False, timeout=10))
    assert again["user"] == account and again["session_id"] == session_id  # phpCAS's session
    mark = app.log_sizes()
    replayed = requests.get(f"{page_url}&ticket={ticket}", allow_redirects=False, timeout=10)
    # phpCAS throws CAS_AuthenticationException, which this application leaves uncaught.
    assert replayed.status_code == 500 and account not in replayed.text
    assert f"Reason: [INVALID_TICKET] CAS error: Ticket '{ticket}'" in app.logs(mark)


def test_phpcas_reads_a_multi_valued_attribute(
    live_idp: LiveServer, apps: Callable[[str], PhpCasApp]
) -> None:
    """After a two-step sign-in (password, then the authenticator's code) CAS 3.0's
    ``authenticationMethod`` is two repeated elements: phpCAS makes a list of them."""
    account = add_user(live_idp)
    secret = _enable_totp(live_idp, account)
    app = apps("cas3")
    browser = requests.Session()
    page_url = f"{app.url}/phpcas/two-step"
    verify = visit(browser, page_url, live_idp, account)
    assert verify.url.startswith(f"{live_idp.url}/login/verify"), verify.url
    token = _CSRF.search(verify.text)
    assert token, "no CSRF token on the verification page"
    form = {"csrf_token": token.group(1), "code": fresh_code(secret)}
    page = browser.post(verify.url, data=form, timeout=10)
    assert page.url == page_url
    attributes = seen(page)["attributes"]
    assert attributes["authenticationMethod"] == ["password", "totp"]
    assert attributes["name"] == "赵六" and attributes["isFromNewLogin"] == "true"


def test_phpcas_single_sign_on_across_two_applications(
    live_idp: LiveServer, account: str, apps: Callable[[str], PhpCasApp]
) -> None:
    """Signed in on one phpCAS application, the browser gets into the next one without the
    form: a ticket from the SSO session, validated there, not a new login."""
    first, second = apps("cas2"), apps("cas3")
    browser = requests.Session()
    assert signed_in_on_the_form(visit(browser, f"{first.url}/phpcas/whoami", live_idp, account))

    silent = visit(browser, f"{second.url}/phpcas/whoami", live_idp, account)
    assert not signed_in_on_the_form(silent)
    shown = seen(silent)
    assert shown["user"] == account and shown["attributes"]["isFromNewLogin"] == "false"
    assert shown["session_id"] == browser.cookies[second.session_name]
    assert browser.cookies[first.session_name] != browser.cookies[second.session_name]


def test_phpcas_single_logout_ends_that_browsers_session(
    live_idp: LiveServer, account: str, apps: Callable[[str], PhpCasApp]
) -> None:
    """Signing out at the IdP posts a SAML logoutRequest to the service URL from loopback, the
    IdP's host; handleLogoutRequests accepts it, finds the session renamed after the ticket
    and destroys it, and no other."""
    app = apps("cas3")
    page_url = f"{app.url}/phpcas/whoami"
    leaving, staying = requests.Session(), requests.Session()
    tickets = {}
    for browser in (leaving, staying):
        page = visit(browser, page_url, live_idp, account)
        tickets[browser] = ticket_of(page, page_url)
        assert seen(page)["session_id"] == session_for(tickets[browser])
    mark = app.log_sizes()

    sign_out_at_idp(leaving, live_idp.url)

    def destroyed() -> bool:
        """the leaving browser's phpCAS session file is gone"""
        return not app.session_file(session_for(tickets[leaving])).exists()

    eventually(destroyed)
    assert app.session_file(session_for(tickets[staying])).exists()
    trace = app.logs(mark)
    assert "Allowed client '127.0.0.1' matches, logout request is allowed" in trace, trace
    assert f"Ticket to logout: {tickets[leaving]}" in trace, trace
    assert f"Session {session_for(tickets[leaving])} destroyed" in trace, trace
    assert tickets[staying] not in trace

    back = redirect_target(leaving.get(page_url, allow_redirects=False, timeout=10))
    assert back == f"{live_idp.url}/cas/login?service={quote(page_url, safe='')}"
    assert seen(staying.get(page_url, allow_redirects=False, timeout=10))["user"] == account


def test_phpcas_logout_returns_through_the_idp(
    live_idp: LiveServer, account: str, apps: Callable[[str], PhpCasApp]
) -> None:
    """phpCAS::logoutWithRedirectService ends the PHP session and sends the browser to the
    IdP's /cas/logout with ``service``: the SSO session ends there and the browser comes back
    to the application's page, a registered service."""
    app = apps("cas3")
    browser = requests.Session()
    session_id = seen(visit(browser, f"{app.url}/phpcas/whoami", live_idp, account))["session_id"]

    logout = redirect_target(
        browser.get(f"{app.url}/phpcas/logout", allow_redirects=False, timeout=10)
    )
    back = f"{app.url}/phpcas/signed-out"
    assert logout == f"{live_idp.url}/cas/logout?service={quote(back, safe='')}"
    assert not app.session_file(session_id).exists()
    returned = browser.get(logout, timeout=10)
    assert returned.status_code == 200 and returned.url == back and returned.text == "signed out\n"

    assert is_sign_in_form(browser.get(f"{app.url}/phpcas/whoami", timeout=10), live_idp.url)


def test_phpcas_gateway_asks_without_showing_the_form(
    live_idp: LiveServer, account: str, apps: Callable[[str], PhpCasApp]
) -> None:
    """checkAuthentication (``gateway=true``): without an SSO session the IdP sends the browser
    straight back, no ticket and no form, and the page is open to a visitor; once the person has
    signed in elsewhere, the same request comes back with a ticket."""
    app = apps("cas3")
    page_url = f"{app.url}/phpcas/gateway"
    browser = requests.Session()
    target = redirect_target(browser.get(page_url, allow_redirects=False, timeout=10))
    assert target.startswith(f"{live_idp.url}/cas/login?")
    assert parse_qs(urlsplit(target).query) == {"service": [page_url], "gateway": ["true"]}
    back = browser.get(target, timeout=10)
    assert [redirect_target(hop) for hop in back.history] == [page_url]
    assert seen(back)["user"] is None and seen(back)["attributes"] == {}

    visit(browser, f"{apps('cas2').url}/phpcas/whoami", live_idp, account)
    known = browser.get(page_url, timeout=10)
    hops = [redirect_target(hop) for hop in known.history]
    assert len(hops) == 3 and parse_qs(urlsplit(hops[0]).query)["gateway"] == ["true"], hops
    assert hops[1].startswith(f"{page_url}?ticket=ST-") and hops[2] == page_url, hops
    shown = seen(known)
    assert shown["user"] == account and shown["attributes"]["isFromNewLogin"] == "false"
