"""Codes typed in full width — a Chinese IME's default, １２３４５６ — are the same codes: an SMS
sign-in, a two-step code and a recovery code all go through instead of counting as wrong."""

from __future__ import annotations

import time

import pyotp
from flask import Flask
from flask.testing import FlaskClient

from idp.directory.models import User
from idp.extensions import db
from idp.mfa import operations as mfa
from tests.idp.conftest import MakeUser, last_code, post_form
from tests.idp.mfa_support import enable_totp_with_codes

FULL_WIDTH = str.maketrans(
    "0123456789abcdefghijklmnopqrstuvwxyz-",
    "０１２３４５６７８９ａｂｃｄｅｆｇｈｉｊｋｌｍｎｏｐｑｒｓｔｕｖｗｘｙｚ－",
)


def full_width(text: str) -> str:
    """``text`` as a Chinese IME in full-width mode types it."""
    return text.translate(FULL_WIDTH)


def test_sms_sign_in_with_a_full_width_code(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """短信登录 with the code typed as １２３４５６ signs in."""
    make_user("2024000001", verified_phone="13800138000")
    post_form(idp_client, "/login?tab=sms", {"phone": "13800138000", "send": "1"})
    code = last_code(idp_app, to="13800138000")
    answer = post_form(
        idp_client, "/login?tab=sms", {"phone": "13800138000", "code": full_width(code)}
    )
    assert answer.status_code == 302


def test_two_step_and_recovery_codes_in_full_width(idp_app: Flask, make_user: MakeUser) -> None:
    """The authenticator's code and a recovery code typed in full width are accepted."""
    user = make_user()
    secret, codes = enable_totp_with_codes(idp_app, user)
    now = time.time()
    with idp_app.test_request_context():
        fresh = db.session.get(User, user.id)
        assert fresh is not None
        mfa.verify_totp(fresh, full_width(pyotp.TOTP(secret).at(now)), at=now)
        assert mfa.use_recovery_code(fresh, full_width(codes[0])) == 9
        db.session.commit()
