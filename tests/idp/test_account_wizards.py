"""激活账号, 信息完善 and 找回密码 (manual 2.1.1–2.1.3, chapter 3): every page and every failure."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp.audit.models import AuditEvent
from idp.directory.models import User, UserStatus
from idp.extensions import db
from tests.idp.conftest import (
    ID_NUMBER,
    PASSWORD,
    MakeUser,
    csrf_token,
    last_code,
    outbox_count,
    post_form,
    session_count,
    sign_in,
    solve_captcha,
)
from tests.idp.wizard_support import (
    NEW_PASSWORD,
    bind_phone,
    fresh_user,
    identify,
    new_password,
)

OTHER_ID_NUMBER = "11010519491231002X"
MISMATCH = "您输入的信息与学校登记的信息不一致，请核对后重试。"
EXPIRED = "操作已超时或已在其他页面完成，请重新开始。"
WRONG_CODE = "验证码错误或已过期，请重新获取。"
CAPTCHA_WRONG = "请输入正确的图形验证码"


def _activate_until_password(
    app: Flask, client: FlaskClient, account: str, phone: str = "13900001111"
) -> None:
    assert identify(client, "/activate", account).location == "/activate/phone"
    assert bind_phone(app, client, "/activate/phone", phone).location == "/activate/password"


def _recover_until_password(app: Flask, client: FlaskClient, account: str, phone: str) -> None:
    assert identify(client, "/recover", account).location == "/recover/verify"
    post_form(client, "/recover/verify", {"method": "sms", "send": "1"})
    done = post_form(client, "/recover/verify", {"method": "sms", "code": last_code(app, to=phone)})
    assert done.status_code == 302 and done.location == "/recover/password"


# 激活账号 ---------------------------------------------------------------------------------


def test_new_student_activates_account_with_sms_code(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """激活账号: identity → security phone by SMS code → password → 激活成功，去登录."""
    user = make_user("2024000001", pending=True, verified_phone=None)
    start = idp_client.get("/activate")
    assert start.status_code == 200 and start.headers["Cache-Control"] == "no-store"
    assert "基础信息验证" in start.get_data(as_text=True)

    identified = identify(idp_client, "/activate", "2024000001")
    assert identified.status_code == 302 and identified.location == "/activate/phone"
    assert "绑定安全手机" in idp_client.get("/activate/phone").get_data(as_text=True)

    sent = post_form(idp_client, "/activate/phone", {"phone": "139 0000 1111", "send": "1"})
    assert sent.status_code == 200
    assert "验证码已发送至 139****1111" in sent.get_data(as_text=True)
    code = last_code(idp_app, to="13900001111")
    bound = post_form(idp_client, "/activate/phone", {"phone": "13900001111", "code": code})
    assert bound.status_code == 302 and bound.location == "/activate/password"
    assert "完成激活" in idp_client.get("/activate/password").get_data(as_text=True)

    done = new_password(idp_client, "/activate/password")
    page = done.get_data(as_text=True)
    assert done.status_code == 200
    assert "激活成功" in page and "去登录" in page and "2024000001" in page
    activated = fresh_user(idp_app, user)
    assert activated.status == UserStatus.ACTIVE
    assert activated.phone == "13900001111" and activated.phone_verified_at is not None

    signed_in = sign_in(idp_app.test_client(), "2024000001", NEW_PASSWORD, next="/security")
    assert signed_in.status_code == 302 and signed_in.location == "/security"
    assert sign_in(idp_app.test_client(), "2024000001", PASSWORD).status_code == 401


def test_activation_wrong_name_id_or_account_get_the_same_answer(
    idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """A wrong name, a wrong ID number and an unknown account give one message and status."""
    make_user("2024000001", pending=True, verified_phone=None)
    wrong_name = identify(idp_client, "/activate", "2024000001", name="李四")
    wrong_id = identify(idp_client, "/activate", "2024000001", id_number=OTHER_ID_NUMBER)
    unknown = identify(idp_client, "/activate", "2099999999")
    assert wrong_name.status_code == wrong_id.status_code == unknown.status_code == 400
    for response in (wrong_name, wrong_id, unknown):
        page = response.get_data(as_text=True)
        assert page.count(MISMATCH) == 1
        assert 'id="id_number-error"' in page
        assert "不存在" not in page and "已激活" not in page


def test_activation_keeps_account_and_name_after_a_mismatch(
    idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """After a mismatch the form keeps the account and name typed."""
    make_user("2024000001", pending=True, verified_phone=None)
    page = identify(idp_client, "/activate", "2024000001", name="李四").get_data(as_text=True)
    assert 'value="2024000001"' in page and 'value="李四"' in page


def test_activation_never_echoes_the_id_number(
    idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """After a mismatch the page does not show the ID number typed."""
    make_user("2024000001", pending=True, verified_phone=None)
    page = identify(idp_client, "/activate", "2024000001", name="李四").get_data(as_text=True)
    assert ID_NUMBER not in page


def test_already_active_account_is_told_to_sign_in(
    idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """Activating an active account says so and starts no activation."""
    make_user("2024000001")
    response = identify(idp_client, "/activate", "2024000001")
    assert response.status_code == 400
    assert "该账号已激活，请直接登录" in response.get_data(as_text=True)
    assert idp_client.get("/activate/phone").location == "/activate"


def test_activation_asks_for_captcha_after_three_mismatches(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """After 3 failed identity checks a CAPTCHA is required; solved, the right data passes."""
    make_user("2024000001", pending=True, verified_phone=None)
    for _ in range(3):
        third = identify(idp_client, "/activate", "2024000001", name="李四")
    assert 'src="/captcha.png"' in third.get_data(as_text=True)

    unsolved = identify(idp_client, "/activate", "2024000001")
    assert unsolved.status_code == 400
    assert CAPTCHA_WRONG in unsolved.get_data(as_text=True)

    answer = solve_captcha(idp_app, idp_client)
    solved = identify(idp_client, "/activate", "2024000001", captcha=answer)
    assert solved.status_code == 302 and solved.location == "/activate/phone"


def test_activation_refuses_wrong_sms_code(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """A wrong SMS code is refused and binds nothing."""
    user = make_user("2024000001", pending=True, verified_phone=None)
    identify(idp_client, "/activate", "2024000001")
    post_form(idp_client, "/activate/phone", {"phone": "13900001111", "send": "1"})
    code = last_code(idp_app, to="13900001111")
    wrong = "000000" if code != "000000" else "111111"
    response = post_form(idp_client, "/activate/phone", {"phone": "13900001111", "code": wrong})
    assert response.status_code == 400 and WRONG_CODE in response.get_data(as_text=True)
    assert fresh_user(idp_app, user).phone_verified_at is None
    assert idp_client.get("/activate/password").location == "/activate"


def test_activation_steps_cannot_be_skipped(idp_client: FlaskClient, make_user: MakeUser) -> None:
    """Going straight to a later step, with no or an unfinished flow, goes back with a message."""
    make_user("2024000001", pending=True, verified_phone=None)
    for url in ("/activate/phone", "/activate/password"):
        response = idp_client.get(url)
        assert response.status_code == 302 and response.location == "/activate"
    assert EXPIRED in idp_client.get("/activate").get_data(as_text=True)

    identify(idp_client, "/activate", "2024000001")
    skipped = idp_client.get("/activate/password", follow_redirects=True)
    assert skipped.request.path == "/activate" and EXPIRED in skipped.get_data(as_text=True)


def test_activation_refuses_weak_password_with_policy_messages(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """A password breaking the policy gets a message per rule (400), never echoed back."""
    user = make_user("2024000001", pending=True, verified_phone=None)
    _activate_until_password(idp_app, idp_client, "2024000001")
    digits = new_password(idp_client, "/activate/password", "12345678")
    assert digits.status_code == 400
    assert "密码须同时包含字母和数字" in digits.get_data(as_text=True)
    personal = new_password(idp_client, "/activate/password", "ab2024000001")
    page = personal.get_data(as_text=True)
    assert personal.status_code == 400 and "密码不能包含您的学工号" in page
    assert "ab2024000001" not in page
    assert fresh_user(idp_app, user).status == UserStatus.PENDING


def test_activation_refuses_mismatched_confirmation(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """确认密码 must repeat the new password."""
    user = make_user("2024000001", pending=True, verified_phone=None)
    _activate_until_password(idp_app, idp_client, "2024000001")
    response = post_form(
        idp_client, "/activate/password", {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD + "x"}
    )
    assert response.status_code == 400 and "两次输入的密码不一致" in response.get_data(as_text=True)
    assert fresh_user(idp_app, user).status == UserStatus.PENDING


def test_activation_finished_in_one_tab_is_expired_in_another(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """Once activation is done, the same password step posted again says it expired."""
    user = make_user("2024000001", pending=True, verified_phone=None)
    _activate_until_password(idp_app, idp_client, "2024000001")
    second_tab_token = csrf_token(idp_client, "/activate/password")
    assert new_password(idp_client, "/activate/password").status_code == 200
    hash_after_first = fresh_user(idp_app, user).password_hash

    again = idp_client.post(
        "/activate/password",
        data={
            "csrf_token": second_tab_token,
            "password": "Other-Path-2026",
            "confirm": "Other-Path-2026",
        },
    )
    assert again.status_code == 302 and again.location == "/activate"
    assert EXPIRED in idp_client.get("/activate").get_data(as_text=True)
    after = fresh_user(idp_app, user)
    assert after.password_hash == hash_after_first and after.status == UserStatus.ACTIVE


def test_activation_finished_in_another_browser_leaves_password_alone(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """Two browsers at the last step: once one activates, the other is told to sign in."""
    user = make_user("2024000001", pending=True, verified_phone=None)
    first, second = idp_app.test_client(), idp_app.test_client()
    _activate_until_password(idp_app, first, "2024000001", phone="13900001111")
    _activate_until_password(idp_app, second, "2024000001", phone="13900002222")
    # The browser that bound the phone last finishes (the other one's phone is gone: see
    # test_review9_accounts).
    assert new_password(second, "/activate/password").status_code == 200
    activated_hash = fresh_user(idp_app, user).password_hash

    # The form opened before (its token; opening the page again would already refuse).
    token = csrf_token(first, "/activate")
    late = first.post(
        "/activate/password",
        data={"csrf_token": token, "password": "Other-Path-2026", "confirm": "Other-Path-2026"},
    )
    assert late.status_code == 302 and late.location == "/login"
    assert "该账号已激活，请直接登录" in first.get("/login").get_data(as_text=True)
    assert fresh_user(idp_app, user).password_hash == activated_hash


def test_activation_restart_forgets_the_flow(idp_client: FlaskClient, make_user: MakeUser) -> None:
    """/activate?restart=1 starts over: the later steps are gone."""
    make_user("2024000001", pending=True, verified_phone=None)
    identify(idp_client, "/activate", "2024000001")
    assert idp_client.get("/activate/phone").status_code == 200
    assert idp_client.get("/activate?restart=1").status_code == 200
    assert idp_client.get("/activate/phone").location == "/activate"


def test_activation_refuses_phone_of_another_account(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """A phone already verified on another account cannot become this one's security phone."""
    make_user("2024000009", verified_phone="13800138000")
    user = make_user("2024000001", pending=True, verified_phone=None)
    identify(idp_client, "/activate", "2024000001")
    response = bind_phone(idp_app, idp_client, "/activate/phone", "13800138000")
    assert response.status_code == 400
    assert "该手机号已是其他账号的安全手机" in response.get_data(as_text=True)
    assert fresh_user(idp_app, user).phone_verified_at is None
    assert idp_client.get("/activate/password").location == "/activate"


def test_activation_sms_code_works_only_once(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """The SMS code that bound the phone cannot be submitted again."""
    make_user("2024000001", pending=True, verified_phone=None)
    _activate_until_password(idp_app, idp_client, "2024000001", phone="13900001111")
    code = last_code(idp_app, to="13900001111")
    reuse = post_form(idp_client, "/activate/phone", {"phone": "13900001111", "code": code})
    assert reuse.status_code == 400 and WRONG_CODE in reuse.get_data(as_text=True)


def test_activation_sms_resend_within_sixty_seconds_is_429(
    idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """A second activation code to the same phone within 60 s is refused with 429."""
    make_user("2024000001", pending=True, verified_phone=None)
    identify(idp_client, "/activate", "2024000001")
    post_form(idp_client, "/activate/phone", {"phone": "13900001111", "send": "1"})
    again = post_form(idp_client, "/activate/phone", {"phone": "13900001111", "send": "1"})
    assert "秒后再重新获取" in again.get_data(as_text=True)
    assert again.status_code == 429


# 信息完善 ---------------------------------------------------------------------------------


def test_completion_needs_a_sign_in_in_progress(idp_client: FlaskClient) -> None:
    """/complete without a sign-in waiting for it goes to /login."""
    response = idp_client.get("/complete")
    assert response.status_code == 302 and response.location == "/login"
    assert "请先登录" in idp_client.get("/login").get_data(as_text=True)


def test_completion_opens_with_马上处理(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """Signing in without a security phone shows the intro; 马上处理 opens 基础信息验证."""
    user = make_user("2024000001", verified_phone=None)
    assert sign_in(idp_client, "2024000001").location == "/complete"
    intro = idp_client.get("/complete")
    page = intro.get_data(as_text=True)
    assert intro.status_code == 200 and intro.headers["Cache-Control"] == "no-store"
    assert "马上处理" in page and 'href="/complete?start=1"' in page
    assert session_count(idp_app, user) == 0
    form = idp_client.get("/complete?start=1").get_data(as_text=True)
    assert "基础信息验证" in form and 'value="2024000001"' in form


def test_completion_refuses_another_persons_identity(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """Another person's correct data does not pass the signed-in account's identity check."""
    make_user("2024000001", verified_phone=None)
    make_user("2024000002", name="李四", id_number=OTHER_ID_NUMBER, verified_phone=None)
    sign_in(idp_client, "2024000001")
    response = identify(
        idp_client, "/complete?start=1", "2024000002", name="李四", id_number=OTHER_ID_NUMBER
    )
    assert response.status_code == 400 and MISMATCH in response.get_data(as_text=True)
    assert "马上处理" in idp_client.get("/complete").get_data(as_text=True)


def test_completion_refuses_wrong_identity(idp_client: FlaskClient, make_user: MakeUser) -> None:
    """A wrong ID number for the signed-in account is refused."""
    make_user("2024000001", verified_phone=None)
    sign_in(idp_client, "2024000001")
    response = identify(idp_client, "/complete?start=1", "2024000001", id_number=OTHER_ID_NUMBER)
    assert response.status_code == 400 and MISMATCH in response.get_data(as_text=True)


def test_completion_binds_phone_sets_password_and_signs_in(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """信息完善: identity → bind the security phone → 完成并登录 lands on the original page."""
    user = make_user("2024000001", verified_phone=None)
    assert sign_in(idp_client, "2024000001", next="/security").location == "/complete"
    identified = identify(idp_client, "/complete?start=1", "2024000001")
    assert identified.status_code == 302 and identified.location == "/complete"
    phone_page = idp_client.get("/complete").get_data(as_text=True)
    assert "未绑定安全手机" in phone_page and "带*号的信息类型为必须完善的信息" in phone_page

    bound = bind_phone(idp_app, idp_client, "/complete", "13900001111")
    assert bound.status_code == 302 and bound.location == "/complete"
    assert fresh_user(idp_app, user).phone == "13900001111"
    assert "完成并登录" in idp_client.get("/complete").get_data(as_text=True)
    assert session_count(idp_app, user) == 0

    done = new_password(idp_client, "/complete")
    assert done.status_code == 302 and done.location == "/security"
    assert "hongliu_sso=" in done.headers["Set-Cookie"]
    assert session_count(idp_app, user) == 1
    assert idp_client.get("/security").status_code == 200
    assert idp_client.get("/complete").location == "/login"

    again = sign_in(idp_app.test_client(), "2024000001", NEW_PASSWORD, next="/security")
    assert again.status_code == 302 and again.location == "/security"


def test_completion_is_not_offered_when_a_security_phone_is_bound(
    idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """Mid-sign-in for 修改密码 only, /complete cannot be used to replace the security phone."""
    make_user("2024000001", verified_phone="13800138000", must_change_password=True)
    assert sign_in(idp_client, "2024000001").location == "/password/change"
    assert idp_client.get("/complete?start=1").status_code == 302


def test_completion_refuses_wrong_sms_code(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """A wrong code at 信息完善 binds nothing."""
    user = make_user("2024000001", verified_phone=None)
    sign_in(idp_client, "2024000001")
    identify(idp_client, "/complete?start=1", "2024000001")
    post_form(idp_client, "/complete", {"phone": "13900001111", "send": "1"})
    code = last_code(idp_app, to="13900001111")
    wrong = "000000" if code != "000000" else "111111"
    response = post_form(idp_client, "/complete", {"phone": "13900001111", "code": wrong})
    assert response.status_code == 400 and WRONG_CODE in response.get_data(as_text=True)
    assert fresh_user(idp_app, user).phone_verified_at is None


def test_completion_refuses_weak_password(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """The last step applies the password policy and starts no session on failure."""
    user = make_user("2024000001", verified_phone=None)
    sign_in(idp_client, "2024000001")
    identify(idp_client, "/complete?start=1", "2024000001")
    bind_phone(idp_app, idp_client, "/complete", "13900001111")
    response = new_password(idp_client, "/complete", "abcdefgh")
    assert response.status_code == 400
    assert "密码须同时包含字母和数字" in response.get_data(as_text=True)
    assert session_count(idp_app, user) == 0


def test_temporary_password_without_phone_gets_completion_first(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """No security phone and a temporary password: 信息完善 first, which sets the password."""
    user = make_user("2024000001", verified_phone=None, must_change_password=True)
    assert sign_in(idp_client, "2024000001", next="/security").location == "/complete"
    identify(idp_client, "/complete?start=1", "2024000001")
    bind_phone(idp_app, idp_client, "/complete", "13900001111")
    done = new_password(idp_client, "/complete")
    assert done.status_code == 302 and done.location == "/security"
    assert fresh_user(idp_app, user).must_change_password is False
    assert idp_client.get("/security").status_code == 200


# 找回密码 ---------------------------------------------------------------------------------


def test_recovery_refuses_wrong_identity(idp_client: FlaskClient, make_user: MakeUser) -> None:
    """Name, account and ID number must all match the school's record."""
    make_user("2024000001")
    wrong = identify(idp_client, "/recover", "2024000001", name="李四")
    unknown = identify(idp_client, "/recover", "2099999999")
    assert wrong.status_code == unknown.status_code == 400
    assert MISMATCH in wrong.get_data(as_text=True) and MISMATCH in unknown.get_data(as_text=True)
    assert idp_client.get("/recover/verify").location == "/recover"


def test_recovery_of_pending_account_says_activate_first(
    idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """An account never activated is sent to 激活账号."""
    make_user("2024000001", pending=True, verified_phone=None)
    response = identify(idp_client, "/recover", "2024000001")
    assert response.status_code == 400
    assert "该账号尚未激活，请先激活账号" in response.get_data(as_text=True)


def test_recovery_without_phone_or_email_says_contact_help_desk(
    idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """No security phone and no security email: 请联系管理员处理."""
    make_user("2024000001", verified_phone=None)
    response = identify(idp_client, "/recover", "2024000001")
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "无法自助找回密码" in page and "联系管理员" in page


def test_recovery_offers_masked_phone_and_email(
    idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """身份验证 lists the security phone and email masked, never in full."""
    make_user("2024000001", verified_phone="13800138000", verified_email="zhang.san@lut.edu.cn")
    assert identify(idp_client, "/recover", "2024000001").location == "/recover/verify"
    page = idp_client.get("/recover/verify").get_data(as_text=True)
    assert "安全手机 138****8000" in page and "安全邮箱 z***n@lut.edu.cn" in page
    assert "13800138000" not in page and "zhang.san@" not in page


def test_recovery_by_sms_code_resets_password(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """找回密码 by the security phone: code → new password → sign in with it."""
    make_user("2024000001", verified_phone="13800138000")
    identify(idp_client, "/recover", "2024000001")
    sent = post_form(idp_client, "/recover/verify", {"method": "sms", "send": "1"})
    assert sent.status_code == 200
    assert "验证码已发送至 138****8000" in sent.get_data(as_text=True)
    code = last_code(idp_app, to="13800138000")
    verified = post_form(idp_client, "/recover/verify", {"method": "sms", "code": code})
    assert verified.status_code == 302 and verified.location == "/recover/password"
    assert "重置密码" in idp_client.get("/recover/password").get_data(as_text=True)

    done = new_password(idp_client, "/recover/password")
    assert done.status_code == 302 and done.location == "/login"
    assert "密码已重置，请使用新密码登录" in idp_client.get("/login").get_data(as_text=True)
    assert sign_in(idp_app.test_client(), "2024000001", NEW_PASSWORD).status_code == 302
    assert sign_in(idp_app.test_client(), "2024000001", PASSWORD).status_code == 401


def test_recovery_by_mail_code_resets_password(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """找回密码 by the security email when the phone is not at hand."""
    make_user("2024000001", verified_phone="13800138000", verified_email="zhang.san@lut.edu.cn")
    identify(idp_client, "/recover", "2024000001")
    sent = post_form(idp_client, "/recover/verify", {"method": "email", "send": "1"})
    assert sent.status_code == 200
    assert "验证码已发送至 z***n@lut.edu.cn" in sent.get_data(as_text=True)
    code = last_code(idp_app, kind="mail", to="zhang.san@lut.edu.cn")
    verified = post_form(idp_client, "/recover/verify", {"method": "email", "code": code})
    assert verified.status_code == 302 and verified.location == "/recover/password"
    assert new_password(idp_client, "/recover/password").location == "/login"
    assert sign_in(idp_app.test_client(), "2024000001", NEW_PASSWORD).status_code == 302


def test_recovery_refuses_wrong_code(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """A wrong code does not lead on to 重置密码."""
    make_user("2024000001", verified_phone="13800138000")
    identify(idp_client, "/recover", "2024000001")
    post_form(idp_client, "/recover/verify", {"method": "sms", "send": "1"})
    code = last_code(idp_app, to="13800138000")
    wrong = "000000" if code != "000000" else "111111"
    response = post_form(idp_client, "/recover/verify", {"method": "sms", "code": wrong})
    assert response.status_code == 400 and WRONG_CODE in response.get_data(as_text=True)
    assert idp_client.get("/recover/password").location == "/recover"


def test_recovery_code_resend_within_sixty_seconds_is_429(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """A second recovery code within 60 s is refused with 429 and the wait, and not sent."""
    make_user("2024000001", verified_phone="13800138000")
    identify(idp_client, "/recover", "2024000001")
    post_form(idp_client, "/recover/verify", {"method": "sms", "send": "1"})
    before = outbox_count(idp_app)
    again = post_form(idp_client, "/recover/verify", {"method": "sms", "send": "1"})
    assert "秒后再重新获取" in again.get_data(as_text=True)
    assert outbox_count(idp_app) == before
    assert again.status_code == 429


def test_recovery_ends_every_session(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """A reset password signs the account out everywhere."""
    user = make_user("2024000001", verified_phone="13800138000")
    elsewhere = idp_app.test_client()
    sign_in(elsewhere, "2024000001")
    assert elsewhere.get("/security").status_code == 200
    _recover_until_password(idp_app, idp_client, "2024000001", "13800138000")
    assert new_password(idp_client, "/recover/password").status_code == 302
    assert session_count(idp_app, user) == 0
    assert elsewhere.get("/security").status_code == 302


def test_recovery_lifts_password_lock(idp_app: Flask, make_user: MakeUser) -> None:
    """After 5 wrong passwords lock sign-in, recovery lets the new password sign in at once."""
    make_user("2024000001", verified_phone="13800138000")
    idp_app.config["LOGIN_CAPTCHA_AFTER"] = 100
    client = idp_app.test_client()
    for _ in range(5):
        sign_in(client, "2024000001", "Wrong-password-1")
    assert sign_in(client, "2024000001").status_code == 401  # locked
    _recover_until_password(idp_app, client, "2024000001", "13800138000")
    assert new_password(client, "/recover/password").status_code == 302
    signed_in = sign_in(idp_app.test_client(), "2024000001", NEW_PASSWORD)
    assert signed_in.status_code == 302


def test_recovery_cannot_be_resumed_after_completion(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """Once the password is reset, the recovery steps and a replayed last form are expired."""
    user = make_user("2024000001", verified_phone="13800138000")
    _recover_until_password(idp_app, idp_client, "2024000001", "13800138000")
    token = csrf_token(idp_client, "/recover/password")
    assert new_password(idp_client, "/recover/password").status_code == 302
    reset_hash = fresh_user(idp_app, user).password_hash

    for url in ("/recover/verify", "/recover/password"):
        assert idp_client.get(url).location == "/recover"
    replay = idp_client.post(
        "/recover/password",
        data={"csrf_token": token, "password": "Other-Path-2026", "confirm": "Other-Path-2026"},
    )
    assert replay.status_code == 302 and replay.location == "/recover"
    assert EXPIRED in idp_client.get("/recover").get_data(as_text=True)
    assert fresh_user(idp_app, user).password_hash == reset_hash


# CSRF -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["/activate", "/activate/phone", "/activate/password", "/complete", "/recover"]
)
def test_wizard_post_without_csrf_token_is_refused(
    idp_client: FlaskClient, make_user: MakeUser, url: str
) -> None:
    """A wizard form posted without its CSRF token is refused with 400 and does nothing."""
    make_user("2024000001", pending=True, verified_phone=None)
    response = idp_client.post(
        url, data={"account": "2024000001", "name": "张三", "id_number": ID_NUMBER}
    )
    assert response.status_code == 400 and "页面已过期" in response.get_data(as_text=True)
    assert idp_client.get("/activate/phone").location == "/activate"


def test_parked_sign_in_cannot_skip_completion_through_password_change(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """Without a security phone, /password/change sends the sign-in back to 信息完善."""
    user = make_user("2024000001", verified_phone=None)
    assert sign_in(idp_client, "2024000001").location == "/complete"
    token = csrf_token(idp_client, "/complete?start=1")
    data = {"csrf_token": token, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
    skipped = idp_client.post("/password/change", data=data)
    assert skipped.status_code == 302 and skipped.location == "/complete"
    assert session_count(idp_app, user) == 0
    assert fresh_user(idp_app, user).password_hash == user.password_hash


def test_recovery_voids_a_sign_in_parked_with_the_old_password(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """Whoever parked at the forced password change with the old password is shut out."""
    user = make_user("2024000001", verified_phone="13800138000", must_change_password=True)
    intruder = idp_app.test_client()
    assert sign_in(intruder, "2024000001").location == "/password/change"
    token = csrf_token(intruder, "/password/change")
    owner = idp_app.test_client()
    _recover_until_password(idp_app, owner, "2024000001", "13800138000")
    assert new_password(owner, "/recover/password").location == "/login"
    data = {"csrf_token": token, "password": "Intruder-Owns-2026", "confirm": "Intruder-Owns-2026"}
    taken = intruder.post("/password/change", data=data)
    assert taken.status_code == 302 and taken.location.startswith("/login")
    assert session_count(idp_app, user) == 0
    assert sign_in(idp_app.test_client(), "2024000001", NEW_PASSWORD).status_code == 302


def test_recovery_channels_unbound_after_step_one_are_explained_not_a_500(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """The help desk unbinds the phone mid-recovery: back to step 1 with the reason."""
    user = make_user("2024000001", verified_phone="13800138000")
    assert identify(idp_client, "/recover", "2024000001").location == "/recover/verify"
    with idp_app.app_context():
        stored = db.session.get(User, user.id)
        assert stored is not None
        stored.phone, stored.phone_verified_at = None, None
        db.session.commit()
    response = idp_client.get("/recover/verify")
    assert response.status_code == 302 and response.location == "/recover"
    assert "无法自助找回密码" in idp_client.get("/recover").get_data(as_text=True)


def test_wrong_codes_in_the_wizards_are_audited(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """Every use of a code is audited: a wrong one in recovery and in activation too."""
    make_user("2024000001", verified_phone="13800138000")
    assert identify(idp_client, "/recover", "2024000001").location == "/recover/verify"
    post_form(idp_client, "/recover/verify", {"method": "sms", "send": "1"})
    wrong = "000000" if last_code(idp_app, to="13800138000") != "000000" else "111111"
    assert post_form(idp_client, "/recover/verify", {"method": "sms", "code": wrong}).status_code
    make_user("2024000002", verified_phone=None, pending=True, password=None)
    client = idp_app.test_client()
    assert identify(client, "/activate", "2024000002").location == "/activate/phone"
    post_form(client, "/activate/phone", {"phone": "13900001111", "send": "1"})
    wrong = "000000" if last_code(idp_app, to="13900001111") != "000000" else "111111"
    post_form(client, "/activate/phone", {"phone": "13900001111", "code": wrong})
    with idp_app.app_context():
        refused = db.session.scalars(
            db.select(AuditEvent.action).where(AuditEvent.outcome == "failure")
        ).all()
    assert "recovery.code" in refused and "activation.code" in refused


def test_strength_meter_racing_the_forced_password_change_does_not_void_the_sign_in(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """The meter's request, answered just after 完成 stored the new password and before the
    parked sign-in resumed, must not throw that sign-in away (seen as a bounce to /login)."""
    user = make_user("2024000001", verified_phone="13800138000", must_change_password=True)
    assert sign_in(idp_client, "2024000001").location == "/password/change"
    token = csrf_token(idp_client, "/password/change")
    with idp_app.app_context():
        row = db.session.get(User, user.id)
        assert row is not None
        old_hash, row.password_hash = row.password_hash, "{SSHA}changed-meanwhile"
        db.session.commit()  # where the concurrent 完成 has stored the new password
    meter = idp_client.post(
        "/password/strength",
        json={"password": "Willow-Creek-2025"},
        headers={"X-CSRFToken": token},
    )
    assert meter.status_code == 200
    with idp_app.app_context():
        row = db.session.get(User, user.id)
        assert row is not None
        row.password_hash = old_hash  # replay 完成 from the state the meter raced with
        db.session.commit()
    done = idp_client.post(
        "/password/change",
        data={"csrf_token": token, "password": "Willow-Creek-2025", "confirm": "Willow-Creek-2025"},
    )
    assert (done.status_code, done.location) == (302, "/")
