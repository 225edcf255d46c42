"""Security-centre rules: proving it is you again before a change, ending your own sessions,
and describing them. No ``request`` here; callers commit.

Binding itself (and its rules, such as one verified phone per account) lives in
:mod:`idp.account.operations`; this module only decides who may get that far.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from idp.account.codes import EMAIL, Channel, verified_channels
from idp.audit.operations import SUCCESS, recent_sign_ins, record
from idp.auth.models import SsoSession
from idp.auth.sessions import end_all_sessions, end_session, sessions_of
from idp.directory.models import User
from idp.extensions import db
from idp.mfa.devices import forget_other_devices
from idp.mfa.signin import trust_token

#: The 身份验证 method that checks the login password (beside ``sms`` and ``email`` codes).
PASSWORD = "password"  # noqa: S105 - a method name, not a secret

#: The campus clock: China Standard Time has no daylight saving, so a fixed offset is exact.
CAMPUS_TIME = timezone(timedelta(hours=8), "CST")

#: How 登录记录 names the way in; ``totp`` is the 两步验证 code that finished a sign-in.
SIGN_IN_METHODS = {
    "password": _l("账号密码"),
    "sms": _l("短信验证码"),
    "wechat": _l("微信扫码"),
    "wecom": _l("企业微信扫码"),
    "totp": _l("两步验证"),
}
#: Audit outcomes as the owner and the help desk read them.
OUTCOME_LABELS = {
    "success": _l("成功"),
    "failure": _l("失败"),
    "denied": _l("已拒绝"),
    "pending": _l("待两步验证"),
}


def reverify_channels(user: User, *, for_change: str) -> dict[str, Channel]:
    """Where a ``verify`` code may go before changing ``for_change`` (``phone``, ``email`` or
    another setting such as ``unbind_wechat``).

    Changing the phone or the email: the security phone, or the security email (for the phone,
    when it is lost: FAQ 5). Anything else: the security phone.
    """
    channels = verified_channels(user)
    if for_change not in ("phone", "email"):
        channels.pop(EMAIL, None)
    return channels


def password_may_reverify(user: User, *, for_change: str) -> bool:
    """Whether the login password alone proves it is you before changing ``for_change``.

    Only to bind a first security email (FAQ 5: bind one, then change a lost phone through
    it). The phone, or an email already bound, are how a lost password is recovered, so
    replacing either takes a code sent to one of them: a stolen password or session must not
    be enough to take both away.
    """
    return for_change == "email" and not user.has_security_email


def record_reverified(user: User, method: str, purpose: str) -> None:
    """Audit a successful 身份验证 (``method``: password, sms or email) before ``purpose``."""
    record("security.verify", actor=user, method=method, detail={"for": purpose})


def own_session(user: User, session_id: str) -> SsoSession | None:
    """The user's session with this id, or None (someone else's sessions are not found)."""
    sso = db.session.get(SsoSession, session_id)
    return sso if sso is not None and sso.user_id == user.id else None


def sign_out_session(user: User, sso: SsoSession, *, current: bool) -> None:
    """退出 one of the user's own devices (``current``: the one asking)."""
    record("session.end", actor=user, detail={"current": current})
    end_session(sso)


def sign_out_other_devices(user: User, keep: SsoSession | None, *, after: str | None = None) -> int:
    """退出其他设备: end every session of ``user`` but ``keep``; returns how many devices were
    signed out — those the device list shows (a session already over by idleness is not listed,
    nor counted, though its row goes too).

    ``after`` names the change that asks for it (``phone.bind``, ``email.bind``) when it is not
    the user's own click: as after a password change, whoever made it stays signed in only here.
    """
    ended = sum(1 for sso in sessions_of(user) if keep is None or sso.id != keep.id)
    end_all_sessions(user, keep=keep)
    # Signed out there, asked for the code there again: a trusted device would let whoever
    # holds that browser back in with the password alone.
    forget_other_devices(user, trust_token())
    detail: dict[str, object] = {"ended": ended}
    if after is not None:
        detail["after"] = after
    record("session.end_others", actor=user, detail=detail)
    return ended


def campus_time(moment: datetime | None) -> str:
    """``2024-05-01 16:30`` in China Standard Time; stored times are UTC (naive on SQLite)."""
    if moment is None:
        return "—"
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(CAMPUS_TIME).strftime("%Y-%m-%d %H:%M")


# Order matters: Edge and Opera also say "Chrome", Chrome also says "Safari".
_BROWSERS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"MicroMessenger"), "WeChat"),
    (re.compile(r"DingTalk"), "DingTalk"),
    (re.compile(r"Edg(?:e|A|iOS)?/"), "Edge"),
    (re.compile(r"OPR/|Opera"), "Opera"),
    (re.compile(r"Firefox/|FxiOS/"), "Firefox"),
    (re.compile(r"Chrome/|CriOS/|Chromium/"), "Chrome"),
    (re.compile(r"Version/[\d.]+.*Safari/"), "Safari"),
)
_SYSTEMS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"HarmonyOS|OpenHarmony"), "HarmonyOS"),
    (re.compile(r"Windows"), "Windows"),
    (re.compile(r"iPhone|iPad|iPod"), "iOS"),
    (re.compile(r"Android"), "Android"),
    (re.compile(r"CrOS"), "ChromeOS"),
    (re.compile(r"Macintosh|Mac OS X"), "macOS"),
    (re.compile(r"Linux"), "Linux"),
)


def describe_device(user_agent: str | None) -> str:
    """A short readable summary of a browser's user agent, e.g. ``Chrome · Windows``."""
    text = user_agent or ""
    browser = next((name for pattern, name in _BROWSERS if pattern.search(text)), None)
    system = next((name for pattern, name in _SYSTEMS if pattern.search(text)), None)
    if browser is None and system is None:
        return str(_("未知设备"))
    if browser == "WeChat":
        browser = _("微信")
    elif browser == "DingTalk":
        browser = _("钉钉")
    browser_name = browser or _("其他浏览器")
    system_name = system or _("未知系统")
    return f"{browser_name} · {system_name}"


def sign_in_history(user: User) -> list[dict[str, Any]]:
    """登录记录 as 安全中心 and the help desk's account page show it, newest first."""
    return [
        {
            "at": campus_time(event.at),
            "ip": event.ip or "—",
            "method": SIGN_IN_METHODS.get(event.method or "", event.method or "—"),
            "outcome": OUTCOME_LABELS.get(event.outcome, event.outcome),
            "ok": event.outcome == SUCCESS,
        }
        for event in recent_sign_ins(user)
    ]
