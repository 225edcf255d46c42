"""Help-desk activation notices: telling the owner of a pending account how to activate it.

Activation is self-service (``/activate``: name, account number and ID number, then a security
phone by SMS code, then a password), so there is no secret to resend. A notice carries only
the activation address (``<IDP_ISSUER>/activate``), the account number and a reminder to have
the ID number ready; it goes to the phone and/or email HR put on file (unverified for pending
accounts). No ``request`` here; callers commit.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import current_app, url_for

from idp.directory.identifiers import mask_email, mask_phone
from idp.directory.models import User, UserStatus
from shared.factory import get_store
from shared.messaging import (
    MailError,
    MailMessage,
    MailSender,
    SmsError,
    SmsMessage,
    SmsSender,
    activation_notice_subject,
    activation_notice_text,
    template_available,
)
from shared.web import current_locale

log = logging.getLogger(__name__)

#: One notice per account per ten minutes (kept in the shared store, so every worker agrees):
#: a repeated console action must not flood a phone that may not even be the owner's any more.
RESEND_INTERVAL = 600
#: The address of the activation wizard, under the issuer.
ACTIVATE_PATH = "/activate"
SMS = "sms"
MAIL = "mail"


class ActivationNoticeError(Exception):
    """A notice could not be sent; ``reason`` is a short code for the audit log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class SentNotice:
    """What the console learns about a notice it sent: masked destinations and failures."""

    phone: str | None = None
    email: str | None = None
    failed: tuple[str, ...] = field(default_factory=tuple)


def sms_available(config: Mapping[str, Any]) -> bool:
    """Whether notices can go by SMS: the outbox always, a vendor once
    ``IDP_SMS_ACTIVATION_TEMPLATE_ID`` is configured."""
    return template_available(config, "SMS_ACTIVATION_TEMPLATE_ID")


def channels(user: User, config: Mapping[str, Any]) -> tuple[str, ...]:
    """The channels a notice to ``user`` would use: SMS to the HR phone, mail to the HR email."""
    found: list[str] = []
    if user.phone and sms_available(config):
        found.append(SMS)
    if user.email:
        found.append(MAIL)
    return tuple(found)


def activation_url() -> str:
    """The absolute address of 激活账号: under ``IDP_ISSUER``, else this request's host."""
    base = str(current_app.config.get("ISSUER") or "").rstrip("/")
    if not base:
        return url_for("account.activate", _external=True)
    return f"{base}{ACTIVATE_PATH}"


def _wait_key(user: User) -> str:
    return f"activation-notice-wait:{user.id}"


def send_activation_notice(user: User) -> SentNotice:
    """Send ``user`` (a pending account) the activation notice on every channel it has.

    Raises :class:`ActivationNoticeError` (``not-pending``, ``no-contact``, ``too-soon``,
    ``send-failed``) with nothing sent. When one channel fails and another delivers, the notice
    counts as sent and ``failed`` names the failed channel. Store work only.
    """
    if user.status != UserStatus.PENDING:
        raise ActivationNoticeError("not-pending")
    config = current_app.config
    chosen = channels(user, config)
    if not chosen:
        raise ActivationNoticeError("no-contact")
    store = get_store()
    if not store.add(_wait_key(user), "1", RESEND_INTERVAL):
        raise ActivationNoticeError("too-soon")
    locale, site = current_locale(), config["SITE_NAME"]
    text = activation_notice_text(activation_url(), user.account, locale, site)
    sent: dict[str, str] = {}
    failed: list[str] = []
    if SMS in chosen and user.phone:
        template = str(config.get("SMS_ACTIVATION_TEMPLATE_ID") or "").strip() or None
        sender: SmsSender = current_app.extensions["idp_sms"]
        try:
            # No code: the account number is the vendor template's one parameter (the address
            # is written in the approved template); the outbox records the text in full.
            sender.send(
                SmsMessage(
                    to=user.phone,
                    text=text,
                    code=None,
                    template_params=(user.account,),
                    template_id=template,
                )
            )
            sent[SMS] = mask_phone(user.phone)
        except SmsError as exc:
            log.warning("sending an activation notice by SMS failed: %s", exc)
            failed.append(SMS)
    if MAIL in chosen and user.email:
        mail: MailSender = current_app.extensions["idp_mail"]
        subject = activation_notice_subject(locale, site)
        try:
            mail.send(MailMessage(to=user.email, subject=subject, text=text))
            sent[MAIL] = mask_email(user.email)
        except MailError as exc:
            log.warning("sending an activation notice by mail failed: %s", exc)
            failed.append(MAIL)
    if not sent:
        store.delete(_wait_key(user))  # nothing went out: the desk may try again at once
        raise ActivationNoticeError("send-failed")
    return SentNotice(phone=sent.get(SMS), email=sent.get(MAIL), failed=tuple(failed))
