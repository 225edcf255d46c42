"""待办中心 (/inbox) with its tabs, the application page (/applications/<id>) with its actions
and flow diagram, 批量通过 and 委托 (/inbox/delegation)."""

from __future__ import annotations

from typing import Any, cast

from flask import Blueprint, Flask, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from hall.auth.kept_forms import announce_kept_form, given_back, keeps_form, take_kept_form
from hall.auth.models import HallUser, campus_today
from hall.auth.sessions import current_user, login_required
from hall.extensions import db
from hall.forms import attachments
from hall.forms.operations import drafts_of
from hall.forms.rendering import field_views
from hall.forms.schema import FormInput, coerce_form
from hall.inbox import operations as inbox_ops
from hall.inbox import queries
from hall.inbox.diagram import build_diagram
from hall.inbox.forms import ActionForm, ApplicantForm, BatchForm, DelegationForm, PersonForm
from hall.workflow import engine
from hall.workflow import operations as ops
from hall.workflow.models import Application, Delegation
from shared.ids import row_id
from shared.web import error_response

bp = Blueprint("inbox", __name__, template_folder="templates")

#: The tabs of 待办中心, in the manual's order.
TABS = ("todo", "done", "cc", "mine", "drafts", "transferred")
LISTS = {
    "todo": queries.todo_page,
    "done": queries.done_page,
    "cc": queries.cc_page,
    "mine": queries.mine_page,
    "transferred": queries.transferred_page,
}
#: Where the applicant side keeps drafts (草稿箱), served by the forms blueprint.
DRAFTS_PATH = "/drafts"


def _int_arg(name: str) -> int | None:
    return row_id(request.args.get(name, ""))


def _missing() -> ResponseReturnValue:
    # The same answer for "does not exist" and "not yours": ids reveal nothing.
    return error_response(404, _("申请不存在"), _("该申请不存在，或您无权查看。"))


def _refusal_text(refusal: engine.Refusal) -> str:
    return str(_(refusal.message, **refusal.params))


# --------------------------------------------------------------------------- 待办中心


def _render_inbox(
    user: HallUser,
    tab: str,
    service_id: int | None,
    page_no: int,
    *,
    status: int = 200,
    batch_form: BatchForm | None = None,
    batch_error: str | None = None,
    checked: set[int] | None = None,
) -> ResponseReturnValue:
    """One tab of 待办中心: its service groups and one page of its list."""
    counts = queries.todo_counts(user.account)
    groups: list[queries.ServiceGroup] = []
    page = None
    if tab in ("todo", "done"):
        groups = counts.services
    elif tab == "mine":
        groups = queries.mine_counts(user.account)
    elif tab == "cc":
        groups = queries.cc_counts(user.account)
    if tab in LISTS:
        page = LISTS[tab](user.account, service_id=service_id, page=page_no)
    drafts = drafts_of(user.account) if tab == "drafts" else []
    return (
        render_template(
            "inbox/inbox.html",
            tab=tab,
            tabs=TABS,
            counts=counts,
            groups=groups,
            page=page,
            service_id=service_id,
            service_title=next((g.title for g in groups if g.service_id == service_id), ""),
            batch_form=batch_form or BatchForm(),
            batch_error=batch_error,
            checked=checked or set(),
            drafts=drafts,
            drafts_path=DRAFTS_PATH,
        ),
        status,
    )


@bp.get("/inbox")
@login_required
def inbox(user: HallUser) -> ResponseReturnValue:
    """待办中心: one tab's service groups and list."""
    tab = request.args.get("tab", "todo")
    if tab not in TABS:
        tab = "todo"
    fields = given_back(user) if tab == "todo" else None
    if fields is not None:
        # 批量通过 pressed after the session expired: the same list, ticks and opinion again.
        return _render_inbox(
            user,
            tab,
            row_id(fields.get("service", "")),
            row_id(fields.get("page", "")) or 1,
            batch_form=BatchForm(formdata=fields),
            checked={n for v in fields.getlist("task") if (n := row_id(v)) is not None},
        )
    return _render_inbox(user, tab, _int_arg("service"), _int_arg("page") or 1)


def _inbox_page(**_view_args: object) -> str:
    return url_for(".inbox")


@bp.post("/inbox/batch-approve")
@login_required
@keeps_form(_inbox_page)
def batch_approve(user: HallUser) -> ResponseReturnValue:
    """批量通过: the ticked tasks, one opinion."""
    form = BatchForm()
    ids = [n for v in request.form.getlist("task") if (n := row_id(v)) is not None]
    opinion = (form.opinion.data or "").strip()
    problem = None
    if not ids:
        problem = _("请勾选要通过的待办")
    elif not opinion:
        problem = _(engine.MSG_OPINION_REQUIRED)
    elif not form.validate():
        problem = _("审批意见不能超过%(n)s字", n=ops.MAX_OPINION)
    if problem:
        # The same page of the same list, the ticks and the typed opinion kept.
        service_id = row_id(form.service.data or "")
        page_no = row_id(form.page.data or "") or 1
        return _render_inbox(
            user,
            "todo",
            service_id,
            page_no,
            status=400,
            batch_form=form,
            batch_error=problem,
            checked=set(ids),
        )
    result = inbox_ops.approve_many(user, ids, opinion)
    if result.approved:
        flash(_("已通过 %(n)s 项", n=result.approved), "success")
    for title, refusal in result.refused:
        flash(f"{title}：{_refusal_text(refusal)}", "error")
    return redirect(url_for(".inbox"))


# --------------------------------------------------------------------------- application page


def _render_application(
    user: HallUser,
    application: Application,
    *,
    status: int = 200,
    error: str | None = None,
    action_form: ActionForm | None = None,
    person_form: PersonForm | None = None,
    field_errors: dict[str, list[str]] | None = None,
    posted: dict[str, Any] | None = None,
) -> ResponseReturnValue:
    view = inbox_ops.viewing(application, user.account)
    form = application.form_definition
    data = dict(application.data)
    if posted is not None and view.task is not None:
        # Keep what the approver typed into their editable fields.
        data.update({k: v for k, v in posted.items() if view.permissions.get(k) == "edit"})
    # Attachment fields show their files as download links (the forms feature's helper); the
    # approval form takes no files, so an approver keeps or drops them but uploads none.
    fields = attachments.with_links(
        field_views(form.schema, form.ui, data, field_errors, view.permissions), uploads=False
    )
    action_form = action_form or ActionForm(formdata=None, prefix="wf")
    person_form = person_form or PersonForm(formdata=None)
    who = request.args.get("who", "") if request.method == "GET" else ""
    people = inbox_ops.find_people(who, user.account) if view.task is not None and who else []
    applicant_name = queries.names_of([application.applicant])[application.applicant]
    state = view.state
    is_applicant = application.applicant == user.account
    return (
        render_template(
            "inbox/application.html",
            application=application,
            applicant_name=applicant_name,
            task=view.task,
            fields=fields,
            targets=view.return_targets,
            events=inbox_ops.event_rows(application),
            diagram=build_diagram(view.flow, state, inbox_ops.subtitles(state)),
            action_form=action_form,
            person_form=person_form,
            applicant_form=ApplicantForm(formdata=None),
            who=who,
            people=people,
            error=error,
            # The engine lets the applicant withdraw until an approver acts, and a returned
            # application at any time (they may give up instead of resubmitting).
            can_withdraw=is_applicant
            and (
                (state.status is engine.ApplicationStatus.RUNNING and not state.acted)
                or state.status is engine.ApplicationStatus.RETURNED
            ),
            can_urge=is_applicant and state.status is engine.ApplicationStatus.RUNNING,
            can_resubmit=is_applicant and state.status is engine.ApplicationStatus.RETURNED,
        ),
        status,
    )


@bp.get("/applications/<row_id:application_id>")
@login_required
def application(user: HallUser, application_id: int) -> ResponseReturnValue:
    """The application: form, history (流程记录), flow diagram (流程) and the viewer's actions."""
    found = inbox_ops.visible_application(user, application_id)
    if found is None:
        return _missing()
    inbox_ops.mark_cc_read(found.id, user.account)
    kept = take_kept_form(user)
    if kept is None:
        return _render_application(user, found)
    # An opinion sent just after the session expired: back in its box, to be sent again.
    announce_kept_form()
    if kept.endpoint == "inbox.pass_on":
        return _render_application(user, found, person_form=PersonForm(formdata=kept.fields))
    return _render_application(
        user,
        found,
        action_form=ActionForm(formdata=kept.fields, prefix="wf"),
        posted=coerce_form(found.form_definition.ui, cast(FormInput, kept.fields)),
    )


def _application_page(application_id: int) -> str:
    """Where an approver's form posted to ``/applications/<id>/…`` is given back."""
    return url_for("inbox.application", application_id=application_id)


def _task_arg(value: str | None) -> int:
    return row_id((value or "").strip()) or 0


def _after_refusal(
    user: HallUser,
    application: Application,
    refusal: engine.Refusal,
    task_id: int,
    **kwargs: Any,
) -> ResponseReturnValue:
    """The page again with the refusal; what was typed stays in its box."""
    if task_id and refusal.code in (
        engine.RefusalCode.ALREADY_HANDLED,
        engine.RefusalCode.FINISHED,
    ):
        # The task was theirs but someone decided first (或签, a return, a replay).
        refusal = inbox_ops.handled_by(application.id, task_id, user.account) or refusal
    db.session.expire_all()
    return _render_application(
        user, application, status=409, error=_refusal_text(refusal), **kwargs
    )


@bp.post("/applications/<row_id:application_id>/act")
@login_required
@keeps_form(_application_page)
def act(user: HallUser, application_id: int) -> ResponseReturnValue:
    """通过 / 退回 / 中止 of the viewer's task."""
    found = inbox_ops.visible_application(user, application_id)
    if found is None:
        return _missing()
    form = ActionForm(prefix="wf")
    task_id = _task_arg(form.task.data)
    opinion = form.opinion.data or ""
    kind = request.form.get("wf-action", "")
    # What the approver typed into their editable fields: stored only by 通过, but shown again
    # whatever the action when the page comes back refused.
    typed = coerce_form(found.form_definition.ui, cast(FormInput, request.form))
    action: engine.Action
    posted: dict[str, Any] | None = None
    if kind == "approve":
        action = engine.Approve(user.account, task_id, opinion)
        posted = typed
    elif kind == "return":
        action = engine.Return(user.account, task_id, opinion, to=form.to.data or engine.APPLICANT)
    elif kind == "terminate":
        action = engine.Terminate(user.account, task_id, opinion)
    else:
        return _render_application(
            user, found, status=400, error=_("请选择操作"), action_form=form, posted=typed
        )
    if not form.validate():
        return _render_application(
            user,
            found,
            status=400,
            error=_("审批意见不能超过%(n)s字", n=ops.MAX_OPINION),
            action_form=form,
            posted=typed,
        )
    try:
        result = ops.act(found.id, action, posted=posted)
    except ops.SubmissionInvalid as invalid:
        db.session.expire_all()
        return _render_application(
            user,
            found,
            status=400,
            error=_("表单有误，请按提示修改"),
            action_form=form,
            field_errors=invalid.errors,
            posted=typed,
        )
    if isinstance(result, engine.Refusal):
        return _after_refusal(user, found, result, task_id, action_form=form, posted=typed)
    messages = {
        "approve": _("已通过"),
        "return": _("已退回"),
        "terminate": _("已中止"),
    }
    flash(messages[kind], "success")
    return redirect(url_for(".inbox"))


@bp.post("/applications/<row_id:application_id>/pass-on")
@login_required
@keeps_form(_application_page)
def pass_on(user: HallUser, application_id: int) -> ResponseReturnValue:
    """转办 or 加签 (before / after) to a person chosen by 学工号."""
    found = inbox_ops.visible_application(user, application_id)
    if found is None:
        return _missing()
    form = PersonForm()
    task_id = _task_arg(form.task.data)
    who = (form.who.data or "").strip()
    opinion = form.opinion.data or ""
    kind = request.form.get("action", "")
    if kind not in ("transfer", "before", "after"):
        return _render_application(user, found, status=400, error=_("请选择操作"), person_form=form)
    valid = form.validate()
    if form.opinion.errors:
        error = _("审批意见不能超过%(n)s字", n=ops.MAX_OPINION)
        return _render_application(user, found, status=400, error=error, person_form=form)
    if not valid or not who or not inbox_ops.known_person(who):
        return _render_application(
            user, found, status=400, error=_("找不到该人员，请先搜索并选择"), person_form=form
        )
    action: engine.Action
    if kind == "transfer":
        action = engine.Transfer(user.account, task_id, who, opinion)
    else:
        action = engine.AddSigner(user.account, task_id, who, kind, opinion)
    result = ops.act(found.id, action)
    if isinstance(result, engine.Refusal):
        return _after_refusal(user, found, result, task_id, person_form=form)
    name = queries.names_of([who])[who]
    flash(
        _("已转办给%(name)s", name=name) if kind == "transfer" else _("已加签%(name)s", name=name),
        "success",
    )
    return redirect(url_for(".inbox"))


@bp.post("/applications/<row_id:application_id>/withdraw")
@login_required
def withdraw(user: HallUser, application_id: int) -> ResponseReturnValue:
    """撤回 by the applicant while no approver has acted, or once returned to them."""
    found = inbox_ops.visible_application(user, application_id)
    if found is None:
        return _missing()
    form = ApplicantForm()
    result = ops.act(found.id, engine.Withdraw(user.account, (form.opinion.data or "")[:1000]))
    if isinstance(result, engine.Refusal):
        return _after_refusal(user, found, result, 0)
    flash(_("已撤回"), "success")
    return redirect(url_for(".application", application_id=found.id))


@bp.post("/applications/<row_id:application_id>/urge")
@login_required
def urge(user: HallUser, application_id: int) -> ResponseReturnValue:
    """催办 by the applicant (once an hour per application)."""
    found = inbox_ops.visible_application(user, application_id)
    if found is None:
        return _missing()
    if found.applicant != user.account:
        return _after_refusal(
            user,
            found,
            engine.Refusal(engine.RefusalCode.NOT_ALLOWED, engine.MSG_ONLY_APPLICANT),
            0,
        )
    result = inbox_ops.urge(found, user)
    if isinstance(result, engine.Refusal):
        return _after_refusal(user, found, result, 0)
    flash(_("已催办"), "success")
    return redirect(url_for(".application", application_id=found.id))


# --------------------------------------------------------------------------- 委托


def _delegations(user: HallUser) -> list[Delegation]:
    return list(
        db.session.scalars(
            select(Delegation)
            .where(Delegation.delegator == user.account)
            .order_by(Delegation.starts_on.desc(), Delegation.id.desc())
        )
    )


@bp.route("/inbox/delegation", methods=["GET", "POST"])
@login_required
@keeps_form()
def delegation(user: HallUser) -> ResponseReturnValue:
    """委托: while away, new tasks go to a delegate between two dates."""
    kept = given_back(user)
    form = DelegationForm() if kept is None else DelegationForm(formdata=kept)
    status = 200
    error = None
    if request.method == "POST":
        status = 400
        if form.validate():
            delegate = (form.delegate.data or "").strip()
            if not inbox_ops.known_person(delegate):
                form.delegate.errors = [_("找不到该人员")]
            elif form.ends_on.data < campus_today():
                # Over before it starts: no task would reach the delegate, yet 已委托 would say so.
                form.ends_on.errors = [_("结束日期不能早于今天")]
            else:
                try:
                    ops.set_delegation(
                        user.account, delegate, form.starts_on.data, form.ends_on.data
                    )
                except ops.SubmissionInvalid as invalid:
                    for name, messages in invalid.errors.items():
                        getattr(form, name).errors = list(messages)
                else:
                    name = queries.names_of([delegate])[delegate]
                    flash(_("已委托%(name)s办理", name=name), "success")
                    return redirect(url_for(".delegation"))
        error = _("请按提示修改")
    rows = _delegations(user)
    names = queries.names_of(r.delegate for r in rows)
    return (
        render_template(
            "inbox/delegation.html",
            form=form,
            rows=rows,
            names=names,
            today=campus_today(),
            error=error,
        ),
        status,
    )


@bp.post("/inbox/delegation/<row_id:delegation_id>/end")
@login_required
def end_delegation(user: HallUser, delegation_id: int) -> ResponseReturnValue:
    """结束委托: back early, new tasks are one's own again (someone else's: 404)."""
    try:
        ops.end_delegation(user.account, delegation_id, campus_today())
    except LookupError:
        return error_response(404, _("委托不存在"), _("该委托不存在，或不是您设置的。"))
    flash(_("已结束委托"), "success")
    return redirect(url_for(".delegation"))


# --------------------------------------------------------------------------- setup


def setup_inbox(app: Flask) -> None:
    """Register the to-do centre and the layout's 待办中心 badge."""
    app.register_blueprint(bp)

    @app.context_processor
    def inbox_nav() -> dict[str, object]:
        def pending() -> int:
            try:
                user = current_user()
                return queries.pending_count(user.account) if user else 0
            except SQLAlchemyError:  # an error page of a failing database must still render
                db.session.rollback()
                return 0

        return {"inbox_pending": pending}
