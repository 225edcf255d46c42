"""Forms of the activation, completion and recovery wizards."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import StringField, SubmitField
from wtforms.validators import DataRequired, Length

from idp.auth.forms import TOO_LONG, captcha_field, code_field, method_field, new_password_fields


class IdentityForm(FlaskForm):
    """基础信息验证: account, name and ID number, checked against the imported record."""

    account = StringField(
        _l("账号"),
        validators=[DataRequired(_l("请输入学号/工号")), Length(max=64, message=TOO_LONG)],
        render_kw={"placeholder": _l("请输入学号/工号"), "autocomplete": "username"},
    )
    name = StringField(
        _l("姓名"),
        validators=[DataRequired(_l("请输入姓名")), Length(max=100, message=TOO_LONG)],
        render_kw={"placeholder": _l("请输入姓名"), "autocomplete": "name"},
    )
    id_number = StringField(
        _l("证件号"),
        validators=[DataRequired(_l("请输入证件号码")), Length(max=32, message=TOO_LONG)],
        render_kw={"placeholder": _l("请输入证件号码(身份证/护照)"), "autocomplete": "off"},
    )
    captcha = captcha_field()
    submit = SubmitField(_l("下一步"))


class PhoneForm(FlaskForm):
    """Bind a security phone: the number, then the SMS code sent to it."""

    phone = StringField(
        _l("手机号码"),
        validators=[DataRequired(_l("请输入手机号码")), Length(max=20, message=TOO_LONG)],
        render_kw={"placeholder": _l("请输入手机号码"), "autocomplete": "tel"},
    )
    code = code_field(_l("验证码"))
    captcha = captcha_field()
    send = SubmitField(_l("发送验证码"))
    submit = SubmitField(_l("下一步"))


class VerifyForm(FlaskForm):
    """身份验证 in recovery: choose the security phone or email, get a code, type it."""

    method = method_field()
    code = code_field(_l("验证码"))
    captcha = captcha_field()
    send = SubmitField(_l("发送验证码"))
    submit = SubmitField(_l("下一步"))


class NewPasswordForm(FlaskForm):
    """重置密码: the new password twice."""

    password, confirm = new_password_fields()
    submit = SubmitField(_l("完成"))
