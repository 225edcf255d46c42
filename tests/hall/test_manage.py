"""服务管理: department service managers create, preview and publish services, schedule and
withdraw notices, manage system entries; they cannot touch other departments; hall admins grant
roles (UI and CLI); every change is audited."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient

from hall.audit.models import HallAuditEvent
from hall.auth.models import CAMPUS_TZ, HallUser, utcnow
from hall.catalog.models import Notice, Service
from hall.catalog.operations import (
    NotAllowed,
    ServiceData,
    department_by_code,
    save_service,
)
from hall.catalog.roles import HallRole, RoleGrant, grant_role
from hall.extensions import db
from tests.hall.catalog_support import csrf_token, make_hall_user, sign_in_as


def department_id(app: Flask, code: str) -> int:
    """The id of a demo department."""
    with app.app_context():
        department = department_by_code(code)
        assert department is not None
        return department.id


def manager_client(app: Flask, code: str = "JWC", account: str = "M100") -> FlaskClient:
    """A signed-in service manager of department ``code``."""
    user_id = make_hall_user(app, account, "staff", code, "管理员")
    with app.app_context():
        grant_role(account, HallRole.SERVICE_MANAGER, department_by_code(code), actor="test")
        db.session.commit()
    client = app.test_client()
    sign_in_as(app, client, user_id)
    return client


def service_form(app: Flask, code: str, **overrides: object) -> dict[str, object]:
    """A complete 新建服务 form."""
    data: dict[str, object] = {
        "title": "毕业证明补办",
        "department_id": department_id(app, code),
        "category_id": "",
        "summary": "毕业证书遗失后开具毕业证明书。",
        "keywords": "毕业 证明 补办",
        "audiences": ["student"],
        "online": "y",
        "entry_url": "/forms/graduation",
        "purpose": "为遗失毕业证书的毕业生开具证明。",
        "materials": "身份证；登报遗失声明。",
        "steps": "在线申请，审核后领取。",
        "approval_flow": "学院审核 → 教务处审批。",
        "time_limit": "5 个工作日",
    }
    data.update(overrides)
    return data


def audit_actions(app: Flask) -> list[tuple[str, str, str]]:
    """(actor, action, object) of every audit event, oldest first."""
    with app.app_context():
        rows = db.session.execute(
            db.select(HallAuditEvent.actor, HallAuditEvent.action, HallAuditEvent.object).order_by(
                HallAuditEvent.id
            )
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


def test_service_manager_creates_previews_and_publishes_a_service(demo_hall: Flask) -> None:
    """新建服务 saves a draft (not public), 预览 shows it, 发布 makes it searchable; audited."""
    client = manager_client(demo_hall)
    token = csrf_token(client, "/manage/services/new")
    created = client.post(
        "/manage/services/new", data={**service_form(demo_hall, "JWC"), "csrf_token": token}
    )
    assert created.status_code == 302, created.text[:500]
    with demo_hall.app_context():
        service = db.session.scalar(db.select(Service).where(Service.title == "毕业证明补办"))
        assert service is not None and service.status == "draft"
        sid = service.id
        assert "byzmbb" in service.search_initials  # 毕业证明补办
    assert demo_hall.test_client().get(f"/services/{sid}").status_code == 404
    preview = client.get(f"/manage/services/{sid}/preview")
    assert preview.status_code == 200 and "预览" in preview.text and "教务处审批" in preview.text

    assert (
        client.post(f"/manage/services/{sid}/publish", data={"csrf_token": token}).status_code
        == 302
    )
    public = demo_hall.test_client()
    assert public.get(f"/services/{sid}").status_code == 200
    assert "毕业证明补办" in public.get("/services?q=byzm").text
    assert (
        client.post(f"/manage/services/{sid}/unpublish", data={"csrf_token": token}).status_code
        == 302
    )
    assert public.get(f"/services/{sid}").status_code == 404
    actions = [a for a in audit_actions(demo_hall) if a[0] == "M100"]
    assert [a[1] for a in actions] == ["service.create", "service.publish", "service.unpublish"]
    assert {a[2] for a in actions} == {f"service:{sid}"}


def test_editing_a_service_refreshes_its_search_columns(demo_hall: Flask) -> None:
    """After renaming, the new name's pinyin finds it and the old one no longer does."""
    client = manager_client(demo_hall)
    with demo_hall.app_context():
        sid = db.session.scalar(db.select(Service.id).where(Service.title == "缓考申请"))
    token = csrf_token(client, f"/manage/services/{sid}/edit")
    saved = client.post(
        f"/manage/services/{sid}/edit",
        data={
            **service_form(demo_hall, "JWC", title="考试延期申请", keywords=""),
            "csrf_token": token,
        },
    )
    assert saved.status_code == 302
    assert "考试延期申请" in demo_hall.test_client().get("/services?q=ksyq").text
    assert "考试延期申请" not in demo_hall.test_client().get("/services?q=hkzs").text
    assert ("M100", "service.update", f"service:{sid}") in audit_actions(demo_hall)


def test_manager_cannot_edit_another_departments_service(demo_hall: Flask) -> None:
    """A 教务处 manager gets 403 on 人事处's service (view, save, publish); nothing changes."""
    client = manager_client(demo_hall)
    with demo_hall.app_context():
        service = db.session.scalar(db.select(Service).where(Service.title == "在职证明开具"))
        sid, before = service.id, service.updated_at
    token = csrf_token(client, "/manage/services/new")
    assert client.get(f"/manage/services/{sid}/edit").status_code == 403
    assert client.get(f"/manage/services/{sid}/preview").status_code == 403
    posted = client.post(
        f"/manage/services/{sid}/edit",
        data={**service_form(demo_hall, "JWC", title="被篡改"), "csrf_token": token},
    )
    assert posted.status_code == 403 and "没有权限" in posted.text
    assert (
        client.post(f"/manage/services/{sid}/unpublish", data={"csrf_token": token}).status_code
        == 403
    )
    with demo_hall.app_context():
        service = db.session.get(Service, sid)
        assert service.title == "在职证明开具" and service.status == "published"
        assert service.updated_at == before
    assert not [a for a in audit_actions(demo_hall) if a[0] == "M100"]


def test_manager_cannot_put_a_service_in_another_department(demo_hall: Flask) -> None:
    """The department list offers only one's own; a forged id is refused and nothing is saved."""
    client = manager_client(demo_hall)
    token = csrf_token(client, "/manage/services/new")
    page = client.get("/manage/services/new").text
    assert "教务处" in page and "人事处</option>" not in page
    forged = client.post(
        "/manage/services/new", data={**service_form(demo_hall, "HR"), "csrf_token": token}
    )
    assert forged.status_code == 400
    with demo_hall.app_context():
        assert db.session.scalar(db.select(Service).where(Service.title == "毕业证明补办")) is None
        manager = db.session.scalar(db.select(HallUser).where(HallUser.account == "M100"))
        with pytest.raises(NotAllowed):
            save_service(
                ServiceData(
                    department_id=department_id(demo_hall, "HR"), title="x", audiences=["staff"]
                ),
                actor=manager,
            )


def test_bad_service_input_is_refused_and_nothing_saved(demo_hall: Flask) -> None:
    """No audience, a javascript: entry, an empty title: 400 with the reason, no row."""
    client = manager_client(demo_hall)
    token = csrf_token(client, "/manage/services/new")
    for bad in (
        {"audiences": []},
        {"entry_url": "javascript:alert(1)"},
        {"entry_url": "//evil.example/"},
        {"title": ""},
    ):
        answer = client.post(
            "/manage/services/new",
            data={**service_form(demo_hall, "JWC", **bad), "csrf_token": token},
        )
        assert answer.status_code == 400, bad
    with demo_hall.app_context():
        assert db.session.scalar(db.select(Service).where(Service.title == "毕业证明补办")) is None


def test_people_without_a_role_cannot_open_service_management(demo_hall: Flask) -> None:
    """A student gets 403 at /manage; signed-out visitors are sent to sign in."""
    assert demo_hall.test_client().get("/manage").status_code == 302
    client = demo_hall.test_client()
    sign_in_as(demo_hall, client, make_hall_user(demo_hall))
    assert client.get("/manage").status_code == 403
    assert client.get("/manage/roles").status_code == 403
    assert "服务管理" not in client.get("/").text


def test_department_admin_schedules_publishes_and_withdraws_notices(demo_hall: Flask) -> None:
    """A scheduled notice stays hidden until its time; 撤回 takes a notice down."""
    client = manager_client(demo_hall)
    token = csrf_token(client, "/manage/notices/new")
    later = (utcnow() + timedelta(days=2)).astimezone(CAMPUS_TZ).strftime("%Y-%m-%dT%H:%M")
    base = {"department_id": department_id(demo_hall, "JWC"), "csrf_token": token}
    scheduled = client.post(
        "/manage/notices/new",
        data={
            **base,
            "title": "期末考试安排",
            "body": "详见附件。",
            "mode": "schedule",
            "publish_at": later,
        },
    )
    assert scheduled.status_code == 302
    now = client.post(
        "/manage/notices/new",
        data={**base, "title": "选课通知", "body": "下周一开始选课。", "mode": "now"},
    )
    assert now.status_code == 302
    past = client.post(
        "/manage/notices/new",
        data={
            **base,
            "title": "过去",
            "body": "x",
            "mode": "schedule",
            "publish_at": "2020-01-01T08:00",
        },
    )
    assert past.status_code == 400 and "须晚于现在" in past.text
    public = demo_hall.test_client().get("/notices").text
    assert "选课通知" in public and "期末考试安排" not in public
    with demo_hall.app_context():
        notices = {n.title: n.id for n in db.session.scalars(db.select(Notice))}
    manage = client.get("/manage").text
    assert "定时发布" in manage
    client.post(f"/manage/notices/{notices['选课通知']}/withdraw", data={"csrf_token": token})
    assert "选课通知" not in demo_hall.test_client().get("/notices").text
    hr_notice = notices["关于做好寒假期间因公出国(境)审批工作的通知"]
    refused = client.post(f"/manage/notices/{hr_notice}/withdraw", data={"csrf_token": token})
    assert refused.status_code == 403
    assert [a[1] for a in audit_actions(demo_hall) if a[0] == "M100"] == [
        "notice.create",
        "notice.create",
        "notice.withdraw",
    ]


def test_manager_adds_a_system_entry_for_staff_only(demo_hall: Flask) -> None:
    """A new 常用系统 limited to staff appears for staff and not for students."""
    client = manager_client(demo_hall)
    token = csrf_token(client, "/manage/systems/new")
    saved = client.post(
        "/manage/systems/new",
        data={
            "csrf_token": token,
            "name": "教学质量评价系统",
            "url": "https://pj.example.edu.cn/",
            "section": "system",
            "department_id": department_id(demo_hall, "JWC"),
            "allowed_kinds": ["staff"],
            "published": "y",
            "sort": "5",
        },
    )
    assert saved.status_code == 302, saved.text[:300]
    assert "教学质量评价系统" in client.get("/services").text  # the manager is staff
    student = demo_hall.test_client()
    sign_in_as(demo_hall, student, make_hall_user(demo_hall))
    assert "教学质量评价系统" not in student.get("/services").text


def test_tampered_system_entry_is_refused_in_chinese(demo_hall: Flask) -> None:
    """A tampered 入口类型, 可用人员 and 排序 and an empty 名称 are each named in Chinese."""
    client = manager_client(demo_hall)
    token = csrf_token(client, "/manage/systems/new")
    refused = client.post(
        "/manage/systems/new",
        data={
            "csrf_token": token,
            "name": "",
            "url": "https://pj.example.edu.cn/",
            "section": "admin-only",
            "department_id": department_id(demo_hall, "JWC"),
            "allowed_kinds": ["staff", "robot"],
            "sort": "five",
        },
    )
    assert refused.status_code == 400, refused.text[:300]
    for message in ("请填写此项", "请从列出的选项中选择", "“robot”不在可选项中", "请输入整数"):
        assert message in refused.text
    for english in ("Not a valid", "This field is required", "is not a valid choice"):
        assert english not in refused.text


def test_hall_admin_grants_a_service_manager_in_the_ui(demo_hall: Flask) -> None:
    """授权: the admin makes an account manager of a department, then revokes it; audited."""
    user_id = make_hall_user(demo_hall, "T2001", "staff", "HR", "王老师")  # demo hall admin
    client = demo_hall.test_client()
    sign_in_as(demo_hall, client, user_id)
    token = csrf_token(client, "/manage/roles")
    granted = client.post(
        "/manage/roles",
        data={
            "csrf_token": token,
            "account": "T3001",
            "role": "service_manager",
            "department_id": department_id(demo_hall, "LIB"),
        },
    )
    assert granted.status_code == 302
    missing = client.post(
        "/manage/roles",
        data={
            "csrf_token": token,
            "account": "T3002",
            "role": "service_manager",
            "department_id": "",
        },
    )
    assert missing.status_code == 400 and "必须指定所属部门" in missing.text
    with demo_hall.app_context():
        grant = db.session.scalar(db.select(RoleGrant).where(RoleGrant.account == "T3001"))
        assert grant is not None and grant.department.code == "LIB"
        gid = grant.id
    assert client.post(f"/manage/roles/{gid}/revoke", data={"csrf_token": token}).status_code == 302
    assert [a[1:] for a in audit_actions(demo_hall) if a[0] == "T2001"] == [
        ("role.grant", "account:T3001"),
        ("role.revoke", "account:T3001"),
    ]
    assert "操作记录" in client.get("/manage/audit").text


def test_roles_are_granted_from_the_command_line(demo_hall: Flask) -> None:
    """flask --app hall roles grant ACCOUNT hall_admin / service_manager --department CODE."""
    runner = demo_hall.test_cli_runner()
    result = runner.invoke(args=["roles", "grant", "A1", "hall_admin", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["created"] is True
    result = runner.invoke(args=["roles", "grant", "A2", "service_manager", "--department", "LIB"])
    assert result.exit_code == 0 and "granted" in result.output
    assert runner.invoke(args=["roles", "grant", "A3", "service_manager"]).exit_code != 0
    bad = runner.invoke(args=["roles", "grant", "A3", "service_manager", "--department", "NOPE"])
    assert bad.exit_code != 0 and "unknown department" in bad.output
    listed = json.loads(runner.invoke(args=["roles", "list", "--json"]).output)
    assert {
        "account": "A2",
        "role": "service_manager",
        "department": "LIB",
        "granted_by": "cli",
    } in listed
    assert (
        runner.invoke(
            args=["roles", "revoke", "A2", "service_manager", "--department", "LIB"]
        ).exit_code
        == 0
    )
    assert ("cli", "role.revoke", "account:A2") in audit_actions(demo_hall)
