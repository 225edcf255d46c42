"""服务管理 (/manage): services and guides, categories, notices, system entries, roles, audit.

Department service managers see and change only their departments' content; hall admins see
everything and grant roles. The permission rules live in :mod:`hall.catalog.roles` and are
applied again by every operation, so a forged form cannot reach another department.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from werkzeug.datastructures import MultiDict
from wtforms.fields.choices import SelectChoice

from hall.audit.operations import recent_events
from hall.auth.kept_forms import given_back, keeps_form
from hall.auth.models import CAMPUS_TZ, HallUser, aware, utcnow
from hall.auth.sessions import login_required
from hall.catalog.labels import audience_names
from hall.catalog.models import Category, Notice, Service, SystemEntry
from hall.catalog.operations import (
    CatalogError,
    NotAllowed,
    NoticeData,
    ServiceData,
    SystemData,
    all_categories,
    all_departments,
    managed_notices,
    managed_services,
    managed_systems,
    notice_state,
    publish_service,
    save_category,
    save_notice,
    save_service,
    save_system,
    unpublish_service,
    withdraw_notice,
)
from hall.catalog.roles import (
    HallRole,
    RoleError,
    RoleGrant,
    all_grants,
    grant_role,
    is_hall_admin,
    managed_department_ids,
    may_manage,
    may_manage_department,
    revoke_grant,
)
from hall.directory.models import Department
from hall.extensions import db
from hall.manage.forms import CategoryForm, GrantForm, NoticeForm, ServiceForm, SystemForm
from shared.web import error_response

bp = Blueprint("manage", __name__, url_prefix="/manage", template_folder="templates")

View = Callable[..., ResponseReturnValue]
_Saved = TypeVar("_Saved")


def _forbidden() -> ResponseReturnValue:
    db.session.rollback()
    return error_response(
        403,
        _("没有权限"),
        _("您不是该部门的服务管理员，不能修改这项内容。如需权限请联系大厅管理员。"),
    )


def manager_needed(view: View) -> View:
    """Signed-in service managers and hall admins only (others: 403)."""

    @login_required
    @functools.wraps(view)
    def wrapper(user: HallUser, **kwargs: Any) -> ResponseReturnValue:
        if not may_manage(user):
            return _forbidden()
        try:
            return view(user, **kwargs)
        except NotAllowed:
            return _forbidden()

    return wrapper


def admin_needed(view: View) -> View:
    """Hall admins only."""

    @login_required
    @functools.wraps(view)
    def wrapper(user: HallUser, **kwargs: Any) -> ResponseReturnValue:
        if not is_hall_admin(user):
            return _forbidden()
        return view(user, **kwargs)

    return wrapper


def _my_departments(user: HallUser) -> list[Department]:
    managed = managed_department_ids(user)
    return [d for d in all_departments() if managed is None or d.id in managed]


def _get_or_404(model: type[Any], object_id: int) -> Any:
    found = db.session.get(model, object_id)
    if found is None:
        abort(404)
    return found


def _state_names() -> dict[str, str]:
    return {
        "draft": _("草稿"),
        "scheduled": _("定时发布"),
        "published": _("已发布"),
        "withdrawn": _("已撤回"),
    }


def _commit_or_flash(save: Callable[[], _Saved]) -> _Saved | None:
    """Run a catalogue save and commit it; on a CatalogError roll back, flash it, return None."""
    try:
        saved = save()
    except CatalogError as error:
        db.session.rollback()
        flash(str(error), "error")
        return None
    db.session.commit()
    return saved


@bp.get("")
@manager_needed
def index(user: HallUser) -> ResponseReturnValue:
    """The manager's overview: services, notices and entries of their departments."""
    managed = managed_department_ids(user)
    return render_template(
        "manage/index.html",
        services=managed_services(managed),
        notices=managed_notices(managed),
        systems=managed_systems(managed),
        departments=_my_departments(user),
        is_admin=managed is None,
        notice_state=notice_state,
        state_names=_state_names(),
    )


# 服务 ------------------------------------------------------------------------------------


def _service_form(
    user: HallUser, service: Service | None, kept: MultiDict[str, str] | None = None
) -> ServiceForm:
    """The service form: posted, given back after an expired session (``kept``), or fresh."""
    form = ServiceForm(obj=service) if kept is None else ServiceForm(formdata=kept, obj=service)
    form.department_id.choices = [SelectChoice(str(d.id), d.name) for d in _my_departments(user)]
    form.category_id.choices = [SelectChoice("", _("（未分类）"))] + [
        SelectChoice(str(c.id), c.name) for c in all_categories()
    ]
    if request.method == "GET" and kept is None:
        if service is not None:
            form.audiences.data = [a.value for a in service.audiences]
            form.entry_url.data = service.entry_url or ""
        else:
            form.online.data = True
            form.audiences.data = ["student", "staff"]
    return form


def _service_data(form: ServiceForm) -> ServiceData:
    return ServiceData(
        department_id=form.department_id.data,
        title=form.title.data or "",
        category_id=form.category_id.data,
        summary=form.summary.data or "",
        keywords=form.keywords.data or "",
        audiences=tuple(form.audiences.data or ()),
        online=bool(form.online.data),
        entry_url=form.entry_url.data or "",
        recommended=bool(form.recommended.data),
        purpose=form.purpose.data or "",
        eligibility=form.eligibility.data or "",
        materials=form.materials.data or "",
        steps=form.steps.data or "",
        approval_flow=form.approval_flow.data or "",
        time_limit=form.time_limit.data or "",
        fee=form.fee.data or "",
        contact_phone=form.contact_phone.data or "",
        place=form.place.data or "",
        offline_instructions=form.offline_instructions.data or "",
    )


def _edit_service(user: HallUser, service: Service | None) -> ResponseReturnValue:
    if service is not None and not may_manage_department(user, service.department_id):
        return _forbidden()
    form = _service_form(user, service, given_back(user))
    status = 200
    if request.method == "POST":
        if form.validate():
            saved = _commit_or_flash(
                lambda: save_service(_service_data(form), actor=user, service=service)
            )
            if saved is None:
                status = 400
            else:
                flash(_("已保存“%(title)s”。", title=saved.title), "success")
                return redirect(url_for(".edit_service", service_id=saved.id))
        else:
            status = 400
    return render_template("manage/service_form.html", form=form, service=service), status


@bp.route("/services/new", methods=["GET", "POST"])
@manager_needed
@keeps_form()
def new_service(user: HallUser) -> ResponseReturnValue:
    """新建服务 (saved as a draft)."""
    return _edit_service(user, None)


@bp.route("/services/<row_id:service_id>/edit", methods=["GET", "POST"])
@manager_needed
@keeps_form()
def edit_service(user: HallUser, service_id: int) -> ResponseReturnValue:
    """编辑服务与办事指南."""
    return _edit_service(user, _get_or_404(Service, service_id))


@bp.get("/services/<row_id:service_id>/preview")
@manager_needed
def preview_service(user: HallUser, service_id: int) -> ResponseReturnValue:
    """预览: the guide as the public will see it, drafts included."""
    service: Service = _get_or_404(Service, service_id)
    if not may_manage_department(user, service.department_id):
        return _forbidden()
    return render_template(
        "catalog/guide.html",
        service=service,
        audiences=audience_names(),
        is_favourite=False,
        preview=True,
    )


@bp.post("/services/<row_id:service_id>/publish")
@manager_needed
def publish(user: HallUser, service_id: int) -> ResponseReturnValue:
    """发布."""
    service: Service = _get_or_404(Service, service_id)
    publish_service(service, actor=user)
    db.session.commit()
    flash(_("“%(title)s”已发布。", title=service.title), "success")
    return redirect(url_for(".edit_service", service_id=service.id))


@bp.post("/services/<row_id:service_id>/unpublish")
@manager_needed
def unpublish(user: HallUser, service_id: int) -> ResponseReturnValue:
    """取消发布."""
    service: Service = _get_or_404(Service, service_id)
    unpublish_service(service, actor=user)
    db.session.commit()
    flash(_("“%(title)s”已取消发布。", title=service.title), "success")
    return redirect(url_for(".edit_service", service_id=service.id))


# 类别 ------------------------------------------------------------------------------------


def _sort(form: CategoryForm) -> int:
    """The order typed (0 puts a category first), 100 when left empty."""
    return form.sort.data if form.sort.data is not None else 100


@bp.route("/categories", methods=["GET", "POST"])
@manager_needed
def categories(user: HallUser) -> ResponseReturnValue:
    """服务类别: list and add."""
    form = CategoryForm()
    status = 200
    if request.method == "POST":
        if form.validate():
            if (
                _commit_or_flash(
                    lambda: save_category(form.name.data or "", _sort(form), actor=user)
                )
                is None
            ):
                status = 400
            else:
                flash(_("已添加服务类别“%(name)s”。", name=form.name.data), "success")
                return redirect(url_for(".categories"))
        else:
            status = 400
    return render_template("manage/categories.html", form=form, categories=all_categories()), status


@bp.post("/categories/<row_id:category_id>")
@manager_needed
def rename_category(user: HallUser, category_id: int) -> ResponseReturnValue:
    """Rename a category or change its order."""
    category: Category = _get_or_404(Category, category_id)
    form = CategoryForm()
    if not form.validate():
        # Each wrong box says its own problem: a bad 排序 is not an empty name.
        if form.name.errors:
            flash(_("类别名称不能为空，且不超过 64 个字符。"), "error")
        for error in form.sort.errors:
            flash(f"{form.sort.label.text}：{error}", "error")
        return redirect(url_for(".categories"))
    if _commit_or_flash(
        lambda: save_category(form.name.data or "", _sort(form), actor=user, category=category)
    ):
        flash(_("已保存服务类别“%(name)s”。", name=category.name), "success")
    return redirect(url_for(".categories"))


# 通知公告 --------------------------------------------------------------------------------


def _to_campus_input(moment: datetime | None) -> datetime | None:
    return aware(moment).astimezone(CAMPUS_TZ).replace(tzinfo=None) if moment else None


def _edit_notice(user: HallUser, notice: Notice | None) -> ResponseReturnValue:
    if notice is not None and not may_manage_department(user, notice.department_id):
        return _forbidden()
    kept = given_back(user)
    form = NoticeForm(obj=notice) if kept is None else NoticeForm(formdata=kept, obj=notice)
    form.department_id.choices = [SelectChoice(str(d.id), d.name) for d in _my_departments(user)]
    if request.method == "GET" and notice is not None and kept is None:
        state = notice_state(notice)
        # A withdrawn notice stays down unless its manager chooses to publish it again.
        modes = {"draft": "draft", "withdrawn": "draft", "scheduled": "schedule"}
        form.mode.data = modes.get(state, "now")
        form.publish_at.data = _to_campus_input(notice.publish_at)
    status = 200
    if request.method == "POST":
        publish_at: datetime | None = None
        valid = form.validate()
        if valid and form.mode.data == "schedule":
            if form.publish_at.data is None:
                form.publish_at.errors = [_("请填写定时发布时间。")]
                valid = False
            else:
                publish_at = form.publish_at.data.replace(tzinfo=CAMPUS_TZ)
                if publish_at <= utcnow():
                    form.publish_at.errors = [_("定时发布时间须晚于现在。")]
                    valid = False
        elif form.mode.data == "now":
            keep = notice.publish_at if notice and notice_state(notice) == "published" else None
            publish_at = keep or utcnow()
        if valid:
            data = NoticeData(
                department_id=form.department_id.data,
                title=form.title.data or "",
                body=form.body.data or "",
                publish_at=publish_at,
            )
            saved = _commit_or_flash(lambda: save_notice(data, actor=user, notice=notice))
            if saved is None:
                status = 400
            else:
                flash(_("已保存公告“%(title)s”。", title=saved.title), "success")
                return redirect(url_for(".index"))
        else:
            status = 400
    return render_template("manage/notice_form.html", form=form, notice=notice), status


@bp.route("/notices/new", methods=["GET", "POST"])
@manager_needed
@keeps_form()
def new_notice(user: HallUser) -> ResponseReturnValue:
    """发布通知公告."""
    return _edit_notice(user, None)


@bp.route("/notices/<row_id:notice_id>/edit", methods=["GET", "POST"])
@manager_needed
@keeps_form()
def edit_notice(user: HallUser, notice_id: int) -> ResponseReturnValue:
    """编辑通知公告."""
    return _edit_notice(user, _get_or_404(Notice, notice_id))


@bp.post("/notices/<row_id:notice_id>/withdraw")
@manager_needed
def withdraw(user: HallUser, notice_id: int) -> ResponseReturnValue:
    """撤回通知公告."""
    notice: Notice = _get_or_404(Notice, notice_id)
    withdraw_notice(notice, actor=user)
    db.session.commit()
    flash(_("公告“%(title)s”已撤回。", title=notice.title), "success")
    return redirect(url_for(".index"))


# 系统入口 --------------------------------------------------------------------------------


def _edit_system(user: HallUser, entry: SystemEntry | None) -> ResponseReturnValue:
    if entry is not None and not may_manage_department(user, entry.department_id):
        return _forbidden()
    kept = given_back(user)
    form = SystemForm(obj=entry) if kept is None else SystemForm(formdata=kept, obj=entry)
    departments = [SelectChoice(str(d.id), d.name) for d in _my_departments(user)]
    form.department_id.choices = (
        [SelectChoice("", _("（全校）"))] if is_hall_admin(user) else []
    ) + departments
    if request.method == "GET" and entry is not None and kept is None:
        form.allowed_kinds.data = sorted(entry.kinds)
    status = 200
    if request.method == "POST":
        if form.validate():
            data = SystemData(
                name=form.name.data or "",
                url=form.url.data or "",
                department_id=form.department_id.data,
                section=form.section.data or "system",
                icon=form.icon.data or "",
                description=form.description.data or "",
                allowed_kinds=tuple(form.allowed_kinds.data or ()),
                published=bool(form.published.data),
                sort=form.sort.data if form.sort.data is not None else 100,
            )
            saved = _commit_or_flash(lambda: save_system(data, actor=user, entry=entry))
            if saved is None:
                status = 400
            else:
                flash(_("已保存“%(title)s”。", title=saved.name), "success")
                return redirect(url_for(".index"))
        else:
            status = 400
    return render_template("manage/system_form.html", form=form, entry=entry), status


@bp.route("/systems/new", methods=["GET", "POST"])
@manager_needed
@keeps_form()
def new_system(user: HallUser) -> ResponseReturnValue:
    """新建系统入口或便民服务."""
    return _edit_system(user, None)


@bp.route("/systems/<row_id:system_id>/edit", methods=["GET", "POST"])
@manager_needed
@keeps_form()
def edit_system(user: HallUser, system_id: int) -> ResponseReturnValue:
    """编辑系统入口."""
    return _edit_system(user, _get_or_404(SystemEntry, system_id))


# 角色与审计 ------------------------------------------------------------------------------


@bp.route("/roles", methods=["GET", "POST"])
@admin_needed
def roles(user: HallUser) -> ResponseReturnValue:
    """授权: grant hall admin and department service manager roles."""
    form = GrantForm()
    departments = all_departments()
    form.department_id.choices = [SelectChoice("", _("（大厅管理员无需部门）"))] + [
        SelectChoice(str(d.id), d.name) for d in departments
    ]
    status = 200
    if request.method == "POST":
        if form.validate():
            role = HallRole(form.role.data)
            department = (
                db.session.get(Department, form.department_id.data)
                if form.department_id.data
                else None
            )
            try:
                added = grant_role(form.account.data or "", role, department, actor=user.account)
            except RoleError as error:
                db.session.rollback()
                flash(str(error), "error")
                status = 400
            else:
                db.session.commit()
                flash(
                    _("已授权。") if added else _("该账号已有这个角色。"),
                    "success" if added else "info",
                )
                return redirect(url_for(".roles"))
        else:
            status = 400
    return render_template("manage/roles.html", form=form, grants=all_grants()), status


@bp.post("/roles/<row_id:grant_id>/revoke")
@admin_needed
def revoke(user: HallUser, grant_id: int) -> ResponseReturnValue:
    """Take a role away."""
    grant: RoleGrant = _get_or_404(RoleGrant, grant_id)
    revoke_grant(grant, actor=user.account)
    db.session.commit()
    flash(_("已撤销授权。"), "success")
    return redirect(url_for(".roles"))


@bp.get("/audit")
@admin_needed
def audit(user: HallUser) -> ResponseReturnValue:
    """操作记录: the latest administrative changes in the hall."""
    return render_template("manage/audit.html", events=recent_events())
