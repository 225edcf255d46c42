"""The help desk's actions on an account, and finding accounts. No ``request`` here.

Each action checks who may do it to whom (:func:`idp.admin.access.can_act_on`), changes exactly
what it says, and records one audit event with the actor, the target and the reason. Callers
commit (the change and its audit event go in one transaction).
"""

from __future__ import annotations

import enum
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import case, or_

from idp.admin.access import can_act_on
from idp.admin.form_tokens import issue_form_token, use_form_token

# The actions that message the owner moved to idp.admin.notices; their names stay importable.
from idp.admin.notices import (
    RESET_LINK_REFUSALS as RESET_LINK_REFUSALS,
)
from idp.admin.notices import resend_activation, reset_link
from idp.admin.notices import (
    reset_link_refusal as reset_link_refusal,
)
from idp.audit.operations import DENIED, FAILURE, record
from idp.auth import throttle
from idp.auth.operations import (
    clear_sign_in_counters,
    personal_info,
    set_password,
    throttle_subject,
)
from idp.auth.policy import PasswordPolicy, check_password
from idp.auth.sessions import end_all_sessions
from idp.directory.identifiers import (
    data_key,
    decrypt_identifier,
    hash_identifier,
    mask_id_number,
    normalise_email,
    normalise_id_number,
    normalise_phone,
)
from idp.directory.models import User, UserStatus
from idp.directory.roles import Role, grant_role, has_role, revoke_role, user_roles
from idp.extensions import db

#: A search never lists more than this many accounts: it finds people, it does not browse.
SEARCH_LIMIT = 50
#: How long a confirmation form stays usable.
NONCE_TTL = 900
#: Temporary passwords avoid characters people misread when reading them out (0/O, 1/l/I).
TEMP_ALPHABET = "".join(c for c in string.ascii_letters + string.digits if c not in "0O1lI")
TEMP_LENGTH = 12
WECHAT = "wechat"
WECOM = "wecom"


#: Told when a password action is asked for an account that was never activated.
NOT_ACTIVATED = _l("该账号尚未激活，请让用户通过“激活账号”设置密码。")

#: An action's implementation: (actor, target, reason, role) → a temporary password or None.
Handler = Callable[[User, User, str, "Role | None"], "str | None"]


class ConsoleError(ValueError):
    """A console request cannot go ahead; the message is for the console user."""

    def __init__(self, message: Any, status: int = 400) -> None:
        super().__init__(str(message))
        self.message = message
        self.status = status


class Action(enum.StrEnum):
    """What the help desk can do to an account (the value is the address segment)."""

    TEMP_PASSWORD = "temp-password"  # noqa: S105 - an address segment, not a password
    RESET_LINK = "reset-link"
    RESEND_ACTIVATION = "resend-activation"
    UNLOCK = "unlock"
    UNBIND_PHONE = "unbind-phone"
    UNBIND_EMAIL = "unbind-email"
    UNBIND_WECHAT = "unbind-wechat"
    UNBIND_WECOM = "unbind-wecom"
    RESET_TOTP = "reset-totp"
    DISABLE = "disable"
    ENABLE = "enable"
    END_SESSIONS = "end-sessions"
    GRANT_ROLE = "grant-role"
    REVOKE_ROLE = "revoke-role"


@dataclass(frozen=True)
class ActionInfo:
    """How an action is shown and who may take it."""

    label: Any
    explain: Any
    role: Role = Role.HELPDESK
    danger: bool = False


ACTIONS: dict[Action, ActionInfo] = {
    Action.TEMP_PASSWORD: ActionInfo(
        _l("重置密码（临时密码）"),
        _l("生成一次性临时密码并只显示一次；原密码立即失效，所有登录被退出，下次登录须修改密码。"),
    ),
    Action.RESET_LINK: ActionInfo(
        _l("发送重置链接"),
        _l(
            "向已验证的安全手机发送一次性重置链接（24 小时内有效），用户打开后无需原密码即可"
            "设置新密码；所有登录被退出，下次登录须修改密码。"
        ),
    ),
    Action.RESEND_ACTIVATION: ActionInfo(
        _l("发送激活通知"),
        _l(
            "向人事登记的手机号（短信）和/或邮箱发送激活通知：激活网址、学工号，并提醒准备好"
            "证件号；通知中不含密码或验证码，用户须自行完成“激活账号”。"
        ),
    ),
    Action.UNLOCK: ActionInfo(
        _l("解除锁定"), _l("清除密码错误次数造成的临时锁定，账号可立即用密码登录。")
    ),
    Action.UNBIND_PHONE: ActionInfo(
        _l("解绑安全手机"),
        _l("解除安全手机绑定；用户下次登录时须重新绑定手机（用于手机号已更换的情况）。"),
    ),
    Action.UNBIND_EMAIL: ActionInfo(_l("解绑安全邮箱"), _l("解除安全邮箱绑定。")),
    Action.UNBIND_WECHAT: ActionInfo(
        _l("解绑微信"), _l("解除微信绑定，之后不能再用该微信扫码登录。")
    ),
    Action.UNBIND_WECOM: ActionInfo(
        _l("解绑企业微信"), _l("解除企业微信绑定，之后不能再用该企业微信扫码登录。")
    ),
    Action.RESET_TOTP: ActionInfo(
        _l("重置两步验证"),
        _l("删除验证器应用、恢复码和受信任设备（用于手机丢失的情况）；用户可重新启用。"),
        danger=True,
    ),
    Action.DISABLE: ActionInfo(
        _l("停用账号"), _l("停用后不能登录，所有登录被退出，已登录的系统同时退出。"), danger=True
    ),
    Action.ENABLE: ActionInfo(_l("启用账号"), _l("恢复已停用的账号，用户可以重新登录。")),
    Action.END_SESSIONS: ActionInfo(
        _l("退出所有登录"), _l("结束该账号在所有设备上的登录，并通知已登录的系统（单点登出）。")
    ),
    Action.GRANT_ROLE: ActionInfo(_l("授予角色"), _l("授予控制台角色。"), Role.ADMIN, True),
    Action.REVOKE_ROLE: ActionInfo(_l("撤销角色"), _l("撤销控制台角色。"), Role.ADMIN, True),
}

ROLE_LABELS = {Role.HELPDESK: _l("服务台"), Role.ADMIN: _l("管理员")}


# 查找账号 -----------------------------------------------------------------------------------


def _like(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"{escaped}%"


@dataclass(frozen=True)
class AccountSearch:
    """What 查找账号 found: at most :data:`SEARCH_LIMIT` accounts, and whether there were more."""

    users: list[User]
    #: More accounts matched than are listed: the desk should type more of the name.
    truncated: bool


def search_accounts(query: str, *, actor: User) -> AccountSearch:
    """Accounts matching an account number, name, phone, ID number or email (exact forms).

    An empty query lists nobody. Phones and emails are matched in their normalised form, ID
    numbers through their keyed hash (the numbers themselves are not stored). A name matches
    as a prefix, so people called exactly that come first: 王伟 must not be crowded off the
    list by 王伟华 and 王伟国. Audited without the query itself, which is personal data.
    """
    value = (query or "").strip()
    if not value:
        record("console.search", FAILURE, actor=actor, target=None, detail={"reason": "empty"})
        raise ConsoleError(_l("请输入学工号、姓名、手机号、证件号或邮箱后再查找。"))
    if len(value) > 254:
        raise ConsoleError(_l("查找内容过长。"))
    conditions = [User.account == value, User.name.like(_like(value), escape="\\")]
    kinds = ["account", "name"]
    phone = normalise_phone(value)
    if phone:
        conditions.append(User.phone == phone)
        kinds.append("phone")
    email = normalise_email(value)
    if email:
        conditions.append(User.email == email)
        kinds.append("email")
    id_number = normalise_id_number(value)
    if len(id_number) >= 6:
        digest = hash_identifier(id_number, data_key(current_app.config))
        conditions.append(User.id_number_hash == digest)
        kinds.append("id_number")
    users = list(
        db.session.scalars(
            db.select(User)
            .where(or_(*conditions))
            .order_by(case((User.name == value, 0), else_=1), User.account)
            .limit(SEARCH_LIMIT + 1)
        )
    )
    truncated = len(users) > SEARCH_LIMIT
    users = users[:SEARCH_LIMIT]
    detail: dict[str, Any] = {"matched_as": kinds, "results": len(users)}
    if truncated:
        detail["truncated"] = True
    record("console.search", actor=actor, target=None, detail=detail)
    return AccountSearch(users, truncated)


def masked_id_number(user: User) -> str | None:
    """The user's ID number, masked, for telling people with the same name apart."""
    if not user.id_number_encrypted:
        return None
    try:
        return mask_id_number(
            decrypt_identifier(user.id_number_encrypted, data_key(current_app.config))
        )
    except ValueError:
        return None


# 状态 ---------------------------------------------------------------------------------------


def lock_subject(user: User) -> str:
    """The key the sign-in brute-force counters use for ``user``."""
    return throttle_subject(user.account, user)


def is_locked(user: User) -> bool:
    """Whether password sign-in is paused for too many wrong passwords, or the status locks it."""
    return user.status == UserStatus.LOCKED or throttle.is_locked(lock_subject(user))


def failed_attempts(user: User) -> int:
    """Wrong passwords counted in the current window."""
    return throttle.failures(lock_subject(user))


def social_identities(user: User) -> dict[str, Any]:
    """The user's WeChat / WeCom bindings by provider (empty until that feature exists)."""
    try:
        from idp.social.operations import identities_of
    except ImportError:  # pragma: no cover - only while the social feature is being built
        return {}
    found: dict[str, Any] = {}
    for identity in identities_of(user):
        found[identity.provider] = identity
    return found


# 确认表单 -----------------------------------------------------------------------------------


def _confirmation(target: User, action: Action) -> str:
    return f"confirm:{action.value}:{target.id}"


def issue_nonce(actor: User, target: User, action: Action) -> str:
    """A single-use token binding one confirmation form to this actor, target and action."""
    return issue_form_token(actor, _confirmation(target, action), NONCE_TTL)


def take_nonce(nonce: str | None, actor: User, target: User, action: Action) -> bool:
    """Use up a confirmation token; False when it is unknown, used, expired or not this form's."""
    use = use_form_token(nonce, actor, _confirmation(target, action))
    return use is not None and use.first


def refuse(actor: User, target: User, action: Action, why: str, outcome: str = DENIED) -> None:
    """Record a refused console action (nothing else changes)."""
    record(
        f"console.{action.value}",
        outcome,
        actor=actor,
        target=target,
        detail={"reason_refused": why},
    )


# 操作 ---------------------------------------------------------------------------------------


def check_allowed(actor: User, target: User, action: Action) -> None:
    """Raise (after auditing the refusal) unless ``actor`` may take ``action`` on ``target``."""
    info = ACTIONS[action]
    if not has_role(actor, info.role):
        refuse(actor, target, action, "role")
        raise ConsoleError(_l("您没有执行此操作的权限，本次尝试已记录。"), 403)
    if not can_act_on(actor, target):
        refuse(actor, target, action, "target")
        raise ConsoleError(
            _l("不能在控制台中处理自己或其他控制台用户的账号，本次尝试已记录。"), 403
        )


def new_temporary_password(user: User) -> str:
    """A random password that meets the policy (letters and digits, from ``secrets``)."""
    policy = PasswordPolicy.from_config(current_app.config)
    length = max(TEMP_LENGTH, policy.min_length)
    person = personal_info(user)
    while True:
        candidate = "".join(secrets.choice(TEMP_ALPHABET) for _ in range(length))
        has_both = any(c.isalpha() for c in candidate) and any(c.isdigit() for c in candidate)
        if has_both and not check_password(candidate, policy, person):
            return candidate


def _audit(actor: User, target: User, action: Action, reason: str, **detail: Any) -> None:
    record(
        f"console.{action.value}",
        actor=actor,
        target=target,
        detail={"reason": reason, **detail},
    )


def _clean_reason(reason: str) -> str:
    value = " ".join((reason or "").split())
    if not value:
        raise ConsoleError(_l("请填写操作原因。"))
    return value[:500]


def perform(
    actor: User, target: User, action: Action, reason: str, role: Role | None = None
) -> str | None:
    """Take ``action`` on ``target`` for ``reason``; returns a temporary password if one was made.

    Raises :class:`ConsoleError` (already audited when it is a refusal) when it cannot go ahead.
    """
    check_allowed(actor, target, action)
    reason = _clean_reason(reason)
    handler = _HANDLERS[action]
    return handler(actor, target, reason, role)


def _sign_out_for_reset(target: User, *, unlock: bool) -> int:
    """End every session of ``target`` before a password reset; returns how many ended.

    Store work first (the lock, and single logout forgetting the sessions' tickets), row
    changes after: on SQLite the store waits while the session holds uncommitted writes.
    """
    if unlock:
        clear_sign_in_counters(target)
    return end_all_sessions(target)


def _temp_password(actor: User, target: User, reason: str, role: Role | None) -> str | None:
    if target.status == UserStatus.PENDING:
        raise ConsoleError(NOT_ACTIVATED, 409)
    password = new_temporary_password(target)
    ended = _sign_out_for_reset(target, unlock=True)
    set_password(target, password, must_change=True)
    _audit(actor, target, Action.TEMP_PASSWORD, reason, sessions_ended=ended)
    return password


def _unlock(actor: User, target: User, reason: str, role: Role | None) -> str | None:
    was_throttled = throttle.is_locked(lock_subject(target))
    was_status = target.status == UserStatus.LOCKED
    if not (was_throttled or was_status or failed_attempts(target)):
        raise ConsoleError(_l("该账号当前没有被锁定。"), 409)
    clear_sign_in_counters(target)
    if was_status:
        target.status = UserStatus.ACTIVE
    _audit(actor, target, Action.UNLOCK, reason, throttle=was_throttled, status=was_status)
    return None


def _sign_out_everywhere(target: User) -> int:
    """These actions are for a lost phone, mailbox or WeChat: whoever holds it may be signed
    in, and must not stay so (a temporary password and 停用 end every session too). Called
    before the row changes: see :func:`_sign_out_for_reset`. Returns how many ended."""
    return end_all_sessions(target)


def _unbind_phone(actor: User, target: User, reason: str, role: Role | None) -> str | None:
    if not target.phone:
        raise ConsoleError(_l("该账号没有绑定安全手机。"), 409)
    ended = _sign_out_everywhere(target)
    target.phone = None
    target.phone_verified_at = None
    _audit(actor, target, Action.UNBIND_PHONE, reason, sessions_ended=ended)
    return None


def _unbind_email(actor: User, target: User, reason: str, role: Role | None) -> str | None:
    if not target.email:
        raise ConsoleError(_l("该账号没有绑定安全邮箱。"), 409)
    ended = _sign_out_everywhere(target)
    target.email = None
    target.email_verified_at = None
    _audit(actor, target, Action.UNBIND_EMAIL, reason, sessions_ended=ended)
    return None


def _unbind_social(provider: str, action: Action) -> Handler:
    def unbind(actor: User, target: User, reason: str, role: Role | None) -> str | None:
        from idp.social.operations import unbind_identity

        if provider not in social_identities(target):
            raise ConsoleError(_l("该账号没有绑定此项。"), 409)
        # The social feature records its own event too; the console's keeps all actions alike.
        ended = _sign_out_everywhere(target)
        unbind_identity(target, provider, actor=actor, reason=reason)
        _audit(actor, target, action, reason, sessions_ended=ended)
        return None

    return unbind


def _reset_totp(actor: User, target: User, reason: str, role: Role | None) -> str | None:
    from idp.mfa.operations import reset_totp, totp_enabled

    # reset_totp records ``mfa.reset`` too; the console's event keeps all actions alike.
    if not totp_enabled(target):
        raise ConsoleError(_l("该账号没有开启两步验证。"), 409)
    ended = _sign_out_everywhere(target)
    reset_totp(target, actor=actor, reason=reason)
    _audit(actor, target, Action.RESET_TOTP, reason, sessions_ended=ended)
    return None


def _disable(actor: User, target: User, reason: str, role: Role | None) -> str | None:
    if target.status == UserStatus.DISABLED:
        raise ConsoleError(_l("该账号已是停用状态。"), 409)
    previous = target.status.value
    ended = end_all_sessions(target)  # before the row changes: see _temp_password
    target.status = UserStatus.DISABLED
    _audit(actor, target, Action.DISABLE, reason, previous=previous, sessions_ended=ended)
    return None


def _enable(actor: User, target: User, reason: str, role: Role | None) -> str | None:
    if target.status != UserStatus.DISABLED:
        raise ConsoleError(_l("该账号没有被停用。"), 409)
    # An account that never got a password goes back to waiting for activation.
    target.status = UserStatus.ACTIVE if target.password_hash else UserStatus.PENDING
    _audit(actor, target, Action.ENABLE, reason, status=target.status.value)
    return None


def _end_sessions(actor: User, target: User, reason: str, role: Role | None) -> str | None:
    ended = end_all_sessions(target)
    _audit(actor, target, Action.END_SESSIONS, reason, sessions_ended=ended)
    return None


def _grant_role(actor: User, target: User, reason: str, role: Role | None) -> str | None:
    if role is None:
        raise ConsoleError(_l("请选择角色。"))
    if not grant_role(target, role, actor=actor, reason=reason):
        raise ConsoleError(_l("该账号已拥有此角色。"), 409)
    _audit(actor, target, Action.GRANT_ROLE, reason, role=role.value)
    return None


def _revoke_role(actor: User, target: User, reason: str, role: Role | None) -> str | None:
    if role is None:
        raise ConsoleError(_l("请选择角色。"))
    if not revoke_role(target, role, actor=actor, reason=reason):
        raise ConsoleError(_l("该账号没有此角色。"), 409)
    _audit(actor, target, Action.REVOKE_ROLE, reason, role=role.value)
    return None


_HANDLERS: dict[Action, Handler] = {
    Action.TEMP_PASSWORD: _temp_password,
    Action.RESET_LINK: reset_link,
    Action.RESEND_ACTIVATION: resend_activation,
    Action.UNLOCK: _unlock,
    Action.UNBIND_PHONE: _unbind_phone,
    Action.UNBIND_EMAIL: _unbind_email,
    Action.UNBIND_WECHAT: _unbind_social(WECHAT, Action.UNBIND_WECHAT),
    Action.UNBIND_WECOM: _unbind_social(WECOM, Action.UNBIND_WECOM),
    Action.RESET_TOTP: _reset_totp,
    Action.DISABLE: _disable,
    Action.ENABLE: _enable,
    Action.END_SESSIONS: _end_sessions,
    Action.GRANT_ROLE: _grant_role,
    Action.REVOKE_ROLE: _revoke_role,
}


def roles_of(user: User) -> set[Role]:
    """The console roles ``user`` holds."""
    return user_roles(user)
