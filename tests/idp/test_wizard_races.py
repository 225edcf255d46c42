"""Wizards overtaken by another browser: an activation or completion left part-way must not
bind a phone or set a password once the account moved on; completion signs out the rest."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from idp.directory.models import User, UserStatus, utcnow
from idp.extensions import db
from tests.idp.conftest import (
    ID_NUMBER,
    PASSWORD,
    MakeUser,
    csrf_token,
    last_code,
    post_form,
    session_count,
    sign_in,
)

NEW_PASSWORD = "Willow-Creek-2025"
ALREADY_ACTIVE = "该账号已激活，请直接登录；忘记密码请使用“忘记密码”。"
PHONE_CHANGED = "您的安全手机已在其他页面绑定或更换，请重新登录。"


def _user(app: Flask, user: User) -> User:
    with app.app_context():
        fresh = db.session.get(User, user.id)
        assert fresh is not None
        db.session.expunge(fresh)
        return fresh


def _identify(client: FlaskClient, url: str, account: str) -> Any:
    return post_form(client, url, {"account": account, "name": "张三", "id_number": ID_NUMBER})


def _send_code(client: FlaskClient, url: str, phone: str) -> None:
    sent = post_form(client, url, {"phone": phone, "send": "1"})
    assert sent.status_code == 200, sent.get_data(as_text=True)


def _bind_phone(app: Flask, client: FlaskClient, url: str, phone: str) -> Any:
    _send_code(client, url, phone)
    return post_form(client, url, {"phone": phone, "code": last_code(app, to=phone)})


def _new_password(client: FlaskClient, url: str, password: str = NEW_PASSWORD) -> Any:
    return post_form(client, url, {"password": password, "confirm": password})


def _set_phone(app: Flask, user: User, phone: str | None) -> None:
    """Bind or unbind the security phone behind the wizard's back (help desk, security centre)."""
    with app.app_context():
        fresh = db.session.get(User, user.id)
        assert fresh is not None
        fresh.phone, fresh.phone_verified_at = phone, utcnow() if phone else None
        db.session.commit()


# 激活账号 ---------------------------------------------------------------------------------


def test_abandoned_activation_cannot_replace_phone_of_activated_account(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """Step 2 left open while the owner activates elsewhere: its code binds nothing."""
    user = make_user("2024000001", pending=True, verified_phone=None)
    stale, owner = idp_app.test_client(), idp_app.test_client()
    assert _identify(stale, "/activate", "2024000001").location == "/activate/phone"
    _send_code(stale, "/activate/phone", "13700007777")
    stale_code = last_code(idp_app, to="13700007777")

    assert _identify(owner, "/activate", "2024000001").location == "/activate/phone"
    assert _bind_phone(idp_app, owner, "/activate/phone", "13900001111").location == (
        "/activate/password"
    )
    assert _new_password(owner, "/activate/password").status_code == 200
    assert _user(idp_app, user).status == UserStatus.ACTIVE

    # Posted from the page opened before (its token; opening it again would already refuse).
    token = csrf_token(stale, "/activate")
    late = stale.post(
        "/activate/phone",
        data={"csrf_token": token, "phone": "13700007777", "code": stale_code},
    )
    assert late.status_code == 302 and late.location == "/login"
    assert ALREADY_ACTIVE in stale.get("/login").get_data(as_text=True)
    after = _user(idp_app, user)
    assert after.status == UserStatus.ACTIVE and after.phone == "13900001111"
    # The flow is gone: neither step 2 nor step 3 opens again.
    assert stale.get("/activate/phone").location == "/activate"
    assert stale.get("/activate/password").location == "/activate"


def test_abandoned_activation_password_step_is_closed_once_activated(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """Step 3 left open while the owner activates elsewhere: the page itself says sign in."""
    make_user("2024000001", pending=True, verified_phone=None)
    stale, owner = idp_app.test_client(), idp_app.test_client()
    for client, phone in ((stale, "13700007777"), (owner, "13900001111")):
        assert _identify(client, "/activate", "2024000001").location == "/activate/phone"
        assert _bind_phone(idp_app, client, "/activate/phone", phone).location == (
            "/activate/password"
        )
    assert _new_password(owner, "/activate/password").status_code == 200

    page = stale.get("/activate/password")
    assert page.status_code == 302 and page.location == "/login"
    assert ALREADY_ACTIVE in stale.get("/login").get_data(as_text=True)


# 信息完善 ---------------------------------------------------------------------------------


def test_completion_left_at_phone_step_cannot_replace_phone_bound_elsewhere(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """Two browsers completing: once one binds its phone, the other's code binds nothing."""
    user = make_user("2024000001", verified_phone=None)
    first, second = idp_app.test_client(), idp_app.test_client()
    for client in (first, second):
        assert sign_in(client, "2024000001").location == "/complete"
        assert _identify(client, "/complete?start=1", "2024000001").location == "/complete"
    _send_code(second, "/complete", "13700007777")
    second_code = last_code(idp_app, to="13700007777")

    assert _bind_phone(idp_app, first, "/complete", "13900001111").location == "/complete"

    token = csrf_token(second, "/login")
    late = second.post(
        "/complete", data={"csrf_token": token, "phone": "13700007777", "code": second_code}
    )
    assert late.status_code == 302 and late.location == "/login"
    assert PHONE_CHANGED in second.get("/login").get_data(as_text=True)
    assert _user(idp_app, user).phone == "13900001111"
    assert second.get("/complete").location == "/login"  # the parked sign-in is gone too
    # The first browser's own binding does not stop it: it finishes and signs in.
    assert _new_password(first, "/complete").location == "/"


def test_completion_password_step_stops_when_phone_changed_elsewhere(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """The phone this completion bound is replaced (security centre) before its password."""
    user = make_user("2024000001", verified_phone=None)
    client = idp_app.test_client()
    assert sign_in(client, "2024000001").location == "/complete"
    assert _identify(client, "/complete?start=1", "2024000001").location == "/complete"
    assert _bind_phone(idp_app, client, "/complete", "13900001111").location == "/complete"
    _set_phone(idp_app, user, "13600136000")
    before = _user(idp_app, user).password_hash

    token = csrf_token(client, "/login")
    late = client.post(
        "/complete",
        data={"csrf_token": token, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD},
    )
    assert late.status_code == 302 and late.location == "/login"
    assert PHONE_CHANGED in client.get("/login").get_data(as_text=True)
    assert _user(idp_app, user).password_hash == before
    assert session_count(idp_app, user) == 0


def test_completion_signs_out_the_lost_phones_other_sessions(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """A lost phone unbound by the help desk: completing on a new device ends its session."""
    user = make_user("2024000001", verified_phone="13800138000")
    lost = idp_app.test_client()
    assert sign_in(lost, "2024000001", remember="y").status_code == 302
    assert lost.get("/security").status_code == 200
    _set_phone(idp_app, user, None)

    device = idp_app.test_client()
    assert sign_in(device, "2024000001", PASSWORD, next="/security").location == "/complete"
    assert _identify(device, "/complete?start=1", "2024000001").location == "/complete"
    assert _bind_phone(idp_app, device, "/complete", "13900001111").location == "/complete"
    done = _new_password(device, "/complete")
    assert done.status_code == 302 and done.location == "/security"

    assert device.get("/security").status_code == 200
    assert session_count(idp_app, user) == 1
    stale = lost.get("/security")
    assert stale.status_code == 302 and stale.location.startswith("/login")
