"""在线办理 in a real browser: a student signs in through the IdP, opens 学生请假 from the
catalogue, makes a mistake, saves a draft, resumes it, attaches a file and submits."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import MakeDatabaseUrl
from tests.e2e.conftest import LiveServer
from tests.hall.sso_support import ACCOUNT, NAME, PASSWORD, start_oidc_idp, start_registered_hall

PDF = b"%PDF-1.7\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"


@pytest.fixture(scope="module")
def sso_idp(
    make_database_url: MakeDatabaseUrl, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """The IdP, issuer = its own address."""
    yield from start_oidc_idp(make_database_url, tmp_path_factory, "e2e_apply_idp")


@pytest.fixture(scope="module")
def hall(
    make_database_url: MakeDatabaseUrl,
    tmp_path_factory: pytest.TempPathFactory,
    sso_idp: LiveServer,
) -> Iterator[LiveServer]:
    """The hall with its demo catalogue and forms, attachments in a temporary folder."""
    attachments = tmp_path_factory.mktemp("e2e_apply_attachments")
    yield from start_registered_hall(
        make_database_url,
        tmp_path_factory,
        "e2e_apply_hall",
        sso_idp,
        extra_env={"HALL_STORAGE_DIR": str(attachments)},
    )


def _sign_in_and_open_leave_form(page: Page, hall: LiveServer) -> None:
    """登录 from the hall's home page, then 一事联办 → search 请假 → 学生请假 → 在线办理."""
    page.goto(hall.url + "/")
    page.get_by_role("link", name="登录", exact=True).click()
    page.get_by_label("账号", exact=True).fill(ACCOUNT)
    page.get_by_label("密码", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    expect(page.locator(".header-tools .user-name")).to_have_text(NAME)
    page.get_by_role("link", name="一事联办").click()
    page.get_by_label("搜索服务").fill("请假")
    page.get_by_role("button", name="搜索").click()
    page.get_by_role("link", name="学生请假", exact=True).click()
    page.get_by_role("link", name="在线办理").click()


def test_student_applies_for_leave_with_a_draft_and_an_attachment(
    page: Page, hall: LiveServer, sso_idp: LiveServer, tmp_path: Path
) -> None:
    """Sign in, open 学生请假, see field errors with data kept, save, resume, attach, submit."""
    _sign_in_and_open_leave_form(page, hall)
    expect(page.get_by_role("heading", name="学生请假")).to_be_visible()
    expect(page.locator('[data-field="name"] .field-value')).to_have_text(NAME)

    # A mistake: the leave ends before it starts.
    page.get_by_label("事假").check()
    page.get_by_label("开始日期").fill("2026-12-10")
    page.get_by_label("结束日期").fill("2026-12-08")
    # 请假天数 is counted from the dates as they are typed; none while they are wrong.
    days = page.locator('[data-field="days"] .field-value')
    expect(days).to_have_text("（未填写）")
    page.get_by_label("否").check()
    page.get_by_label("请假事由").fill("参加全国大学生程序设计竞赛。")
    page.get_by_role("button", name="提交").first.click()
    expect(page.locator("#form-error-summary")).to_contain_text("有 1 项需要修改")
    expect(page.locator('[data-field="period"] .field-error')).to_have_text(
        "结束日期不能早于开始日期"
    )
    expect(page.get_by_label("请假事由")).to_have_value("参加全国大学生程序设计竞赛。")
    expect(page.get_by_label("事假")).to_be_checked()

    # Not finished yet: into 草稿箱, and back again.
    page.get_by_role("button", name="存到我的草稿箱").first.click()
    expect(page).to_have_url(hall.url + "/drafts")
    expect(page.get_by_text("“学生请假”已存到草稿箱。")).to_be_visible()
    page.get_by_role("link", name="学生请假").click()
    expect(page.get_by_label("请假事由")).to_have_value("参加全国大学生程序设计竞赛。")
    expect(page.get_by_label("开始日期")).to_have_value("2026-12-10")

    page.get_by_label("结束日期").fill("2026-12-11")
    expect(days).to_have_text("2")
    certificate = tmp_path / "竞赛通知.pdf"
    certificate.write_bytes(PDF)
    page.get_by_label("证明材料").set_input_files(str(certificate))
    page.get_by_role("button", name="提交").first.click()

    expect(page.get_by_role("heading", name="提交成功")).to_be_visible()
    link = page.get_by_role("link", name="查看申请")
    expect(link).to_have_attribute("href", re.compile(r"^/applications/\d+$"))
    link.click()
    expect(page.locator('[data-field="days"] .field-value')).to_have_text("2")
    page.goto(hall.url + "/drafts")
    expect(page.get_by_text("草稿箱是空的。")).to_be_visible()


def test_form_typed_before_the_session_expired_comes_back_after_signing_in(
    page: Page, hall: LiveServer, sso_idp: LiveServer
) -> None:
    """提交 after the hall session ran out: signing in again (silently, the IdP still knows the
    student) brings back the form as typed, with a notice, and nothing submitted."""
    _sign_in_and_open_leave_form(page, hall)
    form_url = page.url
    page.get_by_label("事假").check()
    page.get_by_label("开始日期").fill("2026-12-20")
    page.get_by_label("请假事由").fill("回老家参加姐姐的婚礼。")

    # Away longer than the idle timeout.
    hall.sql(
        "UPDATE hall_sessions SET last_seen_at = :then",
        then=datetime.now(UTC) - timedelta(hours=3),
    )
    page.get_by_role("button", name="提交").first.click()

    expect(page.get_by_text("登录已超时，已为您保留填写的内容")).to_be_visible()
    expect(page).to_have_url(form_url)
    expect(page.get_by_label("请假事由")).to_have_value("回老家参加姐姐的婚礼。")
    expect(page.get_by_label("开始日期")).to_have_value("2026-12-20")
    expect(page.get_by_label("事假")).to_be_checked()
    page.reload()
    expect(page.get_by_label("请假事由")).to_have_value("")
