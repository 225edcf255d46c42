"""Wording of the verification codes and notices we send, in Chinese (the default) and English.

The same text goes into an SMS, a mail body and the development outbox, so people see one
wording whichever channel carries the code. Vendors' SMS templates carry their own approved
wording; the text here is what the outbox records and what mail sends.
"""

from __future__ import annotations

from typing import NamedTuple

PURPOSES = ("login", "activation", "recovery", "bind_phone", "bind_email", "verify")

DEFAULT_LOCALE = "zh_CN"
LOCALES = ("zh_CN", "en")

# What the code is for, as it reads inside "您的{action}验证码为 …".
_ZH_ACTIONS = {
    "login": "登录",
    "activation": "激活账号",
    "recovery": "找回密码",
    "bind_phone": "绑定安全手机",
    "bind_email": "绑定安全邮箱",
    "verify": "身份验证",
}

# English needs a different word order per purpose, so each is a whole opening clause.
_EN_OPENINGS = {
    "login": "Your sign-in verification code is",
    "activation": "Your account activation verification code is",
    "recovery": "Your password recovery verification code is",
    "bind_phone": "Your verification code for binding a security phone is",
    "bind_email": "Your verification code for binding a security email is",
    "verify": "Your identity verification code is",
}

_EN_SUBJECTS = {
    "login": "Sign-in verification code",
    "activation": "Account activation verification code",
    "recovery": "Password recovery verification code",
    "bind_phone": "Verification code for binding a security phone",
    "bind_email": "Verification code for binding a security email",
    "verify": "Identity verification code",
}


def normalize_locale(locale: str | None) -> str:
    """Map a requested locale onto one we have words for: ``"en"`` or ``"zh_CN"``.

    Any English variant (``en_US``, ``en-GB``) is English; everything else is Chinese, the
    language every user of the university can read.
    """
    value = (locale or "").strip().replace("-", "_").lower()
    if value == "en" or value.startswith("en_"):
        return "en"
    return DEFAULT_LOCALE


def _check_purpose(purpose: str) -> None:
    # An unknown purpose is a programming error: better loud than a vague message to a user.
    if purpose not in PURPOSES:
        raise ValueError(f"unknown purpose {purpose!r}; expected one of {', '.join(PURPOSES)}")


def verification_code_text(
    code: str, purpose: str, minutes: int, locale: str, site_name: str
) -> str:
    """The full message carrying ``code``, valid for ``minutes``, signed with ``site_name``."""
    _check_purpose(purpose)
    if normalize_locale(locale) == "en":
        unit = "minute" if minutes == 1 else "minutes"
        return (
            f"[{site_name}] {_EN_OPENINGS[purpose]} {code}. It is valid for {minutes} {unit}. "
            "Never share it; if you did not ask for it, ignore this message."
        )
    return (
        f"【{site_name}】您的{_ZH_ACTIONS[purpose]}验证码为 {code}，{minutes} 分钟内有效。"
        "请勿泄露给他人；如非本人操作，请忽略本消息。"
    )


def verification_code_subject(purpose: str, locale: str, site_name: str) -> str:
    """A mail subject for a verification code; it never contains the code itself."""
    _check_purpose(purpose)
    if normalize_locale(locale) == "en":
        return f"[{site_name}] {_EN_SUBJECTS[purpose]}"
    return f"【{site_name}】{_ZH_ACTIONS[purpose]}验证码"


def reset_link_text(url: str, hours: int, locale: str, site_name: str) -> str:
    """The SMS carrying a help-desk password reset link, valid for ``hours``."""
    if normalize_locale(locale) == "en":
        unit = "hour" if hours == 1 else "hours"
        return (
            f"[{site_name}] The help desk has started a password reset for your account. "
            f"Open {url} within {hours} {unit} to set a new password; the link works once. "
            "If you did not ask for this, call the help desk."
        )
    return (
        f"【{site_name}】服务台已为您的账号发起密码重置，请在 {hours} 小时内打开 {url} "
        "设置新密码，链接仅可使用一次。如非本人申请，请联系服务台。"
    )


def activation_notice_text(url: str, account: str, locale: str, site_name: str) -> str:
    """The help desk's activation notice: where and how to activate ``account`` (no secret)."""
    if normalize_locale(locale) == "en":
        return (
            f"[{site_name}] Your account {account} has not been activated yet. Open {url}, "
            "enter your name, account number and ID number, bind your phone and set a "
            "password. Questions: call the help desk."
        )
    return (
        f"【{site_name}】您的账号 {account} 尚未激活。请访问 {url}，填写姓名、学工号和证件号，"
        "绑定手机并设置密码即可完成激活。如有疑问，请联系服务台。"
    )


def activation_notice_subject(locale: str, site_name: str) -> str:
    """The mail subject of an activation notice."""
    if normalize_locale(locale) == "en":
        return f"[{site_name}] How to activate your account"
    return f"【{site_name}】账号激活通知"


class _Notice(NamedTuple):
    """How one kind of security notice reads: ``item`` names what changed (and is the one
    parameter of the vendor's approved SMS template, so it stays a short noun); ``event`` says
    what happened, with ``{item}``, ``{when}`` and, for a new phone or email, ``{target}``."""

    item: str
    subject: str
    event: str


#: The changes a security notice tells the phone and email on file about: the security phone
#: or email replaced, and, as NIST SP 800-63B asks, an authenticator bound to or removed from
#: the account (the login password, 两步验证 and its recovery codes) or a recovery code spent;
#: and the help desk's changes (a temporary password, a phone, email, WeChat or WeCom unbound);
#: and a WeChat or WeCom bound or unbound by the account itself (a way to sign in).
SECURITY_CHANGES = (
    "phone",
    "email",
    "password",
    "mfa.enable",
    "mfa.disable",
    "mfa.reset",
    "recovery_codes.regenerate",
    "recovery_code.use",
    "password.helpdesk",
    "phone.unbind",
    "email.unbind",
    "wechat.unbind",
    "wecom.unbind",
    "wechat.bind",
    "wecom.bind",
    "wechat.remove",
    "wecom.remove",
)
#: The changes whose notice names the new phone or email (masked).
_WITH_TARGET = ("phone", "email")

_ZH_NOTICES = {
    "phone": _Notice(
        "安全手机",
        "{item}已更改",
        "您账号的{item}已于 {when}（北京时间）更改为 {target}，其他设备上的登录已退出。",
    ),
    "email": _Notice(
        "安全邮箱",
        "{item}已更改",
        "您账号的{item}已于 {when}（北京时间）更改为 {target}，其他设备上的登录已退出。",
    ),
    "password": _Notice(
        "登录密码",
        "{item}已修改",
        "您账号的{item}已于 {when}（北京时间）修改，其他设备上的登录已退出。",
    ),
    "mfa.enable": _Notice(
        "两步验证",
        "{item}已开启",
        "您的账号已于 {when}（北京时间）开启{item}。",
    ),
    "mfa.disable": _Notice(
        "两步验证",
        "{item}已关闭",
        "您账号的{item}已于 {when}（北京时间）关闭，恢复码和受信任设备已全部失效。",
    ),
    "mfa.reset": _Notice(
        "两步验证",
        "{item}已由服务台重置",
        "您账号的{item}已于 {when}（北京时间）由服务台重置（已关闭），各设备上的登录已退出。",
    ),
    "recovery_codes.regenerate": _Notice(
        "恢复码",
        "{item}已重新生成",
        "您账号的两步验证{item}已于 {when}（北京时间）重新生成，原有{item}已全部失效。",
    ),
    "recovery_code.use": _Notice(
        "恢复码",
        "{item}已被使用",
        "您的账号已于 {when}（北京时间）使用一个{item}完成两步验证，该{item}已失效。",
    ),
    "password.helpdesk": _Notice(
        "登录密码",
        "{item}已由服务台重置",
        "您账号的{item}已于 {when}（北京时间）由服务台重置为临时密码，各设备上的登录已退出。",
    ),
    "phone.unbind": _Notice(
        "安全手机",
        "{item}已由服务台解除绑定",
        "您账号的{item}已于 {when}（北京时间）由服务台解除绑定，各设备上的登录已退出。",
    ),
    "email.unbind": _Notice(
        "安全邮箱",
        "{item}已由服务台解除绑定",
        "您账号的{item}已于 {when}（北京时间）由服务台解除绑定，各设备上的登录已退出。",
    ),
    "wechat.unbind": _Notice(
        "微信",
        "{item}已由服务台解除绑定",
        "您账号绑定的{item}已于 {when}（北京时间）由服务台解除绑定，各设备上的登录已退出。",
    ),
    "wecom.unbind": _Notice(
        "企业微信",
        "{item}已由服务台解除绑定",
        "您账号绑定的{item}已于 {when}（北京时间）由服务台解除绑定，各设备上的登录已退出。",
    ),
    "wechat.bind": _Notice(
        "微信",
        "{item}已绑定",
        "您的账号已于 {when}（北京时间）绑定{item}，此后可用该{item}扫码登录。",
    ),
    "wecom.bind": _Notice(
        "企业微信",
        "{item}已绑定",
        "您的账号已于 {when}（北京时间）绑定{item}，此后可用该{item}扫码登录。",
    ),
    "wechat.remove": _Notice(
        "微信",
        "{item}已解除绑定",
        "您账号绑定的{item}已于 {when}（北京时间）解除绑定，不能再用它扫码登录。",
    ),
    "wecom.remove": _Notice(
        "企业微信",
        "{item}已解除绑定",
        "您账号绑定的{item}已于 {when}（北京时间）解除绑定，不能再用它扫码登录。",
    ),
}
_EN_NOTICES = {
    "phone": _Notice(
        "security phone",
        "Your {item} was changed",
        "The {item} of your account was changed to {target} at {when} (Beijing time), and "
        "other devices were signed out.",
    ),
    "email": _Notice(
        "security email",
        "Your {item} was changed",
        "The {item} of your account was changed to {target} at {when} (Beijing time), and "
        "other devices were signed out.",
    ),
    "password": _Notice(
        "login password",
        "Your {item} was changed",
        "The {item} of your account was changed at {when} (Beijing time), and other devices "
        "were signed out.",
    ),
    "mfa.enable": _Notice(
        "two-step verification",
        "Two-step verification was turned on",
        "Two-step verification was turned on for your account at {when} (Beijing time).",
    ),
    "mfa.disable": _Notice(
        "two-step verification",
        "Two-step verification was turned off",
        "Two-step verification was turned off for your account at {when} (Beijing time); its "
        "recovery codes and trusted devices no longer work.",
    ),
    "mfa.reset": _Notice(
        "two-step verification",
        "Two-step verification was reset by the help desk",
        "The help desk reset (turned off) two-step verification of your account at {when} "
        "(Beijing time), and every device was signed out.",
    ),
    "recovery_codes.regenerate": _Notice(
        "recovery codes",
        "New recovery codes were generated",
        "New recovery codes for two-step verification were generated for your account at "
        "{when} (Beijing time); the earlier ones no longer work.",
    ),
    "recovery_code.use": _Notice(
        "recovery code",
        "A recovery code was used",
        "A recovery code of your account was used for two-step verification at {when} "
        "(Beijing time); that code no longer works.",
    ),
    "password.helpdesk": _Notice(
        "login password",
        "Your {item} was reset by the help desk",
        "The help desk reset the {item} of your account to a temporary one at {when} (Beijing "
        "time), and every device was signed out.",
    ),
    "phone.unbind": _Notice(
        "security phone",
        "Your {item} was unbound by the help desk",
        "The help desk unbound the {item} of your account at {when} (Beijing time), and every "
        "device was signed out.",
    ),
    "email.unbind": _Notice(
        "security email",
        "Your {item} was unbound by the help desk",
        "The help desk unbound the {item} of your account at {when} (Beijing time), and every "
        "device was signed out.",
    ),
    "wechat.unbind": _Notice(
        "WeChat",
        "Your {item} was unbound by the help desk",
        "The help desk unbound the {item} linked to your account at {when} (Beijing time), and "
        "every device was signed out.",
    ),
    "wecom.unbind": _Notice(
        "WeCom",
        "Your {item} was unbound by the help desk",
        "The help desk unbound the {item} linked to your account at {when} (Beijing time), and "
        "every device was signed out.",
    ),
    "wechat.bind": _Notice(
        "WeChat",
        "A {item} was linked to your account",
        "A {item} was linked to your account at {when} (Beijing time); it can now sign in by "
        "scanning.",
    ),
    "wecom.bind": _Notice(
        "WeCom",
        "A {item} was linked to your account",
        "A {item} was linked to your account at {when} (Beijing time); it can now sign in by "
        "scanning.",
    ),
    "wechat.remove": _Notice(
        "WeChat",
        "Your {item} was unlinked",
        "The {item} linked to your account was unlinked at {when} (Beijing time); it can no "
        "longer sign in by scanning.",
    ),
    "wecom.remove": _Notice(
        "WeCom",
        "Your {item} was unlinked",
        "The {item} linked to your account was unlinked at {when} (Beijing time); it can no "
        "longer sign in by scanning.",
    ),
}


def _notice(change: str, locale: str) -> _Notice:
    # An unknown change is a programming error: better loud than a notice saying nothing.
    if change not in SECURITY_CHANGES:
        raise ValueError(
            f"unknown change {change!r}; expected one of {', '.join(SECURITY_CHANGES)}"
        )
    return (_EN_NOTICES if normalize_locale(locale) == "en" else _ZH_NOTICES)[change]


def changed_item(change: str, locale: str) -> str:
    """``安全手机`` / ``security phone``, ``登录密码``, ``两步验证``, ``恢复码``…: the short words
    for what a notice says changed (in Chinese, the vendor template's one parameter)."""
    return _notice(change, locale).item


def security_change_text(
    change: str,
    new_target: str | None,
    when: str,
    help_phone: str,
    locale: str,
    site_name: str,
) -> str:
    """The notice to the phone and email on file that the security ``change`` (one of
    :data:`SECURITY_CHANGES`) happened at ``when`` (campus time); a new phone or email is named
    by ``new_target`` (masked), which the other changes do without."""
    if (change in _WITH_TARGET) != (new_target is not None):
        raise ValueError(
            f"a {change!r} notice {'needs' if change in _WITH_TARGET else 'has no'} new target"
        )
    notice = _notice(change, locale)
    event = notice.event.format(item=notice.item, when=when, target=new_target)
    if normalize_locale(locale) == "en":
        return (
            f"[{site_name}] {event} If this was not you, call the help desk at once: {help_phone}."
        )
    return f"【{site_name}】{event}如非本人操作，请立即联系服务台：{help_phone}。"


def security_change_subject(change: str, locale: str, site_name: str) -> str:
    """The mail subject of a security-change notice."""
    notice = _notice(change, locale)
    subject = notice.subject.format(item=notice.item)
    if normalize_locale(locale) == "en":
        return f"[{site_name}] {subject}"
    return f"【{site_name}】{subject}"
