"""The self-service wizards of the manual: 激活账号 (/activate), 信息完善 (/complete) and
找回密码 (/recover). Each keeps its state server-side (see :mod:`idp.account.flows`)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from idp.account import flows
from idp.account.codes import (
    EMAIL,
    SMS,
    CodeError,
    code_minutes,
    ip_needs_captcha,
    send_code,
    verified_channels,
    verify_code,
)
from idp.account.forms import IdentityForm, NewPasswordForm, PhoneForm, VerifyForm
from idp.account.operations import (
    AccountError,
    activate_account,
    complete_information,
    reset_password,
)
from idp.account.reset_links import (
    LINK_PATH,
    LINK_TTL,
    METHOD,
    find_link_user,
    note_link_request,
    use_reset_link,
)
from idp.account.steps import (
    ACTIVATE,
    ALREADY_ACTIVE,
    COMPLETE,
    EXPIRED,
    MISMATCH,
    RECOVER,
    bind_phone_step,
    code_failed,
    code_refused,
    final_password_step,
    identity_needs_captcha,
    new_password_step,
    open_flow,
    password_errors,
    recovery_refused,
    render_step,
    restart_flow,
    verify_identity,
)
from idp.audit.operations import FAILURE, client_ip, record
from idp.auth import captcha
from idp.auth.operations import credentials_stamp, required_step
from idp.auth.policy import N_, PasswordPolicy
from idp.auth.views import SIGNIN_FLOW, finish_pending_sign_in, no_store, pending_sign_in_user
from idp.directory.models import User, UserStatus
from idp.extensions import db
from idp.policy_settings import effective_config
from idp.security.notices import notify_security_change

bp = Blueprint("account", __name__, template_folder="templates")

PHONE_CHANGED = N_("您的安全手机已在其他页面绑定或更换，请重新登录。")


# 激活账号 ---------------------------------------------------------------------------------


@bp.route("/activate", methods=["GET", "POST"])
def activate() -> ResponseReturnValue:
    """激活账号, step 1: account, name and ID number."""
    form = IdentityForm()
    if request.method == "GET" and request.args.get("restart"):
        flows.discard_flow(ACTIVATE)
    if form.validate_on_submit():
        user = verify_identity(form, ACTIVATE)
        if user is not None:
            if user.status in (UserStatus.DISABLED, UserStatus.LOCKED):
                form.account.errors = [_("该账号已被停用或锁定，请联系管理员处理。")]
            elif user.status != UserStatus.PENDING:
                form.account.errors = [_(ALREADY_ACTIVE)]
            else:
                flows.start_flow(ACTIVATE, {"user_id": user.id, "step": "phone"})
                return redirect(url_for("account.activate_phone"))
    return render_step(
        "account/activate.html",
        400 if form.errors else 200,
        form=form,
        step=1,
        need_captcha=identity_needs_captcha(form, ACTIVATE),
    )


@bp.route("/activate/phone", methods=["GET", "POST"])
def activate_phone() -> ResponseReturnValue:
    """激活账号, step 2: bind the security phone with an SMS code."""
    flow = open_flow(ACTIVATE)
    if isinstance(flow, str):
        return restart_flow("account.activate", flow)
    state, user = flow
    form = PhoneForm()
    if form.validate_on_submit() and bind_phone_step(form, user, "activation"):
        # The stamp of the phone just bound: should another browser with the same details
        # bind its own before this one sets the password, the activation starts over rather
        # than hand the owner an account whose security phone (and SMS sign-in) is not theirs.
        flows.save_flow(ACTIVATE, {**state, "step": "password", "stamp": credentials_stamp(user)})
        return redirect(url_for("account.activate_password"))
    return render_step(
        "account/activate.html",
        400 if form.errors else 200,
        form=form,
        step=2,
        need_captcha=ip_needs_captcha(),
        user=user,
    )


@bp.route("/activate/password", methods=["GET", "POST"])
def activate_password() -> ResponseReturnValue:
    """激活账号, step 3: set the password; then 激活成功，去登录."""

    def activate(user: User, password: str, state: dict[str, Any]) -> ResponseReturnValue:
        try:
            activate_account(user, password)
        except AccountError as exc:
            flash(str(exc), "error")
            return redirect(url_for("auth.login"))
        db.session.commit()
        # No security notice (idp.security.notices), unlike every other new password: the
        # person has just proved themselves with the ID number and a code to the phone being
        # bound, and there is no earlier password whose loss a notice would warn about.
        return render_step("account/activated.html", user=user)

    return final_password_step(ACTIVATE, "account.activate", "account/activate.html", activate)


# 信息完善 ---------------------------------------------------------------------------------


@bp.route("/complete", methods=["GET", "POST"])
def complete() -> ResponseReturnValue:
    """信息完善: asked at sign-in when no security phone is bound (manual 2.1.2)."""
    user = pending_sign_in_user()
    if user is None:
        flash(_("请先登录。"), "error")
        return redirect(url_for("auth.login"))
    state = flows.load_flow(COMPLETE)
    in_progress = state is not None and state.get("user_id") == user.id
    if not in_progress and required_step(user) != "complete":
        # Only an account without a security phone completes its information here; anyone
        # else changes a bound phone in the security centre, which asks for the old one.
        return redirect(url_for("auth.change_password"))
    if state is None or not in_progress:
        state = {"user_id": user.id, "step": "intro", "stamp": credentials_stamp(user)}
        flows.start_flow(COMPLETE, state)
    elif state.get("stamp") != credentials_stamp(user):
        # The security phone changed since this completion began or bound its own (another
        # completion, the security centre, the help desk): going on could replace a phone
        # this flow never proved, so the sign-in starts over.
        flows.discard_flow(COMPLETE)
        flows.discard_flow(SIGNIN_FLOW)
        flash(_(PHONE_CHANGED), "error")
        return redirect(url_for("auth.login"))
    step = state["step"]
    if step == "intro" and request.method == "GET" and not request.args.get("start"):
        return render_step("account/complete.html", step=0, user=user)
    if step in ("intro", "identity"):
        return _complete_identity(user, state)
    if step == "phone":
        return _complete_phone(user, state)
    return _complete_password(user)


def _complete_identity(user: User, state: dict[str, Any]) -> ResponseReturnValue:
    form = IdentityForm()
    if request.method == "GET":
        form.account.data = user.account
    if request.method == "POST" and form.validate_on_submit():
        matched = verify_identity(form, COMPLETE)
        if matched is not None:
            if matched.id != user.id:
                form.id_number.errors = [_(MISMATCH)]
            else:
                flows.save_flow(COMPLETE, {**state, "step": "phone"})
                return redirect(url_for("account.complete"))
    return render_step(
        "account/complete.html",
        400 if form.errors else 200,
        form=form,
        step=1,
        user=user,
        need_captcha=identity_needs_captcha(form, COMPLETE),
    )


def _complete_phone(user: User, state: dict[str, Any]) -> ResponseReturnValue:
    form = PhoneForm()
    if (
        request.method == "POST"
        and form.validate_on_submit()
        and bind_phone_step(form, user, "bind_phone")
    ):
        flows.save_flow(COMPLETE, {**state, "step": "password", "stamp": credentials_stamp(user)})
        return redirect(url_for("account.complete"))
    return render_step(
        "account/complete.html",
        400 if form.errors else 200,
        form=form,
        step=2,
        user=user,
        need_captcha=ip_needs_captcha(),
    )


def _complete_password(user: User) -> ResponseReturnValue:
    form = NewPasswordForm()
    if request.method == "POST" and form.validate_on_submit():
        errors = password_errors(user, form)
        if errors:
            form.password.errors = errors
        elif flows.finish_flow(COMPLETE) is None:
            flash(_(EXPIRED), "error")
            return redirect(url_for("auth.login"))
        else:
            complete_information(user, form.password.data or "")
            db.session.commit()
            # No security notice, as at activation: the person has just proved themselves (the
            # ID number, a code to the phone bound a step ago) and the password set here
            # replaces none worth warning about.
            resumed = finish_pending_sign_in()
            if resumed is not None:
                return resumed
            flash(_("信息已完善，请重新登录。"), "success")
            return redirect(url_for("auth.login"))
    return render_step(
        "account/complete.html",
        400 if form.errors else 200,
        form=form,
        step=3,
        user=user,
        policy=PasswordPolicy.from_config(effective_config()),
    )


# 找回密码 ---------------------------------------------------------------------------------


@bp.route("/recover", methods=["GET", "POST"])
def recover() -> ResponseReturnValue:
    """找回密码, step 1: 基础信息验证."""
    form = IdentityForm()
    if form.validate_on_submit():
        user = verify_identity(form, RECOVER)
        if user is not None:
            refused = recovery_refused(user)
            if refused is not None:
                form.account.errors = [_(refused)]
            else:
                # The stamp: a code to the phone or email on file proves them only while they,
                # and the password, are what they are now (see open_flow).
                state = {"user_id": user.id, "step": "verify", "stamp": credentials_stamp(user)}
                flows.start_flow(RECOVER, state)
                return redirect(url_for("account.recover_verify"))
    return render_step(
        "account/recover.html",
        400 if form.errors else 200,
        form=form,
        step=1,
        need_captcha=identity_needs_captcha(form, RECOVER),
    )


@bp.route("/recover/verify", methods=["GET", "POST"])
def recover_verify() -> ResponseReturnValue:
    """找回密码, step 2: 身份验证 by security phone (masked) or security email."""
    flow = open_flow(RECOVER)
    if isinstance(flow, str):
        return restart_flow("account.recover", flow)
    state, user = flow
    channels = verified_channels(user)  # at least one: see recovery_refused
    form = VerifyForm()
    labels = {SMS: _("安全手机"), EMAIL: _("安全邮箱")}
    form.method.choices = [(k, f"{labels[k]} {c.masked}") for k, c in channels.items()]
    if request.method == "GET":
        form.method.data = next(iter(channels))
    if form.validate_on_submit():
        channel = channels[form.method.data]
        if form.send.data:
            if ip_needs_captcha() and not captcha.check_answer(form.captcha.data):
                form.captcha.errors = [_("请输入正确的图形验证码")]
            else:
                try:
                    send_code("recovery", channel, user)
                    flash(
                        _(
                            "验证码已发送至 %(target)s，%(minutes)d 分钟内有效。",
                            target=channel.masked,
                            minutes=code_minutes(),
                        ),
                        "success",
                    )
                except CodeError as exc:
                    code_failed(form, exc)
                db.session.commit()
        elif not form.code.data:
            form.code.errors = [_("请输入验证码")]
        else:
            try:
                owner = verify_code("recovery", channel, form.code.data)
            except CodeError as exc:
                form.code.errors = [exc.message]
            else:
                if owner == user.id:
                    flows.save_flow(RECOVER, {**state, "step": "password", "method": channel.kind})
                    return redirect(url_for("account.recover_password"))
                form.code.errors = [_("验证码错误或已过期，请重新获取。")]
            code_refused("recovery.code", user, channel.kind)
    return render_step(
        "account/recover.html",
        400 if form.errors else 200,
        form=form,
        step=2,
        need_captcha=ip_needs_captcha(),
        channels=channels,
    )


@bp.route("/recover/password", methods=["GET", "POST"])
def recover_password() -> ResponseReturnValue:
    """找回密码, step 3: 重置密码; every session of the account ends."""

    def reset(user: User, password: str, state: dict[str, Any]) -> ResponseReturnValue:
        reset_password(user, password, state.get("method", SMS))
        db.session.commit()
        notify_security_change(user, "password")
        flash(_("密码已重置，请使用新密码登录。"), "success")
        return redirect(url_for("auth.login"))

    return final_password_step(RECOVER, "account.recover", "account/recover.html", reset)


# 服务台重置链接 ---------------------------------------------------------------------------


@bp.route(LINK_PATH + "<token>", methods=["GET", "POST"])
def reset_link(token: str) -> ResponseReturnValue:
    """The help desk's reset link from the SMS: a new password without the old one, once.

    Opening it (GET) does not use it up; the password form's POST does, atomically.
    """
    if not note_link_request(client_ip()):
        return _link_gone(
            429,
            _("打开重置链接的请求过于频繁，请一小时后再试；着急的话请使用找回密码。"),
            "ip-limit",
        )
    user = find_link_user(token)
    if user is None:
        return _link_gone()

    def claim(password: str) -> bool:
        return use_reset_link(token, user, password)

    def finish(password: str) -> ResponseReturnValue:
        db.session.commit()
        notify_security_change(user, "password")
        flash(_("密码已重置，请使用新密码登录。"), "success")
        return redirect(url_for("auth.login"))

    response = current_app.make_response(
        new_password_step(
            user,
            "account/reset_link.html",
            claim=claim,
            finish=finish,
            expired=_link_gone,
            account=user.account,
        )
    )
    # The address is the secret: never hand it to another site as a Referer.
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _link_gone(
    status: int = 410, message: str | None = None, reason: str = "link-invalid"
) -> ResponseReturnValue:
    """An unknown, used, expired or superseded link: the same page whatever the case."""
    if request.method == "POST":
        record("password.reset", FAILURE, method=METHOD, detail={"reason": reason})
        db.session.commit()
    page = render_template("account/reset_link_gone.html", message=message, hours=LINK_TTL // 3600)
    response = no_store(current_app.make_response((page, status)))
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
