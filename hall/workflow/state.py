"""What the engine works on: application state, tasks, events, actions and results.

All frozen dataclasses; ``state_to_json`` / ``state_from_json`` store a state on its
application row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Protocol


class ApplicationStatus(StrEnum):
    """Where an application stands."""

    RUNNING = "running"  # 进行中
    APPROVED = "approved"  # 已办结（通过）
    RETURNED = "returned"  # 退回给申请人
    TERMINATED = "terminated"  # 已中止
    WITHDRAWN = "withdrawn"  # 已撤回


FINISHED = frozenset(
    {ApplicationStatus.APPROVED, ApplicationStatus.TERMINATED, ApplicationStatus.WITHDRAWN}
)


class TaskStatus(StrEnum):
    """How a task was closed (open tasks live in ``ApplicationState.tasks``)."""

    APPROVED = "approved"
    RETURNED = "returned"
    TERMINATED = "terminated"
    TRANSFERRED = "transferred"
    SIGNER_ADDED = "signer_added"  # handed to a signer added before (前加签), comes back later
    CANCELLED = "cancelled"  # someone else decided: 或签 by another, return, terminate, withdraw


class EventKind(StrEnum):
    """What happened to an application (its history, 流程记录)."""

    SUBMITTED = "submitted"
    RESUBMITTED = "resubmitted"
    NODE_ENTERED = "node_entered"
    NODE_SKIPPED = "node_skipped"  # nobody to approve, fallback ``skip``
    FALLBACK_USED = "fallback_used"  # nobody to approve, routed to the fallback approvers
    AUTO_APPROVED = "auto_approved"  # same approver as the previous node (去重)
    BRANCH_CHOSEN = "branch_chosen"
    APPROVED = "approved"
    RETURNED = "returned"
    TERMINATED = "terminated"
    TRANSFERRED = "transferred"
    SIGNER_ADDED = "signer_added"
    WITHDRAWN = "withdrawn"
    URGED = "urged"
    CC = "cc"
    FINISHED = "finished"


class RefusalCode(StrEnum):
    """Why an action was refused."""

    NOT_YOUR_TURN = "not_your_turn"
    ALREADY_HANDLED = "already_handled"
    OPINION_REQUIRED = "opinion_required"
    NOT_ALLOWED = "not_allowed"
    FINISHED = "finished"
    INVALID_TARGET = "invalid_target"
    INVALID_SIGNER = "invalid_signer"
    ALREADY_ACTED = "already_acted"
    CHOICE_REQUIRED = "choice_required"


@dataclass(frozen=True)
class Refusal:
    """An action that changed nothing, with a message (msgid) the user can act on."""

    code: RefusalCode
    message: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Task:
    """An open task (待办) of one person at one node."""

    id: int
    node_id: str
    assignee: str
    #: The person the assignee acts for (委托), or None.
    on_behalf_of: str | None = None
    #: Set on a task of a signer added before (前加签): who get the task back afterwards, the
    #: next first (a signer who adds another before passes the whole chain on).
    then: tuple[str, ...] = ()


@dataclass(frozen=True)
class ClosedTask:
    """A task that was closed by an action, and how."""

    task: Task
    status: TaskStatus
    opinion: str = ""


@dataclass(frozen=True)
class ActiveNode:
    """An approver node waiting for its tasks."""

    node_id: str
    #: People still to get a task, in order (依次审批, signers added after).
    queue: tuple[str, ...] = ()
    #: Who approved at this node in this round (for 去重 on the next node).
    approved_by: tuple[str, ...] = ()


@dataclass(frozen=True)
class Join:
    """A running parallel node and the branches that have finished."""

    node_id: str
    done: tuple[str, ...] = ()


@dataclass(frozen=True)
class Event:
    """One entry of the history; ``seq`` grows strictly."""

    seq: int
    kind: EventKind
    at: datetime
    actor: str | None = None
    node_id: str | None = None
    opinion: str = ""
    #: The other party: a node id returned to, the person transferred to or added as signer.
    target: str | None = None
    on_behalf_of: str | None = None


@dataclass(frozen=True)
class Notification:
    """Someone to tell (抄送, 催办, 退回, 办结); delivering it is the caller's business."""

    kind: EventKind
    recipient: str
    node_id: str | None = None


@dataclass(frozen=True)
class ApplicationState:
    """Everything the engine knows about one application."""

    applicant: str
    data: Mapping[str, Any]
    status: ApplicationStatus
    #: Approvers chosen by the applicant, per node (自选审批人).
    chosen: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    active: tuple[ActiveNode, ...] = ()
    joins: tuple[Join, ...] = ()
    tasks: tuple[Task, ...] = ()
    #: Approver nodes approved in this round, in order: the nodes one may return to.
    completed: tuple[str, ...] = ()
    last_approvers: tuple[str, ...] = ()
    #: Whether any approver acted since the last submission (then 撤回 is no longer allowed).
    acted: bool = False
    next_task_id: int = 1
    history: tuple[Event, ...] = ()


@dataclass(frozen=True)
class Outcome:
    """The result of an accepted action."""

    state: ApplicationState
    created: tuple[Task, ...] = ()
    closed: tuple[ClosedTask, ...] = ()
    notifications: tuple[Notification, ...] = ()
    events: tuple[Event, ...] = ()


class ApproverResolver(Protocol):
    """Directory lookups the engine needs; each returns user ids (empty when nobody)."""

    def users_with_role(self, role: str, applicant: str) -> list[str]:
        """Everyone holding a role (possibly scoped to the applicant's department)."""

    def department_head(self, applicant: str) -> list[str]:
        """The head(s) of the applicant's department."""

    def supervisor(self, applicant: str, level: int) -> list[str]:
        """The applicant's supervisor ``level`` steps up."""

    def present(self, users: Sequence[str]) -> list[str]:
        """Those of ``users`` (named in the flow or the form) who have not left, in order."""


@dataclass(frozen=True)
class Delegation:
    """While away from ``start`` to ``end`` (inclusive), tasks go to ``delegate`` (委托)."""

    delegate: str
    start: date
    end: date


@dataclass(frozen=True)
class Context:
    """What the engine may know about the world besides the flow and the state."""

    resolver: ApproverResolver
    at: datetime
    delegations: Mapping[str, Sequence[Delegation]] = field(default_factory=dict)
    #: The date delegations are judged by (the campus date); ``at``'s own date when not given.
    today: date | None = None

    def delegate_for(self, user: str) -> str | None:
        """The delegate standing in for ``user`` today, or None (one hop, never oneself)."""
        today = self.today or self.at.date()
        for d in self.delegations.get(user, ()):
            if d.start <= today <= d.end and d.delegate != user:
                return d.delegate
        return None


# --------------------------------------------------------------------------- actions


@dataclass(frozen=True)
class Approve:
    """通过: approve an open task with an opinion."""

    actor: str
    task_id: int
    opinion: str


@dataclass(frozen=True)
class Return:
    """退回: to the applicant (``to="applicant"``) or to an earlier approver node."""

    actor: str
    task_id: int
    opinion: str
    to: str = "applicant"


@dataclass(frozen=True)
class Terminate:
    """中止: end the application for good."""

    actor: str
    task_id: int
    opinion: str


@dataclass(frozen=True)
class Transfer:
    """转办: hand one's task to someone else."""

    actor: str
    task_id: int
    to: str
    opinion: str = ""


@dataclass(frozen=True)
class AddSigner:
    """加签: ``before`` — the signer decides first, then the task comes back; ``after`` —
    approve now and the signer must approve too before the node is done."""

    actor: str
    task_id: int
    who: str
    position: str
    opinion: str = ""


@dataclass(frozen=True)
class Withdraw:
    """撤回: the applicant takes the application back while no approver has acted."""

    actor: str
    opinion: str = ""


@dataclass(frozen=True)
class Urge:
    """催办: the applicant reminds the current approvers."""

    actor: str


@dataclass(frozen=True)
class Resubmit:
    """The applicant submits a returned application again, possibly with new data."""

    actor: str
    data: Mapping[str, Any]
    chosen: Mapping[str, Sequence[str]] = field(default_factory=dict)


Action = Approve | Return | Terminate | Transfer | AddSigner | Withdraw | Urge | Resubmit


# --------------------------------------------------------------------------- JSON


def state_to_json(state: ApplicationState) -> dict[str, Any]:
    """A JSON-serialisable dict of a state (for the application row)."""
    return {
        "applicant": state.applicant,
        "data": dict(state.data),
        "status": state.status.value,
        "chosen": {k: list(v) for k, v in state.chosen.items()},
        "active": [
            {"node_id": a.node_id, "queue": list(a.queue), "approved_by": list(a.approved_by)}
            for a in state.active
        ],
        "joins": [{"node_id": j.node_id, "done": list(j.done)} for j in state.joins],
        "tasks": [
            {
                "id": t.id,
                "node_id": t.node_id,
                "assignee": t.assignee,
                "on_behalf_of": t.on_behalf_of,
                "then": list(t.then),
            }
            for t in state.tasks
        ],
        "completed": list(state.completed),
        "last_approvers": list(state.last_approvers),
        "acted": state.acted,
        "next_task_id": state.next_task_id,
        "history": [
            {
                "seq": e.seq,
                "kind": e.kind.value,
                "at": e.at.isoformat(),
                "actor": e.actor,
                "node_id": e.node_id,
                "opinion": e.opinion,
                "target": e.target,
                "on_behalf_of": e.on_behalf_of,
            }
            for e in state.history
        ],
    }


def state_from_json(raw: Mapping[str, Any]) -> ApplicationState:
    """The state stored by ``state_to_json``."""
    return ApplicationState(
        applicant=raw["applicant"],
        data=dict(raw["data"]),
        status=ApplicationStatus(raw["status"]),
        chosen={k: tuple(v) for k, v in raw["chosen"].items()},
        active=tuple(
            ActiveNode(a["node_id"], tuple(a["queue"]), tuple(a["approved_by"]))
            for a in raw["active"]
        ),
        joins=tuple(Join(j["node_id"], tuple(j["done"])) for j in raw["joins"]),
        tasks=tuple(
            Task(t["id"], t["node_id"], t["assignee"], t["on_behalf_of"], _chain(t["then"]))
            for t in raw["tasks"]
        ),
        completed=tuple(raw["completed"]),
        last_approvers=tuple(raw["last_approvers"]),
        acted=raw["acted"],
        next_task_id=raw["next_task_id"],
        history=tuple(
            Event(
                seq=e["seq"],
                kind=EventKind(e["kind"]),
                at=datetime.fromisoformat(e["at"]),
                actor=e["actor"],
                node_id=e["node_id"],
                opinion=e["opinion"],
                target=e["target"],
                on_behalf_of=e["on_behalf_of"],
            )
            for e in raw["history"]
        ),
    )


def _chain(raw: Any) -> tuple[str, ...]:
    """A task's ``then`` as stored: a list, or (states written before chains) one id or None."""
    if raw is None:
        return ()
    if isinstance(raw, str):
        return (raw,)
    return tuple(raw)
