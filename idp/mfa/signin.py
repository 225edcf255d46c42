"""Where two-step verification meets sign-in: the pending-verification flow and the cookie of a
trusted device. Used by :func:`idp.auth.views.continue_sign_in` before any session starts."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from flask import current_app, request
from werkzeug.wrappers import Response

from idp.account import flows
from idp.auth.operations import credentials_stamp, password_stamp
from idp.directory.models import User, UserStatus, aware, utcnow
from idp.extensions import db
from idp.mfa.devices import second_factor_due, trust_days
from idp.mfa.operations import authenticator_stamp
from idp.social.clients import PROVIDERS
from idp.social.operations import identity_of

#: Server-side state of a sign-in that waits for the code (password or SMS already proven).
TWO_STEP_FLOW = "two_step"


def trust_cookie_name() -> str:
    """``__Host-`` prefixed over HTTPS, like the SSO cookie."""
    secure = current_app.config["SESSION_COOKIE_SECURE"]
    return "__Host-hongliu_trusted" if secure else "hongliu_trusted"


def trust_token() -> str | None:
    """This browser's trusted-device cookie, if any."""
    return request.cookies.get(trust_cookie_name())


def set_trust_cookie(response: Response, token: str) -> None:
    """Keep the trusted-device token in a long-lived HttpOnly cookie."""
    response.set_cookie(
        trust_cookie_name(),
        token,
        max_age=trust_days() * 86400,
        secure=current_app.config["SESSION_COOKIE_SECURE"],
        httponly=True,
        samesite="Lax",
        path="/",
    )


def needs_second_factor(user: User, methods: list[str]) -> bool:
    """True when this sign-in must still ask for a TOTP code."""
    return "totp" not in methods and second_factor_due(user, trust_token())


def parked_stamp(user: User, methods: list[str]) -> str | None:
    """What a parked sign-in rests on: the password, security phone and email, the WeChat or
    WeCom binding it came through, and the authenticator it waits for (None without one).

    The help desk's lost-device actions (temporary password, 解绑安全手机, 解绑微信, 重置两步验证)
    and a new authenticator each change it, so a sign-in parked before them is void.
    """
    authenticator = authenticator_stamp(user)
    if authenticator is None:
        return None
    parts = [password_stamp(user), credentials_stamp(user), authenticator]
    for provider in methods:
        if provider in PROVIDERS:
            identity = identity_of(user, provider)
            bound = f"{identity.id}:{aware(identity.bound_at).isoformat()}" if identity else "-"
            parts.append(f"{provider}:{bound}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def start_two_step(user: User, methods: list[str], remember: bool, target: str) -> None:
    """Park the sign-in until the code is given; the session starts only after that."""
    flows.start_flow(
        TWO_STEP_FLOW,
        {
            "user_id": user.id,
            "methods": methods,
            "remember": remember,
            "next": target,
            "started_at": utcnow().isoformat(),
            "stamp": parked_stamp(user, methods),
        },
    )


def pending_two_step() -> dict[str, Any] | None:
    """The sign-in waiting for a code in this browser, or None."""
    return flows.load_flow(TWO_STEP_FLOW)


def parked_user(state: dict[str, Any]) -> User | None:
    """The account a parked sign-in is for, while it is active."""
    user_id = state.get("user_id")
    user = db.session.get(User, user_id) if isinstance(user_id, int) else None
    return user if user is not None and user.status == UserStatus.ACTIVE else None


def parked_sign_in_holds(state: dict[str, Any], user: User) -> bool:
    """True while the parked sign-in ``state`` may go on: two-step verification is still on
    and :func:`parked_stamp` unchanged. Never True for a sign-in parked without a code due."""
    stamp = parked_stamp(user, [str(method) for method in state.get("methods") or []])
    return stamp is not None and hmac.compare_digest(str(state.get("stamp")), stamp)
