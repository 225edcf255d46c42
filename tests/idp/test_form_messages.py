"""Over-long and tampered form values: refused with a Chinese message on the page, never with
WTForms' English defaults or a silent 400."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.form_fuzz import ENGLISH_DEFAULTS  # what werkzeug and WTForms say by themselves
from tests.idp.conftest import ID_NUMBER, PASSWORD, MakeUser, post_form, sign_in

IDENTITY = {"account": "2024000001", "name": "张三", "id_number": ID_NUMBER}


def _anonymous(app: Flask, client: FlaskClient) -> None:
    pass


def _at_recovery_verification(app: Flask, client: FlaskClient) -> None:
    assert post_form(client, "/recover", IDENTITY).location == "/recover/verify"


def _signed_in(app: Flask, client: FlaskClient) -> None:
    assert sign_in(client, "2024000001").status_code == 302


Setup = Callable[[Flask, FlaskClient], None]


@pytest.mark.parametrize(
    ("setup", "url", "data", "status", "message"),
    [
        pytest.param(
            _anonymous,
            "/login?tab=sms",
            {"phone": "13800138000", "code": "123 456"},
            400,
            "验证码为 6 位数字",
            id="sms-login-code-with-space",
        ),
        pytest.param(
            _anonymous,
            "/login",
            {"identifier": "2" * 65, "password": "x"},
            400,  # no sign-in was tried: not a refused one
            "最多可输入 64 个字符",
            id="login-identifier-too-long",
        ),
        pytest.param(
            _anonymous,
            "/login",
            {"identifier": "", "password": "x"},
            400,
            "请输入学工号、手机号或证件号",
            id="login-identifier-empty",
        ),
        pytest.param(
            _anonymous,
            "/activate",
            {**IDENTITY, "id_number": "1" * 33},
            400,
            "最多可输入 32 个字符",
            id="activation-id-number-too-long",
        ),
        pytest.param(
            _anonymous,
            "/recover",
            {**IDENTITY, "captcha": "123456789"},
            400,
            "请输入正确的图形验证码",
            id="recovery-captcha-too-long",
        ),
        pytest.param(
            _at_recovery_verification,
            "/recover/verify",
            {"method": "email", "send": "1"},
            400,
            "请选择页面上列出的验证方式",
            id="recovery-method-not-offered",
        ),
        pytest.param(
            _at_recovery_verification,
            "/recover/verify",
            {"method": "sms", "code": "1234567"},
            400,
            "验证码为 6 位数字",
            id="recovery-code-too-long",
        ),
        pytest.param(
            _signed_in,
            "/security/phone",
            {"method": "password", "password": PASSWORD},
            400,
            "请选择页面上列出的验证方式",
            id="security-method-tampered",
        ),
    ],
)
def test_overlong_or_tampered_value_gets_a_chinese_message(
    idp_app: Flask,
    make_user: MakeUser,
    setup: Setup,
    url: str,
    data: dict[str, Any],
    status: int,
    message: str,
) -> None:
    """Each refused value is named in Chinese next to its field, with a 4xx status."""
    make_user("2024000001", verified_phone="13800138000")
    client = idp_app.test_client()
    setup(idp_app, client)
    response = post_form(client, url, data)
    page = response.get_data(as_text=True)
    assert response.status_code == status
    assert f'role="alert">{message}</p>' in page
    for english in ENGLISH_DEFAULTS:
        assert english not in page
