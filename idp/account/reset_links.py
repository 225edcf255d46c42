"""Help-desk password reset links: issued in the console, sent to the security phone, used once.

A link is ``<IDP_ISSUER>/recover/link/<token>``; the token comes from ``secrets`` and only its
SHA-256 digest is kept in the shared store, for :data:`LINK_TTL` seconds. A link dies when it is
used, when a newer link is sent, when the password changes another way, when the security phone
changes, or when the account stops being active. No ``request`` here; callers commit.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import current_app, url_for

from idp.account.operations import reset_password
from idp.directory.identifiers import mask_phone
from idp.directory.models import User, UserStatus
from idp.extensions import db
from shared.factory import get_store
from shared.messaging import (
    SmsError,
    SmsMessage,
    SmsSender,
    reset_link_text,
    template_available,
)
from shared.web import current_locale

log = logging.getLogger(__name__)

#: How long a sent link stays usable (24 hours; not a setting: long enough to read the SMS the
#: next morning, short enough that an old phone in a drawer is no risk).
LINK_TTL = 24 * 3600
#: The address of the link page, under the issuer.
LINK_PATH = "/recover/link/"
#: One link per account per minute: a double-clicked or repeated console action sends one SMS.
RESEND_INTERVAL = 60
#: Requests to the link page per client address per hour (tokens cannot be guessed; this keeps
#: anyone from trying).
IP_HOURLY_LIMIT = 30
#: The audit method of a password set through a help-desk link.
METHOD = "helpdesk-link"
#: ``secrets.token_urlsafe(32)``: 43 characters of the URL-safe alphabet.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")


class ResetLinkError(Exception):
    """A link could not be sent; ``reason`` is a short code for the audit log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class SentLink:
    """What the console learns about a link it sent (never the token itself)."""

    masked_phone: str
    expires_in: int


def link_available(config: Mapping[str, Any]) -> bool:
    """Whether links can be sent: always through the outbox, with a vendor only once the
    reset-link template (``IDP_SMS_RESET_LINK_TEMPLATE_ID``) is configured."""
    return template_available(config, "SMS_RESET_LINK_TEMPLATE_ID")


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _token_key(token: str) -> str:
    return "reset-link:" + _digest(token)


def _user_key(user: User) -> str:
    return f"reset-link-user:{user.id}"


def _stamp(user: User) -> str:
    """What must not change between sending and using a link: the password and the phone."""
    changed = user.password_changed_at.isoformat() if user.password_changed_at else "-"
    return _digest(f"{changed}|{user.phone or '-'}")


def link_url(token: str) -> str:
    """The absolute address of a link: under ``IDP_ISSUER``, else this request's host."""
    base = str(current_app.config.get("ISSUER") or "").rstrip("/")
    if not base:
        return url_for("account.reset_link", token=token, _external=True)
    return f"{base}{LINK_PATH}{token}"


def send_reset_link(user: User, *, actor: User) -> SentLink:
    """Issue a link for ``user`` and send it to the verified security phone.

    Raises :class:`ResetLinkError` (``unavailable``, ``no-phone``, ``too-soon``, ``sms-failed``)
    with nothing issued. A newer link replaces any earlier one. Store work only: the caller
    changes rows (and audits) afterwards.
    """
    if not link_available(current_app.config):
        raise ResetLinkError("unavailable")
    if not (user.has_security_phone and user.phone):
        raise ResetLinkError("no-phone")
    store = get_store()
    if not store.add(f"reset-link-wait:{user.id}", "1", RESEND_INTERVAL):
        raise ResetLinkError("too-soon")
    token = secrets.token_urlsafe(32)
    key = _token_key(token)
    payload = {"user_id": user.id, "stamp": _stamp(user), "actor_id": actor.id}
    store.set(key, json.dumps(payload), LINK_TTL)
    url = link_url(token)
    hours = LINK_TTL // 3600
    text = reset_link_text(url, hours, current_locale(), current_app.config["SITE_NAME"])
    template = str(current_app.config.get("SMS_RESET_LINK_TEMPLATE_ID") or "").strip() or None
    sender: SmsSender = current_app.extensions["idp_sms"]
    try:
        # The token is the vendor template's one parameter (the link's domain is written in
        # the approved template) and the outbox record's ``code``.
        sender.send(
            SmsMessage(
                to=user.phone, text=text, code=token, template_params=(token,), template_id=template
            )
        )
    except SmsError as exc:
        log.warning("sending a password reset link failed: %s", exc)
        store.delete(key, f"reset-link-wait:{user.id}")
        raise ResetLinkError("sms-failed") from None
    earlier = store.get(_user_key(user))
    if earlier and earlier != key:
        store.delete(earlier)
    store.set(_user_key(user), key, LINK_TTL)
    return SentLink(masked_phone=mask_phone(user.phone), expires_in=LINK_TTL)


def find_link_user(token: str) -> User | None:
    """The account a live link belongs to, without using the link up; None when it is not one."""
    if not _TOKEN.fullmatch(token or ""):
        return None
    raw = get_store().get(_token_key(token))
    if raw is None:
        return None
    payload = json.loads(raw)
    user = db.session.get(User, payload.get("user_id"))
    if user is None or user.status != UserStatus.ACTIVE or not user.has_security_phone:
        return None
    if not hmac.compare_digest(str(payload.get("stamp", "")), _stamp(user)):
        return None
    return user


def use_reset_link(token: str, user: User, password: str) -> bool:
    """Set ``password`` (already checked against the policy) through the link, once.

    The link is taken atomically: of two submissions exactly one sets the password; False for
    the other, or when the link died meanwhile. Ends every session and lifts the must-change
    flag (:func:`idp.account.operations.reset_password`).
    """
    store = get_store()
    raw = store.take(_token_key(token))
    if raw is None:
        return False
    payload = json.loads(raw)
    if payload.get("user_id") != user.id or not hmac.compare_digest(
        str(payload.get("stamp", "")), _stamp(user)
    ):
        return False
    store.delete(_user_key(user))
    reset_password(user, password, METHOD)
    return True


def note_link_request(ip: str | None) -> bool:
    """Count one request to the link page from ``ip``; False once past the hourly limit."""
    count = get_store().hit(f"reset-link-ip:{_digest(ip or '-')[:32]}", 3600)
    return count <= IP_HOURLY_LIMIT
