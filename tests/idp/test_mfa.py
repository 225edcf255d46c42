"""两步验证 (TOTP): codes accepted once and rate-limited, recovery codes, trusted devices, every
sign-in path asking for the code, the security centre pages and the step-up page."""

from __future__ import annotations

import hashlib
import re
import time
from typing import Any

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import inspect

from idp.audit.models import AuditEvent
from idp.auth.models import SsoSession
from idp.auth.operations import find_user_by_identifier
from idp.directory.models import User, utcnow
from idp.extensions import db
from idp.mfa import devices
from idp.mfa import operations as mfa
from idp.mfa.models import RecoveryCode, TotpCredential, TrustedDevice
from tests.idp.conftest import (
    PASSWORD,
    MakeUser,
    csrf_token,
    last_code,
    post_form,
    session_count,
    sign_in,
)
from tests.idp.mfa_support import STEP, park_with_wechat
from tests.idp.mfa_support import enable_totp_with_codes as _enable


def _user(app: Flask, user: User) -> User:
    with app.app_context():
        fresh = db.session.get(User, user.id)
        assert fresh is not None
        db.session.expunge(fresh)
        return fresh


def _code(secret: str, steps_ahead: int = 0) -> str:
    """The code an authenticator app shows now (or ``steps_ahead`` steps later, within drift)."""
    return pyotp.TOTP(secret).at(time.time() + steps_ahead * STEP)


def _actions(app: Flask, user: User) -> list[tuple[str, str]]:
    with app.app_context():
        rows = db.session.scalars(
            db.select(AuditEvent)
            .where(AuditEvent.target_id == user.id, AuditEvent.action.like("mfa.%"))
            .order_by(AuditEvent.id)
        )
        return [(row.action, row.outcome) for row in rows]


def _session_methods(app: Flask, client: FlaskClient) -> list[str]:
    cookie = client.get_cookie("hongliu_sso")
    assert cookie is not None
    with app.app_context():
        sso = db.session.get(SsoSession, hashlib.sha256(cookie.value.encode()).hexdigest())
        assert sso is not None
        return sso.methods.split(",")


def _verify(client: FlaskClient, data: dict[str, Any], url: str = "/login/verify") -> Any:
    return post_form(client, url, data)


# 验证码只能用一次、限流 ------------------------------------------------------------------------


def test_code_is_accepted_once(idp_app: Flask, make_user: MakeUser) -> None:
    """A code that signed someone in cannot be used again, even within its 30 seconds."""
    user = make_user()
    secret, _ = _enable(idp_app, user)
    now = time.time()
    code = pyotp.TOTP(secret).at(now)
    with idp_app.test_request_context():
        fresh = db.session.get(User, user.id)
        assert fresh is not None
        mfa.verify_totp(fresh, code, at=now)
        db.session.commit()
        with pytest.raises(mfa.MfaError) as replay:
            mfa.verify_totp(fresh, code, at=now)
        assert replay.value.status == 401


def test_earlier_step_is_refused_after_a_later_one(idp_app: Flask, make_user: MakeUser) -> None:
    """Within the drift window, a code from before the last accepted one is refused."""
    user = make_user()
    secret, _ = _enable(idp_app, user)
    now = time.time()
    totp = pyotp.TOTP(secret)
    with idp_app.test_request_context():
        fresh = db.session.get(User, user.id)
        assert fresh is not None
        mfa.verify_totp(fresh, totp.at(now + STEP), at=now)
        with pytest.raises(mfa.MfaError):
            mfa.verify_totp(fresh, totp.at(now), at=now)
        credential = db.session.scalar(db.select(TotpCredential).filter_by(user_id=user.id))
        assert credential is not None
        assert credential.last_used_step == int((now + STEP) // STEP)


def test_codes_outside_the_drift_window_are_refused(idp_app: Flask, make_user: MakeUser) -> None:
    """Only the previous, current and next 30-second codes are valid."""
    user = make_user()
    secret, _ = _enable(idp_app, user)
    now = time.time()
    with idp_app.test_request_context():
        fresh = db.session.get(User, user.id)
        assert fresh is not None
        for far in (now + 3 * STEP, now - 3 * STEP):
            with pytest.raises(mfa.MfaError):
                mfa.verify_totp(fresh, pyotp.TOTP(secret).at(far), at=now)
        mfa.verify_totp(fresh, pyotp.TOTP(secret).at(now - STEP), at=now)


def test_wrong_code_is_counted_and_audited(idp_app: Flask, make_user: MakeUser) -> None:
    """A wrong code counts towards the limit and leaves a 验证失败 audit event."""
    user = make_user()
    secret, _ = _enable(idp_app, user)
    wrong = "000000" if _code(secret) != "000000" else "111111"
    with idp_app.test_request_context():
        fresh = db.session.get(User, user.id)
        assert fresh is not None
        with pytest.raises(mfa.MfaError) as refused:
            mfa.verify_totp(fresh, wrong)
        db.session.commit()
        assert refused.value.status == 401
        assert mfa.failures(fresh) == 1
        mfa.verify_totp(fresh, _code(secret))
        assert mfa.failures(fresh) == 0
    assert ("mfa.verify", "failure") in _actions(idp_app, user)


def test_five_wrong_codes_lock_verification(idp_app: Flask, make_user: MakeUser) -> None:
    """After five wrong codes even the right one is refused for 15 minutes (HTTP 429)."""
    user = make_user()
    secret, _ = _enable(idp_app, user)
    with idp_app.test_request_context():
        fresh = db.session.get(User, user.id)
        assert fresh is not None
        statuses = []
        for _ in range(5):
            with pytest.raises(mfa.MfaError) as refused:
                mfa.verify_totp(fresh, "12345x")
            statuses.append(refused.value.status)
        assert statuses == [401, 401, 401, 401, 429]
        assert mfa.is_locked(fresh)
        with pytest.raises(mfa.MfaError) as locked:
            mfa.verify_totp(fresh, _code(secret))
        assert locked.value.status == 429 and "15 分钟" in locked.value.message
        with pytest.raises(mfa.MfaError):
            mfa.use_recovery_code(fresh, "whatever")


def test_recovery_code_works_once(idp_app: Flask, make_user: MakeUser) -> None:
    """Each of the ten recovery codes signs in once; typed in capitals with spaces it still fits."""
    user = make_user()
    _, codes = _enable(idp_app, user)
    assert len(codes) == 10 and len(set(codes)) == 10
    with idp_app.test_request_context():
        fresh = db.session.get(User, user.id)
        assert fresh is not None
        assert mfa.use_recovery_code(fresh, " " + codes[0].upper().replace("-", " ")) == 9
        db.session.commit()
        with pytest.raises(mfa.MfaError) as again:
            mfa.use_recovery_code(fresh, codes[0])
        assert again.value.status == 401
        db.session.commit()
        stored = db.session.scalars(db.select(RecoveryCode.code_hash)).all()
        assert codes[1] not in stored and all(len(h) == 64 for h in stored)
    assert ("mfa.recovery_code.use", "success") in _actions(idp_app, user)


def test_secret_is_encrypted_at_rest(idp_app: Flask, make_user: MakeUser) -> None:
    """The database holds a Fernet token under the data key, never the base32 secret."""
    user = make_user()
    secret, _ = _enable(idp_app, user)
    with idp_app.app_context():
        credential = db.session.scalar(db.select(TotpCredential).filter_by(user_id=user.id))
        assert credential is not None and credential.confirmed_at is not None
        assert secret not in credential.secret_encrypted
        assert credential.secret_encrypted.startswith("gAAAA")  # Fernet
        assert mfa._secret(credential) == secret


def test_help_desk_reset_removes_totp_codes_and_devices(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """reset_totp (lost phone) removes everything and records who did it and why."""
    user = make_user()
    agent = make_user("2024900001")
    _enable(idp_app, user)
    with idp_app.test_request_context():
        fresh = db.session.get(User, user.id)
        actor = db.session.get(User, agent.id)
        assert fresh is not None and actor is not None
        devices.trust_device(fresh, "Firefox", "127.0.0.1")
        assert mfa.reset_totp(fresh, actor=actor, reason="手机丢失，已核验证件") is True
        db.session.commit()
        assert not mfa.totp_enabled(fresh)
        for model in (TotpCredential, RecoveryCode, TrustedDevice):
            assert db.session.scalars(db.select(model).filter_by(user_id=user.id)).all() == []
        assert mfa.reset_totp(fresh, actor=actor, reason="again") is False
        event = db.session.scalar(db.select(AuditEvent).filter_by(action="mfa.reset"))
        assert event is not None and event.actor_id == agent.id and event.target_id == user.id
        assert "手机丢失" in (event.detail or "")


def test_enrolment_secret_is_kept_for_a_reload_but_not_forever(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """Reloading 开启两步验证 shows the same key; after 30 minutes a new one is drawn."""
    user = make_user()
    with idp_app.test_request_context():
        fresh = db.session.get(User, user.id)
        assert fresh is not None
        first = mfa.enrolment_secret(fresh)
        db.session.commit()
        assert mfa.enrolment_secret(fresh) == first
        pending = db.session.scalars(db.select(TotpCredential)).one()
        pending.created_at = utcnow() - mfa.ENROLMENT_TTL
        db.session.commit()
        assert mfa.enrolment_secret(fresh) != first
        assert not mfa.totp_enabled(fresh)


# 每一种登录方式都要输入动态验证码 -------------------------------------------------------------


def test_password_sign_in_asks_for_the_code(idp_app: Flask, make_user: MakeUser) -> None:
    """账号登录 → 两步验证 page; no session until the right code; then "totp" is recorded."""
    user = make_user("2024000001")
    secret, _ = _enable(idp_app, user)
    client = idp_app.test_client()
    first = sign_in(client, "2024000001", next="/security")
    assert first.status_code == 302 and first.location == "/login/verify"
    assert session_count(idp_app, user) == 0
    assert client.get("/security").status_code == 302
    page = client.get("/login/verify").get_data(as_text=True)
    assert "两步验证" in page and "使用恢复码" in page and "30 天内在此设备上免验证" in page

    wrong = _verify(client, {"code": "000000" if _code(secret) != "000000" else "111111"})
    assert wrong.status_code == 401 and "验证码错误" in wrong.get_data(as_text=True)
    assert session_count(idp_app, user) == 0

    done = _verify(client, {"code": _code(secret)})
    assert done.status_code == 302 and done.location == "/security"
    assert _session_methods(idp_app, client) == ["password", "totp"]
    assert client.get("/security").status_code == 200
    assert client.get("/login/verify").location == "/login"  # the pending sign-in is used up


def test_sign_in_lookup_loads_the_totp_flag_with_the_account(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """The account lookup of a sign-in carries "has a confirmed authenticator" in the same
    query, for each identifier; an enrolment not yet confirmed does not count."""
    on = make_user("2024000001", verified_phone="13900000001", id_number="11010519491231002X")
    off = make_user("2024000002", verified_phone="13900000002", id_number="110105194912310038")
    _enable(idp_app, on)
    with idp_app.test_request_context():
        mfa.enrolment_secret(db.session.get(User, off.id))  # started, never confirmed
        db.session.commit()
    with idp_app.test_request_context():
        for identifier, expected in [
            ("2024000001", True),
            ("13900000001", True),
            ("11010519491231002X", True),
            ("2024000002", False),
            ("13900000002", False),
        ]:
            db.session.expunge_all()
            user = find_user_by_identifier(identifier)
            assert user is not None
            assert inspect(user).dict["totp_confirmed"] is expected, identifier
            assert devices.second_factor_due(user, None) is expected
            assert mfa.totp_enabled(user) is expected  # the query agrees with the column


def test_sms_sign_in_asks_for_the_code(idp_app: Flask, make_user: MakeUser) -> None:
    """短信登录 is a first factor too: the code is asked for afterwards."""
    user = make_user("2024000001")
    secret, _ = _enable(idp_app, user)
    client = idp_app.test_client()
    post_form(client, "/login?tab=sms", {"phone": "13800138000", "send": "1"})
    code = last_code(idp_app, to="13800138000")
    sent = post_form(client, "/login?tab=sms", {"phone": "13800138000", "code": code})
    assert sent.status_code == 302 and sent.location == "/login/verify"
    assert session_count(idp_app, user) == 0
    done = _verify(client, {"code": _code(secret)})
    assert done.status_code == 302
    assert _session_methods(idp_app, client) == ["sms", "totp"]


def test_wechat_sign_in_asks_for_the_code(make_idp: Any, make_user: MakeUser) -> None:
    """扫码登录 with a bound WeChat is a first factor too: the code is asked for afterwards."""
    from tests.fakes.wechat import FakeWeChat, WeChatUser

    person = WeChatUser("o-mfa-openid", "u-mfa-unionid", "小明")
    with FakeWeChat() as fake:
        app = make_idp(**fake.settings(timeout=0.5))
        user = make_user("2024000001")
        secret, _ = _enable(app, user)
        client = park_with_wechat(app, fake, user, person)
        assert session_count(app, user) == 0
        done = _verify(client, {"code": _code(secret)})
        assert done.status_code == 302 and done.location == "/security"
        assert _session_methods(app, client) == ["wechat", "totp"]


def test_forced_password_change_comes_after_the_code(idp_app: Flask, make_user: MakeUser) -> None:
    """A temporary password does not open 修改密码 (nor a session) before the code."""
    user = make_user("2024000001", must_change_password=True)
    secret, _ = _enable(idp_app, user)
    client = idp_app.test_client()
    assert sign_in(client, "2024000001").location == "/login/verify"
    assert client.get("/password/change").status_code == 302
    assert _verify(client, {"code": _code(secret)}).location == "/password/change"
    assert session_count(idp_app, user) == 0
    new = "Willow-Creek-2025"
    changed = post_form(client, "/password/change", {"password": new, "confirm": new})
    assert changed.status_code == 302 and session_count(idp_app, user) == 1
    assert _session_methods(idp_app, client) == ["password", "totp"]


def test_information_completion_comes_after_the_code(idp_app: Flask, make_user: MakeUser) -> None:
    """Without a security phone, /complete is only reached after the code."""
    user = make_user("2024000001", verified_phone=None)
    secret, _ = _enable(idp_app, user)
    client = idp_app.test_client()
    assert sign_in(client, "2024000001").location == "/login/verify"
    assert client.get("/complete").location == "/login"
    assert _verify(client, {"code": _code(secret)}).location == "/complete"
    assert session_count(idp_app, user) == 0


def test_recovery_code_signs_in_once(idp_app: Flask, make_user: MakeUser) -> None:
    """使用恢复码 instead of the app: works once, then that code is refused."""
    user = make_user("2024000001")
    _, codes = _enable(idp_app, user)
    client = idp_app.test_client()
    sign_in(client, "2024000001")
    page = client.get("/login/verify?mode=recovery").get_data(as_text=True)
    assert "恢复码" in page
    done = _verify(client, {"recovery_code": codes[3]}, "/login/verify?mode=recovery")
    assert done.status_code == 302 and "totp" in _session_methods(idp_app, client)

    other = idp_app.test_client()
    sign_in(other, "2024000001")
    reused = _verify(other, {"recovery_code": codes[3]}, "/login/verify?mode=recovery")
    assert reused.status_code == 401 and "恢复码错误或已使用过" in reused.get_data(as_text=True)
    assert session_count(idp_app, user) == 1


def test_verification_page_locks_after_five_wrong_codes(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """Guessing at the 两步验证 page stops after five tries, with a clear message."""
    user = make_user("2024000001")
    secret, _ = _enable(idp_app, user)
    client = idp_app.test_client()
    sign_in(client, "2024000001")
    statuses = [_verify(client, {"code": "99999x"}).status_code for _ in range(5)]
    assert statuses == [401, 401, 401, 401, 429]
    locked = _verify(client, {"code": _code(secret)})
    assert locked.status_code == 429 and "15 分钟后再试" in locked.get_data(as_text=True)
    assert session_count(idp_app, user) == 0


def test_verification_page_without_a_pending_sign_in_goes_to_login(
    idp_client: FlaskClient,
) -> None:
    """Opening /login/verify directly does nothing but send the visitor to sign in."""
    assert idp_client.get("/login/verify").location == "/login"


def test_verification_post_without_csrf_token_is_refused(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """The code form carries a CSRF token like every other form."""
    user = make_user("2024000001")
    secret, _ = _enable(idp_app, user)
    client = idp_app.test_client()
    sign_in(client, "2024000001")
    assert client.post("/login/verify", data={"code": _code(secret)}).status_code == 400
    assert session_count(idp_app, user) == 0


# 受信任设备 -----------------------------------------------------------------------------------


def _trusted_browser(app: Flask, secret: str) -> FlaskClient:
    client = app.test_client()
    client.environ_base["HTTP_USER_AGENT"] = "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"
    sign_in(client, "2024000001")
    done = _verify(client, {"code": _code(secret), "trust": "y"})
    assert done.status_code == 302
    cookie = [c for c in done.headers.getlist("Set-Cookie") if c.startswith("hongliu_trusted=")]
    assert cookie and "HttpOnly" in cookie[0] and "Max-Age=2592000" in cookie[0]
    post_form(client, "/logout", {})
    return client


def test_trusted_device_skips_the_code_for_30_days(idp_app: Flask, make_user: MakeUser) -> None:
    """“30 天内在此设备上免验证”: the same browser signs in with the password alone."""
    user = make_user("2024000001")
    secret, _ = _enable(idp_app, user)
    client = _trusted_browser(idp_app, secret)
    again = sign_in(client, "2024000001", next="/security")
    assert again.status_code == 302 and again.location == "/security"
    assert _session_methods(idp_app, client) == ["password"]
    # Another browser is still asked, and a made-up cookie does not help.
    other = idp_app.test_client()
    other.set_cookie("hongliu_trusted", "forged-token")
    assert sign_in(other, "2024000001").location == "/login/verify"
    assert ("mfa.device.trust", "success") in _actions(idp_app, user)


def test_trusted_device_is_forgotten_after_a_password_change(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """A new password revokes every trusted device."""
    user = make_user("2024000001")
    secret, _ = _enable(idp_app, user)
    client = _trusted_browser(idp_app, secret)
    time.sleep(0.01)
    with idp_app.app_context():
        from idp.auth.operations import set_password

        fresh = db.session.get(User, user.id)
        assert fresh is not None
        set_password(fresh, "Willow-Creek-2025")
        db.session.commit()
    assert sign_in(client, "2024000001", "Willow-Creek-2025").location == "/login/verify"


def test_trusted_device_is_forgotten_after_disabling(idp_app: Flask, make_user: MakeUser) -> None:
    """Turning TOTP off and on again does not bring old trusted devices back."""
    user = make_user("2024000001")
    secret, codes = _enable(idp_app, user)
    client = _trusted_browser(idp_app, secret)
    owner = idp_app.test_client()
    sign_in(owner, "2024000001")
    _verify(owner, {"recovery_code": codes[0]}, "/login/verify?mode=recovery")
    off = post_form(
        owner, "/security/totp/disable", {"password": PASSWORD, "code": _code(secret, 1)}
    )
    assert off.status_code == 302 and off.location == "/security"
    assert not _totp_on(idp_app, user)
    assert sign_in(client, "2024000001").location == "/"
    post_form(client, "/logout", {})
    _enable(idp_app, user)
    assert sign_in(client, "2024000001").location == "/login/verify"


def test_user_stops_trusting_a_device_in_the_security_centre(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """受信任设备 lists the browser; 取消信任 makes it ask for the code again."""
    user = make_user("2024000001")
    secret, _ = _enable(idp_app, user)
    client = _trusted_browser(idp_app, secret)
    sign_in(client, "2024000001")
    page = client.get("/security").get_data(as_text=True)
    assert "受信任设备" in page and "Firefox" in page and "剩余 10 个" in page
    with idp_app.app_context():
        device_id = db.session.scalar(db.select(TrustedDevice.id).filter_by(user_id=user.id))
    token = csrf_token(client, "/security")
    done = client.post(
        "/security/totp/devices/forget", data={"csrf_token": token, "device_id": str(device_id)}
    )
    assert done.status_code == 303
    assert "已取消信任该设备" in client.get("/security").get_data(as_text=True)
    post_form(client, "/logout", {})
    assert sign_in(client, "2024000001").location == "/login/verify"
    assert ("mfa.device.remove", "success") in _actions(idp_app, user)


def test_user_cannot_forget_another_users_device(idp_app: Flask, make_user: MakeUser) -> None:
    """取消信任 only touches the signed-in user's own devices."""
    victim = make_user("2024000001")
    make_user("2024000002")
    secret, _ = _enable(idp_app, victim)
    _trusted_browser(idp_app, secret)
    with idp_app.app_context():
        device_id = db.session.scalar(db.select(TrustedDevice.id))
    other = idp_app.test_client()
    sign_in(other, "2024000002")
    token = csrf_token(other, "/security")
    other.post("/security/totp/devices/forget", data={"csrf_token": token, "device_id": device_id})
    with idp_app.app_context():
        assert db.session.get(TrustedDevice, device_id) is not None


# 安全中心: 开启、关闭、恢复码 ------------------------------------------------------------------


def _secret_on_page(page: str) -> str:
    match = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', page)
    assert match, "no secret on the page"
    return match.group(1).replace(" ", "")


def test_student_enables_totp_in_security_centre(idp_app: Flask, make_user: MakeUser) -> None:
    """Scan the QR code (or type the secret), confirm a first code, see ten recovery codes once."""
    user = make_user("2024000001")
    client = idp_app.test_client()
    sign_in(client, "2024000001")
    overview = client.get("/security").get_data(as_text=True)
    assert "两步验证" in overview and "未开启" in overview
    asked = post_form(client, "/security/totp", {"password": PASSWORD})  # the password first
    assert asked.status_code == 302 and asked.location == "/security/totp"
    page = client.get("/security/totp")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    assert 'src="data:image/svg+xml' in html and "<script" not in html
    secret = _secret_on_page(html)
    assert _secret_on_page(client.get("/security/totp").get_data(as_text=True)) == secret

    wrong = post_form(
        client, "/security/totp", {"code": "000000" if _code(secret) != "000000" else "111111"}
    )
    assert wrong.status_code == 401 and not _totp_on(idp_app, user)
    done = post_form(client, "/security/totp", {"code": _code(secret)})
    codes = re.findall(r"<li>([0-9a-z]{5}-[0-9a-z]{5})</li>", done.get_data(as_text=True))
    assert done.status_code == 200 and len(codes) == 10
    assert done.headers["Cache-Control"] == "no-store"
    assert _totp_on(idp_app, user) and "totp" in _session_methods(idp_app, client)
    assert "已开启" in client.get("/security").get_data(as_text=True)
    assert client.get("/security/totp").location == "/security"
    assert ("mfa.enable", "success") in _actions(idp_app, user)


def _totp_on(app: Flask, user: User) -> bool:
    with app.app_context():
        return mfa.totp_enabled(_user(app, user))


def test_enable_page_in_english(idp_app: Flask, make_user: MakeUser) -> None:
    """The pages answer in English with ?lang=en and never a 500 for empty input."""
    make_user("2024000001")
    client = idp_app.test_client()
    sign_in(client, "2024000001")
    assert client.get("/security/totp?lang=en").status_code == 200
    assert post_form(client, "/security/totp", {"password": ""}).status_code == 400
    assert post_form(client, "/security/totp", {"password": PASSWORD}).status_code == 302
    assert client.get("/security/totp?lang=en").status_code == 200
    empty = post_form(client, "/security/totp", {"code": ""})
    assert empty.status_code == 400


def test_disabling_needs_password_and_code(idp_app: Flask, make_user: MakeUser) -> None:
    """关闭两步验证: a wrong password or a wrong code changes nothing; both right turns it off."""
    user = make_user("2024000001")
    secret, codes = _enable(idp_app, user)
    client = idp_app.test_client()
    sign_in(client, "2024000001")
    _verify(client, {"recovery_code": codes[0]}, "/login/verify?mode=recovery")
    bad_password = post_form(
        client, "/security/totp/disable", {"password": "not-it-123", "code": _code(secret)}
    )
    assert bad_password.status_code == 401 and "当前密码不正确" in bad_password.get_data(
        as_text=True
    )
    assert _totp_on(idp_app, user)
    bad_code = post_form(client, "/security/totp/disable", {"password": PASSWORD, "code": "12345x"})
    assert bad_code.status_code == 401 and _totp_on(idp_app, user)
    missing = post_form(client, "/security/totp/disable", {"password": PASSWORD})
    assert missing.status_code == 400 and _totp_on(idp_app, user)
    done = post_form(
        client, "/security/totp/disable", {"password": PASSWORD, "code": _code(secret)}
    )
    assert done.status_code == 302 and not _totp_on(idp_app, user)
    with idp_app.app_context():
        assert db.session.scalars(db.select(RecoveryCode)).all() == []
    assert ("mfa.disable", "success") in _actions(idp_app, user)
    post_form(client, "/logout", {})
    assert sign_in(client, "2024000001").location == "/"


def test_user_regenerates_recovery_codes_with_a_code(idp_app: Flask, make_user: MakeUser) -> None:
    """重新生成恢复码 needs a current code; the old codes stop working."""
    user = make_user("2024000001")
    secret, old = _enable(idp_app, user)
    client = idp_app.test_client()
    sign_in(client, "2024000001")
    _verify(client, {"code": _code(secret)})
    assert "您还有 10 个" in client.get("/security/totp/recovery-codes").get_data(as_text=True)
    refused = post_form(client, "/security/totp/recovery-codes", {"code": "12345x"})
    assert refused.status_code == 401
    done = post_form(client, "/security/totp/recovery-codes", {"code": _code(secret, 1)})
    new = re.findall(r"<li>([0-9a-z]{5}-[0-9a-z]{5})</li>", done.get_data(as_text=True))
    assert done.status_code == 200 and len(new) == 10 and not set(new) & set(old)
    with idp_app.test_request_context():
        fresh = db.session.get(User, user.id)
        assert fresh is not None
        with pytest.raises(mfa.MfaError):
            mfa.use_recovery_code(fresh, old[1])
        assert mfa.use_recovery_code(fresh, new[1]) == 9
    assert ("mfa.recovery_codes.regenerate", "success") in _actions(idp_app, user)


# 二次验证（step-up） -----------------------------------------------------------------------------


def test_step_up_adds_totp_to_the_session(idp_app: Flask, make_user: MakeUser) -> None:
    """A session from a trusted device lacks "totp"; /mfa/verify adds it and goes to next."""
    user = make_user("2024000001")
    secret, _ = _enable(idp_app, user)
    client = _trusted_browser(idp_app, secret)
    sign_in(client, "2024000001")
    with idp_app.app_context():
        before = db.session.scalars(db.select(SsoSession.auth_time)).one()
    assert _session_methods(idp_app, client) == ["password"]
    page = client.get("/mfa/verify?next=/security")
    assert page.status_code == 200 and "30 天内" not in page.get_data(as_text=True)
    wrong = post_form(client, "/mfa/verify?next=/security", {"code": "12345x", "next": "/security"})
    assert wrong.status_code == 401
    done = post_form(
        client, "/mfa/verify?next=/security", {"code": _code(secret, 1), "next": "/security"}
    )
    assert done.status_code == 302 and done.location == "/security"
    assert _session_methods(idp_app, client) == ["password", "totp"]
    with idp_app.app_context():
        assert db.session.scalars(db.select(SsoSession.auth_time)).one() > before
        sso = db.session.scalars(db.select(SsoSession)).one()
        assert mfa.session_has_totp(sso)


def test_step_up_refuses_outside_next_targets(idp_app: Flask, make_user: MakeUser) -> None:
    """``next`` must be a local path; anything else lands on the portal."""
    user = make_user("2024000001")
    secret, _ = _enable(idp_app, user)
    client = idp_app.test_client()
    sign_in(client, "2024000001")
    _verify(client, {"code": _code(secret)})
    done = post_form(
        client,
        "/mfa/verify?next=https://evil.example/",
        {"code": _code(secret, 1), "next": "https://evil.example/"},
    )
    assert done.status_code == 302 and done.location == "/"


def test_step_up_without_totp_offers_to_enable_it(idp_app: Flask, make_user: MakeUser) -> None:
    """No authenticator yet: /mfa/verify sends the user to 开启两步验证, keeping next."""
    make_user("2024000001")
    client = idp_app.test_client()
    sign_in(client, "2024000001")
    answer = client.get("/mfa/verify?next=/admin")
    assert answer.status_code == 302 and answer.location.startswith("/security/totp?next=")
    assert client.get("/security/totp?next=/admin").status_code == 200


def test_step_up_needs_a_signed_in_user(idp_client: FlaskClient) -> None:
    """Signed-out visitors are sent to /login first."""
    answer = idp_client.get("/mfa/verify?next=/admin")
    assert answer.status_code == 302 and answer.location.startswith("/login?next=")


def _change_password(client: FlaskClient, data: dict[str, str]) -> Any:
    return post_form(client, "/password/change", {**data, "confirm": data["password"]})


def test_forced_password_change_keeps_the_browser_trusted_at_the_code(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """A temporary password, the code with “30 天内免验证”, then the forced change: this browser
    stays trusted under the new password; a browser trusted before the change is asked again."""
    user = make_user("2024000001")
    secret, _ = _enable(idp_app, user)
    laptop = _trusted_browser(idp_app, secret)
    with idp_app.app_context():
        fresh = db.session.get(User, user.id)
        assert fresh is not None
        fresh.must_change_password = True  # the help desk's temporary password
        db.session.commit()
    time.sleep(0.01)
    client = idp_app.test_client()
    assert sign_in(client, "2024000001").location == "/login/verify"
    asked = _verify(client, {"code": _code(secret, 1), "trust": "y"})  # the laptop took now's
    assert asked.location == "/password/change"
    changed = _change_password(client, {"password": "Willow-Creek-2025"})
    assert changed.status_code == 302
    post_form(client, "/logout", {})
    again = sign_in(client, "2024000001", "Willow-Creek-2025", next="/security")
    assert again.location == "/security"
    assert sign_in(laptop, "2024000001", "Willow-Creek-2025").location == "/login/verify"


def test_security_centre_password_change_keeps_only_this_trusted_browser(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """修改密码 from a trusted browser: it stays trusted; the others are revoked as before."""
    user = make_user("2024000001")
    secret, _ = _enable(idp_app, user)
    laptop = _trusted_browser(idp_app, secret)
    time.sleep(0.01)
    client = idp_app.test_client()
    sign_in(client, "2024000001")
    assert _verify(client, {"code": _code(secret, 1), "trust": "y"}).location == "/"
    changed = _change_password(client, {"current": PASSWORD, "password": "Willow-Creek-2025"})
    assert changed.status_code == 302 and changed.location == "/security"
    post_form(client, "/logout", {})
    assert sign_in(client, "2024000001", "Willow-Creek-2025").location == "/"
    assert sign_in(laptop, "2024000001", "Willow-Creek-2025").location == "/login/verify"
