"""Forms of the to-do centre (CSRF-protected by Flask-WTF)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateField, HiddenField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length

from hall.workflow.operations import MAX_OPINION

# WTForms' own messages are English only (WTF_I18N_ENABLED is off): each check says its own.
TOO_LONG = _l("最多可输入 %(max)d 个字符")
NOT_A_DATE = _l("请输入正确的日期")


class ActionForm(FlaskForm):
    """通过 / 退回 / 中止 (one form, one opinion box, one button per action)."""

    task = HiddenField()
    opinion = TextAreaField(_l("审批意见"), validators=[Length(max=MAX_OPINION, message=TOO_LONG)])
    to = StringField(_l("退回到"))


class PersonForm(FlaskForm):
    """转办 / 加签: a person chosen by 学工号 or name, and an optional opinion."""

    task = HiddenField()
    who = StringField(_l("学工号"), validators=[Length(max=64, message=TOO_LONG)])
    opinion = TextAreaField(_l("说明"), validators=[Length(max=MAX_OPINION, message=TOO_LONG)])


class ApplicantForm(FlaskForm):
    """撤回 / 催办 by the applicant."""

    opinion = TextAreaField(_l("说明"), validators=[Length(max=MAX_OPINION, message=TOO_LONG)])


class BatchForm(FlaskForm):
    """批量通过: the ticked tasks share one opinion; the list's page and service filter ride
    along, so a refused batch shows the same list again."""

    opinion = TextAreaField(_l("审批意见"), validators=[Length(max=MAX_OPINION, message=TOO_LONG)])
    page = HiddenField()
    service = HiddenField()


class DelegationForm(FlaskForm):
    """委托: who handles my new tasks between two dates."""

    delegate = StringField(
        _l("委托给（学工号）"),
        validators=[DataRequired(message=_l("请输入学工号")), Length(max=64, message=TOO_LONG)],
    )
    starts_on = DateField(
        _l("开始日期"),
        validators=[DataRequired(message=_l("请选择日期"))],
        invalid_value_message=NOT_A_DATE,
    )
    ends_on = DateField(
        _l("结束日期"),
        validators=[DataRequired(message=_l("请选择日期"))],
        invalid_value_message=NOT_A_DATE,
    )
