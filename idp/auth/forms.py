"""Sign-in forms. Field errors are Chinese by default, English when the user chose it.

WTForms' own messages are English only (``WTF_I18N_ENABLED`` is off), so every validator and
choice field here and in the other forms carries a message of its own.
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, PasswordField, RadioField, StringField, SubmitField
from wtforms.validators import DataRequired, Length, Optional

#: A box typed (or posted) past its limit.
TOO_LONG = _l("最多可输入 %(max)d 个字符")


def code_field(label: str) -> StringField:
    """A 6-digit verification code box (SMS or mail)."""
    return StringField(
        label,
        validators=[Optional(), Length(max=6, message=_l("验证码为 6 位数字"))],
        render_kw={
            "placeholder": _l("6 位数字"),
            "inputmode": "numeric",
            "autocomplete": "one-time-code",
        },
    )


def captcha_field() -> StringField:
    """The CAPTCHA answer box (shown only when a CAPTCHA is required)."""
    return StringField(
        _l("图形验证码"),
        validators=[Optional(), Length(max=8, message=_l("请输入正确的图形验证码"))],
    )


def method_field() -> RadioField:
    """验证方式: one of the channels the view offers in ``choices`` (phone, email, password).

    A value the page did not offer (a tampered radio, a channel unbound meanwhile) is
    refused with a message the user can act on.
    """
    return RadioField(
        _l("验证方式"),
        choices=[],
        validators=[DataRequired(_l("请选择验证方式"))],
        invalid_choice_message=_l("请选择页面上列出的验证方式"),
    )


def new_password_fields() -> tuple[PasswordField, PasswordField]:
    """A new password and its confirmation."""
    return (
        PasswordField(
            _l("新密码"),
            validators=[DataRequired(_l("请输入密码")), Length(max=1024, message=TOO_LONG)],
            render_kw={"placeholder": _l("请输入密码"), "autocomplete": "new-password"},
        ),
        PasswordField(
            _l("确认密码"),
            validators=[DataRequired(_l("请再次输入密码")), Length(max=1024, message=TOO_LONG)],
            render_kw={"placeholder": _l("请再次输入密码"), "autocomplete": "new-password"},
        ),
    )


class LoginForm(FlaskForm):
    """方式一：账号密码登录 — account number, phone or ID number, plus password."""

    identifier = StringField(
        _l("账号"),
        validators=[
            DataRequired(_l("请输入学工号、手机号或证件号")),
            Length(max=64, message=TOO_LONG),
        ],
        render_kw={"placeholder": _l("学工号 / 手机号 / 证件号"), "autocomplete": "username"},
    )
    password = PasswordField(
        _l("密码"),
        validators=[DataRequired(_l("请输入密码")), Length(max=1024, message=TOO_LONG)],
        render_kw={"placeholder": _l("请输入密码"), "autocomplete": "current-password"},
    )
    captcha = captcha_field()
    remember = BooleanField(_l("记住我（30 天内免登录）"))
    next = HiddenField()
    submit = SubmitField(_l("登录"))


class SmsLoginForm(FlaskForm):
    """方式二：手机验证码登录 — the security phone and a code sent to it."""

    phone = StringField(
        _l("安全手机"),
        validators=[DataRequired(_l("请输入安全手机号")), Length(max=20, message=TOO_LONG)],
        render_kw={"placeholder": _l("请输入安全手机号"), "autocomplete": "tel"},
    )
    code = code_field(_l("短信验证码"))
    captcha = captcha_field()
    remember = BooleanField(_l("记住我（30 天内免登录）"))
    next = HiddenField()
    send = SubmitField(_l("获取验证码"))
    submit = SubmitField(_l("登录"))


class ChangePasswordForm(FlaskForm):
    """A new password, typed twice (the current one when not in a verified flow)."""

    current = PasswordField(
        _l("当前密码"),
        validators=[Optional(), Length(max=1024, message=TOO_LONG)],
        render_kw={"autocomplete": "current-password"},
    )
    password = PasswordField(
        _l("新密码"),
        validators=[DataRequired(_l("请输入新密码")), Length(max=1024, message=TOO_LONG)],
        render_kw={"placeholder": _l("请输入密码"), "autocomplete": "new-password"},
    )
    confirm = PasswordField(
        _l("确认密码"),
        validators=[DataRequired(_l("请再次输入密码")), Length(max=1024, message=TOO_LONG)],
        render_kw={"placeholder": _l("请再次输入密码"), "autocomplete": "new-password"},
    )
    submit = SubmitField(_l("完成"))
