"""The approval engine: flow + application state + action in, new state + task changes out.

Pure: no database, no clock, no request. Who holds a role or heads a department comes from the
``ApproverResolver`` the caller passes in; today's date and delegations (委托) come in the
``Context``. Every action returns either an ``Outcome`` (the new state and what changed:
tasks created and closed, notifications, events) or a ``Refusal`` naming why nothing changed.
The state types live in ``hall.workflow.state``, the tree walk in ``hall.workflow.walker``;
both are re-exported here, so callers need only this module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from itertools import pairwise
from typing import Any

from hall.workflow.definitions import N_, Flow
from hall.workflow.state import (
    FINISHED,
    Action,
    ActiveNode,
    AddSigner,
    ApplicationState,
    ApplicationStatus,
    Approve,
    ApproverResolver,
    ClosedTask,
    Context,
    Delegation,
    Event,
    EventKind,
    Join,
    Notification,
    Outcome,
    Refusal,
    RefusalCode,
    Resubmit,
    Return,
    Task,
    TaskStatus,
    Terminate,
    Transfer,
    Urge,
    Withdraw,
    state_from_json,
    state_to_json,
)
from hall.workflow.walker import Run as _Run

__all__ = [
    "APPLICANT",
    "FINISHED",
    "Action",
    "ActiveNode",
    "AddSigner",
    "ApplicationState",
    "ApplicationStatus",
    "Approve",
    "ApproverResolver",
    "ClosedTask",
    "Context",
    "Delegation",
    "Event",
    "EventKind",
    "Join",
    "Notification",
    "Outcome",
    "Refusal",
    "RefusalCode",
    "Resubmit",
    "Return",
    "Task",
    "TaskStatus",
    "Terminate",
    "Transfer",
    "Urge",
    "Withdraw",
    "apply",
    "approve_many",
    "inconsistencies",
    "return_targets",
    "state_from_json",
    "state_to_json",
    "submit",
]

APPLICANT = "applicant"

MSG_NOT_YOUR_TURN = N_("这不是您的待办，无法处理")
MSG_ALREADY_HANDLED = N_("该待办已处理，无需重复操作")
MSG_OPINION_REQUIRED = N_("请填写审批意见")
MSG_FINISHED = N_("该申请已结束，不能再操作")
MSG_ONLY_APPLICANT = N_("只有申请人可以执行此操作")
MSG_NOT_RETURNED = N_("只有被退回的申请可以重新提交")
MSG_ALREADY_ACTED = N_("已有审批人处理，不能撤回")
MSG_INVALID_TARGET = N_("只能退回到申请人或本节点之前已审批的节点")
MSG_INVALID_SIGNER = N_("不能转给或加签给自己或已在本节点待办的人")
MSG_INVALID_POSITION = N_("加签位置只能是之前或之后")
MSG_NOTHING_PENDING = N_("当前没有待处理的审批")
MSG_CHOICE_REQUIRED = N_("请为“%(name)s”选择审批人")
MSG_APPLICANT_SIGNER = N_("不能转办或加签给申请人本人")
MSG_CHOICE_SELF = N_("不能选择申请人本人作为“%(name)s”的审批人")


# --------------------------------------------------------------------------- entry points


def submit(
    flow: Flow,
    applicant: str,
    data: Mapping[str, Any],
    ctx: Context,
    chosen: Mapping[str, Sequence[str]] | None = None,
) -> Outcome | Refusal:
    """Start an application: run the flow from its start node."""
    chosen_t = _normalise_chosen(chosen or {})
    refusal = _check_choices(flow, chosen_t, applicant)
    if refusal:
        return refusal
    state = ApplicationState(
        applicant=applicant, data=dict(data), status=ApplicationStatus.RUNNING, chosen=chosen_t
    )
    run = _Run(flow, state, ctx)
    run.event(EventKind.SUBMITTED, actor=applicant, node_id=flow.nodes[0].id)
    run.run_from(None, None, 0)
    return run.outcome()


def apply(flow: Flow, state: ApplicationState, action: Action, ctx: Context) -> Outcome | Refusal:
    """Apply one action to an application; nothing changes when it is refused."""
    if isinstance(action, Resubmit):
        return _resubmit(flow, state, action, ctx)
    if state.status in FINISHED:
        return Refusal(RefusalCode.FINISHED, MSG_FINISHED)
    if isinstance(action, Withdraw):
        return _withdraw(flow, state, action, ctx)
    if isinstance(action, Urge):
        return _urge(flow, state, action, ctx)
    found = _find_task(state, action.task_id, action.actor)
    if isinstance(found, Refusal):
        return found
    task = found
    if isinstance(action, Approve):
        if not action.opinion.strip():
            return Refusal(RefusalCode.OPINION_REQUIRED, MSG_OPINION_REQUIRED)
        run = _Run(flow, state, ctx)
        run.approve(task, action.actor, action.opinion.strip(), None)
        return run.outcome()
    if isinstance(action, Return):
        return _return(flow, state, task, action, ctx)
    if isinstance(action, Terminate):
        if not action.opinion.strip():
            return Refusal(RefusalCode.OPINION_REQUIRED, MSG_OPINION_REQUIRED)
        run = _Run(flow, state, ctx)
        run.close(task, TaskStatus.TERMINATED, action.opinion.strip())
        run.event(
            EventKind.TERMINATED,
            actor=action.actor,
            node_id=task.node_id,
            opinion=action.opinion.strip(),
            on_behalf_of=task.on_behalf_of,
        )
        run.stop(ApplicationStatus.TERMINATED)
        run.notify(EventKind.TERMINATED, state.applicant, task.node_id)
        return run.outcome()
    if isinstance(action, Transfer):
        return _transfer(flow, state, task, action, ctx)
    return _add_signer(flow, state, task, action, ctx)


def approve_many(
    flow_for: Mapping[int, Flow],
    states: Mapping[int, ApplicationState],
    tasks: Mapping[int, int],
    actor: str,
    opinion: str,
    ctx: Context,
) -> dict[int, Outcome | Refusal]:
    """批量通过: approve one task in each of several applications (keyed by application)."""
    return {
        app_id: apply(flow_for[app_id], states[app_id], Approve(actor, task_id, opinion), ctx)
        for app_id, task_id in tasks.items()
    }


# --------------------------------------------------------------------------- action helpers


def _normalise_chosen(chosen: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
    return {k: tuple(dict.fromkeys(u for u in v if u)) for k, v in chosen.items()}


def _check_choices(
    flow: Flow, chosen: Mapping[str, tuple[str, ...]], applicant: str
) -> Refusal | None:
    for node in flow.approver_nodes():
        spec = node.approver
        if spec is None or spec.type != "applicant_choice":
            continue
        name = {"name": node.name or node.id}
        if not chosen.get(node.id):
            return Refusal(RefusalCode.CHOICE_REQUIRED, MSG_CHOICE_REQUIRED, name)
        if applicant in chosen[node.id]:
            # Nobody approves their own application.
            return Refusal(RefusalCode.CHOICE_REQUIRED, MSG_CHOICE_SELF, name)
    return None


def _find_task(state: ApplicationState, task_id: int, actor: str) -> Task | Refusal:
    for task in state.tasks:
        if task.id == task_id:
            if task.assignee != actor:
                return Refusal(RefusalCode.NOT_YOUR_TURN, MSG_NOT_YOUR_TURN)
            return task
    if 0 < task_id < state.next_task_id:
        return Refusal(RefusalCode.ALREADY_HANDLED, MSG_ALREADY_HANDLED)
    return Refusal(RefusalCode.NOT_YOUR_TURN, MSG_NOT_YOUR_TURN)


def _resubmit(
    flow: Flow, state: ApplicationState, action: Resubmit, ctx: Context
) -> Outcome | Refusal:
    if action.actor != state.applicant:
        return Refusal(RefusalCode.NOT_ALLOWED, MSG_ONLY_APPLICANT)
    if state.status != ApplicationStatus.RETURNED:
        return Refusal(RefusalCode.NOT_ALLOWED, MSG_NOT_RETURNED)
    chosen = {**state.chosen, **_normalise_chosen(action.chosen)}
    refusal = _check_choices(flow, chosen, state.applicant)
    if refusal:
        return refusal
    fresh = replace(
        state,
        data=dict(action.data),
        chosen=chosen,
        status=ApplicationStatus.RUNNING,
        completed=(),
        last_approvers=(),
        acted=False,
    )
    run = _Run(flow, fresh, ctx)
    run.event(EventKind.RESUBMITTED, actor=action.actor, node_id=flow.nodes[0].id)
    run.run_from(None, None, 0)
    return run.outcome()


def _withdraw(
    flow: Flow, state: ApplicationState, action: Withdraw, ctx: Context
) -> Outcome | Refusal:
    if action.actor != state.applicant:
        return Refusal(RefusalCode.NOT_ALLOWED, MSG_ONLY_APPLICANT)
    if state.acted and state.status == ApplicationStatus.RUNNING:
        return Refusal(RefusalCode.ALREADY_ACTED, MSG_ALREADY_ACTED)
    run = _Run(flow, state, ctx)
    run.event(EventKind.WITHDRAWN, actor=action.actor, opinion=action.opinion.strip())
    run.stop(ApplicationStatus.WITHDRAWN)
    return run.outcome()


def _urge(flow: Flow, state: ApplicationState, action: Urge, ctx: Context) -> Outcome | Refusal:
    if action.actor != state.applicant:
        return Refusal(RefusalCode.NOT_ALLOWED, MSG_ONLY_APPLICANT)
    if state.status != ApplicationStatus.RUNNING:
        return Refusal(RefusalCode.NOT_ALLOWED, MSG_NOTHING_PENDING)
    run = _Run(flow, state, ctx)
    run.event(EventKind.URGED, actor=action.actor)
    for task in state.tasks:
        run.notify(EventKind.URGED, task.assignee, task.node_id)
    return run.outcome()


def _return(
    flow: Flow, state: ApplicationState, task: Task, action: Return, ctx: Context
) -> Outcome | Refusal:
    opinion = action.opinion.strip()
    if not opinion:
        return Refusal(RefusalCode.OPINION_REQUIRED, MSG_OPINION_REQUIRED)
    if action.to == APPLICANT:
        run = _Run(flow, state, ctx)
        run.close(task, TaskStatus.RETURNED, opinion)
        run.event(
            EventKind.RETURNED,
            actor=action.actor,
            node_id=task.node_id,
            opinion=opinion,
            target=APPLICANT,
            on_behalf_of=task.on_behalf_of,
        )
        run.stop(ApplicationStatus.RETURNED)
        run.notify(EventKind.RETURNED, state.applicant, task.node_id)
        return run.outcome()
    if action.to not in return_targets(flow, state, task.node_id):
        return Refusal(RefusalCode.INVALID_TARGET, MSG_INVALID_TARGET)
    run = _Run(flow, state, ctx)
    run.close(task, TaskStatus.RETURNED, opinion)
    run.event(
        EventKind.RETURNED,
        actor=action.actor,
        node_id=task.node_id,
        opinion=opinion,
        target=action.to,
        on_behalf_of=task.on_behalf_of,
    )
    run.rewind(task.node_id, action.to)
    return run.outcome()


def _transfer(
    flow: Flow, state: ApplicationState, task: Task, action: Transfer, ctx: Context
) -> Outcome | Refusal:
    # Who waits for this task to come back (前加签) is busy here too.
    busy = {t.assignee for t in state.tasks if t.node_id == task.node_id} | set(task.then)
    if not action.to or action.to == action.actor or action.to in busy:
        return Refusal(RefusalCode.INVALID_SIGNER, MSG_INVALID_SIGNER)
    if action.to == state.applicant:
        return Refusal(RefusalCode.INVALID_SIGNER, MSG_APPLICANT_SIGNER)
    run = _Run(flow, state, ctx)
    run.close(task, TaskStatus.TRANSFERRED, action.opinion.strip())
    run.event(
        EventKind.TRANSFERRED,
        actor=action.actor,
        node_id=task.node_id,
        opinion=action.opinion.strip(),
        target=action.to,
        on_behalf_of=task.on_behalf_of,
    )
    run.create_task(task.node_id, action.to, then=task.then)
    run.acted = True
    return run.outcome()


def _add_signer(
    flow: Flow, state: ApplicationState, task: Task, action: AddSigner, ctx: Context
) -> Outcome | Refusal:
    if action.position not in ("before", "after"):
        return Refusal(RefusalCode.NOT_ALLOWED, MSG_INVALID_POSITION)
    busy = {t.assignee for t in state.tasks if t.node_id == task.node_id}
    busy |= {t.on_behalf_of for t in state.tasks if t.node_id == task.node_id and t.on_behalf_of}
    busy |= set(task.then)  # waiting for the task to come back: asking them again loops
    if not action.who or action.who in busy or action.who in (action.actor, task.on_behalf_of):
        return Refusal(RefusalCode.INVALID_SIGNER, MSG_INVALID_SIGNER)
    if action.who == state.applicant:
        return Refusal(RefusalCode.INVALID_SIGNER, MSG_APPLICANT_SIGNER)
    opinion = action.opinion.strip()
    run = _Run(flow, state, ctx)
    if action.position == "after":
        if not opinion:
            return Refusal(RefusalCode.OPINION_REQUIRED, MSG_OPINION_REQUIRED)
        run.approve(task, action.actor, opinion, action.who)
        return run.outcome()
    run.close(task, TaskStatus.SIGNER_ADDED, opinion)
    run.event(
        EventKind.SIGNER_ADDED,
        actor=action.actor,
        node_id=task.node_id,
        opinion=opinion,
        target=action.who,
        on_behalf_of=task.on_behalf_of,
    )
    # The task comes back to this approver, then to whoever asked them first.
    run.create_task(task.node_id, action.who, then=(task.on_behalf_of or task.assignee, *task.then))
    run.acted = True
    return run.outcome()


# --------------------------------------------------------------------------- queries


def return_targets(flow: Flow, state: ApplicationState, node_id: str) -> list[str]:
    """Approver nodes a task at ``node_id`` may be returned to: approved earlier on its path."""
    here = flow.path(node_id)
    return [n for n in state.completed if n != node_id and _precedes(flow.path(n), here)]


def _precedes(
    there: tuple[tuple[str | None, str | None, int], ...],
    here: tuple[tuple[str | None, str | None, int], ...],
) -> bool:
    """Whether the node at ``there`` runs before the node at ``here`` on every path to it."""
    for a, b in zip(there, here, strict=False):
        if a == b:
            continue
        same_sequence = a[:2] == b[:2]
        return same_sequence and a[2] < b[2]
    return False


def inconsistencies(flow: Flow, state: ApplicationState) -> list[str]:
    """Broken invariants of a state (empty when consistent); used by tests and assertions."""
    problems: list[str] = []
    active_ids = [a.node_id for a in state.active]
    if len(set(active_ids)) != len(active_ids):
        problems.append("a node is active twice")
    if state.status != ApplicationStatus.RUNNING:
        if state.tasks or state.active or state.joins:
            problems.append(f"{state.status} but tasks/active/joins remain")
    else:
        if not state.active:
            problems.append("running without an active node")
    for task in state.tasks:
        if task.node_id not in active_ids:
            problems.append(f"task {task.id} at inactive node {task.node_id}")
    for node_id in active_ids:
        if flow.node(node_id).kind != "approver":
            problems.append(f"active node {node_id} is not an approver node")
        if not any(t.node_id == node_id for t in state.tasks):
            problems.append(f"active node {node_id} has no open task")
    for join in state.joins:
        node = flow.node(join.node_id)
        pending = [b.id for b in node.branches if b.id not in join.done]
        if not pending:
            problems.append(f"join {join.node_id} complete but still open")
        for branch in pending:
            if not any(
                (join.node_id, branch) in [(s[0], s[1]) for s in flow.path(a)] for a in active_ids
            ):
                problems.append(f"branch {branch} of {join.node_id} waits with nothing active")
    ids = [t.id for t in state.tasks]
    if len(set(ids)) != len(ids) or any(i >= state.next_task_id for i in ids):
        problems.append("task ids not unique or beyond the counter")
    seqs = [e.seq for e in state.history]
    if any(b <= a for a, b in pairwise(seqs)):
        problems.append("history not strictly increasing")
    return problems
