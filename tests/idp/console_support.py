"""Helpers of the console tests: console users with roles and TOTP, signing them in fully."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pyotp
from flask import Flask
from flask.testing import FlaskClient

from idp.audit.models import AuditEvent
from idp.directory.models import User
from idp.directory.roles import Role, grant_role
from idp.extensions import db
from idp.mfa import operations as mfa
from tests.idp.conftest import MakeUser, post_form, sign_in

STEP = 30


def enable_totp(app: Flask, user: User) -> str:
    """Turn TOTP on for ``user`` (the first code from a minute ago); returns the secret."""
    with app.test_request_context():
        fresh = db.session.get(User, user.id)
        assert fresh is not None
        secret = mfa.enrolment_secret(fresh)
        db.session.commit()
        earlier = time.time() - 2 * STEP
        mfa.confirm_enrolment(fresh, pyotp.TOTP(secret).at(earlier), at=earlier)
        db.session.commit()
    return secret


def give_role(app: Flask, user: User, role: Role) -> None:
    """Grant ``role`` as the command line does."""
    with app.app_context():
        fresh = db.session.get(User, user.id)
        assert fresh is not None
        grant_role(fresh, role)
        db.session.commit()


def make_console_user(
    app: Flask, make_user: MakeUser, role: Role, *, totp: bool = True, **overrides: Any
) -> tuple[User, str | None]:
    """A help-desk or admin account (with TOTP on unless told otherwise); returns (user, secret)."""
    overrides.setdefault("name", "服务台" if role is Role.HELPDESK else "管理员")
    user = make_user(**overrides)
    give_role(app, user, role)
    return user, (enable_totp(app, user) if totp else None)


def console_sign_in(client: FlaskClient, user: User, secret: str | None) -> None:
    """Sign in with password and, when asked, the authenticator code (as staff do)."""
    response = sign_in(client, user.account)
    assert response.status_code in (302, 303), response.get_data(as_text=True)[:500]
    if secret is not None and "/login/verify" in response.headers["Location"]:
        verified = post_form(client, "/login/verify", {"code": pyotp.TOTP(secret).now()})
        assert verified.status_code in (302, 303), verified.get_data(as_text=True)[:500]


def confirm_nonce(page: str) -> str:
    """The single-use nonce of a confirmation page."""
    match = re.search(r'name="nonce"[^>]*value="([^"]+)"', page) or re.search(
        r'value="([^"]+)"[^>]*name="nonce"', page
    )
    assert match, "no nonce on the confirmation page"
    return match.group(1)


def confirm_action(
    client: FlaskClient, url: str, reason: str = "本人到服务台办理", **extra: Any
) -> Any:
    """Open a confirmation page and submit it with a reason and the box ticked."""
    page = client.get(url)
    assert page.status_code == 200, page.get_data(as_text=True)[:500]
    text = page.get_data(as_text=True)
    data = {
        "csrf_token": csrf_token_from(text),
        "nonce": confirm_nonce(text),
        "reason": reason,
        "confirm": "y",
        **extra,
    }
    return client.post(url, data=data)


def csrf_token_from(page: str) -> str:
    """The CSRF token of a page already fetched."""
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert match, "no CSRF token"
    return match.group(1)


def events(app: Flask, action: str, **where: Any) -> list[dict[str, Any]]:
    """The audit events named ``action`` (filtered on columns), oldest first, as dicts."""
    with app.app_context():
        query = db.select(AuditEvent).where(AuditEvent.action == action)
        for column, value in where.items():
            query = query.where(getattr(AuditEvent, column) == value)
        rows = db.session.scalars(query.order_by(AuditEvent.id))
        return [
            {
                "actor_id": row.actor_id,
                "target_id": row.target_id,
                "outcome": row.outcome,
                "ip": row.ip,
                "at": row.at,
                "detail": json.loads(row.detail) if row.detail else {},
            }
            for row in rows
        ]
