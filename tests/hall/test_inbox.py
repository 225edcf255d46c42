"""待办中心 and the application page: tabs and counts, who may open what, every action through
the views, CC read marks and the flow diagram's states."""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from hall.auth.models import HallUser
from hall.catalog.models import Service
from hall.catalog.roles import RoleGrant
from hall.directory.models import Department
from hall.extensions import db
from hall.forms import attachments
from hall.forms.operations import save_draft
from hall.inbox import queries
from hall.inbox.diagram import build_diagram
from hall.workflow import engine
from hall.workflow import operations as ops
from hall.workflow.definitions import parse_flow
from hall.workflow.models import Application, CarbonCopy, Delegation, Task
from tests.hall.catalog_support import csrf_token, sign_in_as

PDF = b"%PDF-1.7\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"
PEOPLE = {
    "alice": "申请人甲",
    "bob": "王主任",
    "carol": "工会干事",
    "frank": "工会副干事",
    "erin": "人事专员",
    "mallory": "无关人员",
    "root": "大厅管理员",
}

FORM_SCHEMA = {
    "type": "object",
    "properties": {
        "reason": {"type": "string", "title": "事由", "maxLength": 100},
        "note": {"type": "string", "title": "审核备注", "maxLength": 100},
        "secret": {"type": "string", "title": "内部编号", "maxLength": 30},
        "days": {"type": "integer", "title": "天数"},
        "files": {"type": "array", "title": "附件", "items": {"type": "string"}},
    },
    "required": ["reason"],
}
FORM_UI = {
    "order": ["reason", "note", "secret", "days", "files"],
    "fields": {
        "reason": {"widget": "input"},
        "note": {"widget": "textarea"},
        "secret": {"widget": "input"},
        "days": {"widget": "number"},
        "files": {"widget": "attachment"},
    },
}


def person(node_id: str, users: list[str], mode: str = "all", **extra: Any) -> dict[str, Any]:
    """An approver node naming people."""
    return {
        "id": node_id,
        "kind": "approver",
        "name": extra.pop("name", node_id),
        "approver": {"type": "person", "users": users},
        "mode": mode,
        **extra,
    }


START = {"id": "start", "kind": "start", "name": "申请人", "permissions": {"note": "read"}}
END = {"id": "end", "kind": "end", "name": "结束"}

#: 两级审批: 王主任, then 工会干事 or 工会副干事 (或签), then a CC to 人事专员.
TWO_STEP = {
    "nodes": [
        START,
        person(
            "first",
            ["bob"],
            name="部门审核",
            permissions={"note": "edit", "secret": "hidden"},
        ),
        person("second", ["carol", "frank"], mode="any", name="工会审批"),
        {
            "id": "cc",
            "kind": "cc",
            "name": "抄送人事处",
            "recipients": {"type": "person", "users": ["erin"]},
        },
        END,
    ]
}

#: 各部门并行办理: branch A (王主任), branch B (工会干事 then 工会副干事), then a 天数 condition.
PARALLEL = {
    "nodes": [
        START,
        {
            "id": "sign-offs",
            "kind": "parallel",
            "name": "各部门办理",
            "branches": [
                {
                    "id": "branch-a",
                    "name": "财务处",
                    "nodes": [person("pa", ["bob"], name="财务处办理")],
                },
                {
                    "id": "branch-b",
                    "name": "组织处",
                    "nodes": [
                        person("pb", ["carol"], name="组织处办理"),
                        person("pb2", ["frank"], name="编制科办理"),
                    ],
                },
            ],
        },
        {
            "id": "length",
            "kind": "condition",
            "name": "天数",
            "branches": [
                {
                    "id": "long",
                    "name": "超过3天",
                    "priority": 1,
                    "conditions": [{"field": "days", "op": "gt", "value": 3}],
                    "nodes": [person("dean", ["erin"], name="院长审批")],
                },
                {"id": "short", "name": "其他情况", "default": True, "nodes": []},
            ],
        },
        END,
    ]
}


@pytest.fixture
def hall(make_hall: Any, tmp_path: Path) -> Iterator[Flask]:
    """A hall with the people above, a 两级审批 service and a 并行办理 service."""
    hall_app = make_hall(STORAGE_DIR=str(tmp_path / "attachments"))
    with hall_app.test_request_context():
        dept = Department(code="NIC", name="网络与信息中心")
        db.session.add(dept)
        db.session.flush()
        for account, name in PEOPLE.items():
            db.session.add(
                HallUser(
                    sub=f"sub-{account}",
                    account=account,
                    name=name,
                    kind="staff",
                    department_code="NIC",
                    department_name="网络与信息中心",
                )
            )
        db.session.add(RoleGrant(account="root", role="hall_admin", granted_by="test"))
        for title, flow in (("两级审批", TWO_STEP), ("并行办理", PARALLEL)):
            service = Service(department_id=dept.id, title=title)
            db.session.add(service)
            db.session.commit()
            ops.save_form_definition(service.id, FORM_SCHEMA, FORM_UI, actor="root")
            ops.save_flow_definition(service.id, flow, actor="root")
    yield hall_app


def user(account: str) -> HallUser:
    """A hall user by 学工号."""
    return db.session.scalars(select(HallUser).where(HallUser.account == account)).one()


def submit(title: str = "两级审批", **data: Any) -> int:
    """alice submits; returns the application id."""
    service = db.session.scalars(select(Service).where(Service.title == title)).one()
    return ops.submit_application(service, user("alice"), {"reason": "出差", **data}).id


def task_of(app_id: int, account: str) -> Task:
    """The open task of ``account`` on an application."""
    return db.session.scalars(
        select(Task).where(
            Task.application_id == app_id, Task.assignee == account, Task.status == "open"
        )
    ).one()


def client_of(app: Flask, account: str) -> FlaskClient:
    """A test client signed in as ``account``."""
    client = app.test_client()
    with app.app_context():
        user_id = user(account).id
    sign_in_as(app, client, user_id)
    return client


def post(client: FlaskClient, path: str, data: dict[str, Any]) -> Any:
    """POST with a valid CSRF token."""
    return client.post(path, data={**data, "csrf_token": csrf_token(client, "/inbox")})


def act(client: FlaskClient, app_id: int, task: Task, action: str, **extra: Any) -> Any:
    """通过 / 退回 / 中止 from the application page's form."""
    data = {"wf-task": task.engine_id, "wf-action": action, "wf-opinion": "同意", **extra}
    return post(client, f"/applications/{app_id}/act", data)


def status(app_id: int) -> str:
    """The stored status of an application."""
    db.session.expire_all()
    found = db.session.get(Application, app_id)
    assert found is not None
    return found.status


# --------------------------------------------------------------------------- tabs and counts


def test_pending_list_is_grouped_by_service_with_all_running_done_and_pending(
    hall: Flask,
) -> None:
    """我待办的: per service 全部 / 进行中 / 已办结 / 待办, and the open task in the list."""
    with hall.test_request_context():
        done_id, open_id = submit(), submit()
        task = task_of(done_id, "bob")
        assert isinstance(
            ops.act(done_id, engine.Approve("bob", task.engine_id, "同意")), engine.Outcome
        )
        task = task_of(done_id, "carol")
        assert isinstance(
            ops.act(done_id, engine.Approve("carol", task.engine_id, "同意")), engine.Outcome
        )
        submit("并行办理")
        counts = queries.todo_counts("bob")
        assert counts.pending == 2
        two_step = next(g for g in counts.services if g.title == "两级审批")
        assert (two_step.total, two_step.running, two_step.finished, two_step.pending) == (
            2,
            1,
            1,
            1,
        )
        page = queries.todo_page("bob", service_id=two_step.service_id)
        assert [r.application_id for r in page.rows] == [open_id]
        assert page.rows[0].applicant_name == "申请人甲" and page.rows[0].node_name == "部门审核"
        assert [r.application_id for r in queries.done_page("bob").rows] == [done_id]
        # The tasks' copy of their application's status, which the counts read, follows it.
        copies = db.session.scalars(
            select(Task.application_status).where(Task.application_id == done_id)
        ).all()
        assert copies and set(copies) == {"approved"}
        assert {g.title for g in queries.mine_counts("alice")} == {"两级审批", "并行办理"}
    html = client_of(hall, "bob").get("/inbox").text
    assert "我待办的(2)" in html
    assert re.search(r'data-count="pending">\s*<a[^>]*>1</a>', html)
    assert 'data-count="finished">1<' in html
    assert f'data-application="{open_id}"' in html
    assert f'data-application="{done_id}"' not in html  # done: in 我已办的, not 我待办的


def test_pages_hold_per_page_rows_and_say_whether_more_follow(hall: Flask) -> None:
    """Pagination: newest first, ``has_next`` only when another page exists."""
    with hall.test_request_context():
        ids = [submit() for _ in range(5)]
        first = queries.todo_page("bob", per_page=2)
        second = queries.todo_page("bob", page=3, per_page=2)
        assert [r.application_id for r in first.rows] == ids[::-1][:2] and first.has_next
        assert [r.application_id for r in second.rows] == ids[:1] and not second.has_next


def test_every_tab_renders_and_drafts_show_the_drafts_box(hall: Flask) -> None:
    """All six tabs open; 草稿箱 lists the applicant's drafts, linking to each."""
    with hall.test_request_context():
        submit()
        service = db.session.scalars(select(Service).where(Service.title == "并行办理")).one()
        form = ops.latest_form(service.id)
        assert form is not None
        draft = save_draft(user("alice"), service, form, {"reason": "未写完"}, None)
        draft_id = draft.id
    client = client_of(hall, "alice")
    for tab in ("todo", "done", "cc", "mine", "drafts", "transferred"):
        response = client.get(f"/inbox?tab={tab}")
        assert response.status_code == 200, tab
    html = client.get("/inbox?tab=mine").text
    assert "两级审批" in html and "进行中" in html
    drafts = client.get("/inbox?tab=drafts").text
    assert f'href="/drafts/{draft_id}"' in drafts and "并行办理" in drafts


# --------------------------------------------------------------------------- who may see


def test_only_people_on_the_application_may_open_it(hall: Flask) -> None:
    """Applicant, approvers and hall admins open it; anyone else gets 404 (as for no such id)."""
    with hall.test_request_context():
        app_id = submit()
    for account in ("alice", "bob", "root"):
        assert client_of(hall, account).get(f"/applications/{app_id}").status_code == 200
    outsider = client_of(hall, "mallory")
    assert outsider.get(f"/applications/{app_id}").status_code == 404
    assert outsider.get("/applications/999999").status_code == 404
    with hall.test_request_context():
        task = task_of(app_id, "bob")
    response = act(outsider, app_id, task, "approve")
    assert response.status_code == 404
    with hall.test_request_context():
        assert status(app_id) == "running"


def test_hidden_fields_are_not_shown_and_editable_ones_are_offered(hall: Flask) -> None:
    """The approver's node hides 内部编号 and offers 审核备注; the applicant edits nothing."""
    with hall.test_request_context():
        app_id = submit(secret="NO-778")
    approver = client_of(hall, "bob").get(f"/applications/{app_id}").text
    assert "NO-778" not in approver and "内部编号" not in approver
    assert 'name="note"' in approver
    applicant = client_of(hall, "alice").get(f"/applications/{app_id}").text
    assert "NO-778" in applicant and 'name="note"' not in applicant


def test_approver_downloads_the_applicants_attachment_from_the_page(hall: Flask) -> None:
    """附件 are listed as download links for the approver; an outsider still gets 404."""
    with hall.test_request_context():
        upload = attachments.store_upload("alice", "证明.pdf", io.BytesIO(PDF))
        app_id = submit(files=[str(upload.id)])
        attachments.link_to_application([upload.id], "alice", app_id)
        db.session.commit()
        upload_id = upload.id
    page = client_of(hall, "bob").get(f"/applications/{app_id}").text
    assert f'href="/attachments/{upload_id}"' in page and "证明.pdf" in page
    download = client_of(hall, "bob").get(f"/attachments/{upload_id}")
    body = download.get_data()
    download.close()
    assert download.status_code == 200 and body == PDF
    assert client_of(hall, "mallory").get(f"/attachments/{upload_id}").status_code == 404


# --------------------------------------------------------------------------- actions


def test_approvals_through_the_page_finish_the_application(hall: Flask) -> None:
    """通过 twice with opinions: the edited field is kept, the history shows both, CC is sent."""
    with hall.test_request_context():
        app_id = submit()
        bob_task = task_of(app_id, "bob")
    response = act(client_of(hall, "bob"), app_id, bob_task, "approve", note="材料齐全")
    assert response.status_code == 302
    with hall.test_request_context():
        carol_task = task_of(app_id, "carol")
        assert db.session.get(Application, app_id).data["note"] == "材料齐全"  # type: ignore[union-attr]
    assert act(client_of(hall, "carol"), app_id, carol_task, "approve").status_code == 302
    with hall.test_request_context():
        assert status(app_id) == "approved"
        assert db.session.scalars(select(CarbonCopy.recipient)).all() == ["erin"]
    html = client_of(hall, "alice").get(f"/applications/{app_id}").text
    assert html.count('data-kind="approved"') == 2 and "材料齐全" in html


def test_an_empty_opinion_is_refused_and_what_was_typed_stays(hall: Flask) -> None:
    """No opinion: 请填写审批意见, nothing changed, the typed note still in its box."""
    with hall.test_request_context():
        app_id = submit()
        task = task_of(app_id, "bob")
    response = act(
        client_of(hall, "bob"), app_id, task, "approve", **{"wf-opinion": " ", "note": "待补充"}
    )
    assert response.status_code == 409
    assert "请填写审批意见" in response.text and "待补充</textarea>" in response.text
    with hall.test_request_context():
        assert task_of(app_id, "bob").status == "open" and status(app_id) == "running"


def test_a_tampered_field_is_refused_and_nothing_changes(hall: Flask) -> None:
    """Posting 事由 (read-only at this node): 您没有修改此项的权限, data unchanged."""
    with hall.test_request_context():
        app_id = submit()
        task = task_of(app_id, "bob")
    response = act(client_of(hall, "bob"), app_id, task, "approve", reason="改过的事由")
    assert response.status_code == 400 and "您没有修改此项的权限" in response.text
    assert "同意</textarea>" in response.text
    with hall.test_request_context():
        found = db.session.get(Application, app_id)
        assert found is not None and found.data["reason"] == "出差"
        assert task_of(app_id, "bob").status == "open"


def test_a_replayed_approval_gets_the_refusal_page(hall: Flask) -> None:
    """The same 通过 posted twice: the second is refused (已由 … 处理), nothing changes."""
    with hall.test_request_context():
        app_id = submit()
        task = task_of(app_id, "bob")
    client = client_of(hall, "bob")
    assert act(client, app_id, task, "approve").status_code == 302
    with hall.test_request_context():
        before = [(t.id, t.status) for t in db.session.scalars(select(Task).order_by(Task.id))]
    replay = act(client, app_id, task, "approve")
    assert replay.status_code == 409 and "已由王主任处理" in replay.text
    with hall.test_request_context():
        assert [
            (t.id, t.status) for t in db.session.scalars(select(Task).order_by(Task.id))
        ] == before


def test_the_second_of_two_or_sign_approvers_is_told_who_handled_it(hall: Flask) -> None:
    """或签: 工会干事 approves first; 工会副干事's 通过 is refused naming her."""
    with hall.test_request_context():
        app_id = submit()
        ops.act(app_id, engine.Approve("bob", task_of(app_id, "bob").engine_id, "同意"))
        carol, frank = task_of(app_id, "carol"), task_of(app_id, "frank")
    assert act(client_of(hall, "carol"), app_id, carol, "approve").status_code == 302
    late = act(client_of(hall, "frank"), app_id, frank, "approve", **{"wf-opinion": "我也同意"})
    assert late.status_code == 409 and "已由工会干事处理" in late.text
    assert "我也同意</textarea>" in late.text  # what was typed is not lost
    with hall.test_request_context():
        assert status(app_id) == "approved"


def test_two_approvers_clicking_at_once_leave_one_outcome(hall: Flask) -> None:
    """或签, both press 通过 at the same moment: one approval; the other is told who handled it."""
    with hall.test_request_context():
        app_id = submit()
        ops.act(app_id, engine.Approve("bob", task_of(app_id, "bob").engine_id, "同意"))
        tasks = {a: task_of(app_id, a).engine_id for a in ("carol", "frank")}
    clients = {a: client_of(hall, a) for a in tasks}
    tokens = {a: csrf_token(c, "/inbox") for a, c in clients.items()}
    barrier = threading.Barrier(2)
    answers: dict[str, Any] = {}

    def click(account: str) -> None:
        barrier.wait()
        answers[account] = clients[account].post(
            f"/applications/{app_id}/act",
            data={
                "wf-task": tasks[account],
                "wf-action": "approve",
                "wf-opinion": f"{account} 同意",
                "csrf_token": tokens[account],
            },
        )

    threads = [threading.Thread(target=click, args=(a,)) for a in tasks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    codes = sorted(r.status_code for r in answers.values())
    assert codes == [302, 409], codes
    loser = next(a for a, r in answers.items() if r.status_code == 409)
    winner = next(a for a in tasks if a != loser)
    assert f"已由{PEOPLE[winner]}处理" in answers[loser].text
    with hall.test_request_context():
        approved = db.session.scalars(
            select(Task.assignee).where(Task.node_id == "second", Task.status == "approved")
        ).all()
        assert approved == [winner] and status(app_id) == "approved"


def test_acting_on_someone_elses_task_is_refused(hall: Flask) -> None:
    """工会干事 posts 王主任's task id: 这不是您的待办, nothing changes."""
    with hall.test_request_context():
        app_id = submit()
        ops.act(app_id, engine.Approve("bob", task_of(app_id, "bob").engine_id, "同意"))
        bob_task = db.session.scalars(select(Task).where(Task.assignee == "bob")).one()
        carol = task_of(app_id, "carol")
    response = post(
        client_of(hall, "carol"),
        f"/applications/{app_id}/act",
        {"wf-task": carol.engine_id + 5, "wf-action": "approve", "wf-opinion": "同意"},
    )
    assert response.status_code == 409 and "这不是您的待办" in response.text
    assert bob_task.status == "approved"
    with hall.test_request_context():
        assert task_of(app_id, "carol").status == "open"


def test_return_to_the_applicant_and_terminate(hall: Flask) -> None:
    """退回 to the applicant (resubmit link offered); 中止 ends another application."""
    with hall.test_request_context():
        returned, ended = submit(), submit()
        t1, t2 = task_of(returned, "bob"), task_of(ended, "bob")
    bob = client_of(hall, "bob")
    assert act(bob, returned, t1, "return", **{"wf-to": "applicant"}).status_code == 302
    assert act(bob, ended, t2, "terminate", **{"wf-opinion": "不符合条件"}).status_code == 302
    with hall.test_request_context():
        assert (status(returned), status(ended)) == ("returned", "terminated")
        (group,) = queries.todo_counts("bob").services
        # A returned application is still 进行中 (waiting for the applicant); 中止 is 已办结.
        assert (group.total, group.running, group.finished, group.pending) == (2, 1, 1, 0)
    page = client_of(hall, "alice").get(f"/applications/{returned}").text
    assert f"/applications/{returned}/resubmit" in page


def test_return_from_inside_a_parallel_branch_to_an_earlier_node(hall: Flask) -> None:
    """编制科 returns to 组织处 in the same branch; only earlier nodes are offered."""
    with hall.test_request_context():
        app_id = submit("并行办理")
        ops.act(app_id, engine.Approve("carol", task_of(app_id, "carol").engine_id, "同意"))
        frank, bob_task = task_of(app_id, "frank"), task_of(app_id, "bob")
    client = client_of(hall, "frank")
    html = client.get(f"/applications/{app_id}").text
    assert 'value="pb"' in html and 'value="pa"' not in html
    assert (
        act(
            client, app_id, frank, "return", **{"wf-to": "pb", "wf-opinion": "请补材料"}
        ).status_code
        == 302
    )
    with hall.test_request_context():
        assert task_of(app_id, "carol").node_id == "pb" and status(app_id) == "running"
    bad = act(client_of(hall, "bob"), app_id, bob_task, "return", **{"wf-to": "pb"})
    assert bad.status_code == 409


def test_transfer_and_adding_a_signer_before(hall: Flask) -> None:
    """转办 to a person found by name; 前加签 gives the task to the signer, then back."""
    with hall.test_request_context():
        app_id = submit()
        task = task_of(app_id, "bob")
    bob = client_of(hall, "bob")
    found = bob.get(f"/applications/{app_id}?who=人事").text
    assert 'value="erin"' in found
    unknown = post(
        bob,
        f"/applications/{app_id}/pass-on",
        {"task": task.engine_id, "who": "nobody", "action": "transfer"},
    )
    assert unknown.status_code == 400 and "找不到该人员" in unknown.text
    response = post(
        bob,
        f"/applications/{app_id}/pass-on",
        {"task": task.engine_id, "who": "erin", "action": "before", "opinion": "请先看"},
    )
    assert response.status_code == 302
    with hall.test_request_context():
        erin = task_of(app_id, "erin")
    response = post(
        client_of(hall, "erin"),
        f"/applications/{app_id}/pass-on",
        {"task": erin.engine_id, "who": "mallory", "action": "transfer"},
    )
    assert response.status_code == 302
    with hall.test_request_context():
        assert task_of(app_id, "mallory").node_id == "first"
        assert [r.application_id for r in queries.transferred_page("erin").rows] == [app_id]


def test_applicant_withdraws_only_while_nobody_has_acted(hall: Flask) -> None:
    """撤回 before anyone acted works; after an approval it is refused."""
    with hall.test_request_context():
        early, late = submit(), submit()
        ops.act(late, engine.Approve("bob", task_of(late, "bob").engine_id, "同意"))
    alice = client_of(hall, "alice")
    assert "撤回" in alice.get(f"/applications/{early}").text
    assert post(alice, f"/applications/{early}/withdraw", {}).status_code == 302
    refused = post(alice, f"/applications/{late}/withdraw", {})
    assert refused.status_code == 409 and "已有审批人处理，不能撤回" in refused.text
    bob_tries = post(client_of(hall, "bob"), f"/applications/{late}/withdraw", {})
    assert bob_tries.status_code == 409
    with hall.test_request_context():
        assert (status(early), status(late)) == ("withdrawn", "running")


def test_urging_is_limited_to_once_an_hour(hall: Flask) -> None:
    """催办 once: recorded; again at once: refused, no second event."""
    with hall.test_request_context():
        app_id = submit()
    alice = client_of(hall, "alice")
    assert post(alice, f"/applications/{app_id}/urge", {}).status_code == 302
    again = post(alice, f"/applications/{app_id}/urge", {})
    assert again.status_code == 409 and "已催办过" in again.text
    with hall.test_request_context():
        kinds = [e.kind for e in ops.history(app_id)]
        assert kinds.count("urged") == 1


def test_urged_task_is_marked_in_the_approvers_list(hall: Flask) -> None:
    """After 催办 the approver's 我待办的 row says 已催办; other applications' rows do not."""
    with hall.test_request_context():
        urged, quiet = submit(), submit()
    bob = client_of(hall, "bob")
    assert 'data-urged="1"' not in bob.get("/inbox").text
    assert post(client_of(hall, "alice"), f"/applications/{urged}/urge", {}).status_code == 302
    page = bob.get("/inbox").text
    marked = re.findall(
        r'<tr data-application="(\d+)"[^>]*>(?:(?!</tr>).)*data-urged="1"', page, re.S
    )
    assert marked == [str(urged)] and str(quiet) in page


def test_batch_approval_needs_an_opinion_and_approves_every_ticked_task(hall: Flask) -> None:
    """批量通过: empty opinion keeps the ticks and changes nothing; with one, all move on."""
    with hall.test_request_context():
        ids = [submit(), submit()]
        tasks = [task_of(i, "bob").id for i in ids]
    bob = client_of(hall, "bob")
    empty = bob.post(
        "/inbox/batch-approve",
        data={"task": tasks, "opinion": "", "csrf_token": csrf_token(bob, "/inbox")},
    )
    assert empty.status_code == 400 and "请填写审批意见" in empty.text
    assert empty.text.count(" checked ") + empty.text.count(" checked>") == 2
    done = bob.post(
        "/inbox/batch-approve",
        data={"task": tasks, "opinion": "同意", "csrf_token": csrf_token(bob, "/inbox")},
    )
    assert done.status_code == 302
    assert "已通过 2 项" in bob.get("/inbox").text
    with hall.test_request_context():
        assert queries.pending_count("bob") == 0 and queries.pending_count("carol") == 2


def test_forms_without_a_csrf_token_are_rejected(hall: Flask) -> None:
    """Every action is a POST with a CSRF token."""
    with hall.test_request_context():
        app_id = submit()
        task = task_of(app_id, "bob")
    response = client_of(hall, "bob").post(
        f"/applications/{app_id}/act",
        data={"wf-task": task.engine_id, "wf-action": "approve", "wf-opinion": "同意"},
    )
    assert response.status_code == 400
    with hall.test_request_context():
        assert status(app_id) == "running"


def test_delegation_while_away_sends_new_tasks_to_the_delegate(hall: Flask) -> None:
    """委托 page: unknown person refused; a delegate gets the tasks that arrive meanwhile."""
    bob = client_of(hall, "bob")
    assert bob.get("/inbox/delegation").status_code == 200
    bad = post(
        bob,
        "/inbox/delegation",
        {"delegate": "ghost", "starts_on": "2020-01-01", "ends_on": "2099-01-01"},
    )
    assert bad.status_code == 400 and "找不到该人员" in bad.text
    backwards = post(
        bob,
        "/inbox/delegation",
        {"delegate": "erin", "starts_on": "2099-01-02", "ends_on": "2099-01-01"},
    )
    assert backwards.status_code == 400 and "结束日期不能早于开始日期" in backwards.text
    ok = post(
        bob,
        "/inbox/delegation",
        {"delegate": "erin", "starts_on": "2020-01-01", "ends_on": "2099-01-01"},
    )
    assert ok.status_code == 302
    with hall.test_request_context():
        assert db.session.scalars(select(Delegation.delegate)).all() == ["erin"]
        app_id = submit()
        task = task_of(app_id, "erin")
        assert task.on_behalf_of == "bob"


# --------------------------------------------------------------------------- CC


def test_cc_is_unread_until_opened(hall: Flask) -> None:
    """抄送给我: unread mark and count until the recipient opens the application."""
    with hall.test_request_context():
        app_id = submit()
        ops.act(app_id, engine.Approve("bob", task_of(app_id, "bob").engine_id, "同意"))
        ops.act(app_id, engine.Approve("carol", task_of(app_id, "carol").engine_id, "同意"))
        assert queries.todo_counts("erin").cc_unread == 1
    erin = client_of(hall, "erin")
    listing = erin.get("/inbox?tab=cc").text
    assert 'data-unread="1"' in listing
    assert erin.get(f"/applications/{app_id}").status_code == 200
    assert 'data-unread="1"' not in erin.get("/inbox?tab=cc").text
    with hall.test_request_context():
        assert queries.todo_counts("erin").cc_unread == 0
        (row,) = queries.cc_page("erin").rows
        assert row.application_id == app_id and not row.unread


# --------------------------------------------------------------------------- diagram


def test_diagram_shows_done_current_and_future_nodes(hall: Flask) -> None:
    """两级审批 after the first approval: 部门审核 done, 工会审批 current, 结束 future."""
    with hall.test_request_context():
        app_id = submit()
        ops.act(app_id, engine.Approve("bob", task_of(app_id, "bob").engine_id, "同意"))
        found = db.session.get(Application, app_id)
        assert found is not None
        diagram = build_diagram(
            parse_flow(found.flow_snapshot), engine.state_from_json(found.state)
        )
        assert [diagram.state_of(n) for n in ("start", "first", "second", "cc", "end")] == [
            "done",
            "done",
            "current",
            "future",
            "future",
        ]
    html = client_of(hall, "alice").get(f"/applications/{app_id}").text
    assert "<svg" in html and "<script" not in html
    assert 'data-node="second" data-state="current"' in html


def test_diagram_draws_parallel_branches_side_by_side_and_the_branch_taken(hall: Flask) -> None:
    """并行办理: both branches current side by side; after them the condition takes 其他情况."""
    with hall.test_request_context():
        app_id = submit("并行办理", days=2)
        found = db.session.get(Application, app_id)
        assert found is not None
        flow = parse_flow(found.flow_snapshot)
        diagram = build_diagram(flow, engine.state_from_json(found.state))
        boxes = {b.node_id: b for b in diagram.boxes}
        assert boxes["pa"].state == boxes["pb"].state == "current"
        assert boxes["pb2"].state == "future" and boxes["pa"].y == boxes["pb"].y
        assert boxes["pa"].x + boxes["pa"].w <= boxes["pb"].x
        for account in ("bob", "carol", "frank"):
            ops.act(app_id, engine.Approve(account, task_of(app_id, account).engine_id, "同意"))
        found = db.session.get(Application, app_id)
        assert found is not None and found.status == "approved"
        diagram = build_diagram(flow, engine.state_from_json(found.state))
        assert diagram.state_of("dean") == "skipped"
        assert diagram.state_of("pb2") == "done" and diagram.state_of("end") == "done"
        assert any(label.text == "✓ 其他情况" for label in diagram.labels)
