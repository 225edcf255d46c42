"""安全中心: the overview, signing devices out, binding a security email and changing the
security phone (manual chapter 3, FAQ 4-6)."""

from __future__ import annotations

import hashlib
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from idp.audit.models import AuditEvent
from idp.auth.models import SsoSession
from idp.directory.models import User
from idp.extensions import db
from tests.idp.conftest import PASSWORD, MakeUser, csrf_token, last_code, post_form, sign_in

OLD_PHONE = "13800138000"
NEW_PHONE = "13900139000"
CHROME_ON_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)


def _signed_in(app: Flask, account: str, user_agent: str | None = None) -> FlaskClient:
    """A new browser signed in as ``account``."""
    client = app.test_client()
    if user_agent:
        client.environ_base["HTTP_USER_AGENT"] = user_agent
    assert sign_in(client, account).status_code == 302
    return client


def _session_id(client: FlaskClient) -> str:
    """The id the IdP keeps for this browser's session: the SHA-256 of its cookie."""
    cookie = client.get_cookie("hongliu_sso")
    assert cookie is not None
    return hashlib.sha256(cookie.value.encode()).hexdigest()


def _reload(app: Flask, user: User) -> User:
    with app.app_context():
        fresh = db.session.get(User, user.id)
        assert fresh is not None
        db.session.expunge(fresh)
        return fresh


def _actions(app: Flask, user: User) -> list[tuple[str, str]]:
    """(action, outcome) of the audit rows the user did themselves, oldest first."""
    with app.app_context():
        rows = db.session.scalars(
            db.select(AuditEvent).where(AuditEvent.actor_id == user.id).order_by(AuditEvent.id)
        )
        return [(row.action, row.outcome) for row in rows]


def _still_signed_in(client: FlaskClient) -> bool:
    return client.get("/security").status_code == 200


def _post(client: FlaskClient, url: str, data: dict[str, Any]) -> Any:
    """POST a form of the security centre with the token its overview page carries."""
    return client.post(url, data={"csrf_token": csrf_token(client, "/security"), **data})


def _verify_by_password(client: FlaskClient) -> None:
    response = post_form(
        client, "/security/email", {"method": "password", "password": PASSWORD, "submit": "1"}
    )
    assert response.status_code == 302 and response.location == "/security/email"


def _verify_by_code(app: Flask, client: FlaskClient, url: str, method: str, to: str) -> None:
    """身份验证 with a ``verify`` code sent to the phone (``sms``) or mail (``email``) on file."""
    assert post_form(client, url, {"method": method, "send": "1"}).status_code == 200
    code = last_code(app, "sms" if method == "sms" else "mail", to=to)
    response = post_form(client, url, {"method": method, "code": code, "submit": "1"})
    assert response.status_code == 302 and response.location == url


def _send_to_new_phone(app: Flask, client: FlaskClient, phone: str) -> str:
    response = post_form(client, "/security/phone", {"phone": phone, "send": "1"})
    assert response.status_code == 200
    return last_code(app, to=phone)


# Signing in and the overview ----------------------------------------------------------------


def test_security_centre_asks_signed_out_visitors_to_sign_in(idp_client: FlaskClient) -> None:
    """Every page of the security centre sends a visitor who is not signed in to /login."""
    for url in ("/security", "/security/email", "/security/phone"):
        response = idp_client.get(url)
        assert response.status_code == 302 and response.location == f"/login?next={url}"


def test_overview_shows_account_masked_phone_devices_and_sign_in_history(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """账号信息 with the masked security phone, 当前设备 by browser, and 登录记录 with failures."""
    make_user("2024000001")
    stranger = idp_app.test_client()
    assert sign_in(stranger, "2024000001", "Wrong-password-1").status_code == 401
    client = _signed_in(idp_app, "2024000001", CHROME_ON_WINDOWS)
    response = client.get("/security")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert "张三" in page and "2024000001" in page and "学生" in page
    assert "138****8000" in page and OLD_PHONE not in page
    assert "未绑定" in page  # no security email yet
    assert "Chrome · Windows" in page and "当前设备" in page
    assert "账号密码" in page and "成功" in page and "失败" in page
    assert "/password/change" in page


def test_user_signs_out_other_devices_and_keeps_this_one(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """退出其他设备 ends the sessions of every other browser; this one stays signed in."""
    user = make_user("2024000001")
    laptop = _signed_in(idp_app, "2024000001")
    phone = _signed_in(idp_app, "2024000001")
    tablet = _signed_in(idp_app, "2024000001")
    response = _post(laptop, "/security/sessions/end-others", {})
    assert response.status_code == 302 and response.location == "/security"
    assert "已退出其他 2 台设备上的登录" in laptop.get("/security").get_data(as_text=True)
    assert _still_signed_in(laptop)
    assert not _still_signed_in(phone) and not _still_signed_in(tablet)
    assert ("session.end_others", "success") in _actions(idp_app, user)


def test_user_signs_out_one_of_their_own_devices(idp_app: Flask, make_user: MakeUser) -> None:
    """退出 on one device's row ends only that device's session."""
    user = make_user("2024000001")
    laptop = _signed_in(idp_app, "2024000001")
    phone = _signed_in(idp_app, "2024000001")
    response = _post(laptop, "/security/sessions/end", {"session_id": _session_id(phone)})
    assert response.status_code == 302 and response.location == "/security"
    assert _still_signed_in(laptop) and not _still_signed_in(phone)
    assert ("session.end", "success") in _actions(idp_app, user)


def test_signing_out_this_device_from_the_list_signs_out_here(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """Ending the current session from the list signs this browser out."""
    make_user("2024000001")
    laptop = _signed_in(idp_app, "2024000001")
    response = _post(laptop, "/security/sessions/end", {"session_id": _session_id(laptop)})
    assert response.status_code == 302 and response.location == "/login"
    assert not _still_signed_in(laptop)


def test_another_users_session_cannot_be_ended(idp_app: Flask, make_user: MakeUser) -> None:
    """A session id of someone else's browser is not found, and that browser stays signed in."""
    make_user("2024000001")
    make_user("2024000002", verified_phone="13700137000")
    mine = _signed_in(idp_app, "2024000001")
    theirs = _signed_in(idp_app, "2024000002")
    response = _post(mine, "/security/sessions/end", {"session_id": _session_id(theirs)})
    assert response.status_code == 404
    assert _still_signed_in(theirs)
    with idp_app.app_context():
        assert db.session.get(SsoSession, _session_id(theirs)) is not None


# 安全邮箱 -----------------------------------------------------------------------------------


def test_user_binds_security_email_with_code_from_mail(idp_app: Flask, make_user: MakeUser) -> None:
    """身份验证 by password, then the code mailed to the new address binds it; devices stay."""
    user = make_user("2024000001")
    client = _signed_in(idp_app, "2024000001")
    other_device = _signed_in(idp_app, "2024000001")
    _verify_by_password(client)
    response = post_form(client, "/security/email", {"email": " Zhang.San@Lut.edu.cn", "send": "1"})
    assert response.status_code == 200
    assert "z***n@lut.edu.cn" in response.get_data(as_text=True)
    code = last_code(idp_app, "mail", to="zhang.san@lut.edu.cn")
    response = post_form(
        client, "/security/email", {"email": "zhang.san@lut.edu.cn", "code": code, "submit": "1"}
    )
    assert response.status_code == 302 and response.location == "/security"
    page = client.get("/security").get_data(as_text=True)
    assert "安全邮箱已绑定" in page and "其他设备上的登录不受影响" in page
    fresh = _reload(idp_app, user)
    assert fresh.email == "zhang.san@lut.edu.cn" and fresh.has_security_email
    assert _still_signed_in(other_device)
    actions = _actions(idp_app, user)
    assert ("security.verify", "success") in actions and ("email.bind", "success") in actions


def test_wrong_email_code_keeps_the_typed_address_and_says_why(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """A wrong code answers 400 on the same page, with the address still filled in."""
    user = make_user("2024000001")
    client = _signed_in(idp_app, "2024000001")
    _verify_by_password(client)
    post_form(client, "/security/email", {"email": "li.si@lut.edu.cn", "send": "1"})
    response = post_form(
        client, "/security/email", {"email": "li.si@lut.edu.cn", "code": "000000", "submit": "1"}
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "验证码错误或已过期" in page and 'value="li.si@lut.edu.cn"' in page
    assert not _reload(idp_app, user).has_security_email
    assert ("email.bind", "failure") in _actions(idp_app, user)


def test_invalid_address_and_too_early_resend_are_refused(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """A malformed address is a 400; asking again for a code within a minute is a 429."""
    make_user("2024000001")
    client = _signed_in(idp_app, "2024000001")
    _verify_by_password(client)
    response = post_form(client, "/security/email", {"email": "not-an-address", "send": "1"})
    assert response.status_code == 400
    assert "请输入正确的邮箱地址" in response.get_data(as_text=True)
    assert (
        post_form(client, "/security/email", {"email": "a@lut.edu.cn", "send": "1"}).status_code
        == 200
    )
    response = post_form(client, "/security/email", {"email": "a@lut.edu.cn", "send": "1"})
    assert response.status_code == 429 and "秒后再重新获取" in response.get_data(as_text=True)


def test_replacing_a_security_email_needs_identity_check_first(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """With an email bound, a wrong password is refused and no new address can skip step 1."""
    user = make_user("2024000001", verified_email="old@lut.edu.cn")
    client = _signed_in(idp_app, "2024000001")
    page = client.get("/security/email").get_data(as_text=True)
    assert "更换安全邮箱" in page and "登录密码" in page and "138****8000" in page
    skipped = post_form(client, "/security/email", {"email": "new@lut.edu.cn", "send": "1"})
    assert skipped.status_code == 400
    wrong = post_form(
        client, "/security/email", {"method": "password", "password": "Wrong-1234", "submit": "1"}
    )
    assert wrong.status_code == 400 and "登录密码不正确" in wrong.get_data(as_text=True)
    assert 'value="Wrong-1234"' not in wrong.get_data(as_text=True)
    _verify_by_code(idp_app, client, "/security/email", "sms", OLD_PHONE)
    post_form(client, "/security/email", {"email": "new@lut.edu.cn", "send": "1"})
    code = last_code(idp_app, "mail", to="new@lut.edu.cn")
    response = post_form(
        client, "/security/email", {"email": "new@lut.edu.cn", "code": code, "submit": "1"}
    )
    assert response.status_code == 302
    assert _reload(idp_app, user).email == "new@lut.edu.cn"
    assert ("security.verify", "failure") in _actions(idp_app, user)


def test_repeated_wrong_passwords_lock_the_identity_check(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """The password check shares the sign-in lock: after the limit it answers 429."""
    make_user("2024000001")
    client = _signed_in(idp_app, "2024000001")
    data = {"method": "password", "password": "Wrong-1234", "submit": "1"}
    statuses = [post_form(client, "/security/email", data).status_code for _ in range(6)]
    assert statuses[:5] == [400] * 5 and statuses[5] == 429
    correct = post_form(client, "/security/email", {**data, "password": PASSWORD})
    assert correct.status_code == 429  # locked even for the right password, as at /login


# 安全手机 -----------------------------------------------------------------------------------


def test_user_changes_phone_with_old_phone_code_then_new_phone_code(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """更换安全手机: a code to the old phone, then one to the new phone; devices stay signed in."""
    user = make_user("2024000001")
    client = _signed_in(idp_app, "2024000001")
    other_device = _signed_in(idp_app, "2024000001")
    _verify_by_code(idp_app, client, "/security/phone", "sms", OLD_PHONE)
    code = _send_to_new_phone(idp_app, client, NEW_PHONE)
    response = post_form(
        client, "/security/phone", {"phone": NEW_PHONE, "code": code, "submit": "1"}
    )
    assert response.status_code == 302 and response.location == "/security"
    page = client.get("/security").get_data(as_text=True)
    assert "安全手机已更换为 139****9000" in page and "其他设备上的登录不受影响" in page
    fresh = _reload(idp_app, user)
    assert fresh.phone == NEW_PHONE and fresh.has_security_phone
    assert _still_signed_in(other_device)
    actions = _actions(idp_app, user)
    assert ("security.verify", "success") in actions and ("phone.bind", "success") in actions


def test_user_who_lost_the_phone_changes_it_through_security_email(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """FAQ 5: with a security email, the code for step 1 can come by mail instead."""
    user = make_user("2024000001", verified_email="zhang.san@lut.edu.cn")
    client = _signed_in(idp_app, "2024000001")
    assert "z***n@lut.edu.cn" in client.get("/security/phone").get_data(as_text=True)
    _verify_by_code(idp_app, client, "/security/phone", "email", "zhang.san@lut.edu.cn")
    code = _send_to_new_phone(idp_app, client, NEW_PHONE)
    post_form(client, "/security/phone", {"phone": NEW_PHONE, "code": code, "submit": "1"})
    assert _reload(idp_app, user).phone == NEW_PHONE
    with idp_app.app_context():
        methods = db.session.scalars(
            db.select(AuditEvent.method).where(AuditEvent.action == "security.verify")
        ).all()
    assert methods == ["email"]


def test_user_without_security_email_is_sent_to_the_help_desk(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """FAQ 6: no security email means no mail option, and the help desk's number instead."""
    make_user("2024000001")
    client = _signed_in(idp_app, "2024000001")
    page = client.get("/security/phone").get_data(as_text=True)
    assert idp_app.config["HELP_PHONE"] in page and "联系管理员" in page
    assert 'value="email"' not in page


def test_phone_of_another_account_is_refused(idp_app: Flask, make_user: MakeUser) -> None:
    """A number verified on another account is refused with a clear message; nothing changes."""
    user = make_user("2024000001")
    make_user("2024000002", verified_phone=NEW_PHONE)
    client = _signed_in(idp_app, "2024000001")
    _verify_by_code(idp_app, client, "/security/phone", "sms", OLD_PHONE)
    code = _send_to_new_phone(idp_app, client, NEW_PHONE)
    response = post_form(
        client, "/security/phone", {"phone": NEW_PHONE, "code": code, "submit": "1"}
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "该手机号已是其他账号的安全手机" in page and f'value="{NEW_PHONE}"' in page
    assert _reload(idp_app, user).phone == OLD_PHONE
    assert ("phone.bind", "failure") in _actions(idp_app, user)
    # Still at step 2: another number can be tried without starting over.
    assert 'name="phone"' in client.get("/security/phone").get_data(as_text=True)


def test_new_phone_cannot_skip_the_identity_check(idp_app: Flask, make_user: MakeUser) -> None:
    """Posting step 2's form while at step 1 is refused and sends nothing to the new number."""
    user = make_user("2024000001")
    client = _signed_in(idp_app, "2024000001")
    response = post_form(client, "/security/phone", {"phone": NEW_PHONE, "send": "1"})
    assert response.status_code == 400
    response = post_form(client, "/security/phone", {"phone": NEW_PHONE, "code": "123456"})
    assert response.status_code == 400
    assert _reload(idp_app, user).phone == OLD_PHONE
    assert ("code.send", "success") not in _actions(idp_app, user)


def test_second_tab_finishing_the_same_flow_fails_cleanly(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """Once one tab has finished, the other tab's (or a replayed) form only says to start over."""
    user = make_user("2024000001")
    client = _signed_in(idp_app, "2024000001")
    _verify_by_code(idp_app, client, "/security/phone", "sms", OLD_PHONE)
    first = _send_to_new_phone(idp_app, client, NEW_PHONE)
    second = _send_to_new_phone(idp_app, client, "13600136000")
    token = csrf_token(client, "/security/phone")
    browser_session = client.get_cookie("session")
    assert browser_session is not None
    done = client.post(
        "/security/phone",
        data={"csrf_token": token, "phone": NEW_PHONE, "code": first, "submit": "1"},
    )
    assert done.status_code == 302 and done.location == "/security"
    client.set_cookie("session", browser_session.value)  # the other tab's (older) cookie
    replay = client.post(
        "/security/phone",
        data={"csrf_token": token, "phone": "13600136000", "code": second, "submit": "1"},
    )
    assert replay.status_code == 302 and replay.location == "/security/phone"
    assert "操作已超时或已在其他页面完成" in client.get("/security").get_data(as_text=True)
    assert _reload(idp_app, user).phone == NEW_PHONE
    assert [a for a in _actions(idp_app, user) if a[0] == "phone.bind"] == [
        ("phone.bind", "success")
    ]
