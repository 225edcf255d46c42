"""Policy settings changed in the console (/admin/policy) without a restart.

Password rules, sign-in lockout and verification-code limits start from the ``IDP_*``
settings; an admin may override some of them. Overrides live in the ``policy_settings``
table and :func:`effective_config` lays them over ``app.config``. Each process keeps a copy
for at most :data:`POLICY_CACHE_TTL` seconds (so a change made through another process
applies within that bound) and drops it at once when it commits a change itself.
"""

from __future__ import annotations

import threading
import time
from collections import ChainMap
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from flask import current_app, has_app_context
from flask_babel import lazy_gettext as _l
from sqlalchemy import JSON, DateTime, ForeignKey, String, event
from sqlalchemy.orm import Mapped, Session, mapped_column

from idp.audit.operations import record
from idp.directory.models import User, utcnow
from idp.extensions import db
from shared.i18n import translate as _

#: Seconds a process may keep using its copy of the overrides.
POLICY_CACHE_TTL = 5.0
_CACHE_EXTENSION = "idp.policy_settings_cache"
#: ``Session.info`` flag: this transaction changed the overrides.
_CHANGED = "idp.policy_settings_changed"
_clock = time.monotonic


class PolicySetting(db.Model):  # type: ignore[name-defined]
    """One overridden policy value; no row means the ``IDP_*`` setting applies."""

    __tablename__ = "policy_settings"

    #: The setting's name without the ``IDP_`` prefix, e.g. ``PASSWORD_MIN_LENGTH``.
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: A whole number, or a list of them (``LOCKOUT_DURATIONS``).
    value: Mapped[Any] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


@dataclass(frozen=True)
class PolicyField:
    """A setting the console may override, with the range it accepts."""

    name: str
    label: Any
    group: str
    minimum: int
    maximum: int
    unit: Any
    #: A comma-separated list of values (each within the range), e.g. lock durations.
    many: bool = False


GROUPS: tuple[tuple[str, Any], ...] = (
    ("password", _l("密码规则")),
    ("lockout", _l("登录失败锁定")),
    ("codes", _l("验证码限制")),
)

POLICY_FIELDS: tuple[PolicyField, ...] = (
    PolicyField("PASSWORD_MIN_LENGTH", _l("密码最短长度"), "password", 6, 64, _l("个字符")),
    PolicyField("PASSWORD_MAX_LENGTH", _l("密码最长长度"), "password", 8, 1024, _l("个字符")),
    PolicyField(
        "PASSWORD_MIN_CLASSES",
        _l("至少包含的字符类别数（大写、小写、数字、符号）"),
        "password",
        2,
        4,
        _l("类"),
    ),
    PolicyField(
        "PASSWORD_MIN_SCORE", _l("最低密码强度（zxcvbn 0–4 分）"), "password", 0, 4, _l("分")
    ),
    PolicyField(
        "LOGIN_CAPTCHA_AFTER", _l("账号失败几次后要求图形验证码"), "lockout", 1, 100, _l("次")
    ),
    PolicyField(
        "LOGIN_IP_CAPTCHA_AFTER",
        _l("同一 IP 每小时失败几次后要求图形验证码"),
        "lockout",
        1,
        100000,
        _l("次"),
    ),
    PolicyField("LOCKOUT_EVERY", _l("每失败几次暂停密码登录"), "lockout", 1, 100, _l("次")),
    PolicyField(
        "LOCKOUT_DURATIONS",
        _l("依次暂停的时长（逗号分隔）"),
        "lockout",
        1,
        7 * 86400,
        _l("秒"),
        many=True,
    ),
    PolicyField("LOCKOUT_WINDOW", _l("失败次数保留时长"), "lockout", 60, 30 * 86400, _l("秒")),
    PolicyField("CODE_TTL", _l("验证码有效期"), "codes", 30, 3600, _l("秒")),
    PolicyField("CODE_MAX_ATTEMPTS", _l("验证码可输错次数"), "codes", 1, 20, _l("次")),
    PolicyField("CODE_RESEND_INTERVAL", _l("重新获取验证码的间隔"), "codes", 1, 3600, _l("秒")),
    PolicyField(
        "CODE_DAILY_LIMIT", _l("每个手机号或邮箱每天可获取验证码次数"), "codes", 1, 1000, _l("次")
    ),
    PolicyField(
        "CODE_IP_CAPTCHA_AFTER",
        _l("同一 IP 每小时获取几次后要求图形验证码"),
        "codes",
        1,
        100000,
        _l("次"),
    ),
    PolicyField(
        "CODE_IP_HOURLY_LIMIT", _l("同一 IP 每小时获取验证码上限"), "codes", 1, 100000, _l("次")
    ),
)
FIELDS_BY_NAME = {field.name: field for field in POLICY_FIELDS}


class PolicyError(ValueError):
    """Some values were refused; ``problems`` maps each field name to a message."""

    def __init__(self, problems: dict[str, str]) -> None:
        super().__init__("; ".join(f"{name}: {text}" for name, text in problems.items()))
        self.problems = problems


def parse_value(field: PolicyField, raw: str) -> int | tuple[int, ...]:
    """The value an admin typed, checked against the field's range."""
    parts = [part.strip() for part in raw.split(",")] if field.many else [raw.strip()]
    try:
        values = tuple(int(part) for part in parts if part != "")
    except ValueError:
        raise ValueError(_("请输入整数")) from None
    if not values or (not field.many and len(values) != 1):
        raise ValueError(_("请输入整数"))
    for value in values:
        if not field.minimum <= value <= field.maximum:
            raise ValueError(
                _("须在 %(min)d 到 %(max)d 之间", min=field.minimum, max=field.maximum)
            )
    return values if field.many else values[0]


def _valid_stored(field: PolicyField, stored: Any) -> int | tuple[int, ...] | None:
    """A stored value if it is still acceptable (ranges may have changed since), else None."""
    try:
        raw = ",".join(str(int(v)) for v in stored) if field.many else str(int(stored))
        return parse_value(field, raw)
    except (TypeError, ValueError):
        return None


# --- reading ----------------------------------------------------------------------------------


class _Cache:
    """One app's overrides, as last read."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.generation = 0
        self.values: dict[str, Any] | None = None
        self.loaded_at = 0.0

    def invalidate(self) -> None:
        with self.lock:
            self.generation += 1
            self.values = None


def _cache() -> _Cache:
    cache = current_app.extensions.get(_CACHE_EXTENSION)
    if cache is None:
        cache = current_app.extensions.setdefault(_CACHE_EXTENSION, _Cache())
    return cast(_Cache, cache)


def _load() -> dict[str, Any]:
    table = PolicySetting.__table__
    values: dict[str, Any] = {}
    for name, stored in db.session.execute(db.select(table.c.name, table.c.value)):
        field = FIELDS_BY_NAME.get(name)
        value = _valid_stored(field, stored) if field else None
        if value is not None:
            values[name] = value
    return values


def overrides() -> dict[str, Any]:
    """The console's overrides in force in this process (read at most every few seconds)."""
    if db.session().info.get(_CHANGED):
        return _load()  # this transaction is changing them: see its own writes
    cache = _cache()
    with cache.lock:
        values, generation = cache.values, cache.generation
        fresh = values is not None and _clock() - cache.loaded_at < POLICY_CACHE_TTL
    if values is not None and fresh:
        return values
    started = _clock()
    values = _load()
    with cache.lock:
        if cache.generation == generation:  # nothing changed here while it was read
            cache.values, cache.loaded_at = values, started
    return values


def effective_config() -> Mapping[str, Any]:
    """``app.config`` with the console's policy overrides laid over it (read-only view)."""
    return ChainMap(overrides(), current_app.config)


def defaults() -> dict[str, Any]:
    """The values the ``IDP_*`` settings give, before any override."""
    return {field.name: current_app.config.get(field.name) for field in POLICY_FIELDS}


def format_value(value: Any) -> str:
    """A value as the form shows it (lists comma-separated)."""
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return "" if value is None else str(value)


# --- changing ---------------------------------------------------------------------------------


def update_policy(
    submitted: Mapping[str, str], *, actor: User, reason: str = ""
) -> dict[str, tuple[Any, Any]]:
    """Apply an admin's form: a value sets an override, an empty box returns to the default.

    Every value is checked first; if any is refused, :class:`PolicyError` names them all and
    nothing changes. Returns ``{name: (before, after)}`` of what changed. Audited; caller commits.
    """
    config = current_app.config
    current = _load()
    problems: dict[str, str] = {}
    wanted: dict[str, Any] = {}
    for field in POLICY_FIELDS:
        if field.name not in submitted:
            continue
        raw = (submitted[field.name] or "").strip()
        if not raw:
            wanted[field.name] = None
            continue
        try:
            wanted[field.name] = parse_value(field, raw)
        except ValueError as exc:
            problems[field.name] = str(exc)

    def after(name: str) -> Any:
        if name in wanted:
            return config.get(name) if wanted[name] is None else wanted[name]
        return current.get(name, config.get(name))

    # Pairs that must stay in order, checked once both values are themselves acceptable.
    ordered = (
        ("PASSWORD_MIN_LENGTH", "PASSWORD_MAX_LENGTH", _("最短长度不能大于最长长度")),
        (
            "CODE_IP_CAPTCHA_AFTER",
            "CODE_IP_HOURLY_LIMIT",
            _("要求图形验证码的次数不能大于每小时上限"),
        ),
    )
    for low, high, message in ordered:
        if low not in problems and high not in problems and int(after(low)) > int(after(high)):
            problems[low] = message
    if problems:
        raise PolicyError(problems)

    changes: dict[str, tuple[Any, Any]] = {}
    for name, value in wanted.items():
        before = current.get(name)
        if value == before:
            continue
        row = db.session.get(PolicySetting, name)
        if value is None:
            if row is not None:
                db.session.delete(row)
        elif row is None:
            db.session.add(PolicySetting(name=name, value=_jsonable(value), updated_by_id=actor.id))
        else:
            row.value, row.updated_by_id = _jsonable(value), actor.id
        changes[name] = (_jsonable(before), _jsonable(value))
    if changes:
        db.session.info[_CHANGED] = True
        detail: dict[str, Any] = {
            "changes": {name: {"from": old, "to": new} for name, (old, new) in changes.items()}
        }
        if reason:
            detail["reason"] = reason
        record("policy.update", actor=actor, subject="policy", detail=detail)
    return changes


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _transaction_ended(session: Session) -> None:
    if session.info.pop(_CHANGED, False) and has_app_context():
        _cache().invalidate()
