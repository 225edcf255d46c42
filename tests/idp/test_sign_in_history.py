"""登录记录 tells the truth about sign-ins that stopped at 两步验证.

A password (or SMS code, or WeChat scan) that checked out while the code never came is not a
sign-in: the owner reading 登录记录, and the help desk reading the account page, must see that
someone got past the first factor and no further, not 成功.
"""

from __future__ import annotations

import time

import pyotp
from flask import Flask

from idp.audit.models import AuditEvent
from idp.directory.models import User
from idp.directory.roles import Role
from idp.extensions import db
from tests.idp.conftest import MakeUser, last_code, post_form, sign_in
from tests.idp.console_support import console_sign_in, make_console_user
from tests.idp.mfa_support import STEP
from tests.idp.mfa_support import enable_totp_with_codes as enable


def _sign_ins(app: Flask, user: User) -> list[tuple[str | None, str]]:
    with app.app_context():
        rows = db.session.scalars(
            db.select(AuditEvent)
            .where(AuditEvent.target_id == user.id, AuditEvent.action == "login")
            .order_by(AuditEvent.id)
        )
        return [(row.method, row.outcome) for row in rows]


def _history(page: str) -> str:
    """The 登录记录 table of a page."""
    return page[page.index("登录记录") :]


def _code(secret: str) -> str:
    return pyotp.TOTP(secret).at(time.time() + STEP)  # within drift, unused so far


def test_password_stopped_at_two_step_is_shown_as_waiting_for_it(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """Someone with the password but not the authenticator: 待两步验证, never 成功; the owner's
    own sign-in shows its password row and the code that finished it."""
    user = make_user("2024000001")
    secret, _ = enable(idp_app, user)
    stranger = idp_app.test_client()
    assert sign_in(stranger, "2024000001").location == "/login/verify"
    assert _sign_ins(idp_app, user) == [("password", "pending")]

    owner = idp_app.test_client()
    assert sign_in(owner, "2024000001", next="/security").location == "/login/verify"
    done = post_form(owner, "/login/verify", {"code": _code(secret)})
    assert done.status_code == 302 and done.location == "/security"
    assert _sign_ins(idp_app, user) == [
        ("password", "pending"),
        ("password", "pending"),
        ("totp", "success"),
    ]
    history = _history(owner.get("/security").get_data(as_text=True))
    assert history.count("待两步验证") == 2
    assert history.count("成功") == 1 and "两步验证" in history

    english = owner.get("/security", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Awaiting two-step verification" in english


def test_sign_ins_without_a_second_factor_are_one_success_each(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """Password and SMS sign-ins with no authenticator: one 成功 row each, as before."""
    user = make_user("2024000001")
    assert sign_in(idp_app.test_client(), "2024000001").status_code == 302
    client = idp_app.test_client()
    post_form(client, "/login?tab=sms", {"phone": "13800138000", "send": "1"})
    code = last_code(idp_app, to="13800138000")
    signed_in = post_form(client, "/login?tab=sms", {"phone": "13800138000", "code": code})
    assert signed_in.status_code == 302
    assert _sign_ins(idp_app, user) == [("password", "success"), ("sms", "success")]


def test_sms_sign_in_stopped_at_two_step_is_waiting_too(
    idp_app: Flask, make_user: MakeUser
) -> None:
    user = make_user("2024000001")
    enable(idp_app, user)
    client = idp_app.test_client()
    post_form(client, "/login?tab=sms", {"phone": "13800138000", "send": "1"})
    code = last_code(idp_app, to="13800138000")
    sent = post_form(client, "/login?tab=sms", {"phone": "13800138000", "code": code})
    assert sent.location == "/login/verify"
    assert _sign_ins(idp_app, user) == [("sms", "pending")]


def test_help_desk_sees_the_stopped_sign_in_and_can_filter_for_it(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """The console's account page says 待两步验证, and the audit log can be filtered for it."""
    student = make_user("2024000123", verified_phone="13900005678")
    enable(idp_app, student)
    assert sign_in(idp_app.test_client(), "2024000123").location == "/login/verify"
    desk, secret = make_console_user(
        idp_app, make_user, Role.ADMIN, account="9000000001", verified_phone="13700000001"
    )
    client = idp_app.test_client()
    console_sign_in(client, desk, secret)
    page = client.get(f"/admin/users/{student.id}").get_data(as_text=True)
    assert "待两步验证" in _history(page)
    log = client.get("/admin/audit", query_string={"outcome": "pending"})
    rows = log.get_data(as_text=True)
    assert log.status_code == 200 and "2024000123" in rows
    assert 'value="pending" selected' in rows
