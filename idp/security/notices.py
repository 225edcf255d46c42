"""Security-change notices: when the security phone or email changes, or — as NIST SP 800-63B
asks — an authenticator is bound to or removed from the account, the phone and email on file
before the change are told what changed and when, and to call the help desk if it was not them,
so that a change made with a stolen password or session does not go unnoticed.

What sends one (:data:`shared.messaging.SECURITY_CHANGES`): a new security phone or email
(安全中心); a new login password (安全中心 修改密码 and the forced change of a temporary one at
``/password/change``, 找回密码, the help desk's reset link); 两步验证 turned on, off, reset by the
help desk, or new recovery codes; a recovery code spent at sign-in or step-up. Setting the first
password in 激活账号 or 信息完善 sends none: the person has just proved themselves (ID number and
a code to the phone being bound), and there is no earlier password whose loss to warn about.

A notice is sent after the change is committed, in the background, and never undoes it: a
failure is logged and audited. By SMS it goes through the outbox always, through a vendor only
once its approved template (``IDP_SMS_SECURITY_NOTICE_TEMPLATE_ID``) is configured — a vendor
sends nothing but approved templates, whose one parameter is the short name of what changed —
and otherwise by mail only. The notice's audit event is committed in the background, once the
sends are done.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from flask import Flask, current_app

from idp.account.codes import (
    NOTICE_DELIVERY,
    SMS,
    BackgroundDelivery,
    Channel,
    verified_channels,
)
from idp.audit.operations import FAILURE, SUCCESS, record, request_origin
from idp.directory.models import User, utcnow
from idp.extensions import db
from idp.security.operations import campus_time
from shared.messaging import (
    MailError,
    MailMessage,
    MailSender,
    SmsError,
    SmsMessage,
    SmsSender,
    changed_item,
    security_change_subject,
    security_change_text,
    template_available,
)
from shared.web import current_locale

log = logging.getLogger(__name__)

#: The setting naming the vendor's approved template for the SMS notice.
TEMPLATE_SETTING = "SMS_SECURITY_NOTICE_TEMPLATE_ID"


def contacts_on_file(user: User) -> tuple[Channel, ...]:
    """The verified security phone and email as they are now: where a notice of a change goes.

    Taken before the change, so that the notice reaches the old ones.
    """
    return tuple(verified_channels(user).values())


def sms_available(config: Mapping[str, Any]) -> bool:
    """Whether the notice can go by SMS: the outbox always, a vendor once its template is set."""
    return template_available(config, TEMPLATE_SETTING)


def notify_security_change(
    user: User,
    change: str,
    new_target: Channel | None = None,
    before: tuple[Channel, ...] | None = None,
) -> None:
    """Tell the phone and email on file that the security ``change`` happened: one of
    :data:`~shared.messaging.SECURITY_CHANGES`; for ``phone`` or ``email`` it is now
    ``new_target``, which is not told.

    ``before`` is where the notice goes: the contacts taken before a change of the phone or
    email; a change that leaves them alone (a password, 两步验证) may leave it out, and the
    contacts on file now are told. Call it once the change is committed.

    The messages are written here, in the user's language, and sent in the background: the
    change is done, and a slow gateway must not hold the page that says so. The outcome is
    audited there as ``security.notice``, with this request's address. Never raises.
    """
    try:
        contacts = contacts_on_file(user) if before is None else before
        _submit(user, change, new_target, contacts)
    except Exception:
        # The change is committed and stands; a notice that could not even be written must not
        # turn the page that says so into an error.
        log.exception("preparing the %s change notice failed", change)


def _submit(
    user: User, change: str, new_target: Channel | None, before: tuple[Channel, ...]
) -> None:
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    config = app.config
    locale, site = current_locale(), config["SITE_NAME"]
    text = security_change_text(
        change,
        new_target.masked if new_target is not None else None,
        campus_time(utcnow()),
        config["HELP_PHONE"],
        locale,
        site,
    )
    sends: list[tuple[Channel, Callable[[], None] | None]] = []
    for channel in before:
        if channel == new_target:
            continue
        if channel.kind == SMS and not sms_available(config):
            sends.append((channel, None))
        elif channel.kind == SMS:
            sms_sender: SmsSender = app.extensions["idp_sms"]
            template = str(config.get(TEMPLATE_SETTING) or "").strip() or None
            # A vendor's approved template carries the wording; its one parameter says what
            # changed, in the template's language. The outbox records ``text``.
            message = SmsMessage(
                to=channel.target,
                text=text,
                code=None,
                template_params=(changed_item(change, "zh_CN"),),
                template_id=template,
            )
            sends.append((channel, partial(sms_sender.send, message)))
        else:
            mail_sender: MailSender = app.extensions["idp_mail"]
            subject = security_change_subject(change, locale, site)
            mail = MailMessage(to=channel.target, subject=subject, text=text)
            sends.append((channel, partial(mail_sender.send, mail)))
    delivery: BackgroundDelivery = app.extensions[NOTICE_DELIVERY]
    send_all = partial(_send_and_audit, app, user.id, change, sends, request_origin())
    delivery.submit(send_all, f"the {change} change notice")


def _send_and_audit(
    app: Flask,
    user_id: int,
    change: str,
    sends: list[tuple[Channel, Callable[[], None] | None]],
    origin: dict[str, str | None],
) -> None:
    """Send each notice (``None``: no way to send it), then audit what went where."""
    sent: list[str] = []
    failed: list[str] = []
    unsent: list[str] = []
    for channel, send in sends:
        if send is None:
            unsent.append(channel.masked)
            continue
        try:
            send()
        except (SmsError, MailError) as exc:
            log.warning("sending the %s change notice by %s failed: %s", change, channel.kind, exc)
            failed.append(channel.masked)
        except Exception:
            # One channel's bug or odd vendor answer must not keep the others from their notice.
            log.exception("sending the %s change notice by %s failed", change, channel.kind)
            failed.append(channel.masked)
        else:
            sent.append(channel.masked)
    with app.app_context():
        record(
            "security.notice",
            FAILURE if failed else SUCCESS,
            actor=db.session.get(User, user_id),
            detail={"change": change, "sent": sent, "failed": failed, "not_sent": unsent},
            origin=origin,
        )
        db.session.commit()
