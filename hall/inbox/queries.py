"""The to-do centre's lists and counts (待办中心), each a few indexed queries.

Lists are read as plain columns (no ORM objects, no lazy loads) and paged with OFFSET on an
index that already yields rows in display order, so a page costs one index range scan plus
joins by primary key however many tasks the table holds. Counts group only one person's rows
(found through an index that starts with the account), never the whole table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, and_, case, distinct, func, or_, select

from hall.auth.models import HallUser, aware
from hall.catalog.models import Service
from hall.extensions import db
from hall.forms.schema import field_names
from hall.workflow import engine
from hall.workflow.definitions import Flow, field_permissions, parse_flow
from hall.workflow.models import OPEN, Application, CarbonCopy, Task

#: Application statuses that count as 已办结 (the rest are 进行中: running or returned).
FINISHED_STATUSES = ("approved", "terminated", "withdrawn")
#: Closed task statuses that mean "I acted" (我已办的); 转办 is listed under 我转办的 and a
#: task cancelled by someone else's decision was never acted on.
ACTED_STATUSES = ("approved", "returned", "terminated", "signer_added")
TRANSFERRED = "transferred"
MAX_PER_PAGE = 100


@dataclass(frozen=True)
class Row:
    """One line of a to-do centre list: an application and (for task lists) the task."""

    application_id: int
    title: str
    service_id: int
    applicant: str
    applicant_name: str
    status: str
    submitted_at: datetime
    #: When the task or CC reached the person (the application's submission for 我发起的).
    arrived_at: datetime
    task_id: int | None = None
    engine_id: int | None = None
    node_name: str = ""
    task_status: str = ""
    opinion: str | None = None
    acted_at: datetime | None = None
    on_behalf_of: str | None = None
    #: When the applicant urged (催办) this open task.
    urged_at: datetime | None = None
    #: For 抄送给我: the CC row and whether it has been opened.
    cc_id: int | None = None
    unread: bool = False


@dataclass(frozen=True)
class Page:
    """One page of a list."""

    rows: list[Row]
    page: int
    per_page: int
    has_next: bool


@dataclass(frozen=True)
class ServiceGroup:
    """One service's line in a tab: its latest date and 全部 / 进行中 / 已办结 / 待办."""

    service_id: int
    title: str
    latest: datetime
    total: int
    running: int
    finished: int
    pending: int


@dataclass(frozen=True)
class Counts:
    """The numbers of the tabs and the service groups of 我待办的 (and 我已办的)."""

    #: Open tasks (我待办的(n)).
    pending: int
    #: CCs not yet opened (the dot on 抄送给我).
    cc_unread: int
    services: list[ServiceGroup]


# --------------------------------------------------------------------------- helpers


def _bounds(page: int, per_page: int) -> tuple[int, int]:
    page = max(1, int(page))
    per_page = min(max(1, int(per_page)), MAX_PER_PAGE)
    return page, per_page


def names_of(accounts: Iterable[str]) -> dict[str, str]:
    """Display names of some accounts (one query; an unknown account shows as itself)."""
    wanted = sorted(set(accounts))
    if not wanted:
        return {}
    names: dict[str, str] = {}
    # Active rows last, so they win when a 学工号 was handed out again.
    for account, name in db.session.execute(
        select(HallUser.account, HallUser.name)
        .where(HallUser.account.in_(wanted))
        .order_by(HallUser.active, HallUser.id)
    ):
        names[account] = name
    return {a: names.get(a, a) for a in wanted}


def service_titles(ids: Iterable[int]) -> dict[int, str]:
    """Current titles of some services (one query by primary key)."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    return dict(
        db.session.execute(select(Service.id, Service.title).where(Service.id.in_(wanted))).all()
    )


def _page(query: Select, page: int, per_page: int, build) -> Page:  # type: ignore[type-arg,no-untyped-def]
    page, per_page = _bounds(page, per_page)
    found = db.session.execute(query.limit(per_page + 1).offset((page - 1) * per_page)).all()
    has_next = len(found) > per_page
    found = found[:per_page]
    names = names_of(r.applicant for r in found)
    return Page([build(r, names) for r in found], page, per_page, has_next)


_APP_COLUMNS = (
    Application.id.label("application_id"),
    Application.title,
    Application.service_id,
    Application.applicant,
    Application.status,
    Application.submitted_at,
)


def _task_row(r, names: dict[str, str]) -> Row:  # type: ignore[no-untyped-def]
    return Row(
        application_id=r.application_id,
        title=r.title,
        service_id=r.service_id,
        applicant=r.applicant,
        applicant_name=names.get(r.applicant, r.applicant),
        status=r.status,
        submitted_at=aware(r.submitted_at),
        arrived_at=aware(r.created_at),
        task_id=r.task_id,
        engine_id=r.engine_id,
        node_name=r.node_name,
        task_status=r.task_status,
        opinion=r.opinion,
        acted_at=aware(r.acted_at) if r.acted_at else None,
        on_behalf_of=r.on_behalf_of,
        urged_at=aware(r.urged_at) if r.urged_at and r.task_status == OPEN else None,
    )


def _task_query(account: str, service_id: int | None) -> Select:  # type: ignore[type-arg]
    query = (
        select(
            Task.id.label("task_id"),
            Task.engine_id,
            Task.node_name,
            Task.status.label("task_status"),
            Task.opinion,
            Task.created_at,
            Task.acted_at,
            Task.on_behalf_of,
            Task.urged_at,
            *_APP_COLUMNS,
        )
        .select_from(Task)
        .join(Application, Application.id == Task.application_id)
        .where(Task.assignee == account)
    )
    if service_id is not None:
        query = query.where(Task.service_id == service_id)
    return query


# --------------------------------------------------------------------------- lists


def todo_page(
    account: str, *, service_id: int | None = None, page: int = 1, per_page: int = 20
) -> Page:
    """我待办的: open tasks, newest first (index ``assignee, status, created_at``)."""
    query = _task_query(account, service_id).where(Task.status == OPEN)
    query = query.order_by(Task.created_at.desc(), Task.id.desc())
    return _page(query, page, per_page, _task_row)


def done_page(
    account: str, *, service_id: int | None = None, page: int = 1, per_page: int = 20
) -> Page:
    """我已办的: tasks the person acted on, latest action first (index ``assignee, acted_at``)."""
    query = _task_query(account, service_id).where(
        Task.acted_at.is_not(None), Task.status.in_(ACTED_STATUSES)
    )
    query = query.order_by(Task.acted_at.desc(), Task.id.desc())
    return _page(query, page, per_page, _task_row)


def transferred_page(
    account: str, *, service_id: int | None = None, page: int = 1, per_page: int = 20
) -> Page:
    """我转办的: tasks the person handed to someone else, newest first."""
    query = _task_query(account, service_id).where(Task.status == TRANSFERRED)
    query = query.order_by(Task.created_at.desc(), Task.id.desc())
    return _page(query, page, per_page, _task_row)


def cc_page(
    account: str, *, service_id: int | None = None, page: int = 1, per_page: int = 20
) -> Page:
    """抄送给我: applications copied to the person, newest first, unread marked."""
    query = (
        select(
            CarbonCopy.id.label("cc_id"),
            CarbonCopy.created_at,
            CarbonCopy.read_at,
            *_APP_COLUMNS,
        )
        .select_from(CarbonCopy)
        .join(Application, Application.id == CarbonCopy.application_id)
        .where(CarbonCopy.recipient == account)
    )
    if service_id is not None:
        query = query.where(Application.service_id == service_id)
    query = query.order_by(CarbonCopy.created_at.desc(), CarbonCopy.id.desc())

    def build(r, names: dict[str, str]) -> Row:  # type: ignore[no-untyped-def]
        return Row(
            application_id=r.application_id,
            title=r.title,
            service_id=r.service_id,
            applicant=r.applicant,
            applicant_name=names.get(r.applicant, r.applicant),
            status=r.status,
            submitted_at=aware(r.submitted_at),
            arrived_at=aware(r.created_at),
            cc_id=r.cc_id,
            unread=r.read_at is None,
        )

    return _page(query, page, per_page, build)


def mine_page(
    account: str, *, service_id: int | None = None, page: int = 1, per_page: int = 20
) -> Page:
    """我发起的: the person's applications, newest first (index ``applicant, submitted_at``)."""
    query = select(*_APP_COLUMNS).where(Application.applicant == account)
    if service_id is not None:
        query = query.where(Application.service_id == service_id)
    query = query.order_by(Application.submitted_at.desc(), Application.id.desc())

    def build(r, names: dict[str, str]) -> Row:  # type: ignore[no-untyped-def]
        return Row(
            application_id=r.application_id,
            title=r.title,
            service_id=r.service_id,
            applicant=r.applicant,
            applicant_name=names.get(r.applicant, r.applicant),
            status=r.status,
            submitted_at=aware(r.submitted_at),
            arrived_at=aware(r.submitted_at),
        )

    return _page(query, page, per_page, build)


# --------------------------------------------------------------------------- counts


def _groups(found: Sequence) -> list[ServiceGroup]:  # type: ignore[type-arg]
    titles = service_titles(r.service_id for r in found)
    groups = [
        ServiceGroup(
            service_id=r.service_id,
            title=titles.get(r.service_id, ""),
            latest=aware(r.latest),
            total=r.total,
            running=r.running,
            finished=r.finished,
            pending=r.pending,
        )
        for r in found
    ]
    groups.sort(key=lambda g: (g.latest, g.service_id), reverse=True)
    return groups


def pending_count(account: str) -> int:
    """我待办的(n): open tasks (an index-only count on ``assignee, status``)."""
    return (
        db.session.scalar(
            select(func.count())
            .select_from(Task)
            .where(Task.assignee == account, Task.status == OPEN)
        )
        or 0
    )


def cc_unread_count(account: str) -> int:
    """CCs not yet opened (index ``recipient, read_at``)."""
    return (
        db.session.scalar(
            select(func.count())
            .select_from(CarbonCopy)
            .where(CarbonCopy.recipient == account, CarbonCopy.read_at.is_(None))
        )
        or 0
    )


def todo_counts(account: str) -> Counts:
    """Tab numbers and, per service, 全部 / 进行中 / 已办结 / 待办 of the applications the
    person has or had a task on (counted once per application).

    One index-only scan of the person's tasks (``assignee, service_id, application_id,
    application_status, status, created_at``; the tasks carry copies of their application's
    service and status), already in service order: no application row is visited, which is
    what keeps a 分管校领导 with tens of thousands of tasks fast.
    """
    application = distinct(Task.application_id)
    finished = Task.application_status.in_(FINISHED_STATUSES)
    found = db.session.execute(
        select(
            Task.service_id,
            func.max(Task.created_at).label("latest"),
            func.count(application).label("total"),
            func.count(application).filter(~finished).label("running"),
            func.count(application).filter(finished).label("finished"),
            func.count(application).filter(Task.status == OPEN).label("pending"),
        )
        .where(Task.assignee == account)
        .group_by(Task.service_id)
    ).all()
    return Counts(pending_count(account), cc_unread_count(account), _groups(found))


def mine_counts(account: str) -> list[ServiceGroup]:
    """我发起的 per service: 全部 / 进行中 / 已办结, and 待办 = returned, waiting for the
    applicant to edit and resubmit."""
    finished = Application.status.in_(FINISHED_STATUSES)
    found = db.session.execute(
        select(
            Application.service_id,
            func.max(Application.submitted_at).label("latest"),
            func.count().label("total"),
            func.count(case((~finished, 1))).label("running"),
            func.count(case((finished, 1))).label("finished"),
            func.count(case((Application.status == "returned", 1))).label("pending"),
        )
        .where(Application.applicant == account)
        .group_by(Application.service_id)
    ).all()
    return _groups(found)


def cc_counts(account: str) -> list[ServiceGroup]:
    """抄送给我 per service: 全部 / 进行中 / 已办结, and 待办 = not yet read."""
    finished = Application.status.in_(FINISHED_STATUSES)
    found = db.session.execute(
        select(
            Application.service_id,
            func.max(CarbonCopy.created_at).label("latest"),
            func.count(distinct(CarbonCopy.application_id)).label("total"),
            func.count(distinct(case((~finished, CarbonCopy.application_id)))).label("running"),
            func.count(distinct(case((finished, CarbonCopy.application_id)))).label("finished"),
            func.count(
                distinct(case((CarbonCopy.read_at.is_(None), CarbonCopy.application_id)))
            ).label("pending"),
        )
        .select_from(CarbonCopy)
        .join(Application, Application.id == CarbonCopy.application_id)
        .where(CarbonCopy.recipient == account)
        .group_by(Application.service_id)
    ).all()
    return _groups(found)


def open_task_for(application_id: int, account: str) -> int | None:
    """The id (row id) of the person's open task on an application, if any."""
    return db.session.scalar(
        select(Task.id)
        .where(Task.application_id == application_id, Task.assignee == account, Task.status == OPEN)
        .order_by(Task.id)
        .limit(1)
    )


def reader_view(
    application: Application,
    account: str,
    flow: Flow | None = None,
    state: engine.ApplicationState | None = None,
) -> tuple[engine.Task | None, dict[str, str]]:
    """The viewer's open task (if any) and what they see of each field (edit / read / hidden).

    The approver whose task it is gets the node's permissions (editable fields editable); the
    applicant sees what the start node shows; a past approver (or the delegator of one) what
    their last node showed; others (CC, hall admins) read everything. The application page and
    the attachment downloads both go by it: a file in a hidden field is not the reader's.
    """
    flow = flow or parse_flow(application.flow_snapshot)
    state = state or engine.state_from_json(application.state)
    fields = field_names(application.form_definition.ui)
    task = next((t for t in state.tasks if t.assignee == account), None)
    if task is not None:
        return task, dict(field_permissions(flow, task.node_id, fields))
    node_id: str | None = None
    if account == application.applicant:
        node_id = flow.nodes[0].id
    else:
        # A delegator sees what their node showed the delegate who acted for them.
        node_id = db.session.scalar(
            select(Task.node_id)
            .where(
                Task.application_id == application.id,
                or_(Task.assignee == account, Task.on_behalf_of == account),
            )
            .order_by(Task.id.desc())
            .limit(1)
        )
    if node_id is None:
        return None, {name: "read" for name in fields}
    shown = field_permissions(flow, node_id, fields)
    return None, {k: ("hidden" if v == "hidden" else "read") for k, v in shown.items()}


def may_see(application: Application, account: str, *, admin: bool = False) -> bool:
    """Whether someone may open an application: applicant, anyone with a task or CC on it
    (a delegator too, for the tasks handled on their behalf), or a hall admin."""
    if admin or application.applicant == account:
        return True
    # Who may open the application may download its files (hall.forms.attachments.may_read).
    has_task = db.session.scalar(
        select(Task.id)
        .where(
            Task.application_id == application.id,
            or_(Task.assignee == account, Task.on_behalf_of == account),
        )
        .limit(1)
    )
    if has_task is not None:
        return True
    return (
        db.session.scalar(
            select(CarbonCopy.id)
            .where(
                and_(
                    CarbonCopy.application_id == application.id,
                    CarbonCopy.recipient == account,
                )
            )
            .limit(1)
        )
        is not None
    )
