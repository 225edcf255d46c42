"""Online forms for applicants: fill and submit (在线办理), 草稿箱, attachments, 重新提交."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Flask,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.exceptions import RequestEntityTooLarge

from hall.auth.kept_forms import given_back, keeps_form
from hall.auth.models import HallUser
from hall.auth.sessions import login_required
from hall.catalog.models import Service
from hall.catalog.operations import find_published_service
from hall.extensions import db
from hall.forms import attachments
from hall.forms.files import CONTENT_TYPES
from hall.forms.models import Draft
from hall.forms.operations import (
    Posted,
    applicant_permissions,
    approver_choices,
    claim_submission,
    delete_draft,
    drafts_of,
    find_draft,
    finish_submission,
    form_version,
    may_resubmit,
    merge_errors,
    online_form,
    page_draft,
    read_choices,
    read_post,
    remember_page_draft,
    resubmit,
    save_draft,
    start_permissions,
    submission_id,
    submit_form,
)
from hall.forms.rendering import counts_days_live, field_views
from hall.forms.schema import FORM_ERROR, apply_computed, apply_profile, validate_submission
from hall.workflow.models import Application, FormDefinition
from hall.workflow.operations import FormOutdated, NotConfigured, SubmissionInvalid, profile_of
from shared.ids import row_id
from shared.web import error_response

bp = Blueprint(
    "forms",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/forms-static",
)
bp.add_app_template_global(counts_days_live)


def application_url(application_id: int) -> str:
    """The application page (the to-do centre's, /applications/<id>)."""
    return f"/applications/{application_id}"


def _no_form() -> ResponseReturnValue:
    return error_response(
        404,
        _("暂不能在线办理"),
        _("该服务不存在、尚未发布或尚未开通在线办理。请返回一事联办查看办事指南。"),
    )


def _render_form(
    user: HallUser,
    service: Service,
    form: FormDefinition,
    data: dict[str, Any],
    errors: dict[str, list[str]] | None = None,
    *,
    draft: Draft | None = None,
    application: Application | None = None,
    chosen: dict[str, list[str]] | None = None,
    status: int = 200,
    posted_submission: str | None = None,
) -> ResponseReturnValue:
    """The form page: every field with its value and errors; drafts only for new applications.

    A new application's page carries its submission id (``posted_submission`` when the page
    comes back with errors), so posting it twice makes one application.
    """
    errors = errors or {}
    # A resubmission keeps the approvers chosen at the first submission.
    choices = [] if application else approver_choices(service, chosen, errors)
    shown = apply_computed(form.ui, apply_profile(form.ui, data, profile_of(user)))
    if application is not None:
        permissions = start_permissions(application.flow_snapshot, form)
    else:
        permissions = applicant_permissions(service, form)
    views = attachments.with_links(
        field_views(form.schema, form.ui, shown, errors, permissions=permissions)
    )
    field_errors = sum(1 for name in errors if name != FORM_ERROR)
    if application is not None:
        action = url_for("forms.resubmit_form", application_id=application.id)
    else:
        action = url_for("forms.apply", service_id=service.id)
    return (
        render_template(
            "forms/apply.html",
            service=service,
            form=form,
            newest=online_form(service),
            views=views,
            choices=choices,
            form_errors=errors.get(FORM_ERROR, []),
            field_errors=field_errors,
            draft=draft,
            application=application,
            action=action,
            application_url=application_url,
            submission_id=None if application else submission_id(posted_submission, draft),
        ),
        status,
    )


@dataclass(frozen=True)
class _PostedPage:
    """A posted form page: its form version, draft and submission id, and the typed data."""

    form: FormDefinition
    draft: Draft | None
    draft_id: int | None
    submission: str | None
    posted: Posted


def _read_page(
    user: HallUser,
    service: Service,
    newest: FormDefinition,
    fields: MultiDict[str, str],
    files: MultiDict[str, FileStorage],
) -> _PostedPage:
    """Read a posted form page (a post, or one kept across an expired session)."""
    posted_submission = fields.get("submission_id")
    draft_id = row_id(fields.get("draft_id"))
    draft = find_draft(user.account, draft_id) if draft_id else None
    if draft is None and not draft_id:
        draft = page_draft(user.account, posted_submission)
    if draft is not None and draft.service_id != service.id:
        draft = None
    # The version the page was rendered with, so a definition changed meanwhile does not
    # change the questions under the applicant's feet.
    form = form_version(service, fields.get("form_version"))
    form = form or (draft.form_definition if draft else newest)
    permissions = applicant_permissions(service, form)
    posted = read_post(form.ui, fields, files, user, permissions)
    db.session.commit()  # uploads are kept whatever happens to the rest of the form
    return _PostedPage(form, draft, draft_id, posted_submission, posted)


def _restore_page(
    user: HallUser, service: Service, newest: FormDefinition
) -> ResponseReturnValue | None:
    """The form page again with what was typed before the session expired, if it was kept."""
    kept = given_back(user)
    if kept is None:
        return None
    page = _read_page(user, service, newest, kept, MultiDict())
    chosen, _errors = read_choices(approver_choices(service), kept, check=False)
    return _render_form(
        user,
        service,
        page.form,
        page.posted.data,
        page.posted.errors,
        draft=page.draft,
        chosen=chosen,
        posted_submission=page.submission,
    )


@bp.route("/services/<row_id:service_id>/apply", methods=["GET", "POST"])
@login_required
@keeps_form()
def apply(user: HallUser, service_id: int) -> ResponseReturnValue:
    """在线办理: fill the service's form, save it as a draft, or submit it."""
    service = find_published_service(service_id)
    newest = online_form(service) if service is not None else None
    if service is None or newest is None:
        return _no_form()
    if request.method == "GET":
        restored = _restore_page(user, service, newest)
        if restored is not None:
            return restored
        draft_arg = request.args.get("draft", "")
        if draft_arg:
            draft_id = row_id(draft_arg)
            draft = find_draft(user.account, draft_id) if draft_id else None
            if draft is None or draft.service_id != service.id:
                return error_response(404, _("草稿不存在"), _("该草稿不存在或已被删除。"))
            return _render_form(
                user, service, draft.form_definition, draft.data, draft=draft, chosen=draft.chosen
            )
        return _render_form(user, service, newest, {})

    page = _read_page(user, service, newest, request.form, request.files)
    form, draft, draft_id, posted = page.form, page.draft, page.draft_id, page.posted
    posted_submission = page.submission
    saving = request.form.get("action") == "draft"
    chosen, choice_errors = read_choices(
        approver_choices(service), request.form, check=not saving, applicant=user.account
    )

    def again(errors: dict[str, list[str]], status: int = 422) -> ResponseReturnValue:
        return _render_form(
            user,
            service,
            form,
            posted.data,
            errors,
            draft=draft,
            chosen=chosen,
            status=status,
            posted_submission=posted_submission,
        )

    if saving:
        try:
            draft = save_draft(user, service, form, posted.data, draft, chosen)
        except SubmissionInvalid as exc:
            return again(merge_errors(posted.errors, exc.errors))
        if not draft_id:
            remember_page_draft(user.account, posted_submission, draft)
        if posted.errors:
            flash(_("已存到草稿箱，但有附件未能保存，请查看提示。"), "error")
            return again(posted.errors, 200)
        flash(_("“%(title)s”已存到草稿箱。", title=service.title), "success")
        return redirect(url_for("forms.drafts"))
    problems = merge_errors(posted.errors, choice_errors)
    if problems:
        # Show the rest of the form's errors too, all at once.
        shown = apply_computed(form.ui, apply_profile(form.ui, posted.data, profile_of(user)))
        return again(merge_errors(problems, validate_submission(form.schema, form.ui, shown)))
    claim = claim_submission(user.account, posted_submission)
    if claim.earlier is not None:
        flash(_("这份表单已经提交过，没有重复提交。"), "success")
        return redirect(url_for("forms.submitted", application_id=claim.earlier))
    if claim.busy:
        return error_response(
            409,
            _("正在提交"),
            _("这份表单已提交，正在处理中。请稍后在待办中心“我发起的”中查看，不要重复提交。"),
        )
    application: Application | None = None
    try:
        application = submit_form(service, user, form, posted.data, draft, chosen)
    except FormOutdated as exc:
        # What was typed moves to the newest version (fields of the same name keep it).
        return _render_form(
            user,
            service,
            newest,
            posted.data,
            exc.errors,
            draft=draft,
            chosen=chosen,
            status=409,
            posted_submission=posted_submission,
        )
    except SubmissionInvalid as exc:
        return again(exc.errors)
    except NotConfigured:
        return _no_form()
    finally:
        finish_submission(claim, application)
    return redirect(url_for("forms.submitted", application_id=application.id))


@bp.get("/applications/<row_id:application_id>/submitted")
@login_required
def submitted(user: HallUser, application_id: int) -> ResponseReturnValue:
    """提交成功: what happens next and the way to the application page."""
    application = db.session.get(Application, application_id)
    if application is None or application.applicant != user.account:
        return error_response(404, _("申请不存在"), _("该申请不存在或不是您提交的。"))
    return render_template(
        "forms/submitted.html",
        application=application,
        service=db.session.get(Service, application.service_id),
        application_url=application_url(application.id),
    )


@bp.get("/drafts")
@login_required
def drafts(user: HallUser) -> ResponseReturnValue:
    """草稿箱: forms saved half-filled, newest first."""
    return render_template("forms/drafts.html", drafts=drafts_of(user.account))


@bp.get("/drafts/<row_id:draft_id>")
@login_required
def resume_draft(user: HallUser, draft_id: int) -> ResponseReturnValue:
    """Reopen a draft in its service's form, with the draft's form version."""
    draft = find_draft(user.account, draft_id)
    if draft is None:
        return error_response(404, _("草稿不存在"), _("该草稿不存在或已被删除。"))
    return redirect(url_for("forms.apply", service_id=draft.service_id, draft=draft.id))


@bp.post("/drafts/<row_id:draft_id>/delete")
@login_required
def remove_draft(user: HallUser, draft_id: int) -> ResponseReturnValue:
    """删除 a draft (and the files only it held)."""
    draft = find_draft(user.account, draft_id)
    if draft is None:
        return error_response(404, _("草稿不存在"), _("该草稿不存在或已被删除。"))
    title = draft.service.title
    delete_draft(draft)
    flash(_("已删除“%(title)s”的草稿。", title=title), "success")
    return redirect(url_for("forms.drafts"))


@bp.get("/attachments/<row_id:attachment_id>")
@login_required
def download(user: HallUser, attachment_id: int) -> ResponseReturnValue:
    """下载 an attachment: only for those who may see its application (or its uploader)."""
    found = attachments.open_for(attachment_id, user)
    if found is None:
        return error_response(404, _("附件不存在"), _("该附件不存在，或您没有查看它的权限。"))
    attachment, path = found
    response = send_file(
        Path(path),
        mimetype=attachment.content_type
        if attachment.content_type in CONTENT_TYPES.values()
        else "application/octet-stream",
        as_attachment=True,
        download_name=attachment.original_name,
        max_age=0,
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-store"
    return response


def _read_resubmission(
    user: HallUser,
    application: Application,
    fields: MultiDict[str, str],
    files: MultiDict[str, FileStorage],
) -> Posted:
    """Read a posted 重新提交 page (a post, or one kept across an expired session)."""
    form = application.form_definition
    permissions = start_permissions(application.flow_snapshot, form)
    posted = read_post(form.ui, fields, files, user, permissions, application.id)
    db.session.commit()
    return posted


@bp.route("/applications/<row_id:application_id>/resubmit", methods=["GET", "POST"])
@login_required
@keeps_form()
def resubmit_form(user: HallUser, application_id: int) -> ResponseReturnValue:
    """重新提交 after 退回: the applicant edits the form and sends it on again."""
    application = db.session.get(Application, application_id)
    if application is None or application.applicant != user.account:
        return error_response(404, _("申请不存在"), _("该申请不存在或不是您提交的。"))
    service = db.session.get(Service, application.service_id)
    if service is None:
        return _no_form()
    if not may_resubmit(application, user):
        return error_response(409, _("不能重新提交"), _("只有被退回给您的申请才能修改后重新提交。"))
    form = application.form_definition
    if request.method == "GET":
        kept = given_back(user)
        if kept is None:
            data = dict(application.data)
            return _render_form(user, service, form, data, application=application)
        restored = _read_resubmission(user, application, kept, MultiDict())
        data = {**application.data, **restored.data}
        return _render_form(user, service, form, data, restored.errors, application=application)
    posted = _read_resubmission(user, application, request.form, request.files)
    if posted.errors:
        return _render_form(
            user, service, form, posted.data, posted.errors, application=application, status=422
        )
    try:
        resubmit(application, user, posted.data)
    except SubmissionInvalid as exc:
        db.session.rollback()
        application = db.session.get(Application, application_id) or application
        return _render_form(
            user, service, form, posted.data, exc.errors, application=application, status=422
        )
    flash(_("已重新提交，申请重新进入审批流程。"), "success")
    return redirect(application_url(application.id))


def too_large(error: RequestEntityTooLarge) -> ResponseReturnValue:
    """413 as a page the applicant understands, instead of a bare error."""
    return error_response(
        413,
        _("上传的文件太大"),
        _(
            "本次提交的内容超过了 %(total)s 的上限，未被接收。每个附件不超过 %(size)s，"
            "一次最多上传%(n)s个文件。请返回上一页，压缩或拆分文件后分次上传。",
            total=attachments.human_size(_request_limit()),
            size=attachments.human_size(attachments.max_bytes()),
            n=attachments.UPLOADS_PER_REQUEST,
        ),
    )


def _request_limit() -> int:
    return int(current_app.config.get("MAX_CONTENT_LENGTH") or 0)


def setup_forms(app: Flask) -> None:
    """Register the applicant's pages; size the request limit after the attachment limit."""
    if not app.config.get("STORAGE_DIR"):
        app.config["STORAGE_DIR"] = str(Path(app.instance_path) / "attachments")
    if not app.config.get("MAX_CONTENT_LENGTH"):
        # Room for a full set of attachments plus the form's own fields.
        app.config["MAX_CONTENT_LENGTH"] = (
            app.config["ATTACHMENT_MAX_BYTES"] * attachments.UPLOADS_PER_REQUEST + 1024 * 1024
        )
    app.register_blueprint(bp)
    app.register_error_handler(RequestEntityTooLarge, too_large)
