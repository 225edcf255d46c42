"""Pages around the edges: a 安全中心 form sent after the sign-in ran out, the count of devices
signed out, the 身份验证 errors a screen reader must be able to find, and a 同意授权 page sent
after its token went stale."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient

from idp.auth.models import SsoSession
from idp.directory.models import utcnow
from idp.extensions import db
from tests.idp.conftest import PASSWORD, MakeUser, csrf_token, post_form, sign_in
from tests.idp.oidc_support import authorize_url, redirect_params, register

OLD_PHONE = "13800138000"
NEW_ADDRESS = "zhangsan@example.com"
SIGNED_OUT_MID_FORM = "登录已超时，本次填写的内容没有保存。请重新登录后再操作。"


def _signed_in(app: Flask, account: str) -> FlaskClient:
    """A new browser signed in as ``account``."""
    client = app.test_client()
    assert sign_in(client, account).status_code == 302
    return client


def _session_id(client: FlaskClient) -> str:
    """The id the IdP keeps for this browser's session: the SHA-256 of its cookie."""
    cookie = client.get_cookie("hongliu_sso")
    assert cookie is not None
    return hashlib.sha256(cookie.value.encode()).hexdigest()


def _leave_idle(app: Flask, client: FlaskClient) -> None:
    """This browser's session has been idle past the timeout: it signs nobody in any more."""
    idle = app.config["SESSION_IDLE_TIMEOUT"]
    with app.app_context():
        stored = db.session.get(SsoSession, _session_id(client))
        assert stored is not None
        stored.last_seen_at = utcnow() - timedelta(seconds=idle + 60)
        db.session.commit()


# A form sent after the sign-in ran out ------------------------------------------------------


def test_form_sent_after_the_sign_in_ran_out_says_so_and_comes_back_to_the_wizard(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """The new email typed after the session went idle: nothing is sent, the sign-in page says
    why, and signing in leads back to 绑定安全邮箱 rather than the overview."""
    make_user("2024000001", verified_phone=OLD_PHONE)
    client = _signed_in(idp_app, "2024000001")
    verified = post_form(
        client, "/security/email", {"method": "password", "password": PASSWORD, "submit": "1"}
    )
    assert verified.status_code == 302
    token = csrf_token(client, "/security/email")
    _leave_idle(idp_app, client)

    late = client.post(
        "/security/email", data={"csrf_token": token, "email": NEW_ADDRESS, "send": "1"}
    )
    assert late.status_code == 302 and late.location == "/login?next=/security/email"
    login_page = client.get(late.location).get_data(as_text=True)
    assert SIGNED_OUT_MID_FORM in login_page

    back = sign_in(client, "2024000001", next="/security/email")
    assert back.status_code == 302 and back.location == "/security/email"


def test_button_pressed_after_the_sign_in_ran_out_returns_to_the_overview_with_a_message(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """退出其他设备 pressed on a page left open too long: the message says why nothing happened,
    and the way back is the overview (the button's own address has no page)."""
    make_user("2024000001", verified_phone=OLD_PHONE)
    client = _signed_in(idp_app, "2024000001")
    other = _signed_in(idp_app, "2024000001")
    token = csrf_token(client, "/security")
    _leave_idle(idp_app, client)

    late = client.post("/security/sessions/end-others", data={"csrf_token": token})
    assert late.status_code == 302 and late.location == "/login?next=/security"
    assert SIGNED_OUT_MID_FORM in client.get(late.location).get_data(as_text=True)
    assert other.get("/security").status_code == 200  # nothing was done for them


def test_visiting_a_page_signed_out_shows_no_expiry_message(idp_client: FlaskClient) -> None:
    """A bookmark opened while signed out is an ordinary sign-in, not a lost form."""
    response = idp_client.get("/security/email")
    assert response.status_code == 302
    assert SIGNED_OUT_MID_FORM not in idp_client.get(response.location).get_data(as_text=True)


# 退出其他设备 ---------------------------------------------------------------------------------


def test_signing_out_other_devices_counts_only_the_devices_listed(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """A session already over by idleness is not listed, so it is not counted as a device
    signed out either: the message matches the list the user saw."""
    make_user("2024000001", verified_phone=OLD_PHONE)
    laptop = _signed_in(idp_app, "2024000001")
    phone = _signed_in(idp_app, "2024000001")
    forgotten = _signed_in(idp_app, "2024000001")
    _leave_idle(idp_app, forgotten)
    listed = laptop.get("/security").get_data(as_text=True)
    assert listed.count('name="session_id"') == 2  # this one and the phone

    response = laptop.post(
        "/security/sessions/end-others", data={"csrf_token": csrf_token(laptop, "/security")}
    )
    assert response.status_code == 302
    page = laptop.get("/security").get_data(as_text=True)
    assert "已退出其他 1 台设备上的登录。" in page
    assert phone.get("/security").status_code == 302
    with idp_app.app_context():
        # The idle row goes as well: nothing of the other browsers is left.
        assert db.session.get(SsoSession, _session_id(forgotten)) is None


# Errors a screen reader can find -------------------------------------------------------------


def test_wrong_code_is_tied_to_its_box_for_screen_readers(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """A wrong 身份验证 code: the code box is marked invalid and described by the message, as
    the other boxes of the IdP are."""
    make_user("2024000001", verified_phone=OLD_PHONE)
    client = _signed_in(idp_app, "2024000001")
    response = post_form(
        client, "/security/phone", {"method": "sms", "code": "000000", "submit": "1"}
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert 'aria-describedby="code-error"' in page and 'aria-invalid="true"' in page
    assert 'id="code-error"' in page


def test_tampered_method_error_is_tied_to_the_choices(idp_app: Flask, make_user: MakeUser) -> None:
    """A 验证方式 the page did not offer: the group of choices is described by the message."""
    make_user("2024000001", verified_phone=OLD_PHONE)
    client = _signed_in(idp_app, "2024000001")
    response = post_form(
        client, "/security/phone", {"method": "password", "password": PASSWORD, "submit": "1"}
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert 'aria-describedby="method-error"' in page and 'id="method-error"' in page


# 同意授权 sent with a stale token -----------------------------------------------------------


def test_consent_sent_after_signing_in_again_elsewhere_says_to_choose_again(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """The consent page was left open while the person signed in again in another tab (a new
    CSRF secret): 同意 issues nothing, and the page shown again says why, so that the second
    click — with the new token — goes through."""
    make_user("2024000001", verified_phone=OLD_PHONE)
    outsider = register(idp_app, first_party=False, require_pkce=False, name="校外选课助手")
    browser = _signed_in(idp_app, "2024000001")
    url = authorize_url(outsider, scope="openid profile", state="s")
    stale = dict(
        re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', browser.get(url).text)
    )
    assert sign_in(browser, "2024000001").status_code == 302  # another tab, same browser

    refused = browser.post("/oauth2/authorize", data={**stale, "decision": "allow"})
    assert refused.status_code == 400 and "Location" not in refused.headers
    assert "页面已过期，请重新选择“同意”或“拒绝”。" in refused.text
    fresh = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', refused.text))
    got = redirect_params(browser.post("/oauth2/authorize", data={**fresh, "decision": "allow"}))
    assert got["code"] and got["state"] == "s"


def test_consent_page_first_shown_carries_no_expiry_message(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """An ordinary consent page does not talk about an expired page."""
    make_user("2024000001", verified_phone=OLD_PHONE)
    outsider = register(idp_app, first_party=False, require_pkce=False, name="校外选课助手")
    browser = _signed_in(idp_app, "2024000001")
    page = browser.get(authorize_url(outsider, scope="openid"))
    assert page.status_code == 200 and "页面已过期" not in page.text
