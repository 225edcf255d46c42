"""Forms of service management (CSRF-protected by Flask-WTF)."""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateTimeLocalField,
    IntegerField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from shared.ids import row_id

# WTForms' own messages are English only (WTF_I18N_ENABLED is off): each check says its own.
REQUIRED = _l("请填写此项")
CHOOSE = _l("请从列出的选项中选择")
TOO_LONG = _l("最多可输入 %(max)d 个字符")
OUT_OF_RANGE = _l("请输入 %(min)s 到 %(max)s 之间的整数")
NOT_A_NUMBER = _l("请输入整数")
NOT_OFFERED_VALUES = _l("“%(value)s”不在可选项中")
CHOICE_MESSAGES: dict[str, Any] = {
    "invalid_choice_message": CHOOSE,
    "invalid_value_message": CHOOSE,
}


class MultiCheckboxField(SelectMultipleField):
    """Several choices as checkboxes."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("invalid_choice_message", NOT_OFFERED_VALUES)
        kwargs.setdefault("invalid_value_message", CHOOSE)
        super().__init__(*args, **kwargs)


def _optional_int(value: object) -> int | None:
    """The id chosen in a select (None for the empty choice); anything else is refused."""
    if value is None or value == "":
        return None
    found = row_id(value)
    if found is None:
        raise ValueError(f"not a row id: {value!r}")
    return found


def _audience_choices() -> list[SelectChoice]:
    return [
        SelectChoice("student", _l("学生")),
        SelectChoice("staff", _l("教职工")),
        SelectChoice("visitor", _l("访客")),
    ]


class ServiceForm(FlaskForm):
    """Create or edit a service and its guide."""

    title = StringField(
        _l("服务名称"), validators=[DataRequired(REQUIRED), Length(max=120, message=TOO_LONG)]
    )
    department_id = SelectField(
        _l("所属部门"), coerce=int, validators=[InputRequired(CHOOSE)], **CHOICE_MESSAGES
    )
    category_id = SelectField(
        _l("服务类别"), coerce=_optional_int, validate_choice=False, invalid_value_message=CHOOSE
    )
    summary = StringField(_l("简介"), validators=[Length(max=500, message=TOO_LONG)])
    keywords = StringField(_l("搜索关键字"), validators=[Length(max=500, message=TOO_LONG)])
    audiences = MultiCheckboxField(_l("服务对象"), choices=_audience_choices)
    online = BooleanField(_l("可网上办理"))
    entry_url = StringField(_l("办理入口地址"), validators=[Length(max=500, message=TOO_LONG)])
    recommended = BooleanField(_l("在首页推荐"))
    purpose = TextAreaField(_l("事项说明"), validators=[Length(max=5000, message=TOO_LONG)])
    eligibility = TextAreaField(
        _l("办理对象与条件"), validators=[Length(max=5000, message=TOO_LONG)]
    )
    materials = TextAreaField(_l("所需材料"), validators=[Length(max=5000, message=TOO_LONG)])
    steps = TextAreaField(_l("办理流程"), validators=[Length(max=5000, message=TOO_LONG)])
    approval_flow = TextAreaField(_l("审批流程"), validators=[Length(max=5000, message=TOO_LONG)])
    time_limit = StringField(_l("办理时限"), validators=[Length(max=200, message=TOO_LONG)])
    fee = StringField(_l("收费标准"), validators=[Length(max=200, message=TOO_LONG)])
    contact_phone = StringField(_l("咨询电话"), validators=[Length(max=100, message=TOO_LONG)])
    place = StringField(_l("办理地点"), validators=[Length(max=200, message=TOO_LONG)])
    offline_instructions = TextAreaField(
        _l("线下办理说明"), validators=[Length(max=5000, message=TOO_LONG)]
    )


class NoticeForm(FlaskForm):
    """Write, schedule or publish a notice."""

    title = StringField(
        _l("标题"), validators=[DataRequired(REQUIRED), Length(max=200, message=TOO_LONG)]
    )
    department_id = SelectField(
        _l("发布部门"), coerce=int, validators=[InputRequired(CHOOSE)], **CHOICE_MESSAGES
    )
    body = TextAreaField(
        _l("正文"), validators=[DataRequired(REQUIRED), Length(max=20000, message=TOO_LONG)]
    )
    mode = RadioField(
        _l("发布方式"),
        choices=[
            SelectChoice("draft", _l("暂不发布")),
            SelectChoice("now", _l("立即发布")),
            SelectChoice("schedule", _l("定时发布")),
        ],
        default="now",
        **CHOICE_MESSAGES,
    )
    publish_at = DateTimeLocalField(
        _l("定时发布时间"),
        format="%Y-%m-%dT%H:%M",
        validators=[Optional()],
        invalid_value_message=_l("请输入正确的日期和时间"),
    )


class SystemForm(FlaskForm):
    """A campus system entry or a 便民服务 link."""

    name = StringField(
        _l("名称"), validators=[DataRequired(REQUIRED), Length(max=100, message=TOO_LONG)]
    )
    url = StringField(
        _l("地址"), validators=[DataRequired(REQUIRED), Length(max=500, message=TOO_LONG)]
    )
    section = SelectField(
        _l("入口类型"),
        choices=[
            SelectChoice("system", _l("常用系统")),
            SelectChoice("convenience", _l("便民服务")),
        ],
        **CHOICE_MESSAGES,
    )
    department_id = SelectField(
        _l("所属部门"), coerce=_optional_int, validate_choice=False, invalid_value_message=CHOOSE
    )
    icon = StringField(_l("图标文字"), validators=[Length(max=16, message=TOO_LONG)])
    description = StringField(_l("说明"), validators=[Length(max=300, message=TOO_LONG)])
    allowed_kinds = MultiCheckboxField(
        _l("可用人员（不选则所有人可用）"), choices=_audience_choices
    )
    published = BooleanField(_l("显示"), default=True)
    sort = IntegerField(
        _l("排序（小的在前）"),
        default=100,
        validators=[NumberRange(0, 100000, OUT_OF_RANGE)],
        invalid_value_message=NOT_A_NUMBER,
    )


class CategoryForm(FlaskForm):
    """A new service category."""

    name = StringField(
        _l("类别名称"), validators=[DataRequired(REQUIRED), Length(max=64, message=TOO_LONG)]
    )
    sort = IntegerField(
        _l("排序（小的在前）"),
        default=100,
        validators=[NumberRange(0, 100000, OUT_OF_RANGE)],
        invalid_value_message=NOT_A_NUMBER,
    )


class GrantForm(FlaskForm):
    """Grant a hall role to an account."""

    account = StringField(
        _l("学工号"), validators=[DataRequired(REQUIRED), Length(max=64, message=TOO_LONG)]
    )
    role = SelectField(
        _l("角色"),
        choices=[
            SelectChoice("service_manager", _l("部门服务管理员")),
            SelectChoice("hall_admin", _l("大厅管理员")),
        ],
        **CHOICE_MESSAGES,
    )
    department_id = SelectField(
        _l("部门"), coerce=_optional_int, validate_choice=False, invalid_value_message=CHOOSE
    )
