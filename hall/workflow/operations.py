"""Applications and approvals as stored rows: the engine's results applied in one transaction.

Every action locks its application row (``SELECT … FOR UPDATE``), runs the pure engine on the
stored state and writes the new state, the task rows, the history and the CC rows together;
a refused action rolls back and changes nothing. Operations commit themselves so the lock is
never held past the action.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import func, select, update
from sqlalchemy.orm.exc import StaleDataError

from hall.audit.operations import record
from hall.auth.models import CAMPUS_TZ, HallUser, aware, utcnow
from hall.catalog.models import Service
from hall.extensions import db
from hall.forms.schema import (
    apply_computed,
    apply_profile,
    field_names,
    merge_edit,
    tampered_fields,
    validate_definition,
    validate_submission,
    widget_of,
)
from hall.workflow import engine
from hall.workflow.definitions import (
    Flow,
    FlowInvalid,
    field_permissions,
    parse_flow,
    validate_flow,
)
from hall.workflow.models import (
    OPEN,
    Application,
    ApplicationEvent,
    CarbonCopy,
    Delegation,
    FlowDefinition,
    FormDefinition,
    Task,
)
from hall.workflow.resolver import DirectoryResolver

MAX_OPINION = 1000


class DefinitionInvalid(ValueError):
    """A form or flow definition that cannot be saved; ``messages`` say why."""

    def __init__(self, messages: Sequence[str]) -> None:
        super().__init__("; ".join(messages))
        self.messages = list(messages)


class SubmissionInvalid(ValueError):
    """Form data that cannot be accepted; ``errors`` maps each field to its messages."""

    def __init__(self, errors: Mapping[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = dict(errors)


class FormOutdated(SubmissionInvalid):
    """The form version posted lacks fields the current flow decides on (a condition, a person
    field naming approvers): submitted with it, the flow would take its default branch or skip
    an approver. The applicant fills the newest version instead."""


class NotConfigured(LookupError):
    """The service has no online form or flow yet."""


# --------------------------------------------------------------------------- delegation


def active_delegations(today: date) -> dict[str, list[engine.Delegation]]:
    """Delegations in force today, by the person away; the newest first, so it wins.

    A delegate who has since left (inactive) is passed over: their tasks would wait forever.
    """
    gone = (
        select(HallUser.id)
        .where(HallUser.account == Delegation.delegate, HallUser.active.is_(False))
        .exists()
    )
    rows = db.session.scalars(
        select(Delegation)
        .where(Delegation.starts_on <= today, Delegation.ends_on >= today, ~gone)
        .order_by(Delegation.id.desc())
    )
    result: dict[str, list[engine.Delegation]] = {}
    for row in rows:
        result.setdefault(row.delegator, []).append(
            engine.Delegation(row.delegate, row.starts_on, row.ends_on)
        )
    return result


def engine_context(now: datetime | None = None) -> engine.Context:
    """The engine's view of the world now: the directory and today's delegations."""
    now = now or utcnow()
    today = aware(now).astimezone(CAMPUS_TZ).date()
    return engine.Context(DirectoryResolver(), now, active_delegations(today), today=today)


def set_delegation(delegator: str, delegate: str, starts_on: date, ends_on: date) -> Delegation:
    """委托: from ``starts_on`` to ``ends_on`` new tasks of ``delegator`` go to ``delegate``."""
    if not delegate.strip() or delegate == delegator:
        raise SubmissionInvalid({"delegate": [_("请选择其他人作为委托人")]})
    if ends_on < starts_on:
        raise SubmissionInvalid({"ends_on": [_("结束日期不能早于开始日期")]})
    row = Delegation(delegator=delegator, delegate=delegate, starts_on=starts_on, ends_on=ends_on)
    db.session.add(row)
    record(
        "workflow.delegate",
        delegator,
        f"account:{delegator}",
        {"delegate": delegate, "from": starts_on, "to": ends_on},
    )
    db.session.commit()
    return row


def end_delegation(delegator: str, delegation_id: int, today: date) -> None:
    """结束委托: from today on, ``delegator``'s new tasks stay theirs (one not begun goes).

    Raises ``LookupError`` for a delegation that is not ``delegator``'s.
    """
    row = db.session.get(Delegation, delegation_id)
    if row is None or row.delegator != delegator:
        raise LookupError(delegation_id)
    if row.ends_on < today:
        return
    if row.starts_on >= today:
        db.session.delete(row)
    else:
        row.ends_on = today - timedelta(days=1)
    record(
        "workflow.delegate.end",
        delegator,
        f"account:{delegator}",
        {"delegate": row.delegate, "id": delegation_id},
    )
    db.session.commit()


# --------------------------------------------------------------------------- definitions


def latest_form(service_id: int) -> FormDefinition | None:
    """The newest form version of a service."""
    return db.session.scalars(
        select(FormDefinition)
        .where(FormDefinition.service_id == service_id)
        .order_by(FormDefinition.version.desc())
    ).first()


def latest_flow(service_id: int) -> FlowDefinition | None:
    """The newest flow version of a service."""
    return db.session.scalars(
        select(FlowDefinition)
        .where(FlowDefinition.service_id == service_id)
        .order_by(FlowDefinition.version.desc())
    ).first()


def save_form_definition(
    service_id: int, schema: dict[str, Any], ui: dict[str, Any], *, actor: str
) -> FormDefinition:
    """A new form version (running applications keep theirs); raises ``DefinitionInvalid``."""
    problems = validate_definition(schema, ui)
    if problems:
        raise DefinitionInvalid(problems)
    version = (
        db.session.scalar(
            select(func.max(FormDefinition.version)).where(FormDefinition.service_id == service_id)
        )
        or 0
    ) + 1
    row = FormDefinition(
        service_id=service_id, version=version, schema=schema, ui=ui, created_by=actor
    )
    db.session.add(row)
    record("workflow.form.save", actor, f"service:{service_id}", {"version": version})
    db.session.commit()
    return row


def save_flow_definition(
    service_id: int, definition: dict[str, Any], *, actor: str
) -> FlowDefinition:
    """A new flow version, checked against the service's form; raises ``DefinitionInvalid``."""
    form = latest_form(service_id)
    fields = field_names(form.ui) if form else None
    errors = validate_flow(definition, fields)
    if errors:
        raise DefinitionInvalid([_(e.message, **e.params) for e in errors])
    version = (
        db.session.scalar(
            select(func.max(FlowDefinition.version)).where(FlowDefinition.service_id == service_id)
        )
        or 0
    ) + 1
    row = FlowDefinition(
        service_id=service_id, version=version, definition=definition, created_by=actor
    )
    db.session.add(row)
    record("workflow.flow.save", actor, f"service:{service_id}", {"version": version})
    db.session.commit()
    return row


# --------------------------------------------------------------------------- applications


def profile_of(user: HallUser) -> dict[str, str]:
    """What read-only profile fields are filled from (the IdP's claims as the hall keeps them)."""
    phone = user.phone or ""
    if phone.startswith("+86"):
        phone = phone[3:]
    profile = {
        "name": user.name,
        "department": user.department_name or "",
        "phone": phone,
        "email": user.email or "",
        "staff_no": user.account,
    }
    return {k: v for k, v in profile.items() if v}


def _checked_data(
    form: FormDefinition,
    flow: Flow,
    applicant: str,
    old: Mapping[str, Any],
    posted: Mapping[str, Any],
    permissions: Mapping[str, str],
    profile: Mapping[str, str] | None,
) -> dict[str, Any]:
    """New data from a post: refuses fields the node may not edit, then validates it all.

    ``profile`` fills the read-only profile fields (at submission; approvers keep them).
    """
    tampered = tampered_fields(old, posted, permissions)
    if tampered:
        raise SubmissionInvalid(tampered)
    data = merge_edit(old, posted, permissions)
    if profile is not None:
        data = apply_profile(form.ui, data, profile)
    # Whoever may change the dates (applicant or approver), the day count follows them.
    data = apply_computed(form.ui, data)
    errors = validate_submission(form.schema, form.ui, data)
    errors.update(_people_problems(flow, applicant, old, data))
    if errors:
        raise SubmissionInvalid(errors)
    return data


def unknown_people(accounts: Sequence[str]) -> str | None:
    """The message naming those of ``accounts`` who are no active person the hall knows (at
    most five), or None when it knows them all."""
    known = set(
        db.session.scalars(
            select(HallUser.account).where(
                HallUser.account.in_(accounts), HallUser.active.is_(True)
            )
        )
    )
    unknown = [a for a in accounts if a not in known]
    if not unknown:
        return None
    return _("找不到工号或学号为 %(accounts)s 的人员", accounts=_("、").join(unknown[:5]))


def _people_problems(
    flow: Flow, applicant: str, old: Mapping[str, Any], data: Mapping[str, Any]
) -> dict[str, list[str]]:
    """Changed person fields that name approvers or CC recipients: each must be someone the
    hall knows, and an approver never the applicant (nobody approves their own application)."""
    errors: dict[str, list[str]] = {}
    for node in flow.by_id.values():
        spec = node.approver
        if spec is None or spec.type != "form_field" or data.get(spec.field) == old.get(spec.field):
            continue
        value = data.get(spec.field)
        named = [value] if isinstance(value, str) else value if isinstance(value, list) else []
        accounts = [a for a in named if isinstance(a, str) and a]
        missing = unknown_people(accounts)
        if missing:
            errors[spec.field] = [missing]
        elif node.kind == "approver" and applicant in accounts:
            errors[spec.field] = [_("审批人不能是申请人本人")]
    return errors


def submit_application(
    service: Service,
    user: HallUser,
    posted: Mapping[str, Any],
    *,
    chosen: Mapping[str, Sequence[str]] | None = None,
    now: datetime | None = None,
    form: FormDefinition | None = None,
    before_commit: Callable[[Application], None] | None = None,
) -> Application:
    """Submit a filled form: validate it, snapshot the flow and start it (one transaction).

    ``form`` is the version the applicant started with (default: the newest); ``before_commit``
    adds the caller's own changes (attachments, the draft) to the same transaction.
    """
    if form is not None and form.service_id != service.id:
        raise NotConfigured(_("该服务尚未开通在线办理"))
    form, flow_row = form or latest_form(service.id), latest_flow(service.id)
    if form is None or flow_row is None:
        raise NotConfigured(_("该服务尚未开通在线办理"))
    try:
        # The flow checked against this form version's fields, not only the newest one's.
        flow = parse_flow(flow_row.definition, field_names(form.ui))
    except FlowInvalid:
        message = _("表单已更新，审批流程要用到新版表单中的内容。请核对下面的新版表单后再提交。")
        raise FormOutdated({"__form__": [message]}) from None
    permissions = field_permissions(flow, flow.nodes[0].id, field_names(form.ui))
    data = _checked_data(form, flow, user.account, {}, posted, permissions, profile_of(user))
    ctx = engine_context(now)
    outcome = engine.submit(flow, user.account, data, ctx, chosen)
    if isinstance(outcome, engine.Refusal):
        raise SubmissionInvalid({"__form__": [_(outcome.message, **outcome.params)]})
    application = Application(
        service_id=service.id,
        form_definition_id=form.id,
        flow_snapshot=flow_row.definition,
        applicant=user.account,
        title=service.title,
        status=outcome.state.status.value,
        data=data,
        state={},
        submitted_at=ctx.at,
        updated_at=ctx.at,
    )
    db.session.add(application)
    db.session.flush()
    _write(application, flow, outcome, ctx.at)
    record(
        "workflow.submit", user.account, f"application:{application.id}", {"service": service.id}
    )
    if before_commit is not None:
        before_commit(application)
    db.session.commit()
    return application


def act(
    application_id: int,
    action: engine.Action,
    *,
    posted: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> engine.Outcome | engine.Refusal:
    """Apply one action (通过, 退回, 中止, 转办, 加签, 撤回, 催办, 重新提交) in one transaction.

    ``posted`` carries form fields the acting node may edit (a resubmission carries its data,
    checked by ``resubmit_data``, in the action).
    Raises ``LookupError`` for an unknown application and ``SubmissionInvalid`` for bad data.
    """
    for attempt in range(3):
        try:
            return _act_once(application_id, action, posted, now)
        except StaleDataError:
            # Another writer got there first (SQLite only): read again and decide afresh.
            db.session.rollback()
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _act_once(
    application_id: int,
    action: engine.Action,
    posted: Mapping[str, Any] | None,
    now: datetime | None,
) -> engine.Outcome | engine.Refusal:
    application = db.session.scalars(
        select(Application)
        .where(Application.id == application_id)
        .with_for_update(of=Application)
        .execution_options(populate_existing=True)
    ).first()
    if application is None:
        db.session.rollback()
        raise LookupError(application_id)
    opinion = getattr(action, "opinion", "")
    if len(opinion) > MAX_OPINION:
        db.session.rollback()
        raise SubmissionInvalid({"opinion": [_("审批意见不能超过%(n)s字", n=MAX_OPINION)]})
    flow = parse_flow(application.flow_snapshot)
    state = engine.state_from_json(application.state)
    try:
        if posted is not None:
            state = _with_posted(application, flow, state, action, posted)
    except SubmissionInvalid:
        db.session.rollback()
        raise
    ctx = engine_context(now)
    result = engine.apply(flow, state, action, ctx)
    if isinstance(result, engine.Refusal):
        db.session.rollback()
        return result
    _write(application, flow, result, ctx.at)
    detail = {"task": getattr(action, "task_id", None), "to": getattr(action, "to", None)}
    if isinstance(action, engine.AddSigner):
        detail.update(to=action.who, position=action.position)  # 加签: whom, before or after
    record(
        f"workflow.{type(action).__name__.lower()}",
        action.actor,
        f"application:{application.id}",
        detail,
    )
    db.session.commit()
    return result


def _with_posted(
    application: Application,
    flow: Flow,
    state: engine.ApplicationState,
    action: engine.Action,
    posted: Mapping[str, Any],
) -> engine.ApplicationState:
    """The state with the fields the acting node may edit taken from the post."""
    form = application.form_definition
    fields = field_names(form.ui)
    task = next((t for t in state.tasks if t.id == getattr(action, "task_id", None)), None)
    if task is None or task.assignee != action.actor:
        return state  # the engine refuses the action itself
    permissions = field_permissions(flow, task.node_id, fields)
    foreign = _foreign_attachments(form, state.data, posted)
    if foreign:
        raise SubmissionInvalid(foreign)
    data = _checked_data(form, flow, application.applicant, state.data, posted, permissions, None)
    return replace(state, data=data)


def _foreign_attachments(
    form: FormDefinition, old: Mapping[str, Any], posted: Mapping[str, Any]
) -> dict[str, list[str]]:
    """Attachment ids an approver posted that the application did not hold: the approval form
    uploads nothing, so an approver may keep or drop files, never name another one."""
    errors: dict[str, list[str]] = {}
    for name in field_names(form.ui):
        if widget_of(form.ui, name) != "attachment" or not isinstance(posted.get(name), list):
            continue
        held = old.get(name)
        kept = {str(v) for v in held} if isinstance(held, list) else set()
        if any(str(v) not in kept for v in posted[name]):
            errors[name] = [_("不能加入不属于本申请的附件")]
    return errors


def _write(application: Application, flow: Flow, outcome: engine.Outcome, at: datetime) -> None:
    """Store an outcome: the state, task rows, history and CC rows."""
    state = outcome.state
    previous_status = application.status
    application.state = engine.state_to_json(state)
    application.status = state.status.value
    application.data = dict(state.data)
    application.updated_at = at
    if state.status in engine.FINISHED:
        application.finished_at = at
    for task in outcome.created:
        db.session.add(
            Task(
                application_id=application.id,
                service_id=application.service_id,
                application_status=application.status,
                engine_id=task.id,
                node_id=task.node_id,
                node_name=flow.node(task.node_id).name,
                assignee=task.assignee,
                on_behalf_of=task.on_behalf_of,
                status=OPEN,
                created_at=at,
            )
        )
    if outcome.closed:
        rows = {
            row.engine_id: row
            for row in db.session.scalars(
                select(Task).where(
                    Task.application_id == application.id,
                    Task.engine_id.in_([c.task.id for c in outcome.closed]),
                )
            )
        }
        for closed in outcome.closed:
            row = rows[closed.task.id]
            row.status = closed.status.value
            row.opinion = closed.opinion or None
            row.acted_at = at
    if previous_status != application.status:
        # The tasks' copy of the status, which the to-do centre counts by (a few rows).
        db.session.execute(
            update(Task)
            .where(Task.application_id == application.id)
            .values(application_status=application.status)
        )
    for event in outcome.events:
        db.session.add(
            ApplicationEvent(
                application_id=application.id,
                seq=event.seq,
                kind=event.kind.value,
                actor=event.actor,
                on_behalf_of=event.on_behalf_of,
                node_id=event.node_id,
                opinion=event.opinion or None,
                target=(event.target or "")[:500] or None,
                at=event.at,
            )
        )
    for note in outcome.notifications:
        if note.kind is engine.EventKind.URGED:
            db.session.execute(
                update(Task)
                .where(
                    Task.application_id == application.id,
                    Task.assignee == note.recipient,
                    Task.status == OPEN,
                )
                .values(urged_at=at)
            )
        if note.kind is engine.EventKind.CC and note.node_id:
            db.session.add(
                CarbonCopy(
                    application_id=application.id,
                    recipient=note.recipient,
                    node_id=note.node_id,
                    created_at=at,
                )
            )


def resubmit_data(
    application: Application, user: HallUser, posted: Mapping[str, Any]
) -> dict[str, Any]:
    """The data of a resubmission, checked like a first submission."""
    flow = parse_flow(application.flow_snapshot)
    form = application.form_definition
    permissions = field_permissions(flow, flow.nodes[0].id, field_names(form.ui))
    return _checked_data(
        form, flow, application.applicant, {}, posted, permissions, profile_of(user)
    )


def pending_tasks(account: str, limit: int = 100) -> list[Task]:
    """我待办的: one person's open tasks, newest first (served by the assignee+status index)."""
    return list(
        db.session.scalars(
            select(Task)
            .where(Task.assignee == account, Task.status == OPEN)
            .order_by(Task.created_at.desc(), Task.id.desc())
            .limit(limit)
        )
    )


def history(application_id: int) -> list[ApplicationEvent]:
    """An application's history in order (流程记录)."""
    return list(
        db.session.scalars(
            select(ApplicationEvent)
            .where(ApplicationEvent.application_id == application_id)
            .order_by(ApplicationEvent.seq)
        )
    )
