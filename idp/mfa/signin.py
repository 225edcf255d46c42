"""Where two-step verification meets sign-in: the pending-verification flow and the cookie of a
trusted device. Used by :func:`idp.auth.views.continue_sign_in` before any session starts."""

from __future__ import annotations

from typing import Any

from flask import current_app, request
from werkzeug.wrappers import Response

from idp.account import flows
from idp.auth.operations import password_stamp
from idp.directory.models import User, utcnow
from idp.mfa.operations import second_factor_due, trust_days

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
            "stamp": password_stamp(user),
        },
    )


def pending_two_step() -> dict[str, Any] | None:
    """The sign-in waiting for a code in this browser, or None."""
    return flows.load_flow(TWO_STEP_FLOW)
