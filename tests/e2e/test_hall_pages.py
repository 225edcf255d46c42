"""通知公告 and 委托 in a real browser, everyone signing in through the IdP's login page: a
department's service manager publishes, schedules and withdraws notices that visitors read on
the home page; an approver away from the office hands new tasks to a delegate."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Browser, Page, expect

from hall.auth.models import CAMPUS_TZ
from tests.conftest import MakeDatabaseUrl
from tests.e2e.conftest import LiveServer
from tests.e2e.test_hall_inbox import (
    PASSWORD,
    PEOPLE,
    TITLE,
    People,
    decide,
    hall_app,
    open_from_inbox,
    people,
    submit,
)
from tests.hall.sso_support import add_staff, start_oidc_idp, start_registered_hall

__all__ = ["hall_app", "people"]  # fixtures shared with test_hall_inbox

MANAGER, APPLICANT, AWAY, DELEGATE, NEXT = "S7002", "S7001", "S7002", "S7004", "S7003"


@pytest.fixture(scope="module")
def sso_idp(
    make_database_url: MakeDatabaseUrl, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """The IdP with the people of test_hall_inbox, their phones verified."""
    for server in start_oidc_idp(make_database_url, tmp_path_factory, "e2e_pages_idp"):
        add_staff(server, PEOPLE, PASSWORD)
        yield server


@pytest.fixture(scope="module")
def hall(
    make_database_url: MakeDatabaseUrl,
    tmp_path_factory: pytest.TempPathFactory,
    sso_idp: LiveServer,
) -> Iterator[LiveServer]:
    """The hall with its demo catalogue; S7002 manages 计算机与通信学院 (granted by the CLI)."""
    for server in start_registered_hall(
        make_database_url, tmp_path_factory, "e2e_pages_hall", sso_idp
    ):
        server.flask("roles", "grant", MANAGER, "service_manager", "--department", "CS")
        yield server


def publish_notice(manager: Page, hall: LiveServer, title: str, mode: str, at: str = "") -> int:
    """服务管理 → 发布公告: fill the form, 保存; returns the notice's id from the list."""
    manager.goto(hall.url + "/")
    manager.get_by_role("link", name="服务管理").click()
    manager.get_by_role("link", name="发布公告").first.click()
    manager.get_by_label("标题").fill(title)
    manager.get_by_label("发布部门").select_option(label="计算机与通信学院")
    manager.get_by_label("正文").fill(f"{title}：请各位同学按时参加。")
    manager.get_by_label(mode, exact=True).check()
    if at:
        manager.get_by_label("定时发布时间").fill(at)
    manager.get_by_role("button", name="保存").click()
    expect(manager.get_by_text(f"已保存公告“{title}”。")).to_be_visible()
    href = manager.get_by_role("link", name=title, exact=True).get_attribute("href") or ""
    found = re.search(r"/notices/(\d+)/edit$", href)
    assert found, href
    return int(found.group(1))


def notice_row(manager: Page, title: str) -> Any:
    """The row of a notice in 服务管理's 通知公告 table."""
    return manager.locator("tr", has=manager.get_by_role("link", name=title, exact=True))


def test_manager_publishes_a_notice_visitors_read_it_until_it_is_withdrawn(
    people: People, browser: Browser, hall: LiveServer
) -> None:
    """立即发布 → 首页 通知公告 → detail page; 撤回 → gone from the list, its page 404."""
    manager = people(MANAGER)
    title = "关于举办毕业设计开题答辩的通知"
    notice_id = publish_notice(manager, hall, title, "立即发布")
    expect(notice_row(manager, title)).to_contain_text("已发布")

    visitor = browser.new_context(locale="zh-CN").new_page()
    try:
        visitor.goto(hall.url + "/")
        notices = visitor.locator("section", has=visitor.get_by_role("heading", name="通知公告"))
        notices.get_by_role("link", name=title).click()
        expect(visitor).to_have_url(f"{hall.url}/notices/{notice_id}")
        expect(visitor.get_by_role("heading", name=title)).to_be_visible()
        expect(visitor.get_by_text("请各位同学按时参加。")).to_be_visible()
        expect(visitor.get_by_text(re.compile("^计算机与通信学院 · 发布时间"))).to_be_visible()

        manager.goto(hall.url + "/manage")
        notice_row(manager, title).get_by_role("button", name="撤回").click()
        expect(manager.get_by_text(f"公告“{title}”已撤回。")).to_be_visible()
        expect(notice_row(manager, title)).to_contain_text("已撤回")
        expect(notice_row(manager, title).get_by_role("button", name="撤回")).to_have_count(0)

        visitor.goto(hall.url + "/notices")
        expect(visitor.get_by_role("heading", name="通知公告", exact=True)).to_be_visible()
        expect(visitor.get_by_role("link", name=title)).to_have_count(0)
        visitor.goto(hall.url + "/")
        expect(visitor.get_by_role("link", name=title)).to_have_count(0)
        response = visitor.goto(f"{hall.url}/notices/{notice_id}")
        assert response is not None and response.status == 404
        expect(visitor.get_by_role("heading", name="公告不存在")).to_be_visible()
    finally:
        visitor.context.close()


def test_scheduled_notice_stays_hidden_until_its_time(
    people: People, browser: Browser, hall: LiveServer
) -> None:
    """定时发布: a time already past is refused with the form kept; tomorrow's stays hidden."""
    manager = people(MANAGER)
    campus_now = datetime.now(CAMPUS_TZ).replace(tzinfo=None)  # what 定时发布时间 means
    manager.goto(hall.url + "/manage/notices/new")
    manager.get_by_label("标题").fill("过去的公告")
    manager.get_by_label("正文").fill("不应发布。")
    manager.get_by_label("定时发布", exact=True).check()
    manager.get_by_label("定时发布时间").fill(
        (campus_now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    )
    manager.get_by_role("button", name="保存").click()
    expect(manager.get_by_text("定时发布时间须晚于现在。")).to_be_visible()
    expect(manager.get_by_label("标题")).to_have_value("过去的公告")

    title = "明天的选课提醒"
    tomorrow = (campus_now + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    notice_id = publish_notice(manager, hall, title, "定时发布", tomorrow)
    expect(notice_row(manager, title)).to_contain_text("定时发布")
    expect(notice_row(manager, title)).to_contain_text(tomorrow.replace("T", " "))

    visitor = browser.new_context(locale="zh-CN").new_page()
    try:
        visitor.goto(hall.url + "/notices")
        expect(visitor.get_by_role("link", name=title)).to_have_count(0)
        response = visitor.goto(f"{hall.url}/notices/{notice_id}")
        assert response is not None and response.status == 404
    finally:
        visitor.context.close()


def test_delegate_handles_new_tasks_while_the_approver_is_away(
    people: People, hall: LiveServer, hall_app: Flask
) -> None:
    """委托 for today..tomorrow; the next application reaches the delegate marked （委托）."""
    delegate = people(DELEGATE)  # the hall knows only people who have signed in once
    away = people(AWAY)
    away.goto(hall.url + "/")
    away.get_by_role("link", name=re.compile("^待办中心")).click()
    away.get_by_role("link", name="委托", exact=True).click()
    expect(away.get_by_text("暂无委托。")).to_be_visible()
    # A delegation's days are campus (Beijing) dates, as the person typing them means them.
    today = datetime.now(CAMPUS_TZ).date()
    away.get_by_label("委托给（学工号）").fill(DELEGATE)
    away.get_by_label("开始日期").fill(today.isoformat())
    away.get_by_label("结束日期").fill((today + timedelta(days=1)).isoformat())
    away.get_by_role("button", name="保存委托").click()
    expect(away.get_by_text(f"已委托{PEOPLE[DELEGATE]}办理")).to_be_visible()
    expect(away.locator("table.data-table tbody tr")).to_contain_text(
        [f"{PEOPLE[DELEGATE]}（{DELEGATE}）"]
    )
    expect(away.locator("table.data-table tbody tr")).to_contain_text(["生效中"])

    app_id = submit(people(APPLICANT), hall, hall_app, "申领会议室白板笔")
    away.goto(hall.url + "/inbox")
    expect(away.locator(f'tr[data-application="{app_id}"]')).to_have_count(0)
    delegate.goto(hall.url + "/inbox")
    row = delegate.locator(f'tr[data-application="{app_id}"]')
    expect(row.get_by_role("link", name=TITLE)).to_be_visible()
    expect(row).to_contain_text("（委托）")
    open_from_inbox(delegate, hall, app_id)
    decide(delegate, "通过", "代为同意")
    expect(delegate.get_by_text("已通过", exact=True).first).to_be_visible()

    upcoming = people(NEXT)
    upcoming.goto(hall.url + "/inbox")
    expect(upcoming.locator(f'tr[data-application="{app_id}"]')).to_be_visible()

    # Back early: 结束委托 (begun today, it is removed); the next application is theirs again.
    away.goto(hall.url + "/inbox/delegation")
    away.get_by_role("button", name="结束委托").click()
    expect(away.get_by_text("已结束委托")).to_be_visible()
    expect(away.get_by_text("暂无委托。")).to_be_visible()
    again = submit(people(APPLICANT), hall, hall_app, "申领会议室白板笔（二）")
    away.goto(hall.url + "/inbox")
    expect(away.locator(f'tr[data-application="{again}"]')).to_be_visible()
