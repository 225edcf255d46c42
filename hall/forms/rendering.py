"""What the form templates need for each field, computed once in Python (no logic in Jinja)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flask_babel import gettext as _

from hall.forms.schema import computed_fields, field_names, profile_fields, widget_of

#: Blank rows offered under a table's filled rows, so rows can be added without script.
DEFAULT_BLANK_ROWS = 2


@dataclass(frozen=True)
class ColumnView:
    """One column of a table field."""

    name: str
    label: str
    widget: str
    required: bool
    options: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class FieldView:
    """One field ready to render: label, widget, value, errors and whether it may be edited."""

    name: str
    label: str
    widget: str
    value: Any
    editable: bool
    required: bool = False
    errors: tuple[str, ...] = ()
    help: str = ""
    placeholder: str = ""
    maxlength: int | None = None
    rows: int = 4
    minimum: float | None = None
    maximum: float | None = None
    step: str = "any"
    options: tuple[tuple[str, str], ...] = ()
    columns: tuple[ColumnView, ...] = ()
    table_rows: tuple[Mapping[str, Any], ...] = ()
    profile: bool = False
    #: For a ``days_of`` field: the name and the label of the date range it counts.
    days_of: str = ""
    days_of_label: str = ""
    display: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)


def _options(
    prop: Mapping[str, Any], spec: Mapping[str, Any], choices: Sequence[tuple[str, str]] | None
) -> tuple[tuple[str, str], ...]:
    """(value, label) pairs from the schema's enum (or items.enum), labelled by the UI."""
    if choices is not None:
        return tuple((str(v), str(label)) for v, label in choices)
    values = prop.get("enum") or prop.get("items", {}).get("enum") or []
    labels = spec.get("labels", {})
    return tuple((str(v), str(labels.get(str(v), v))) for v in values)


def _display(value: Any, options: Sequence[tuple[str, str]], widget: str) -> str:
    """A read-only rendering of a value as text."""
    if value in (None, "", []):
        return ""
    labels = dict(options)
    if isinstance(value, list):
        return "、".join(labels.get(str(v), str(v)) for v in value)
    if widget == "daterange" and isinstance(value, Mapping):
        start, end = value.get("start", ""), value.get("end", "")
        return str(_("%(start)s 至 %(end)s", start=start, end=end))
    return str(labels.get(str(value), value))


def _label_of(properties: Mapping[str, Any], name: str | None) -> str:
    if not name:
        return ""
    return str(properties.get(name, {}).get("title") or name)


def field_views(
    schema: Mapping[str, Any],
    ui: Mapping[str, Any],
    data: Mapping[str, Any],
    errors: Mapping[str, Sequence[str]] | None = None,
    permissions: Mapping[str, str] | None = None,
    choices: Mapping[str, Sequence[tuple[str, str]]] | None = None,
) -> list[FieldView]:
    """Every visible field in display order; ``permissions`` None means the applicant edits all."""
    errors = errors or {}
    choices = choices or {}
    required = set(schema.get("required", []))
    properties = schema.get("properties", {})
    profile = profile_fields(ui)
    computed = computed_fields(ui)
    views: list[FieldView] = []
    for name in field_names(ui):
        permission = "edit" if permissions is None else permissions.get(name, "read")
        if permission == "hidden":
            continue
        prop = properties.get(name, {})
        spec = ui.get("fields", {}).get(name, {})
        widget = widget_of(ui, name)
        options = _options(prop, spec, choices.get(name))
        value = data.get(name)
        columns: tuple[ColumnView, ...] = ()
        table_rows: tuple[Mapping[str, Any], ...] = ()
        if widget == "table":
            items = prop.get("items", {})
            cell_props = items.get("properties", {})
            cell_required = set(items.get("required", []))
            columns = tuple(
                ColumnView(
                    name=column,
                    label=str(cell_props.get(column, {}).get("title") or column),
                    widget=str(cell.get("widget", "input")),
                    required=column in cell_required,
                    options=_options(cell_props.get(column, {}), cell, None),
                )
                for column, cell in spec.get("columns", {}).items()
            )
            filled = tuple(value) if isinstance(value, list) else ()
            blank = int(spec.get("blank_rows", DEFAULT_BLANK_ROWS)) if permission == "edit" else 0
            table_rows = filled + tuple({} for _ in range(blank))
        is_integer = prop.get("type") == "integer"
        views.append(
            FieldView(
                name=name,
                label=str(prop.get("title") or name),
                widget=widget,
                value=value,
                editable=permission == "edit" and name not in profile and name not in computed,
                required=name in required,
                errors=tuple(errors.get(name, ())),
                help=str(spec.get("help") or prop.get("description") or ""),
                placeholder=str(spec.get("placeholder", "")),
                maxlength=prop.get("maxLength"),
                rows=int(spec.get("rows", 4)),
                minimum=prop.get("minimum"),
                maximum=prop.get("maximum"),
                step="1" if is_integer else "any",
                options=options,
                columns=columns,
                table_rows=table_rows,
                profile=name in profile,
                days_of=computed.get(name, ""),
                days_of_label=_label_of(properties, computed.get(name)),
                display=_display(value, options, widget),
            )
        )
    return views


def counts_days_live(views: Sequence[FieldView]) -> bool:
    """Whether a page needs day-count.js: a ``days_of`` field beside its dates, editable."""
    editable = {v.name for v in views if v.editable}
    return any(v.days_of in editable for v in views if v.days_of)
