"""The steps both 安全中心 wizards share: server-side flow state, re-verification, codes."""

from __future__ import annotations

from typing import Any

from flask import (
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.wrappers import Response

from idp.account import flows
from idp.account.codes import (
    EMAIL,
    SMS,
    Channel,
    CodeError,
    ip_needs_captcha,
    send_code,
    verify_code,
)
from idp.audit.operations import FAILURE, record
from idp.auth import captcha
from idp.auth.operations import PasswordCheck, confirm_password, credentials_stamp
from idp.auth.sessions import current_session
from idp.auth.views import no_store
from idp.directory.models import User
from idp.extensions import db
from idp.policy_settings import effective_config
from idp.security.forms import (
    ReverifyForm,
)
from idp.security.operations import (
    PASSWORD,
    record_reverified,
    reverify_channels,
)

#: 身份验证 counts for this long: long enough to fetch a code, short for an unattended screen.
FLOW_TTL = 600
EXPIRED = _l("操作已超时或已在其他页面完成，请重新开始。")

CHANNEL_LABELS = {SMS: _l("安全手机"), EMAIL: _l("安全邮箱")}
#: The audit action a wrong code is recorded under, by code purpose.
CODE_ACTIONS = {"verify": "security.verify", "bind_email": "email.bind", "bind_phone": "phone.bind"}


def render_page(template: str, status: int = 200, **context: Any) -> ResponseReturnValue:
    # Personal data and one-time forms: never from a cache.
    return no_store(current_app.make_response((render_template(template, **context), status)))


def flow_state(kind: str, user: User) -> dict[str, Any] | None:
    """This browser's flow of ``kind`` for ``user``; a GET starts one, a POST never does.

    A flow holds only for the sign-in that started it and while the account's security
    phone, email and password are what they were then: 身份验证 proved the old ones, so once
    they change (in another tab or browser, by the help desk), or the browser signs out, a
    flow left half-way is void and starts again.
    """
    if request.method == "GET" and request.args.get("restart"):
        flows.discard_flow(kind)
    state = flows.load_flow(kind)
    holder = _holder(user)
    if state is not None and state.get("user_id") == user.id and state.get("holder") == holder:
        return state
    if state is not None:
        flows.discard_flow(kind)
    if request.method != "GET":
        return None  # expired, finished in another tab, or a replayed form
    state = {"user_id": user.id, "step": "verify", "holder": holder}
    flows.start_flow(kind, state, FLOW_TTL)
    return state


def _holder(user: User) -> str:
    """Who may go on with a flow: this sign-in, and the account's credentials as they are."""
    sso = current_session()
    return f"{sso.id if sso else ''}:{credentials_stamp(user)}"


def finish_flow(kind: str, user: User, step: str) -> dict[str, Any] | None:
    """Take the flow (single use); None unless it was still ``user``'s and at ``step``."""
    taken = flows.finish_flow(kind)
    if taken is None or taken.get("user_id") != user.id or taken.get("step") != step:
        return None
    return taken


def expired(endpoint: str) -> Response:
    flash(str(EXPIRED), "error")
    return redirect(url_for(endpoint))


def send(form: Any, purpose: str, channel: Channel, user: User) -> int:
    """Send a code for ``purpose`` (under a CAPTCHA for busy addresses); returns the status."""
    if ip_needs_captcha() and not captcha.check_answer(form.captcha.data):
        form.captcha.errors = [_("请输入正确的图形验证码")]
        return 400
    try:
        send_code(purpose, channel, user)
    except CodeError as exc:
        db.session.commit()  # the refusal is audited
        form.code.errors = [exc.message]
        return exc.status
    db.session.commit()
    minutes = max(1, effective_config()["CODE_TTL"] // 60)
    flash(
        _(
            "验证码已发送至 %(target)s，%(minutes)d 分钟内有效。",
            target=channel.masked,
            minutes=minutes,
        ),
        "success",
    )
    return 200


def code_refused(form: Any, purpose: str, channel: Channel, user: User) -> int | None:
    """None when the typed code is right and was issued to ``user``; else the HTTP status."""
    if not form.code.data:
        form.code.errors = [_("请输入验证码")]
        return 400
    try:
        owner = verify_code(purpose, channel, form.code.data, user.id)
    except CodeError as exc:
        form.code.errors = [exc.message]
        record(
            CODE_ACTIONS[purpose],
            FAILURE,
            actor=user,
            method=channel.kind,
            detail={"reason": "code"},
        )
        db.session.commit()
        return exc.status
    if owner != user.id:
        form.code.errors = [_("验证码错误或已过期，请重新获取。")]
        return 400
    return None


def reverify(
    user: User, state: dict[str, Any], kind: str, for_change: str, allow_password: bool
) -> tuple[ReverifyForm, int] | Response:
    """Step 1, 身份验证: the password or a ``verify`` code; moves the flow on when it holds."""
    channels = reverify_channels(user, for_change=for_change)
    form = ReverifyForm()
    choices: list[tuple[str, str]] = [(PASSWORD, _("登录密码"))] if allow_password else []
    choices += [(key, f"{CHANNEL_LABELS[key]} {c.masked}") for key, c in channels.items()]
    form.method.choices = choices
    if not choices:  # neither phone nor email on file: only the help desk can help
        return form, 400 if request.method == "POST" else 200
    if request.method == "GET":
        form.method.data = choices[0][0]
    status = 200
    if form.validate_on_submit():
        method = form.method.data or ""
        if method != PASSWORD and form.send.data:
            status = send(form, "verify", channels[method], user)
        else:
            refused = (
                password_refused(form, user)
                if method == PASSWORD
                else code_refused(form, "verify", channels[method], user)
            )
            if refused is None:
                record_reverified(user, method, for_change)
                db.session.commit()
                flows.save_flow(kind, {**state, "step": "new", "verified_by": method}, FLOW_TTL)
                return redirect(request.path)
            status = refused
    elif request.method == "POST":
        status = 400
    form.password.data = ""
    form.code.data = ""
    return form, status


def password_refused(form: ReverifyForm, user: User) -> int | None:
    if form.send.data:
        form.code.errors = [_("使用登录密码验证时无需获取验证码。")]
        return 400
    if not form.password.data:
        form.password.errors = [_("请输入登录密码")]
        return 400
    check = confirm_password(user, form.password.data)
    db.session.commit()  # failures count and are audited even though nothing changes
    if check is PasswordCheck.LOCKED:
        form.password.errors = [_("密码错误次数过多，请稍后再试，或改用验证码验证。")]
        return 429
    if check is PasswordCheck.WRONG:
        form.password.errors = [_("登录密码不正确；多次输错后将暂时锁定。")]
        return 400
    return None
