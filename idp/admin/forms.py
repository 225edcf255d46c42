"""Forms of the console: confirming an action with a reason, and granting a role."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, SelectField, SubmitField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length

from idp.auth.forms import TOO_LONG
from idp.directory.roles import Role


class ConfirmActionForm(FlaskForm):
    """One action on one account: why (for the audit log), and a deliberate confirmation."""

    reason = TextAreaField(
        _l("操作原因"),
        validators=[DataRequired(_l("请填写操作原因。")), Length(max=500, message=TOO_LONG)],
        render_kw={
            "rows": 3,
            "placeholder": _l("例如：学生本人持学生证到服务台，手机号已更换"),
        },
    )
    confirm = BooleanField(
        _l("我已核实对方身份，确认执行此操作"),
        validators=[DataRequired(_l("请勾选确认后再提交。"))],
    )
    #: Single use: a replayed or second-tab submission finds it already spent.
    nonce = HiddenField()
    submit = SubmitField(_l("确认执行"))


class RoleActionForm(ConfirmActionForm):
    """授予 / 撤销 a console role (admins only)."""

    role = SelectField(
        _l("角色"),
        choices=[
            SelectChoice(Role.HELPDESK.value, _l("服务台")),
            SelectChoice(Role.ADMIN.value, _l("管理员")),
        ],
        validators=[DataRequired(_l("请选择角色。"))],
        invalid_choice_message=_l("请选择角色。"),
    )
