"""The manual's IdP journeys (chapter 2.1 and 3) in a real browser against a live IdP."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from shared.messaging import MAIL_FILE, SMS_FILE, read_records
from tests.e2e.conftest import LiveServer

PASSWORD = "Hongliu2024xy"
NEW_PASSWORD = "Willow-2025-new"
_numbers = itertools.count(1)


def _id_number(seed: int) -> str:
    from idp.directory.identifiers import id_number_check_char

    first = f"62010220010101{seed % 1000:03d}"
    return first + id_number_check_char(first)


@pytest.fixture
def add_user(live_idp: LiveServer) -> Callable[..., tuple[str, str]]:
    """Create an account through the real CLI; returns (account, id number)."""

    def add(*options: str, phone: str | None = None, email: str | None = None) -> tuple[str, str]:
        n = next(_numbers)
        account = f"E2E{n:05d}"
        id_number = _id_number(n)
        live_idp.flask(
            "users", "add", account, "--name", "赵六", "--id-number", id_number, *options
        )
        if phone:
            live_idp.sql(
                "UPDATE users SET phone = :p, phone_verified_at = CURRENT_TIMESTAMP "
                "WHERE account = :a",
                p=phone,
                a=account,
            )
        if email:
            live_idp.sql(
                "UPDATE users SET email = :e, email_verified_at = CURRENT_TIMESTAMP "
                "WHERE account = :a",
                e=email,
                a=account,
            )
        return account, id_number

    return add


def _code(server: LiveServer, to: str, mail: bool = False) -> str:
    # SMS sign-in sends in the background: give the first code a moment to land.
    deadline = time.monotonic() + 10
    while True:
        records = [
            r for r in read_records(server.outbox, MAIL_FILE if mail else SMS_FILE) if r["to"] == to
        ]
        if records or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert records, f"no code sent to {to}"
    return str(records[-1]["code"])


def _notices(server: LiveServer, to: str, count: int, mail: bool = False) -> list[dict[str, Any]]:
    """The notices (messages without a code) to ``to``, once ``count`` have arrived: they are
    sent in the background after the page answers."""
    deadline = time.monotonic() + 10
    while True:
        records = read_records(server.outbox, MAIL_FILE if mail else SMS_FILE)
        notices = [r for r in records if r["to"] == to and not r["code"]]
        if len(notices) >= count or time.monotonic() > deadline:
            return notices
        time.sleep(0.05)


def _sign_in(page: Page, server: LiveServer, identifier: str, password: str = PASSWORD) -> None:
    page.goto(server.url + "/login")
    page.get_by_label("账号", exact=True).fill(identifier)
    page.get_by_label("密码", exact=True).fill(password)
    page.get_by_role("button", name="登录").click()


@pytest.mark.parametrize("identifier_kind", ["account", "phone", "id_number"])
def test_sign_in_by_each_identifier(
    page: Page,
    live_idp: LiveServer,
    add_user: Callable[..., tuple[str, str]],
    identifier_kind: str,
) -> None:
    """方式一：账号（学工号、手机号、证件号）+ 密码 signs in."""
    phone = f"1390000{next(_numbers):04d}"
    account, id_number = add_user("--password", PASSWORD, phone=phone)
    identifier = {"account": account, "phone": phone, "id_number": id_number}[identifier_kind]
    _sign_in(page, live_idp, identifier)
    expect(page.locator(".user-name")).to_have_text("赵六")


def test_wrong_password_shows_generic_message(
    page: Page, live_idp: LiveServer, add_user: Callable[..., tuple[str, str]]
) -> None:
    """A wrong password is refused with the generic message and the account kept."""
    account, _ = add_user("--password", PASSWORD, phone="13911110000")
    _sign_in(page, live_idp, account, "Not-the-password-1")
    expect(page.get_by_role("alert")).to_contain_text("账号或密码错误")
    expect(page.get_by_label("账号", exact=True)).to_have_value(account)


def test_sms_code_sign_in(
    page: Page, live_idp: LiveServer, add_user: Callable[..., tuple[str, str]]
) -> None:
    """方式二：手机验证码登录 with the code from the outbox."""
    add_user("--password", PASSWORD, phone="13922220000")
    page.goto(live_idp.url + "/login")
    page.get_by_role("link", name="短信登录").click()
    page.get_by_label("安全手机", exact=True).fill("13922220000")
    page.get_by_role("button", name="获取验证码").click()
    expect(page.get_by_role("status")).to_contain_text("验证码已发送")
    page.get_by_label("短信验证码", exact=True).fill(_code(live_idp, "13922220000"))
    page.get_by_role("button", name="登录").click()
    expect(page.locator(".user-name")).to_have_text("赵六")


def _activate_up_to_password(
    page: Page, live_idp: LiveServer, account: str, id_number: str, phone: str
) -> None:
    """激活账号 from its first step: identity, then the phone's code typed in (not sent on)."""
    page.get_by_label("账号", exact=True).fill(account)
    page.get_by_label("姓名", exact=True).fill("赵六")
    page.get_by_label("证件号", exact=True).fill(id_number)
    page.get_by_role("button", name="下一步").click()
    page.get_by_label("手机号码", exact=True).fill(phone)
    page.get_by_role("button", name="发送验证码").click()
    page.get_by_label("验证码", exact=True).fill(_code(live_idp, phone))


def test_student_activates_account_with_sms_code(
    page: Page, live_idp: LiveServer, add_user: Callable[..., tuple[str, str]]
) -> None:
    """激活账号: identity, security phone by SMS code, password, then 去登录 and sign in."""
    account, id_number = add_user("--pending")
    page.goto(live_idp.url + "/login")
    page.get_by_role("link", name="激活账号").click()
    _activate_up_to_password(page, live_idp, account, id_number, "13933330000")
    page.get_by_role("button", name="下一步").click()
    page.get_by_label("新密码", exact=True).fill(NEW_PASSWORD)
    expect(page.locator(".password-meter-label")).to_contain_text("分")
    page.get_by_label("确认密码", exact=True).fill(NEW_PASSWORD)
    page.get_by_role("button", name="完成激活").click()
    expect(page.locator("h1")).to_have_text("激活成功")
    page.get_by_role("link", name="去登录").click()
    _sign_in(page, live_idp, "13933330000", NEW_PASSWORD)
    expect(page.locator(".user-name")).to_have_text("赵六")


def test_a_password_typed_before_the_meter_loaded_is_measured(
    page: Page, live_idp: LiveServer, add_user: Callable[..., tuple[str, str]]
) -> None:
    """The strength meter's script may arrive after the person (or the browser's password
    manager) has already filled the box: it measures what is there when it starts."""
    account, id_number = add_user("--pending")
    page.goto(live_idp.url + "/activate")
    _activate_up_to_password(page, live_idp, account, id_number, "13933331111")
    held: list[Any] = []
    page.route("**/password-meter.js", lambda route: held.append(route))  # held until released
    page.get_by_role("button", name="下一步").click()
    page.get_by_label("新密码", exact=True).fill(NEW_PASSWORD)
    assert len(held) == 1
    held[0].continue_()
    expect(page.locator(".password-meter-label")).to_contain_text("分")


def test_activation_with_wrong_id_number_is_refused(
    page: Page, live_idp: LiveServer, add_user: Callable[..., tuple[str, str]]
) -> None:
    """Data that does not match the school's record is refused, fields kept."""
    account, _ = add_user("--pending")
    page.goto(live_idp.url + "/activate")
    page.get_by_label("账号", exact=True).fill(account)
    page.get_by_label("姓名", exact=True).fill("赵六")
    page.get_by_label("证件号", exact=True).fill(_id_number(999))
    page.get_by_role("button", name="下一步").click()
    expect(page.get_by_role("alert")).to_contain_text("不一致")
    expect(page.get_by_label("姓名", exact=True)).to_have_value("赵六")


def test_staff_completes_information_after_legacy_login(
    page: Page, live_idp: LiveServer, add_user: Callable[..., tuple[str, str]]
) -> None:
    """信息完善: no security phone → 马上处理 → verify → bind phone → 完成并登录."""
    account, id_number = add_user("--kind", "staff", "--password", PASSWORD)
    _sign_in(page, live_idp, account)
    page.get_by_role("link", name="马上处理").click()
    page.get_by_label("姓名", exact=True).fill("赵六")
    page.get_by_label("证件号", exact=True).fill(id_number)
    page.get_by_role("button", name="下一步").click()
    expect(page.get_by_text("未绑定安全手机!")).to_be_visible()
    page.get_by_label("手机号码", exact=True).fill("13944440000")
    page.get_by_role("button", name="发送验证码").click()
    page.get_by_label("验证码", exact=True).fill(_code(live_idp, "13944440000"))
    page.get_by_role("button", name="下一步").click()
    page.get_by_label("新密码", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("确认密码", exact=True).fill(NEW_PASSWORD)
    page.get_by_role("button", name="完成并登录").click()
    expect(page.locator(".user-name")).to_have_text("赵六")


@pytest.mark.parametrize("method", ["phone", "email"])
def test_password_recovery(
    page: Page, live_idp: LiveServer, add_user: Callable[..., tuple[str, str]], method: str
) -> None:
    """找回密码 by security phone (masked 139****…) or security email, then sign in anew."""
    n = next(_numbers)
    phone, email = f"1395555{n:04d}", f"user{n}@lut.edu.cn"
    account, id_number = add_user("--password", PASSWORD, phone=phone, email=email)
    page.goto(live_idp.url + "/login")
    page.get_by_role("link", name="忘记密码？").click()
    page.get_by_label("姓名", exact=True).fill("赵六")
    page.get_by_label("账号", exact=True).fill(account)
    page.get_by_label("证件号", exact=True).fill(id_number)
    page.get_by_role("button", name="下一步").click()
    expect(page.get_by_text(phone[:3] + "****" + phone[-4:])).to_be_visible()
    if method == "email":
        page.get_by_label("安全邮箱", exact=False).check()
    page.get_by_role("button", name="发送验证码").click()
    page.get_by_label("验证码", exact=True).fill(
        _code(live_idp, email, mail=True) if method == "email" else _code(live_idp, phone)
    )
    page.get_by_role("button", name="下一步").click()
    page.get_by_label("新密码", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("确认密码", exact=True).fill(NEW_PASSWORD)
    page.get_by_role("button", name="完成").click()
    expect(page.get_by_role("status")).to_contain_text("密码已重置")
    _sign_in(page, live_idp, account, NEW_PASSWORD)
    expect(page.locator(".user-name")).to_have_text("赵六")


def test_lost_phone_is_replaced_through_security_email(
    page: Page, live_idp: LiveServer, add_user: Callable[..., tuple[str, str]]
) -> None:
    """FAQ 5: bind a security email in 安全中心, then change the security phone through it; the
    old phone is told of each change."""
    n = next(_numbers)
    old_phone, new_phone, email = f"1396666{n:04d}", f"1397777{n:04d}", f"e2e{n}@lut.edu.cn"
    account, _ = add_user("--password", PASSWORD, phone=old_phone)
    _sign_in(page, live_idp, account)
    page.goto(live_idp.url + "/security")
    page.get_by_role("link", name="绑定安全邮箱").click()
    page.get_by_role("radio", name="登录密码").check()
    page.get_by_role("textbox", name="登录密码").fill(PASSWORD)
    page.get_by_role("button", name="下一步").click()
    page.get_by_label("新邮箱", exact=True).fill(email)
    page.get_by_role("button", name="发送验证码").click()
    page.get_by_label("邮件验证码", exact=True).fill(_code(live_idp, email, mail=True))
    page.get_by_role("button", name="完成").click()
    expect(page.locator("main")).to_contain_text(email[0])
    page.get_by_role("link", name="更换安全手机").click()
    page.get_by_role("radio", name="安全邮箱").check()
    page.get_by_role("button", name="发送验证码").click()
    page.get_by_label("验证码", exact=True).fill(_code(live_idp, email, mail=True))
    page.get_by_role("button", name="下一步").click()
    page.get_by_label("新手机号码", exact=True).fill(new_phone)
    page.get_by_role("button", name="发送验证码").click()
    page.get_by_label("短信验证码", exact=True).fill(_code(live_idp, new_phone))
    page.get_by_role("button", name="完成").click()
    expect(page.locator("main")).to_contain_text(new_phone[:3] + "****" + new_phone[-4:])
    expect(page.locator("main")).to_contain_text("其他设备上的登录已退出")
    # The old phone was told both times: the email bound, then the phone changed.
    notices = _notices(live_idp, old_phone, 2)
    assert len(notices) == 2
    assert "安全邮箱" in notices[0]["text"] and "安全手机" in notices[1]["text"]
    page.get_by_role("banner").get_by_role("button", name="退出").click()
    _sign_in(page, live_idp, new_phone)
    expect(page.locator(".user-name")).to_have_text("赵六")


def test_security_email_is_replaced_with_a_code_to_the_old_one(
    page: Page, live_idp: LiveServer, add_user: Callable[..., tuple[str, str]]
) -> None:
    """更换安全邮箱: the password alone is not offered; a code to the current email proves it
    is you, the new address is verified by its own code, and the old address is told."""
    n = next(_numbers)
    phone, old_email, new_email = f"1398888{n:04d}", f"old{n}@lut.edu.cn", f"new{n}@lut.edu.cn"
    account, _ = add_user("--password", PASSWORD, phone=phone, email=old_email)
    _sign_in(page, live_idp, account)
    page.goto(live_idp.url + "/security")
    page.get_by_role("link", name="更换安全邮箱").click()
    expect(page.get_by_role("radio", name="登录密码")).to_have_count(0)
    page.get_by_role("radio", name="安全邮箱").check()
    page.get_by_role("button", name="发送验证码").click()
    page.get_by_label("验证码", exact=True).fill(_code(live_idp, old_email, mail=True))
    page.get_by_role("button", name="下一步").click()
    page.get_by_label("新邮箱", exact=True).fill(new_email)
    page.get_by_role("button", name="发送验证码").click()
    page.get_by_label("邮件验证码", exact=True).fill(_code(live_idp, new_email, mail=True))
    page.get_by_role("button", name="完成").click()
    expect(page.get_by_role("status")).to_contain_text("安全邮箱已绑定为")
    expect(page.locator("main")).to_contain_text("其他设备上的登录已退出")
    told = _notices(live_idp, old_email, 1, mail=True)
    assert len(told) == 1 and "安全邮箱" in told[0]["text"]


def test_imported_student_activates_then_signs_in(
    page: Page, live_idp: LiveServer, tmp_path: Path
) -> None:
    """From the HR / student CSV import to activation to the first sign-in (on PostgreSQL and
    Redis in the CI's second run)."""
    n = next(_numbers)
    account, id_number = f"CSV{n:05d}", _id_number(500 + n)
    csv_file = tmp_path / "students.csv"
    csv_file.write_text(
        "account,name,kind,department,id_number,phone,email,legacy_hash\n"
        f"{account},孙七,student,,{id_number},,,\n",
        encoding="utf-8",
    )
    live_idp.flask("users", "import", str(csv_file))
    page.goto(live_idp.url + "/activate")
    page.get_by_label("账号", exact=True).fill(account)
    page.get_by_label("姓名", exact=True).fill("孙七")
    page.get_by_label("证件号", exact=True).fill(id_number)
    page.get_by_role("button", name="下一步").click()
    phone = f"1398888{n:04d}"
    page.get_by_label("手机号码", exact=True).fill(phone)
    page.get_by_role("button", name="发送验证码").click()
    page.get_by_label("验证码", exact=True).fill(_code(live_idp, phone))
    page.get_by_role("button", name="下一步").click()
    page.get_by_label("新密码", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("确认密码", exact=True).fill(NEW_PASSWORD)
    page.get_by_role("button", name="完成激活").click()
    page.get_by_role("link", name="去登录").click()
    _sign_in(page, live_idp, account, NEW_PASSWORD)
    expect(page.locator(".user-name")).to_have_text("孙七")
