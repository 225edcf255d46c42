"""两步验证 in 安全中心: turning it on asks for the login password before any key is shown and
refuses a key older than its 30 minutes; with the authenticator lost, an unused recovery code
turns it off or brings new recovery codes."""

from __future__ import annotations

import re
import time

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp.audit.models import AuditEvent
from idp.directory.models import User, utcnow
from idp.extensions import db
from idp.mfa import operations as mfa
from idp.mfa.models import TotpCredential
from tests.idp.conftest import PASSWORD, MakeUser, csrf_token, post_form, sign_in
from tests.idp.console_support import enable_totp
from tests.idp.mfa_support import STEP, enable_totp_with_codes


def _secret_on(page: str) -> str | None:
    match = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', page)
    return match.group(1).replace(" ", "") if match else None


def _totp_on(app: Flask, user: User) -> bool:
    with app.app_context():
        fresh = db.session.get(User, user.id)
        assert fresh is not None
        return mfa.totp_enabled(fresh)


def _audited(app: Flask, user: User, action: str) -> list[tuple[str, str | None]]:
    with app.app_context():
        rows = db.session.scalars(
            db.select(AuditEvent)
            .where(AuditEvent.actor_id == user.id, AuditEvent.action == action)
            .order_by(AuditEvent.id)
        )
        return [(row.outcome, row.detail) for row in rows]


def _past_the_password(client: FlaskClient) -> str:
    """Give the login password on 开启两步验证; returns the key then shown."""
    done = post_form(client, "/security/totp", {"password": PASSWORD})
    assert done.status_code == 302 and done.location == "/security/totp"
    secret = _secret_on(client.get("/security/totp").get_data(as_text=True))
    assert secret is not None
    return secret


# 开启两步验证须先输入登录密码 ------------------------------------------------------------------


def test_enabling_asks_for_the_login_password_before_showing_the_key(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """A session left open on a lab PC shows no key without the password; a wrong one shows
    none either and is audited; the right one leads to the QR code and the first code."""
    user = make_user("2024000001")
    client = idp_app.test_client()
    sign_in(client, "2024000001")
    first = client.get("/security/totp")
    page = first.get_data(as_text=True)
    assert first.status_code == 200 and first.headers["Cache-Control"] == "no-store"
    assert _secret_on(page) is None and "data:image/svg+xml" not in page
    assert "请先输入登录密码" in page and 'autocomplete="current-password"' in page
    with idp_app.app_context():
        assert db.session.scalars(db.select(TotpCredential)).all() == []

    wrong = post_form(client, "/security/totp", {"password": "Not-the-password-1"})
    assert wrong.status_code == 401 and "当前密码不正确" in wrong.get_data(as_text=True)
    assert _secret_on(wrong.get_data(as_text=True)) is None
    assert ("failure", '{"reason": "password"}') in _audited(idp_app, user, "security.verify")

    secret = _past_the_password(client)
    done = post_form(client, "/security/totp", {"code": pyotp.TOTP(secret).now()})
    assert done.status_code == 200 and "保存您的恢复码" in done.get_data(as_text=True)
    assert _totp_on(idp_app, user)
    assert client.get("/security/totp").location == "/security"


def test_a_bare_session_cannot_confirm_an_authenticator(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """The key was drawn after the owner's password in another browser: the intruder's
    session, which never gave the password, cannot confirm it with a code."""
    user = make_user("2024000001")
    owner = idp_app.test_client()
    sign_in(owner, "2024000001")
    secret = _past_the_password(owner)
    intruder = idp_app.test_client()
    sign_in(intruder, "2024000001")
    token = csrf_token(intruder, "/security")
    refused = intruder.post(
        "/security/totp", data={"csrf_token": token, "code": pyotp.TOTP(secret).now()}
    )
    assert refused.status_code == 302 and refused.location == "/security/totp"
    assert "操作已超时" in intruder.get("/security").get_data(as_text=True)
    assert not _totp_on(idp_app, user)


def test_a_key_older_than_its_ttl_is_refused_at_confirmation(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """A page left open for hours: its key (maybe seen by someone else) no longer turns 两步验证
    on (409, start again), and the page shows a new one."""
    user = make_user("2024000001")
    client = idp_app.test_client()
    sign_in(client, "2024000001")
    secret = _past_the_password(client)
    with idp_app.app_context():
        pending = db.session.scalars(db.select(TotpCredential)).one()
        pending.created_at = utcnow() - mfa.ENROLMENT_TTL * 4
        db.session.commit()
    # The form as it stands (a GET of /security/totp would draw a new key first).
    token = csrf_token(client, "/security")
    stale = client.post(
        "/security/totp", data={"csrf_token": token, "code": pyotp.TOTP(secret).now()}
    )
    page = stale.get_data(as_text=True)
    assert stale.status_code == 409 and "该密钥已超过 30 分钟，已失效" in page
    assert not _totp_on(idp_app, user)
    fresh = _secret_on(page)
    assert fresh is not None and fresh != secret
    done = post_form(client, "/security/totp", {"code": pyotp.TOTP(fresh).now()})
    assert done.status_code == 200 and _totp_on(idp_app, user)


def test_confirm_enrolment_refuses_a_key_past_its_ttl(idp_app: Flask, make_user: MakeUser) -> None:
    """The rule itself: a pending key older than ENROLMENT_TTL is dropped, not confirmed."""
    user = make_user("2024000001")
    with idp_app.test_request_context():
        fresh = db.session.get(User, user.id)
        assert fresh is not None
        secret = mfa.enrolment_secret(fresh)
        pending = db.session.scalars(db.select(TotpCredential)).one()
        pending.created_at = utcnow() - mfa.ENROLMENT_TTL
        db.session.commit()
        with pytest.raises(mfa.MfaError) as stale:
            mfa.confirm_enrolment(fresh, pyotp.TOTP(secret).now())
        db.session.commit()
        assert stale.value.status == 409
        assert not mfa.totp_enabled(fresh)
        assert db.session.scalars(db.select(TotpCredential)).all() == []


# 验证器丢失时用恢复码 ------------------------------------------------------------------------


def _enable_with_codes(app: Flask, user: User) -> list[str]:
    return enable_totp_with_codes(app, user)[1]


def test_recovery_code_stands_in_for_the_app_code(idp_app: Flask, make_user: MakeUser) -> None:
    """The rules themselves: regenerate_recovery_codes and disable_totp take an unused recovery
    code (spent) where a code from the app is expected."""
    user = make_user("2024000001")
    codes = _enable_with_codes(idp_app, user)
    with idp_app.test_request_context():
        fresh = db.session.get(User, user.id)
        assert fresh is not None
        new = mfa.regenerate_recovery_codes(fresh, codes[0])
        db.session.commit()
        mfa.disable_totp(fresh, PASSWORD, new[0])
        db.session.commit()
        assert not mfa.totp_enabled(fresh)


def _signed_in_with_a_recovery_code(app: Flask, codes: list[str]) -> FlaskClient:
    client = app.test_client()
    sign_in(client, "2024000001")
    done = post_form(client, "/login/verify?mode=recovery", {"recovery_code": codes[0]})
    assert done.status_code == 302
    return client


def test_recovery_code_turns_two_step_off_when_the_authenticator_is_lost(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """关闭两步验证 with the password and an unused recovery code (spent), so the owner can
    enrol the new phone; a code already used does not do it."""
    user = make_user("2024000001")
    codes = _enable_with_codes(idp_app, user)
    client = _signed_in_with_a_recovery_code(idp_app, codes)
    page = client.get("/security/totp/disable").get_data(as_text=True)
    assert "动态验证码或恢复码" in page and "未使用的恢复码" in page
    used = post_form(client, "/security/totp/disable", {"password": PASSWORD, "code": codes[0]})
    assert used.status_code == 401 and "恢复码错误或已使用过" in used.get_data(as_text=True)
    assert _totp_on(idp_app, user)
    off = post_form(
        client, "/security/totp/disable", {"password": PASSWORD, "code": codes[1].upper()}
    )
    assert off.status_code == 302 and off.location == "/security"
    assert not _totp_on(idp_app, user)
    assert [o for o, _ in _audited(idp_app, user, "mfa.recovery_code.use")] == ["success"] * 2
    assert [o for o, _ in _audited(idp_app, user, "mfa.disable")] == ["success"]


def test_recovery_code_brings_new_recovery_codes_when_the_authenticator_is_lost(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """重新生成恢复码 with an unused recovery code: ten new codes, every old one void."""
    user = make_user("2024000001")
    codes = _enable_with_codes(idp_app, user)
    client = _signed_in_with_a_recovery_code(idp_app, codes)
    page = client.get("/security/totp/recovery-codes").get_data(as_text=True)
    assert "未使用的恢复码" in page
    done = post_form(client, "/security/totp/recovery-codes", {"code": codes[1]})
    new = re.findall(r"<li>([0-9a-z]{5}-[0-9a-z]{5})</li>", done.get_data(as_text=True))
    assert done.status_code == 200 and len(new) == 10 and not set(new) & set(codes)
    with idp_app.test_request_context():
        fresh = db.session.get(User, user.id)
        assert fresh is not None
        assert mfa.recovery_codes_left(fresh) == 10
    assert [o for o, _ in _audited(idp_app, user, "mfa.recovery_codes.regenerate")] == ["success"]


def test_signing_out_other_devices_stops_trusting_them(idp_app: Flask, make_user: MakeUser) -> None:
    """退出其他设备 (a laptop left somewhere): that browser is signed out and, trusted for 30 days
    before, asks for the code again; this browser stays trusted."""
    user = make_user("2024000001")
    secret = enable_totp(idp_app, user)
    totp = pyotp.TOTP(secret)

    def trusted_browser(at: float) -> FlaskClient:
        browser = idp_app.test_client()
        sign_in(browser, user.account)
        done = post_form(browser, "/login/verify", {"code": totp.at(at), "trust": "y"})
        assert done.status_code == 302
        return browser

    laptop = trusted_browser(time.time())
    owner = trusted_browser(time.time() + STEP)
    token = csrf_token(owner, "/security")
    assert (
        owner.post("/security/sessions/end-others", data={"csrf_token": token}).status_code == 302
    )
    assert laptop.get("/security").status_code == 302  # signed out there
    assert sign_in(laptop, user.account).location == "/login/verify"
    assert post_form(owner, "/logout", {}).status_code == 302
    assert sign_in(owner, user.account).location != "/login/verify"  # still trusted here
