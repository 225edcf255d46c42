"""Wizards overtaken by another browser: an activation or completion left part-way must not
bind a phone or set a password once the account moved on; completion signs out the rest."""

from __future__ import annotations

from flask import Flask

from idp.directory.models import User, UserStatus, utcnow
from idp.extensions import db
from tests.idp.conftest import (
    PASSWORD,
    MakeUser,
    csrf_token,
    last_code,
    session_count,
    sign_in,
)
from tests.idp.wizard_support import (
    NEW_PASSWORD,
    bind_phone,
    fresh_user,
    identify,
    new_password,
    send_phone_code,
)

ALREADY_ACTIVE = "该账号已激活，请直接登录；忘记密码请使用“忘记密码”。"
PHONE_CHANGED = "您的安全手机已在其他页面绑定或更换，请重新登录。"


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
    assert identify(stale, "/activate", "2024000001").location == "/activate/phone"
    send_phone_code(stale, "/activate/phone", "13700007777")
    stale_code = last_code(idp_app, to="13700007777")

    assert identify(owner, "/activate", "2024000001").location == "/activate/phone"
    assert bind_phone(idp_app, owner, "/activate/phone", "13900001111").location == (
        "/activate/password"
    )
    assert new_password(owner, "/activate/password").status_code == 200
    assert fresh_user(idp_app, user).status == UserStatus.ACTIVE

    # Posted from the page opened before (its token; opening it again would already refuse).
    token = csrf_token(stale, "/activate")
    late = stale.post(
        "/activate/phone",
        data={"csrf_token": token, "phone": "13700007777", "code": stale_code},
    )
    assert late.status_code == 302 and late.location == "/login"
    assert ALREADY_ACTIVE in stale.get("/login").get_data(as_text=True)
    after = fresh_user(idp_app, user)
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
        assert identify(client, "/activate", "2024000001").location == "/activate/phone"
        assert bind_phone(idp_app, client, "/activate/phone", phone).location == (
            "/activate/password"
        )
    assert new_password(owner, "/activate/password").status_code == 200

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
        assert identify(client, "/complete?start=1", "2024000001").location == "/complete"
    send_phone_code(second, "/complete", "13700007777")
    second_code = last_code(idp_app, to="13700007777")

    assert bind_phone(idp_app, first, "/complete", "13900001111").location == "/complete"

    token = csrf_token(second, "/login")
    late = second.post(
        "/complete", data={"csrf_token": token, "phone": "13700007777", "code": second_code}
    )
    assert late.status_code == 302 and late.location == "/login"
    assert PHONE_CHANGED in second.get("/login").get_data(as_text=True)
    assert fresh_user(idp_app, user).phone == "13900001111"
    assert second.get("/complete").location == "/login"  # the parked sign-in is gone too
    # The first browser's own binding does not stop it: it finishes and signs in.
    assert new_password(first, "/complete").location == "/"


def test_completion_password_step_stops_when_phone_changed_elsewhere(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """The phone this completion bound is replaced (security centre) before its password."""
    user = make_user("2024000001", verified_phone=None)
    client = idp_app.test_client()
    assert sign_in(client, "2024000001").location == "/complete"
    assert identify(client, "/complete?start=1", "2024000001").location == "/complete"
    assert bind_phone(idp_app, client, "/complete", "13900001111").location == "/complete"
    _set_phone(idp_app, user, "13600136000")
    before = fresh_user(idp_app, user).password_hash

    token = csrf_token(client, "/login")
    late = client.post(
        "/complete",
        data={"csrf_token": token, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD},
    )
    assert late.status_code == 302 and late.location == "/login"
    assert PHONE_CHANGED in client.get("/login").get_data(as_text=True)
    assert fresh_user(idp_app, user).password_hash == before
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
    assert identify(device, "/complete?start=1", "2024000001").location == "/complete"
    assert bind_phone(idp_app, device, "/complete", "13900001111").location == "/complete"
    done = new_password(device, "/complete")
    assert done.status_code == 302 and done.location == "/security"

    assert device.get("/security").status_code == 200
    assert session_count(idp_app, user) == 1
    stale = lost.get("/security")
    assert stale.status_code == 302 and stale.location.startswith("/login")
