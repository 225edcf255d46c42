"""Forms of two-step verification: the code at sign-in or step-up, enabling (password, then
the first code), disabling, new recovery codes."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, Length, Optional

from idp.auth.forms import TOO_LONG


def totp_field(required: bool = True) -> StringField:
    """The 6-digit code the authenticator app shows (spaces allowed, as apps group them)."""
    return StringField(
        _l("动态验证码"),
        validators=[
            DataRequired(_l("请输入验证器应用中显示的 6 位数字")) if required else Optional(),
            Length(max=16, message=TOO_LONG),
        ],
        render_kw={
            "placeholder": _l("6 位数字"),
            "inputmode": "numeric",
            "autocomplete": "one-time-code",
        },
    )


def code_or_recovery_field() -> StringField:
    """A code from the app or, when it is lost, an unused recovery code."""
    return StringField(
        _l("动态验证码或恢复码"),
        validators=[
            DataRequired(_l("请输入验证器应用中显示的 6 位数字，或一个未使用的恢复码")),
            Length(max=32, message=TOO_LONG),
        ],
        render_kw={"placeholder": _l("6 位数字或恢复码"), "autocomplete": "off"},
    )


def login_password_field() -> PasswordField:
    """The account's login password, asked again before a 两步验证 change."""
    return PasswordField(
        _l("登录密码"),
        validators=[DataRequired(_l("请输入登录密码")), Length(max=1024, message=TOO_LONG)],
        render_kw={"autocomplete": "current-password"},
    )


class VerifyForm(FlaskForm):
    """输入动态验证码, or on the recovery tab a recovery code instead."""

    code = totp_field(required=False)
    recovery_code = StringField(
        _l("恢复码"),
        validators=[Optional(), Length(max=32, message=TOO_LONG)],
        render_kw={"placeholder": _l("例如 abcde-12345"), "autocomplete": "off"},
    )
    next = HiddenField()
    trust = BooleanField(_l("30 天内在此设备上免验证"))
    submit = SubmitField(_l("验证"))


class EnablePasswordForm(FlaskForm):
    """开启两步验证, first step: the login password, so a session left open on a shared
    computer cannot bind someone else's authenticator to the account."""

    password = login_password_field()
    submit = SubmitField(_l("下一步"))


class EnableForm(FlaskForm):
    """开启两步验证: the first code proves the app holds the secret."""

    code = totp_field()
    submit = SubmitField(_l("开启两步验证"))


class DisableForm(FlaskForm):
    """关闭两步验证: the login password and a current code (or an unused recovery code)."""

    password = login_password_field()
    code = code_or_recovery_field()
    submit = SubmitField(_l("关闭两步验证"))


class RegenerateForm(FlaskForm):
    """重新生成恢复码: a current code (or an unused recovery code), so a stolen session alone
    cannot get new codes."""

    code = code_or_recovery_field()
    submit = SubmitField(_l("重新生成恢复码"))


class ForgetDeviceForm(FlaskForm):
    """取消信任 one device (``device_id``) or, left empty, every device."""

    device_id = HiddenField()
    submit = SubmitField(_l("取消信任"))
