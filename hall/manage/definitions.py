"""表单定义与审批流程定义 (/manage/services/<id>/form, …/flow): edit, preview and version.

A service manager edits the current version as JSON text. 预览 checks it and shows the form as
applicants will see it (or the flow diagram) without saving; 保存为新版本 saves version n+1
through ``hall.workflow.operations`` (which validates again and audits). Anything refused is
shown with every reason in Chinese and the text stays exactly as typed; nothing is saved.
Running applications keep the form version and the flow copy they were submitted with, so the
history lists how many applications use each version.

The first half (checking and counting) knows nothing of requests; the views are the second.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString
from flask_wtf import FlaskForm
from sqlalchemy import Text, cast, func, select
from sqlalchemy.exc import IntegrityError
from wtforms import TextAreaField

from hall.auth.kept_forms import given_back, keeps_form
from hall.auth.models import HallUser
from hall.catalog.models import Service
from hall.catalog.roles import may_manage_department
from hall.extensions import db
from hall.forms.rendering import FieldView, field_views
from hall.forms.schema import field_names, validate_definition
from hall.inbox.diagram import FUTURE, Diagram, build_diagram
from hall.manage.views import _forbidden, _get_or_404, manager_needed
from hall.workflow import engine
from hall.workflow.definitions import parse_flow, validate_flow
from hall.workflow.models import Application, FlowDefinition, FormDefinition
from hall.workflow.operations import (
    DefinitionInvalid,
    latest_flow,
    latest_form,
    save_flow_definition,
    save_form_definition,
)

bp = Blueprint("manage_definitions", __name__, url_prefix="/manage", template_folder="templates")

#: Longest definition text accepted (the largest demo form is about 12 000 characters).
MAX_TEXT = 200_000
#: Deepest nesting of JSON arrays and objects accepted. A flow may nest 16 levels of condition
#: and parallel nodes (four JSON levels each); the checks and the diagram walk the definition
#: recursively, so text the json module still reads (about 900 levels) must stop here.
MAX_DEPTH = 100
FORM, FLOW = "form", "flow"
KINDS = (FORM, FLOW)
RUNNING = engine.ApplicationStatus.RUNNING.value

#: The json module's parse errors, in the reader's language (the module's wording is fixed
#: English). Each marked with ``_l`` where it is written: ``_(variable)`` translates, but Babel
#: cannot extract a variable, so the catalogue would never hold these.
_JSON_REASONS: tuple[tuple[str, LazyString], ...] = (
    ("Expecting value", _l("此处应为一个值（对象、数组、字符串、数字、true、false 或 null）")),
    ("Expecting property name enclosed in double quotes", _l("此处应为用双引号括起的属性名")),
    ("Expecting ',' delimiter", _l("此处缺少逗号")),
    ("Expecting ':' delimiter", _l("此处缺少冒号")),
    ("Unterminated string starting at", _l("字符串缺少结尾的双引号")),
    ("Invalid control character at", _l("字符串中有不允许的控制字符（如换行），请写作 \\n")),
    ("Invalid \\uXXXX escape", _l("无效的 \\u 转义")),
    ("Invalid \\escape", _l("无效的转义字符")),
    ("Extra data", _l("JSON 已结束，后面还有多余的内容")),
)


# --------------------------------------------------------------------------- checking


@dataclass
class Checked:
    """The result of checking a definition text: the value to save, or every problem."""

    problems: list[str] = field(default_factory=list)
    #: The form (``{"schema", "ui"}``) or flow definition, when the text parsed.
    value: dict[str, Any] | None = None
    views: list[FieldView] = field(default_factory=list)
    diagram: Diagram | None = None

    @property
    def ok(self) -> bool:
        """Whether the definition may be saved."""
        return self.value is not None and not self.problems


class _DuplicateKey(ValueError):
    """A JSON object names the same key twice (json would silently keep the last)."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def _json_reason(message: str) -> str:
    for english, reason in _JSON_REASONS:
        if message.startswith(english):
            return str(reason)
    return str(_("语法错误"))


def _too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether arrays and objects in ``value`` nest more than ``limit`` levels (no recursion)."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            if depth > limit:
                return True
            pending.extend((child, depth + 1) for child in item)
    return False


def parse_text(text: str) -> tuple[dict[str, Any] | None, list[str]]:
    """The JSON object in ``text``, or why it is not one (line and column in Chinese)."""
    if not text.strip():
        return None, [_("请填写 JSON 定义。")]
    if len(text) > MAX_TEXT:
        return None, [_("定义过长（最多 %(n)s 个字符）。", n=MAX_TEXT)]
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as error:
        return None, [
            _(
                "JSON 格式错误：第 %(line)s 行第 %(column)s 列，%(reason)s。",
                line=error.lineno,
                column=error.colno,
                reason=_json_reason(error.msg),
            )
        ]
    except _DuplicateKey as error:
        return None, [_("JSON 格式错误：同一对象中键“%(key)s”出现了两次。", key=error.key)]
    except RecursionError:
        return None, [_("JSON 格式错误：嵌套层级过深。")]
    if _too_deep(value):
        return None, [_("JSON 格式错误：嵌套层级过深。")]
    if not isinstance(value, dict):
        return None, [_("定义必须是一个 JSON 对象（以 { 开头）。")]
    return value, []


def _ui_shape_problems(ui: Any) -> list[str]:
    """What the form checks assume of the UI schema's shape, so odd input never crashes them."""
    if not isinstance(ui, dict):
        return [_("ui 必须是一个对象。")]
    problems: list[str] = []
    order = ui.get("order", [])
    if not isinstance(order, list) or not all(isinstance(n, str) for n in order):
        problems.append(_("ui.order 必须是字段名的列表。"))
    fields = ui.get("fields", {})
    if not isinstance(fields, dict):
        return [*problems, _("ui.fields 必须是一个对象。")]
    for name, spec in fields.items():
        if not isinstance(spec, dict):
            problems.append(_("ui.fields 中字段 %(field)s 的设置必须是一个对象。", field=name))
            continue
        columns = spec.get("columns", {})
        if not isinstance(columns, dict) or not all(isinstance(c, dict) for c in columns.values()):
            problems.append(_("表格 %(field)s 的 columns 必须是列名到对象的映射。", field=name))
        if not isinstance(spec.get("labels", {}), dict):
            problems.append(_("字段 %(field)s 的 labels 必须是一个对象。", field=name))
        for key in ("rows", "blank_rows"):
            number = spec.get(key, 1)
            if not isinstance(number, int) or isinstance(number, bool) or not 0 <= number <= 50:
                problems.append(
                    _("字段 %(field)s 的 %(key)s 必须是 0 到 50 之间的整数。", field=name, key=key)
                )
    return problems


def _flow_problems(definition: Mapping[str, Any], fields: Sequence[str]) -> list[str]:
    """Every problem of a flow against the form's fields, translated."""
    return [_(e.message, **e.params) for e in validate_flow(definition, fields)]


def check_form(text: str, flow: FlowDefinition | None) -> Checked:
    """Check a form definition text; the current ``flow`` must still find its fields in it."""
    value, problems = parse_text(text)
    if value is None:
        return Checked(problems)
    schema, ui = value.get("schema"), value.get("ui")
    if not isinstance(schema, dict) or not isinstance(ui, dict) or set(value) - {"schema", "ui"}:
        return Checked([_('表单定义必须是 {"schema": {…}, "ui": {…}}，不能有其他键。')])
    problems = _ui_shape_problems(ui)
    if problems:
        return Checked(problems, value)
    problems = validate_definition(schema, ui)
    if not problems and not isinstance(schema.get("properties", {}), dict):
        problems = [_("schema.properties 必须是一个对象。")]
    if problems:
        return Checked(problems, value)
    try:
        views = field_views(schema, ui, {})
    except (TypeError, ValueError, AttributeError):
        return Checked([_("表单无法显示，请检查各字段的 ui 设置。")], value)
    if flow is not None:
        flow_problems = _flow_problems(flow.definition, field_names(ui))
        if flow_problems:
            lead = _(
                "当前审批流程（第 %(n)s 版）引用了这个表单中没有的字段，请先修改流程：",
                n=flow.version,
            )
            return Checked([lead, *flow_problems], value, views)
    return Checked([], value, views)


def _intern_repeated_nodes(defn: Any, seen: dict[str, Any] | None = None) -> Any:
    """The definition with a node written again (same id, same content) as the same object.

    JSON text cannot point back at a node, so a flow that goes round again is written by
    repeating the node; as one object ``validate_flow`` names it a cycle (形成环路).
    """
    seen = {} if seen is None else seen
    if isinstance(defn, list):
        return [_intern_repeated_nodes(item, seen) for item in defn]
    if not isinstance(defn, dict):
        return defn
    node_id = defn.get("id")
    if isinstance(node_id, str) and "kind" in defn:
        earlier = seen.get(node_id)
        if earlier is not None and earlier == defn:
            return earlier
    result = {key: _intern_repeated_nodes(value, seen) for key, value in defn.items()}
    if isinstance(node_id, str) and "kind" in defn:
        seen.setdefault(node_id, result)
    return result


#: Column sizes of ``workflow_tasks``: a longer node id or name could not be stored later.
MAX_NODE_ID, MAX_NODE_NAME = 64, 200


def _size_problems(defn: Any) -> list[str]:
    """Node names that are not text, and ids and names too long for the task rows."""
    problems: list[str] = []
    if isinstance(defn, list):
        for item in defn:
            problems.extend(_size_problems(item))
    elif isinstance(defn, dict):
        node_id, name = defn.get("id"), defn.get("name")
        if isinstance(node_id, str) and len(node_id) > MAX_NODE_ID:
            problems.append(
                _("节点编号 %(id)s… 过长（最多 %(n)s 个字符）", id=node_id[:20], n=MAX_NODE_ID)
            )
        if isinstance(node_id, str) and name is not None and not isinstance(name, str):
            problems.append(_("节点 %(id)s 的名称必须是文字", id=node_id))
        elif isinstance(node_id, str) and isinstance(name, str) and len(name) > MAX_NODE_NAME:
            problems.append(
                _("节点 %(id)s 的名称过长（最多 %(n)s 个字符）", id=node_id, n=MAX_NODE_NAME)
            )
        for value in defn.values():
            problems.extend(_size_problems(value))
    return problems


def preview_diagram(definition: Mapping[str, Any]) -> Diagram:
    """The flow's diagram before any application: every node and line 未开始."""
    flow = parse_flow(definition)
    drawn = build_diagram(flow, engine.ApplicationState("", {}, engine.ApplicationStatus.RUNNING))
    drawn.boxes = [replace(b, state=FUTURE) for b in drawn.boxes]
    drawn.lines = [replace(line, state=FUTURE) for line in drawn.lines]
    drawn.labels = [replace(label, state=FUTURE) for label in drawn.labels]
    return drawn


def check_flow(text: str, form: FormDefinition | None) -> Checked:
    """Check a flow definition text against the current ``form`` (none: no fields at all)."""
    value, problems = parse_text(text)
    if value is None:
        return Checked(problems)
    fields = field_names(form.ui) if form is not None else []
    problems = _flow_problems(_intern_repeated_nodes(value), fields) + _size_problems(value)
    if problems:
        return Checked(problems, value)
    try:
        diagram = preview_diagram(value)
    except (TypeError, ValueError, KeyError, AttributeError):
        return Checked([_("流程无法绘制，请检查节点设置。")], value)
    return Checked([], value, diagram=diagram)


def pretty(value: Any) -> str:
    """A definition as the editor shows it: indented JSON, Chinese kept readable."""
    return json.dumps(value, ensure_ascii=False, indent=2)


# --------------------------------------------------------------------------- versions


@dataclass(frozen=True)
class VersionRow:
    """One line of the version history."""

    version: int
    created_by: str
    created_at: datetime
    applications: int
    running: int


def _rows(
    versions: Sequence[FormDefinition | FlowDefinition], counts: Mapping[int, tuple[int, int]]
) -> list[VersionRow]:
    return [
        VersionRow(v.version, v.created_by, v.created_at, *counts.get(v.version, (0, 0)))
        for v in versions
    ]


def form_versions(service_id: int) -> list[VersionRow]:
    """Every form version, newest first, with how many applications (and running ones) use it."""
    versions = list(
        db.session.scalars(
            select(FormDefinition)
            .where(FormDefinition.service_id == service_id)
            .order_by(FormDefinition.version.desc())
        )
    )
    counts: dict[int, tuple[int, int]] = {}
    number = {v.id: v.version for v in versions}
    grouped = db.session.execute(
        select(Application.form_definition_id, Application.status, func.count())
        .where(Application.service_id == service_id)
        .group_by(Application.form_definition_id, Application.status)
    )
    for definition_id, status, count in grouped:
        version = number.get(definition_id)
        if version is not None:
            total, running = counts.get(version, (0, 0))
            counts[version] = (total + count, running + (count if status == RUNNING else 0))
    return _rows(versions, counts)


def flow_versions(service_id: int) -> list[VersionRow]:
    """Every flow version, newest first, with how many applications (and running ones) use it.

    An application keeps a copy of its flow rather than a version number, so copies are grouped
    in the database and matched to versions by content (saving an unchanged flow is refused,
    so contents are distinct from then on; equal old ones count for the newest).
    """
    versions = list(
        db.session.scalars(
            select(FlowDefinition)
            .where(FlowDefinition.service_id == service_id)
            .order_by(FlowDefinition.version.desc())
        )
    )
    snapshot = cast(Application.flow_snapshot, Text)
    grouped = db.session.execute(
        select(snapshot, Application.status, func.count())
        .where(Application.service_id == service_id)
        .group_by(snapshot, Application.status)
    )
    counts: dict[int, tuple[int, int]] = {}
    for text, status, count in grouped:
        try:
            copy = json.loads(text)
        except (TypeError, ValueError):
            continue
        version = next((v.version for v in versions if v.definition == copy), None)
        if version is not None:
            total, running = counts.get(version, (0, 0))
            counts[version] = (total + count, running + (count if status == RUNNING else 0))
    return _rows(versions, counts)


def _version(kind: str, service_id: int, number: int) -> FormDefinition | FlowDefinition | None:
    if kind == FORM:
        return db.session.scalars(
            select(FormDefinition).where(
                FormDefinition.service_id == service_id, FormDefinition.version == number
            )
        ).first()
    return db.session.scalars(
        select(FlowDefinition).where(
            FlowDefinition.service_id == service_id, FlowDefinition.version == number
        )
    ).first()


def _text_of(row: FormDefinition | FlowDefinition | None) -> str:
    if row is None:
        return ""
    if isinstance(row, FormDefinition):
        return pretty({"schema": row.schema, "ui": row.ui})
    return pretty(row.definition)


# --------------------------------------------------------------------------- views


class DefinitionForm(FlaskForm):
    """The JSON editor (CSRF-protected; the text is checked by ``check_form``/``check_flow``)."""

    definition = TextAreaField(_l("JSON 定义"))


def _titles() -> dict[str, str]:
    return {FORM: _("表单定义"), FLOW: _("审批流程定义")}


def _service_for(user: HallUser, service_id: int) -> Service | None:
    """The service, or None when ``user`` may not manage it (404 when there is none)."""
    service: Service = _get_or_404(Service, service_id)
    return service if may_manage_department(user, service.department_id) else None


def _check(kind: str, service_id: int, text: str) -> Checked:
    if kind == FORM:
        return check_form(text, latest_flow(service_id))
    return check_flow(text, latest_form(service_id))


def _unchanged(kind: str, service_id: int, value: Mapping[str, Any]) -> bool:
    if kind == FORM:
        form = latest_form(service_id)
        return form is not None and {"schema": form.schema, "ui": form.ui} == value
    flow = latest_flow(service_id)
    return flow is not None and flow.definition == value


def _save(kind: str, service_id: int, value: dict[str, Any], actor: str) -> int:
    """Save a checked definition as a new version (audited there); returns its number."""
    if kind == FORM:
        return save_form_definition(service_id, value["schema"], value["ui"], actor=actor).version
    return save_flow_definition(service_id, value, actor=actor).version


def _editor(user: HallUser, service_id: int, kind: str) -> ResponseReturnValue:
    service = _service_for(user, service_id)
    if service is None:
        return _forbidden()
    current = latest_form(service.id) if kind == FORM else latest_flow(service.id)
    form = DefinitionForm()
    checked: Checked | None = None
    status = 200
    if request.method == "GET":
        kept = given_back(user)
        form.definition.data = _text_of(current) if kept is None else kept.get("definition", "")
    elif not form.validate():
        checked = Checked([_("页面已过期，请刷新后重试。")])
        status = 400
    else:
        # The text is kept exactly as typed (WTForms does not strip a textarea).
        text = request.form.get("definition", "")
        checked = _check(kind, service.id, text)
        saving = request.form.get("action") == "save"
        if not checked.ok:
            status = 400
        elif saving and checked.value is not None:
            if _unchanged(kind, service.id, checked.value):
                checked.problems = [_("内容与当前版本相同，无需保存新版本。")]
                status = 400
            else:
                try:
                    version = _save(kind, service.id, checked.value, user.account)
                except DefinitionInvalid as error:
                    db.session.rollback()
                    checked.problems = list(error.messages)
                    status = 400
                except IntegrityError:
                    # Another manager saved the same version number a moment earlier.
                    db.session.rollback()
                    checked.problems = [_("其他人刚刚保存了新版本，请查看最新版本后再保存。")]
                    status = 409
                else:
                    flash(
                        _(
                            "已保存为第 %(n)s 版。新提交的申请使用新版本，进行中的申请不受影响。",
                            n=version,
                        ),
                        "success",
                    )
                    return redirect(url_for(f".{kind}_editor", service_id=service.id))
    versions = form_versions(service.id) if kind == FORM else flow_versions(service.id)
    return (
        render_template(
            "manage/definitions.html",
            service=service,
            kind=kind,
            title=_titles()[kind],
            form=form,
            current=current,
            checked=checked,
            versions=versions,
            has_form=latest_form(service.id) is not None,
        ),
        status,
    )


@bp.route("/services/<row_id:service_id>/form", methods=["GET", "POST"])
@manager_needed
@keeps_form()
def form_editor(user: HallUser, service_id: int) -> ResponseReturnValue:
    """表单定义: edit the form as JSON, preview it, save a new version."""
    return _editor(user, service_id, FORM)


@bp.route("/services/<row_id:service_id>/flow", methods=["GET", "POST"])
@manager_needed
@keeps_form()
def flow_editor(user: HallUser, service_id: int) -> ResponseReturnValue:
    """审批流程定义: edit the flow as JSON, preview its diagram, save a new version."""
    return _editor(user, service_id, FLOW)


@bp.get("/services/<row_id:service_id>/<any(form, flow):kind>/versions/<int:number>")
@manager_needed
def version(user: HallUser, service_id: int, kind: str, number: int) -> ResponseReturnValue:
    """One saved version, read-only, with its rendering."""
    service = _service_for(user, service_id)
    if service is None:
        return _forbidden()
    row = _version(kind, service.id, number)
    if row is None:
        abort(404)
    views: list[FieldView] = []
    diagram: Diagram | None = None
    if isinstance(row, FormDefinition):
        views = field_views(row.schema, row.ui, {})
    else:
        diagram = preview_diagram(row.definition)
    latest = latest_form(service.id) if kind == FORM else latest_flow(service.id)
    return render_template(
        "manage/definitions_version.html",
        service=service,
        kind=kind,
        title=_titles()[kind],
        row=row,
        text=_text_of(row),
        views=views,
        diagram=diagram,
        is_latest=latest is not None and latest.id == row.id,
    )
