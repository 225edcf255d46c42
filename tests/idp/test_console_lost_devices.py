"""The help desk's actions for a lost phone, mailbox or authenticator: whoever holds the lost
device must not stay signed in, nor finish a sign-in parked under the old password; account
ids past what a row can hold are a 404, not a 500."""

from __future__ import annotations

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp.directory.models import User
from idp.directory.roles import Role
from tests.idp.conftest import MakeUser, csrf_token, session_count, sign_in
from tests.idp.console_support import (
    confirm_action,
    console_sign_in,
    enable_totp,
    make_console_user,
)


@pytest.fixture
def desk(idp_app: Flask, make_user: MakeUser) -> FlaskClient:
    """A help-desk member's browser, signed in to the console."""
    user, secret = make_console_user(
        idp_app, make_user, Role.HELPDESK, account="9000000001", verified_phone="13700000001"
    )
    client = idp_app.test_client()
    console_sign_in(client, user, secret)
    return client


@pytest.fixture
def student(make_user: MakeUser) -> User:
    return make_user(
        "2024000123",
        name="李四",
        verified_phone="13912345678",
        verified_email="li.si@example.edu.cn",
    )


def _act(user: User, action: str) -> str:
    return f"/admin/users/{user.id}/actions/{action}"


@pytest.mark.parametrize("action", ["unbind-phone", "unbind-email", "reset-totp"])
def test_lost_device_actions_sign_the_account_out_everywhere(
    idp_app: Flask, desk: FlaskClient, student: User, action: str
) -> None:
    """解绑安全手机 / 解绑安全邮箱 / 重置两步验证: the lost device's browser is signed out."""
    secret = enable_totp(idp_app, student)
    lost = idp_app.test_client()
    console_sign_in(lost, student, secret)
    assert lost.get("/security").status_code == 200

    assert confirm_action(desk, _act(student, action), reason="手机丢失").status_code == 302
    assert session_count(idp_app, student) == 0
    assert lost.get("/security").status_code == 302


def test_temporary_password_voids_a_sign_in_parked_at_the_code_page(
    idp_app: Flask, desk: FlaskClient, student: User
) -> None:
    """The old password proven, waiting at 两步验证; the help desk issues a temporary password
    (原密码立即失效): the authenticator code no longer finishes that sign-in."""
    secret = enable_totp(idp_app, student)
    thief = idp_app.test_client()
    assert "/login/verify" in sign_in(thief, student.account).headers["Location"]
    assert (
        confirm_action(desk, _act(student, "temp-password"), reason="密码泄露").status_code == 200
    )

    # The code page is already open in the thief's browser: post it as it stands.
    token = csrf_token(thief, "/login")
    answer = thief.post(
        "/login/verify", data={"csrf_token": token, "code": pyotp.TOTP(secret).now()}
    )
    assert answer.status_code == 302 and answer.location == "/login"
    assert session_count(idp_app, student) == 0
    assert thief.get("/password/change").status_code == 302  # no sign-in waiting there


def test_temporary_password_and_reset_authenticator_void_the_parked_sign_in(
    idp_app: Flask, desk: FlaskClient, student: User
) -> None:
    """With the authenticator reset too, the parked sign-in does not go on without a code."""
    enable_totp(idp_app, student)
    thief = idp_app.test_client()
    assert "/login/verify" in sign_in(thief, student.account).headers["Location"]
    assert confirm_action(desk, _act(student, "temp-password")).status_code == 200
    assert confirm_action(desk, _act(student, "reset-totp")).status_code == 302

    resumed = thief.get("/login/verify")
    assert resumed.status_code == 302 and resumed.location == "/login"
    assert session_count(idp_app, student) == 0


@pytest.mark.parametrize(
    "url",
    ["/admin/users/99999999999999999999999", "/admin/users/2147483648/actions/unlock"],
)
def test_account_id_past_what_a_row_holds_is_not_found(desk: FlaskClient, url: str) -> None:
    assert desk.get(url).status_code == 404
