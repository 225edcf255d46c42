"""Review of the account wizards: 找回密码 and 激活账号 left half-way must not outlive the account
they proved (its status, its phone, email and password), and every refused binding is audited."""

from __future__ import annotations

import json

import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp.account.codes import SMS, Channel, CodeError, send_code, stored_code_key
from idp.audit.models import AuditEvent
from idp.directory.models import User, UserStatus
from idp.extensions import db
from shared.factory import get_store
from tests.idp.conftest import (
    MakeUser,
    csrf_token,
    last_code,
    outbox_count,
    post_form,
    session_count,
    sign_in,
)
from tests.idp.wizard_support import NEW_PASSWORD, bind_phone, fresh_user, identify, new_password

PHONE = "13800138000"
EXPIRED = "操作已超时或已在其他页面完成，请重新开始。"
STOPPED = "该账号已被停用或锁定，请联系管理员处理。"


def _change(app: Flask, user: User, **values: object) -> None:
    """Change the account behind the wizard's back (the help desk, another browser)."""
    with app.app_context():
        stored = db.session.get(User, user.id)
        assert stored is not None
        for name, value in values.items():
            setattr(stored, name, value)
        db.session.commit()


def _recover_until_password(app: Flask, client: FlaskClient, account: str, phone: str) -> None:
    assert identify(client, "/recover", account).location == "/recover/verify"
    assert post_form(client, "/recover/verify", {"method": "sms", "send": "1"}).status_code == 200
    done = post_form(client, "/recover/verify", {"method": "sms", "code": last_code(app, to=phone)})
    assert done.status_code == 302 and done.location == "/recover/password"


def _post_password(client: FlaskClient, url: str, token: str, password: str) -> object:
    """The password form as opened before (its token), posted now."""
    return client.post(url, data={"csrf_token": token, "password": password, "confirm": password})


# 找回密码: the account's status ------------------------------------------------------------


@pytest.mark.parametrize("status", [UserStatus.DISABLED, UserStatus.LOCKED])
def test_recovery_of_a_disabled_or_locked_account_is_sent_to_the_help_desk(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser, status: UserStatus
) -> None:
    """An account the help desk stopped cannot get a new password by itself: no code is sent."""
    user = make_user("2024000001", verified_phone=PHONE)
    _change(idp_app, user, status=status)
    response = identify(idp_client, "/recover", "2024000001")
    assert response.status_code == 400
    assert STOPPED in response.get_data(as_text=True)
    assert 'value="2024000001"' in response.get_data(as_text=True)  # what was typed stays
    assert idp_client.get("/recover/verify").location == "/recover"


def test_recovery_stops_when_the_help_desk_disables_the_account_mid_way(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """Disabled (a stolen phone reported) after the code: the new password is not set."""
    user = make_user("2024000001", verified_phone=PHONE)
    _recover_until_password(idp_app, idp_client, "2024000001", PHONE)
    token = csrf_token(idp_client, "/recover/password")
    _change(idp_app, user, status=UserStatus.DISABLED)
    before = fresh_user(idp_app, user).password_hash

    late = _post_password(idp_client, "/recover/password", token, NEW_PASSWORD)
    assert late.status_code == 302 and late.location == "/recover"  # type: ignore[attr-defined]
    assert STOPPED in idp_client.get("/recover").get_data(as_text=True)
    assert fresh_user(idp_app, user).password_hash == before
    assert idp_client.get("/recover/password").location == "/recover"


# 找回密码: what the code proved ------------------------------------------------------------


def test_recovery_proven_by_a_phone_since_unbound_cannot_set_the_password(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """Whoever holds a stolen phone proved it; the owner has the help desk unbind it: the
    recovery waiting at 重置密码 is void."""
    user = make_user("2024000001", verified_phone=PHONE, verified_email="zs@lut.edu.cn")
    thief = idp_app.test_client()
    _recover_until_password(idp_app, thief, "2024000001", PHONE)
    token = csrf_token(thief, "/recover/password")
    _change(idp_app, user, phone=None, phone_verified_at=None)
    before = fresh_user(idp_app, user).password_hash

    late = _post_password(thief, "/recover/password", token, "Thief-Owns-It-2026")
    assert late.status_code == 302 and late.location == "/recover"  # type: ignore[attr-defined]
    assert EXPIRED in thief.get("/recover").get_data(as_text=True)
    assert fresh_user(idp_app, user).password_hash == before


def test_recovery_left_open_is_void_once_the_password_was_reset_elsewhere(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """Two recoveries at 重置密码: the owner's (by email) finishes; the other sets nothing."""
    user = make_user("2024000001", verified_phone=PHONE, verified_email="zs@lut.edu.cn")
    thief, owner = idp_app.test_client(), idp_app.test_client()
    _recover_until_password(idp_app, thief, "2024000001", PHONE)
    token = csrf_token(thief, "/recover/password")

    assert identify(owner, "/recover", "2024000001").location == "/recover/verify"
    post_form(owner, "/recover/verify", {"method": "email", "send": "1"})
    code = last_code(idp_app, kind="mail", to="zs@lut.edu.cn")
    assert post_form(owner, "/recover/verify", {"method": "email", "code": code}).location == (
        "/recover/password"
    )
    assert new_password(owner, "/recover/password").location == "/login"
    owners = fresh_user(idp_app, user).password_hash

    late = _post_password(thief, "/recover/password", token, "Thief-Owns-It-2026")
    assert late.status_code == 302 and late.location == "/recover"  # type: ignore[attr-defined]
    assert fresh_user(idp_app, user).password_hash == owners
    assert sign_in(idp_app.test_client(), "2024000001", NEW_PASSWORD).status_code == 302


# 激活账号: the phone this activation bound -------------------------------------------------


def test_activation_does_not_finish_with_a_phone_another_browser_bound_since(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """The owner bound a phone; someone with the same details binds theirs in another
    browser: the owner's password step starts over instead of activating the account with a
    security phone (and so SMS sign-in) that is not the owner's."""
    user = make_user("2024000001", pending=True, verified_phone=None)
    owner, other = idp_app.test_client(), idp_app.test_client()
    assert identify(owner, "/activate", "2024000001").location == "/activate/phone"
    assert bind_phone(idp_app, owner, "/activate/phone", "13900001111").location == (
        "/activate/password"
    )
    token = csrf_token(owner, "/activate/password")
    assert identify(other, "/activate", "2024000001").location == "/activate/phone"
    assert bind_phone(idp_app, other, "/activate/phone", "13700007777").location == (
        "/activate/password"
    )

    late = _post_password(owner, "/activate/password", token, NEW_PASSWORD)
    assert late.status_code == 302 and late.location == "/activate"  # type: ignore[attr-defined]
    assert EXPIRED in owner.get("/activate").get_data(as_text=True)
    assert fresh_user(idp_app, user).status == UserStatus.PENDING


def test_activation_still_finishes_in_the_browser_that_bound_the_phone(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """Its own binding does not void the activation: 激活成功, and the phone is the one bound."""
    user = make_user("2024000001", pending=True, verified_phone=None)
    assert identify(idp_client, "/activate", "2024000001").location == "/activate/phone"
    assert bind_phone(idp_app, idp_client, "/activate/phone", "13900001111").location == (
        "/activate/password"
    )
    assert new_password(idp_client, "/activate/password").status_code == 200
    after = fresh_user(idp_app, user)
    assert after.status == UserStatus.ACTIVE and after.phone == "13900001111"


# Audit -------------------------------------------------------------------------------------


@pytest.mark.parametrize("wizard", ["activate", "complete"])
def test_a_phone_refused_as_another_accounts_is_audited_in_the_wizards(
    idp_app: Flask, make_user: MakeUser, wizard: str
) -> None:
    """As in 安全中心: a proven phone refused because another account has it is a
    ``phone.bind`` failure in the audit log."""
    make_user("2024000009", verified_phone=PHONE)
    client = idp_app.test_client()
    if wizard == "activate":
        user = make_user("2024000001", pending=True, verified_phone=None)
        assert identify(client, "/activate", "2024000001").location == "/activate/phone"
        url = "/activate/phone"
    else:
        user = make_user("2024000001", verified_phone=None)
        assert sign_in(client, "2024000001").location == "/complete"
        assert identify(client, "/complete?start=1", "2024000001").location == "/complete"
        url = "/complete"
    refused = bind_phone(idp_app, client, url, PHONE)
    assert refused.status_code == 400
    assert "该手机号已是其他账号的安全手机" in refused.get_data(as_text=True)
    with idp_app.app_context():
        rows = db.session.scalars(
            db.select(AuditEvent).where(
                AuditEvent.action == "phone.bind", AuditEvent.outcome == "failure"
            )
        ).all()
        assert [(row.actor_id, json.loads(row.detail or "{}").get("reason")) for row in rows] == [
            (user.id, "taken")
        ]
    assert fresh_user(idp_app, user).phone_verified_at is None
    assert session_count(idp_app, user) == 0


# Codes: a refusal leaves no wait behind ----------------------------------------------------


def test_a_code_refused_for_the_day_is_not_said_to_be_sent_when_asked_again(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """Past the daily limit, asking again at once repeats the limit: it never says a code was
    sent (验证码已发送，请 N 秒后…) when none was."""
    make_user("2024000001", verified_phone=PHONE)
    idp_app.config["CODE_DAILY_LIMIT"] = 1
    assert identify(idp_client, "/recover", "2024000001").location == "/recover/verify"
    assert post_form(idp_client, "/recover/verify", {"method": "sms", "send": "1"}).status_code == (
        200
    )
    with idp_app.app_context():
        get_store().delete(f"code-wait:{stored_code_key('recovery', Channel(SMS, PHONE), None)}")
    sent = outbox_count(idp_app)
    for _ in range(2):
        refused = post_form(idp_client, "/recover/verify", {"method": "sms", "send": "1"})
        page = refused.get_data(as_text=True)
        assert refused.status_code == 429
        assert "今日获取验证码次数已达上限" in page and "秒后再重新获取" not in page
    assert outbox_count(idp_app) == sent


def test_a_code_refused_for_a_captcha_costs_neither_the_day_nor_a_wait(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """Refused for want of a CAPTCHA (a request that raced past the page's own check): once
    the CAPTCHA is answered the code is sent at once, and the refusal used none of the day's."""
    user = make_user("2024000001", verified_phone=PHONE)
    idp_app.config.update(CODE_DAILY_LIMIT=1, CODE_IP_CAPTCHA_AFTER=0)
    channel = Channel(SMS, PHONE)
    with idp_app.test_request_context("/recover/verify"):
        stored = db.session.get(User, user.id)
        with pytest.raises(CodeError) as refused:
            send_code("recovery", channel, stored)
        assert "图形验证码" in refused.value.message
        idp_app.config["CODE_IP_CAPTCHA_AFTER"] = 100  # answered
        send_code("recovery", channel, stored)
    assert last_code(idp_app, to=PHONE)
