"""An admin registers an OpenID Connect client in the console (/admin/clients, 应用接入) in a real
browser; a relying party nobody here wrote (Authlib's OAuth client: PKCE S256,
client_secret_basic) signs the demo student in with it; the admin then rotates its secret
(重置密钥) and disables (停用) and re-enables (启用) it. The relying party's 退出 signs the
student out of the IdP (RP-initiated logout) and the browser comes back to its page."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.jwk import KeySet
from playwright.sync_api import Browser, Page, Route, expect

from tests.e2e.conftest import LiveServer
from tests.e2e.test_console import DESK_PASSWORD, _open_console, console_account

ADMIN = "C2EOIDC"
STUDENT = "2024000001"  # the demo student
STUDENT_PASSWORD = "Hongliu2024demo"
RP_ORIGIN = "https://rp-e2e.example.edu.cn"  # the relying party's server, which does not exist
REDIRECT_URI = RP_ORIGIN + "/callback"
SIGNED_OUT_URI = RP_ORIGIN + "/signed-out"
SCOPE = "openid profile"


@dataclass
class RelyingPartySite:
    """The relying party's pages as the student's browser meets them, answered by ``page.route``:
    its 统一身份认证登录 link (/login) sends the browser to ``sign_in_url``, its 退出 link
    (/logout) to ``sign_out_url``; every other address, the callback included, is the 选课系统
    page. Every address reached is kept."""

    sign_in_url: str = ""
    sign_out_url: str = ""
    arrived: list[str] = field(default_factory=list)

    def answer(self, route: Route) -> None:
        self.arrived.append(route.request.url)
        leaving = {"/login": self.sign_in_url, "/logout": self.sign_out_url}
        target = leaving.get(urlsplit(route.request.url).path)
        if target:
            route.fulfill(status=302, headers={"Location": target})
            return
        body = '<h1>选课系统</h1><a href="/login">统一身份认证登录</a> <a href="/logout">退出</a>'
        route.fulfill(status=200, content_type="text/html; charset=utf-8", body=body)

    def callbacks(self) -> list[str]:
        return [url for url in self.arrived if url.startswith(REDIRECT_URI + "?")]

    def returns_after_sign_out(self) -> list[str]:
        return [url for url in self.arrived if url.startswith(SIGNED_OUT_URI + "?")]


@pytest.fixture(scope="module")
def admin_secret(live_idp: LiveServer) -> str:
    """An admin account with TOTP on; its secret."""
    return console_account(live_idp, ADMIN, "吴管理员", "13700006666", "admin", DESK_PASSWORD)


@pytest.fixture
def admin(browser: Browser, live_idp: LiveServer, admin_secret: str) -> Iterator[Page]:
    """The admin's own browser at /admin: signed in with password and authenticator code once,
    later tests reuse that session (a code is accepted only once)."""
    page = _open_console(browser, live_idp, (ADMIN, admin_secret))
    yield page
    page.context.close()


@pytest.fixture
def site(page: Page) -> RelyingPartySite:
    """The relying party's site in the student's browser (``page``), which starts there."""
    site = RelyingPartySite()
    page.route(RP_ORIGIN + "/**", site.answer)
    page.goto(RP_ORIGIN + "/")
    expect(page.locator("h1")).to_have_text("选课系统")
    return site


def _register(
    admin: Page, server: LiveServer, name: str, post_logout_uri: str = ""
) -> tuple[str, str]:
    """登记 OIDC 客户端 through the console form; returns (client id, secret shown once)."""
    admin.goto(server.url + "/admin")
    admin.locator(".console-nav").get_by_role("link", name="应用接入", exact=True).click()
    expect(admin.locator("h1")).to_have_text("应用接入")
    admin.get_by_role("link", name="登记 OIDC 客户端").click()
    expect(admin.locator("h1")).to_have_text("登记 OIDC 客户端")
    admin.get_by_label("名称", exact=True).fill(name)
    admin.get_by_label("重定向 URI（每行一个，完全一致匹配）").fill(REDIRECT_URI)
    admin.get_by_label("授权范围（空格分隔）").fill(SCOPE)
    admin.get_by_label("退出后重定向 URI（每行一个）").fill(post_logout_uri)
    admin.get_by_role("button", name="保存").click()
    expect(admin.locator("h1")).to_have_text("客户端已登记")
    expect(admin.locator(".notice")).to_contain_text("密钥只显示这一次")
    return admin.locator("#client-id").inner_text(), admin.locator("#client-secret").inner_text()


def _relying_party(client_id: str, secret: str) -> OAuth2Session:
    """The relying party's OAuth client, as its developers would configure Authlib's."""
    return OAuth2Session(
        client_id,
        secret,
        scope=SCOPE,
        redirect_uri=REDIRECT_URI,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",
    )


def _start_sign_in(
    page: Page, site: RelyingPartySite, rp: OAuth2Session, server: LiveServer
) -> dict[str, str]:
    """The student clicks 统一身份认证登录 on the relying party's page, which sends the browser
    to the IdP; returns what the relying party keeps to check the answer."""
    verifier, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(12)
    site.sign_in_url, state = rp.create_authorization_url(
        server.url + "/oauth2/authorize", code_verifier=verifier, nonce=nonce
    )
    # A click, not page.goto: Playwright never routes a redirect's target, so the callback's
    # first request fails (no such host) until Chromium re-issues it, which goto would not wait for.
    page.get_by_role("link", name="统一身份认证登录").click()
    return {"state": state, "code_verifier": verifier, "nonce": nonce}


def _student_signs_in(page: Page, client_name: str) -> None:
    """At the IdP, the demo student signs in and agrees (同意授权), back to the relying party."""
    page.get_by_label("账号", exact=True).fill(STUDENT)
    page.get_by_label("密码", exact=True).fill(STUDENT_PASSWORD)
    page.get_by_role("button", name="登录").click()
    expect(page.locator("h1")).to_have_text("同意授权")
    expect(page.locator("body")).to_contain_text(f"“{client_name}”请求使用您的统一身份认证账号登录")
    page.get_by_role("button", name="同意", exact=True).click()
    expect(page.locator("h1")).to_have_text("选课系统")


def _exchange(
    rp: OAuth2Session, server: LiveServer, site: RelyingPartySite, sent: dict[str, str]
) -> Any:
    """The relying party's server trades the code for tokens (state and PKCE checked)."""
    return rp.fetch_token(
        server.url + "/oauth2/token",
        authorization_response=site.callbacks()[-1],
        state=sent["state"],
        code_verifier=sent["code_verifier"],
    )


def _refresh(server: LiveServer, refresh_token: str, client_id: str, secret: str) -> Any:
    return requests.post(
        server.url + "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        auth=(client_id, secret),  # client_secret_basic
        timeout=10,
    )


def _signed_in_through_new_client(
    admin: Page,
    page: Page,
    site: RelyingPartySite,
    server: LiveServer,
    name: str,
    post_logout_uri: str = "",
) -> tuple[str, str, OAuth2Session, Any]:
    """Register ``name`` in the console and sign the student in through it: its client id and
    secret, the relying party's client and its token response."""
    client_id, secret = _register(admin, server, name, post_logout_uri)
    rp = _relying_party(client_id, secret)
    sent = _start_sign_in(page, site, rp, server)
    _student_signs_in(page, name)
    return client_id, secret, rp, _exchange(rp, server, site, sent)


def test_admin_registers_oidc_client_and_a_relying_party_signs_a_student_in(
    admin: Page, page: Page, live_idp: LiveServer, site: RelyingPartySite
) -> None:
    """登记 OIDC 客户端 shows the secret once; Authlib's client then signs the student in."""
    name = "选课系统（OIDC 登记）"
    client_id, secret = _register(admin, live_idp, name)
    assert client_id and len(secret) >= 32

    admin.goto(live_idp.url + "/admin/clients")
    row = admin.locator("#oidc-clients tbody tr", has_text=client_id)
    expect(row).to_contain_text(name)
    expect(row).to_contain_text("启用")
    row.get_by_role("link", name=name).click()
    expect(admin.locator("h1")).to_have_text(name)
    expect(admin.locator("#client-id")).to_have_text(client_id)
    expect(admin.locator("body")).to_contain_text("客户端密钥只在登记或重置时显示一次")
    expect(admin.locator("#client-secret")).to_have_count(0)
    assert secret not in admin.content()

    rp = _relying_party(client_id, secret)
    sent = _start_sign_in(page, site, rp, live_idp)
    _student_signs_in(page, name)
    returned = parse_qs(urlsplit(site.callbacks()[-1]).query)
    assert returned["state"] == [sent["state"]] and returned["code"]

    token = _exchange(rp, live_idp, site, sent)
    keys = KeySet.import_key_set(requests.get(live_idp.url + "/oauth2/jwks", timeout=10).json())
    claims = jwt.decode(token["id_token"], keys).claims
    assert claims["aud"] == client_id and claims["nonce"] == sent["nonce"]
    assert claims["iss"] == returned["iss"][0] == live_idp.url  # RFC 9207, OIDC Core §3.1.3.7
    info = rp.get(live_idp.url + "/oauth2/userinfo", timeout=10).json()
    assert info["sub"] == claims["sub"] and info["preferred_username"] == STUDENT


def test_rotated_secret_replaces_the_old_one_at_once(
    admin: Page, page: Page, live_idp: LiveServer, site: RelyingPartySite
) -> None:
    """重置密钥 shows a new secret once; the old one then gets 401 invalid_client, and what was
    obtained with it is void too (a secret is rotated because it may have leaked): the refresh
    token is refused even with the new secret."""
    name = "选课系统（OIDC 重置密钥）"
    signed_in = _signed_in_through_new_client(admin, page, site, live_idp, name)
    client_id, old_secret, _, token = signed_in

    admin.get_by_role("link", name="查看登记信息").click()
    expect(admin.locator("h1")).to_have_text(name)
    admin.locator("#rotate-secret").get_by_label("原因（选填）").fill("密钥泄露演练")
    admin.get_by_role("button", name="重置密钥").click()
    expect(admin.locator("h1")).to_have_text("密钥已重置")
    expect(admin.locator("body")).to_contain_text("旧密钥已立即失效。")
    expect(admin.locator("body")).to_contain_text("用旧密钥取得的令牌也已全部作废")
    new_secret = admin.locator("#client-secret").inner_text()
    assert new_secret and new_secret != old_secret

    refused = _refresh(live_idp, token["refresh_token"], client_id, old_secret)
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    revoked = _refresh(live_idp, token["refresh_token"], client_id, new_secret)
    assert revoked.status_code == 400 and revoked.json()["error"] == "invalid_grant"


def test_disabled_client_cannot_sign_anyone_in_until_enabled_again(
    admin: Page, page: Page, live_idp: LiveServer, site: RelyingPartySite
) -> None:
    """停用 stops the sign-in at the IdP's error page, short of the callback; 启用 restores it."""
    name = "选课系统（OIDC 停用）"
    _, _, rp, token = _signed_in_through_new_client(admin, page, site, live_idp, name)

    admin.get_by_role("link", name="查看登记信息").click()
    admin.get_by_role("button", name="停用", exact=True).click()
    expect(admin.locator(".flash-success")).to_contain_text("已停用，该应用将无法再登录。")
    expect(admin.locator("#client-state")).to_have_text("已停用")

    page.goto(RP_ORIGIN + "/")
    callbacks = len(site.callbacks())
    _start_sign_in(page, site, rp, live_idp)
    expect(page.locator("h1")).to_have_text("无法完成登录")
    expect(page.locator("body")).to_contain_text("请联系该应用的管理员")
    assert len(site.callbacks()) == callbacks
    userinfo = live_idp.url + "/oauth2/userinfo"
    assert rp.get(userinfo, timeout=10).status_code == 401  # its tokens stop working with it

    admin.get_by_role("button", name="启用", exact=True).click()
    expect(admin.locator(".flash-success")).to_contain_text("已启用。")
    expect(admin.locator("#client-state")).to_have_text("启用")
    page.goto(RP_ORIGIN + "/")
    again = _start_sign_in(page, site, rp, live_idp)
    # Signed in and agreed already: straight back to the relying party.
    expect(page).to_have_url(re.compile(r"/callback\?code="))
    expect(page.locator("h1")).to_have_text("选课系统")
    assert len(site.callbacks()) == callbacks + 1
    assert _exchange(rp, live_idp, site, again)["access_token"] != token["access_token"]
    assert rp.get(userinfo, timeout=10).json()["preferred_username"] == STUDENT


def _signs_out_at_the_relying_party(
    page: Page, site: RelyingPartySite, server: LiveServer, **query: str
) -> str:
    """The student clicks 退出 on the relying party's page, which sends the browser to the IdP's
    end-session endpoint with ``query`` and a fresh ``state``; returns that state."""
    state = secrets.token_urlsafe(12)
    query = {**query, "post_logout_redirect_uri": SIGNED_OUT_URI, "state": state}
    site.sign_out_url = server.url + "/oauth2/logout?" + urlencode(query)
    page.get_by_role("link", name="退出").click()
    return state


def _idp_session_over(page: Page, server: LiveServer) -> None:
    page.goto(server.url + "/logout")
    expect(page.get_by_text("您当前没有登录。")).to_be_visible()


def test_relying_party_signs_the_student_out_with_an_id_token_hint(
    admin: Page, page: Page, live_idp: LiveServer, site: RelyingPartySite
) -> None:
    """退出 with the ID token as hint ends the IdP session at once, back to the registered page
    with the relying party's state."""
    name = "选课系统（OIDC 退出）"
    signed_in = _signed_in_through_new_client(admin, page, site, live_idp, name, SIGNED_OUT_URI)
    token = signed_in[3]

    state = _signs_out_at_the_relying_party(page, site, live_idp, id_token_hint=token["id_token"])
    expect(page).to_have_url(re.compile("^" + re.escape(SIGNED_OUT_URI + "?")))
    expect(page.locator("h1")).to_have_text("选课系统")
    assert parse_qs(urlsplit(site.returns_after_sign_out()[-1]).query)["state"] == [state]
    _idp_session_over(page, live_idp)


def test_relying_party_without_a_hint_signs_the_student_out_once_confirmed(
    admin: Page, page: Page, live_idp: LiveServer, site: RelyingPartySite
) -> None:
    """退出 naming only the client: the IdP asks first (确认退出, naming the application), then
    ends the session and returns to the page that client registered, with its state."""
    name = "选课系统（OIDC 确认退出）"
    client_id = _signed_in_through_new_client(admin, page, site, live_idp, name, SIGNED_OUT_URI)[0]

    state = _signs_out_at_the_relying_party(page, site, live_idp, client_id=client_id)
    expect(page.locator("h1")).to_have_text("退出登录")
    expect(page.locator("body")).to_contain_text(f"“{name}”请求退出您的统一身份认证登录。")
    assert not site.returns_after_sign_out()
    page.get_by_role("button", name="确认退出").click()
    expect(page).to_have_url(re.compile("^" + re.escape(SIGNED_OUT_URI + "?")))
    expect(page.locator("h1")).to_have_text("选课系统")
    assert parse_qs(urlsplit(site.returns_after_sign_out()[-1]).query)["state"] == [state]
    _idp_session_over(page, live_idp)
