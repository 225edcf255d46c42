"""服务管理 forms posted just after the hall session expired are kept and given back once
after the same manager signs in again: a service guide, a notice, a system entry and the
表单定义 / 审批流程定义 JSON — long texts nobody should have to type twice — and an approver's
委托."""

from __future__ import annotations

import html
import json

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from hall.catalog.models import Notice, Service, SystemEntry
from hall.extensions import db
from hall.workflow.models import Delegation, FormDefinition
from tests.hall.catalog_support import csrf_token
from tests.hall.test_form_kept_after_expiry import NOTICE, expire, sign_in_again
from tests.hall.test_manage import department_id, manager_client, service_form
from tests.hall.test_manage_definitions import FORM, service_id


def count(app: Flask, model: type) -> int:
    """How many rows of ``model`` there are."""
    with app.app_context():
        return int(db.session.scalar(select(func.count()).select_from(model)) or 0)


def opened_then_expired(app: Flask, path: str) -> tuple[FlaskClient, str, str]:
    """A manager opened ``path`` (its CSRF token in hand), then let the session run out."""
    client = manager_client(app)
    token = csrf_token(client, path)
    expire(app, client)
    return client, path, token


def test_new_service_guide_is_kept_across_expiry(demo_hall: Flask) -> None:
    """新建服务: 保存 after the idle timeout keeps the guide; it comes back once, as typed."""
    client, path, token = opened_then_expired(demo_hall, "/manage/services/new")
    before = count(demo_hall, Service)
    typed = service_form(demo_hall, "JWC", steps="第一步：在线填写。第二步：领取证明。")
    late = client.post(path, data={**typed, "csrf_token": token})
    assert late.status_code == 302 and late.headers["Location"].startswith("/login?next=")
    assert count(demo_hall, Service) == before  # nothing saved for them

    sign_in_again(demo_hall, client, "M100")
    page = client.get(path)
    assert page.status_code == 200 and NOTICE in page.text
    assert 'value="毕业证明补办"' in page.text
    assert "第一步：在线填写。第二步：领取证明。" in page.text
    # What was ticked, not the new page's defaults (学生 and 教职工 both ticked).
    assert 'checked id="audiences-0"' in page.text  # 学生
    assert 'checked id="audiences-1"' not in page.text  # 教职工
    again = client.get(path)
    assert NOTICE not in again.text and "第二步：领取证明" not in again.text

    resend = client.post(path, data={**typed, "csrf_token": csrf_token(client, path)})
    assert resend.status_code == 302 and count(demo_hall, Service) == before + 1


def test_edited_notice_is_kept_across_expiry(demo_hall: Flask) -> None:
    """编辑通知公告: the typed body, not the saved one, comes back after signing in."""
    client = manager_client(demo_hall)
    token = csrf_token(client, "/manage/notices/new")
    base = {"department_id": department_id(demo_hall, "JWC"), "csrf_token": token}
    draft = {**base, "title": "选课通知", "body": "旧内容。", "mode": "draft"}
    created = client.post("/manage/notices/new", data=draft)
    assert created.status_code == 302
    with demo_hall.app_context():
        notice_id = db.session.scalar(select(Notice.id).where(Notice.title == "选课通知"))
    path = f"/manage/notices/{notice_id}/edit"
    expire(demo_hall, client)
    body = "下周一 8:00 开始第二轮选课，请提前核对培养方案。"
    typed = {**base, "title": "选课通知（更新）", "body": body, "mode": "now"}
    late = client.post(path, data=typed)
    assert late.status_code == 302
    with demo_hall.app_context():
        notice = db.session.get(Notice, notice_id)
        assert notice is not None and notice.body == "旧内容。" and notice.publish_at is None

    sign_in_again(demo_hall, client, "M100")
    page = client.get(path)
    assert NOTICE in page.text and body in page.text and "选课通知（更新）" in page.text
    assert "旧内容。" not in page.text
    assert 'checked id="mode-1"' in page.text  # 立即发布, not the saved draft's 草稿


def test_system_entry_description_is_kept_across_expiry(demo_hall: Flask) -> None:
    """新建系统入口: its description waits for the manager too."""
    client, path, token = opened_then_expired(demo_hall, "/manage/systems/new")
    before = count(demo_hall, SystemEntry)
    late = client.post(
        path,
        data={
            "csrf_token": token,
            "name": "实验室预约",
            "url": "https://lab.example.edu.cn/",
            "department_id": department_id(demo_hall, "JWC"),
            "section": "system",
            "description": "各实验室开放时段的在线预约。",
        },
    )
    assert late.status_code == 302 and count(demo_hall, SystemEntry) == before
    sign_in_again(demo_hall, client, "M100")
    page = client.get(path)
    assert NOTICE in page.text and "各实验室开放时段的在线预约。" in page.text
    assert 'value="实验室预约"' in page.text


def test_form_definition_text_is_kept_across_expiry(demo_hall: Flask) -> None:
    """表单定义: the JSON typed in the editor, not the current version, is given back."""
    versions = count(demo_hall, FormDefinition)
    path = f"/manage/services/{service_id(demo_hall)}/form"
    client, path, token = opened_then_expired(demo_hall, path)
    text = json.dumps(FORM, ensure_ascii=False, indent=2)
    late = client.post(path, data={"csrf_token": token, "definition": text, "action": "save"})
    assert late.status_code == 302 and count(demo_hall, FormDefinition) == versions

    sign_in_again(demo_hall, client, "M100")
    page = client.get(path)
    assert NOTICE in page.text
    assert text in html.unescape(page.text)
    again = client.get(path)
    assert NOTICE not in again.text and text not in html.unescape(again.text)


def test_delegation_form_is_kept_across_expiry(demo_hall: Flask) -> None:
    """委托: the delegate and the dates typed before the session expired come back; nothing
    is delegated for the person."""
    client, path, token = opened_then_expired(demo_hall, "/inbox/delegation")
    late = client.post(
        path,
        data={
            "csrf_token": token,
            "delegate": "T2001",
            "starts_on": "2099-01-02",
            "ends_on": "2099-01-20",
        },
    )
    assert late.status_code == 302
    with demo_hall.app_context():
        assert db.session.scalar(select(func.count()).select_from(Delegation)) == 0
    sign_in_again(demo_hall, client, "M100")
    page = client.get(path)
    assert NOTICE in page.text
    assert 'value="T2001"' in page.text and 'value="2099-01-20"' in page.text
