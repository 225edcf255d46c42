"""The approval engine (2.4 审批处理): every action and mode as pure unit tests."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from hall.workflow import engine as wf
from hall.workflow.definitions import parse_flow
from hall.workflow.demo import DEMOS
from tests.hall.workflow_support import (
    Directory,
    approver,
    context,
    flow,
    holders,
    ok,
    parallel,
    refused,
    task_of,
)

R = wf.RefusalCode
CTX = context()


def start(
    f: Any, data: dict[str, Any] | None = None, ctx: wf.Context = CTX, **kw: Any
) -> wf.ApplicationState:
    """Submit as alice and return the state."""
    return ok(wf.submit(f, "alice", data or {}, ctx, **kw)).state


def approve(
    f: Any, state: wf.ApplicationState, who: str, node: str | None = None, ctx: wf.Context = CTX
) -> wf.ApplicationState:
    """``who`` approves their open task."""
    task = task_of(state, who, node)
    return ok(wf.apply(f, state, wf.Approve(who, task.id, "同意"), ctx)).state


def consistent(f: Any, state: wf.ApplicationState) -> wf.ApplicationState:
    """The state, after checking its invariants."""
    assert wf.inconsistencies(f, state) == []
    return state


# --------------------------------------------------------------------------- modes


def test_submission_gives_the_first_approver_a_task_in_my_pending_list() -> None:
    """Submitting starts the flow: the first approver has a pending task (我待办的)."""
    f = flow(approver("head", ["bob"]))
    outcome = ok(wf.submit(f, "alice", {"reason": "出差"}, CTX))
    assert outcome.state.status is wf.ApplicationStatus.RUNNING
    assert [(t.node_id, t.assignee) for t in outcome.created] == [("head", "bob")]
    assert [e.kind for e in outcome.events][:2] == [
        wf.EventKind.SUBMITTED,
        wf.EventKind.NODE_ENTERED,
    ]
    consistent(f, outcome.state)


def test_countersign_needs_every_approver_before_moving_on() -> None:
    """会签: the node completes only when all of its approvers approved."""
    f = flow(approver("panel", ["bob", "carol"], "all"), approver("dean", ["dan"]))
    state = approve(f, start(f), "bob")
    assert holders(state) == {"panel": ["carol"]}
    state = consistent(f, approve(f, state, "carol"))
    assert holders(state) == {"dean": ["dan"]}


def test_or_sign_one_approval_closes_the_other_approvers_tasks() -> None:
    """或签: the first approval decides; the others' tasks are cancelled."""
    f = flow(approver("office", ["bob", "carol"], "any"), approver("dean", ["dan"]))
    state = start(f)
    task = task_of(state, "carol")
    outcome = ok(wf.apply(f, state, wf.Approve("carol", task.id, "同意"), CTX))
    assert holders(outcome.state) == {"dean": ["dan"]}
    closed = {(c.task.assignee, c.status) for c in outcome.closed}
    assert closed == {("carol", wf.TaskStatus.APPROVED), ("bob", wf.TaskStatus.CANCELLED)}


def test_sequential_approvers_receive_the_task_one_after_another() -> None:
    """依次审批: the next person gets the task only after the previous one approved."""
    f = flow(approver("chain", ["bob", "carol", "dan"], "sequential"))
    state = start(f)
    assert holders(state) == {"chain": ["bob"]}
    state = approve(f, state, "bob")
    assert holders(state) == {"chain": ["carol"]}
    state = approve(f, approve(f, state, "carol"), "dan")
    assert state.status is wf.ApplicationStatus.APPROVED


def test_last_approval_finishes_the_application_and_tells_the_applicant() -> None:
    """办结: after the last node the application is approved with no task left."""
    f = flow(approver("head", ["bob"]))
    state = start(f)
    outcome = ok(wf.apply(f, state, wf.Approve("bob", task_of(state, "bob").id, "同意"), CTX))
    assert outcome.state.status is wf.ApplicationStatus.APPROVED
    assert outcome.state.tasks == () and outcome.state.active == ()
    assert wf.Notification(wf.EventKind.FINISHED, "alice") in outcome.notifications
    assert outcome.state.history[-1].kind is wf.EventKind.FINISHED
    consistent(f, outcome.state)


# --------------------------------------------------------------------------- refusals


def test_approve_return_and_terminate_each_require_an_opinion() -> None:
    """通过、退回、中止 须填写审批意见: an empty or blank opinion changes nothing."""
    f = flow(approver("head", ["bob"]))
    state = start(f)
    task = task_of(state, "bob")
    for action in (
        wf.Approve("bob", task.id, ""),
        wf.Return("bob", task.id, "   "),
        wf.Terminate("bob", task.id, "\n"),
        wf.AddSigner("bob", task.id, "carol", "after", ""),
    ):
        refusal = refused(wf.apply(f, state, action, CTX), R.OPINION_REQUIRED)
        assert refusal.message == "请填写审批意见"


def test_nobody_else_can_act_on_someone_elses_task() -> None:
    """Only the assignee may act on a task; others are told it is not theirs."""
    f = flow(approver("head", ["bob"]))
    state = start(f)
    task = task_of(state, "bob")
    refused(wf.apply(f, state, wf.Approve("mallory", task.id, "同意"), CTX), R.NOT_YOUR_TURN)
    refused(wf.apply(f, state, wf.Approve("bob", 999, "同意"), CTX), R.NOT_YOUR_TURN)


def test_a_handled_task_cannot_be_handled_twice() -> None:
    """A second click on a handled task is refused, not applied again."""
    f = flow(approver("office", ["bob", "carol"], "any"), approver("dean", ["dan"]))
    state = start(f)
    bob_task = task_of(state, "bob")
    state = approve(f, state, "carol")
    refused(wf.apply(f, state, wf.Approve("bob", bob_task.id, "同意"), CTX), R.ALREADY_HANDLED)


def test_a_finished_application_refuses_further_actions() -> None:
    """Once approved, nothing more can happen to it."""
    f = flow(approver("head", ["bob"]))
    state = approve(f, start(f), "bob")
    refused(wf.apply(f, state, wf.Approve("bob", 1, "同意"), CTX), R.FINISHED)
    refused(wf.apply(f, state, wf.Withdraw("alice"), CTX), R.FINISHED)


# --------------------------------------------------------------------------- return


def test_return_to_applicant_then_resubmit_starts_the_flow_again() -> None:
    """退回 to the applicant: tasks close; resubmitting with changed data runs from the start."""
    f = flow(approver("head", ["bob"]), approver("dean", ["dan"]))
    state = approve(f, start(f, {"days": 2}), "bob")
    task = task_of(state, "dan")
    outcome = ok(wf.apply(f, state, wf.Return("dan", task.id, "材料不全"), CTX))
    state = consistent(f, outcome.state)
    assert state.status is wf.ApplicationStatus.RETURNED and state.tasks == ()
    assert wf.Notification(wf.EventKind.RETURNED, "alice", "dean") in outcome.notifications
    refused(wf.apply(f, state, wf.Resubmit("bob", {}), CTX), R.NOT_ALLOWED)
    state = ok(wf.apply(f, state, wf.Resubmit("alice", {"days": 3}), CTX)).state
    assert state.status is wf.ApplicationStatus.RUNNING and state.data == {"days": 3}
    assert holders(state) == {"head": ["bob"]}
    assert not state.acted


def test_return_to_an_earlier_node_reruns_it_and_everything_after() -> None:
    """退回 to an earlier node: that node's approvers decide again, then the flow goes on."""
    f = flow(approver("head", ["bob"]), approver("office", ["carol"]), approver("dean", ["dan"]))
    state = approve(f, approve(f, start(f), "bob"), "carol")
    assert wf.return_targets(f, state, "dean") == ["head", "office"]
    task = task_of(state, "dan")
    state = ok(wf.apply(f, state, wf.Return("dan", task.id, "请重新审核", to="head"), CTX)).state
    consistent(f, state)
    assert holders(state) == {"head": ["bob"]}
    assert state.completed == ()
    state = approve(f, approve(f, state, "bob"), "carol")
    assert holders(state) == {"dean": ["dan"]}


def test_return_to_a_node_not_yet_reached_is_refused() -> None:
    """Only nodes approved earlier on the way are return targets."""
    f = flow(approver("head", ["bob"]), approver("dean", ["dan"]))
    state = start(f)
    task = task_of(state, "bob")
    for target in ("dean", "head", "nonexistent"):
        refused(
            wf.apply(f, state, wf.Return("bob", task.id, "不行", to=target), CTX), R.INVALID_TARGET
        )


ONBOARDING = parse_flow(DEMOS["onboarding"]["flow"])
ONBOARDING_DIRECTORY = Directory(
    roles={
        "hr-office": ["hr"],
        **{
            f"onboarding-{key}": [f"{key}-officer"]
            for key in (
                "organisation",
                "staffing",
                "finance",
                "union",
                "security",
                "medical",
                "oa_account",
                "campus_card",
            )
        },
    },
    heads={"alice": ["head"]},
)
ONBOARDING_CTX = context(ONBOARDING_DIRECTORY)


def onboarding_in_parallel() -> wf.ApplicationState:
    """教职工入校办理手续通知单 after 人事处审核: seven department sign-offs open."""
    state = ok(wf.submit(ONBOARDING, "alice", {}, ONBOARDING_CTX)).state
    return approve(ONBOARDING, state, "hr", ctx=ONBOARDING_CTX)


def test_onboarding_notice_runs_seven_department_sign_offs_in_parallel() -> None:
    """入校办理手续通知单: 组织处、财务处、工会、保卫处、医政处、OA账号申请、一卡通 in parallel."""
    state = onboarding_in_parallel()
    assert sorted(holders(state)) == sorted(
        ["organisation", "finance", "union", "security", "medical", "oa_account", "campus_card"]
    )
    for key in ("finance", "union", "security", "medical", "oa_account", "campus_card"):
        state = approve(ONBOARDING, state, f"{key}-officer", ctx=ONBOARDING_CTX)
        assert state.status is wf.ApplicationStatus.RUNNING
    state = approve(ONBOARDING, state, "organisation-officer", ctx=ONBOARDING_CTX)
    assert holders(state) == {"staffing": ["staffing-officer"]}
    outcome = ok(
        wf.apply(
            ONBOARDING,
            state,
            wf.Approve("staffing-officer", task_of(state, "staffing-officer").id, "已办理"),
            ONBOARDING_CTX,
        )
    )
    assert outcome.state.status is wf.ApplicationStatus.APPROVED
    assert wf.Notification(wf.EventKind.CC, "head", "cc-applicant-head") in outcome.notifications
    consistent(ONBOARDING, outcome.state)


def test_return_from_inside_a_parallel_branch_cancels_the_sibling_branches() -> None:
    """退回 from 财务处 to 人事处: every other department's open task is cancelled cleanly."""
    state = approve(ONBOARDING, onboarding_in_parallel(), "union-officer", ctx=ONBOARDING_CTX)
    task = task_of(state, "finance-officer")
    outcome = ok(
        wf.apply(
            ONBOARDING,
            state,
            wf.Return("finance-officer", task.id, "缺少材料", to="hr"),
            ONBOARDING_CTX,
        )
    )
    state = consistent(ONBOARDING, outcome.state)
    assert holders(state) == {"hr": ["hr"]}
    assert state.joins == ()
    cancelled = {c.task.node_id for c in outcome.closed if c.status is wf.TaskStatus.CANCELLED}
    assert cancelled == {"organisation", "security", "medical", "oa_account", "campus_card"}
    # After 人事处 approves again all seven departments sign off afresh.
    state = approve(ONBOARDING, state, "hr", ctx=ONBOARDING_CTX)
    assert len(holders(state)) == 7


def test_return_within_a_parallel_branch_leaves_the_other_branches_alone() -> None:
    """机构编制管理科 returns to 组织处 (same branch): the other departments keep their tasks."""
    state = approve(
        ONBOARDING, onboarding_in_parallel(), "organisation-officer", ctx=ONBOARDING_CTX
    )
    task = task_of(state, "staffing-officer")
    state = ok(
        wf.apply(
            ONBOARDING,
            state,
            wf.Return("staffing-officer", task.id, "请核对编制", to="organisation"),
            ONBOARDING_CTX,
        )
    ).state
    consistent(ONBOARDING, state)
    assert "staffing" not in holders(state)
    assert len(holders(state)) == 7 and holders(state)["organisation"] == ["organisation-officer"]


def test_return_into_a_finished_parallel_branch_reruns_only_that_branch() -> None:
    """A node after the parallel sign-offs returns to 保卫处: only that branch runs again."""
    f = flow(
        parallel("p", a=[approver("a1", ["ann"])], b=[approver("b1", ["ben"])]),
        approver("final", ["fay"]),
    )
    state = approve(f, approve(f, start(f), "ann"), "ben")
    assert wf.return_targets(f, state, "final") == ["a1", "b1"]
    task = task_of(state, "fay")
    state = ok(wf.apply(f, state, wf.Return("fay", task.id, "请复核", to="b1"), CTX)).state
    consistent(f, state)
    assert holders(state) == {"b1": ["ben"]}
    assert state.joins == (wf.Join("p", ("a",)),)
    assert "a1" in state.completed
    state = approve(f, state, "ben")
    assert holders(state) == {"final": ["fay"]}


def test_return_to_a_sibling_parallel_branch_is_refused() -> None:
    """Branches run side by side, so one cannot return to another."""
    f = flow(
        parallel(
            "p", a=[approver("a1", ["ann"])], b=[approver("b1", ["ben"]), approver("b2", ["bea"])]
        )
    )
    state = approve(f, approve(f, start(f), "ann"), "ben")
    task = task_of(state, "bea")
    assert wf.return_targets(f, state, "b2") == ["b1"]
    refused(wf.apply(f, state, wf.Return("bea", task.id, "x", to="a1"), CTX), R.INVALID_TARGET)


# --------------------------------------------------------------------------- terminate, withdraw


def test_terminate_ends_the_application_and_closes_every_task() -> None:
    """中止: the flow ends at once; parallel tasks are cancelled; the applicant is told."""
    state = onboarding_in_parallel()
    task = task_of(state, "medical-officer")
    outcome = ok(
        wf.apply(
            ONBOARDING,
            state,
            wf.Terminate("medical-officer", task.id, "不符合条件"),
            ONBOARDING_CTX,
        )
    )
    assert outcome.state.status is wf.ApplicationStatus.TERMINATED
    assert outcome.state.tasks == () and len(outcome.closed) == 7
    assert wf.Notification(wf.EventKind.TERMINATED, "alice", "medical") in outcome.notifications
    consistent(ONBOARDING, outcome.state)


def test_applicant_withdraws_while_nobody_has_acted() -> None:
    """撤回: allowed before any approver acts; the open tasks disappear."""
    f = flow(approver("head", ["bob", "carol"]))
    state = start(f)
    refused(wf.apply(f, state, wf.Withdraw("bob"), CTX), R.NOT_ALLOWED)
    outcome = ok(wf.apply(f, state, wf.Withdraw("alice", "不需要了"), CTX))
    assert outcome.state.status is wf.ApplicationStatus.WITHDRAWN
    assert {c.status for c in outcome.closed} == {wf.TaskStatus.CANCELLED}
    consistent(f, outcome.state)


def test_withdraw_is_refused_once_an_approver_has_acted() -> None:
    """撤回 after a 会签 approver approved: refused, nothing changes."""
    f = flow(approver("head", ["bob", "carol"]))
    state = approve(f, start(f), "bob")
    refusal = refused(wf.apply(f, state, wf.Withdraw("alice"), CTX), R.ALREADY_ACTED)
    assert refusal.message == "已有审批人处理，不能撤回"


def test_a_returned_application_may_be_withdrawn() -> None:
    """After a return the applicant may give up instead of resubmitting."""
    f = flow(approver("head", ["bob"]))
    state = start(f)
    state = ok(wf.apply(f, state, wf.Return("bob", task_of(state, "bob").id, "补充"), CTX)).state
    state = ok(wf.apply(f, state, wf.Withdraw("alice"), CTX)).state
    assert state.status is wf.ApplicationStatus.WITHDRAWN


# --------------------------------------------------------------------------- transfer, add signer


def test_transfer_hands_the_task_to_someone_else() -> None:
    """转办: the new person gets the task at the same node; the old one's is closed."""
    f = flow(approver("head", ["bob"]), approver("dean", ["dan"]))
    state = start(f)
    task = task_of(state, "bob")
    refused(wf.apply(f, state, wf.Transfer("bob", task.id, "bob"), CTX), R.INVALID_SIGNER)
    outcome = ok(wf.apply(f, state, wf.Transfer("bob", task.id, "erin", "出差中"), CTX))
    assert holders(outcome.state) == {"head": ["erin"]}
    assert outcome.closed[0].status is wf.TaskStatus.TRANSFERRED
    state = approve(f, outcome.state, "erin")
    assert holders(state) == {"dean": ["dan"]}


def test_signer_added_before_decides_first_then_the_task_comes_back() -> None:
    """前加签: the signer approves, then the original approver gets the task again."""
    f = flow(approver("office", ["bob", "carol"], "any"), approver("dean", ["dan"]))
    state = start(f)
    task = task_of(state, "bob")
    state = ok(wf.apply(f, state, wf.AddSigner("bob", task.id, "erin", "before"), CTX)).state
    consistent(f, state)
    assert sorted(holders(state)["office"]) == ["carol", "erin"]
    state = approve(f, state, "erin")
    assert sorted(holders(state)["office"]) == ["bob", "carol"]
    state = approve(f, state, "bob")
    assert holders(state) == {"dean": ["dan"]}


def test_signer_added_after_must_also_approve_before_the_node_is_done() -> None:
    """后加签: the approver approves now; the added signer approves before the flow moves on."""
    f = flow(approver("head", ["bob"], "sequential"), approver("dean", ["dan"]))
    state = start(f)
    task = task_of(state, "bob")
    refused(
        wf.apply(f, state, wf.AddSigner("bob", task.id, "bob", "after", "同意"), CTX),
        R.INVALID_SIGNER,
    )
    refused(
        wf.apply(f, state, wf.AddSigner("bob", task.id, "erin", "sideways", "同意"), CTX),
        R.NOT_ALLOWED,
    )
    state = ok(
        wf.apply(f, state, wf.AddSigner("bob", task.id, "erin", "after", "同意，请财务复核"), CTX)
    ).state
    assert holders(state) == {"head": ["erin"]}
    state = approve(f, state, "erin")
    assert holders(state) == {"dean": ["dan"]}


def test_signer_added_after_in_countersign_gets_a_task_at_once() -> None:
    """后加签 in 会签: the signer joins the remaining approvers straight away."""
    f = flow(approver("panel", ["bob", "carol"], "all"))
    state = start(f)
    task = task_of(state, "bob")
    state = ok(wf.apply(f, state, wf.AddSigner("bob", task.id, "erin", "after", "同意"), CTX)).state
    assert sorted(holders(state)["panel"]) == ["carol", "erin"]
    state = approve(f, approve(f, state, "erin"), "carol")
    assert state.status is wf.ApplicationStatus.APPROVED


# --------------------------------------------------------------------------- delegation, empty


def test_delegate_receives_the_task_while_the_approver_is_away() -> None:
    """委托: during the dates the delegate gets the task, on behalf of the approver."""
    f = flow(approver("head", ["bob"]))
    away = {"bob": [wf.Delegation("erin", date(2026, 11, 20), date(2026, 11, 30))]}
    ctx = context(delegations=away)
    state = ok(wf.submit(f, "alice", {}, ctx)).state
    task = task_of(state, "erin")
    assert task.on_behalf_of == "bob"
    outcome = ok(wf.apply(f, state, wf.Approve("erin", task.id, "代为同意"), ctx))
    approved = next(e for e in outcome.events if e.kind is wf.EventKind.APPROVED)
    assert (approved.actor, approved.on_behalf_of) == ("erin", "bob")
    later = context(delegations=away, at=datetime(2026, 12, 1, 8))
    state = ok(wf.submit(f, "alice", {}, later)).state
    assert task_of(state, "bob").on_behalf_of is None


def test_approver_resolving_to_nobody_is_skipped_and_recorded() -> None:
    """A department without a head: the node is skipped, visibly, never stalled."""
    f = flow(
        {"id": "head", "kind": "approver", "approver": {"type": "department_head"}},
        approver("dean", ["dan"]),
    )
    outcome = ok(wf.submit(f, "alice", {}, CTX))
    assert holders(outcome.state) == {"dean": ["dan"]}
    assert any(e.kind is wf.EventKind.NODE_SKIPPED and e.node_id == "head" for e in outcome.events)


def test_approver_resolving_to_nobody_goes_to_the_fallback_approver() -> None:
    """With ``when_empty: fallback`` the flow's fallback approver gets the task."""
    f = flow(
        {"id": "head", "kind": "approver", "approver": {"type": "role", "role": "nobody"}},
        when_empty="fallback",
        fallback=["admin"],
    )
    outcome = ok(wf.submit(f, "alice", {}, CTX))
    assert holders(outcome.state) == {"head": ["admin"]}
    assert any(e.kind is wf.EventKind.FALLBACK_USED for e in outcome.events)


def test_the_applicant_is_never_one_of_their_own_approvers() -> None:
    """A department head applying, a role holder applying, the fallback person applying: each
    is left out of the node (others holding it keep it; nobody left: skipped or fallback)."""
    heads = Directory(heads={"alice": ["alice"]}, roles={"office": ["alice", "olga"]})
    ctx = context(heads)
    f = flow(
        {"id": "head", "kind": "approver", "approver": {"type": "department_head"}},
        {"id": "office", "kind": "approver", "approver": {"type": "role", "role": "office"}},
        approver("dean", ["alice", "dan"], mode="sequential"),
    )
    outcome = ok(wf.submit(f, "alice", {}, ctx))
    assert any(e.kind is wf.EventKind.NODE_SKIPPED and e.node_id == "head" for e in outcome.events)
    assert holders(outcome.state) == {"office": ["olga"]}
    state = consistent(f, approve(f, outcome.state, "olga", ctx=ctx))
    assert holders(state) == {"dean": ["dan"]}
    fallback = flow(
        {"id": "head", "kind": "approver", "approver": {"type": "department_head"}},
        when_empty="fallback",
        fallback=["alice", "admin"],
    )
    assert holders(ok(wf.submit(fallback, "alice", {}, ctx)).state) == {"head": ["admin"]}


def test_same_approver_on_consecutive_nodes_is_approved_automatically() -> None:
    """去重: who approved the previous node is not asked again when the flow says so."""
    f = flow(
        approver("head", ["bob"]),
        approver("office", ["bob", "carol"], "any"),
        auto_skip_same_approver=True,
    )
    state = approve(f, start(f), "bob")
    assert state.status is wf.ApplicationStatus.APPROVED
    assert any(e.kind is wf.EventKind.AUTO_APPROVED and e.actor == "bob" for e in state.history)
    g = flow(approver("head", ["bob"]), approver("office", ["bob", "carol"], "any"))
    assert holders(approve(g, start(g), "bob")) == {"office": ["bob", "carol"]}


def test_a_node_returned_to_decides_again_even_with_de_duplication() -> None:
    """退回 to a node whose approver also approved before it: no 去重, the node asks again."""
    f = flow(
        approver("head", ["bob"]),
        approver("office", ["bob"]),
        approver("dean", ["dan"]),
        auto_skip_same_approver=True,
    )
    state = approve(f, start(f), "bob")
    assert holders(state) == {"dean": ["dan"]}
    task = task_of(state, "dan")
    state = ok(wf.apply(f, state, wf.Return("dan", task.id, "请复核", to="office"), CTX)).state
    assert holders(state) == {"office": ["bob"]}


# --------------------------------------------------------------------------- conditions, cc, urge


LEAVE = parse_flow(DEMOS["student-leave"]["flow"])
LEAVE_CTX = context(
    Directory(
        roles={"dean": ["dean"], "student-affairs": ["xgc"]}, supervisors={"alice": ["counsellor"]}
    )
)


def test_student_leave_over_three_days_adds_the_dean() -> None:
    """学生请假: more than 3 days goes to the dean after the counsellor."""
    state = ok(wf.submit(LEAVE, "alice", {"days": 5}, LEAVE_CTX)).state
    assert holders(state) == {"counsellor": ["counsellor"]}
    state = approve(LEAVE, state, "counsellor", ctx=LEAVE_CTX)
    assert holders(state) == {"dean": ["dean"]}


def test_student_leave_of_three_days_or_less_skips_the_dean_and_copies_student_affairs() -> None:
    """学生请假 of 3 days: approved by the counsellor alone; 学生工作处 gets a copy (抄送)."""
    state = ok(wf.submit(LEAVE, "alice", {"days": 3}, LEAVE_CTX)).state
    outcome = ok(
        wf.apply(
            LEAVE,
            state,
            wf.Approve("counsellor", task_of(state, "counsellor").id, "同意"),
            LEAVE_CTX,
        )
    )
    assert outcome.state.status is wf.ApplicationStatus.APPROVED
    assert wf.Notification(wf.EventKind.CC, "xgc", "cc-student-affairs") in outcome.notifications


def test_urge_reminds_the_current_approvers() -> None:
    """催办: only the applicant may urge; each open task's assignee is reminded."""
    f = flow(approver("panel", ["bob", "carol"]))
    state = start(f)
    refused(wf.apply(f, state, wf.Urge("bob"), CTX), R.NOT_ALLOWED)
    outcome = ok(wf.apply(f, state, wf.Urge("alice"), CTX))
    assert {n.recipient for n in outcome.notifications} == {"bob", "carol"}
    assert outcome.state.tasks == state.tasks


def test_applicant_chosen_approver_must_be_chosen_and_gets_the_task() -> None:
    """自选审批人: submitting without a choice is refused; the chosen person gets the task."""
    f = flow(
        {
            "id": "pick",
            "kind": "approver",
            "name": "自选审批人",
            "approver": {"type": "applicant_choice"},
        }
    )
    refusal = refused(wf.submit(f, "alice", {}, CTX), R.CHOICE_REQUIRED)
    assert refusal.params == {"name": "自选审批人"}
    state = start(f, chosen={"pick": ["zoe"]})
    assert holders(state) == {"pick": ["zoe"]}


def test_person_field_of_the_form_names_the_approver() -> None:
    """An approver taken from a person field of the form (e.g. 导师)."""
    f = flow(
        {"id": "tutor", "kind": "approver", "approver": {"type": "form_field", "field": "tutor"}}
    )
    assert holders(start(f, {"tutor": "prof-li"})) == {"tutor": ["prof-li"]}


def test_batch_approve_approves_each_application_on_its_own() -> None:
    """批量通过: each application is approved separately; a refused one does not stop others."""
    f = flow(approver("head", ["bob"]))
    states = {1: start(f), 2: start(f)}
    results = wf.approve_many({1: f, 2: f}, states, {1: 1, 2: 99}, "bob", "同意", CTX)
    assert (
        isinstance(results[1], wf.Outcome)
        and results[1].state.status is wf.ApplicationStatus.APPROVED
    )
    assert isinstance(results[2], wf.Refusal)


def test_state_survives_a_round_trip_through_json() -> None:
    """The state stored with an application reads back unchanged."""
    import json

    state = approve(
        ONBOARDING, onboarding_in_parallel(), "organisation-officer", ctx=ONBOARDING_CTX
    )
    again = wf.state_from_json(json.loads(json.dumps(wf.state_to_json(state))))
    assert again == state


def test_refusal_leaves_the_state_untouched() -> None:
    """A refused action returns no new state: the caller keeps the old one."""
    f = flow(approver("head", ["bob"]))
    state = start(f)
    before = wf.state_to_json(state)
    wf.apply(f, state, wf.Approve("bob", task_of(state, "bob").id, ""), CTX)
    assert wf.state_to_json(state) == before
