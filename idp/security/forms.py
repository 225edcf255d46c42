"""Forms of the security centre: proving it is you again, a new email or phone, ending sessions."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import HiddenField, PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, Length, Optional

from idp.auth.forms import TOO_LONG, captcha_field, code_field, method_field


class ReverifyForm(FlaskForm):
    """身份验证 before a change: the login password, or a code sent to the phone or email on file.

    The view fills ``method.choices`` with what this user can use.
    """

    method = method_field()
    password = PasswordField(
        _l("登录密码"),
        validators=[Optional(), Length(max=1024, message=TOO_LONG)],
        render_kw={"autocomplete": "current-password"},
    )
    code = code_field(_l("验证码"))
    captcha = captcha_field()
    send = SubmitField(_l("发送验证码"))
    submit = SubmitField(_l("下一步"))


class NewEmailForm(FlaskForm):
    """绑定安全邮箱: the new address, then the code mailed to it."""

    email = StringField(
        _l("新邮箱"),
        validators=[DataRequired(_l("请输入邮箱地址")), Length(max=254, message=TOO_LONG)],
        render_kw={"placeholder": _l("例如 name@example.com"), "autocomplete": "email"},
    )
    code = code_field(_l("邮件验证码"))
    captcha = captcha_field()
    send = SubmitField(_l("发送验证码"))
    submit = SubmitField(_l("完成"))


class NewPhoneForm(FlaskForm):
    """更换安全手机: the new number, then the SMS code sent to it."""

    phone = StringField(
        _l("新手机号码"),
        validators=[DataRequired(_l("请输入手机号码")), Length(max=20, message=TOO_LONG)],
        render_kw={"placeholder": _l("请输入手机号码"), "autocomplete": "tel"},
    )
    code = code_field(_l("短信验证码"))
    captcha = captcha_field()
    send = SubmitField(_l("发送验证码"))
    submit = SubmitField(_l("完成"))


class EndSessionForm(FlaskForm):
    """退出 one device: the session's id (its cookie's SHA-256, never the cookie itself)."""

    session_id = HiddenField(validators=[DataRequired(), Length(min=64, max=64)])


class EndOtherSessionsForm(FlaskForm):
    """退出其他设备: nothing to fill in but the CSRF token."""
