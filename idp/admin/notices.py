"""The console actions that send the account's owner a message: 发送重置链接, 发送激活通知.

Each says up front why it is not offered (:func:`reset_link_refusal`,
:func:`activation_refusal`), and turns its sender's failure reasons into a message for the
console user. Handlers have the signature of :data:`idp.admin.operations.Handler`; they are
registered in :mod:`idp.admin.operations`, whose names they use (imported when called:
that module imports this one). No ``request`` here.
"""

from __future__ import annotations

import json
from typing import Any

from flask import current_app
from flask_babel import lazy_gettext as _l

from idp.account.activation_notices import (
    ActivationNoticeError,
    channels,
    send_activation_notice,
    sms_available,
)
from idp.account.reset_links import ResetLinkError, link_available, send_reset_link
from idp.audit.models import AuditEvent
from idp.audit.operations import SUCCESS
from idp.directory.models import User, UserStatus
from idp.directory.roles import Role
from idp.extensions import db

# 发送重置链接 -------------------------------------------------------------------------------

#: Why a reset link cannot be sent, by :class:`ResetLinkError` reason.
RESET_LINK_REFUSALS: dict[str, tuple[Any, int]] = {
    "unavailable": (
        _l("短信服务商尚未配置重置链接模板（IDP_SMS_RESET_LINK_TEMPLATE_ID），请改用临时密码。"),
        409,
    ),
    "no-phone": (_l("该账号没有已验证的安全手机，无法发送重置链接，请改用临时密码。"), 409),
    "too-soon": (_l("刚刚已向该账号发送过重置链接，请一分钟后再试。"), 429),
    "sms-failed": (_l("短信发送失败，重置链接没有发出，请稍后再试或改用临时密码。"), 502),
}


def reset_link_refusal(target: User) -> Any | None:
    """Why 发送重置链接 is not offered for ``target`` (no vendor template, no verified phone)."""
    if not link_available(current_app.config):
        return RESET_LINK_REFUSALS["unavailable"][0]
    if not target.has_security_phone:
        return RESET_LINK_REFUSALS["no-phone"][0]
    return None


def reset_link(actor: User, target: User, reason: str, role: Role | None) -> str | None:
    """Send a one-time reset link to the verified security phone and force a password change."""
    from idp.admin.operations import NOT_ACTIVATED, Action, ConsoleError, _audit
    from idp.admin.operations import _sign_out_for_reset as sign_out

    if target.status == UserStatus.PENDING:
        raise ConsoleError(NOT_ACTIVATED, 409)
    if target.status != UserStatus.ACTIVE:
        raise ConsoleError(_l("该账号已被停用或锁定，请先启用账号。"), 409)
    try:
        sent = send_reset_link(target, actor=actor)
    except ResetLinkError as exc:
        message, status = RESET_LINK_REFUSALS[exc.reason]
        raise ConsoleError(message, status) from None
    # The old password keeps signing in, but only as far as 修改密码.
    ended = sign_out(target, unlock=False)
    target.must_change_password = True
    _audit(
        actor,
        target,
        Action.RESET_LINK,
        reason,
        phone=sent.masked_phone,
        expires_in=sent.expires_in,
        sessions_ended=ended,
    )
    return None


# 发送激活通知 -------------------------------------------------------------------------------

#: Why an activation notice cannot be sent, by :class:`ActivationNoticeError` reason.
ACTIVATION_REFUSALS: dict[str, tuple[Any, int]] = {
    "not-pending": (_l("该账号已激活，无需发送激活通知。"), 409),
    "no-contact": (
        _l("人事登记信息中没有该账号的手机号或邮箱，无法发送激活通知；请当面告知激活方法。"),
        409,
    ),
    "too-soon": (_l("10 分钟内已向该账号发送过激活通知，请稍后再试。"), 429),
    "send-failed": (_l("短信和邮件均发送失败，激活通知没有发出，请稍后再试。"), 502),
}
#: Said next to the action when the account has an HR phone the vendor cannot text.
SMS_UNAVAILABLE = _l(
    "短信服务商尚未配置激活通知模板（IDP_SMS_ACTIVATION_TEMPLATE_ID），不能通过短信发送激活通知。"
)


def activation_refusal(target: User) -> Any | None:
    """Why 发送激活通知 is not offered for ``target`` (not pending, nowhere to send it)."""
    if target.status != UserStatus.PENDING:
        return ACTIVATION_REFUSALS["not-pending"][0]
    if channels(target, current_app.config):
        return None
    if target.phone and not sms_available(current_app.config):
        return SMS_UNAVAILABLE
    return ACTIVATION_REFUSALS["no-contact"][0]


def activation_note(target: User) -> Any | None:
    """A remark for an offered notice that will skip the HR phone (no vendor template)."""
    offered = target.status == UserStatus.PENDING and target.phone and target.email
    if offered and not sms_available(current_app.config):
        return SMS_UNAVAILABLE
    return None


def resend_activation(actor: User, target: User, reason: str, role: Role | None) -> str | None:
    """Send the owner of a pending account how to activate it, by SMS and/or mail."""
    from idp.admin.operations import Action, ConsoleError, _audit

    try:
        sent = send_activation_notice(target)
    except ActivationNoticeError as exc:
        message, status = ACTIVATION_REFUSALS[exc.reason]
        raise ConsoleError(message, status) from None
    detail: dict[str, Any] = {"phone": sent.phone, "email": sent.email}
    if sent.failed:
        detail["failed"] = list(sent.failed)
    _audit(actor, target, Action.RESEND_ACTIVATION, reason, **detail)
    return None


def last_activation_notice(actor: User, target: User) -> dict[str, Any]:
    """Where the newest notice ``actor`` sent to ``target`` went (its audit event's detail)."""
    event = db.session.scalars(
        db.select(AuditEvent)
        .where(
            AuditEvent.action == "console.resend-activation",
            AuditEvent.outcome == SUCCESS,
            AuditEvent.actor_id == actor.id,
            AuditEvent.target_id == target.id,
        )
        .order_by(AuditEvent.id.desc())
        .limit(1)
    ).first()
    return json.loads(event.detail) if event is not None and event.detail else {}
