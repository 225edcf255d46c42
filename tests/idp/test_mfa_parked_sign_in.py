"""A sign-in parked at 两步验证 (first factor proven, waiting for the code) holds only while what
it proved and what it waits for are unchanged: the help desk's lost-device actions, a new
authenticator or 两步验证 turned off void it, and it never finishes without a second factor."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp.directory.models import User
from idp.directory.roles import Role
from idp.extensions import db
from idp.mfa import operations as mfa
from tests.idp.conftest import (
    MakeUser,
    csrf_token,
    last_code,
    post_form,
    session_count,
    sign_in,
)
from tests.idp.console_support import (
    confirm_action,
    console_sign_in,
    enable_totp,
    make_console_user,
)
from tests.idp.mfa_support import park_with_wechat

STUDENT = "2024000123"
PHONE = "13912345678"
VOID = "登录方式或安全设置已变更，本次登录已失效，请重新登录。"


def _desk(app: Flask, make_user: MakeUser) -> FlaskClient:
    user, secret = make_console_user(
        app, make_user, Role.HELPDESK, account="9000000001", verified_phone="13700000001"
    )
    client = app.test_client()
    console_sign_in(client, user, secret)
    return client


def _report_lost_phone(desk: FlaskClient, student: User, *actions: str) -> None:
    """The owner calls the help desk, which runs each lost-device action in turn."""
    for action in actions:
        done = confirm_action(desk, f"/admin/users/{student.id}/actions/{action}", "手机丢失")
        assert done.status_code == 302, action


def _assert_void(app: Flask, client: FlaskClient, student: User) -> None:
    """The parked sign-in sends its browser to /login, says why, and starts no session."""
    resumed = client.get("/login/verify")
    assert resumed.status_code == 302 and resumed.location == "/login"
    assert VOID in client.get("/login").get_data(as_text=True)
    assert session_count(app, student) == 0
    assert client.get("/login/verify").location == "/login"  # the flow is gone


@pytest.fixture
def wechat_app(make_idp: Any) -> Iterator[tuple[Flask, Any]]:
    from tests.fakes.wechat import FakeWeChat

    with FakeWeChat() as fake:
        yield make_idp(**fake.settings(timeout=0.5)), fake


def _park_with_wechat(app: Flask, fake: Any, student: User) -> FlaskClient:
    """Bind a WeChat to ``student`` and scan it on a fresh browser up to the code page."""
    from tests.fakes.wechat import WeChatUser

    return park_with_wechat(
        app, fake, student, WeChatUser("o-lost-openid", "u-lost-unionid", "小明")
    )


def _park_with_sms(app: Flask) -> FlaskClient:
    client = app.test_client()
    post_form(client, "/login?tab=sms", {"phone": PHONE, "send": "1"})
    code = last_code(app, to=PHONE)
    parked = post_form(client, "/login?tab=sms", {"phone": PHONE, "code": code})
    assert parked.location == "/login/verify"
    return client


@pytest.mark.parametrize("also_reset", [False, True])
def test_unbinding_the_wechat_voids_a_sign_in_parked_by_it(
    wechat_app: tuple[Flask, Any], make_user: MakeUser, also_reset: bool
) -> None:
    """Lost phone: 解绑微信 (and 重置两步验证) void the sign-in its WeChat parked at 两步验证."""
    app, fake = wechat_app
    student = make_user(STUDENT, verified_phone=PHONE)
    enable_totp(app, student)
    desk = _desk(app, make_user)
    thief = _park_with_wechat(app, fake, student)
    _report_lost_phone(desk, student, "unbind-wechat", *(["reset-totp"] if also_reset else []))
    _assert_void(app, thief, student)


@pytest.mark.parametrize("also_reset", [False, True])
def test_unbinding_the_phone_voids_a_sign_in_parked_by_its_sms(
    idp_app: Flask, make_user: MakeUser, also_reset: bool
) -> None:
    """Lost phone: 解绑安全手机 (and 重置两步验证) void the sign-in its SMS parked at 两步验证."""
    student = make_user(STUDENT, verified_phone=PHONE)
    enable_totp(idp_app, student)
    desk = _desk(idp_app, make_user)
    thief = _park_with_sms(idp_app)
    _report_lost_phone(desk, student, "unbind-phone", *(["reset-totp"] if also_reset else []))
    _assert_void(idp_app, thief, student)


def test_resetting_the_authenticator_voids_a_parked_sign_in(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """重置两步验证 alone: the sign-in parked for the old authenticator does not go on without
    a code (it used to start a session with the first factor only)."""
    student = make_user(STUDENT, verified_phone=PHONE)
    enable_totp(idp_app, student)
    desk = _desk(idp_app, make_user)
    parked = idp_app.test_client()
    assert sign_in(parked, STUDENT).location == "/login/verify"
    _report_lost_phone(desk, student, "reset-totp")
    _assert_void(idp_app, parked, student)


def test_a_new_authenticator_voids_a_sign_in_parked_for_the_old_one(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """Reset and enrolled again: the new app's code does not finish the old parked sign-in."""
    student = make_user(STUDENT, verified_phone=PHONE)
    enable_totp(idp_app, student)
    parked = idp_app.test_client()
    assert sign_in(parked, STUDENT).location == "/login/verify"
    with idp_app.test_request_context():
        fresh = db.session.get(User, student.id)
        assert fresh is not None
        mfa.reset_totp(fresh, actor=fresh, reason="测试")
        db.session.commit()
    secret = enable_totp(idp_app, student)
    # The code page is already open in that browser: post it as it stands (a GET would void it).
    code = pyotp.TOTP(secret).at(time.time())
    refused = parked.post(
        "/login/verify", data={"csrf_token": csrf_token(parked, "/login"), "code": code}
    )
    assert refused.status_code == 302 and refused.location == "/login"
    assert session_count(idp_app, student) == 0


def test_an_untouched_parked_sign_in_still_finishes(idp_app: Flask, make_user: MakeUser) -> None:
    """Nothing changed meanwhile: the code finishes the parked SMS sign-in as before."""
    student = make_user(STUDENT, verified_phone=PHONE)
    secret = enable_totp(idp_app, student)
    parked = _park_with_sms(idp_app)
    assert parked.get("/login/verify").status_code == 200
    done = post_form(parked, "/login/verify", {"code": pyotp.TOTP(secret).now()})
    assert done.status_code == 302 and done.location == "/"
    assert session_count(idp_app, student) == 1
