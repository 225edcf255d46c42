"""安全中心: the overview, signing devices out, binding a security email and changing the
security phone (manual chapter 3, FAQ 4-6), and what follows a change: the other devices are
signed out and the old phone and email are told."""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp.account.codes import EMAIL, SMS, Channel
from idp.audit.models import AuditEvent
from idp.auth.models import SsoSession
from idp.directory.models import User, utcnow
from idp.extensions import db
from idp.security.notices import notify_security_change
from shared.messaging import MAIL_FILE, SMS_FILE, read_records
from tests.conftest import AppFactory
from tests.fakes.sms_gateways import FakeAliyunSms
from tests.idp.conftest import (
    PASSWORD,
    MakeUser,
    csrf_token,
    last_code,
    post_form,
    settle_deliveries,
    sign_in,
)
from tests.idp.console_support import events

OLD_PHONE = "13800138000"
NEW_PHONE = "13900139000"
CHROME_ON_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)


@pytest.fixture
def idp_app(make_idp: AppFactory, tmp_path: Path) -> Flask:
    """An IdP whose outbox holds only this test's messages, so that notices can be counted."""
    return make_idp(OUTBOX_DIR=str(tmp_path / "outbox"))


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


def _bind_new_email(app: Flask, client: FlaskClient, address: str) -> Any:
    """Step 2 of 安全邮箱: a code to ``address``, then the code; returns the last response."""
    assert post_form(client, "/security/email", {"email": address, "send": "1"}).status_code == 200
    code = last_code(app, "mail", to=address)
    return post_form(client, "/security/email", {"email": address, "code": code, "submit": "1"})


def _change_phone(app: Flask, client: FlaskClient, method: str, to: str, phone: str) -> Any:
    """更换安全手机 with a ``verify`` code by ``method`` to ``to``; returns the last response."""
    _verify_by_code(app, client, "/security/phone", method, to)
    code = _send_to_new_phone(app, client, phone)
    return post_form(client, "/security/phone", {"phone": phone, "code": code, "submit": "1"})


def _notices(app: Flask, kind: str, to: str) -> list[dict[str, Any]]:
    """The outbox records without a code (notices, not codes) sent by ``kind`` to ``to``."""
    settle_deliveries(app)
    records = read_records(app.config["OUTBOX_DIR"], SMS_FILE if kind == "sms" else MAIL_FILE)
    return [r for r in records if r["to"] == to and r["code"] is None]


def _notice_events(app: Flask) -> list[dict[str, Any]]:
    """The ``security.notice`` audit events, once the notices sent so far are done."""
    settle_deliveries(app)
    return events(app, "security.notice")


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
    """身份验证 by password (no email yet: FAQ 5), then the code mailed to the new address binds
    it; the other devices are signed out and the security phone is told."""
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
    assert "安全邮箱已绑定" in page and "其他设备上的登录已退出" in page
    fresh = _reload(idp_app, user)
    assert fresh.email == "zhang.san@lut.edu.cn" and fresh.has_security_email
    assert _still_signed_in(client) and not _still_signed_in(other_device)
    [notice] = _notices(idp_app, "sms", OLD_PHONE)
    assert "安全邮箱" in notice["text"] and "z***n@lut.edu.cn" in notice["text"]
    assert _notices(idp_app, "mail", "zhang.san@lut.edu.cn") == []  # the new one is not told
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
    """With an email bound, a wrong code is refused and no new address can skip step 1."""
    user = make_user("2024000001", verified_email="old@lut.edu.cn")
    client = _signed_in(idp_app, "2024000001")
    page = client.get("/security/email").get_data(as_text=True)
    assert "更换安全邮箱" in page and "138****8000" in page and "o***d@lut.edu.cn" in page
    skipped = post_form(client, "/security/email", {"email": "new@lut.edu.cn", "send": "1"})
    assert skipped.status_code == 400
    assert post_form(client, "/security/email", {"method": "sms", "send": "1"}).status_code == 200
    wrong = post_form(client, "/security/email", {"method": "sms", "code": "000000", "submit": "1"})
    assert wrong.status_code == 400 and "验证码错误或已过期" in wrong.get_data(as_text=True)
    code = last_code(idp_app, to=OLD_PHONE)
    right = post_form(client, "/security/email", {"method": "sms", "code": code, "submit": "1"})
    assert right.status_code == 302 and right.location == "/security/email"
    post_form(client, "/security/email", {"email": "new@lut.edu.cn", "send": "1"})
    code = last_code(idp_app, "mail", to="new@lut.edu.cn")
    response = post_form(
        client, "/security/email", {"email": "new@lut.edu.cn", "code": code, "submit": "1"}
    )
    assert response.status_code == 302
    assert _reload(idp_app, user).email == "new@lut.edu.cn"
    assert ("security.verify", "failure") in _actions(idp_app, user)


def test_password_alone_cannot_replace_an_existing_security_email(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """With an email bound, the login password is not offered for 身份验证 and is refused when
    posted anyway: a stolen password or session cannot swap the email for its own."""
    user = make_user("2024000001", verified_email="owner@lut.edu.cn")
    client = _signed_in(idp_app, "2024000001")
    page = client.get("/security/email").get_data(as_text=True)
    assert 'value="password"' not in page and 'name="password"' not in page
    refused = post_form(
        client, "/security/email", {"method": "password", "password": PASSWORD, "submit": "1"}
    )
    assert refused.status_code == 400
    skipped = post_form(client, "/security/email", {"email": "evil@example.com", "send": "1"})
    assert skipped.status_code == 400
    mails = read_records(idp_app.config["OUTBOX_DIR"], MAIL_FILE)
    assert [m for m in mails if m["to"] == "evil@example.com"] == []
    assert _reload(idp_app, user).email == "owner@lut.edu.cn"
    assert ("security.verify", "success") not in _actions(idp_app, user)


def test_code_to_the_current_email_replaces_it_and_the_old_channels_are_told(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """Replacing the email by a code to the email itself: the old address and the phone get a
    notice, the other devices are signed out, and the notice is audited."""
    user = make_user("2024000001", verified_email="owner@lut.edu.cn")
    client = _signed_in(idp_app, "2024000001")
    other_device = _signed_in(idp_app, "2024000001")
    _verify_by_code(idp_app, client, "/security/email", "email", "owner@lut.edu.cn")
    response = _bind_new_email(idp_app, client, "new@lut.edu.cn")
    assert response.status_code == 302 and response.location == "/security"
    assert _reload(idp_app, user).email == "new@lut.edu.cn"
    assert _still_signed_in(client) and not _still_signed_in(other_device)
    [mail] = _notices(idp_app, "mail", "owner@lut.edu.cn")
    assert "安全邮箱已更改" in mail["subject"]
    assert "安全邮箱" in mail["text"] and "n***w@lut.edu.cn" in mail["text"]
    assert len(_notices(idp_app, "sms", OLD_PHONE)) == 1
    [notice] = _notice_events(idp_app)
    assert notice["actor_id"] == user.id and notice["outcome"] == "success"
    assert notice["detail"] == {
        "change": "email",
        "sent": ["138****8000", "o***r@lut.edu.cn"],
        "failed": [],
        "not_sent": [],
    }
    [ended] = events(idp_app, "session.end_others")
    assert ended["detail"] == {"ended": 1, "after": "email.bind"}


def test_password_check_does_not_cover_an_email_bound_in_the_meantime(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """A password 身份验证 made while no email was bound does not replace one bound since (in
    another tab): the flow starts over and nothing is sent."""
    user = make_user("2024000001")
    client = _signed_in(idp_app, "2024000001")
    _verify_by_password(client)
    with idp_app.app_context():
        fresh = db.session.get(User, user.id)
        assert fresh is not None
        fresh.email, fresh.email_verified_at = "owner@lut.edu.cn", utcnow()
        db.session.commit()
    response = _post(client, "/security/email", {"email": "evil@example.com", "send": "1"})
    assert response.status_code == 302 and response.location == "/security/email"
    mails = read_records(idp_app.config["OUTBOX_DIR"], MAIL_FILE)
    assert [m for m in mails if m["to"] == "evil@example.com"] == []
    assert 'name="password"' not in client.get("/security/email").get_data(as_text=True)
    assert _reload(idp_app, user).email == "owner@lut.edu.cn"


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
    """更换安全手机: a code to the old phone, then one to the new phone; the other devices are
    signed out."""
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
    assert "安全手机已更换为 139****9000" in page and "其他设备上的登录已退出" in page
    fresh = _reload(idp_app, user)
    assert fresh.phone == NEW_PHONE and fresh.has_security_phone
    assert _still_signed_in(client) and not _still_signed_in(other_device)
    actions = _actions(idp_app, user)
    assert ("security.verify", "success") in actions and ("phone.bind", "success") in actions
    [ended] = events(idp_app, "session.end_others")
    assert ended["detail"] == {"ended": 1, "after": "phone.bind"}


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
    browser_session = client.get_cookie(idp_app.config["SESSION_COOKIE_NAME"])
    assert browser_session is not None
    done = client.post(
        "/security/phone",
        data={"csrf_token": token, "phone": NEW_PHONE, "code": first, "submit": "1"},
    )
    assert done.status_code == 302 and done.location == "/security"
    # The other tab's (older) cookie:
    client.set_cookie(idp_app.config["SESSION_COOKIE_NAME"], browser_session.value)
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


# After a change: notices and sessions --------------------------------------------------------


def test_phone_change_notice_says_what_when_and_whom_to_call(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """The old phone gets an SMS and the security email a mail: the security phone changed to
    139****9000 at this time, other devices were signed out, call the help desk if not you."""
    make_user("2024000001", verified_email="zhang.san@lut.edu.cn")
    client = _signed_in(idp_app, "2024000001")
    response = _change_phone(idp_app, client, "sms", OLD_PHONE, NEW_PHONE)
    assert response.status_code == 302
    today = (utcnow() + timedelta(hours=8)).strftime("%Y-%m-%d")
    [sms] = _notices(idp_app, "sms", OLD_PHONE)
    [mail] = _notices(idp_app, "mail", "zhang.san@lut.edu.cn")
    for text in (sms["text"], mail["text"]):
        assert "安全手机已于" in text and today in text and "更改为 139****9000" in text
        assert "如非本人操作" in text and idp_app.config["HELP_PHONE"] in text
        assert NEW_PHONE not in text
    assert mail["subject"].endswith("安全手机已更改")
    assert _notices(idp_app, "sms", NEW_PHONE) == []  # the new phone only got its code


def test_stolen_password_cannot_quietly_take_over_both_channels(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """FAQ 5's path taken by someone with only the password (no email on file): binding their
    email texts the owner's phone, changing the phone through it texts it again, and the owner's
    own device is signed out each time, so the owner learns of it and can call the help desk."""
    user = make_user("2024000001")
    owner = _signed_in(idp_app, "2024000001")
    intruder = _signed_in(idp_app, "2024000001")
    _verify_by_password(intruder)
    assert _bind_new_email(idp_app, intruder, "evil@example.com").status_code == 302
    assert not _still_signed_in(owner)
    [first] = _notices(idp_app, "sms", OLD_PHONE)
    assert "安全邮箱" in first["text"] and "e***l@example.com" in first["text"]
    owner = _signed_in(idp_app, "2024000001")
    response = _change_phone(idp_app, intruder, "email", "evil@example.com", NEW_PHONE)
    assert response.status_code == 302
    assert not _still_signed_in(owner)
    assert _reload(idp_app, user).phone == NEW_PHONE
    second = _notices(idp_app, "sms", OLD_PHONE)[-1]
    assert "安全手机" in second["text"] and "139****9000" in second["text"]
    assert [e["detail"]["change"] for e in _notice_events(idp_app)] == [
        "email",
        "phone",
    ]


def test_a_notice_that_cannot_be_sent_does_not_undo_the_change(
    make_idp: AppFactory,
    make_user: MakeUser,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With the mail server down the phone still changes and the SMS notice still goes; the
    failed mail is logged and audited as a failed notice."""
    with socket.socket() as probe:  # a port nothing listens on: the connection is refused
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    app = make_idp(
        OUTBOX_DIR=str(tmp_path / "outbox"),
        MAIL_SERVER="127.0.0.1",
        MAIL_PORT=closed_port,
        MAIL_SECURITY="none",
    )
    user = make_user("2024000001", verified_email="zhang.san@lut.edu.cn")
    client = _signed_in(app, "2024000001")
    response = _change_phone(app, client, "sms", OLD_PHONE, NEW_PHONE)
    assert response.status_code == 302 and response.location == "/security"
    assert _reload(app, user).phone == NEW_PHONE
    assert len(_notices(app, "sms", OLD_PHONE)) == 1
    [notice] = _notice_events(app)
    assert notice["outcome"] == "failure"
    assert notice["detail"]["sent"] == ["138****8000"]
    assert notice["detail"]["failed"] == ["z***n@lut.edu.cn"]
    assert "sending the phone change notice by email failed" in caplog.text


def test_an_unexpected_error_while_sending_a_notice_is_logged_not_shown(
    idp_app: Flask, make_user: MakeUser, caplog: pytest.LogCaptureFixture
) -> None:
    """Whatever goes wrong in a notice, the change made stands and the user sees it done."""
    user = make_user("2024000001")
    client = _signed_in(idp_app, "2024000001")
    _verify_by_password(client)
    code_sender = idp_app.extensions["idp_sms"]

    class Broken:
        def send(self, message: Any) -> None:
            raise RuntimeError("unexpected")

    post_form(client, "/security/email", {"email": "zhang.san@lut.edu.cn", "send": "1"})
    code = last_code(idp_app, "mail", to="zhang.san@lut.edu.cn")
    idp_app.extensions["idp_sms"] = Broken()
    try:
        response = post_form(
            client,
            "/security/email",
            {"email": "zhang.san@lut.edu.cn", "code": code, "submit": "1"},
        )
    finally:
        idp_app.extensions["idp_sms"] = code_sender
    assert response.status_code == 302 and response.location == "/security"
    assert _reload(idp_app, user).email == "zhang.san@lut.edu.cn"
    [notice] = _notice_events(idp_app)
    assert notice["outcome"] == "failure" and notice["detail"]["failed"] == ["138****8000"]
    assert "sending the email change notice by sms failed" in caplog.text


def test_a_slow_gateway_does_not_hold_the_page(idp_app: Flask, make_user: MakeUser) -> None:
    """The notice goes in the background: the page answers while the SMS gateway still hangs,
    and the notice is audited once it went, with the address of the request that caused it."""
    user = make_user("2024000001")
    client = _signed_in(idp_app, "2024000001")
    _verify_by_password(client)
    post_form(client, "/security/email", {"email": "zhang.san@lut.edu.cn", "send": "1"})
    code = last_code(idp_app, "mail", to="zhang.san@lut.edu.cn")
    real_sender = idp_app.extensions["idp_sms"]
    release = threading.Event()

    class Hanging:
        def send(self, message: Any) -> None:
            release.wait(10)
            real_sender.send(message)

    idp_app.extensions["idp_sms"] = Hanging()
    try:
        started = time.monotonic()
        response = post_form(
            client,
            "/security/email",
            {"email": "zhang.san@lut.edu.cn", "code": code, "submit": "1"},
        )
        answered_in = time.monotonic() - started
    finally:
        idp_app.extensions["idp_sms"] = real_sender
        release.set()
    assert response.status_code == 302 and response.location == "/security"
    assert answered_in < 5
    assert _reload(idp_app, user).email == "zhang.san@lut.edu.cn"
    assert len(_notices(idp_app, "sms", OLD_PHONE)) == 1
    [notice] = _notice_events(idp_app)
    assert notice["outcome"] == "success" and notice["detail"]["sent"] == ["138****8000"]
    assert notice["ip"] == "127.0.0.1"


def test_notices_stuck_on_a_slow_mail_server_do_not_hold_up_sign_in_codes(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """Notices have senders of their own: with more of them stuck on a hanging mail server than
    any pool has threads, an SMS sign-in code still goes out at once."""
    real_mail = idp_app.extensions["idp_mail"]
    release = threading.Event()

    class Hanging:
        def send(self, message: Any) -> None:
            release.wait(20)
            real_mail.send(message)

    make_user("2024000001")  # the security phone OLD_PHONE
    idp_app.extensions["idp_mail"] = Hanging()
    try:
        for i in range(6):
            owner = make_user(f"20249900{i:02d}", verified_phone=None, verified_email=f"u{i}@x.cn")
            with idp_app.test_request_context("/security/phone", method="POST"):
                user = db.session.get(User, owner.id)
                before = (Channel(EMAIL, f"u{i}@x.cn"),)
                notify_security_change(user, "phone", Channel(SMS, NEW_PHONE), before)
        response = post_form(
            idp_app.test_client(), "/login?tab=sms", {"phone": OLD_PHONE, "send": "1"}
        )
        assert response.status_code == 200
        deadline = time.monotonic() + 5
        while not _codes_to(idp_app, OLD_PHONE) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(_codes_to(idp_app, OLD_PHONE)) == 1 and not release.is_set()
    finally:
        release.set()
        idp_app.extensions["idp_mail"] = real_mail
    assert len(_notice_events(idp_app)) == 6


def _codes_to(app: Flask, phone: str) -> list[dict[str, Any]]:
    """The codes texted to ``phone`` so far, without waiting for the background senders."""
    records = read_records(app.config["OUTBOX_DIR"], SMS_FILE)
    return [r for r in records if r["to"] == phone and r["code"]]


@pytest.fixture
def aliyun() -> Iterator[FakeAliyunSms]:
    """A fake Aliyun SMS that knows only the security-notice template."""
    with FakeAliyunSms(template_code="SMS_NOTICE") as gateway:
        yield gateway


def _vendor_app(make_idp: AppFactory, gateway: FakeAliyunSms, tmp: Path, **extra: str) -> Flask:
    settings = {**gateway.settings(), "SMS_TEMPLATE_ID": "SMS_CODES", **extra}
    return make_idp(SMS_PROVIDER="aliyun", OUTBOX_DIR=str(tmp / "outbox"), **settings)


def test_vendor_without_notice_template_sends_the_notice_by_mail_only(
    make_idp: AppFactory, make_user: MakeUser, aliyun: FakeAliyunSms, tmp_path: Path
) -> None:
    """An SMS vendor sends only approved templates: without IDP_SMS_SECURITY_NOTICE_TEMPLATE_ID
    the phone is not texted (audited as not sent) and the old email still gets its mail."""
    app = _vendor_app(make_idp, aliyun, tmp_path)
    make_user("2024000001", verified_email="owner@lut.edu.cn")
    client = _signed_in(app, "2024000001")
    _verify_by_code(app, client, "/security/email", "email", "owner@lut.edu.cn")
    assert _bind_new_email(app, client, "new@lut.edu.cn").status_code == 302
    settle_deliveries(app)
    assert aliyun.received == []
    assert len(_notices(app, "mail", "owner@lut.edu.cn")) == 1
    [notice] = _notice_events(app)
    assert notice["outcome"] == "success"
    assert notice["detail"]["not_sent"] == ["138****8000"]


def test_vendor_sends_the_notice_through_its_approved_template(
    make_idp: AppFactory, make_user: MakeUser, aliyun: FakeAliyunSms, tmp_path: Path
) -> None:
    """With the notice template set, the old phone is texted through it; its one parameter
    says what changed, and no code goes out."""
    app = _vendor_app(make_idp, aliyun, tmp_path, SMS_SECURITY_NOTICE_TEMPLATE_ID="SMS_NOTICE")
    make_user("2024000001", verified_email="owner@lut.edu.cn")
    client = _signed_in(app, "2024000001")
    _verify_by_code(app, client, "/security/email", "email", "owner@lut.edu.cn")
    assert _bind_new_email(app, client, "new@lut.edu.cn").status_code == 302
    settle_deliveries(app)
    [sms] = aliyun.received
    assert sms.template_id == "SMS_NOTICE" and sms.phone == OLD_PHONE
    assert sms.params == ("安全邮箱",)
