"""Review 10 of the approval engine and the online forms: defects found, each pinned by a test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from hall.auth.models import HallUser, campus_today
from hall.catalog.roles import RoleGrant
from hall.directory.models import Department
from hall.extensions import db
from hall.forms.schema import validate_submission
from hall.workflow import engine as wf
from hall.workflow import operations as ops
from hall.workflow.demo import DEMOS
from hall.workflow.resolver import DirectoryResolver
from tests.hall.workflow_support import approver, context, flow, holders, ok, refused, task_of

R = wf.RefusalCode
CTX = context()


def _start(f: Any) -> wf.ApplicationState:
    return ok(wf.submit(f, "alice", {}, CTX)).state


def _act(f: Any, state: wf.ApplicationState, action: wf.Action) -> wf.ApplicationState:
    return ok(wf.apply(f, state, action, CTX)).state


# --------------------------------------------------------------------------- 前加签 chains


def test_a_signer_added_before_who_adds_another_still_hands_the_task_back_to_who_asked() -> None:
    """bob asks erin first, erin asks frank first: after frank and erin, bob decides again."""
    f = flow(approver("office", ["bob"]), approver("dean", ["dan"]))
    state = _start(f)
    state = _act(
        f, state, wf.AddSigner("bob", task_of(state, "bob").id, "erin", "before", "请先看")
    )
    erin = task_of(state, "erin")
    state = _act(f, state, wf.AddSigner("erin", erin.id, "frank", "before", "请先看"))
    state = _act(f, state, wf.Approve("frank", task_of(state, "frank").id, "同意"))
    assert holders(state) == {"office": ["erin"]}
    state = _act(f, state, wf.Approve("erin", task_of(state, "erin").id, "同意"))
    # bob asked for an opinion before deciding: the node never passes without him.
    assert holders(state) == {"office": ["bob"]}
    assert wf.inconsistencies(f, state) == []
    state = _act(f, state, wf.Approve("bob", task_of(state, "bob").id, "同意"))
    assert holders(state) == {"dean": ["dan"]}


def test_a_signer_cannot_add_or_transfer_to_whoever_waits_for_the_task_back() -> None:
    """erin, asked first by bob, may not hand the task to bob (a 加签 loop): refused."""
    f = flow(approver("office", ["bob"]), approver("dean", ["dan"]))
    state = _start(f)
    state = _act(
        f, state, wf.AddSigner("bob", task_of(state, "bob").id, "erin", "before", "请先看")
    )
    erin = task_of(state, "erin")
    for action in (
        wf.AddSigner("erin", erin.id, "bob", "before", "请先看"),
        wf.AddSigner("erin", erin.id, "bob", "after", "同意"),
        wf.Transfer("erin", erin.id, "bob"),
    ):
        refused(wf.apply(f, state, action, CTX), R.INVALID_SIGNER)


def test_a_state_stored_before_signer_chains_still_hands_the_task_back() -> None:
    """A stored task whose ``then`` is one account (the old format) is read as a chain of one."""
    f = flow(approver("office", ["bob"]), approver("dean", ["dan"]))
    state = _start(f)
    state = _act(
        f, state, wf.AddSigner("bob", task_of(state, "bob").id, "erin", "before", "请先看")
    )
    raw = wf.state_to_json(state)
    assert raw["tasks"][0]["then"] == ["bob"]
    raw["tasks"][0]["then"] = "bob"
    old = wf.state_from_json(raw)
    assert old == state
    state = _act(f, old, wf.Approve("erin", task_of(old, "erin").id, "同意"))
    assert holders(state) == {"office": ["bob"]}
    assert wf.state_from_json(wf.state_to_json(state)) == state


# --------------------------------------------------------------------------- people who left


@pytest.fixture
def directory(hall_app: Flask) -> Iterator[Flask]:
    """alice (applicant) in NIC; carol and gone hold the role ``union-office``; gone has left."""
    with hall_app.test_request_context():
        db.session.add(Department(code="NIC", name="网络与信息中心"))
        for account, active in [("alice", True), ("carol", True), ("erin", True), ("gone", False)]:
            db.session.add(
                HallUser(
                    sub=f"sub-{account}",
                    account=account,
                    name=account,
                    kind="staff",
                    department_code="NIC",
                    active=active,
                )
            )
        db.session.add_all(
            [
                RoleGrant(account="gone", role="union-office", granted_by="test"),
                RoleGrant(account="carol", role="union-office", granted_by="test"),
                RoleGrant(account="gone", role="archive", granted_by="test"),
                # Granted before the holder ever appeared in the hall: still usable.
                RoleGrant(account="newcomer", role="archive", granted_by="test"),
            ]
        )
        db.session.commit()
    yield hall_app


def test_a_role_holder_who_left_gets_no_task(directory: Flask) -> None:
    """A role grant of someone marked inactive (left, disabled) names nobody: no task waits
    forever for a person who will never sign in again."""
    with directory.test_request_context():
        resolver = DirectoryResolver()
        assert resolver.users_with_role("union-office", "alice") == ["carol"]
        assert resolver.users_with_role("archive", "alice") == ["newcomer"]


def test_an_inactive_role_holder_alone_sends_the_node_to_its_fallback(directory: Flask) -> None:
    """The only holder left: the node goes to the fallback approver, as for an empty role."""
    with directory.test_request_context():
        db.session.delete(
            db.session.scalars(select(RoleGrant).where(RoleGrant.account == "newcomer")).one()
        )
        db.session.commit()
        f = flow(
            {
                "id": "archive",
                "kind": "approver",
                "name": "档案馆",
                "approver": {"type": "role", "role": "archive"},
                "when_empty": "fallback",
                "fallback": ["erin"],
            }
        )
        state = ok(wf.submit(f, "alice", {}, ops.engine_context())).state
        assert holders(state) == {"archive": ["erin"]}


def test_new_tasks_skip_a_delegate_who_has_left(directory: Flask) -> None:
    """委托 to someone since marked inactive: the approver's new tasks stay theirs."""
    with directory.test_request_context():
        today = campus_today()
        ops.set_delegation("carol", "erin", today, today)
        ops.set_delegation("carol", "gone", today, today)  # newest: would win
        assert ops.engine_context().delegate_for("carol") == "erin"
        erin = db.session.scalars(select(HallUser).where(HallUser.account == "erin")).one()
        erin.active = False
        db.session.commit()
        assert ops.engine_context().delegate_for("carol") is None


# --------------------------------------------------------------------------- form messages


def test_an_invalid_start_date_is_not_also_called_later_than_the_end(hall_app: Flask) -> None:
    """请假时间 2026-13-01 至 2026-12-02: one message, the start is no date; not a second one
    claiming the end is before it (text comparison of a non-date)."""
    leave = DEMOS["student-leave"]["form"]
    data = {
        "name": "张三",
        "student_no": "2024001",
        "leave_type": "病假",
        "period": {"start": "2026-13-01", "end": "2026-12-02"},
        "days": 2,
        "leaves_campus": "否",
        "reason": "发烧",
    }
    with hall_app.test_request_context():
        errors = validate_submission(leave["schema"], leave["ui"], data)
        assert errors == {"period": ["开始日期：请输入有效日期，例如 2024-05-16"]}
        data["period"] = {"start": "2026-12-05", "end": "2026-12-02"}
        errors = validate_submission(leave["schema"], leave["ui"], data)
        assert errors == {"period": ["结束日期不能早于开始日期"]}
