"""Review of the hall's public side: 通知公告 keep their time when edited on any server clock,
收藏 does what the page offered, renamed 服务类别 are searchable, search notes say what was left
out, and 我常用的 is not hidden by services or systems the person can no longer open."""

from __future__ import annotations

import html
import os
import re
import time
from collections.abc import Iterator

import pytest
from flask import Flask

from hall.auth.models import HallUser, aware
from hall.catalog.models import Category, Favourite, Notice, Service, SystemEntry
from hall.catalog.operations import (
    CatalogQuery,
    department_by_code,
    record_use,
    save_category,
    search_catalog,
    unpublish_service,
)
from hall.catalog.roles import HallRole, grant_role
from hall.extensions import db
from tests.hall.catalog_support import csrf_token, make_hall_user, sign_in_as


@pytest.fixture
def server_clock_in_new_york() -> Iterator[None]:
    """The server's local time zone is America/New_York (UTC−5/−4), not UTC."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    yield
    if before is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = before
    time.tzset()


def _form_fields(page: str, action: str) -> dict[str, str]:
    """The fields the page's form posting to ``action`` sends (hidden inputs and the button)."""
    found = re.search(rf'<form[^>]*action="{re.escape(action)}"[^>]*>(.*?)</form>', page, re.S)
    assert found, f"no form posting to {action}"
    pairs = re.findall(r'<(?:input|button)[^>]*name="([^"]+)"[^>]*value="([^"]*)"', found[1])
    return {name: html.unescape(value) for name, value in pairs}


def test_correcting_a_published_notice_keeps_its_publish_time(
    demo_hall: Flask, server_clock_in_new_york: None
) -> None:
    """Fixing a typo in a published notice (立即发布 kept) leaves it on view at the same time,
    whatever time zone the server's clock is set to."""
    user_id = make_hall_user(demo_hall, "M100", "staff", "JWC", "管理员")
    with demo_hall.app_context():
        grant_role("M100", HallRole.SERVICE_MANAGER, department_by_code("JWC"), actor="test")
        db.session.commit()
    manager = demo_hall.test_client()
    sign_in_as(demo_hall, manager, user_id)
    token = csrf_token(manager, "/manage/notices/new")
    base = {"department_id": department_by_id(demo_hall, "JWC"), "csrf_token": token}
    created = manager.post(
        "/manage/notices/new",
        data={**base, "title": "选课通之", "body": "下周一开始选课。", "mode": "now"},
    )
    assert created.status_code == 302
    with demo_hall.app_context():
        notice = db.session.scalar(db.select(Notice).where(Notice.title == "选课通之"))
        notice_id, published_at = notice.id, aware(notice.publish_at)
    edited = manager.post(
        f"/manage/notices/{notice_id}/edit",
        data={**base, "title": "选课通知", "body": "下周一开始选课。", "mode": "now"},
    )
    assert edited.status_code == 302
    with demo_hall.app_context():
        kept = aware(db.session.get(Notice, notice_id).publish_at)
    assert abs((kept - published_at).total_seconds()) < 1
    assert "选课通知" in demo_hall.test_client().get("/notices").text


def _service_id(app: Flask, title: str) -> int:
    with app.app_context():
        return int(db.session.scalar(db.select(Service.id).where(Service.title == title)))


def _favourite_count(app: Flask, user_id: int) -> int:
    with app.app_context():
        return int(
            db.session.scalar(
                db.select(db.func.count(Favourite.id)).where(Favourite.user_id == user_id)
            )
        )


def test_collect_clicked_twice_or_on_a_stale_page_keeps_the_service_collected(
    demo_hall: Flask,
) -> None:
    """收藏 pressed twice (a double click, or again in a second tab still showing ☆ 收藏) leaves
    the service collected; 取消收藏 from a stale page never collects it again."""
    user_id = make_hall_user(demo_hall)
    client = demo_hall.test_client()
    sign_in_as(demo_hall, client, user_id)
    sid = _service_id(demo_hall, "学生请假")
    action = f"/services/{sid}/favourite"
    collect = _form_fields(client.get(f"/services/{sid}").text, action)
    first = client.post(action, data=collect)
    second = client.post(action, data=collect)  # the same page, submitted again
    assert first.status_code == second.status_code == 302
    assert _favourite_count(demo_hall, user_id) == 1
    assert "已收藏“学生请假”" in client.get(second.headers["Location"]).text
    assert "学生请假" in client.get("/me").text.split("我收藏的服务")[1]

    drop = _form_fields(client.get(f"/services/{sid}").text, action)
    client.post(action, data=drop)
    client.post(action, data=drop)
    assert _favourite_count(demo_hall, user_id) == 0


def test_collecting_a_system_twice_keeps_it_and_stays_on_the_search(demo_hall: Flask) -> None:
    """常用系统入口: 收藏 pressed twice keeps the system collected, and the page comes back with
    the search and filters the person had."""
    user_id = make_hall_user(demo_hall, "T3001", "staff", "HR", "李老师")
    client = demo_hall.test_client()
    sign_in_as(demo_hall, client, user_id)
    with demo_hall.app_context():
        hr = db.session.scalar(db.select(SystemEntry.id).where(SystemEntry.name == "人事管理系统"))
    page = "/services?q=qingjia&online=online"
    action = f"/systems/{hr}/favourite"
    collect = _form_fields(client.get(page).text, action)
    client.post(action, data=collect)
    again = client.post(action, data=collect)
    assert _favourite_count(demo_hall, user_id) == 1
    assert again.headers["Location"] == page


def _found(app: Flask, text: str) -> set[str]:
    with app.test_request_context():
        return {s.title for s in search_catalog(CatalogQuery(text=text, page=1)).services}


def test_renamed_category_finds_its_services_by_the_new_name(demo_hall: Flask) -> None:
    """Search covers a service's 服务类别: after 外事服务 is renamed 国际交流, searching
    国际交流 finds its services and the old name no longer does."""
    with demo_hall.app_context():
        category = db.session.scalar(db.select(Category).where(Category.name == "外事服务"))
        members = set(
            db.session.scalars(db.select(Service.title).where(Service.category_id == category.id))
        )
        assert members and not _found(demo_hall, "国际交流")
        save_category("国际交流", category.sort, actor=None, category=category)
        db.session.commit()
    assert members <= _found(demo_hall, "国际交流")
    assert not members & _found(demo_hall, "外事服务")


def test_frequently_used_is_not_emptied_by_services_taken_down(demo_hall: Flask) -> None:
    """我常用的 still lists what the person can open when the services they opened most were
    since taken out of the catalogue (or are systems no longer open to their kind)."""
    user_id = make_hall_user(demo_hall)
    with demo_hall.test_request_context():
        user = db.session.get(HallUser, user_id)
        kept = db.session.scalar(db.select(Service).where(Service.title == "学生请假"))
        others = list(db.session.scalars(db.select(Service).where(Service.id != kept.id).limit(16)))
        staff_only = db.session.scalar(
            db.select(SystemEntry).where(SystemEntry.name == "人事管理系统")
        )
        record_use(user, service=kept)
        for service in others:
            for _ in range(3):
                record_use(user, service=service)
            unpublish_service(service, actor=None)
        for _ in range(3):
            record_use(user, system=staff_only)  # opened back when they were staff
        taken_down = others[0].title
        db.session.commit()
    client = demo_hall.test_client()
    sign_in_as(demo_hall, client, user_id)
    frequent = client.get("/me").text.split("我常用的")[1].split("我收藏的服务")[0]
    assert "学生请假" in frequent
    assert "人事管理系统" not in frequent and taken_down not in frequent


def test_search_notes_say_what_was_actually_left_out(demo_hall: Flask) -> None:
    """Six short words are not "too long, cut to 50 characters": the note says only the first
    five words were used; a word repeated is no extra word and earns no note at all."""
    client = demo_hall.test_client()
    many = client.get("/services", query_string={"q": "学生 请假 申请 在线 办理 流程"}).text
    assert "搜索词过长" not in many
    assert "只按前 5 个词搜索" in many
    repeated = client.get("/services", query_string={"q": "请假 请假 请假 请假 请假 请假"}).text
    assert "搜索词过长" not in repeated and "个词搜索" not in repeated
    assert "学生请假" in repeated
    long = client.get("/services", query_string={"q": "请假" * 250}).text
    assert "搜索词过长，只按前 50 个字符搜索" in long and "个词搜索" not in long


def department_by_id(app: Flask, code: str) -> int:
    """The id of a demo department."""
    with app.app_context():
        department = department_by_code(code)
        assert department is not None
        return department.id
