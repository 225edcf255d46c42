"""Sign-in pages: /login (password and SMS tabs), /logout, the forced password change, the
CAPTCHA image and the password-strength meter."""

from __future__ import annotations

import hmac
from datetime import datetime
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from idp.account import flows
from idp.account.codes import (
    SMS,
    Channel,
    CodeError,
    code_minutes,
    ip_needs_captcha,
    send_code,
    verify_code,
)
from idp.audit.operations import FAILURE, client_ip, record
from idp.auth import captcha, throttle
from idp.auth.forms import ChangePasswordForm, LoginForm, SmsLoginForm
from idp.auth.operations import (
    PasswordCheck,
    SignInOutcome,
    audit_sign_in,
    captcha_subject,
    confirm_password,
    find_user_by_identifier,
    find_user_by_security_phone,
    hasher,
    password_stamp,
    personal_info,
    required_step,
    set_password,
    sign_in_with_password,
)
from idp.auth.policy import N_, PasswordPolicy, check_password, password_strength
from idp.auth.sessions import (
    current_session,
    current_user,
    end_all_sessions,
    end_session,
    start_session,
)
from idp.directory.identifiers import normalise_phone
from idp.directory.models import User, UserStatus, utcnow
from idp.extensions import db
from idp.mfa.devices import device_trusted, keep_trusting
from idp.mfa.signin import TWO_STEP_FLOW, needs_second_factor, start_two_step, trust_token
from idp.policy_settings import effective_config
from idp.security.notices import notify_security_change
from shared.web import is_local_path

bp = Blueprint(
    "auth",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/_auth/static",
)

SIGNIN_FLOW = "signin"
REFUSED_MESSAGE = N_("账号或密码错误；多次输错后账号将暂时锁定。可改用短信验证码登录，或找回密码。")


def _next_target() -> str:
    target = request.values.get("next")
    return target if is_local_path(target) else url_for("portal.home")


def no_store(response: Response) -> Response:
    """Sign-in pages must never be served from a cache (CAS 3.0 asks for it too)."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def continue_sign_in(user: User, methods: list[str], remember: bool, target: str) -> Response:
    """Start the session, or first send the user through what their account still needs."""
    # A sign-in left half-way in this browser (on a shared computer, perhaps someone else's)
    # ends with this one: resumed later, it would change that account's password or bind its
    # phone from under the session this sign-in starts.
    flows.discard_flow(SIGNIN_FLOW)
    flows.discard_flow(TWO_STEP_FLOW)
    step = required_step(user)
    second_factor_due = step != "activate" and needs_second_factor(user, methods)
    audit_sign_in(user, methods[-1], second_factor_due=second_factor_due)
    if step == "activate":
        db.session.commit()
        flash(_("您的账号尚未激活，请先激活账号。"), "error")
        return redirect(url_for("account.activate"))
    if second_factor_due:
        # Before the required steps too: changing a password or completing information needs
        # the whole sign-in proven first. The code page calls back here with "totp" added.
        start_two_step(user, methods, remember, target)
        db.session.commit()
        return redirect(url_for("mfa.sign_in"))
    if step is not None:
        flows.start_flow(
            SIGNIN_FLOW,
            {
                "user_id": user.id,
                "methods": methods,
                "remember": remember,
                "next": target,
                "auth_time": utcnow().isoformat(),
                "stamp": password_stamp(user),
            },
        )
        db.session.commit()
        if step == "complete":
            return redirect(url_for("account.complete"))
        return redirect(url_for("auth.change_password"))
    start_session(user, methods, remember)
    db.session.commit()
    return redirect(target)


def finish_pending_sign_in() -> Response | None:
    """After a required step: start the session the sign-in was waiting for."""
    state = flows.finish_flow(SIGNIN_FLOW)
    if state is None:
        return None
    user = db.session.get(User, state["user_id"])
    if user is None or user.status != UserStatus.ACTIVE or required_step(user) is not None:
        return None  # the step the sign-in waited for was not done after all
    start_session(
        user,
        state["methods"],
        state["remember"],
        auth_time=datetime.fromisoformat(state["auth_time"]),
    )
    db.session.commit()
    return redirect(state["next"] if is_local_path(state["next"]) else url_for("portal.home"))


def pending_sign_in_user(*, discard_stale: bool = True) -> User | None:
    """The user part-way through sign-in (password proven, a required step not yet done).

    A sign-in parked before the password changed is void: recovering the account must shut
    out whoever held the old password, half-way through sign-in included. ``discard_stale``
    False only looks: a request beside the page (the strength meter) must not throw away a
    sign-in that the page's own 完成, storing the new password at that moment, is resuming.
    """
    state = flows.load_flow(SIGNIN_FLOW)
    if not state:
        return None
    user = db.session.get(User, state["user_id"])
    if user is None or not hmac.compare_digest(str(state.get("stamp")), password_stamp(user)):
        if discard_stale:
            flows.discard_flow(SIGNIN_FLOW)
        return None
    return user


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    """统一身份认证登录页: 账号登录, 短信登录 and 扫码登录 tabs."""
    tab = request.args.get("tab", "password")
    if tab == "sms":
        return sms_login()
    if tab == "qr":
        return qr_login()
    form = LoginForm()
    if request.method == "GET":
        form.next.data = request.args.get("next", "")
    need_captcha = False
    status = 401 if request.method == "POST" else 200
    if form.validate_on_submit():
        identifier = form.identifier.data or ""
        user = find_user_by_identifier(identifier)
        subject = captcha_subject(identifier)
        if throttle.captcha_required(subject, client_ip()) and not captcha.check_answer(
            form.captcha.data
        ):
            form.captcha.errors = [_("请输入正确的图形验证码")]
            need_captcha = True
        else:
            result = sign_in_with_password(identifier, form.password.data or "", user)
            if result.outcome is SignInOutcome.OK and result.user is not None:
                return no_store(
                    continue_sign_in(
                        result.user, ["password"], bool(form.remember.data), _next_target()
                    )
                )
            db.session.commit()
            if result.outcome is SignInOutcome.DISABLED:
                form.password.errors = [_("该账号已被停用或锁定，请联系管理员处理。")]
            else:
                form.password.errors = [_(REFUSED_MESSAGE)]
            need_captcha = throttle.captcha_required(subject, client_ip())
    elif request.method == "POST":
        # A box left empty or overfilled: no sign-in was tried, so 400, not 401. Ask for a
        # CAPTCHA rather than guess whether it is needed.
        need_captcha, status = True, 400
    form.password.data = ""
    return no_store(
        current_app.make_response(
            (
                render_template(
                    "auth/login.html", form=form, tab="password", need_captcha=need_captcha
                ),
                status,
            )
        )
    )


def qr_login() -> ResponseReturnValue:
    """方式三：微信、企业微信扫码登录: the icons lead to the providers' QR pages (idp.social)."""
    form = LoginForm()
    form.next.data = request.args.get("next", "")
    return no_store(
        current_app.make_response(
            render_template("auth/login.html", form=form, tab="qr", need_captcha=False)
        )
    )


def sms_login() -> ResponseReturnValue:
    """方式二：手机验证码登录."""
    form = SmsLoginForm()
    if request.method == "GET":
        form.next.data = request.args.get("next", "")
    need_captcha = ip_needs_captcha()
    status = 200
    if form.validate_on_submit():
        phone = normalise_phone(form.phone.data or "")
        if phone is None:
            form.phone.errors = [_("请输入正确的 11 位手机号")]
            status = 400
        elif form.send.data:
            status = _send_login_code(form, phone, need_captcha)
        else:
            response = _sms_sign_in(form, phone)
            if response is not None:
                return no_store(response)
            status = 401
        need_captcha = ip_needs_captcha()
    elif request.method == "POST":
        status = 400
    form.code.data = ""
    return no_store(
        current_app.make_response(
            (
                render_template("auth/login.html", form=form, tab="sms", need_captcha=need_captcha),
                status,
            )
        )
    )


def _send_login_code(form: SmsLoginForm, phone: str, need_captcha: bool) -> int:
    if need_captcha and not captcha.check_answer(form.captcha.data):
        form.captcha.errors = [_("请输入正确的图形验证码")]
        return 400
    owner = find_user_by_security_phone(phone)
    try:
        # Unknown numbers go through every limit too, but nothing is sent; known ones are sent
        # in the background: the same answer, in the same time, gateway up or down.
        send_code("login", Channel(SMS, phone), owner, deliver=owner is not None, background=True)
    except CodeError as exc:
        db.session.commit()
        form.code.errors = [exc.message]
        return exc.status
    db.session.commit()
    flash(
        _(
            "如果该手机号已绑定为安全手机，验证码已发送，%(minutes)d 分钟内有效。",
            minutes=code_minutes(),
        ),
        "success",
    )
    return 200


def _sms_sign_in(form: SmsLoginForm, phone: str) -> Response | None:
    if not form.code.data:
        form.code.errors = [_("请输入短信验证码")]
        return None
    try:
        user_id = verify_code("login", Channel(SMS, phone), form.code.data)
    except CodeError as exc:
        record("login", FAILURE, method="sms", detail={"reason": "code"})
        db.session.commit()
        form.code.errors = [exc.message]
        return None
    user = db.session.get(User, user_id) if user_id else None
    if user is None or find_user_by_security_phone(phone) is not user:
        form.code.errors = [_("验证码错误或已过期，请重新获取。")]
        return None
    if user.status in (UserStatus.DISABLED, UserStatus.LOCKED):
        record("login", "denied", target=user, method="sms", detail={"reason": user.status})
        db.session.commit()
        form.code.errors = [_("该账号已被停用或锁定，请联系管理员处理。")]
        return None
    return continue_sign_in(user, ["sms"], bool(form.remember.data), _next_target())


@bp.route("/logout", methods=["GET", "POST"])
def logout() -> ResponseReturnValue:
    """退出登录: GET asks, POST (with CSRF token) ends the SSO session."""
    sso = current_session()
    if request.method == "POST":
        if sso is not None:
            record("logout", target=sso.user)
            end_session(sso)
            db.session.commit()
        flash(_("您已安全退出。"), "success")
        return redirect(url_for("auth.login"))
    return render_template("auth/logout.html", signed_in=sso is not None)


@bp.route("/password/change", methods=["GET", "POST"])
def change_password() -> ResponseReturnValue:
    """修改密码: forced after sign-in (must-change flag), or from the security centre."""
    pending = pending_sign_in_user()
    if pending is not None and (step := required_step(pending)) != "password":
        # Only a must-change sign-in skips the current password here; any other parked
        # sign-in goes on with the step it is waiting for.
        if step == "complete":
            return redirect(url_for("account.complete"))
        return finish_pending_sign_in() or redirect(url_for("auth.login"))
    user = pending or current_user()
    if user is None:
        return redirect(url_for("auth.login", next=request.full_path))
    form = ChangePasswordForm()
    if form.validate_on_submit():
        errors = _new_password_errors(user, form)
        check = PasswordCheck.OK if pending else confirm_password(user, form.current.data or "")
        if check is PasswordCheck.LOCKED:
            db.session.commit()
            form.current.errors = [_("密码错误次数过多，请稍后再试，或通过“忘记密码”重置。")]
        elif check is PasswordCheck.WRONG:
            db.session.commit()
            form.current.errors = [_("当前密码不正确")]
        elif errors:
            form.password.errors = errors
        else:
            browser_trusted = device_trusted(user, trust_token())
            set_password(user, form.password.data or "")
            if browser_trusted:
                keep_trusting(user, trust_token())
            keep = current_session()
            end_all_sessions(user, keep=keep)
            record("password.change", actor=user)
            if keep is not None and keep.user_id == user.id:
                # This browser stays signed in, under a new session id (no fixation): as at a
                # re-authentication, its systems and sign-in methods carry over.
                start_session(
                    user, keep.methods.split(","), keep.remember, keep.auth_time, keep_times=True
                )
            db.session.commit()
            notify_security_change(user, "password")
            flash(_("密码已修改，其他设备上的登录已退出。"), "success")
            if pending is not None:
                resumed = finish_pending_sign_in()
                if resumed is not None:
                    return resumed
            return redirect(url_for("security.index"))
    form.current.data = form.password.data = form.confirm.data = ""
    status = 400 if request.method == "POST" else 200
    return render_template(
        "auth/change_password.html",
        form=form,
        forced=pending is not None,
        policy=PasswordPolicy.from_config(effective_config()),
    ), status


def _new_password_errors(user: User, form: Any) -> list[str]:
    """Policy messages for a new password, plus the confirmation check."""
    if form.password.data != form.confirm.data:
        return [_("两次输入的密码不一致")]
    errors = check_password(
        form.password.data, PasswordPolicy.from_config(effective_config()), personal_info(user)
    )
    if not errors and hasher().verify(user.password_hash, form.password.data).ok:
        errors = [_("新密码不能与当前密码相同")]
    return errors


@bp.get("/captcha.png")
def captcha_image() -> Response:
    """A new CAPTCHA image for this browser."""
    response = Response(captcha.new_challenge(), mimetype="image/png")
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/password/strength")
def strength() -> ResponseReturnValue:
    """Score a candidate password for the live meter (zxcvbn; nothing is stored or logged)."""
    data = request.get_json(silent=True) or {}
    password = data.get("password")
    if not isinstance(password, str):
        abort(400)
    user = current_user() or pending_sign_in_user(discard_stale=False)
    result = password_strength(password[:100], personal_info(user) if user else None)
    return jsonify(
        score=result.score,
        percent=result.percent,
        label=str(result.label),
        feedback=[str(f) for f in result.feedback],
    )


def setup_auth(app: Any) -> None:
    """Expose the signed-in user to every template."""

    @app.context_processor
    def signed_in_user() -> dict[str, Any]:
        if not g.get("request_id") or g.get("dependency_down"):
            return {"current_user": None}
        try:
            return {"current_user": current_user()}
        except (SQLAlchemyError, RedisError):
            # The error page of a failing database must still render: as signed out.
            current_app.logger.warning("could not look up the SSO session", exc_info=True)
            db.session.rollback()
            g.sso_session = None
            return {"current_user": None}
