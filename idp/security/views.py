"""安全中心 (/security): account overview, sign-in history, devices, and changing the security
phone or email. Each change first asks 身份验证 again and keeps its steps server-side
(:mod:`idp.account.flows`), so a second tab or a replayed form cannot skip one; once made, it
signs the other devices out and tells the old phone and email (:mod:`idp.security.notices`)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import (
    Blueprint,
    abort,
    flash,
    redirect,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from werkzeug.wrappers import Response

from idp.account import flows
from idp.account.codes import (
    EMAIL,
    SMS,
    Channel,
    ip_needs_captcha,
)
from idp.account.operations import (
    AccountError,
    bind_security_email,
    bind_security_phone,
    phone_taken_by_other,
)
from idp.audit.operations import FAILURE, record
from idp.auth.sessions import current_session, current_user, sessions_of
from idp.directory.identifiers import mask_email, mask_phone, normalise_email, normalise_phone
from idp.directory.models import User, UserKind
from idp.extensions import db
from idp.security.forms import (
    EndOtherSessionsForm,
    EndSessionForm,
    NewEmailForm,
    NewPhoneForm,
)
from idp.security.notices import contacts_on_file, notify_security_change
from idp.security.operations import (
    PASSWORD,
    campus_time,
    describe_device,
    own_session,
    password_may_reverify,
    sign_in_history,
    sign_out_other_devices,
    sign_out_session,
)
from idp.security.steps import (
    code_refused,
    expired,
    finish_flow,
    flow_state,
    render_page,
    reverify,
    send,
)

bp = Blueprint("security", __name__, template_folder="templates")

EMAIL_FLOW = "security_email"
PHONE_FLOW = "security_phone"
#: After a phone or email change, as after a password change: whoever made it stays signed in
#: only here.
OTHERS_SIGNED_OUT = _l("为保障账号安全，其他设备上的登录已退出。")
#: A form sent after the sign-in ran out: nothing it asked for was done.
SIGNED_OUT_MID_FORM = _l("登录已超时，本次填写的内容没有保存。请重新登录后再操作。")

KIND_LABELS = {
    UserKind.STUDENT: _l("学生"),
    UserKind.STAFF: _l("教职工"),
    UserKind.VISITOR: _l("访客"),
}


View = Callable[..., ResponseReturnValue]


def user_needed(view: View) -> View:
    """Hand the signed-in user to ``view``; everyone else goes to /login and comes back.

    A form sent once the sign-in has run out (idle too long, signed out elsewhere) did nothing:
    the sign-in page says so, and signing in leads back to the page the form was on.
    """

    @functools.wraps(view)
    def wrapper(**kwargs: Any) -> ResponseReturnValue:
        user = current_user()
        if user is None:
            if request.method != "GET":
                flash(str(SIGNED_OUT_MID_FORM), "error")
            return redirect(url_for("auth.login", next=_way_back()))
        return view(user, **kwargs)

    return wrapper


def _way_back() -> str:
    """Where signing in leads back to: this page, or the overview for a button with no page."""
    rule = request.url_rule
    if rule is not None and rule.methods is not None and "GET" in rule.methods:
        return request.full_path.rstrip("?")
    return url_for("security.index")


# 概览 -------------------------------------------------------------------------------------


@bp.get("/security")
@user_needed
def index(user: User) -> ResponseReturnValue:
    """The security centre overview: account, bindings, devices and the last sign-ins."""
    this = current_session()
    devices = [
        {
            "id": sso.id,
            "device": describe_device(sso.user_agent),
            "ip": sso.ip or "—",
            "signed_in": campus_time(sso.created_at),
            "last_seen": campus_time(sso.last_seen_at),
            "current": this is not None and sso.id == this.id,
        }
        for sso in sessions_of(user)
    ]
    history = sign_in_history(user)
    return render_page(
        "security/index.html",
        user=user,
        kind=KIND_LABELS.get(user.kind, user.kind),
        phone=mask_phone(user.phone) if user.has_security_phone and user.phone else None,
        email=mask_email(user.email) if user.has_security_email and user.email else None,
        devices=devices,
        history=history,
    )


@bp.post("/security/sessions/end-others")
@user_needed
def end_other_sessions(user: User) -> ResponseReturnValue:
    """退出其他设备: every session but this one ends."""
    if not EndOtherSessionsForm().validate_on_submit():
        abort(400)
    ended = sign_out_other_devices(user, keep=current_session())
    db.session.commit()
    flash(
        ngettext(
            "已退出其他 %(num)d 台设备上的登录。", "已退出其他 %(num)d 台设备上的登录。", ended
        ),
        "success",
    )
    return redirect(url_for("security.index"))


@bp.post("/security/sessions/end")
@user_needed
def end_one_session(user: User) -> ResponseReturnValue:
    """退出 one of the user's own devices; ending this one signs out here."""
    form = EndSessionForm()
    if not form.validate_on_submit():
        abort(400)
    sso = own_session(user, form.session_id.data or "")
    if sso is None:
        abort(404)  # gone already, or someone else's: the same answer
    this = current_session()
    current = this is not None and this.id == sso.id
    sign_out_session(user, sso, current=current)
    db.session.commit()
    if current:
        flash(_("您已退出本设备的登录。"), "success")
        return redirect(url_for("auth.login"))
    flash(_("已退出该设备上的登录。"), "success")
    return redirect(url_for("security.index"))


# 绑定/更换安全邮箱 ------------------------------------------------------------------------


@bp.route("/security/email", methods=["GET", "POST"])
@user_needed
def email(user: User) -> ResponseReturnValue:
    """绑定或更换安全邮箱: 身份验证, then a code mailed to the new address.

    Binding a first email may be proven by the password (FAQ 5); replacing one takes a code
    to the security phone or to the email itself.
    """
    state = flow_state(EMAIL_FLOW, user)
    if state is None:
        return expired("security.email")
    allow_password = password_may_reverify(user, for_change="email")
    if state["step"] == "verify":
        outcome = reverify(user, state, EMAIL_FLOW, "email", allow_password=allow_password)
        if isinstance(outcome, Response):
            return outcome
        form, status = outcome
        return render_page(
            "security/email.html",
            status,
            form=form,
            step=1,
            user=user,
            allow_password=allow_password,
            need_captcha=ip_needs_captcha(),
        )
    if state.get("verified_by") == PASSWORD and not allow_password:
        # An email was bound (in another tab) since this flow's password check: replacing it
        # needs a code now.
        flows.discard_flow(EMAIL_FLOW)
        return expired("security.email")
    return _new_email(user)


def _new_email(user: User) -> ResponseReturnValue:
    form = NewEmailForm()
    status = 200
    if form.validate_on_submit():
        address = normalise_email(form.email.data or "")
        if address is None:
            form.email.errors = [_("请输入正确的邮箱地址")]
            status = 400
        elif user.has_security_email and address == user.email:
            form.email.errors = [_("该邮箱已是您的安全邮箱。")]
            status = 400
        elif form.send.data:
            status = send(form, "bind_email", Channel(EMAIL, address), user)
        else:
            refused = code_refused(form, "bind_email", Channel(EMAIL, address), user)
            if refused is None:
                if finish_flow(EMAIL_FLOW, user, "new") is None:
                    return expired("security.email")
                before = contacts_on_file(user)
                bind_security_email(user, address)
                return _changed(
                    user,
                    "email",
                    Channel(EMAIL, address),
                    before,
                    _("安全邮箱已绑定为 %(email)s。", email=mask_email(address)),
                )
            status = refused
    elif request.method == "POST":
        status = 400
    form.code.data = ""
    return render_page(
        "security/email.html", status, form=form, step=2, user=user, need_captcha=ip_needs_captcha()
    )


# 更换安全手机 -----------------------------------------------------------------------------


@bp.route("/security/phone", methods=["GET", "POST"])
@user_needed
def phone(user: User) -> ResponseReturnValue:
    """更换安全手机: a code to the old phone (or, when it is lost, the security email), then a
    code to the new phone (manual FAQ 5)."""
    state = flow_state(PHONE_FLOW, user)
    if state is None:
        return expired("security.phone")
    if state["step"] == "verify":
        allow_password = password_may_reverify(user, for_change="phone")
        outcome = reverify(user, state, PHONE_FLOW, "phone", allow_password=allow_password)
        if isinstance(outcome, Response):
            return outcome
        form, status = outcome
        return render_page(
            "security/phone.html",
            status,
            form=form,
            step=1,
            user=user,
            need_captcha=ip_needs_captcha(),
        )
    return _new_phone(user)


def _new_phone(user: User) -> ResponseReturnValue:
    form = NewPhoneForm()
    status = 200
    if form.validate_on_submit():
        number = normalise_phone(form.phone.data or "")
        if number is None:
            form.phone.errors = [_("请输入正确的 11 位手机号")]
            status = 400
        elif user.has_security_phone and number == user.phone:
            form.phone.errors = [_("该手机号已是您的安全手机。")]
            status = 400
        elif form.send.data:
            status = send(form, "bind_phone", Channel(SMS, number), user)
        else:
            outcome = _bind_new_phone(form, user, number)
            if isinstance(outcome, Response):
                return outcome
            status = outcome
    elif request.method == "POST":
        status = 400
    form.code.data = ""
    return render_page(
        "security/phone.html", status, form=form, step=2, user=user, need_captcha=ip_needs_captcha()
    )


def _bind_new_phone(form: NewPhoneForm, user: User, number: str) -> Response | int:
    """Check the new phone's code and bind it: a redirect when done, else the HTTP status."""
    refused = code_refused(form, "bind_phone", Channel(SMS, number), user)
    if refused is not None:
        return refused
    # Before taking the flow, so that the user can try another number without starting over.
    if phone_taken_by_other(user, number):
        form.phone.errors = [_("该手机号已是其他账号的安全手机，请更换手机号或联系管理员。")]
        record("phone.bind", FAILURE, actor=user, detail={"reason": "taken"})
        db.session.commit()
        return 400
    if finish_flow(PHONE_FLOW, user, "new") is None:
        return expired("security.phone")
    before = contacts_on_file(user)
    try:
        bind_security_phone(user, number)
    except AccountError as exc:  # bound to another account a moment ago
        db.session.rollback()
        form.phone.errors = [str(exc)]
        return 400
    return _changed(
        user,
        "phone",
        Channel(SMS, number),
        before,
        _("安全手机已更换为 %(phone)s。", phone=mask_phone(number)),
    )


def _changed(
    user: User, change: str, new_target: Channel, before: tuple[Channel, ...], done: str
) -> Response:
    """After a bind (not yet committed): sign the other devices out, commit, then tell the
    phone and email that were on file (``before``) what changed."""
    sign_out_other_devices(user, keep=current_session(), after=f"{change}.bind")
    db.session.commit()
    notify_security_change(user, change, new_target, before)
    flash(f"{done} {OTHERS_SIGNED_OUT}", "success")
    return redirect(url_for("security.index"))
