"""Admin-only console pages besides the registry: 部门管理 (/admin/departments), 角色
(/admin/roles), 安全策略 (/admin/policy) and 批量导入 (/admin/import).

Thin views over :mod:`idp.admin.departments`, :mod:`idp.admin.role_admin`,
:mod:`idp.policy_settings` and :func:`idp.directory.importing.import_users`.
"""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Flask,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.exceptions import RequestEntityTooLarge

from idp.admin.access import add_console_section, console_required
from idp.admin.admin_forms import (
    DepartmentForm,
    GrantRoleForm,
    ImportForm,
    MoveDepartmentForm,
    PolicyForm,
    ReasonForm,
    RenameDepartmentForm,
    RevokeRoleForm,
)
from idp.admin.departments import (
    DepartmentError,
    create_department,
    delete_department,
    department_tree,
    flatten,
    move_department,
    rename_department,
)

# Imported before the sections below are added, so 应用接入 heads them in the nav.
from idp.admin.registry import bp as registry
from idp.admin.role_admin import RoleError, grant_by_account, revoke, role_holders
from idp.audit.operations import record
from idp.directory.importing import import_users
from idp.directory.models import Department, User
from idp.directory.operations import IMPORT_COLUMNS, DirectoryError
from idp.directory.roles import Role
from idp.extensions import db
from idp.policy_settings import (
    GROUPS,
    POLICY_FIELDS,
    PolicyError,
    defaults,
    format_value,
    overrides,
    update_policy,
)
from shared.ids import row_id

bp = Blueprint("admin_directory", __name__, url_prefix="/admin", template_folder="templates")

add_console_section(_l("部门管理"), "admin_directory.departments", Role.ADMIN)
add_console_section(_l("角色与权限"), "admin_directory.roles", Role.ADMIN)
add_console_section(_l("安全策略"), "admin_directory.policy", Role.ADMIN)
add_console_section(_l("批量导入"), "admin_directory.import_page", Role.ADMIN)

#: Largest CSV the import page accepts (the CLI has no limit).
IMPORT_MAX_BYTES = 5 * 1024 * 1024
#: Room for the multipart envelope and the other fields around the file.
_FORM_OVERHEAD = 64 * 1024
_ZIP_MAGIC = b"PK\x03\x04"


def setup_upload_limit(app: Flask) -> None:
    """Cap request bodies (unless the deployment set its own cap) so an upload cannot be huge."""
    if app.config.get("MAX_CONTENT_LENGTH") is None:
        app.config["MAX_CONTENT_LENGTH"] = IMPORT_MAX_BYTES + _FORM_OVERHEAD


def _too_large_message() -> str:
    return _(
        "文件过大：最多 %(mb)d MB。请把名单拆成几个文件分别导入。",
        mb=IMPORT_MAX_BYTES // (1024 * 1024),
    )


@bp.errorhandler(RequestEntityTooLarge)
def upload_too_large(error: RequestEntityTooLarge) -> ResponseReturnValue:
    """An upload over the cap: the import page again with a message, nothing imported."""
    # The body was refused before the console check could run: say only what went wrong.
    return render_template("admin/too_large.html", message=_too_large_message()), 413


# --- departments --------------------------------------------------------------------------------


def _department(department_id: int) -> Department:
    department = db.session.get(Department, department_id)
    if department is None:
        abort(404)
    return department


@bp.route("/departments", methods=["GET", "POST"])
@console_required(Role.ADMIN)
def departments(user: User) -> ResponseReturnValue:
    """The department tree, and the form to add a department."""
    form = DepartmentForm()
    if form.validate_on_submit():
        try:
            department = create_department(
                form.code.data or "",
                form.name.data or "",
                form.parent_code.data,
                actor=user,
                reason=form.reason.data or "",
            )
        except DepartmentError as exc:
            db.session.rollback()
            form.code.errors = [*form.code.errors, str(exc)]
        else:
            db.session.commit()
            flash(_("已新建部门 %(name)s。", name=department.name), "success")
            return redirect(url_for(".departments"))
    status = 400 if form.is_submitted() else 200
    nodes = flatten(department_tree())
    return render_template("admin/departments.html", form=form, nodes=nodes), status


@bp.route("/departments/<int:department_id>", methods=["GET", "POST"])
@console_required(Role.ADMIN)
def department(user: User, department_id: int) -> ResponseReturnValue:
    """One department: rename it, move it, or delete it when empty."""
    department = _department(department_id)
    rename = RenameDepartmentForm(prefix="rename")
    move = MoveDepartmentForm(prefix="move")
    status = 200
    if rename.submit.data or move.submit.data:
        form: Any = rename if rename.submit.data else move
        if form.validate_on_submit():
            try:
                if form is rename:
                    changed = rename_department(
                        department,
                        rename.name.data or "",
                        actor=user,
                        reason=form.reason.data or "",
                    )
                else:
                    changed = move_department(
                        department, move.parent_code.data, actor=user, reason=form.reason.data or ""
                    )
            except DepartmentError as exc:
                db.session.rollback()
                target = rename.name if form is rename else move.parent_code
                target.errors = [*target.errors, str(exc)]
                status = 400
            else:
                db.session.commit()
                flash(_("已保存。") if changed else _("没有修改。"), "success")
                return redirect(url_for(".department", department_id=department.id))
        else:
            status = 400
    # The form not posted shows the department as it stands: an empty 上级部门 box after a
    # refused rename would read as 顶级, one 移动 press from moving it there.
    if not rename.submit.data:
        rename.name.data = department.name
    if not move.submit.data:
        move.parent_code.data = department.parent.code if department.parent else ""
    return render_template(
        "admin/department.html",
        department=department,
        rename=rename,
        move=move,
        delete=ReasonForm(formdata=None, prefix="delete"),
    ), status


@bp.post("/departments/<int:department_id>/delete")
@console_required(Role.ADMIN)
def delete_department_view(user: User, department_id: int) -> ResponseReturnValue:
    """Delete an empty department."""
    department = _department(department_id)
    form = ReasonForm(prefix="delete")
    if not form.validate_on_submit():
        flash(_("原因过长。"), "error")
        return redirect(url_for(".department", department_id=department_id))
    name = department.name
    try:
        delete_department(department, actor=user, reason=form.reason.data or "")
    except DepartmentError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(url_for(".department", department_id=department_id))
    db.session.commit()
    flash(_("已删除部门 %(name)s。", name=name), "success")
    return redirect(url_for(".departments"))


# --- roles --------------------------------------------------------------------------------------


@bp.route("/roles", methods=["GET", "POST"])
@console_required(Role.ADMIN)
def roles(user: User) -> ResponseReturnValue:
    """Who holds which console role; grant one by account number."""
    form = GrantRoleForm()
    if form.validate_on_submit():
        try:
            person = grant_by_account(
                form.account.data or "",
                Role(form.role.data),
                actor=user,
                reason=form.reason.data or "",
            )
        except RoleError as exc:
            db.session.rollback()
            form.account.errors = [*form.account.errors, str(exc)]
        else:
            db.session.commit()
            flash(
                _("已授予 %(name)s（%(account)s）角色。", name=person.name, account=person.account),
                "success",
            )
            return redirect(url_for(".roles"))
    status = 400 if form.is_submitted() else 200
    return render_template(
        "admin/roles.html",
        form=form,
        holdings=role_holders(),
        revoke_form=RevokeRoleForm(formdata=None),
    ), status


@bp.post("/roles/revoke")
@console_required(Role.ADMIN)
def revoke_role_view(user: User) -> ResponseReturnValue:
    """Take a console role away from someone."""
    form = RevokeRoleForm()
    valid = form.validate_on_submit()
    role = Role._value2member_map_.get(form.role.data or "")
    user_id = row_id(form.user_id.data)
    if not valid or role is None or user_id is None:
        flash(_("请求无效，请刷新页面后重试。"), "error")
        return redirect(url_for(".roles")), 303
    try:
        person = revoke(user_id, Role(role), actor=user, reason=form.reason.data or "")
    except RoleError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(url_for(".roles")), 303
    db.session.commit()
    flash(_("已撤销 %(name)s 的角色。", name=person.name), "success")
    return redirect(url_for(".roles")), 303


# --- policy -------------------------------------------------------------------------------------


@bp.route("/policy", methods=["GET", "POST"])
@console_required(Role.ADMIN)
def policy(user: User) -> ResponseReturnValue:
    """Password, lockout and code limits: the defaults, the overrides, the form to change them."""
    form = PolicyForm()
    problems: dict[str, str] = {}
    submitted: dict[str, str] = {}
    status = 200
    if form.is_submitted():
        # A box missing from the post is left alone; an empty box returns to the default.
        submitted = {f.name: request.form[f.name] for f in POLICY_FIELDS if f.name in request.form}
        if not form.validate_on_submit():
            status = 400
        else:
            try:
                changes = update_policy(submitted, actor=user, reason=form.reason.data or "")
            except PolicyError as exc:
                db.session.rollback()
                problems = exc.problems
                status = 400
            else:
                db.session.commit()
                flash(
                    _("安全策略已保存，各服务器将在几秒内生效。") if changes else _("没有修改。"),
                    "success",
                )
                return redirect(url_for(".policy"))
    current = overrides()
    values = {
        f.name: submitted[f.name] if f.name in submitted else format_value(current.get(f.name))
        for f in POLICY_FIELDS
    }
    return render_template(
        "admin/policy.html",
        form=form,
        groups=GROUPS,
        fields=POLICY_FIELDS,
        values=values,
        defaults={name: format_value(value) for name, value in defaults().items()},
        problems=problems,
    ), status


# --- import -------------------------------------------------------------------------------------


def _upload_problem(filename: str, data: bytes) -> str | None:
    """Why an upload is not a CSV export we can read, or None."""
    if not data:
        return _("请选择要导入的 CSV 文件。")
    if len(data) > IMPORT_MAX_BYTES:
        return _too_large_message()
    if data.startswith(_ZIP_MAGIC) or not filename.lower().endswith((".csv", ".txt", ".tsv")):
        return _("只能导入 CSV 文件（Excel 表格请先“另存为”CSV）。")
    return None


@bp.route("/import", methods=["GET", "POST"])
@console_required(Role.ADMIN)
def import_page(user: User) -> ResponseReturnValue:
    """Upload an HR or student-system CSV; the per-row report is shown on the page."""
    form = ImportForm()
    report = None
    error = None
    status = 200
    if form.is_submitted():
        status = 400
        upload = request.files.get(form.file.name)
        filename = (upload.filename or "") if upload else ""
        data = upload.read(IMPORT_MAX_BYTES + 1) if upload else b""
        if not form.validate_on_submit():
            error = _("请求无效，请刷新页面后重试。")
        elif (error := _upload_problem(filename, data)) is None:
            try:
                report = import_users(data)
            except DirectoryError as exc:
                db.session.rollback()
                error = str(exc)
            else:
                record(
                    "user.import",
                    actor=user,
                    subject=filename[:255] or None,
                    detail={
                        "via": "console",
                        "file": filename,
                        "created": report.created,
                        "updated": report.updated,
                        "unchanged": report.unchanged,
                        "failed": len(report.failed),
                        **({"reason": form.reason.data} if form.reason.data else {}),
                    },
                )
                db.session.commit()
                status = 200
    return render_template(
        "admin/import.html",
        form=form,
        report=report,
        error=error,
        columns=IMPORT_COLUMNS,
        max_mb=IMPORT_MAX_BYTES // (1024 * 1024),
    ), status


def setup_admin_sections(app: Flask) -> None:
    """Register the admin-only console pages (registry, departments, roles, policy, import)."""
    app.register_blueprint(registry)
    app.register_blueprint(bp)
    setup_upload_limit(app)
