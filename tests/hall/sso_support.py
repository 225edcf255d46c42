"""A real IdP for the hall to sign in through: a live server whose issuer is its own address,
the hall registered with the real command line, and a browser-like walk through its sign-in.

Shared by ``tests/hall`` (hall driven by Flask's test client or as a live server) and the
browser tests in ``tests/e2e/test_hall_sign_in.py``. Nothing about the IdP is faked.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from hall.auth.models import HallSession
from hall.extensions import db
from tests.conftest import TEST_REDIS_URL, MakeDatabaseUrl, flush_redis_prefix
from tests.e2e.conftest import LiveServer, _server_env, free_port

#: A demo account (``flask --app idp demo``).
ACCOUNT, PASSWORD, NAME = "2024000001", "Hongliu2024demo", "张三"
#: Where Flask's test client says the hall is.
TEST_CLIENT_BASE = "http://localhost"
#: The test-client hall's redirect URI.
CALLBACK = TEST_CLIENT_BASE + "/auth/callback"


def start_oidc_idp(
    make_database_url: MakeDatabaseUrl, tmp: pytest.TempPathFactory, name: str
) -> Iterator[LiveServer]:
    """A live IdP whose IDP_ISSUER is its own address, as relying parties must see it."""
    instance = tmp.mktemp(name)
    port = free_port()
    env = _server_env("IDP", make_database_url(name), instance)
    env["IDP_ISSUER"] = f"http://127.0.0.1:{port}"
    server = LiveServer("idp", env, instance / "server.log", port=port)
    server.start()
    yield server
    server.stop()
    prefix = env.get("IDP_STORE_PREFIX")
    if TEST_REDIS_URL and prefix:
        flush_redis_prefix(TEST_REDIS_URL, prefix)


def register_hall(idp: LiveServer, *bases: str, backchannel: str | None) -> dict[str, Any]:
    """Register the hall at ``idp`` with the real CLI, for halls served at each of ``bases``."""
    options: list[str] = []
    for base in bases:
        options += ["--redirect-uri", f"{base}/auth/callback", "--post-logout-uri", f"{base}/"]
    if backchannel:
        options += ["--backchannel-logout-uri", backchannel]
    return idp.add_oidc_client("红柳易办", "--first-party", *options)


def start_live_hall(
    make_database_url: MakeDatabaseUrl,
    tmp: pytest.TempPathFactory,
    name: str,
    idp: LiveServer,
    registration: dict[str, Any],
    port: int,
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[LiveServer]:
    """The hall as a live server signing in through ``idp``."""
    instance = tmp.mktemp(name)
    env = _server_env("HALL", make_database_url(name), instance)
    env.update(
        {
            "HALL_OIDC_ISSUER": idp.url,
            "HALL_OIDC_CLIENT_ID": registration["client_id"],
            "HALL_OIDC_CLIENT_SECRET": registration["client_secret"],
            **(extra_env or {}),
        }
    )
    server = LiveServer("hall", env, instance / "server.log", port=port)
    server.start()
    yield server
    server.stop()
    prefix = env.get("HALL_STORE_PREFIX")
    if TEST_REDIS_URL and prefix:
        flush_redis_prefix(TEST_REDIS_URL, prefix)


def start_registered_hall(
    make_database_url: MakeDatabaseUrl,
    tmp: pytest.TempPathFactory,
    name: str,
    idp: LiveServer,
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[LiveServer]:
    """A live hall on a free port, registered at ``idp`` with the real CLI: its callback,
    post-logout and back-channel logout addresses are its own."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    registration = register_hall(idp, base, backchannel=f"{base}/auth/backchannel-logout")
    yield from start_live_hall(
        make_database_url, tmp, name, idp, registration, port, extra_env=extra_env
    )


def add_staff(idp: LiveServer, people: Mapping[str, str], password: str) -> None:
    """Active staff accounts (account → name) at ``idp``, phones 13900007000… verified."""
    staff = ("--kind", "staff", "--password", password)
    idp.flask_each(
        *(
            ("users", "add", account, "--name", name, *staff, "--phone", f"1390000{7000 + i}")
            for i, (account, name) in enumerate(people.items())
        )
    )
    idp.sql("UPDATE users SET phone_verified_at = CURRENT_TIMESTAMP")


def csrf_token(html: str) -> str:
    """The CSRF token of the first form on a page."""
    found = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html)
    assert found, "no CSRF token on the page"
    return found.group(1)


def sign_in_at_idp(browser: requests.Session, url: str, until: str) -> str:
    """Follow ``url`` like a browser, signing in on the IdP's /login when asked, until a
    redirect leads to an address starting with ``until``; returns that address."""
    for _ in range(10):
        response = browser.get(url, allow_redirects=False, timeout=10)
        if response.status_code in (302, 303):
            location = urljoin(url, response.headers["Location"])
            if location.startswith(until):
                return location
            url = location
            continue
        assert response.status_code == 200 and "/login" in url, response.text[:300]
        posted = browser.post(
            url,
            data={
                "csrf_token": csrf_token(response.text),
                "identifier": ACCOUNT,
                "password": PASSWORD,
            },
            allow_redirects=False,
            timeout=10,
        )
        assert posted.status_code in (302, 303), posted.text[:300]
        url = urljoin(url, posted.headers["Location"])
    raise AssertionError(f"the sign-in never came back to {until}")


def sign_out_at_idp(browser: requests.Session, idp: LiveServer) -> None:
    """退出 on the IdP's own /logout page, as a person would."""
    page = browser.get(idp.url + "/logout", timeout=10)
    posted = browser.post(
        idp.url + "/logout",
        data={"csrf_token": csrf_token(page.text)},
        allow_redirects=False,
        timeout=10,
    )
    assert posted.status_code in (302, 303), posted.text[:300]


def eventually(check: Callable[[], bool], timeout: float = 15) -> bool:
    """Poll ``check`` until it holds (back-channel logout is delivered in the background)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return check()


def server_log(server: LiveServer) -> str:
    """What a live server has logged so far."""
    return Path(server.log_path).read_text(encoding="utf-8", errors="replace")


def start_sign_in(client: FlaskClient, next_path: str = "/") -> str:
    """Ask the hall to sign in; returns the IdP authorization address it sends us to."""
    response = client.get("/login", query_string={"next": next_path})
    assert response.status_code == 302, response.text[:300]
    return response.headers["Location"]


def sign_in(client: FlaskClient, next_path: str = "/") -> tuple[requests.Session, TestResponse]:
    """Sign in through the IdP with the demo student; returns the IdP browser and the landing."""
    browser = requests.Session()
    callback = sign_in_at_idp(browser, start_sign_in(client, next_path), CALLBACK)
    return browser, client.get(callback.removeprefix(TEST_CLIENT_BASE))


def query(url: str) -> dict[str, str]:
    """The query parameters of ``url``, one value each."""
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def hall_sessions(app: Flask) -> list[HallSession]:
    """Every hall session on record."""
    with app.app_context():
        return list(db.session.scalars(db.select(HallSession)))
