"""Form definitions: JSON Schema 2020-12 for the data plus a small UI schema for layout.

A form definition is ``{"schema": {...}, "ui": {"order": [...], "fields": {name: {...}}}}``.
The schema says what valid data is (``title`` is the label); the UI schema says how each field
is shown: ``widget`` (see ``WIDGETS``), optional ``help``, ``placeholder``, ``rows``,
``labels`` (option value → label), ``columns`` (for ``table``: column name → UI of the cell),
``profile`` (one of ``PROFILE_KEYS``) for read-only fields the server fills from the
applicant's profile, and ``days_of`` (the name of a ``daterange`` field) for a read-only
``number`` field the server sets to that range's calendar days, both days counted (请假天数 of
请假时间) — a posted value for either is ignored, so what a flow routes on cannot disagree with
the dates the application names.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import date
from typing import Any, Protocol, TypeGuard

from flask_babel import gettext
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from jsonschema.exceptions import ValidationError  # type: ignore[import-untyped]

WIDGETS = (
    "input",
    "textarea",
    "number",
    "date",
    "daterange",
    "radio",
    "checkbox",
    "select",
    "person",
    "department",
    "attachment",
    "table",
)
#: Profile attributes a read-only field may be filled from (个人信息).
PROFILE_KEYS = ("name", "gender", "department", "phone", "email", "staff_no")
CELL_WIDGETS = ("input", "number", "date", "select")
FORM_ERROR = "__form__"
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
_INTEGER = re.compile(r"^[+-]?\d+$")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
#: Longest text taken as a number: Python refuses ints past 4,300 digits and a long float
#: becomes ``inf``, which PostgreSQL's json refuses; longer text fails as "not a number".
MAX_NUMBER_LENGTH = 32


def _(msgid: str, /, **params: Any) -> str:
    """The message in the request's language (Flask-Babel), typed as the ``str`` it is."""
    return str(gettext(msgid, **params))


class FormInput(Protocol):
    """What a posted form offers (``werkzeug.datastructures.MultiDict`` is one)."""

    def get(self, key: str, default: Any = None) -> Any:
        """The first value of a key."""

    def getlist(self, key: str) -> list[Any]:
        """Every value of a key."""

    def __iter__(self) -> Iterator[str]:
        """Every key."""


def field_names(ui: Mapping[str, Any]) -> list[str]:
    """The fields of a form in display order."""
    order = list(ui.get("order", []))
    return order + [f for f in ui.get("fields", {}) if f not in order]


def widget_of(ui: Mapping[str, Any], name: str) -> str:
    """A field's widget (``input`` unless the UI schema says otherwise)."""
    return str(ui.get("fields", {}).get(name, {}).get("widget", "input"))


def profile_fields(ui: Mapping[str, Any]) -> dict[str, str]:
    """Read-only fields filled from the applicant's profile: field name → profile key."""
    return {
        name: spec["profile"]
        for name, spec in ui.get("fields", {}).items()
        if spec.get("profile") in PROFILE_KEYS
    }


def computed_fields(ui: Mapping[str, Any]) -> dict[str, str]:
    """Read-only day counts the server computes: field name → the ``daterange`` it counts."""
    return {
        name: str(spec["days_of"])
        for name, spec in ui.get("fields", {}).items()
        if isinstance(spec, Mapping) and spec.get("days_of")
    }


def validate_definition(schema: Mapping[str, Any], ui: Mapping[str, Any]) -> list[str]:
    """Problems of a form definition (empty when it can be used)."""
    problems: list[str] = []
    try:
        Draft202012Validator.check_schema(schema)
    except Exception as exc:  # SchemaError carries the path; the message is enough here
        problems.append(_("表单数据定义无效：%(detail)s", detail=str(getattr(exc, "message", exc))))
        return problems
    properties = schema.get("properties", {})
    for name in field_names(ui):
        if name not in properties:
            problems.append(_("界面中的字段 %(field)s 在数据定义中不存在", field=name))
        widget = widget_of(ui, name)
        if widget not in WIDGETS:
            problems.append(_("字段 %(field)s 的控件 %(widget)s 未知", field=name, widget=widget))
        profile = ui.get("fields", {}).get(name, {}).get("profile")
        if profile is not None and profile not in PROFILE_KEYS:
            problems.append(
                _("字段 %(field)s 的个人信息来源 %(key)s 未知", field=name, key=str(profile))
            )
        source = ui.get("fields", {}).get(name, {}).get("days_of")
        counts_a_range = isinstance(source, str) and widget_of(ui, source) == "daterange"
        if source is not None and (widget != "number" or not counts_a_range):
            problems.append(
                _("字段 %(field)s 须是数字控件，days_of 须指向日期范围字段", field=name)
            )
        if widget == "table":
            columns = ui["fields"][name].get("columns", {})
            for column, cell in columns.items():
                if cell.get("widget", "input") not in CELL_WIDGETS:
                    problems.append(
                        _("表格 %(field)s 的列 %(column)s 控件无效", field=name, column=column)
                    )
    return problems


# --------------------------------------------------------------------------- coercion


def _clean(value: Any) -> str:
    """A posted string without surrounding space, with newlines as browsers mean them; the
    vertical tabs and form feeds of text pasted from PowerPoint or Word are line breaks too."""
    text = str(value or "").replace("\r\n", "\n")
    return text.replace("\x0b", "\n").replace("\x0c", "\n").strip()


def _number(text: str) -> int | float | str:
    """An int or float from posted text; text that is no number is kept for the error."""
    if len(text) > MAX_NUMBER_LENGTH:
        return text
    if _INTEGER.match(text):
        return int(text)
    if _NUMBER.match(text):
        return float(text)
    return text


def _coerce_scalar(widget: str, text: str) -> Any:
    return _number(text) if widget == "number" else text


def coerce_form(ui: Mapping[str, Any], form: FormInput) -> dict[str, Any]:
    """Typed data from posted strings, per widget; empty fields and profile fields left out."""
    data: dict[str, Any] = {}
    server_filled = profile_fields(ui).keys() | computed_fields(ui).keys()
    for name in field_names(ui):
        if name in server_filled:
            continue
        widget = widget_of(ui, name)
        value: Any = None
        if widget in ("checkbox", "attachment"):
            items = [_clean(v) for v in form.getlist(name)]
            value = [v for v in items if v] or None
        elif widget == "daterange":
            parts = {k: _clean(form.get(f"{name}-{k}")) for k in ("start", "end")}
            value = {k: v for k, v in parts.items() if v} or None
        elif widget == "table":
            value = _coerce_table(name, ui["fields"][name].get("columns", {}), form) or None
        else:
            text = _clean(form.get(name))
            value = _coerce_scalar(widget, text) if text else None
        if value is not None:
            data[name] = value
    return data


def _coerce_table(name: str, columns: Mapping[str, Any], form: FormInput) -> list[dict[str, Any]]:
    """Rows posted as ``name-<i>-<column>``, in row order; empty rows dropped."""
    pattern = re.compile(rf"^{re.escape(name)}-(\d{{1,4}})-(.+)$")
    indexes = sorted({int(m.group(1)) for k in form if (m := pattern.match(k))})
    rows: list[dict[str, Any]] = []
    for i in indexes:
        row: dict[str, Any] = {}
        for column, cell in columns.items():
            text = _clean(form.get(f"{name}-{i}-{column}"))
            if text:
                row[column] = _coerce_scalar(cell.get("widget", "input"), text)
        if row:
            rows.append(row)
    return rows


def apply_profile(
    ui: Mapping[str, Any], data: Mapping[str, Any], profile: Mapping[str, Any]
) -> dict[str, Any]:
    """The data with read-only profile fields set by the server (posted values discarded)."""
    result = dict(data)
    for name, key in profile_fields(ui).items():
        value = profile.get(key)
        if value in (None, ""):
            result.pop(name, None)
        else:
            result[name] = str(value)
    return result


def range_days(value: Any) -> int | None:
    """Calendar days of a ``daterange`` value, both ends counted; None unless it holds two real
    dates, the end not before the start."""
    if not isinstance(value, Mapping):
        return None
    start, end = value.get("start"), value.get("end")
    if not (_is_date(start) and _is_date(end)) or end < start:
        return None
    return (date.fromisoformat(end) - date.fromisoformat(start)).days + 1


def apply_computed(ui: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
    """The data with each ``days_of`` field set from its date range (left out while the range
    is incomplete or wrong: the range's own error says what to fix)."""
    result = dict(data)
    for name, source in computed_fields(ui).items():
        days = range_days(result.get(source))
        if days is None:
            result.pop(name, None)
        else:
            result[name] = days
    return result


# --------------------------------------------------------------------------- permissions


def merge_edit(
    old: Mapping[str, Any], posted: Mapping[str, Any], permissions: Mapping[str, str]
) -> dict[str, Any]:
    """New data: editable fields from ``posted`` (absent = cleared), the rest kept from ``old``."""
    result = {k: v for k, v in old.items() if permissions.get(k, "read") != "edit"}
    for name, permission in permissions.items():
        if permission == "edit" and name in posted:
            result[name] = posted[name]
    return result


def tampered_fields(
    old: Mapping[str, Any], posted: Mapping[str, Any], permissions: Mapping[str, str]
) -> dict[str, list[str]]:
    """Posted values of fields this node may not edit that differ from the stored ones."""
    return {
        name: [_("您没有修改此项的权限")]
        for name, value in posted.items()
        if permissions.get(name, "read") != "edit" and old.get(name) != value
    }


def visible_data(data: Mapping[str, Any], permissions: Mapping[str, str]) -> dict[str, Any]:
    """The data without the fields hidden at this node."""
    return {k: v for k, v in data.items() if permissions.get(k, "read") != "hidden"}


# --------------------------------------------------------------------------- validation


def validate_submission(
    schema: Mapping[str, Any], ui: Mapping[str, Any], data: Mapping[str, Any]
) -> dict[str, list[str]]:
    """Every error at once, in the user's language, keyed by field (``__form__`` for others)."""
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    errors: dict[str, list[str]] = {}

    def add(name: str, message: str) -> None:
        if message not in errors.setdefault(name, []):
            errors[name].append(message)

    for error in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.path))):
        for name, message in _describe(error, schema, ui):
            add(name, message)
    for name in field_names(ui):
        value = data.get(name)
        if widget_of(ui, name) == "daterange" and isinstance(value, Mapping):
            start, end = value.get("start"), value.get("end")
            # Only two real dates compare: "2026-13-01" is already reported as no date.
            if _is_date(start) and _is_date(end) and end < start:
                add(name, _("结束日期不能早于开始日期"))
    for name, source in computed_fields(ui).items():
        if source in errors:
            errors.pop(name, None)  # counted from the range: the range's message says it all
    return errors


def _is_date(value: Any) -> TypeGuard[str]:
    """Whether a value is a calendar date written ``YYYY-MM-DD``."""
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _describe(
    error: ValidationError, schema: Mapping[str, Any], ui: Mapping[str, Any]
) -> list[tuple[str, str]]:
    """(field, message) pairs for one jsonschema error."""
    path = list(error.absolute_path)
    if error.validator == "required":
        missing = [p for p in error.validator_value if p not in (error.instance or {})]
        if not path:
            return [(str(p), _required(ui, str(p))) for p in missing]
        return [(str(path[0]), _inside(schema, ui, [*path, p], _("此项为必填项"))) for p in missing]
    if not path:
        if error.validator == "additionalProperties":
            return [(FORM_ERROR, _("表单包含未定义的字段"))]
        return [(FORM_ERROR, _("表单内容不符合要求"))]
    name = str(path[0])
    message = _message(error, ui, name)
    return [(name, _inside(schema, ui, path, message))]


def _required(ui: Mapping[str, Any], name: str) -> str:
    widget = widget_of(ui, name)
    if widget in ("radio", "checkbox", "select", "person", "department", "date", "daterange"):
        return _("请选择此项")
    if widget == "attachment":
        return _("请上传附件")
    if widget == "table":
        return _("请至少填写一行")
    return _("此项为必填项")


def _inside(schema: Mapping[str, Any], ui: Mapping[str, Any], path: list[Any], message: str) -> str:
    """A message about a part of a field: a row and column of a table, a start or end date."""
    name = str(path[0])
    rest = path[1:]
    prop = schema.get("properties", {}).get(name, {})
    if rest and isinstance(rest[0], int) and widget_of(ui, name) == "table":
        row = rest[0] + 1
        if len(rest) > 1:
            items = prop.get("items", {}) if isinstance(prop, Mapping) else {}
            cell = items.get("properties", {}).get(str(rest[1]), {})
            column = str(cell.get("title") or rest[1])
            return _(
                "第%(row)s行“%(column)s”：%(message)s", row=row, column=column, message=message
            )
        return _("第%(row)s行：%(message)s", row=row, message=message)
    if rest and rest[0] in ("start", "end"):
        part = _("开始日期") if rest[0] == "start" else _("结束日期")
        return _("%(part)s：%(message)s", part=part, message=message)
    return message


def _message(error: ValidationError, ui: Mapping[str, Any], name: str) -> str:
    """The Chinese message for one failed keyword."""
    kind, value = error.validator, error.validator_value
    if kind == "maxLength":
        return _("字数控制在%(n)s字以内", n=value)
    if kind == "minLength":
        return _("请至少填写%(n)s个字", n=value)
    if kind == "type":
        wanted = value if isinstance(value, str) else (value[0] if value else "")
        if wanted == "integer":
            return _("请输入整数")
        if wanted == "number":
            return _("请输入数字")
        return _("填写内容的格式不正确")
    if kind == "minimum":
        return _("不能小于%(n)s", n=value)
    if kind == "maximum":
        return _("不能大于%(n)s", n=value)
    if kind == "exclusiveMinimum":
        return _("必须大于%(n)s", n=value)
    if kind == "exclusiveMaximum":
        return _("必须小于%(n)s", n=value)
    if kind == "multipleOf":
        return _("必须是%(n)s的整数倍", n=value)
    if kind in ("enum", "const"):
        return _("请从给定的选项中选择")
    if kind == "format":
        if value == "date":
            return _("请输入有效日期，例如 2024-05-16")
        if value == "email":
            return _("请输入有效的电子邮箱")
        return _("填写内容的格式不正确")
    if kind == "pattern":
        custom = ui.get("fields", {}).get(name, {}).get("pattern_message")
        return str(custom) if custom else _("填写内容的格式不正确")
    if kind == "minItems":
        return _("请至少选择或填写%(n)s项", n=value)
    if kind == "maxItems":
        return _("最多选择或填写%(n)s项", n=value)
    if kind == "uniqueItems":
        return _("不能重复选择")
    if kind == "additionalProperties":
        return _("包含未定义的内容")
    return _("填写内容不符合要求")
