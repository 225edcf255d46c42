"""两步验证 in a real browser: enabling it in 安全中心 (login password, then codes computed like an
authenticator app does), then signing in with a code, and with a recovery code."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import LiveServer, fresh_code

PASSWORD = "Hongliu2024xy"
_numbers = itertools.count(1)


@pytest.fixture
def add_user(live_idp: LiveServer) -> Callable[[], str]:
    """Create an active account with a security phone through the real CLI; returns it."""

    def add() -> str:
        n = next(_numbers)
        account = f"MFA{n:05d}"
        live_idp.flask("users", "add", account, "--name", "钱七", "--password", PASSWORD)
        live_idp.sql(
            "UPDATE users SET phone = :p, phone_verified_at = CURRENT_TIMESTAMP WHERE account = :a",
            p=f"1370000{n:04d}",
            a=account,
        )
        return account

    return add


def _sign_in(page: Page, server: LiveServer, account: str) -> None:
    page.goto(server.url + "/login")
    page.get_by_label("账号", exact=True).fill(account)
    page.get_by_label("密码", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="登录").click()


def _enable_in_security_centre(
    page: Page, server: LiveServer, account: str
) -> tuple[str, list[str]]:
    """Sign in, 开启两步验证 from the security centre; returns the secret and recovery codes."""
    _sign_in(page, server, account)
    page.goto(server.url + "/security")
    card = page.locator("#two-step")
    expect(card).to_contain_text("未开启")
    card.get_by_role("link", name="开启两步验证").click()
    # The login password first: a session left open elsewhere shows no key.
    expect(page.get_by_role("img", name="两步验证二维码")).to_have_count(0)
    page.get_by_label("登录密码", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="下一步").click()
    expect(page.get_by_role("img", name="两步验证二维码")).to_be_visible()
    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    # Like a phone that scanned the QR code a moment ago: the code of the previous step.
    page.get_by_label("动态验证码", exact=True).fill(fresh_code(secret, steps_back=1))
    page.get_by_role("button", name="开启两步验证").click()
    expect(page.get_by_role("heading", name="保存您的恢复码")).to_be_visible()
    codes = page.locator("#recovery-codes li").all_inner_texts()
    assert len(codes) == 10
    page.get_by_role("link", name="我已保存，返回安全中心").click()
    expect(page.locator("#two-step")).to_contain_text("已开启")
    expect(page.locator("#two-step")).to_contain_text("剩余 10 个")
    page.context.clear_cookies()  # as if the browser were closed
    return secret, codes


def test_student_enables_totp_then_signs_in_with_a_code(
    page: Page, live_idp: LiveServer, add_user: Callable[[], str]
) -> None:
    """After 开启两步验证, signing in asks for the app's code before the portal opens."""
    account = add_user()
    secret, _ = _enable_in_security_centre(page, live_idp, account)
    _sign_in(page, live_idp, account)
    expect(page.get_by_role("heading", name="两步验证")).to_be_visible()
    expect(page.locator(".user-name")).to_have_count(0)
    page.get_by_label("动态验证码", exact=True).fill("12345x")
    page.get_by_role("button", name="验证").click()
    expect(page.get_by_role("alert")).to_contain_text("验证码错误")
    page.get_by_label("动态验证码", exact=True).fill(fresh_code(secret))
    page.get_by_role("button", name="验证").click()
    expect(page.locator(".user-name")).to_have_text("钱七")


def test_student_signs_in_with_a_recovery_code(
    page: Page, live_idp: LiveServer, add_user: Callable[[], str]
) -> None:
    """使用恢复码 when the phone is not at hand: one code signs in, and one fewer is left."""
    account = add_user()
    _, codes = _enable_in_security_centre(page, live_idp, account)
    _sign_in(page, live_idp, account)
    page.get_by_role("link", name="使用恢复码").click()
    page.get_by_label("恢复码", exact=True).fill(codes[0])
    page.get_by_role("button", name="验证").click()
    expect(page.locator(".user-name")).to_have_text("钱七")
    page.goto(live_idp.url + "/security")
    expect(page.locator("#two-step")).to_contain_text("剩余 9 个")
