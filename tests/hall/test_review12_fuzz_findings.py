"""What the form fuzz (test_form_fuzz.py) found in the hall: control characters other than NUL
were taken from any form and stored as typed — a service category named with a terminal escape
sequence showed in every service's 服务类别 list and in the public catalogue. Now refused like a
NUL, with the Chinese 400 page."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import select

from hall.catalog.models import Category, Notice
from hall.extensions import db
from tests.hall.catalog_support import csrf_token, make_hall_user, sign_in_as
from tests.hall.test_apply import (  # noqa: F401 - ``hall`` is a fixture
    STUDENT,
    applications,
    apply_path,
    hall,
    leave,
    post_form,
    signed_in,
)
from tests.hall.test_manage import department_id, manager_client

UNREADABLE = "提交的内容含有无法识别的字符，请检查后重新输入。"


@pytest.mark.parametrize(
    "name",
    ["学生\x1b[31m事务", "学生\x08事务", "学生事务\x7f", "学生\x9b事务"],
    ids=["terminal-escape", "backspace", "delete", "c1-control-sequence-introducer"],
)
def test_category_name_with_a_control_character_is_refused_and_not_stored(
    demo_hall: Flask, name: str
) -> None:
    """添加服务类别 with a name no keyboard types: the 400 page in Chinese, and no category."""
    client = manager_client(demo_hall)
    response = client.post(
        "/manage/categories",
        data={"csrf_token": csrf_token(client, "/manage/categories"), "name": name, "sort": "5"},
    )
    assert response.status_code == 400
    assert UNREADABLE in response.text and '<html lang="zh-CN">' in response.text
    with demo_hall.app_context():
        assert db.session.scalars(select(Category).where(Category.name == name)).first() is None


def test_search_with_a_control_character_gets_the_chinese_400_page(demo_hall: Flask) -> None:
    """一事联办's search box sent with an escape character: the same page, not a stored echo."""
    client = demo_hall.test_client()
    sign_in_as(demo_hall, client, make_hall_user(demo_hall))
    response = client.get("/services?q=%E5%AD%A6%1B%5B31m")
    assert response.status_code == 400
    assert UNREADABLE in response.text and "\x1b" not in response.text


def test_notice_body_over_several_lines_with_a_tab_is_still_saved(demo_hall: Flask) -> None:
    """Line breaks (a textarea's CR LF) and tabs are what people type: they pass."""
    client = manager_client(demo_hall)
    response = client.post(
        "/manage/notices/new",
        data={
            "csrf_token": csrf_token(client, "/manage/notices/new"),
            "department_id": department_id(demo_hall, "JWC"),
            "title": "选课通知",
            "body": "第一行\r\n\t第二行",
            "mode": "now",
        },
    )
    assert response.status_code == 302, response.text[:500]
    with demo_hall.app_context():
        notice = db.session.scalars(select(Notice).where(Notice.title == "选课通知")).one()
        assert "第二行" in notice.body


def test_text_pasted_from_powerpoint_keeps_its_line_breaks(hall: Flask) -> None:  # noqa: F811
    """PowerPoint and Word copy a line break as a vertical tab and a page break as a form feed:
    a 请假事由 pasted from a slide is taken, the breaks as line breaks, not refused whole."""
    client = signed_in(hall, STUDENT)
    posted = post_form(client, apply_path(hall), leave(reason="发烧\x0b需要就医\x0c休息两天"))
    assert posted.status_code == 302, posted.text[:500]
    (application,) = applications(hall)
    assert application.data["reason"] == "发烧\n需要就医\n休息两天"
