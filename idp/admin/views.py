"""The help-desk console: dashboard, account search, the account page and its actions.

Every action is a GET confirmation page (reason, checkbox, a single-use nonce) and a POST that
does it; a temporary password is shown once, on the POST's answer, and never cached.
"""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    abort,
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

from idp.account.activation_notices import MAIL, SMS, channels
from idp.account.reset_links import LINK_TTL
from idp.admin.access import can_act_on, console_required, forbidden_page
from idp.admin.forms import ConfirmActionForm, RoleActionForm
from idp.admin.notices import activation_note, activation_refusal, last_activation_notice
from idp.admin.operations import (
    ACTIONS,
    ROLE_LABELS,
    SEARCH_LIMIT,
    WECHAT,
    WECOM,
    Action,
    ConsoleError,
    check_allowed,
    failed_attempts,
    is_locked,
    issue_nonce,
    masked_id_number,
    perform,
    refuse,
    reset_link_refusal,
    roles_of,
    search_accounts,
    social_identities,
    take_nonce,
)
from idp.audit.models import AuditEvent
from idp.audit.operations import FAILURE
from idp.auth.sessions import sessions_of
from idp.directory.identifiers import mask_email, mask_phone
from idp.directory.models import User, UserKind, UserStatus
from idp.directory.roles import Role, has_role
from idp.extensions import db
from idp.mfa.operations import totp_enabled
from idp.security.notices import contacts_on_file, notify_security_change
from idp.security.operations import (
    OUTCOME_LABELS,
    campus_time,
    describe_device,
    sign_in_history,
)

bp = Blueprint(
    "admin",
    __name__,
    url_prefix="/admin",
    template_folder="templates",
    static_folder="static",
)

KIND_LABELS = {
    UserKind.STUDENT: _l("学生"),
    UserKind.STAFF: _l("教职工"),
    UserKind.VISITOR: _l("访客"),
}
STATUS_LABELS = {
    UserStatus.PENDING: _l("未激活"),
    UserStatus.ACTIVE: _l("正常"),
    UserStatus.LOCKED: _l("已锁定"),
    UserStatus.DISABLED: _l("已停用"),
}
#: Role changes have their own admin-only address; the generic one refuses them.
ROLE_ACTIONS = (Action.GRANT_ROLE, Action.REVOKE_ROLE)
REPLAYED = _l("此确认页面已使用或已过期，操作没有执行。请回到账号页面重新操作。")


@bp.after_request
def never_cache(response: Response) -> Response:
    """Console pages show personal data and one-time forms: never from a cache."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def _target(user_id: int) -> User:
    target = db.session.get(User, user_id)
    if target is None:
        abort(404)
    return target


def summary(user: User) -> dict[str, Any]:
    """What a search result row shows: enough to tell people apart, all of it masked."""
    return {
        "id": user.id,
        "account": user.account,
        "name": user.name,
        "kind": KIND_LABELS.get(user.kind, user.kind),
        "department": user.department.name if user.department else "—",
        "status": STATUS_LABELS.get(user.status, user.status),
        "phone": mask_phone(user.phone) if user.phone else "—",
        "email": mask_email(user.email) if user.email else "—",
        "id_number": masked_id_number(user) or "—",
    }


# 首页与查找 ---------------------------------------------------------------------------------


@bp.get("")
@console_required()
def dashboard(user: User) -> ResponseReturnValue:
    """The console's front page: the search box and what this console user may do."""
    return render_template(
        "admin/dashboard.html",
        user=user,
        roles=[ROLE_LABELS[role] for role in sorted(roles_of(user))],
    )


@bp.get("/users")
@console_required()
def search(user: User) -> ResponseReturnValue:
    """查找账号 by account number, name, phone, ID number or email."""
    query = request.args.get("q")
    if query is None:
        return render_template("admin/search.html", query="", results=None)
    try:
        found = search_accounts(query, actor=user)
    except ConsoleError as exc:
        db.session.commit()
        page = render_template("admin/search.html", query=query, results=None, error=exc.message)
        return page, exc.status
    db.session.commit()
    return render_template(
        "admin/search.html",
        query=query.strip(),
        results=[summary(u) for u in found.users],
        truncated=found.truncated,
        limit=SEARCH_LIMIT,
    )


# 账号页 -------------------------------------------------------------------------------------


@bp.get("/users/<int:user_id>")
@console_required()
def account(user: User, user_id: int) -> ResponseReturnValue:
    """One account: status, bindings, lock, roles, sessions, sign-ins, and the actions."""
    target = _target(user_id)
    socials = social_identities(target)
    allowed = can_act_on(user, target)
    link_refusal = reset_link_refusal(target)
    notice_refusal = activation_refusal(target)
    actions = [
        (action, info)
        for action, info in ACTIONS.items()
        if action not in ROLE_ACTIONS
        and has_role(user, info.role)
        and not (action is Action.RESET_LINK and link_refusal is not None)
        and not (action is Action.RESEND_ACTIVATION and notice_refusal is not None)
    ]
    history = sign_in_history(target)
    console_events = list(
        db.session.scalars(
            db.select(AuditEvent)
            .where(AuditEvent.target_id == target.id, AuditEvent.action.like("console.%"))
            .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
            .limit(20)
        )
    )
    actors = {
        u.id: u
        for u in db.session.scalars(
            db.select(User).where(User.id.in_({e.actor_id for e in console_events if e.actor_id}))
        )
    }
    return render_template(
        "admin/account.html",
        user=user,
        target=target,
        facts=summary(target),
        phone_verified=target.has_security_phone,
        email_verified=target.has_security_email,
        wechat=socials.get(WECHAT),
        wecom=socials.get(WECOM),
        totp=totp_enabled(target),
        locked=is_locked(target),
        failures=failed_attempts(target),
        roles=[ROLE_LABELS[role] for role in sorted(roles_of(target))],
        target_roles=roles_of(target),
        is_admin=has_role(user, Role.ADMIN),
        allowed=allowed,
        actions=actions,
        reset_link_refusal=link_refusal,
        # Only a pending account needs to be told why it gets no activation notice.
        activation_refusal=notice_refusal if target.status == UserStatus.PENDING else None,
        activation_note=activation_note(target),
        sessions=[
            {
                "device": describe_device(sso.user_agent),
                "ip": sso.ip or "—",
                "signed_in": campus_time(sso.created_at),
                "last_seen": campus_time(sso.last_seen_at),
            }
            for sso in sessions_of(target)
        ],
        history=history,
        console_events=[
            {
                "at": campus_time(event.at),
                "action": event.action,
                "outcome": OUTCOME_LABELS.get(event.outcome, event.outcome),
                "actor": actors[event.actor_id].account if event.actor_id in actors else "—",
                "detail": event.detail or "",
            }
            for event in console_events
        ],
        changed_password=campus_time(target.password_changed_at),
    )


# 操作 ---------------------------------------------------------------------------------------


@bp.route("/users/<int:user_id>/actions/<action>", methods=["GET", "POST"])
@console_required()
def act(user: User, user_id: int, action: str) -> ResponseReturnValue:
    """Confirm (GET) and take (POST) one help-desk action on an account."""
    chosen = _action(action)
    if chosen in ROLE_ACTIONS:
        abort(404)
    return _confirm(user, _target(user_id), chosen, ConfirmActionForm)


@bp.route("/users/<int:user_id>/roles/<action>", methods=["GET", "POST"])
@console_required(Role.ADMIN)
def role_action(user: User, user_id: int, action: str) -> ResponseReturnValue:
    """授予 / 撤销 a console role (admins only)."""
    chosen = _action(action)
    if chosen not in ROLE_ACTIONS:
        abort(404)
    return _confirm(user, _target(user_id), chosen, RoleActionForm)


def _action(value: str) -> Action:
    try:
        return Action(value)
    except ValueError:
        abort(404)


#: The help desk's actions that change how the owner signs in, and the notice each sends.
OWNER_TOLD = {
    Action.RESET_TOTP: "mfa.reset",
    Action.TEMP_PASSWORD: "password.helpdesk",
    Action.UNBIND_PHONE: "phone.unbind",
    Action.UNBIND_EMAIL: "email.unbind",
    Action.UNBIND_WECHAT: "wechat.unbind",
    Action.UNBIND_WECOM: "wecom.unbind",
}


def action_url(target: User, action: Action) -> str:
    """The confirmation page of ``action`` on ``target``."""
    if action in ROLE_ACTIONS:
        return url_for("admin.role_action", user_id=target.id, action=action.value)
    return url_for("admin.act", user_id=target.id, action=action.value)


def _refused(exc: ConsoleError) -> ResponseReturnValue:
    db.session.commit()  # keep the audit record of the refusal
    if exc.status == 403:
        return forbidden_page(_l("没有权限"), exc.message)
    return render_template("admin/refused.html", message=exc.message), exc.status


def _confirm(user: User, target: User, action: Action, form_class: type) -> ResponseReturnValue:
    info = ACTIONS[action]
    try:
        check_allowed(user, target, action)
    except ConsoleError as exc:
        return _refused(exc)
    form = form_class()
    page = {
        "target": target,
        "facts": summary(target),
        "action": action,
        "info": info,
        "form": form,
        "post_url": action_url(target, action),
    }
    if request.method == "GET":
        refusal = _refusal(target, action)
        if refusal is not None:
            return render_template("admin/refused.html", message=refusal), 409
        form.nonce.data = issue_nonce(user, target, action)
        db.session.commit()
        if action is Action.RESEND_ACTIVATION:
            page["destinations"] = _destinations(target)
            page["note"] = activation_note(target)
        return render_template("admin/confirm.html", **page)
    if not form.validate_on_submit():
        refuse(user, target, action, "form", FAILURE)
        db.session.commit()
        return render_template("admin/confirm.html", **page), 400
    if not take_nonce(form.nonce.data, user, target, action):
        refuse(user, target, action, "replayed", FAILURE)
        db.session.commit()
        return render_template("admin/refused.html", message=REPLAYED), 409
    role = Role(form.role.data) if isinstance(form, RoleActionForm) else None
    contacts = contacts_on_file(target)  # before an unbinding: the unbound one is told too
    try:
        password = perform(user, target, action, form.reason.data or "", role)
    except ConsoleError as exc:
        db.session.rollback()
        refuse(user, target, action, str(exc.message), FAILURE)
        return _refused(exc)
    db.session.commit()
    if action in OWNER_TOLD:
        # Told to the owner's phone and email on file before it: a help desk talked into
        # removing an authenticator by someone else must not leave the owner unaware.
        notify_security_change(target, OWNER_TOLD[action], before=contacts)
    if password is not None:
        return render_template("admin/temp_password.html", target=target, password=password)
    if action is Action.RESET_LINK:
        flash(
            _(
                "重置链接已发送至安全手机 %(phone)s，%(hours)d 小时内有效，只能使用一次。",
                phone=mask_phone(target.phone or ""),
                hours=LINK_TTL // 3600,
            ),
            "success",
        )
    elif action is Action.RESEND_ACTIVATION:
        _flash_notice(last_activation_notice(user, target))
    else:
        flash(_("已完成：%(action)s", action=info.label), "success")
    return redirect(url_for("admin.account", user_id=target.id))


def _refusal(target: User, action: Action) -> Any | None:
    """Why ``action`` is not offered for ``target`` (only the actions that send messages)."""
    if action is Action.RESET_LINK:
        return reset_link_refusal(target)
    if action is Action.RESEND_ACTIVATION:
        return activation_refusal(target)
    return None


def _destinations(target: User) -> list[str]:
    """Where an activation notice to ``target`` would go, masked, for the confirmation page."""
    chosen = channels(target, current_app.config)
    found = []
    if SMS in chosen and target.phone:
        found.append(_("手机 %(phone)s（短信）", phone=mask_phone(target.phone)))
    if MAIL in chosen and target.email:
        found.append(_("邮箱 %(email)s", email=mask_email(target.email)))
    return found


def _flash_notice(sent: dict[str, Any]) -> None:
    """Tell the console user where the activation notice went, and what failed."""
    where = [
        _("手机 %(phone)s（短信）", phone=sent["phone"]) if sent.get("phone") else None,
        _("邮箱 %(email)s", email=sent["email"]) if sent.get("email") else None,
    ]
    flash(
        _("激活通知已发送至%(where)s。", where=_("、").join(w for w in where if w)),
        "success",
    )
    if "sms" in sent.get("failed", []):
        flash(_("短信发送失败，只通过邮件发出。"), "error")
    if "mail" in sent.get("failed", []):
        flash(_("邮件发送失败，只通过短信发出。"), "error")


@bp.app_template_global("console_action_url")
def console_action_url(target: User, action: Action) -> str:
    """Templates link each action to its confirmation page."""
    return action_url(target, action)
