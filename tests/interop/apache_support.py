"""Debian's Apache httpd with the SSO modules campus web servers use, run for real against the
live IdP (``tests/interop/test_apache_modules.py``).

Each server gets a generated ``httpd.conf``, its error and access logs in the test's tmp
directory, runs in the foreground (``-DFOREGROUND``, prefork) on a free loopback port and is
stopped after. Its protected pages are one CGI script that prints the environment a campus
application would see (``REMOTE_USER``, ``CAS-*`` headers, ``OIDC_CLAIM_*``).

Started as root (CI), Apache serves as ``www-data``: what its workers read or write (the CGI
script, the module caches) lives in a directory of its own, since pytest's tmp tree is closed
to other users (mode 0700); it is removed when the server stops.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
import requests

from tests.e2e.conftest import free_port

APACHE = Path(os.environ.get("APACHE_PATH", "/usr/sbin/apache2"))
MODULES = Path("/usr/lib/apache2/modules")
#: The Debian package behind each file the tests need (``deploy/system-deps.sh`` installs them).
PACKAGES = {
    APACHE: "apache2-bin",
    MODULES / "mod_auth_cas.so": "libapache2-mod-auth-cas",
    MODULES / "mod_auth_openidc.so": "libapache2-mod-auth-openidc",
}
#: What every server loads besides its SSO module: prefork, so that the IdP's single-logout or
#: back-channel request is served while a browser holds another worker.
_BASE_MODULES = ("mpm_prefork", "authn_core", "authz_core", "authz_user", "alias", "cgi")
#: The protected page: the CGI environment, one ``NAME=value`` a line.
_WHOAMI = "#!/bin/sh\nprintf 'Content-Type: text/plain; charset=utf-8\\r\\n\\r\\n'\nexec env\n"
#: What a signed-out browser is sent back to (a static page outside every protected location).
LOGGED_OUT_PAGE = "/logged-out"
START_TIMEOUT = 15.0


def await_listening(
    process: subprocess.Popen[bytes], port: int, what: str, logs: Callable[[], str]
) -> None:
    """Return once ``process`` accepts connections on ``port``; raise, with its ``logs``, if it
    exits first or is not listening within ``START_TIMEOUT``."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited at start:\n{logs()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen in {START_TIMEOUT} s:\n{logs()}")


def missing() -> str | None:
    """Why the Apache interop tests cannot run here, or None."""
    absent = [package for path, package in PACKAGES.items() if not path.exists()]
    if not absent:
        return None
    return (
        f"Debian packages missing: {' '.join(absent)} — run `make system-deps` as root "
        f"(or apt-get install --no-install-recommends {' '.join(absent)})"
    )


def require_apache() -> None:
    """Skip when Apache or a module is missing; under CI (``CI`` set) that is a failure."""
    reason = missing()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: the Apache interop tests must run)")
    pytest.skip(reason)


def _worker_user() -> pwd.struct_passwd | None:
    """Who Apache's workers run as: ``www-data`` when started as root, else the caller."""
    if os.geteuid() != 0:
        return None
    for name in ("www-data", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("no unprivileged user (www-data, nobody) for Apache's workers")


@dataclass
class Apache:
    """One Apache httpd process with a generated configuration."""

    name: str
    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    www: Path = field(init=False)

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.www = Path(tempfile.mkdtemp(prefix=f"hongliu-apache-{self.name}-"))
        self.www.chmod(0o755)
        for sub in ("cgi-bin", "htdocs", "run"):
            (self.www / sub).mkdir(mode=0o755)
        self._writable(self.www / "cache")
        script = self.www / "cgi-bin" / "whoami"
        script.write_text(_WHOAMI)
        script.chmod(0o755)
        (self.www / "htdocs" / LOGGED_OUT_PAGE.strip("/")).write_text("signed out\n")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def error_log(self) -> Path:
        return self.directory / "error.log"

    @property
    def access_log(self) -> Path:
        return self.directory / "access.log"

    @staticmethod
    def _writable(path: Path) -> None:
        """Make ``path``, a directory for the workers alone to read and write (module caches)."""
        path.mkdir(mode=0o700)
        user = _worker_user()
        if user is not None:
            os.chown(path, user.pw_uid, user.pw_gid)

    def config(self, *, modules: tuple[str, ...], body: str, log_level: str) -> str:
        """The whole httpd.conf: this server's basics, then ``body`` (the module's part)."""
        user = _worker_user()
        lines = [
            "# Generated by tests/interop/apache_support.py.",
            f'ServerRoot "{self.www}"',
            "ServerName 127.0.0.1",
            f"Listen 127.0.0.1:{self.port}",
            f'PidFile "{self.directory / "httpd.pid"}"',
            f'DefaultRuntimeDir "{self.www / "run"}"',
            f'ErrorLog "{self.error_log}"',
            f"LogLevel {log_level}",
            'LogFormat "%h %u \\"%r\\" %>s" interop',
            f'CustomLog "{self.access_log}" interop',
            *(
                f"LoadModule {module}_module {MODULES / f'mod_{module}.so'}"
                for module in (*_BASE_MODULES, *modules)
            ),
            *(
                [f"User {user.pw_name}", f"Group {grp.getgrgid(user.pw_gid).gr_name}"]
                if user
                else []
            ),
            "StartServers 2",
            "MinSpareServers 2",
            "MaxSpareServers 4",
            "MaxRequestWorkers 8",
            "KeepAlive Off",
            f'DocumentRoot "{self.www / "htdocs"}"',
            # Every protected location ends in /whoami: one script answers them all.
            f'ScriptAliasMatch "/whoami$" "{self.www / "cgi-bin" / "whoami"}"',
            body,
        ]
        return "\n".join(lines) + "\n"

    def start(self, *, modules: tuple[str, ...], body: str, log_level: str = "info") -> None:
        """Write httpd.conf, check it (``-t``) and run Apache until its port answers."""
        conf = self.directory / "httpd.conf"
        conf.write_text(self.config(modules=modules, body=body, log_level=log_level))
        check = subprocess.run(
            [str(APACHE), "-t", "-f", str(conf)], capture_output=True, text=True, timeout=30
        )
        if check.returncode:
            raise RuntimeError(f"{conf} is refused by apache2 -t:\n{check.stderr}")
        with (self.directory / "stdout.log").open("wb") as out:
            self.process = subprocess.Popen(
                [str(APACHE), "-f", str(conf), "-DFOREGROUND"],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() ends the workers too
            )
        await_listening(self.process, self.port, f"apache {self.name}", self.logs)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # SIGTERM: Apache stops its workers and exits
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        shutil.rmtree(self.www, ignore_errors=True)

    def log_sizes(self) -> tuple[int, int]:
        """How far the error and access logs go now (see :meth:`logs`)."""
        sizes = [p.stat().st_size if p.exists() else 0 for p in (self.error_log, self.access_log)]
        return sizes[0], sizes[1]

    def logs(self, since: tuple[int, int] = (0, 0)) -> str:
        """The error and access logs (from the given sizes on), for a failure's report."""
        parts = []
        for path, start in zip((self.error_log, self.access_log), since, strict=True):
            if path.exists():
                with path.open("rb") as log:
                    log.seek(start)
                    text = log.read().decode("utf-8", "replace")
                parts.append(f"--- {path}\n{text}")
        return "\n".join(parts)

    def access_lines(self) -> list[str]:
        return self.access_log.read_text("utf-8", "replace").splitlines()

    def error_text(self) -> str:
        return self.error_log.read_text("utf-8", "replace")


class Servers:
    """The Apache servers of one test module, stopped together at its end."""

    def __init__(self, tmp: pytest.TempPathFactory) -> None:
        self.tmp = tmp
        self.running: list[Apache] = []

    def start(
        self,
        name: str,
        *,
        modules: tuple[str, ...],
        body: str,
        port: int | None = None,
        log_level: str = "info",
    ) -> Apache:
        """A new server whose module part of httpd.conf is ``body`` (``{www}`` in it is the
        workers' directory); on ``port`` when the registration already names it."""
        directory = self.tmp.mktemp(f"apache_{name}")
        apache = Apache(name, directory) if port is None else Apache(name, directory, port)
        self.running.append(apache)
        body = body.replace("{www}", str(apache.www))
        apache.start(modules=modules, body=body, log_level=log_level)
        return apache

    def stop(self) -> None:
        for apache in self.running:
            apache.stop()


def cgi_env(page: requests.Response) -> dict[str, str]:
    """What the CGI script printed: the request's environment as the application saw it."""
    assert page.status_code == 200, (page.status_code, page.url, page.text[:500])
    page.encoding = "utf-8"
    return dict(line.split("=", 1) for line in page.text.splitlines() if "=" in line)


_CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def is_sign_in_form(response: requests.Response, idp_url: str) -> bool:
    """True when ``response`` is the IdP's sign-in page (账号登录)."""
    return (
        response.status_code == 200
        and response.url.startswith(f"{idp_url}/login")
        and 'name="identifier"' in response.text
    )


def sign_in(
    browser: requests.Session, url: str, *, idp_url: str, account: str, password: str
) -> requests.Response:
    """Open ``url`` as a browser does; when the IdP's sign-in form comes up, fill it in (its
    CSRF token included) and follow the redirects back. The final response."""
    page = browser.get(url, timeout=10)
    if not is_sign_in_form(page, idp_url):
        return page
    token = _CSRF.search(page.text)
    assert token, "no CSRF token on the sign-in page"
    form = {"csrf_token": token.group(1), "identifier": account, "password": password}
    return browser.post(page.url, data=form, timeout=10)


def signed_in_on_the_form(page: requests.Response) -> bool:
    """True when ``page`` was reached by posting the IdP's sign-in form (see :func:`sign_in`),
    false when single sign-on let the browser through without it."""
    first = page.history[0] if page.history else page
    return first.request.method == "POST" and urlsplit(first.url).path == "/login"


def sign_out_at_idp(browser: requests.Session, idp_url: str) -> None:
    """退出 on the IdP's own page: GET /logout asks, the form POSTs with its CSRF token."""
    page = browser.get(f"{idp_url}/logout", timeout=10)
    token = _CSRF.search(page.text)
    assert page.status_code == 200 and token, page.text[:300]
    done = browser.post(
        f"{idp_url}/logout", data={"csrf_token": token.group(1)}, allow_redirects=False, timeout=10
    )
    assert done.status_code in (302, 303), done.status_code


def redirect_target(response: requests.Response) -> str:
    """The absolute URL a redirect points to."""
    assert response.status_code in (301, 302, 303, 307), (response.status_code, response.text[:300])
    return urljoin(response.url, response.headers["Location"])


def eventually(check: Callable[[], bool], *, timeout: float = 10.0) -> None:
    """Wait, within ``timeout``, for ``check()`` to hold: the IdP sends single-logout requests
    and logout tokens in the background."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {timeout} s: {check.__doc__ or check}")
        time.sleep(0.1)
