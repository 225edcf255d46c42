"""两步验证 pages: the code after the password (or SMS, WeChat…) at sign-in, the step-up page
for signed-in users (/mfa/verify), and enabling, disabling and recovery codes in the security
centre (/security/totp)."""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from idp.account import flows
from idp.audit.operations import client_ip, record
from idp.auth.models import SsoSession
from idp.auth.sessions import current_session, start_session
from idp.auth.views import continue_sign_in, no_store
from idp.directory.models import User, utcnow
from idp.extensions import db
from idp.mfa.devices import (
    forget_all_devices,
    forget_device,
    trust_days,
    trust_device,
    trusted_devices,
)
from idp.mfa.forms import (
    DisableForm,
    EnableForm,
    EnablePasswordForm,
    ForgetDeviceForm,
    RegenerateForm,
    VerifyForm,
)
from idp.mfa.operations import (
    ENROLMENT_TTL,
    TOTP,
    MfaError,
    confirm_enrolment,
    confirm_login_password,
    disable_totp,
    enrolment_secret,
    format_secret,
    methods_with_totp,
    provisioning_uri,
    qr_code_data_uri,
    recovery_codes_left,
    regenerate_recovery_codes,
    totp_enabled,
    use_recovery_code,
    verify_totp,
)
from idp.mfa.signin import (
    TWO_STEP_FLOW,
    parked_sign_in_holds,
    parked_user,
    pending_two_step,
    set_trust_cookie,
    trust_cookie_name,
)
from idp.security.notices import notify_security_change
from idp.security.operations import campus_time, describe_device, record_reverified
from idp.security.steps import EXPIRED, flow_state
from idp.security.views import user_needed
from shared.ids import row_id
from shared.web import is_local_path

bp = Blueprint(
    "mfa",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/_mfa/static",
)

RECOVERY = "recovery"
#: 开启两步验证 in progress: ``step`` is ``verify`` (the password) or ``key`` (the QR code).
ENROL_FLOW = "totp_enrol"
#: The password step counts for as long as the key it shows may be confirmed.
ENROLMENT_SECONDS = int(ENROLMENT_TTL.total_seconds())


def _page(template: str, status: int = 200, **context: Any) -> Response:
    """Render without caching: these pages carry secrets, codes or a half-finished sign-in."""
    return no_store(current_app.make_response((render_template(template, **context), status)))


def _local_or(target: str | None, default: str) -> str:
    return target if target is not None and is_local_path(target) else default


def _check_second_factor(user: User, form: VerifyForm, mode: str) -> int | None:
    """Verify the code or recovery code in ``form``; None when accepted, else the HTTP status.

    Failures are committed here (audit event, used counters) before the page is shown again.
    """
    field = form.recovery_code if mode == RECOVERY else form.code
    if not (field.data or "").strip():
        field.errors = [
            _("请输入恢复码") if mode == RECOVERY else _("请输入验证器应用中显示的 6 位数字")
        ]
        return 400
    try:
        if mode == RECOVERY:
            left = use_recovery_code(user, field.data or "")
            if left <= 3:
                flash(
                    _("恢复码只剩 %(left)d 个，请在安全中心重新生成。", left=left),
                    "warning",
                )
        else:
            verify_totp(user, field.data or "")
    except MfaError as exc:
        db.session.commit()
        field.errors = [exc.message]
        return exc.status
    return None


# 登录时的两步验证 -------------------------------------------------------------------------------


def _step_up(sso: SsoSession) -> None:
    """A second factor verified in this session raises what it may do: it continues under a
    new id (a copy of the cookie taken before must not gain the raised rights), with the
    factor recorded and ``auth_time`` now; its absolute end does not move."""
    start_session(sso.user, methods_with_totp(sso), sso.remember, utcnow(), keep_times=True)


@bp.route("/login/verify", methods=["GET", "POST"])
def sign_in() -> ResponseReturnValue:
    """两步验证 during sign-in: the first factor is proven, the session waits for the code."""
    state = pending_two_step()
    user = parked_user(state) if state else None
    if state is None or user is None:
        flows.discard_flow(TWO_STEP_FLOW)
        flash(_("登录已过期，请重新登录。"), "error")
        return redirect(url_for("auth.login"))
    if not parked_sign_in_holds(state, user):
        # The first factor or the authenticator changed meanwhile (a help-desk temporary
        # password, a lost phone unbound, 两步验证 reset): what was proven no longer counts,
        # and a reset authenticator must not let the first factor alone finish the sign-in.
        flows.discard_flow(TWO_STEP_FLOW)
        flash(_("登录方式或安全设置已变更，本次登录已失效，请重新登录。"), "error")
        return redirect(url_for("auth.login"))
    mode = RECOVERY if request.args.get("mode") == RECOVERY else "code"
    form = VerifyForm()
    status = 200
    if form.validate_on_submit():
        failed = _check_second_factor(user, form, mode)
        if failed is None:
            response = _finish_sign_in(user, mode, bool(form.trust.data))  # commits
            if mode == RECOVERY:
                # The fallback for a lost phone, spent: by anyone but the owner, it means the
                # first factor and a code from the sheet are in someone else's hands.
                notify_security_change(user, "recovery_code.use")
            return response
        status = failed
    elif request.method == "POST":
        status = 400
    form.code.data = form.recovery_code.data = ""
    return _page(
        "mfa/verify.html",
        status,
        form=form,
        mode=mode,
        signing_in=True,
        trust_days=trust_days(),
        action=url_for("mfa.sign_in", mode=mode if mode == RECOVERY else None),
    )


def _finish_sign_in(user: User, mode: str, trust: bool) -> Response:
    state = flows.finish_flow(TWO_STEP_FLOW)
    if state is None:
        # Another tab finished (or abandoned) this sign-in first.
        db.session.commit()
        flash(_("登录已过期，请重新登录。"), "error")
        return redirect(url_for("auth.login"))
    record("mfa.verify", actor=user, method="recovery_code" if mode == RECOVERY else TOTP)
    token = trust_device(user, request.user_agent.string, client_ip()) if trust else None
    methods = [*state["methods"], TOTP]
    response = continue_sign_in(user, methods, state["remember"], state["next"])
    if token is not None:
        set_trust_cookie(response, token)
    return no_store(response)


# 二次验证（已登录） ---------------------------------------------------------------------------


@bp.route("/mfa/verify", methods=["GET", "POST"])
@user_needed
def step_up(user: User) -> ResponseReturnValue:
    """Ask a signed-in user for a code before a sensitive page (e.g. the console)."""
    target = _local_or(request.values.get("next"), url_for("portal.home"))
    sso = current_session()
    if not totp_enabled(user) or sso is None:
        flash(_("此操作需要两步验证，请先开启两步验证。"), "warning")
        return redirect(url_for("mfa.enable", next=target))
    mode = RECOVERY if request.args.get("mode") == RECOVERY else "code"
    form = VerifyForm()
    if request.method == "GET":
        form.next.data = target
    status = 200
    if form.validate_on_submit():
        failed = _check_second_factor(user, form, mode)
        if failed is None:
            _step_up(sso)
            record(
                "mfa.verify",
                actor=user,
                method="recovery_code" if mode == RECOVERY else TOTP,
                detail={"step_up": True},
            )
            db.session.commit()
            if mode == RECOVERY:
                notify_security_change(user, "recovery_code.use")
            return redirect(target)
        status = failed
    elif request.method == "POST":
        status = 400
    form.code.data = form.recovery_code.data = ""
    return _page(
        "mfa/verify.html",
        status,
        form=form,
        mode=mode,
        signing_in=False,
        target=target,
        action=url_for("mfa.step_up", mode=mode if mode == RECOVERY else None, next=target),
    )


# 安全中心 -------------------------------------------------------------------------------------


@bp.route("/security/totp", methods=["GET", "POST"])
@user_needed
def enable(user: User) -> ResponseReturnValue:
    """开启两步验证: the login password first; then scan the QR code (or type the key) and
    confirm with a first code. The step is kept server-side for this sign-in only."""
    target = request.values.get("next")
    target = target if is_local_path(target) else None
    if totp_enabled(user):
        flows.discard_flow(ENROL_FLOW)
        flash(_("两步验证已开启。"), "success")
        return redirect(target or url_for("security.index"))
    state = flow_state(ENROL_FLOW, user)
    if state is None:
        # A form posted after its password step expired, or from another sign-in.
        flash(str(EXPIRED), "error")
        return redirect(url_for("mfa.enable", next=target))
    if state["step"] == "key":
        return _enable_with_code(user, target)
    form = EnablePasswordForm()
    status = 200
    if form.validate_on_submit():
        try:
            confirm_login_password(user, form.password.data or "")
        except MfaError as exc:
            form.password.errors = [exc.message]
            status = exc.status
        else:
            record_reverified(user, "password", "totp")
            flows.save_flow(ENROL_FLOW, {**state, "step": "key"}, ENROLMENT_SECONDS)
            db.session.commit()
            return redirect(url_for("mfa.enable", next=target))
        db.session.commit()  # wrong passwords count and are audited
    elif request.method == "POST":
        status = 400
    form.password.data = ""
    return _page("mfa/enable_password.html", status, form=form, target=target)


def _enable_with_code(user: User, target: str | None) -> ResponseReturnValue:
    """The key as a QR code and as text, and the first code that turns 两步验证 on."""
    form = EnableForm()
    status = 200
    if form.validate_on_submit():
        try:
            codes = confirm_enrolment(user, form.code.data or "")
        except MfaError as exc:
            db.session.commit()
            form.code.errors = [exc.message]
            status = exc.status
        else:
            flows.discard_flow(ENROL_FLOW)
            sso = current_session()
            if sso is not None:
                _step_up(sso)  # the first code was just verified in this session
            db.session.commit()
            notify_security_change(user, "mfa.enable")
            return _page("mfa/recovery_codes.html", codes=codes, fresh=True, target=target)
    elif request.method == "POST":
        status = 400
    secret = enrolment_secret(user)
    db.session.commit()
    form.code.data = ""
    return _page(
        "mfa/enable.html",
        status,
        form=form,
        secret=format_secret(secret),
        qr_code=qr_code_data_uri(provisioning_uri(user, secret)),
        target=target,
    )


@bp.route("/security/totp/disable", methods=["GET", "POST"])
@user_needed
def disable(user: User) -> ResponseReturnValue:
    """关闭两步验证: the login password and a current code (or an unused recovery code)."""
    if not totp_enabled(user):
        return redirect(url_for("security.index"))
    form = DisableForm()
    status = 200
    if form.validate_on_submit():
        try:
            disable_totp(user, form.password.data or "", form.code.data or "")
        except MfaError as exc:
            db.session.commit()
            getattr(form, exc.field).errors = [exc.message]
            status = exc.status
        else:
            db.session.commit()
            notify_security_change(user, "mfa.disable")
            flash(_("两步验证已关闭，恢复码和受信任设备已全部失效。"), "success")
            response = redirect(url_for("security.index"))
            response.delete_cookie(
                trust_cookie_name(), path="/", secure=current_app.config["SESSION_COOKIE_SECURE"]
            )
            return response
    elif request.method == "POST":
        status = 400
    form.password.data = form.code.data = ""
    return _page("mfa/disable.html", status, form=form)


@bp.route("/security/totp/recovery-codes", methods=["GET", "POST"])
@user_needed
def recovery_codes(user: User) -> ResponseReturnValue:
    """恢复码: how many are left, and new ones after a current code (or an unused one)."""
    if not totp_enabled(user):
        return redirect(url_for("security.index"))
    form = RegenerateForm()
    status = 200
    if form.validate_on_submit():
        try:
            codes = regenerate_recovery_codes(user, form.code.data or "")
        except MfaError as exc:
            db.session.commit()
            form.code.errors = [exc.message]
            status = exc.status
        else:
            db.session.commit()
            notify_security_change(user, "recovery_codes.regenerate")
            return _page("mfa/recovery_codes.html", codes=codes, fresh=False, target=None)
    elif request.method == "POST":
        status = 400
    form.code.data = ""
    return _page("mfa/regenerate.html", status, form=form, left=recovery_codes_left(user))


@bp.post("/security/totp/devices/forget")
@user_needed
def forget_devices(user: User) -> ResponseReturnValue:
    """取消信任: one trusted device (``device_id``), or all of them."""
    form = ForgetDeviceForm()
    if not form.validate_on_submit():
        flash(_("页面已过期，请刷新后重试。"), "error")
        return redirect(url_for("security.index")), 303
    raw = (form.device_id.data or "").strip()
    if not raw:
        count = forget_all_devices(user)
        db.session.commit()
        flash(
            _("已取消信任 %(count)d 台设备，下次登录需要输入动态验证码。", count=count), "success"
        )
    elif (device_id := row_id(raw)) is not None and forget_device(user, device_id):
        db.session.commit()
        flash(_("已取消信任该设备，下次在该设备登录需要输入动态验证码。"), "success")
    else:
        flash(_("该设备不存在或已取消信任。"), "error")
    return redirect(url_for("security.index")), 303


@bp.app_context_processor
def security_card() -> dict[str, Any]:
    """``mfa_card(user)`` for the security centre's 两步验证 card."""

    def mfa_card(user: User) -> dict[str, Any]:
        enabled = totp_enabled(user)
        return {
            "enabled": enabled,
            "codes_left": recovery_codes_left(user) if enabled else 0,
            "devices": [
                {
                    "id": device.id,
                    "device": describe_device(device.user_agent),
                    "trusted_at": campus_time(device.created_at),
                    "expires": campus_time(device.expires_at),
                }
                for device in (trusted_devices(user) if enabled else [])
            ],
        }

    return {"mfa_card": mfa_card}
