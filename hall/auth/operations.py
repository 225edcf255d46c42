"""The rules of signing in, as plain functions: where ``next`` may lead, and who signed in."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from hall.auth.models import HallUser, utcnow
from hall.extensions import db
from shared.web import is_local_path

#: Paths that would only start another sign-in or sign-out if the user were sent back there.
_LOOPING = ("/login", "/logout", "/auth/")


def safe_next(raw: str | None, default: str = "/") -> str:
    """``raw`` if it is a path on this site (``/services?q=1``), otherwise ``default``.

    Never an absolute URL, a scheme-relative ``//host`` address or anything a browser might
    read as one, so that sign-in cannot be used to send people to another site.
    """
    if not raw or not is_local_path(raw) or urlsplit(raw).path.startswith(_LOOPING):
        return default
    return raw


def _text(claims: dict[str, Any], name: str, limit: int) -> str | None:
    value = claims.get(name)
    if value is None or isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    return text[:limit] or None


def record_sign_in(claims: dict[str, Any]) -> HallUser:
    """Create or refresh the hall's copy of the person the IdP vouched for (caller commits).

    Claims the IdP did not release (a scope it dropped) leave the stored value unchanged.
    """
    sub = str(claims["sub"])
    user: HallUser | None = db.session.scalar(db.select(HallUser).where(HallUser.sub == sub))
    now = utcnow()
    if user is None:
        user = HallUser(sub=sub, account="", name="", created_at=now)
        db.session.add(user)
    account = _text(claims, "account", 64) or _text(claims, "preferred_username", 64)
    user.account = account or user.account or sub[:64]
    user.name = _text(claims, "name", 128) or user.name or user.account
    fields = {
        "kind": ("kind", 32),
        "department_code": ("department", 64),
        "department_name": ("department_name", 255),
        "email": ("email", 255),
        "phone": ("phone_number", 32),
    }
    released = set(claims)
    if "kind" in released:
        # The campus claims came: the IdP leaves out the department of someone in none.
        released |= {"department", "department_name"}
    for attribute, (claim, limit) in fields.items():
        if claim in released:
            setattr(user, attribute, _text(claims, claim, limit))
    user.updated_at = now
    user.last_sign_in_at = now
    # The IdP just vouched for the person: whatever directory sync last concluded, they exist.
    user.active = True
    return user
