"""Wording of the verification codes and notices we send, in Chinese (the default) and English.

The same text goes into an SMS, a mail body and the development outbox, so people see one
wording whichever channel carries the code. Vendors' SMS templates carry their own approved
wording; the text here is what the outbox records and what mail sends.
"""

from __future__ import annotations

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


#: What a security notice says changed, by the kind of channel (``phone`` or ``email``).
_ZH_CHANGED = {"phone": "安全手机", "email": "安全邮箱"}
_EN_CHANGED = {"phone": "security phone", "email": "security email"}


def changed_item(change: str, locale: str) -> str:
    """``安全手机`` / ``security phone`` (or email): the words for what a notice says changed."""
    if normalize_locale(locale) == "en":
        return _EN_CHANGED[change]
    return _ZH_CHANGED[change]


def security_change_text(
    change: str, new_target: str, when: str, help_phone: str, locale: str, site_name: str
) -> str:
    """The notice to the old phone and email that the security ``change`` (``phone`` or
    ``email``) now points at ``new_target`` (masked), since ``when`` (campus time)."""
    item = changed_item(change, locale)
    if normalize_locale(locale) == "en":
        return (
            f"[{site_name}] The {item} of your account was changed to {new_target} at {when} "
            "(Beijing time), and other devices were signed out. If this was not you, call the "
            f"help desk at once: {help_phone}."
        )
    return (
        f"【{site_name}】您账号的{item}已于 {when}（北京时间）更改为 {new_target}，"
        f"其他设备上的登录已退出。如非本人操作，请立即联系服务台：{help_phone}。"
    )


def security_change_subject(change: str, locale: str, site_name: str) -> str:
    """The mail subject of a security-change notice."""
    item = changed_item(change, locale)
    if normalize_locale(locale) == "en":
        return f"[{site_name}] Your {item} was changed"
    return f"【{site_name}】{item}已更改"
