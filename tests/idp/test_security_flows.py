"""安全中心 flows left half-way, and the session list: a 身份验证 counts only for the sign-in
that made it and while the phone, email and password it proved are still the account's; the
device list shows live sessions only; a password change renews the session id, not its end."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from idp.account.codes import SMS, Channel
from idp.auth.models import SsoSession
from idp.directory.models import User, aware, utcnow
from idp.extensions import db
from shared.factory import get_store
from tests.idp.conftest import PASSWORD, MakeUser, csrf_token, last_code, post_form, sign_in

OLD_PHONE = "13800138000"
NEW_PHONE = "13900139000"
THIRD_PHONE = "13700137000"


def _signed_in(app: Flask, account: str) -> FlaskClient:
    client = app.test_client()
    assert sign_in(client, account).status_code == 302
    return client


def _phone_of(app: Flask, user: User) -> str | None:
    with app.app_context():
        stored = db.session.get(User, user.id)
        return stored.phone if stored else None


def _verify_by_sms(app: Flask, client: FlaskClient, url: str, phone: str) -> None:
    """身份验证 with a code to ``phone`` (the security phone), the 60 s wait lifted first."""
    with app.app_context():
        get_store().delete(f"code-wait:{Channel(SMS, phone).key('verify')}")
    assert post_form(client, url, {"method": "sms", "send": "1"}).status_code == 200
    code = last_code(app, to=phone)
    answer = post_form(client, url, {"method": "sms", "code": code, "submit": "1"})
    assert answer.status_code == 302 and answer.location == url


def _replace_phone_behind_its_back(app: Flask, user: User, phone: str) -> None:
    """The security phone changes by another route (the help desk, another browser)."""
    with app.app_context():
        stored = db.session.get(User, user.id)
        assert stored is not None
        stored.phone, stored.phone_verified_at = phone, utcnow()
        db.session.commit()


def _bind_phone(app: Flask, client: FlaskClient, phone: str) -> int:
    """Step 2 of 更换安全手机: a code to ``phone``, then bind it; the final status."""
    sent = post_form(client, "/security/phone", {"phone": phone, "send": "1"})
    if sent.status_code != 200:
        return sent.status_code
    code = last_code(app, to=phone)
    return post_form(
        client, "/security/phone", {"phone": phone, "code": code, "submit": "1"}
    ).status_code


def test_verification_of_the_old_phone_is_void_once_the_phone_changed_elsewhere(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """Browser A proves the old phone and stops; browser B changes the phone, which signs A
    out; A signs in again with the password: its half-done flow must not replace the new phone
    with no code to it or to the email."""
    user = make_user("2024000001", verified_phone=OLD_PHONE)
    a = _signed_in(idp_app, "2024000001")
    _verify_by_sms(idp_app, a, "/security/phone", OLD_PHONE)
    b = _signed_in(idp_app, "2024000001")
    _verify_by_sms(idp_app, b, "/security/phone", OLD_PHONE)
    assert _bind_phone(idp_app, b, NEW_PHONE) == 302
    assert sign_in(a, "2024000001").status_code == 302

    page = a.get("/security/phone").get_data(as_text=True)
    assert 'name="phone"' not in page and "身份验证" in page  # back at step 1
    assert _bind_phone(idp_app, a, THIRD_PHONE) == 400
    assert _phone_of(idp_app, user) == NEW_PHONE


def test_verification_is_void_once_the_help_desk_changed_the_phone(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """The phone proved in step 1 is replaced (help desk, another route) while this browser
    stays signed in: step 2 answers that the flow expired and binds nothing."""
    user = make_user("2024000001", verified_phone=OLD_PHONE)
    a = _signed_in(idp_app, "2024000001")
    _verify_by_sms(idp_app, a, "/security/phone", OLD_PHONE)
    _replace_phone_behind_its_back(idp_app, user, NEW_PHONE)

    refused = _post_on_open_page(a, "/security/phone", {"phone": THIRD_PHONE, "send": "1"})
    assert refused.status_code == 302 and refused.location == "/security/phone"
    assert "操作已超时或已在其他页面完成" in a.get("/security/phone").get_data(as_text=True)
    assert _phone_of(idp_app, user) == NEW_PHONE


def test_email_flow_verified_by_the_old_phone_is_void_after_a_phone_change(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """绑定安全邮箱 verified with a code to a phone since replaced: the new address is not
    bound."""
    user = make_user("2024000001", verified_phone=OLD_PHONE)
    a = _signed_in(idp_app, "2024000001")
    _verify_by_sms(idp_app, a, "/security/email", OLD_PHONE)
    _replace_phone_behind_its_back(idp_app, user, NEW_PHONE)

    refused = _post_on_open_page(a, "/security/email", {"email": "evil@example.com", "send": "1"})
    assert refused.status_code == 302 and refused.location == "/security/email"
    with idp_app.app_context():
        stored = db.session.get(User, user.id)
        assert stored is not None and stored.email != "evil@example.com"


def _post_on_open_page(client: FlaskClient, url: str, data: dict[str, str]) -> Any:
    """POST step 2 from the page already open in the browser (not loaded again first)."""
    return client.post(url, data={"csrf_token": csrf_token(client, "/security"), **data})


def _session_id(client: FlaskClient) -> str:
    cookie = client.get_cookie("hongliu_sso")
    assert cookie is not None
    return hashlib.sha256(cookie.value.encode()).hexdigest()


def test_device_list_leaves_out_sessions_ended_by_idleness(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """A session idle past the timeout signs nobody in; 安全中心 does not list it either."""
    make_user("2024000001", verified_phone=OLD_PHONE)
    a = _signed_in(idp_app, "2024000001")
    b = _signed_in(idp_app, "2024000001")
    idle = idp_app.config["SESSION_IDLE_TIMEOUT"]
    with idp_app.app_context():
        stored = db.session.get(SsoSession, _session_id(b))
        assert stored is not None
        stored.last_seen_at = utcnow() - timedelta(seconds=idle + 60)
        db.session.commit()
        dead = stored.ip

    assert b.get("/security").status_code == 302
    page = a.get("/security").get_data(as_text=True)
    assert page.count("当前设备") == 1 and _session_id(b) not in page
    assert dead  # the row was there to be shown


def test_password_change_renews_the_session_id_but_not_its_end(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """修改密码 gives this browser a new session id; its absolute end stays where it was."""
    make_user("2024000001", verified_phone=OLD_PHONE)
    a = _signed_in(idp_app, "2024000001")
    end = utcnow() + timedelta(hours=1)
    with idp_app.app_context():
        stored = db.session.get(SsoSession, _session_id(a))
        assert stored is not None
        stored.created_at, stored.expires_at = utcnow() - timedelta(hours=11), end
        db.session.commit()
    before = _session_id(a)

    new = "NewPass2024zz!"
    changed = post_form(
        a, "/password/change", {"current": PASSWORD, "password": new, "confirm": new}
    )
    assert changed.status_code == 302 and _session_id(a) != before
    with idp_app.app_context():
        renewed = db.session.get(SsoSession, _session_id(a))
        assert renewed is not None
        assert abs(aware(renewed.expires_at) - end) < timedelta(seconds=1)
