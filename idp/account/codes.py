"""Verification codes by SMS and mail: 6 digits, short-lived, single use, tightly rationed.

Limits (all configurable): one code per target per ``CODE_RESEND_INTERVAL``, ``CODE_DAILY_LIMIT``
per target per day in each ration (:data:`RATIONS`), ``CODE_IP_HOURLY_LIMIT`` per client address
per hour (with a CAPTCHA asked for past ``CODE_IP_CAPTCHA_AFTER``; both scaled up for a shared
network, :func:`idp.auth.throttle.address_scale`), ``CODE_MAX_ATTEMPTS`` wrong tries before a
code is void. Codes are stored as keyed digests, never in clear.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from dataclasses import dataclass
from functools import partial
from typing import Any

from flask import Flask, current_app
from flask_babel import gettext as _

from idp.audit.operations import FAILURE, client_ip, record
from idp.auth import captcha
from idp.auth.throttle import address_scale
from idp.directory.identifiers import mask_email, mask_phone, typed_code
from idp.directory.models import User
from idp.policy_settings import effective_config
from shared.factory import get_store
from shared.messaging import (
    MailError,
    MailMessage,
    MailSender,
    SmsError,
    SmsMessage,
    SmsSender,
    build_sms_sender,
    verification_code_subject,
    verification_code_text,
)
from shared.web import current_locale

log = logging.getLogger(__name__)

SMS = "sms"
EMAIL = "email"
DAY = 86400
HOUR = 3600

#: Each purpose draws on one daily ration per phone or address. SMS sign-in codes can be asked
#: for by anyone who knows the number; codes to a number or address being bound, by anyone
#: with an account (or half-way through activating one) typing it in; codes to the contact on
#: file, only once that account is proven. Separate rations, so that strangers using up the
#: first two cannot keep the owner from recovering the account.
RATIONS = {
    "login": "login",
    "activation": "bind",
    "bind_phone": "bind",
    "bind_email": "bind",
    "recovery": "account",
    "verify": "account",
}


class CodeError(Exception):
    """A code could not be sent or did not verify; the message is for the user."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Channel:
    """Where a code goes: ``sms`` to a phone or ``email`` to an address."""

    kind: str
    target: str

    @property
    def masked(self) -> str:
        return mask_phone(self.target) if self.kind == SMS else mask_email(self.target)

    def key(self, purpose: str) -> str:
        digest = hashlib.sha256(f"{self.kind}:{self.target}".encode()).hexdigest()[:32]
        return f"{purpose}:{digest}"


def verified_channels(user: User) -> dict[str, Channel]:
    """The account's verified security phone and email, by kind: the only places a code or a
    notice about the account goes (recovery, 身份验证, change notices)."""
    channels: dict[str, Channel] = {}
    if user.has_security_phone and user.phone:
        channels[SMS] = Channel(SMS, user.phone)
    if user.has_security_email and user.email:
        channels[EMAIL] = Channel(EMAIL, user.email)
    return channels


#: Where the app keeps its :class:`BackgroundDelivery` of codes, and the one of security
#: notices: apart, so that notices stuck on a slow mail server never hold up a sign-in code.
DELIVERY = "idp_code_delivery"
NOTICE_DELIVERY = "idp_notice_delivery"
DELIVERIES = (DELIVERY, NOTICE_DELIVERY)


class BackgroundDelivery:
    """Sends codes and notices off the request thread, for pages whose answer must not depend
    on the send, nor wait for a slow gateway.

    SMS sign-in answers the same whether or not the number is on file, and sends only when it
    is: waiting for the gateway would make the two answers differ in time (and a gateway
    outage would show in one only). A failed send is logged and lifts the resend wait, so the
    user can ask again at once.
    """

    def __init__(self, app: Flask, workers: int = 4, name: str = "idp-codes") -> None:
        self._app = app
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._pending: set[Future[None]] = set()
        self._lock = threading.Lock()

    def submit(
        self, send: Callable[[], None], what: str, undo: Callable[[], None] | None = None
    ) -> None:
        """Run ``send`` soon; on failure log ``what`` and run ``undo`` (in an app context)."""
        future = self._executor.submit(self._run, send, what, undo)
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._done)

    def _run(self, send: Callable[[], None], what: str, undo: Callable[[], None] | None) -> None:
        try:
            send()
        except (SmsError, MailError) as exc:
            log.warning("sending %s failed: %s", what, exc)
            if undo is not None:
                try:
                    with self._app.app_context():
                        undo()
                except Exception:
                    log.exception("could not take back %s that was never sent", what)
        except Exception:
            log.exception("sending %s failed", what)

    def _done(self, future: Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every send submitted so far has finished; False on timeout."""
        with self._lock:
            pending = set(self._pending)
        return not wait_for(pending, timeout).not_done


def setup_senders(app: Flask) -> None:
    """Build the SMS and mail senders once, at start: a misconfiguration fails there."""
    app.extensions[DELIVERY] = BackgroundDelivery(app)
    app.extensions[NOTICE_DELIVERY] = BackgroundDelivery(app, workers=2, name="idp-notices")
    config = app.config
    app.extensions["idp_sms"] = build_sms_sender(config["SMS_PROVIDER"], config)
    production = config["ENV"] == "production"
    app.extensions["idp_mail"] = MailSender(
        server=config["MAIL_SERVER"],
        port=config["MAIL_PORT"],
        security=config["MAIL_SECURITY"],
        username=config["MAIL_USERNAME"],
        password=config["MAIL_PASSWORD"],
        sender=config["MAIL_SENDER"],
        outbox_dir=None if production else config["OUTBOX_DIR"],
        ca_file=config["MAIL_CA_FILE"],
    )


def _digest(code: str) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, code.encode(), hashlib.sha256).hexdigest()


def code_minutes() -> int:
    """How many minutes a code stays valid (for messages)."""
    return max(1, int(effective_config()["CODE_TTL"]) // 60)


def stored_code_key(purpose: str, channel: Channel, user_id: int | None) -> str:
    """Where the code for ``purpose`` to ``channel`` is kept, with its resend wait.

    A number or address being bound is anyone's to type: there each account asking has its
    own code and wait, so that one account can neither void another's code nor learn from a
    wait that someone else is binding that number.
    """
    key = channel.key(purpose)
    return f"{key}:{user_id}" if RATIONS[purpose] == "bind" else key


def _ip_key() -> str:
    ip = client_ip() or "-"
    return f"code-ip:{hashlib.sha256(ip.encode()).hexdigest()[:32]}"


def _ip_limits(config: Mapping[str, Any]) -> tuple[int, int]:
    """This address's hourly (CAPTCHA threshold, hard cap), scaled up for a shared network."""
    scale = address_scale(client_ip())
    return config["CODE_IP_CAPTCHA_AFTER"] * scale, config["CODE_IP_HOURLY_LIMIT"] * scale


def ip_needs_captcha() -> bool:
    """True when this address has asked for many codes lately (SMS pumping defence)."""
    captcha_after, _ = _ip_limits(effective_config())
    return get_store().count(_ip_key()) >= captcha_after


def _refused(purpose: str, channel: Channel, user: User | None, reason: str) -> None:
    record(
        "code.send",
        FAILURE,
        target=user,
        subject=channel.masked,
        method=channel.kind,
        detail={"purpose": purpose, "reason": reason},
    )


def send_code(
    purpose: str,
    channel: Channel,
    user: User | None,
    *,
    deliver: bool = True,
    background: bool = False,
) -> None:
    """Issue a code for ``purpose`` to ``channel`` and send it.

    ``deliver=False`` goes through every limit and answers exactly as a real send would, but
    sends nothing: for targets not on file, so that the response reveals nothing. Pages that
    do so pass ``background=True`` too, so that a real send does not keep the answer waiting
    on the gateway either (:class:`BackgroundDelivery`).
    """
    config = effective_config()
    store = get_store()
    ip_key = _ip_key()
    captcha_after, hourly_limit = _ip_limits(config)
    if store.count(ip_key) >= hourly_limit:
        _refused(purpose, channel, user, "ip-limit")
        raise CodeError(_("获取验证码过于频繁，请一小时后再试。"), 429)
    key = stored_code_key(purpose, channel, user.id if user else None)
    if not store.add(f"code-wait:{key}", "1", config["CODE_RESEND_INTERVAL"]):
        wait = int(store.ttl(f"code-wait:{key}") or 1) + 1
        raise CodeError(_("验证码已发送，请 %(seconds)d 秒后再重新获取。", seconds=wait), 429)
    digest = hashlib.sha256(channel.target.encode()).hexdigest()[:32]
    target_key = f"code-day:{RATIONS[purpose]}:{channel.kind}:{digest}"
    if store.hit(target_key, DAY) > config["CODE_DAILY_LIMIT"]:
        # Nothing is sent, so nothing to wait for: asking again repeats this answer rather
        # than claim that a code was sent.
        store.delete(f"code-wait:{key}")
        _refused(purpose, channel, user, "daily-limit")
        raise CodeError(_("今日获取验证码次数已达上限，请明天再试。"), 429)
    # Counted and checked in one step: requests racing past the check above still cannot get
    # more codes, or more without a CAPTCHA, than the address is allowed.
    sent_from_ip = store.hit(ip_key, HOUR)
    if sent_from_ip > hourly_limit:
        _not_issued(key, target_key)
        _refused(purpose, channel, user, "ip-limit")
        raise CodeError(_("获取验证码过于频繁，请一小时后再试。"), 429)
    if sent_from_ip > captcha_after and not captcha.solved_in_this_request():
        _not_issued(key, target_key)
        _refused(purpose, channel, user, "captcha")
        raise CodeError(_("请输入图形验证码后再获取验证码"))
    code = f"{secrets.randbelow(10**6):06d}"
    ttl = config["CODE_TTL"]
    store.set(
        f"code:{key}",
        json.dumps({"digest": _digest(code), "user_id": user.id if user else None}),
        ttl,
    )
    store.delete(f"code-tries:{key}")
    if deliver:
        undo = partial(_never_sent, key, target_key, ip_key)
        try:
            _deliver(purpose, channel, code, ttl, undo, background=background)
        except CodeError:
            _refused(purpose, channel, user, "send-failed")
            raise
    record(
        "code.send",
        target=user,
        subject=channel.masked,
        method=channel.kind,
        detail={"purpose": purpose} if deliver else {"purpose": purpose, "delivered": False},
    )


def _not_issued(key: str, target_key: str) -> None:
    """A code refused by the address's limits after the target's were counted: the resend wait
    is lifted and the day's count given back, so that the person who answers the CAPTCHA gets
    the code at once, and none of the day's is spent on a code never sent."""
    store = get_store()
    store.delete(f"code-wait:{key}")
    store.unhit(target_key)


def _never_sent(key: str, target_key: str, ip_key: str) -> None:
    """A code the gateway did not take: it is void, its resend wait lifted, and the day's and
    the address's counts given back, so that an outage never uses up anyone's codes."""
    _not_issued(key, target_key)
    store = get_store()
    store.delete(f"code:{key}")
    store.unhit(ip_key)


def _deliver(
    purpose: str,
    channel: Channel,
    code: str,
    ttl: int,
    undo: Callable[[], None],
    *,
    background: bool,
) -> None:
    locale = current_locale()
    minutes = max(1, ttl // 60)
    site = current_app.config["SITE_NAME"]
    text = verification_code_text(code, purpose, minutes, locale, site)
    send: Callable[[], None]
    if channel.kind == SMS:
        sender: SmsSender = current_app.extensions["idp_sms"]
        sms = SmsMessage(
            to=channel.target, text=text, code=code, template_params=(code, str(minutes))
        )
        send = partial(sender.send, sms)
    else:
        mail: MailSender = current_app.extensions["idp_mail"]
        message = MailMessage(
            to=channel.target,
            subject=verification_code_subject(purpose, locale, site),
            text=text,
            code=code,
        )
        send = partial(mail.send, message)
    what = f"a {purpose} code by {channel.kind}"
    if background:
        delivery: BackgroundDelivery = current_app.extensions[DELIVERY]
        delivery.submit(send, what, undo)
        return
    try:
        send()
    except (SmsError, MailError) as exc:
        log.warning("sending %s failed: %s", what, exc)
        undo()
        raise CodeError(_("验证码发送失败，请稍后再试。"), 502) from None


def verify_code(
    purpose: str, channel: Channel, code: str | None, user_id: int | None = None
) -> int | None:
    """Check a code; on success it is used up and the user id it was issued for is returned.

    ``user_id``: the account binding ``channel``, for the purposes whose codes are kept per
    account (:func:`stored_code_key`). Raises :class:`CodeError` for a wrong, expired or exhausted
    code.
    """
    config = effective_config()
    store = get_store()
    key = stored_code_key(purpose, channel, user_id)
    raw = store.get(f"code:{key}")
    if raw is None:
        raise CodeError(_("验证码错误或已过期，请重新获取。"))
    entry = json.loads(raw)
    tries = store.hit(f"code-tries:{key}", config["CODE_TTL"])
    if tries > config["CODE_MAX_ATTEMPTS"]:
        store.delete(f"code:{key}")
        raise CodeError(_("验证码错误次数过多，已失效，请重新获取。"))
    given = typed_code(code)
    if not (given.isdigit() and hmac.compare_digest(_digest(given), entry["digest"])):
        if tries >= config["CODE_MAX_ATTEMPTS"]:
            store.delete(f"code:{key}")
            raise CodeError(_("验证码错误次数过多，已失效，请重新获取。"))
        raise CodeError(_("验证码错误或已过期，请重新获取。"))
    if store.take(f"code:{key}") is None:  # another request used it a moment ago
        raise CodeError(_("验证码错误或已过期，请重新获取。"))
    store.delete(f"code-tries:{key}")
    user_id: int | None = entry["user_id"]
    return user_id
