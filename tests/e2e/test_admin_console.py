"""An admin registers a CAS service in the console (/admin/clients) in a real browser; a student
then signs in to that service through /cas/login and python-cas validates the ticket."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from cas import CASClient
from playwright.sync_api import Browser, Page, Route, expect

from tests.e2e.conftest import LiveServer, fresh_code
from tests.e2e.test_console import console_account

ADMIN = "C2EADMIN"
ADMIN_PASSWORD = "Admin-2025-hongliu"
STUDENT = "2024000001"  # the demo student
STUDENT_PASSWORD = "Hongliu2024demo"
SERVICE = "https://lib.example.edu.cn/login"


@pytest.fixture(scope="module")
def admin_secret(live_idp: LiveServer) -> str:
    """An admin account with TOTP on; its secret."""
    return console_account(live_idp, ADMIN, "周管理员", "13700002222", "admin", ADMIN_PASSWORD)


def _sign_in(page: Page, server: LiveServer, account: str, password: str) -> None:
    page.get_by_label("账号", exact=True).fill(account)
    page.get_by_label("密码", exact=True).fill(password)
    page.get_by_role("button", name="登录").click()


def test_admin_registers_cas_service_and_a_student_signs_in_to_it(
    page: Page, browser: Browser, live_idp: LiveServer, admin_secret: str
) -> None:
    """登记 CAS 服务 in the console; /cas/login then issues a ticket python-cas accepts."""
    page.goto(live_idp.url + "/login")
    _sign_in(page, live_idp, ADMIN, ADMIN_PASSWORD)
    expect(page.locator("h1")).to_have_text("两步验证")
    page.get_by_label("动态验证码").fill(fresh_code(admin_secret))
    page.get_by_role("button", name="验证").click()
    expect(page).not_to_have_url(re.compile(r"/login"))

    page.goto(live_idp.url + "/admin/clients")
    expect(page.locator("h1")).to_have_text("应用接入")
    page.get_by_role("link", name="登记 CAS 服务").click()
    page.get_by_label("名称", exact=True).fill("图书馆系统")
    page.get_by_label("服务地址规则（正则表达式，匹配整个地址）").fill(
        r"https://lib\.example\.edu\.cn/.*"
    )
    page.get_by_label("name", exact=True).check()
    page.get_by_label("account", exact=True).check()
    page.get_by_role("button", name="保存").click()
    expect(page.locator(".flash-success")).to_contain_text("CAS 服务已登记")
    # The snippets name the IdP by its public URL (IDP_ISSUER), whatever port serves it here.
    expect(page.locator("pre.snippet").first).to_contain_text("/cas/p3/serviceValidate")
    expect(page.locator("body")).to_contain_text("CASClient(")

    # A student, in a browser of their own, opens the library and signs in through CAS.
    context = browser.new_context(locale="zh-CN")
    context.set_default_timeout(10_000)
    student = context.new_page()
    arrived: list[str] = []

    def library(route: Route) -> None:  # the library's server, which does not exist here
        arrived.append(route.request.url)
        route.fulfill(status=200, content_type="text/html; charset=utf-8", body="<h1>图书馆</h1>")

    student.route("https://lib.example.edu.cn/**", library)
    student.goto(f"{live_idp.url}/cas/login?service={SERVICE}")
    _sign_in(student, live_idp, STUDENT, STUDENT_PASSWORD)
    expect(student.locator("h1")).to_have_text("图书馆")
    context.close()

    ticket = parse_qs(urlsplit(arrived[-1]).query)["ticket"][0]
    cas = CASClient(version=3, server_url=live_idp.url + "/cas/", service_url=SERVICE)
    user, attributes, _pgtiou = cas.verify_ticket(ticket)
    assert user == STUDENT
    assert attributes["account"] == STUDENT and attributes["name"]
