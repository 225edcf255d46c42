"""The manual's "联系管理员处理" cases in a real browser: the help desk finds the student in the
console (/admin) and fixes the account; the student then signs in."""

from __future__ import annotations

import itertools
import time
from typing import Any

import pyotp
import pytest
from playwright.sync_api import Browser, Page, expect

from idp.auth import throttle
from idp.directory.operations import find_user_by_account
from idp.extensions import db
from idp.mfa import operations as mfa
from shared.factory import get_store
from shared.messaging import SMS_FILE, read_records
from tests.e2e.conftest import LiveServer, fresh_code

PASSWORD = "Hongliu2024xy"
NEW_PASSWORD = "Willow-2025-new"
DESK_PASSWORD = "Desk-2025-hongliu"
_numbers = itertools.count(1)


def _enable_totp(server: LiveServer, account: str) -> str:
    """Turn TOTP on for one account in the live server's own database, store and data key, as
    the security centre would after the first code; returns the secret."""
    with server.app_here().test_request_context():
        user = find_user_by_account(account)
        assert user is not None
        secret = mfa.enrolment_secret(user)
        db.session.commit()
        earlier = time.time() - 60
        mfa.confirm_enrolment(user, pyotp.TOTP(secret).at(earlier), at=earlier)
        db.session.commit()
    return secret


def _id_number(seed: int) -> str:
    from idp.directory.identifiers import id_number_check_char

    first = f"62010219990303{seed % 1000:03d}"
    return first + id_number_check_char(first)


def _add_user(server: LiveServer, name: str, phone: str) -> tuple[str, str]:
    """An active account with a verified security phone; returns (account, ID number)."""
    n = next(_numbers)
    account, id_number = f"C2E{n:05d}", _id_number(n)
    server.flask(
        "users", "add", account, "--name", name, "--id-number", id_number, "--password", PASSWORD
    )
    server.sql(
        "UPDATE users SET phone = :p, phone_verified_at = CURRENT_TIMESTAMP WHERE account = :a",
        p=phone,
        a=account,
    )
    return account, id_number


def console_account(
    server: LiveServer, account: str, name: str, phone: str, role: str, password: str
) -> str:
    """A staff account with a verified phone, the console role ``role`` and TOTP on (as the
    CLI and the security centre make one); returns its TOTP secret."""
    server.flask_each(
        ("users", "add", account, "--name", name, "--kind", "staff", "--password", password),
        ("users", "grant", account, role),
    )
    server.sql(
        "UPDATE users SET phone = :p, phone_verified_at = CURRENT_TIMESTAMP WHERE account = :a",
        p=phone,
        a=account,
    )
    return _enable_totp(server, account)


@pytest.fixture(scope="module")
def help_desk(live_idp: LiveServer) -> tuple[str, str]:
    """A help-desk account with TOTP on; returns (account, TOTP secret)."""
    account = "C2EDESK"
    return account, console_account(
        live_idp, account, "孙服务台", "13700001111", "helpdesk", DESK_PASSWORD
    )


def _sign_in(page: Page, server: LiveServer, identifier: str, password: str) -> None:
    page.goto(server.url + "/login")
    page.get_by_label("账号", exact=True).fill(identifier)
    page.get_by_label("密码", exact=True).fill(password)
    page.get_by_role("button", name="登录").click()


#: The help desk's signed-in browser state (cookies) per live server and account: the first
#: test signs in with password and code; later tests reuse the session instead of waiting up
#: to 30 s for a new time step (a code is accepted once).
_desk_states: dict[tuple[str, str], Any] = {}


def _open_console(browser: Browser, server: LiveServer, desk: tuple[str, str]) -> Page:
    """The help desk signs in with password and authenticator code and opens /admin."""
    saved = _desk_states.get((server.url, desk[0]))
    context = browser.new_context(
        locale="zh-CN", viewport={"width": 1280, "height": 900}, storage_state=saved
    )
    context.set_default_timeout(10_000)
    page = context.new_page()
    if saved is None:
        _sign_in(page, server, desk[0], DESK_PASSWORD)
        expect(page.locator("h1")).to_have_text("两步验证")
        page.get_by_label("动态验证码").fill(fresh_code(desk[1]))
        page.get_by_role("button", name="验证").click()
        expect(page.locator("h1")).not_to_have_text("两步验证")
        _desk_states[(server.url, desk[0])] = context.storage_state()
    page.goto(server.url + "/admin")
    expect(page.locator("h1")).to_have_text("管理控制台")
    return page


def _find_and_open(desk: Page, query: str, account: str) -> None:
    desk.get_by_label("查找账号").fill(query)
    desk.get_by_role("button", name="查找").click()
    desk.get_by_role("link", name=account).click()


def _confirm(desk: Page, action: str, reason: str) -> None:
    desk.get_by_role("link", name=action).click()
    desk.get_by_label("操作原因").fill(reason)
    desk.get_by_label("我已核实对方身份，确认执行此操作").check()
    desk.get_by_role("button", name="确认执行").click()


def test_help_desk_resets_forgotten_password_of_student_who_changed_phone(
    page: Page, browser: Browser, live_idp: LiveServer, help_desk: tuple[str, str]
) -> None:
    """忘记密码且手机号已更换: the help desk finds the student by name, unbinds the old phone and
    gives a temporary password; the student signs in with it, binds the new phone and must set
    a new password, then signs in with that."""
    account, id_number = _add_user(live_idp, "周小舟", "13955550001")
    desk = _open_console(browser, live_idp, help_desk)
    _find_and_open(desk, "周小舟", account)
    expect(desk.locator("#account-status")).to_have_text("正常")
    _confirm(desk, "解绑安全手机", "学生持学生证到服务台，旧手机号已停用")
    expect(desk.get_by_role("status")).to_contain_text("已完成")
    _confirm(desk, "重置密码（临时密码）", "学生忘记密码，手机号已更换")
    temporary = desk.locator("#temp-password").inner_text()
    assert len(temporary) >= 12

    _sign_in(page, live_idp, account, temporary)
    page.get_by_role("link", name="马上处理").click()
    page.get_by_label("姓名", exact=True).fill("周小舟")
    page.get_by_label("证件号", exact=True).fill(id_number)
    page.get_by_role("button", name="下一步").click()
    page.get_by_label("手机号码", exact=True).fill("13955550002")
    page.get_by_role("button", name="发送验证码").click()
    codes = [r for r in read_records(live_idp.outbox, SMS_FILE) if r["to"] == "13955550002"]
    page.get_by_label("验证码", exact=True).fill(str(codes[-1]["code"]))
    page.get_by_role("button", name="下一步").click()
    page.get_by_label("新密码", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("确认密码", exact=True).fill(NEW_PASSWORD)
    page.get_by_role("button", name="完成并登录").click()
    expect(page.locator(".user-name")).to_have_text("周小舟")

    page.context.clear_cookies()
    _sign_in(page, live_idp, "13955550002", NEW_PASSWORD)
    expect(page.locator(".user-name")).to_have_text("周小舟")
    desk.goto(live_idp.url + "/admin")
    _find_and_open(desk, account, account)
    expect(desk.get_by_text("console.temp-password")).to_be_visible()
    desk.context.close()


def test_help_desk_temporary_password_must_be_changed_at_sign_in(
    page: Page, browser: Browser, live_idp: LiveServer, help_desk: tuple[str, str]
) -> None:
    """A temporary password signs in once and leads straight to 修改密码."""
    account, _ = _add_user(live_idp, "吴一帆", "13955550003")
    desk = _open_console(browser, live_idp, help_desk)
    _find_and_open(desk, "13955550003", account)
    _confirm(desk, "重置密码（临时密码）", "忘记密码，本人到场")
    temporary = desk.locator("#temp-password").inner_text()
    desk.context.close()

    _sign_in(page, live_idp, account, temporary)
    expect(page).to_have_url(live_idp.url + "/password/change")
    expect(page.get_by_text("请先设置新密码后再继续")).to_be_visible()
    page.get_by_label("新密码", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("确认密码", exact=True).fill(NEW_PASSWORD)
    page.get_by_role("button", name="完成").click()
    expect(page.locator(".user-name")).to_have_text("吴一帆")


def test_help_desk_sends_reset_link_and_student_sets_new_password_from_it(
    page: Page, browser: Browser, live_idp: LiveServer, help_desk: tuple[str, str]
) -> None:
    """忘记密码，本人来电: the help desk sends a reset link to the security phone; the student
    opens it from the SMS, sets a new password without the old one and signs in with it."""
    account, _ = _add_user(live_idp, "冯小雨", "13955550005")
    desk = _open_console(browser, live_idp, help_desk)
    _find_and_open(desk, account, account)
    _confirm(desk, "发送重置链接", "学生来电忘记密码，核对身份信息后发送")
    expect(desk.get_by_role("status")).to_contain_text("重置链接已发送至安全手机 139****0005")
    expect(desk.get_by_text("console.reset-link")).to_be_visible()
    desk.context.close()

    [sms] = [r for r in read_records(live_idp.outbox, SMS_FILE) if r["to"] == "13955550005"]
    # The SMS names the IdP by IDP_ISSUER, whatever port serves it here: open its path.
    path = sms["text"].split("/recover/link/", 1)[1].split()[0]
    assert path == sms["code"]
    page.goto(f"{live_idp.url}/recover/link/{path}")
    expect(page.locator("h1")).to_have_text("设置新密码")
    page.get_by_label("新密码", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("确认密码", exact=True).fill(NEW_PASSWORD)
    page.get_by_role("button", name="完成").click()
    expect(page).to_have_url(live_idp.url + "/login")
    expect(page.get_by_text("密码已重置，请使用新密码登录")).to_be_visible()
    _sign_in(page, live_idp, account, NEW_PASSWORD)
    expect(page.locator(".user-name")).to_have_text("冯小雨")

    page.goto(f"{live_idp.url}/recover/link/{path}")
    expect(page.get_by_text("此重置链接无效、已使用或已过期")).to_be_visible()
    expect(page.get_by_role("link", name="找回密码")).to_be_visible()


def test_help_desk_unlocks_account_locked_by_wrong_passwords(
    page: Page, browser: Browser, live_idp: LiveServer, help_desk: tuple[str, str]
) -> None:
    """账号被锁定: five wrong passwords (the last ones past a CAPTCHA) lock it; the help desk
    unlocks it; the student signs in with the right password."""
    account, _ = _add_user(live_idp, "郑可", "13955550004")
    page.goto(live_idp.url + "/login")
    page.get_by_label("账号", exact=True).fill(account)
    for attempt in range(1, 11):
        page.get_by_label("密码", exact=True).fill("Wrong-password-1")
        captcha = page.get_by_label("图形验证码")
        if captcha.count():
            page.wait_for_load_state("load")
            captcha.fill(_captcha_answer(live_idp, page))
        with page.expect_navigation():  # the answer page is in before the next try
            page.get_by_role("button", name="登录").click()
        if attempt >= 5 and _locked(live_idp, account):  # the first lock comes at 5 failures
            break
    assert _locked(live_idp, account)

    desk = _open_console(browser, live_idp, help_desk)
    _find_and_open(desk, account, account)
    expect(desk.locator("#lock-state")).to_contain_text("已锁定")
    _confirm(desk, "解除锁定", "学生来电，本人核实")
    expect(desk.locator("#lock-state")).to_contain_text("未锁定")
    desk.context.close()

    page.context.clear_cookies()
    _sign_in(page, live_idp, account, PASSWORD)
    expect(page.locator(".user-name")).to_have_text("郑可")


def _locked(server: LiveServer, account: str) -> bool:
    """Whether the account's password sign-in is locked now (read from the server's store)."""
    with server.app_here().app_context():
        user = find_user_by_account(account)
        assert user is not None
        return throttle.is_locked(f"user:{user.id}")


def _captcha_answer(server: LiveServer, page: Page) -> str:
    """The text of the CAPTCHA image this browser was shown (as a person reads it)."""
    cookie = next(c["value"] for c in page.context.cookies() if c["name"] == "hongliu_idp")
    app = server.app_here()
    serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    with app.app_context():
        return str(get_store().get("captcha:" + serializer.loads(cookie)["captcha_id"]))


def test_console_refuses_help_desk_without_totp_until_it_is_enabled(
    browser: Browser, live_idp: LiveServer
) -> None:
    """A help-desk account without 两步验证 is stopped at /admin until it turns it on."""
    account = "C2ENOTOTP"
    live_idp.flask_each(
        ("users", "add", account, "--name", "钱服务台", "--kind", "staff",
         "--password", DESK_PASSWORD),
        ("users", "grant", account, "helpdesk"),
    )  # fmt: skip
    live_idp.sql(
        "UPDATE users SET phone = '13700003333', phone_verified_at = CURRENT_TIMESTAMP "
        "WHERE account = :a",
        a=account,
    )
    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    _sign_in(page, live_idp, account, DESK_PASSWORD)
    response = page.goto(live_idp.url + "/admin")
    assert response is not None and response.status == 403
    expect(page.get_by_text("请先启用两步验证")).to_be_visible()
    expect(page.get_by_role("link", name="管理控制台")).to_have_count(0)
    page.get_by_role("link", name="启用两步验证").click()
    expect(page).to_have_url(f"{live_idp.url}/security/totp?next=/admin")
    page.get_by_label("登录密码", exact=True).fill(DESK_PASSWORD)
    page.get_by_role("button", name="下一步").click()
    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    page.get_by_label("动态验证码", exact=True).fill(fresh_code(secret, steps_back=1))
    page.get_by_role("button", name="开启两步验证").click()
    expect(page.get_by_role("heading", name="保存您的恢复码")).to_be_visible()
    page.goto(live_idp.url + "/admin")
    expect(page.locator("h1")).to_have_text("管理控制台")
    context.close()
