"""The steps the self-service wizards share: rendering, identity checks, codes, passwords.

Kept apart from the routes so each wizard in :mod:`idp.account.views` reads as its steps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import current_app, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from idp.account import flows
from idp.account.codes import (
    SMS,
    Channel,
    CodeError,
    code_minutes,
    ip_needs_captcha,
    send_code,
    verified_channels,
    verify_code,
)
from idp.account.forms import IdentityForm, NewPasswordForm, PhoneForm
from idp.account.operations import (
    AccountError,
    bind_security_phone,
    match_identity,
)
from idp.audit.operations import FAILURE, client_ip, record
from idp.auth import captcha, throttle
from idp.auth.operations import credentials_stamp, personal_info
from idp.auth.policy import N_, PasswordPolicy, check_password
from idp.auth.views import no_store
from idp.directory.identifiers import mask_phone, normalise_phone
from idp.directory.models import User, UserStatus
from idp.extensions import db
from idp.policy_settings import effective_config

ACTIVATE = "activate"
RECOVER = "recover"
COMPLETE = "complete"
MISMATCH = N_("您输入的信息与学校登记的信息不一致，请核对后重试。")
EXPIRED = N_("操作已超时或已在其他页面完成，请重新开始。")
ALREADY_ACTIVE = N_("该账号已激活，请直接登录；忘记密码请使用“忘记密码”。")
NOT_ACTIVATED = N_("该账号尚未激活，请先激活账号。")
STOPPED = N_("该账号已被停用或锁定，请联系管理员处理。")
NO_CHANNEL = N_("您未绑定安全手机或安全邮箱，无法自助找回密码，请联系管理员处理。")


def render_step(template: str, status: int = 200, **context: Any) -> ResponseReturnValue:
    # A code that could not be sent (limits: 429; gateway: 502) keeps its own status.
    status = g.get("code_error_status", status)
    form = context.get("form")
    if form is not None and hasattr(form, "id_number") and form.errors:
        form.id_number.data = ""  # never echo an ID number back into the page
    return no_store(current_app.make_response((render_template(template, **context), status)))


def code_failed(form: Any, exc: CodeError) -> None:
    form.code.errors = [exc.message]
    if exc.status != 400:
        g.code_error_status = exc.status


def recovery_refused(user: User) -> str | None:
    """Why 找回密码 cannot give ``user`` a new password (an untranslated message), or None.

    Only an active account with a verified security phone or email recovers: one never
    activated is sent to 激活账号, and one the help desk disabled or locked (a stolen phone
    reported, say) must not get a password through the very phone or mailbox it was stopped
    for.
    """
    if user.status == UserStatus.PENDING:
        return NOT_ACTIVATED
    if user.status != UserStatus.ACTIVE:
        return STOPPED
    if not verified_channels(user):
        return NO_CHANNEL
    return None


def open_flow(kind: str) -> tuple[dict[str, Any], User] | str:
    """The wizard's state and account while it may go on; else the message that says why not.

    An activation goes on only while its account is still pending: once activated (in
    another browser, say), a flow abandoned at a later step must neither bind a phone nor
    set a password. A recovery goes on only while its account is active. A flow that kept
    the account's ``stamp`` (:func:`~idp.auth.operations.credentials_stamp`) goes on only while
    the security phone, email and password are still what it proved or bound: a recovery
    proven by a phone since unbound, or reset in another browser, and an activation whose
    phone another browser replaced, are void. Such flows are discarded.
    """
    state = flows.load_flow(kind)
    # An activation step that may bind or set something holds the account's row until it
    # commits: an activation finishing in another browser meanwhile waits, or is seen here.
    lock = kind == ACTIVATE and request.method == "POST"
    user_id = state.get("user_id") if state else None
    user = db.session.get(User, user_id, with_for_update=lock or None) if user_id else None
    if state is None or user is None:
        return EXPIRED
    if kind == ACTIVATE and user.status != UserStatus.PENDING:
        flows.discard_flow(kind)
        record("activate.stale", FAILURE, target=user)
        db.session.commit()
        return ALREADY_ACTIVE
    refused = recovery_refused(user) if kind == RECOVER else None
    stale = "stamp" in state and state["stamp"] != credentials_stamp(user)
    if refused is not None or stale:
        flows.discard_flow(kind)
        reason = "refused" if refused is not None else "changed"
        record(f"{kind}.stale", FAILURE, target=user, detail={"reason": reason})
        db.session.commit()
        return refused or EXPIRED
    return state, user


def restart_flow(start: str, message: str = EXPIRED) -> ResponseReturnValue:
    """Back to the wizard's first step (``start``), saying why the flow cannot go on.

    An account activated meanwhile is sent to sign in instead, as its message says.
    """
    flash(_(message), "error")
    return redirect(url_for("auth.login" if message == ALREADY_ACTIVE else start))


def verify_identity(form: IdentityForm, flow_subject: str) -> User | None:
    """Check 基础信息验证 under a CAPTCHA once it has failed a few times from here or for it."""
    subject = f"{flow_subject}:{(form.account.data or '').strip().lower()}"
    if throttle.captcha_required(subject, client_ip()) and not captcha.check_answer(
        form.captcha.data
    ):
        form.captcha.errors = [_("请输入正确的图形验证码")]
        return None
    user = match_identity(form.account.data or "", form.name.data or "", form.id_number.data or "")
    if user is None:
        throttle.record_failure(subject)
        throttle.record_ip_failure(client_ip())
        record(f"{flow_subject}.identify", FAILURE)
        db.session.commit()
        form.id_number.errors = [_(MISMATCH)]
        return None
    return user


def identity_needs_captcha(form: IdentityForm, flow_subject: str) -> bool:
    subject = f"{flow_subject}:{(form.account.data or '').strip().lower()}"
    return throttle.captcha_required(subject, client_ip())


def password_errors(user: User, form: NewPasswordForm) -> list[str]:
    if form.password.data != form.confirm.data:
        return [_("两次输入的密码不一致")]
    return check_password(
        form.password.data or "",
        PasswordPolicy.from_config(effective_config()),
        personal_info(user),
    )


def phone_step(form: PhoneForm, user: User, purpose: str) -> str | None:
    """Send or check the SMS code that proves a new security phone. Returns the bound phone."""
    phone = normalise_phone(form.phone.data or "")
    if phone is None:
        form.phone.errors = [_("请输入正确的 11 位手机号")]
        return None
    if form.send.data:
        if ip_needs_captcha() and not captcha.check_answer(form.captcha.data):
            form.captcha.errors = [_("请输入正确的图形验证码")]
            return None
        try:
            send_code(purpose, Channel(SMS, phone), user)
            flash(
                _(
                    "验证码已发送至 %(phone)s，%(minutes)d 分钟内有效。",
                    phone=mask_phone(phone),
                    minutes=code_minutes(),
                ),
                "success",
            )
        except CodeError as exc:
            code_failed(form, exc)
        db.session.commit()
        return None
    if not form.code.data:
        form.code.errors = [_("请输入短信验证码")]
        return None
    try:
        owner_id = verify_code(purpose, Channel(SMS, phone), form.code.data, user.id)
    except CodeError as exc:
        form.code.errors = [exc.message]
    else:
        if owner_id == user.id:
            return phone
        form.code.errors = [_("验证码错误或已过期，请重新获取。")]
    code_refused(f"{purpose}.code", user, SMS)
    return None


def code_refused(action: str, user: User, channel_kind: str) -> None:
    """Audit a wrong, expired or void code in a wizard (every use of a code is audited)."""
    record(action, FAILURE, target=user, method=channel_kind, detail={"reason": "code"})
    db.session.commit()


def final_password_step(
    kind: str,
    start: str,
    template: str,
    finish: Callable[[User, str, dict[str, Any]], ResponseReturnValue],
) -> ResponseReturnValue:
    """The last step of a wizard: a new password, then ``finish`` — once, whatever the tabs."""
    flow = open_flow(kind)
    if isinstance(flow, str):
        return restart_flow(start, flow)
    state, user = flow
    if state.get("step") != "password":
        return restart_flow(start)
    return new_password_step(
        user,
        template,
        claim=lambda password: flows.finish_flow(kind) is not None,
        finish=lambda password: finish(user, password, state),
        expired=lambda: restart_flow(start),
        step=3,
    )


def new_password_step(
    user: User,
    template: str,
    *,
    claim: Callable[[str], bool],
    finish: Callable[[str], ResponseReturnValue],
    expired: Callable[[], ResponseReturnValue],
    **context: Any,
) -> ResponseReturnValue:
    """重置密码: the new password twice, checked against the policy.

    Once it passes, ``claim`` uses up the right to set it (False: another tab or request got
    there first, answered by ``expired``) and ``finish`` answers.
    """
    form = NewPasswordForm()
    if form.validate_on_submit():
        errors = password_errors(user, form)
        if errors:
            form.password.errors = errors
        elif not claim(form.password.data or ""):
            return expired()
        else:
            return finish(form.password.data or "")
    return render_step(
        template,
        400 if form.errors else 200,
        form=form,
        policy=PasswordPolicy.from_config(effective_config()),
        **context,
    )


def bind_phone_step(form: PhoneForm, user: User, purpose: str) -> bool:
    """The 绑定安全手机 step: send or check the code, then bind and commit. True once bound."""
    phone = phone_step(form, user, purpose)
    if phone is None:
        return False
    try:
        bind_security_phone(user, phone)
    except AccountError as exc:
        db.session.rollback()
        form.phone.errors = [str(exc)]
        # Audited as in 安全中心: a proven number refused because another account has it.
        record("phone.bind", FAILURE, actor=user, detail={"reason": "taken"})
        db.session.commit()
        return False
    db.session.commit()
    return True
