"""受信任设备: browsers that skip the two-step code for ``TOTP_TRUST_DAYS`` (the "30 天内免验证"
box), kept as digests of their cookie; a password change revokes them all."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import inspect as sa_inspect

from idp.audit.operations import record
from idp.directory.models import User, aware, utcnow
from idp.extensions import db
from idp.mfa.models import TrustedDevice
from idp.mfa.operations import totp_enabled


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def trust_days() -> int:
    """How long a trusted device skips the code."""
    return int(current_app.config["TOTP_TRUST_DAYS"])


def trust_device(user: User, user_agent: str | None, ip: str | None) -> str:
    """Remember this browser for the user; returns the cookie value. The caller commits."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    db.session.add(
        TrustedDevice(
            user_id=user.id,
            token_hash=_token_hash(token),
            user_agent=(user_agent or "")[:512] or None,
            ip=ip,
            created_at=now,
            last_used_at=now,
            expires_at=now + timedelta(days=trust_days()),
        )
    )
    record("mfa.device.trust", actor=user)
    return token


def _still_valid(user: User, device: TrustedDevice) -> bool:
    """Unexpired, and trusted since the last password change (a new password revokes all)."""
    if aware(device.expires_at) <= utcnow():
        return False
    changed = user.password_changed_at
    return changed is None or aware(device.created_at) >= aware(changed)


def device_trusted(user: User, token: str | None) -> bool:
    """True when ``token`` (the cookie) names a live trusted device of this user."""
    if not token or len(token) > 128:
        return False
    device = db.session.scalar(
        db.select(TrustedDevice).where(
            TrustedDevice.token_hash == _token_hash(token), TrustedDevice.user_id == user.id
        )
    )
    if device is None or not _still_valid(user, device):
        return False
    device.last_used_at = utcnow()
    return True


def keep_trusting(user: User, token: str | None) -> None:
    """Trust this browser under the password just set: a password change revokes every trusted
    device (``_still_valid``), but the browser that made the change — trusted a moment ago, and
    holding a signed-in session — keeps its "30 天内免验证". Call it after ``set_password``, only
    when ``device_trusted`` held before it. The caller commits."""
    if not token:
        return
    db.session.execute(
        db.update(TrustedDevice)
        .where(TrustedDevice.token_hash == _token_hash(token), TrustedDevice.user_id == user.id)
        .values(created_at=user.password_changed_at)
    )


def second_factor_due(user: User, trust_token: str | None) -> bool:
    """True when signing in must ask for a code: TOTP is on and this browser is not trusted.

    Uses the ``totp_confirmed`` column when the sign-in loaded it with the account (in this
    transaction: a commit expires it), else asks the database.
    """
    loaded = sa_inspect(user).dict.get("totp_confirmed")
    enabled = bool(loaded) if loaded is not None else totp_enabled(user)
    return enabled and not device_trusted(user, trust_token)


@dataclass(frozen=True)
class DeviceView:
    """A trusted device as the security centre lists it."""

    id: int
    user_agent: str | None
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime


def trusted_devices(user: User) -> list[DeviceView]:
    """The user's live trusted devices, newest first."""
    devices = db.session.scalars(
        db.select(TrustedDevice)
        .where(TrustedDevice.user_id == user.id)
        .order_by(TrustedDevice.created_at.desc(), TrustedDevice.id.desc())
    )
    return [
        DeviceView(d.id, d.user_agent, d.created_at, d.last_used_at, d.expires_at)
        for d in devices
        if _still_valid(user, d)
    ]


def forget_device(user: User, device_id: int) -> bool:
    """Stop trusting one of the user's devices; False if it is not theirs. The caller commits."""
    result = db.session.execute(
        db.delete(TrustedDevice).where(
            TrustedDevice.id == device_id, TrustedDevice.user_id == user.id
        )
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    record("mfa.device.remove", actor=user, detail={"count": 1})
    return True


def forget_other_devices(user: User, this_browser_token: str | None) -> int:
    """Stop trusting every device of the user but this browser (its trusted-device cookie, if
    any); returns how many. For 退出其他设备: a browser signed out there must ask for the code
    again. The caller commits."""
    query = db.delete(TrustedDevice).where(TrustedDevice.user_id == user.id)
    if this_browser_token:
        query = query.where(TrustedDevice.token_hash != _token_hash(this_browser_token))
    count = int(db.session.execute(query).rowcount or 0)  # type: ignore[attr-defined]
    if count:
        record("mfa.device.remove", actor=user, detail={"count": count, "others": True})
    return count


def forget_all_devices(user: User) -> int:
    """Stop trusting every device of the user; returns how many. The caller commits."""
    result = db.session.execute(db.delete(TrustedDevice).where(TrustedDevice.user_id == user.id))
    count = int(result.rowcount or 0)  # type: ignore[attr-defined]
    if count:
        record("mfa.device.remove", actor=user, detail={"count": count})
    return count
