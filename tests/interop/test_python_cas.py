"""python-cas (PyPI ``python-cas``, ``import cas``), an independent CAS client, against the live
IdP: it must accept our CAS 1, 2 and 3 answers and our logout URL.

The browser part (signing in, following redirects) is played by ``requests`` with the real
sign-in form and its CSRF token.
"""

from __future__ import annotations

import itertools
import re
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
from cas import CASClient

from tests.e2e.conftest import LiveServer

PASSWORD = "Hongliu2024xy"
SERVICE = "https://interop.example.test/app/?lang=zh"
_numbers = itertools.count(1)


@pytest.fixture(scope="module")
def cas_service(live_idp: LiveServer) -> str:
    """Register the test service once, releasing name, account and phone."""
    live_idp.add_cas_service(
        "互操作测试",
        *("--service", r"https://interop\.example\.test/.*"),
        *("--attribute", "name", "--attribute", "account", "--attribute", "phone"),
        probe=SERVICE,
    )
    return SERVICE


def add_user(live_idp: LiveServer) -> str:
    """An active account with a verified security phone; returns its account number."""
    n = next(_numbers)
    account = f"CAS{n:05d}"
    live_idp.flask("users", "add", account, "--name", "赵六", "--password", PASSWORD)
    live_idp.sql(
        "UPDATE users SET phone = :p, phone_verified_at = CURRENT_TIMESTAMP WHERE account = :a",
        p=f"1370000{n:04d}",
        a=account,
    )
    return account


def service_ticket(live_idp: LiveServer, account: str, service: str) -> str:
    """Play the browser: python-cas's login URL, the sign-in form, redirects up to the ticket."""
    browser = requests.Session()
    start = browser.get(
        client(live_idp, 3, service).get_login_url(), allow_redirects=False, timeout=10
    )
    assert start.status_code == 302, start.status_code
    login_url = urljoin(start.url, start.headers["Location"])
    next_url = parse_qs(urlsplit(login_url).query)["next"][0]
    assert next_url.startswith("/cas/login?")
    match = re.search(
        r'name="csrf_token"[^>]*value="([^"]+)"', browser.get(login_url, timeout=10).text
    )
    assert match, "no CSRF token on /login"
    form = {"csrf_token": match.group(1), "identifier": account, "password": PASSWORD}
    response = browser.post(
        login_url, data={**form, "next": next_url}, allow_redirects=False, timeout=10
    )
    for _hop in range(5):
        assert response.status_code in (302, 303), response.status_code
        location = urljoin(response.url, response.headers["Location"])
        if location.startswith(service.split("?")[0]):
            return parse_qs(urlsplit(location).query)["ticket"][0]
        response = browser.get(location, allow_redirects=False, timeout=10)
    raise AssertionError("no ticket after five redirects")


def client(live_idp: LiveServer, version: int, service: str = SERVICE) -> CASClient:
    """A python-cas client for ``service`` speaking ``version``."""
    return CASClient(version=version, server_url=live_idp.url + "/cas/", service_url=service)


@pytest.mark.parametrize("version", [1, 2, 3])
def test_python_cas_validates_our_tickets(
    live_idp: LiveServer, cas_service: str, version: int
) -> None:
    """CAS 1, 2 and 3: python-cas reads the account number as the user."""
    account = add_user(live_idp)
    ticket = service_ticket(live_idp, account, cas_service)
    user, attributes, pgtiou = client(live_idp, version).verify_ticket(ticket)
    assert user == account and pgtiou is None
    if version == 3:
        assert attributes["name"] == "赵六" and attributes["account"] == account
        assert attributes["phone"].startswith("1370000")
        assert attributes["isFromNewLogin"] == "true"
        assert attributes["longTermAuthenticationRequestTokenUsed"] == "false"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", attributes["authenticationDate"])
    else:
        assert not attributes


@pytest.mark.parametrize("version", [1, 2, 3])
def test_python_cas_sees_failures(live_idp: LiveServer, cas_service: str, version: int) -> None:
    """A used ticket, or one for another service, comes back as ``(None, …)``."""
    account = add_user(live_idp)
    ticket = service_ticket(live_idp, account, cas_service)
    other = client(live_idp, version, "https://interop.example.test/other")
    assert other.verify_ticket(ticket)[0] is None  # wrong service: burnt
    assert client(live_idp, version).verify_ticket(ticket)[0] is None
    assert client(live_idp, version).verify_ticket("ST-" + "0" * 43)[0] is None


def test_python_cas_logout_url(live_idp: LiveServer, cas_service: str) -> None:
    """v3 logout (``service=``) returns to a registered service; v1/v2's ``url=`` is ignored."""
    v3 = client(live_idp, 3).get_logout_url(SERVICE)
    answer = requests.get(v3, allow_redirects=False, timeout=10)
    assert answer.status_code == 303 and answer.headers["Location"] == SERVICE
    v2 = client(live_idp, 2).get_logout_url(SERVICE)
    assert "url=" in v2
    page = requests.get(v2, allow_redirects=False, timeout=10)
    assert page.status_code == 200 and "Location" not in page.headers
