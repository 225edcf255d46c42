"""Review of the approval flow and 待办中心: odd ids in links and forms, 委托 that can be
corrected and ended, nobody approving their own application, flows that fit their columns."""

from __future__ import annotations

import io
from typing import Any, cast

import pytest
from flask import Flask
from sqlalchemy import select

from hall.audit.models import HallAuditEvent
from hall.catalog.models import Service
from hall.extensions import db
from hall.forms import attachments
from hall.workflow import engine
from hall.workflow import operations as ops
from hall.workflow.models import Delegation, Task
from tests.hall.test_inbox import (
    END,
    FORM_SCHEMA,
    FORM_UI,
    PDF,
    START,
    client_of,
    person,
    post,
    submit,
    task_of,
    user,
)
from tests.hall.test_inbox import hall as inbox_hall  # noqa: F401 - a fixture

#: A form whose 审批人 is a person field (an approver named by the applicant in the form).
PICKED_SCHEMA = {
    **FORM_SCHEMA,
    "properties": {**FORM_SCHEMA["properties"], "who": {"type": "string", "title": "审批人"}},
}
PICKED_UI = {
    "order": [*FORM_UI["order"], "who"],
    "fields": {**FORM_UI["fields"], "who": {"widget": "person"}},
}


@pytest.fixture(name="hall")
def hall_fixture(request: pytest.FixtureRequest) -> Flask:
    """The to-do centre tests' hall: their people and their 两级审批 and 并行办理 services."""
    return cast(Flask, request.getfixturevalue("inbox_hall"))


def add_service(title: str, flow: dict[str, Any], schema: Any = None, ui: Any = None) -> int:
    """Another service of the hall's department with a form and a flow; returns its id."""
    department_id = db.session.scalars(select(Service.department_id)).first()
    service = Service(department_id=department_id, title=title)
    db.session.add(service)
    db.session.commit()
    ops.save_form_definition(service.id, schema or FORM_SCHEMA, ui or FORM_UI, actor="root")
    ops.save_flow_definition(service.id, flow, actor="root")
    return service.id


def assignees(app_id: int) -> list[str]:
    """Who holds the open tasks of an application."""
    return list(
        db.session.scalars(
            select(Task.assignee).where(Task.application_id == app_id, Task.status == "open")
        )
    )


# --------------------------------------------------------------------------- odd input


def test_unicode_digits_in_page_ids_and_task_ids_are_ignored_not_a_crash(hall: Flask) -> None:
    """“²” passes str.isdigit() but is no number: every list and form treats it as absent."""
    with hall.test_request_context():
        app_id = submit()
    bob = client_of(hall, "bob")
    assert bob.get("/inbox?page=²").status_code == 200
    assert bob.get("/inbox?tab=done&service=²").status_code == 200
    batch = post(bob, "/inbox/batch-approve", {"task": "²", "opinion": "同意"})
    assert batch.status_code == 400 and "请勾选要通过的待办" in batch.text
    acted = post(
        bob,
        f"/applications/{app_id}/act",
        {"wf-task": "²", "wf-action": "approve", "wf-opinion": "同意"},
    )
    assert acted.status_code == 409 and "这不是您的待办" in acted.text
    passed = post(
        bob, f"/applications/{app_id}/pass-on", {"task": "²", "who": "erin", "action": "transfer"}
    )
    assert passed.status_code == 409
    with hall.test_request_context():
        assert assignees(app_id) == ["bob"]


def test_a_too_long_note_to_a_transfer_says_so_and_keeps_it(hall: Flask) -> None:
    """转办 / 加签 with a note over 1000 characters: the message names the note, not the person."""
    with hall.test_request_context():
        app_id = submit()
        task = task_of(app_id, "bob")
    response = post(
        client_of(hall, "bob"),
        f"/applications/{app_id}/pass-on",
        {"task": task.engine_id, "who": "erin", "action": "after", "opinion": "长" * 1001},
    )
    assert response.status_code == 400
    assert "审批意见不能超过1000字" in response.text and "找不到该人员" not in response.text
    assert 'value="erin"' in response.text and "长" * 1001 in response.text


# --------------------------------------------------------------------------- 委托


def test_a_newer_delegation_replaces_an_older_one(hall: Flask) -> None:
    """Delegated to the wrong person, then to the right one: new tasks go to the right one."""
    bob = client_of(hall, "bob")
    for delegate in ("erin", "frank"):
        response = post(
            bob,
            "/inbox/delegation",
            {"delegate": delegate, "starts_on": "2020-01-01", "ends_on": "2099-01-01"},
        )
        assert response.status_code == 302
    with hall.test_request_context():
        app_id = submit()
        assert assignees(app_id) == ["frank"]
        assert task_of(app_id, "frank").on_behalf_of == "bob"


def test_ending_a_delegation_brings_new_tasks_back_and_only_its_owner_may(hall: Flask) -> None:
    """结束委托: back early, new tasks are bob's again; someone else's id gets 404; audited."""
    bob = client_of(hall, "bob")
    post(
        bob,
        "/inbox/delegation",
        {"delegate": "erin", "starts_on": "2020-01-01", "ends_on": "2099-01-01"},
    )
    with hall.test_request_context():
        delegation_id = db.session.scalars(select(Delegation.id)).one()
        assert assignees(submit()) == ["erin"]
    page = bob.get("/inbox/delegation").text
    assert f'data-end-delegation="{delegation_id}"' in page
    stranger = post(client_of(hall, "erin"), f"/inbox/delegation/{delegation_id}/end", {})
    assert stranger.status_code == 404
    ended = post(bob, f"/inbox/delegation/{delegation_id}/end", {})
    assert ended.status_code == 302
    assert "已结束委托" in bob.get("/inbox/delegation").text
    with hall.test_request_context():
        assert assignees(submit()) == ["bob"]
        actions = db.session.scalars(select(HallAuditEvent.action)).all()
        assert actions.count("workflow.delegate.end") == 1


def test_a_delegate_never_gets_the_task_of_their_own_application(hall: Flask) -> None:
    """bob delegates to alice; alice's own application stays with bob (no self-approval)."""
    post(
        client_of(hall, "bob"),
        "/inbox/delegation",
        {"delegate": "alice", "starts_on": "2020-01-01", "ends_on": "2099-01-01"},
    )
    with hall.test_request_context():
        app_id = submit()
        assert assignees(app_id) == ["bob"]
        assert task_of(app_id, "bob").on_behalf_of is None


# --------------------------------------------------------------------------- own application


def test_a_task_cannot_be_transferred_or_signed_over_to_the_applicant(hall: Flask) -> None:
    """转办 / 前加签 / 后加签 to the applicant are refused: nobody approves their own."""
    with hall.test_request_context():
        app_id = submit()
        task = task_of(app_id, "bob")
    bob = client_of(hall, "bob")
    for action in ("transfer", "before", "after"):
        response = post(
            bob,
            f"/applications/{app_id}/pass-on",
            {"task": task.engine_id, "who": "alice", "action": action, "opinion": "同意"},
        )
        assert response.status_code == 409, action
        assert "不能转办或加签给申请人本人" in response.text
    with hall.test_request_context():
        assert assignees(app_id) == ["bob"]


def test_the_applicant_cannot_choose_themselves_as_approver() -> None:
    """自选审批人 naming the applicant is refused before anything starts."""
    from tests.hall.workflow_support import context, flow

    chosen_flow = flow(
        {"id": "pick", "kind": "approver", "name": "导师", "approver": {"type": "applicant_choice"}}
    )
    refusal = engine.submit(chosen_flow, "alice", {}, context(), {"pick": ["bob", "alice"]})
    assert isinstance(refusal, engine.Refusal)
    assert refusal.message == engine.MSG_CHOICE_SELF and refusal.params == {"name": "导师"}


def test_an_approver_named_in_the_form_must_be_known_and_not_the_applicant(hall: Flask) -> None:
    """A person field naming the approver: an unknown 学工号 or the applicant is refused beside
    the field (nothing is stored); a known colleague gets the task."""
    flow = {
        "nodes": [
            START,
            {
                "id": "picked",
                "kind": "approver",
                "name": "指定审批人",
                "approver": {"type": "form_field", "field": "who"},
            },
            END,
        ]
    }
    with hall.test_request_context():
        service_id = add_service("指定审批", flow, PICKED_SCHEMA, PICKED_UI)
        service = db.session.get(Service, service_id)
        assert service is not None
        for who, message in (
            ("ghost", "找不到工号或学号为 ghost 的人员"),
            ("x" * 100, "找不到工号或学号为"),
            ("alice", "审批人不能是申请人本人"),
        ):
            try:
                ops.submit_application(service, user("alice"), {"reason": "出差", "who": who})
            except ops.SubmissionInvalid as invalid:
                assert message in invalid.errors["who"][0]
            else:
                raise AssertionError(f"{who} was accepted")
        assert db.session.scalars(select(Task)).all() == []
        app = ops.submit_application(service, user("alice"), {"reason": "出差", "who": "bob"})
        assert assignees(app.id) == ["bob"]


def test_an_approver_field_holding_a_number_names_nobody(hall: Flask) -> None:
    """A flow taking its approver from 天数 (a mistake) skips the node instead of crashing."""
    flow = {
        "nodes": [
            START,
            {
                "id": "odd",
                "kind": "approver",
                "name": "按天数",
                "approver": {"type": "form_field", "field": "days"},
            },
            END,
        ]
    }
    with hall.test_request_context():
        add_service("按天数", flow)
        app_id = submit("按天数", days=3)
        assert assignees(app_id) == []


def test_an_approver_may_not_slip_someone_elses_attachment_into_the_form(hall: Flask) -> None:
    """An approver editing 附件 posts the id of a file of another application: refused beside
    the field; the file's name never shows on this application."""
    flow = {"nodes": [START, person("first", ["bob"], permissions={"files": "edit"}), END]}
    with hall.test_request_context():
        add_service("附件可改", flow)
        other = db.session.scalars(select(Service).where(Service.title == "两级审批")).one()
        upload = attachments.store_upload("erin", "工资条.pdf", io.BytesIO(PDF))
        secret_id = upload.id
        theirs = ops.submit_application(other, user("erin"), {"reason": "私事"})
        attachments.link_to_application([secret_id], "erin", theirs.id)
        db.session.commit()
        app_id = submit("附件可改")
        task = task_of(app_id, "bob")
    response = post(
        client_of(hall, "bob"),
        f"/applications/{app_id}/act",
        {"wf-task": task.engine_id, "wf-action": "approve", "wf-opinion": "同意"}
        | {"files": str(secret_id)},
    )
    assert response.status_code == 400 and "不能加入不属于本申请的附件" in response.text
    assert "工资条.pdf" not in client_of(hall, "alice").get(f"/applications/{app_id}").text
    with hall.test_request_context():
        assert assignees(app_id) == ["bob"]


# --------------------------------------------------------------------------- definitions


def test_a_flow_whose_ids_names_or_people_do_not_fit_is_refused_when_saved(hall: Flask) -> None:
    """Node ids over 64 characters, names over 200 or not text, and over-long 学工号 would
    break every submission on PostgreSQL: the save says which, and nothing is stored."""
    flow = {
        "nodes": [
            START,
            person("n" * 80, ["bob"]),
            person("named", ["bob"], name="审" * 201),
            person("number", ["bob"], name=7),
            person("people", ["u" * 65]),
            END,
        ]
    }
    with hall.test_request_context():
        service_id = db.session.scalars(select(Service.id)).first()
        assert service_id is not None
        before = ops.latest_flow(service_id)
        try:
            ops.save_flow_definition(service_id, flow, actor="root")
        except ops.DefinitionInvalid as invalid:
            text = "\n".join(invalid.messages)
        else:
            raise AssertionError("saved")
        assert "过长（最多64个字符）" in text and "n" * 64 + "…" in text
        assert text.count("的名称必须是文字，最多200个字符") == 2
        assert "学工号 " + "u" * 64 + "…" in text
        assert ops.latest_flow(service_id) is before


def test_adding_a_signer_is_audited_with_whom_and_where(hall: Flask) -> None:
    """加签's audit entry names the signer and before / after."""
    with hall.test_request_context():
        app_id = submit()
        task = task_of(app_id, "bob")
        result = ops.act(app_id, engine.AddSigner("bob", task.engine_id, "erin", "before", "看"))
        assert isinstance(result, engine.Outcome)
        event = db.session.scalars(
            select(HallAuditEvent).where(HallAuditEvent.action == "workflow.addsigner")
        ).one()
        assert '"to": "erin"' in (event.detail or "")
        assert '"position": "before"' in (event.detail or "")
