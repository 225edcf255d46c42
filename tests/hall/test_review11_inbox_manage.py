"""Eleventh review of 待办中心 and 服务管理: a refused 退回 / 中止 keeps the approver's edited
fields, a returned application can be withdrawn from its page, a 委托 already over is refused,
and a deeply nested definition in the JSON editors is refused instead of a 500."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any, cast

import pytest
from flask import Flask
from markupsafe import escape
from sqlalchemy import func, select

from hall.auth.models import campus_today
from hall.extensions import db
from hall.workflow import engine
from hall.workflow import operations as ops
from hall.workflow.models import Delegation, FlowDefinition
from tests.hall.catalog_support import csrf_token, load_demo
from tests.hall.test_inbox import client_of, post, status, submit, task_of
from tests.hall.test_inbox import hall as inbox_hall  # noqa: F401 - a fixture
from tests.hall.test_manage import manager_client
from tests.hall.test_manage_definitions import service_id


@pytest.fixture(name="hall")
def hall_fixture(request: pytest.FixtureRequest) -> Flask:
    """The to-do centre tests' hall: their people and their 两级审批 and 并行办理 services."""
    return cast(Flask, request.getfixturevalue("inbox_hall"))


# --------------------------------------------------------------------------- the application page


@pytest.mark.parametrize("action", ["return", "terminate"])
def test_a_refused_return_or_termination_keeps_the_edited_field(hall: Flask, action: str) -> None:
    """王主任 types 审核备注, then presses 退回 / 中止 without an opinion: refused, and the note he
    typed is still in its box (as for 通过); nothing is stored."""
    with hall.test_request_context():
        app_id = submit()
        task = task_of(app_id, "bob")
    data = {"wf-task": task.engine_id, "wf-action": action, "wf-opinion": " ", "note": "缺附件"}
    response = post(client_of(hall, "bob"), f"/applications/{app_id}/act", data)
    assert response.status_code == 409 and "请填写审批意见" in response.text
    assert "缺附件</textarea>" in response.text
    with hall.test_request_context():
        assert task_of(app_id, "bob").status == "open" and status(app_id) == "running"


def test_a_return_to_an_unknown_node_keeps_the_edited_field_and_opinion(hall: Flask) -> None:
    """A 退回到 no longer offered (a stale page): refused in Chinese, opinion and note kept."""
    with hall.test_request_context():
        app_id = submit()
        task = task_of(app_id, "bob")
    data = {
        "wf-task": task.engine_id,
        "wf-action": "return",
        "wf-opinion": "请补充材料",
        "wf-to": "no-such-node",
        "note": "缺附件",
    }
    response = post(client_of(hall, "bob"), f"/applications/{app_id}/act", data)
    assert response.status_code == 409
    assert "只能退回到申请人或本节点之前已审批的节点" in response.text
    assert "请补充材料</textarea>" in response.text and "缺附件</textarea>" in response.text


def test_the_applicant_can_withdraw_a_returned_application_from_its_page(hall: Flask) -> None:
    """退回 to the applicant: the page offers 撤回 besides 修改后重新提交 (the engine allows it),
    and posting it closes the application; 我发起的 no longer counts it as 待办."""
    with hall.test_request_context():
        app_id = submit()
        ops.act(app_id, engine.Return("bob", task_of(app_id, "bob").engine_id, "材料不全"))
        assert status(app_id) == "returned"
    alice = client_of(hall, "alice")
    page = alice.get(f"/applications/{app_id}").text
    assert f'action="/applications/{app_id}/withdraw"' in page
    assert "修改后重新提交" in page
    assert post(alice, f"/applications/{app_id}/withdraw", {}).status_code == 302
    with hall.test_request_context():
        assert status(app_id) == "withdrawn"
    mine = alice.get("/inbox?tab=mine").text
    assert 'data-count="pending">0<' in mine
    # An approver never gets the applicant's 撤回.
    approver_page = client_of(hall, "bob").get(f"/applications/{app_id}").text
    assert f'action="/applications/{app_id}/withdraw"' not in approver_page


# --------------------------------------------------------------------------- 委托


def test_a_delegation_that_has_already_ended_is_refused(hall: Flask) -> None:
    """委托 ending before today would delegate nothing while the page says 已委托: refused beside
    结束日期 with what was typed kept; one ending today is accepted."""
    today = campus_today()
    yesterday = (today - timedelta(days=1)).isoformat()
    bob = client_of(hall, "bob")
    late = post(
        bob,
        "/inbox/delegation",
        {"delegate": "erin", "starts_on": "2020-01-01", "ends_on": yesterday},
    )
    assert late.status_code == 400 and "结束日期不能早于今天" in late.text
    assert 'value="erin"' in late.text and f'value="{yesterday}"' in late.text
    with hall.test_request_context():
        assert db.session.scalar(select(func.count()).select_from(Delegation)) == 0
    ok = post(
        bob,
        "/inbox/delegation",
        {"delegate": "erin", "starts_on": today.isoformat(), "ends_on": today.isoformat()},
    )
    assert ok.status_code == 302


# --------------------------------------------------------------------------- the JSON editors


def _nested_parallels(depth: int) -> dict[str, Any]:
    """A flow with ``depth`` parallel nodes, each inside the previous one's first branch."""
    leaf = {"kind": "approver", "approver": {"type": "person", "users": ["T900"]}}
    inner: list[dict[str, Any]] = [dict(leaf, id="deep")]
    for level in range(depth):
        branches = [
            {"id": f"b{level}", "nodes": inner},
            {"id": f"c{level}", "nodes": [dict(leaf, id=f"x{level}")]},
        ]
        inner = [{"id": f"p{level}", "kind": "parallel", "branches": branches}]
    return {"nodes": [{"id": "start", "kind": "start"}, *inner, {"id": "end", "kind": "end"}]}


@pytest.mark.parametrize(
    "text",
    [
        '{"nodes": ' + "[" * 600 + "]" * 600 + "}",
        json.dumps(_nested_parallels(120)),
    ],
    ids=["nested-lists", "nested-parallels"],
)
def test_a_deeply_nested_flow_is_refused_not_a_server_error(hall_app: Flask, text: str) -> None:
    """JSON nested hundreds deep (that the json module still reads): 嵌套层级过深, 400, the text
    kept, nothing saved — for 预览 and for 保存为新版本."""
    load_demo(hall_app)
    sid = service_id(hall_app)
    client = manager_client(hall_app)
    path = f"/manage/services/{sid}/flow"
    token = csrf_token(client, path)
    with hall_app.app_context():
        before = db.session.scalar(select(func.count()).select_from(FlowDefinition))
    for action in ("preview", "save"):
        response = client.post(
            path, data={"csrf_token": token, "definition": text, "action": action}
        )
        assert response.status_code == 400, action
        assert "嵌套层级过深" in response.text
        assert str(escape(text[:40])) in response.text
    with hall_app.app_context():
        assert db.session.scalar(select(func.count()).select_from(FlowDefinition)) == before
