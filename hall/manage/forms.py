"""Forms of service management (CSRF-protected by Flask-WTF)."""

from __future__ import annotations

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


class MultiCheckboxField(SelectMultipleField):
    """Several choices as checkboxes."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


def _optional_int(value: object) -> int | None:
    return int(value) if isinstance(value, str | int) and str(value).isdigit() else None


def _audience_choices() -> list[SelectChoice]:
    return [
        SelectChoice("student", _l("学生")),
        SelectChoice("staff", _l("教职工")),
        SelectChoice("visitor", _l("访客")),
    ]


class ServiceForm(FlaskForm):
    """Create or edit a service and its guide."""

    title = StringField(_l("服务名称"), validators=[DataRequired(), Length(max=120)])
    department_id = SelectField(_l("所属部门"), coerce=int, validators=[InputRequired()])
    category_id = SelectField(_l("服务类别"), coerce=_optional_int, validate_choice=False)
    summary = StringField(_l("简介"), validators=[Length(max=500)])
    keywords = StringField(_l("搜索关键字"), validators=[Length(max=500)])
    audiences = MultiCheckboxField(_l("服务对象"), choices=_audience_choices)
    online = BooleanField(_l("可网上办理"))
    entry_url = StringField(_l("办理入口地址"), validators=[Length(max=500)])
    recommended = BooleanField(_l("在首页推荐"))
    purpose = TextAreaField(_l("事项说明"), validators=[Length(max=5000)])
    eligibility = TextAreaField(_l("办理对象与条件"), validators=[Length(max=5000)])
    materials = TextAreaField(_l("所需材料"), validators=[Length(max=5000)])
    steps = TextAreaField(_l("办理流程"), validators=[Length(max=5000)])
    approval_flow = TextAreaField(_l("审批流程"), validators=[Length(max=5000)])
    time_limit = StringField(_l("办理时限"), validators=[Length(max=200)])
    fee = StringField(_l("收费标准"), validators=[Length(max=200)])
    contact_phone = StringField(_l("咨询电话"), validators=[Length(max=100)])
    place = StringField(_l("办理地点"), validators=[Length(max=200)])
    offline_instructions = TextAreaField(_l("线下办理说明"), validators=[Length(max=5000)])


class NoticeForm(FlaskForm):
    """Write, schedule or publish a notice."""

    title = StringField(_l("标题"), validators=[DataRequired(), Length(max=200)])
    department_id = SelectField(_l("发布部门"), coerce=int, validators=[InputRequired()])
    body = TextAreaField(_l("正文"), validators=[DataRequired(), Length(max=20000)])
    mode = RadioField(
        _l("发布方式"),
        choices=[
            SelectChoice("draft", _l("暂不发布")),
            SelectChoice("now", _l("立即发布")),
            SelectChoice("schedule", _l("定时发布")),
        ],
        default="now",
    )
    publish_at = DateTimeLocalField(
        _l("定时发布时间"), format="%Y-%m-%dT%H:%M", validators=[Optional()]
    )


class SystemForm(FlaskForm):
    """A campus system entry or a 便民服务 link."""

    name = StringField(_l("名称"), validators=[DataRequired(), Length(max=100)])
    url = StringField(_l("地址"), validators=[DataRequired(), Length(max=500)])
    section = SelectField(
        _l("入口类型"),
        choices=[
            SelectChoice("system", _l("常用系统")),
            SelectChoice("convenience", _l("便民服务")),
        ],
    )
    department_id = SelectField(_l("所属部门"), coerce=_optional_int, validate_choice=False)
    icon = StringField(_l("图标文字"), validators=[Length(max=16)])
    description = StringField(_l("说明"), validators=[Length(max=300)])
    allowed_kinds = MultiCheckboxField(
        _l("可用人员（不选则所有人可用）"), choices=_audience_choices
    )
    published = BooleanField(_l("显示"), default=True)
    sort = IntegerField(_l("排序（小的在前）"), default=100, validators=[NumberRange(0, 100000)])


class CategoryForm(FlaskForm):
    """A new service category."""

    name = StringField(_l("类别名称"), validators=[DataRequired(), Length(max=64)])
    sort = IntegerField(_l("排序（小的在前）"), default=100, validators=[NumberRange(0, 100000)])


class GrantForm(FlaskForm):
    """Grant a hall role to an account."""

    account = StringField(_l("学工号"), validators=[DataRequired(), Length(max=64)])
    role = SelectField(
        _l("角色"),
        choices=[
            SelectChoice("service_manager", _l("部门服务管理员")),
            SelectChoice("hall_admin", _l("大厅管理员")),
        ],
    )
    department_id = SelectField(_l("部门"), coerce=_optional_int, validate_choice=False)
