"""The to-do centre's rules: who may see an application, CC read marks, 催办's rate limit,
batch approval and who handled a task first. Every action itself goes through
``hall.workflow.operations.act`` (one locked transaction)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import or_, select, update

from hall.auth.models import HallUser, utcnow
from hall.catalog.roles import is_hall_admin
from hall.extensions import db
from hall.inbox.queries import ACTED_STATUSES, may_see, names_of, reader_view
from hall.workflow import engine
from hall.workflow import operations as ops
from hall.workflow.definitions import N_, Flow, parse_flow
from hall.workflow.models import Application, CarbonCopy, Task
from shared.factory import get_store

#: 催办: one reminder per application per hour (the approvers are people, not a queue).
URGE_WINDOW = 3600
URGE_PREFIX = "hall:urge:"
#: At most this many tasks in one 批量通过.
MAX_BATCH = 50
#: People offered by one search of 转办 / 加签.
MAX_PEOPLE = 20


def visible_application(user: HallUser, application_id: int) -> Application | None:
    """The application if ``user`` may open it (applicant, task, CC, hall admin), else None."""
    application = db.session.get(Application, application_id)
    if application is None:
        return None
    if not may_see(application, user.account, admin=is_hall_admin(user)):
        return None
    return application


def mark_cc_read(application_id: int, account: str, now: datetime | None = None) -> int:
    """Opening a CC'd application marks its CCs to ``account`` read; returns how many."""
    result = db.session.execute(
        update(CarbonCopy)
        .where(
            CarbonCopy.application_id == application_id,
            CarbonCopy.recipient == account,
            CarbonCopy.read_at.is_(None),
        )
        .values(read_at=now or utcnow())
    )
    db.session.commit()
    return int(getattr(result, "rowcount", 0) or 0)


_N_URGED = N_("已催办过，请%(minutes)s分钟后再试")
_N_HANDLED_BY = N_("已由%(name)s处理")


def urge(application: Application, user: HallUser) -> engine.Outcome | engine.Refusal:
    """催办: remind the current approvers, at most once an hour per application."""
    store = get_store()
    key = f"{URGE_PREFIX}{application.id}"
    if not store.add(key, user.account, URGE_WINDOW):
        return engine.Refusal(
            engine.RefusalCode.NOT_ALLOWED, _N_URGED, {"minutes": URGE_WINDOW // 60}
        )
    result = ops.act(application.id, engine.Urge(user.account))
    if isinstance(result, engine.Refusal):
        store.delete(key)  # nothing was sent: a later reminder must still be possible
    return result


def handled_by(application_id: int, engine_id: int, account: str) -> engine.Refusal | None:
    """When someone's task was closed by another's decision: "已由 … 处理" naming them."""
    mine = db.session.scalars(
        select(Task).where(Task.application_id == application_id, Task.engine_id == engine_id)
    ).first()
    if mine is None or mine.assignee != account:
        return None
    other = db.session.scalars(
        select(Task)
        .where(
            Task.application_id == application_id,
            Task.node_id == mine.node_id,
            Task.status.in_(ACTED_STATUSES),
            Task.acted_at.is_not(None),
        )
        .order_by(Task.acted_at.desc(), Task.id.desc())
    ).first()
    if other is None:
        return None  # withdrawn or returned elsewhere: the engine's own message says it
    name = names_of([other.assignee])[other.assignee]
    return engine.Refusal(engine.RefusalCode.ALREADY_HANDLED, _N_HANDLED_BY, {"name": name})


@dataclass(frozen=True)
class BatchResult:
    """What 批量通过 did: how many were approved and the refusals by application title."""

    approved: int
    refused: list[tuple[str, engine.Refusal]]


def approve_many(user: HallUser, task_ids: Iterable[int], opinion: str) -> BatchResult:
    """批量通过: approve each chosen open task of ``user``, each in its own transaction."""
    wanted = sorted(set(task_ids))[:MAX_BATCH]
    rows = db.session.scalars(
        select(Task).where(Task.id.in_(wanted), Task.assignee == user.account)
    ).all()
    approved = 0
    refused: list[tuple[str, engine.Refusal]] = []
    for row in rows:
        app_id, engine_id, title = row.application_id, row.engine_id, row.application.title
        result = ops.act(app_id, engine.Approve(user.account, engine_id, opinion))
        if isinstance(result, engine.Outcome):
            approved += 1
            continue
        if result.code in (engine.RefusalCode.ALREADY_HANDLED, engine.RefusalCode.FINISHED):
            result = handled_by(app_id, engine_id, user.account) or result
        refused.append((title, result))
    return BatchResult(approved, refused)


def find_people(text: str, exclude: str) -> list[HallUser]:
    """People for 转办 / 加签 / 委托 by 学工号 (prefix) or name (part); active ones only."""
    text = text.strip()[:64]
    if not text:
        return []
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return list(
        db.session.scalars(
            select(HallUser)
            .where(
                HallUser.active.is_(True),
                HallUser.account != exclude,
                or_(
                    HallUser.account.like(f"{escaped}%", escape="\\"),
                    HallUser.name.like(f"%{escaped}%", escape="\\"),
                ),
            )
            .order_by(HallUser.account)
            .limit(MAX_PEOPLE)
        )
    )


def known_person(account: str) -> bool:
    """Whether ``account`` is someone the hall knows (an active user)."""
    return (
        db.session.scalar(
            select(HallUser.id).where(HallUser.account == account, HallUser.active.is_(True))
        )
        is not None
    )


@dataclass(frozen=True)
class Viewing:
    """How one person sees an application: their open task and the field permissions."""

    flow: Flow
    state: engine.ApplicationState
    task: engine.Task | None
    permissions: dict[str, str]
    return_targets: list[tuple[str, str]]


def viewing(application: Application, account: str) -> Viewing:
    """The viewer's open task (if any), their field permissions (:func:`queries.reader_view`)
    and where they may return to."""
    flow = parse_flow(application.flow_snapshot)
    state = engine.state_from_json(application.state)
    task, permissions = reader_view(application, account, flow, state)
    targets: list[tuple[str, str]] = []
    if task is not None:
        targets = [(engine.APPLICANT, _("申请人"))] + [
            (n, flow.node(n).name or n) for n in engine.return_targets(flow, state, task.node_id)
        ]
    return Viewing(flow, state, task, permissions, targets)


def holders_by_node(state: engine.ApplicationState) -> dict[str, list[str]]:
    """Who holds an open task at each active node."""
    result: dict[str, list[str]] = {}
    for task in state.tasks:
        result.setdefault(task.node_id, []).append(task.assignee)
    return result


def subtitles(state: engine.ApplicationState) -> dict[str, str]:
    """The diagram's second line: the names of those who hold the task now."""
    holders = holders_by_node(state)
    names = names_of(a for people in holders.values() for a in people)
    return {node: "、".join(names[a] for a in people) for node, people in holders.items()}


def event_rows(application: Application) -> list[dict[str, Any]]:
    """The history (流程记录) with names: who, what, at which node, opinion, when."""
    flow = parse_flow(application.flow_snapshot)
    events = ops.history(application.id)
    people = names_of(
        [e.actor for e in events if e.actor]
        + [e.on_behalf_of for e in events if e.on_behalf_of]
        + [e.target for e in events if e.target and e.kind in ("transferred", "signer_added")]
    )
    rows = []
    for e in events:
        node = flow.by_id.get(e.node_id or "")
        target = e.target or ""
        if e.kind in ("transferred", "signer_added"):
            target = people.get(target, target)
        elif e.kind == "returned":
            target = (
                _("申请人")
                if target == engine.APPLICANT
                else (flow.by_id[target].name if target in flow.by_id else target)
            )
        elif e.kind == "branch_chosen" and node is not None:
            branch = next((b for b in node.branches if b.id == target), None)
            target = branch.name if branch is not None else target
        elif e.kind == "cc":
            target = "、".join(names_of(target.split(",")).values()) if target else ""
        rows.append(
            {
                "kind": e.kind,
                "actor": people.get(e.actor, e.actor) if e.actor else "",
                "on_behalf_of": people.get(e.on_behalf_of, "") if e.on_behalf_of else "",
                "node": (node.name or node.id) if node is not None else "",
                "opinion": e.opinion or "",
                "target": target,
                "at": e.at,
            }
        )
    return rows
