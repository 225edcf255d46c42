"""Applications stored: submission, approval in one locked transaction, versions, delegation."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from hall.auth.models import HallUser, campus_today
from hall.catalog.models import Service
from hall.catalog.roles import RoleGrant
from hall.directory.models import Department, Position
from hall.extensions import db
from hall.workflow import engine
from hall.workflow import operations as ops
from hall.workflow.demo import DEMOS
from hall.workflow.models import (
    Application,
    ApplicationEvent,
    FlowDefinition,
    FormDefinition,
    Task,
)
from hall.workflow.resolver import DirectoryResolver

UNION = DEMOS["union-membership"]

STATEMENT = "本人自愿加入中国教育工会，遵守工会章程。"


def posted(**changes: Any) -> dict[str, Any]:
    """A filled 新教职工入会申请 as ``coerce_form`` would return it."""
    data: dict[str, Any] = {
        "name": "冒名顶替",
        "birth_date": "1990-03-04",
        "political_status": "群众",
        "education": "硕士研究生",
        "join_date": "2024-04-01",
        "statement": STATEMENT,
    }
    data.update(changes)
    return data


@pytest.fixture
def hall(hall_app: Flask) -> Iterator[Flask]:
    """A hall with 网络与信息中心 (head: bob) under 学校, 校工会 (carol) and the union service."""
    with hall_app.test_request_context():
        school = Department(code="SCHOOL", name="学校")
        db.session.add(school)
        db.session.flush()
        nic = Department(code="NIC", name="网络与信息中心", parent_id=school.id)
        db.session.add(nic)
        db.session.flush()
        people = {
            account: HallUser(
                sub=f"sub-{account}",
                account=account,
                name=name,
                kind="staff",
                department_code=dept,
                department_name="网络与信息中心" if dept == "NIC" else "学校",
                phone="+8618888888888",
            )
            for account, name, dept in [
                ("alice", "学校管理员", "NIC"),
                ("bob", "王主任", "NIC"),
                ("pres", "李校长", "SCHOOL"),
                ("carol", "工会干事", "SCHOOL"),
                ("erin", "代理人", "NIC"),
            ]
        }
        db.session.add_all(people.values())
        db.session.flush()
        db.session.add_all(
            [
                Position(
                    scim_id="pos-1",
                    department_id=nic.id,
                    kind="head",
                    title="主任",
                    holders=[people["bob"]],
                ),
                Position(
                    scim_id="pos-2",
                    department_id=school.id,
                    kind="head",
                    title="校长",
                    holders=[people["pres"]],
                ),
                RoleGrant(account="carol", role="union-office", granted_by="test"),
            ]
        )
        service = Service(department_id=school.id, title="新教职工入会申请")
        db.session.add(service)
        db.session.commit()
        ops.save_form_definition(
            service.id, UNION["form"]["schema"], UNION["form"]["ui"], actor="admin"
        )
        ops.save_flow_definition(service.id, UNION["flow"], actor="admin")
    yield hall_app


def service() -> Service:
    """The union membership service."""
    return db.session.scalars(select(Service)).one()


def user(account: str) -> HallUser:
    """A hall user by 学工号."""
    return db.session.scalars(select(HallUser).where(HallUser.account == account)).one()


def submit() -> int:
    """alice submits the form; returns the application id."""
    return ops.submit_application(service(), user("alice"), posted()).id


def open_task(account: str) -> Task:
    """The one open task of ``account``."""
    (task,) = ops.pending_tasks(account)
    return task


def test_directory_resolves_department_head_supervisors_and_roles(hall: Flask) -> None:
    """部门负责人, N-level supervisors and role holders come from the hall's directory."""
    with hall.test_request_context():
        resolver = DirectoryResolver()
        assert resolver.department_head("alice") == ["bob"]
        assert resolver.supervisor("alice", 1) == ["bob"]
        assert resolver.supervisor("alice", 2) == ["pres"]
        assert resolver.supervisor("bob", 1) == ["pres"]
        assert resolver.supervisor("alice", 3) == []
        assert resolver.users_with_role("union-office", "alice") == ["carol"]
        assert resolver.users_with_role("position:head", "alice") == ["bob"]
        assert resolver.department_head("nobody") == []


def test_applicant_submits_and_the_approver_sees_it_in_my_pending_list(hall: Flask) -> None:
    """提交 → 我待办的: the department head has the task; profile fields come from the profile."""
    with hall.test_request_context():
        application = db.session.get(Application, submit())
        assert application is not None
        assert application.status == "running"
        assert application.data["name"] == "学校管理员"  # the posted 冒名顶替 is ignored
        assert application.data["phone"] == "18888888888"
        task = open_task("bob")
        assert (task.application_id, task.node_name) == (application.id, "部门工会小组审核")
        kinds = [e.kind for e in ops.history(application.id)]
        assert kinds == ["submitted", "node_entered"]


def test_every_submission_error_is_reported_and_nothing_is_saved(hall: Flask) -> None:
    """Bad data: every error at once, next to its field; no application is created."""
    with hall.test_request_context():
        with pytest.raises(ops.SubmissionInvalid) as raised:
            ops.submit_application(
                service(),
                user("alice"),
                posted(statement="字" * 151, education="小学", union_opinion="自批"),
            )
        assert raised.value.errors == {"union_opinion": ["您没有修改此项的权限"]}
        with pytest.raises(ops.SubmissionInvalid) as raised:
            ops.submit_application(
                service(), user("alice"), posted(statement="字" * 151, education="小学")
            )
        assert raised.value.errors == {
            "statement": ["字数控制在150字以内"],
            "education": ["请从给定的选项中选择"],
        }
        assert db.session.scalars(select(Application)).all() == []


def test_approvals_move_the_application_to_done_with_opinions_recorded(hall: Flask) -> None:
    """通过 twice: 我待办的 empties, the opinion and time are on the task, the history is stored."""
    with hall.test_request_context():
        app_id = submit()
        task = open_task("bob")
        outcome = ops.act(app_id, engine.Approve("bob", task.engine_id, "同意入会"))
        assert isinstance(outcome, engine.Outcome)
        db.session.refresh(task)
        assert (task.status, task.opinion) == ("approved", "同意入会") and task.acted_at
        union_task = open_task("carol")
        outcome = ops.act(
            app_id,
            engine.Approve("carol", union_task.engine_id, "同意"),
            posted={"union_opinion": "同意吸收为会员"},
        )
        assert isinstance(outcome, engine.Outcome)
        application = db.session.get(Application, app_id)
        assert application is not None
        assert application.status == "approved" and application.finished_at
        assert application.data["union_opinion"] == "同意吸收为会员"
        assert ops.pending_tasks("carol") == []
        seqs = [e.seq for e in ops.history(app_id)]
        assert seqs == sorted(seqs) and ops.history(app_id)[-1].kind == "finished"


def test_a_second_click_on_a_handled_task_changes_nothing(hall: Flask) -> None:
    """The same approval twice: the second is refused and nothing is written."""
    with hall.test_request_context():
        app_id = submit()
        task = open_task("bob")
        assert isinstance(
            ops.act(app_id, engine.Approve("bob", task.engine_id, "同意")), engine.Outcome
        )
        events = len(ops.history(app_id))
        again = ops.act(app_id, engine.Approve("bob", task.engine_id, "同意"))
        assert (
            isinstance(again, engine.Refusal) and again.code is engine.RefusalCode.ALREADY_HANDLED
        )
        assert len(ops.history(app_id)) == events


def test_a_field_the_approver_may_not_edit_is_refused_and_nothing_changes(hall: Flask) -> None:
    """Tampering: the department head posts a changed 入会申请; refused, state untouched."""
    with hall.test_request_context():
        app_id = submit()
        task = open_task("bob")
        with pytest.raises(ops.SubmissionInvalid) as raised:
            ops.act(
                app_id,
                engine.Approve("bob", task.engine_id, "同意"),
                posted={"statement": "改过的申请", "union_opinion": "越权"},
            )
        assert raised.value.errors == {
            "statement": ["您没有修改此项的权限"],
            "union_opinion": ["您没有修改此项的权限"],
        }
        application = db.session.get(Application, app_id)
        assert application is not None and application.data["statement"] == STATEMENT
        assert open_task("bob").status == "open"


def test_editing_the_flow_does_not_break_running_applications(hall: Flask) -> None:
    """A new flow version (union office removed) applies to new applications only."""
    with hall.test_request_context():
        running = submit()
        shorter = {"nodes": [n for n in UNION["flow"]["nodes"] if n["id"] != "union"]}
        ops.save_flow_definition(service().id, shorter, actor="admin")
        ops.act(running, engine.Approve("bob", open_task("bob").engine_id, "同意"))
        assert open_task("carol").application_id == running
        fresh = submit()
        ops.act(fresh, engine.Approve("bob", open_task("bob").engine_id, "同意"))
        application = db.session.get(Application, fresh)
        assert application is not None and application.status == "approved"


def test_a_flow_with_problems_is_refused_with_clear_messages(hall: Flask) -> None:
    """Saving a flow with an unknown field and an empty approver: messages, no new version."""
    with hall.test_request_context():
        bad = {
            "nodes": [
                {"id": "start", "kind": "start", "permissions": {"ghost": "edit"}},
                {"id": "x", "kind": "approver", "approver": {"type": "person", "users": []}},
                {"id": "end", "kind": "end"},
            ]
        }
        before = ops.latest_flow(service().id)
        with pytest.raises(ops.DefinitionInvalid) as raised:
            ops.save_flow_definition(service().id, bad, actor="admin")
        assert raised.value.messages == [
            "节点 start 的字段权限引用了表单中不存在的字段 ghost",
            "节点 x 未设置审批人",
        ]
        assert ops.latest_flow(service().id) is before


def test_delegate_gets_new_tasks_while_the_approver_is_away(hall: Flask) -> None:
    """委托: bob away → erin gets the task on his behalf; a delegation to oneself is refused."""
    with hall.test_request_context():
        with pytest.raises(ops.SubmissionInvalid):
            ops.set_delegation("bob", "bob", date(2026, 1, 1), date(2026, 1, 2))
        today = campus_today()
        ops.set_delegation("bob", "erin", today, today)
        app_id = submit()
        task = open_task("erin")
        assert task.on_behalf_of == "bob" and ops.pending_tasks("bob") == []
        ops.act(app_id, engine.Approve("erin", task.engine_id, "代签同意"))
        event = db.session.scalars(
            select(ApplicationEvent).where(ApplicationEvent.kind == "approved")
        ).one()
        assert (event.actor, event.on_behalf_of) == ("erin", "bob")


def test_delegation_days_are_campus_dates(hall: Flask) -> None:
    """At 04:00 in Beijing (20:00 UTC the day before) a delegation starting "today" is in force."""
    early = datetime(2026, 11, 24, 20, 0, tzinfo=UTC)  # 2026-11-25 04:00 Asia/Shanghai
    with hall.test_request_context():
        ops.set_delegation("bob", "erin", date(2026, 11, 25), date(2026, 11, 26))
        db.session.commit()
        assert ops.engine_context(early).delegate_for("bob") == "erin"
        before = datetime(2026, 11, 24, 15, 59, tzinfo=UTC)  # 2026-11-24 23:59 in Beijing
        assert ops.engine_context(before).delegate_for("bob") is None


def test_return_and_resubmit_through_the_store(hall: Flask) -> None:
    """退回 to the applicant, then 重新提交 with corrected data starts the flow again."""
    with hall.test_request_context():
        app_id = submit()
        ops.act(app_id, engine.Return("bob", open_task("bob").engine_id, "请补充入职时间"))
        application = db.session.get(Application, app_id)
        assert application is not None and application.status == "returned"
        data = ops.resubmit_data(application, user("alice"), posted(join_date="2024-04-02"))
        result = ops.act(app_id, engine.Resubmit("alice", data))
        assert isinstance(result, engine.Outcome)
        assert open_task("bob").application_id == app_id
        db.session.refresh(application)
        assert application.data["join_date"] == "2024-04-02"


def test_concurrent_approvals_of_the_same_task_leave_exactly_one_winner(hall: Flask) -> None:
    """Two clicks at once (two workers): one approval, one refusal, one closed task."""
    with hall.test_request_context():
        app_id = submit()
        engine_id = open_task("bob").engine_id
    barrier = threading.Barrier(2)
    results: list[Any] = []

    def click() -> None:
        with hall.test_request_context():
            barrier.wait()
            try:
                results.append(ops.act(app_id, engine.Approve("bob", engine_id, "同意")))
            finally:
                db.session.remove()

    threads = [threading.Thread(target=click) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    kinds = sorted(type(r).__name__ for r in results)
    assert kinds == ["Outcome", "Refusal"], results
    with hall.test_request_context():
        approved = db.session.scalars(select(Task).where(Task.status == "approved")).all()
        assert len(approved) == 1
        assert len(ops.pending_tasks("carol")) == 1


def test_demo_command_gives_the_manuals_services_their_forms_once(hall_app: Flask) -> None:
    """`flask --app hall demo` twice: the five manual services get one form and flow each."""
    runner = hall_app.test_cli_runner()
    for _ in range(2):
        result = runner.invoke(args=["demo"])
        assert result.exit_code == 0, result.output
        assert "5 online forms" in result.output
    with hall_app.app_context():
        assert len(db.session.scalars(select(FormDefinition)).all()) == 5
        assert len(db.session.scalars(select(FlowDefinition)).all()) == 5
