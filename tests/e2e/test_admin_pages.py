"""The admin-only console pages in a real browser, as the manual walks through them: 部门管理
(/admin/departments), 安全策略 (/admin/policy), 批量导入 (/admin/import) and 审计日志
(/admin/audit, /admin/audit.csv). One signed-in admin serves the whole module."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import LiveServer
from tests.e2e.test_console import (
    DESK_PASSWORD,
    PASSWORD,
    _add_user,
    _find_and_open,
    _open_console,
    _sign_in,
    console_account,
)

ADMIN = "C2EPAGES"
#: Shorter than the raised minimum below, long enough for the default one (8).
SHORT_PASSWORD = "Birch2025xyz"
RAISED_MINIMUM = 14
IMPORT_CSV = (
    "account,name,kind,department\nC2EIMP001,柳如烟,student,CS\nC2EIMP002,沈不存,student,NOPE\n"
).encode()


@pytest.fixture(scope="module")
def admin(browser: Browser, live_idp: LiveServer) -> Iterator[Page]:
    """An admin with TOTP on, signed in to the console in a browser of their own."""
    secret = console_account(live_idp, ADMIN, "冯管理员", "13700004444", "admin", DESK_PASSWORD)
    page = _open_console(browser, live_idp, (ADMIN, secret))
    yield page
    page.context.close()


def _section(admin: Page, label: str) -> None:
    """Open a console section from the navigation, as the manual says."""
    admin.locator(".console-nav").get_by_role("link", name=label, exact=True).click()
    expect(admin.locator("h1")).to_have_text(label)


def test_admin_creates_department_under_existing_one(admin: Page, live_idp: LiveServer) -> None:
    """新建部门 under 计算机与通信学院 (CS); it appears in the tree below its parent."""
    admin.goto(live_idp.url + "/admin")
    _section(admin, "部门管理")
    admin.get_by_label("部门代码", exact=True).fill("CS-2024-2")
    admin.get_by_label("部门名称", exact=True).fill("计算机2024级2班")
    admin.get_by_label("上级部门代码（留空 = 顶级）").fill("CS")
    admin.get_by_label("原因（记入审计日志）").fill("新生分班")
    admin.get_by_role("button", name="新建部门").click()
    expect(admin.locator(".flash-success")).to_contain_text("已新建部门 计算机2024级2班")

    rows = admin.locator("#department-tree tbody tr")
    names = [name.strip(" 　└") for name in rows.locator("td:first-child").all_inner_texts()]
    new, parent = names.index("计算机2024级2班"), names.index("计算机与通信学院")
    assert new > parent
    assert "计算机2024级2班" not in names[:parent]
    # One level below the college (which sits under the university).
    expect(rows.nth(new)).to_have_class(re.compile(r"\btree-depth-2\b"))
    expect(rows.nth(new).locator("code")).to_have_text("CS-2024-2")


def _minimum_in_force(page: Page, minimum: int) -> None:
    """Wait until 修改密码 states ``minimum`` (the server re-reads the policy every few s)."""
    page.wait_for_function(
        "async (expected) => (await (await fetch('/password/change')).text())"
        ".includes(`密码须为 ${expected}–`)",
        arg=minimum,
        polling=250,
        timeout=10_000,
    )
    page.reload()
    expect(page.locator(".field-help").first).to_contain_text(f"密码须为 {minimum}–")


def test_raised_minimum_password_length_refuses_shorter_new_password(
    admin: Page, page: Page, live_idp: LiveServer
) -> None:
    """安全策略: 密码最短长度 raised to 14; a student's 修改密码 to 12 characters is refused."""
    account, _id_number = _add_user(live_idp, "杨小柳", "13955550041")
    _sign_in(page, live_idp, account, PASSWORD)
    expect(page.locator(".user-name")).to_have_text("杨小柳")

    admin.goto(live_idp.url + "/admin")
    _section(admin, "安全策略")
    admin.get_by_label("密码最短长度", exact=True).fill(str(RAISED_MINIMUM))
    admin.get_by_label("原因（记入审计日志）").fill("信息安全等级保护整改")
    admin.get_by_role("button", name="保存设置").click()
    expect(admin.locator(".flash-success")).to_contain_text("安全策略已保存")
    expect(admin.get_by_label("密码最短长度", exact=True)).to_have_value(str(RAISED_MINIMUM))
    try:
        page.goto(live_idp.url + "/password/change")
        _minimum_in_force(page, RAISED_MINIMUM)
        page.get_by_label("当前密码", exact=True).fill(PASSWORD)
        page.get_by_label("新密码", exact=True).fill(SHORT_PASSWORD)
        page.get_by_label("确认密码", exact=True).fill(SHORT_PASSWORD)
        page.get_by_role("button", name="完成").click()
        expect(page.locator(".field-error")).to_contain_text(f"密码长度须为 {RAISED_MINIMUM}–")
        expect(page.locator("h1")).to_have_text("修改密码")
        # The old password still signs in: nothing was changed.
        page.context.clear_cookies()
        _sign_in(page, live_idp, account, PASSWORD)
        expect(page.locator(".user-name")).to_have_text("杨小柳")
    finally:
        # Other browser tests share this server: back to the default (an empty box).
        admin.goto(live_idp.url + "/admin/policy")
        admin.get_by_label("密码最短长度", exact=True).fill("")
        admin.get_by_role("button", name="保存设置").click()
        expect(admin.locator(".flash-success")).to_be_visible()
    page.goto(live_idp.url + "/password/change")
    _minimum_in_force(page, 8)


def test_admin_imports_csv_and_sees_per_row_report(admin: Page, live_idp: LiveServer) -> None:
    """批量导入: one good row is created, the bad one is reported by line; search finds it."""
    admin.goto(live_idp.url + "/admin")
    _section(admin, "批量导入")
    admin.get_by_label("CSV 文件", exact=True).set_input_files(
        files=[{"name": "新生名单.csv", "mimeType": "text/csv", "buffer": IMPORT_CSV}]
    )
    admin.get_by_label("原因（记入审计日志）").fill("2024 级新生入学")
    admin.get_by_role("button", name="导入", exact=True).click()
    report = admin.locator("#import-report")
    expect(report).to_contain_text("新建 1 个，更新 0 个，未变 0 个，失败 1 行。")
    failures = admin.locator("#import-failures tbody tr")
    expect(failures).to_have_count(1)
    expect(failures.locator("td").nth(0)).to_have_text("3")
    expect(failures.locator("td").nth(1)).to_contain_text("未知部门代码 NOPE")

    admin.goto(live_idp.url + "/admin")
    _find_and_open(admin, "柳如烟", "C2EIMP001")
    expect(admin.locator("body")).to_contain_text("柳如烟")
    admin.goto(live_idp.url + "/admin")
    admin.get_by_label("查找账号").fill("C2EIMP002")
    admin.get_by_role("button", name="查找").click()
    expect(admin.get_by_role("link", name="C2EIMP002")).to_have_count(0)


def test_admin_filters_audit_log_by_action_and_exports_csv(
    admin: Page, live_idp: LiveServer
) -> None:
    """审计日志: filter by 操作 login and 对象账号; 导出 CSV downloads the same rows with a BOM."""
    admin.goto(live_idp.url + "/admin")
    _section(admin, "审计日志")
    admin.get_by_label("操作", exact=True).fill("login")
    admin.get_by_label("对象账号", exact=True).fill(ADMIN)
    admin.get_by_role("button", name="筛选").click()
    expect(admin).to_have_url(re.compile(r"action=login"))
    rows = admin.locator("table.console-audit tbody tr")
    expect(rows.first).to_be_visible()
    shown = rows.count()
    for action in rows.locator("td:nth-child(4) code").all_inner_texts():
        assert action == "login"

    with admin.expect_download() as info:
        admin.get_by_role("link", name="导出 CSV").click()
    download = info.value
    assert re.fullmatch(r"audit-\d{8}-\d{4}\.csv", download.suggested_filename)
    data = Path(download.path()).read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    lines = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert lines[0][:6] == [
        "time",
        "actor_account",
        "actor_name",
        "target_account",
        "target_name",
        "action",
    ]
    body = lines[1:]
    assert len(body) == shown
    assert {(row[3], row[5]) for row in body} == {(ADMIN, "login")}
