"""表单定义 / 审批流程定义 in 服务管理: a department's service manager edits the JSON, 预览 checks
it without saving, 保存为新版本 adds version n+1 (audited); bad input is refused with every
reason and the text kept; running applications keep the version they were submitted with."""

from __future__ import annotations

import html
import json
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from hall.audit.models import HallAuditEvent
from hall.auth.models import HallUser
from hall.catalog.models import Service
from hall.catalog.operations import department_by_code
from hall.catalog.roles import HallRole, grant_role
from hall.extensions import db
from hall.workflow import engine
from hall.workflow import operations as ops
from hall.workflow.models import Application, FlowDefinition, FormDefinition
from tests.hall.catalog_support import csrf_token, make_hall_user, sign_in_as

FORM: dict[str, Any] = {
    "schema": {
        "type": "object",
        "properties": {
            "reason": {"type": "string", "title": "申请事由", "maxLength": 200},
            "days": {"type": "integer", "title": "天数", "minimum": 1},
        },
        "required": ["reason"],
    },
    "ui": {"order": ["reason", "days"], "fields": {"reason": {"widget": "textarea"}}},
}


def person(node_id: str, name: str, account: str) -> dict[str, Any]:
    """An approver node naming one person."""
    return {
        "id": node_id,
        "kind": "approver",
        "name": name,
        "approver": {"type": "person", "users": [account]},
    }


def flow(*nodes: dict[str, Any]) -> dict[str, Any]:
    """A flow with start and end around the nodes."""
    return {
        "nodes": [
            {"id": "start", "kind": "start", "permissions": {"reason": "edit", "days": "edit"}},
            *nodes,
            {"id": "end", "kind": "end"},
        ]
    }


TWO_STEPS = flow(person("tutor", "导师审核", "T900"), person("dean", "学院审批", "T901"))
ONE_STEP = flow(person("tutor", "导师审核", "T900"))


def service_id(app: Flask, title: str = "缓考申请") -> int:
    """The id of a demo service (缓考申请 belongs to 教务处)."""
    with app.app_context():
        found = db.session.scalar(select(Service.id).where(Service.title == title))
        assert found is not None
        return found


def signed_in(app: Flask, account: str, code: str | None, role: HallRole) -> FlaskClient:
    """A signed-in staff member holding ``role`` (in department ``code`` for managers)."""
    user_id = make_hall_user(app, account, "staff", code or "JWC", "管理员")
    with app.app_context():
        department = department_by_code(code) if code else None
        grant_role(account, role, department, actor="test")
        db.session.commit()
    client = app.test_client()
    sign_in_as(app, client, user_id)
    return client


def manager(app: Flask, code: str = "JWC", account: str = "M100") -> FlaskClient:
    """A signed-in service manager of department ``code``."""
    return signed_in(app, account, code, HallRole.SERVICE_MANAGER)


def post(
    client: FlaskClient, sid: int, kind: str, text: str, action: str = "save"
) -> tuple[int, str]:
    """Post the editor; returns the status and the page."""
    path = f"/manage/services/{sid}/{kind}"
    token = csrf_token(client, path)
    response = client.post(path, data={"csrf_token": token, "definition": text, "action": action})
    return response.status_code, response.text


def versions(app: Flask, sid: int, kind: str) -> list[int]:
    """The saved version numbers of the service's form or flow."""
    model = FormDefinition if kind == "form" else FlowDefinition
    with app.app_context():
        return list(
            db.session.scalars(
                select(model.version).where(model.service_id == sid).order_by(model.version)
            )
        )


def saves(app: Flask) -> list[tuple[str, str, str, str | None]]:
    """(actor, action, object, detail) of every definition save, oldest first."""
    with app.app_context():
        rows = db.session.execute(
            select(
                HallAuditEvent.actor,
                HallAuditEvent.action,
                HallAuditEvent.object,
                HallAuditEvent.detail,
            )
            .where(HallAuditEvent.action.in_(["workflow.form.save", "workflow.flow.save"]))
            .order_by(HallAuditEvent.id)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


def kept(text: str, page: str) -> bool:
    """Whether the editor on ``page`` shows exactly ``text``."""
    return "\n" + html.escape(text, quote=False) + "</textarea>" in page.replace("&#34;", '"')


def with_form_and_flow(app: Flask, sid: int) -> None:
    """Version 1 of the form and of the two-step flow, saved by the hall admin."""
    with app.app_context():
        ops.save_form_definition(sid, FORM["schema"], FORM["ui"], actor="A1")
        ops.save_flow_definition(sid, TWO_STEPS, actor="A1")


def test_manager_saves_the_form_and_flow_as_new_versions(demo_hall: Flask) -> None:
    """保存为新版本 twice: versions 1 and 2, each audited under the manager's 学工号."""
    sid = service_id(demo_hall)
    client = manager(demo_hall)
    page = client.get(f"/manage/services/{sid}/form")
    assert page.status_code == 200 and "尚未保存任何版本" in page.text
    status, _page = post(client, sid, "form", json.dumps(FORM, ensure_ascii=False))
    assert status == 302
    assert versions(demo_hall, sid, "form") == [1]
    status, _page = post(client, sid, "flow", json.dumps(TWO_STEPS, ensure_ascii=False))
    assert status == 302
    status, _page = post(client, sid, "flow", json.dumps(ONE_STEP, ensure_ascii=False))
    assert status == 302
    assert versions(demo_hall, sid, "flow") == [1, 2]
    editor = client.get(f"/manage/services/{sid}/flow").text
    # The current version, pretty-printed, and the history with who saved each version.
    assert "当前为第 2 版" in editor and '"导师审核"' in editor.replace("&#34;", '"')
    assert editor.count('data-version="') == 2 and "M100" in editor
    assert saves(demo_hall) == [
        ("M100", "workflow.form.save", f"service:{sid}", '{"version": 1}'),
        ("M100", "workflow.flow.save", f"service:{sid}", '{"version": 1}'),
        ("M100", "workflow.flow.save", f"service:{sid}", '{"version": 2}'),
    ]
    old = client.get(f"/manage/services/{sid}/flow/versions/1")
    assert old.status_code == 200 and "学院审批" in old.text and "历史版本" in old.text
    assert 'data-node="dean"' in old.text and "readonly" in old.text
    assert client.get(f"/manage/services/{sid}/flow/versions/9").status_code == 404
    assert "学院审批" not in client.get(f"/manage/services/{sid}/flow/versions/2").text


def test_running_application_keeps_its_flow_after_a_new_version(demo_hall: Flask) -> None:
    """An application submitted under the two-step flow still goes to 学院审批 after v2."""
    sid = service_id(demo_hall)
    with_form_and_flow(demo_hall, sid)
    applicant = make_hall_user(demo_hall, "2024000001", "student", "CS", "张三")
    with demo_hall.test_request_context():
        running = ops.submit_application(
            db.session.get(Service, sid), db.session.get(HallUser, applicant), {"reason": "生病"}
        ).id
    client = manager(demo_hall)
    assert "1 份（审批中 1 份）" in client.get(f"/manage/services/{sid}/flow").text
    status, _page = post(client, sid, "flow", json.dumps(ONE_STEP, ensure_ascii=False))
    assert status == 302 and versions(demo_hall, sid, "flow") == [1, 2]
    history = client.get(f"/manage/services/{sid}/flow").text
    rows = {v: history.split(f'data-version="{v}"')[1].split("</tr>")[0] for v in ("1", "2")}
    assert "1 份（审批中 1 份）" in rows["1"] and "0 份（审批中 0 份）" in rows["2"]
    with demo_hall.test_request_context():
        (task,) = ops.pending_tasks("T900")
        ops.act(running, engine.Approve("T900", task.engine_id, "同意"))
        (next_task,) = ops.pending_tasks("T901")
        assert next_task.application_id == running and next_task.node_id == "dean"
        application = db.session.get(Application, running)
        assert application is not None and application.status == "running"
        fresh = ops.submit_application(
            db.session.get(Service, sid), db.session.get(HallUser, applicant), {"reason": "出差"}
        ).id
        (task,) = [t for t in ops.pending_tasks("T900") if t.application_id == fresh]
        ops.act(fresh, engine.Approve("T900", task.engine_id, "同意"))
        assert db.session.get(Application, fresh).status == "approved"  # type: ignore[union-attr]


def test_form_version_in_use_is_counted(demo_hall: Flask) -> None:
    """The form history counts the applications started with each version."""
    sid = service_id(demo_hall)
    with_form_and_flow(demo_hall, sid)
    applicant = make_hall_user(demo_hall, "2024000001", "student", "CS", "张三")
    with demo_hall.test_request_context():
        ops.submit_application(
            db.session.get(Service, sid), db.session.get(HallUser, applicant), {"reason": "生病"}
        )
    client = manager(demo_hall)
    changed = json.loads(json.dumps(FORM))
    changed["schema"]["properties"]["reason"]["title"] = "缓考事由"
    assert post(client, sid, "form", json.dumps(changed, ensure_ascii=False))[0] == 302
    page = client.get(f"/manage/services/{sid}/form").text
    row_1 = page.split('data-version="1"')[1].split("</tr>")[0]
    assert "1 份（审批中 1 份）" in row_1
    assert (
        "缓考事由" in page
        and "缓考事由" not in client.get(f"/manage/services/{sid}/form/versions/1").text
    )


def test_invalid_json_is_refused_with_line_and_column(demo_hall: Flask) -> None:
    """A missing comma: 400, 第 3 行第 3 列, nothing saved, the text exactly as typed."""
    sid = service_id(demo_hall)
    with_form_and_flow(demo_hall, sid)
    client = manager(demo_hall)
    text = '{\n  "nodes": []\n  "settings": {}\n}'
    status, page = post(client, sid, "flow", text)
    assert status == 400
    assert "JSON 格式错误：第 3 行第 3 列，此处缺少逗号。" in page
    assert kept(text, page)
    duplicate = '{"schema": {}, "schema": {}, "ui": {}}'
    status, page = post(client, sid, "form", duplicate)
    assert status == 400 and "键“schema”出现了两次" in page and kept(duplicate, page)
    assert versions(demo_hall, sid, "flow") == [1] and versions(demo_hall, sid, "form") == [1]
    assert len(saves(demo_hall)) == 2


def test_cycle_and_unreachable_node_are_refused_naming_the_nodes(demo_hall: Flask) -> None:
    """A node written twice (环路) and a node after the end: every message, nothing saved."""
    sid = service_id(demo_hall)
    with_form_and_flow(demo_hall, sid)
    client = manager(demo_hall)
    tutor = person("tutor", "导师审核", "T900")
    looped = flow(tutor, person("dean", "学院审批", "T901"), tutor)
    looped["nodes"].append(person("late", "补充审核", "T902"))
    text = json.dumps(looped, ensure_ascii=False, indent=2)
    status, page = post(client, sid, "flow", text)
    assert status == 400
    assert "节点 tutor 在流程中重复出现，形成环路" in page
    assert "节点 late 位于结束节点 end 之后，永远不会执行" in page
    assert "流程必须以结束节点结束" in page
    assert kept(text, page)
    assert versions(demo_hall, sid, "flow") == [1]
    # The same id with different content is a duplicate id, not a cycle.
    twice = flow(tutor, person("tutor", "再审", "T901"))
    status, page = post(client, sid, "flow", json.dumps(twice, ensure_ascii=False))
    assert status == 400 and "节点编号 tutor 重复" in page
    assert versions(demo_hall, sid, "flow") == [1]


def test_flow_naming_fields_the_form_lacks_is_refused(demo_hall: Flask) -> None:
    """Conditions and permissions on unknown fields: refused; without a form, any field is."""
    sid = service_id(demo_hall)
    client = manager(demo_hall)
    status, page = post(client, sid, "flow", json.dumps(TWO_STEPS, ensure_ascii=False))
    assert status == 400 and "引用了表单中不存在的字段 reason" in page
    assert "该服务还没有表单定义" in page and versions(demo_hall, sid, "flow") == []
    with_form_and_flow(demo_hall, sid)
    ghost = flow(
        {
            "id": "route",
            "kind": "condition",
            "branches": [
                {
                    "id": "long",
                    "priority": 1,
                    "conditions": [{"field": "weeks", "op": "gt", "value": 2}],
                    "nodes": [person("dean", "学院审批", "T901")],
                },
                {"id": "short", "default": True, "nodes": []},
            ],
        },
    )
    ghost["nodes"][0]["permissions"]["phone"] = "read"
    text = json.dumps(ghost, ensure_ascii=False, indent=2)
    status, page = post(client, sid, "flow", text)
    assert status == 400 and kept(text, page)
    assert "节点 start 的字段权限引用了表单中不存在的字段 phone" in page
    assert "条件分支 long 引用了表单中不存在的字段 weeks" in page
    assert versions(demo_hall, sid, "flow") == [1]


def test_form_dropping_a_field_the_flow_uses_is_refused(demo_hall: Flask) -> None:
    """A form without ``days`` while the flow gives it permissions: refused, naming both."""
    sid = service_id(demo_hall)
    with_form_and_flow(demo_hall, sid)
    client = manager(demo_hall)
    smaller = json.loads(json.dumps(FORM))
    del smaller["schema"]["properties"]["days"]
    smaller["ui"]["order"] = ["reason"]
    status, page = post(client, sid, "form", json.dumps(smaller, ensure_ascii=False))
    assert status == 400
    assert "当前审批流程（第 1 版）引用了这个表单中没有的字段" in page
    assert "节点 start 的字段权限引用了表单中不存在的字段 days" in page
    broken = json.loads(json.dumps(FORM))
    broken["ui"]["fields"]["reason"]["widget"] = "slider"
    broken["ui"]["order"].append("ghost")
    status, page = post(client, sid, "form", json.dumps(broken, ensure_ascii=False))
    assert status == 400
    assert "字段 reason 的控件 slider 未知" in page
    assert "界面中的字段 ghost 在数据定义中不存在" in page
    status, page = post(client, sid, "form", '{"schema": {"type": 3}, "ui": {}}')
    assert status == 400 and "表单数据定义无效" in page
    status, page = post(client, sid, "form", '{"schema": {}, "ui": {"fields": []}}')
    assert status == 400 and "ui.fields 必须是一个对象" in page
    status, page = post(client, sid, "form", "[1, 2]")
    assert status == 400 and "定义必须是一个 JSON 对象" in page
    assert versions(demo_hall, sid, "form") == [1]


def test_preview_shows_the_form_and_the_diagram_without_saving(demo_hall: Flask) -> None:
    """预览: the rendered fields, or every node drawn 未开始; no version, no audit row."""
    sid = service_id(demo_hall)
    client = manager(demo_hall)
    text = json.dumps(FORM, ensure_ascii=False, indent=2)
    status, page = post(client, sid, "form", text, action="preview")
    assert status == 200 and "校验通过（尚未保存）" in page and kept(text, page)
    assert 'data-field="reason"' in page and "申请事由" in page and 'id="field-days"' in page
    assert versions(demo_hall, sid, "form") == []
    with_form_and_flow(demo_hall, sid)
    text = json.dumps(ONE_STEP, ensure_ascii=False, indent=2)
    status, page = post(client, sid, "flow", text, action="preview")
    assert status == 200 and kept(text, page)
    assert 'data-node="tutor" data-state="future"' in page
    assert 'data-node="start" data-state="future"' in page
    assert 'data-state="done"' not in page
    assert versions(demo_hall, sid, "flow") == [1]
    assert [s[0] for s in saves(demo_hall)] == ["A1", "A1"]
    status, page = post(client, sid, "flow", "{", action="preview")
    assert status == 400 and "第 1 行第 2 列" in page


def test_saving_an_unchanged_definition_is_refused(demo_hall: Flask) -> None:
    """保存为新版本 with the current content: nothing saved, told why."""
    sid = service_id(demo_hall)
    with_form_and_flow(demo_hall, sid)
    client = manager(demo_hall)
    status, page = post(client, sid, "flow", json.dumps(TWO_STEPS))
    assert status == 400 and "内容与当前版本相同" in page
    assert versions(demo_hall, sid, "flow") == [1]


def test_another_departments_manager_is_refused(demo_hall: Flask) -> None:
    """人事处's manager: 403 on 教务处's editors, versions and saves; nothing changes."""
    sid = service_id(demo_hall)
    with_form_and_flow(demo_hall, sid)
    stranger = manager(demo_hall, "HR", "M200")
    own = service_id(demo_hall, "在职证明开具")
    token = csrf_token(stranger, f"/manage/services/{own}/form")
    for path in ("form", "flow", "form/versions/1", "flow/versions/1"):
        refused = stranger.get(f"/manage/services/{sid}/{path}")
        assert refused.status_code == 403 and "没有权限" in refused.text
    posted = stranger.post(
        f"/manage/services/{sid}/flow",
        data={"csrf_token": token, "definition": json.dumps(ONE_STEP), "action": "save"},
    )
    assert posted.status_code == 403
    student = demo_hall.test_client()
    sign_in_as(demo_hall, student, make_hall_user(demo_hall, "2024000009", "student"))
    assert student.get(f"/manage/services/{sid}/flow").status_code == 403
    assert versions(demo_hall, sid, "flow") == [1]
    assert [s[0] for s in saves(demo_hall)] == ["A1", "A1"]
    assert demo_hall.test_client().get(f"/manage/services/{sid}/flow").status_code == 302


def test_hall_admin_edits_any_departments_definitions(demo_hall: Flask) -> None:
    """A hall admin saves 教务处's form; the audit row names the admin."""
    sid = service_id(demo_hall)
    admin = signed_in(demo_hall, "A9", None, HallRole.HALL_ADMIN)
    assert post(admin, sid, "form", json.dumps(FORM))[0] == 302
    assert saves(demo_hall) == [("A9", "workflow.form.save", f"service:{sid}", '{"version": 1}')]


def test_service_edit_page_links_to_the_editors(demo_hall: Flask) -> None:
    """编辑服务 links to 表单定义 and 审批流程定义."""
    sid = service_id(demo_hall)
    client = manager(demo_hall)
    page = client.get(f"/manage/services/{sid}/edit").text
    assert f"/manage/services/{sid}/form" in page and f"/manage/services/{sid}/flow" in page
    with demo_hall.app_context():
        assert db.session.scalar(select(func.count()).select_from(FormDefinition)) == 0


def test_node_ids_and_names_that_could_not_be_stored_are_refused(demo_hall: Flask) -> None:
    """A 65-character node id and a numeric node name: refused before any application fails."""
    sid = service_id(demo_hall)
    with_form_and_flow(demo_hall, sid)
    client = manager(demo_hall)
    long_id = "n" * 65
    odd = flow(person(long_id, "导师审核", "T900"), {**person("dean", "x", "T901"), "name": 7})
    status, page = post(client, sid, "flow", json.dumps(odd))
    assert status == 400
    assert "过长（最多 64 个字符）" in page and "节点 dean 的名称必须是文字" in page
    assert versions(demo_hall, sid, "flow") == [1]


def test_expired_page_saves_nothing(demo_hall: Flask) -> None:
    """A post without a valid CSRF token: 400, nothing saved."""
    sid = service_id(demo_hall)
    client = manager(demo_hall)
    response = client.post(
        f"/manage/services/{sid}/form", data={"definition": json.dumps(FORM), "action": "save"}
    )
    assert response.status_code == 400 and versions(demo_hall, sid, "form") == []
