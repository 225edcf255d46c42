"""response_mode=form_post (ASP.NET Core's default) in a real browser against the live IdP: the
signed-in student's browser POSTs code, state and iss to the relying party's callback on
127.0.0.1, submitted by the page's static script (the CSP allows no inline one) or, without
JavaScript, by 继续; the relying party's server then exchanges the code."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import KeySet
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import LiveServer
from tests.fakes.recorder import Recorder, recording_server
from tests.idp.oidc_support import challenge_for

STUDENT = "2024000001"  # the demo student
STUDENT_PASSWORD = "Hongliu2024demo"
#: Where ASP.NET Core's OpenIdConnect handler takes the posted response by default.
CALLBACK_PATH = "/signin-oidc"


@pytest.fixture
def receiver() -> Iterator[Recorder]:
    """The relying party's server on 127.0.0.1, recording what the browser brings it."""
    with recording_server() as recorder:
        yield recorder


@pytest.fixture
def registration(live_idp: LiveServer, receiver: Recorder) -> dict[str, Any]:
    """The relying party, registered with the real CLI (a university system: no consent)."""
    return live_idp.add_oidc_client(
        "选课系统（ASP.NET）", "--first-party", "--redirect-uri", receiver.url + CALLBACK_PATH
    )


def _sign_in(page: Page, idp: LiveServer) -> None:
    """The student signs in at the IdP's own /login."""
    page.goto(idp.url + "/login")
    page.get_by_label("账号", exact=True).fill(STUDENT)
    page.get_by_label("密码", exact=True).fill(STUDENT_PASSWORD)
    page.get_by_role("button", name="登录").click()
    expect(page).not_to_have_url(re.compile(re.escape(idp.url + "/login")))


def _authorization_request(idp: LiveServer, registration: dict[str, Any]) -> dict[str, str]:
    """What the relying party sends the browser with (form_post, PKCE S256, nonce) and keeps."""
    sent = {
        "state": secrets.token_urlsafe(12),
        "nonce": secrets.token_urlsafe(12),
        "verifier": secrets.token_urlsafe(48),
    }
    query = {
        "response_type": "code",
        "response_mode": "form_post",
        "client_id": registration["client_id"],
        "redirect_uri": registration["redirect_uris"][0],
        "scope": "openid profile",
        "state": sent["state"],
        "nonce": sent["nonce"],
        "code_challenge": challenge_for(sent["verifier"]),
        "code_challenge_method": "S256",
    }
    sent["url"] = idp.url + "/oauth2/authorize?" + urlencode(query)
    return sent


def _received(receiver: Recorder, idp: LiveServer, sent: dict[str, str]) -> str:
    """The one POST the callback got: code, state and iss in the body, nothing in the URL.
    (Chromium may ask the relying party for /favicon.ico too: not the callback.)"""
    receiver.wait_for(1)
    (request,) = [r for r in receiver.requests if r["path"] == CALLBACK_PATH]
    assert request["method"] == "POST" and request["path"] == CALLBACK_PATH, request
    assert request["query"] == {}
    form = request["form"]
    assert sorted(form) == ["code", "iss", "state"], form
    assert form["state"] == [sent["state"]] and form["iss"] == [idp.url]
    return str(form["code"][0])


def _exchange(
    idp: LiveServer, registration: dict[str, Any], code: str, sent: dict[str, str]
) -> None:
    """The relying party's server trades the code (client_secret_basic, PKCE) and checks the
    ID token as any relying party would."""
    answer = requests.post(
        idp.url + "/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": registration["redirect_uris"][0],
            "code_verifier": sent["verifier"],
        },
        auth=(registration["client_id"], registration["client_secret"]),
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    keys = KeySet.import_key_set(requests.get(idp.url + "/oauth2/jwks", timeout=10).json())
    claims = jwt.decode(answer.json()["id_token"], keys, algorithms=["RS256", "ES256"]).claims
    assert claims["iss"] == idp.url and claims["aud"] == registration["client_id"]
    assert claims["nonce"] == sent["nonce"]


def test_signed_in_browser_posts_the_code_to_the_relying_party(
    page: Page, live_idp: LiveServer, receiver: Recorder, registration: dict[str, Any]
) -> None:
    """The page posts itself at once: the callback gets code, state and iss by POST, and the
    code is exchanged for tokens."""
    _sign_in(page, live_idp)
    sent = _authorization_request(live_idp, registration)
    page.goto(sent["url"])
    code = _received(receiver, live_idp, sent)
    _exchange(live_idp, registration, code, sent)


def test_without_javascript_continue_posts_the_code(
    browser: Browser, live_idp: LiveServer, receiver: Recorder, registration: dict[str, Any]
) -> None:
    """A browser without JavaScript sees 正在返回应用 and 继续, which posts the same form."""
    context = browser.new_context(locale="zh-CN", java_script_enabled=False)
    context.set_default_timeout(10_000)
    try:
        page = context.new_page()
        _sign_in(page, live_idp)
        sent = _authorization_request(live_idp, registration)
        page.goto(sent["url"])
        expect(page.locator("h1")).to_have_text("正在返回应用")
        assert receiver.requests == []
        page.get_by_role("button", name="继续").click()
        code = _received(receiver, live_idp, sent)
        _exchange(live_idp, registration, code, sent)
    finally:
        context.close()
