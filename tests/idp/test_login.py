"""统一身份认证登录: sign-in by any identifier, SMS codes, brute-force protection, sessions."""

from __future__ import annotations

import hashlib
import threading

import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp.account.codes import DELIVERY
from idp.audit.models import AuditEvent
from idp.auth.models import SsoSession
from idp.directory.models import User, UserStatus
from idp.extensions import db
from tests.conftest import AppFactory
from tests.fakes.sms_gateways import FakeAliyunSms
from tests.idp.conftest import (
    ID_NUMBER,
    PASSWORD,
    MakeUser,
    last_code,
    outbox_count,
    post_form,
    session_count,
    sign_in,
    solve_captcha,
)

REFUSED = "账号或密码错误"


def test_login_page_offers_both_tabs_and_self_service_links(idp_client: FlaskClient) -> None:
    """The sign-in page shows 账号登录 and 短信登录, 激活账号 and 忘记密码 links, and no-store."""
    response = idp_client.get("/login")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    for text in ("账号登录", "短信登录", "激活账号", "忘记密码"):
        assert text in page
    assert response.headers["Cache-Control"] == "no-store"


def test_student_signs_in_with_account_number(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """账号 + 密码 signs in, sets an HttpOnly SSO cookie and lands on the next page."""
    user = make_user("2024000001")
    response = sign_in(idp_client, "2024000001", next="/security")
    assert response.status_code == 302 and response.location == "/security"
    cookie = response.headers["Set-Cookie"]
    assert "hongliu_sso=" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert session_count(idp_app, user) == 1
    assert "张三" in idp_client.get("/security").get_data(as_text=True)


def test_student_signs_in_with_security_phone(idp_client: FlaskClient, make_user: MakeUser) -> None:
    """A verified security phone works as the identifier."""
    make_user(verified_phone="13900001111")
    assert sign_in(idp_client, "139 0000 1111").status_code == 302


def test_staff_signs_in_with_id_number(idp_client: FlaskClient, make_user: MakeUser) -> None:
    """The national ID number works as the identifier."""
    make_user(kind="staff")
    assert sign_in(idp_client, ID_NUMBER).status_code == 302


def test_unverified_phone_is_not_an_identifier(
    idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """An imported, never-verified phone does not sign anyone in."""
    make_user(verified_phone=None, phone="13700001111")
    response = sign_in(idp_client, "13700001111")
    assert response.status_code == 401 and REFUSED in response.get_data(as_text=True)


def test_wrong_password_and_unknown_account_get_same_answer(
    idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """Neither the status nor the message tells a wrong password from an unknown account."""
    make_user("2024000001")
    wrong = sign_in(idp_client, "2024000001", "Wrong-password-1")
    unknown = sign_in(idp_client, "2099999999", "Wrong-password-1")
    assert wrong.status_code == unknown.status_code == 401
    assert REFUSED in wrong.get_data(as_text=True) and REFUSED in unknown.get_data(as_text=True)


def test_failed_login_keeps_identifier_but_never_password(
    idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """The form keeps what was typed, except the password."""
    make_user("2024000001")
    page = sign_in(idp_client, "2024000001", "Secret-typo-9").get_data(as_text=True)
    assert 'value="2024000001"' in page
    assert "Secret-typo-9" not in page


def test_captcha_required_after_three_failures(
    idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """After 3 failures the page asks for a CAPTCHA, and even the right password needs it."""
    make_user("2024000001")
    for _ in range(3):
        sign_in(idp_client, "2024000001", "Wrong-password-1")
    response = sign_in(idp_client, "2024000001")
    assert response.status_code == 401
    page = response.get_data(as_text=True)
    assert "请输入正确的图形验证码" in page and 'src="/captcha.png"' in page


def test_correct_captcha_and_password_sign_in_after_failures(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """With the CAPTCHA solved, the right password signs in and clears the counters."""
    make_user("2024000001")
    for _ in range(3):
        sign_in(idp_client, "2024000001", "Wrong-password-1")
    answer = solve_captcha(idp_app, idp_client)
    response = post_form(
        idp_client, "/login", {"identifier": "2024000001", "password": PASSWORD, "captcha": answer}
    )
    assert response.status_code == 302


def test_account_locks_after_five_failures_even_for_right_password(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """The fifth failure locks password sign-in; the right password is then refused too."""
    make_user("2024000001")
    app = idp_app
    app.config["LOGIN_CAPTCHA_AFTER"] = 100  # isolate the lock from the CAPTCHA here
    client = app.test_client()
    for _ in range(5):
        assert sign_in(client, "2024000001", "Wrong-password-1").status_code == 401
    response = sign_in(client, "2024000001")
    assert response.status_code == 401 and REFUSED in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("url", "data"),
    [
        ("/login", {"identifier": "2024\x00001", "password": "Wrong-password-1"}),
        ("/recover", {"account": "2024\x00001", "name": "张三", "id_number": ID_NUMBER}),
        ("/activate", {"account": "2024000001", "name": "张\x00三", "id_number": ID_NUMBER}),
    ],
)
def test_nul_character_in_a_sign_in_form_is_refused_not_a_500(
    idp_client: FlaskClient, make_user: MakeUser, url: str, data: dict[str, str]
) -> None:
    """PostgreSQL refuses NUL in text; the form gets a clear 400 instead of a failed query."""
    make_user("2024000001")
    response = post_form(idp_client, url, data)
    assert response.status_code == 400
    assert "含有无法识别的字符" in response.get_data(as_text=True)


def test_captcha_shows_nothing_about_which_identifiers_are_on_file(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """The CAPTCHA follows the identifier as typed (in canonical form), not the account: a
    registered phone and an unregistered one behave alike, and failures with an account
    number do not bring a CAPTCHA to its phone."""
    make_user("2024000001", verified_phone="13800138000")

    def asks_captcha(client: FlaskClient, identifier: str) -> bool:
        page = sign_in(client, identifier, "Wrong-password-1")
        assert page.status_code == 401
        return "请输入正确的图形验证码" in page.get_data(as_text=True)

    for phone in ("13800138000", "13900139000"):  # on file, not on file
        client = idp_app.test_client()
        for _ in range(3):
            asks_captcha(client, phone)
        assert asks_captcha(client, f"+86 {phone[:3]} {phone[3:7]} {phone[7:]}")
    idp_app.config["LOGIN_IP_CAPTCHA_AFTER"] = 100  # the address has failed often by now
    client = idp_app.test_client()
    make_user("2024000002", verified_phone="13700137000")
    for _ in range(3):
        asks_captcha(client, "2024000002")
    assert not asks_captcha(client, "13700137000")


def test_attempts_on_a_locked_account_count_for_the_address_captcha_too(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """A try against a locked account counts towards the address's CAPTCHA like any failure:
    otherwise the CAPTCHA would appear for some identifiers and not others, showing which
    ones are on file and belong to the locked account."""
    make_user("2024000001", verified_phone="13800138000")
    make_user("2024000002", verified_phone="13700137000")
    idp_app.config["LOGIN_CAPTCHA_AFTER"] = 100
    idp_app.config["LOGIN_IP_CAPTCHA_AFTER"] = 7
    asked = []
    # From two addresses: the first account's own phone, then a number not on file.
    for n, probe in enumerate(("13800138000", "13900139000"), start=1):
        client = idp_app.test_client()
        client.environ_base["REMOTE_ADDR"] = f"10.9.0.{n}"
        for _ in range(5):  # the account is locked now
            assert sign_in(client, f"202400000{n}", "Wrong-password-1").status_code == 401
        assert sign_in(client, probe, "Wrong-password-1").status_code == 401
        page = sign_in(client, "2024999999", "Wrong-password-1")
        asked.append('name="captcha"' in page.get_data(as_text=True))
    assert asked == [True, True]


def test_changing_the_lockout_threshold_mid_window_strands_no_account(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """Four failures, then 每失败几次暂停 lowered to 3: the owner still signs in, and the new
    setting then counts from the start (it used to refuse every attempt for a day)."""
    make_user("2024000001")
    idp_app.config["LOGIN_CAPTCHA_AFTER"] = 100
    client = idp_app.test_client()
    for _ in range(4):
        assert sign_in(client, "2024000001", "Wrong-password-1").status_code == 401
    idp_app.config["LOCKOUT_EVERY"] = 3
    assert sign_in(client, "2024000001").status_code == 302
    other = idp_app.test_client()
    for _ in range(3):
        assert sign_in(other, "2024000001", "Wrong-password-1").status_code == 401
    assert sign_in(other, "2024000001").status_code == 401  # locked under the new setting


def test_parallel_guesses_cannot_exceed_the_limit(idp_app: Flask, make_user: MakeUser) -> None:
    """20 simultaneous guesses get at most 5 password checks; the rest are refused unchecked."""
    user = make_user("2024000001")
    idp_app.config["LOGIN_CAPTCHA_AFTER"] = 100
    from idp.auth import throttle

    results: list[bool] = []
    barrier = threading.Barrier(20)

    def guess() -> None:
        with idp_app.test_request_context("/login"):
            barrier.wait()
            results.append(throttle.reserve_attempt(f"user:{user.id}").allowed)

    threads = [threading.Thread(target=guess) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(True) == 5


def test_lock_does_not_stop_sms_sign_in(idp_app: Flask, make_user: MakeUser) -> None:
    """While password sign-in is locked, the owner still signs in with an SMS code."""
    make_user("2024000001", verified_phone="13800138000")
    idp_app.config["LOGIN_CAPTCHA_AFTER"] = 100
    client = idp_app.test_client()
    for _ in range(5):
        sign_in(client, "2024000001", "Wrong-password-1")
    post_form(client, "/login?tab=sms", {"phone": "13800138000", "send": "1"})
    code = last_code(idp_app, to="13800138000")
    response = post_form(client, "/login?tab=sms", {"phone": "13800138000", "code": code})
    assert response.status_code == 302


def test_sms_sign_in_with_code(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """方式二: the code sent to the security phone signs in; it works only once."""
    make_user(verified_phone="13800138000")
    sent = post_form(idp_client, "/login?tab=sms", {"phone": "13800138000", "send": "1"})
    assert sent.status_code == 200 and "验证码已发送" in sent.get_data(as_text=True)
    code = last_code(idp_app, to="13800138000")
    assert len(code) == 6
    assert (
        post_form(idp_client, "/login?tab=sms", {"phone": "13800138000", "code": code}).status_code
        == 302
    )
    other = idp_app.test_client()
    reuse = post_form(other, "/login?tab=sms", {"phone": "13800138000", "code": code})
    assert reuse.status_code == 401


def test_sms_code_to_unknown_number_answers_alike_and_sends_nothing(
    idp_app: Flask, idp_client: FlaskClient
) -> None:
    """Asking for a code for a number not on file looks the same but sends no SMS."""
    before = outbox_count(idp_app)
    response = post_form(idp_client, "/login?tab=sms", {"phone": "13811112222", "send": "1"})
    assert response.status_code == 200
    assert "如果该手机号已绑定为安全手机" in response.get_data(as_text=True)
    assert outbox_count(idp_app) == before


def test_sms_code_answer_does_not_wait_on_the_gateway_or_show_its_failure(
    make_idp: AppFactory, make_user: MakeUser
) -> None:
    """SMS sign-in sends in the background (a real gateway, faked over HTTP): a number on file
    and one not on file get the same 200 even while the gateway refuses, and the failed send
    lifts the 60 s wait so the owner can ask again at once."""
    with FakeAliyunSms() as gateway:
        app = make_idp(SMS_PROVIDER="aliyun", **gateway.settings())
        make_user("2024000001", verified_phone="13800138000")
        gateway.fail_next("isv.BUSINESS_LIMIT_CONTROL")
        answers = []
        for phone in ("13800138000", "13811112222"):  # on file, not on file
            response = post_form(app.test_client(), "/login?tab=sms", {"phone": phone, "send": "1"})
            answers.append(
                (
                    response.status_code,
                    "如果该手机号已绑定为安全手机" in response.get_data(as_text=True),
                )
            )
        assert answers == [(200, True), (200, True)]
        assert app.extensions[DELIVERY].wait_idle(10)
        assert gateway.received == [] and gateway.errors == ["isv.BUSINESS_LIMIT_CONTROL"]
        again = post_form(
            app.test_client(), "/login?tab=sms", {"phone": "13800138000", "send": "1"}
        )
        assert again.status_code == 200
        assert app.extensions[DELIVERY].wait_idle(10)
        [sms] = gateway.received
        assert sms.phone == "13800138000"


def test_sms_code_resend_waits_sixty_seconds(idp_client: FlaskClient, make_user: MakeUser) -> None:
    """A second code for the same phone within 60 s is refused with the wait time."""
    make_user(verified_phone="13800138000")
    post_form(idp_client, "/login?tab=sms", {"phone": "13800138000", "send": "1"})
    again = post_form(idp_client, "/login?tab=sms", {"phone": "13800138000", "send": "1"})
    assert again.status_code == 429
    assert "秒后再重新获取" in again.get_data(as_text=True)


def test_sms_code_void_after_five_wrong_tries(idp_app: Flask, make_user: MakeUser) -> None:
    """Five wrong codes void the real one."""
    make_user(verified_phone="13800138000")
    client = idp_app.test_client()
    post_form(client, "/login?tab=sms", {"phone": "13800138000", "send": "1"})
    code = last_code(idp_app, to="13800138000")
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(5):
        post_form(client, "/login?tab=sms", {"phone": "13800138000", "code": wrong})
    late = post_form(client, "/login?tab=sms", {"phone": "13800138000", "code": code})
    assert late.status_code == 401


def test_pending_account_is_sent_to_activation(
    idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """An account that was never activated goes to 激活账号, with no session."""
    make_user("2024000001", pending=True, verified_phone=None)
    response = sign_in(idp_client, "2024000001")
    assert response.status_code == 302 and response.location == "/activate"
    assert "hongliu_sso" not in response.headers.get("Set-Cookie", "")


def test_account_without_security_phone_goes_to_completion(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """No security phone: 信息完善 first, and no session until it is done."""
    user = make_user("2024000001", verified_phone=None)
    response = sign_in(idp_client, "2024000001", next="/security")
    assert response.status_code == 302 and response.location == "/complete"
    assert session_count(idp_app, user) == 0
    assert "马上处理" in idp_client.get("/complete").get_data(as_text=True)


def test_must_change_password_is_forced_then_continues(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """A temporary password leads to 修改密码, then on to where the user was going."""
    user = make_user("2024000001", must_change_password=True)
    response = sign_in(idp_client, "2024000001", next="/security")
    assert response.location == "/password/change"
    done = post_form(
        idp_client,
        "/password/change",
        {"password": "NewSecret-2025a", "confirm": "NewSecret-2025a"},
    )
    assert done.status_code == 302 and done.location == "/security"
    with idp_app.app_context():
        assert db.session.get(User, user.id).must_change_password is False


def test_disabled_account_is_told_to_contact_help_desk(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """With the right password, a disabled account is told so; no session starts."""
    user = make_user("2024000001")
    with idp_app.app_context():
        db.session.get(User, user.id).status = UserStatus.DISABLED
        db.session.commit()
    response = sign_in(idp_client, "2024000001")
    assert response.status_code == 401 and "联系管理员" in response.get_data(as_text=True)


@pytest.mark.parametrize("target", ["//evil.example/steal", "/\t/evil.example/", "/\\evil.example"])
def test_open_redirect_is_refused(idp_app: Flask, make_user: MakeUser, target: str) -> None:
    """``next`` pointing at another site (however disguised) is ignored."""
    make_user("2024000001")
    response = sign_in(idp_app.test_client(), "2024000001", next=target)
    assert response.location == "/"


def test_new_session_id_at_every_sign_in(idp_app: Flask, make_user: MakeUser) -> None:
    """Signing in again replaces the browser's session id (no fixation)."""
    user = make_user("2024000001")
    client = idp_app.test_client()
    first = sign_in(client, "2024000001").headers["Set-Cookie"]
    second = sign_in(client, "2024000001").headers["Set-Cookie"]
    assert first.split(";")[0] != second.split(";")[0]
    assert session_count(idp_app, user) == 1


def test_logout_ends_the_session(idp_app: Flask, make_user: MakeUser) -> None:
    """退出 ends the server-side session and clears the cookie."""
    user = make_user("2024000001")
    client = idp_app.test_client()
    sign_in(client, "2024000001")
    response = post_form(client, "/logout", {})
    assert response.status_code == 302
    assert session_count(idp_app, user) == 0
    assert client.get("/security").status_code == 302


def test_legacy_password_is_upgraded_on_first_sign_in(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """教职工用旧版统一身份认证密码登录: the {SSHA} hash becomes argon2id."""
    import base64
    import hashlib

    salt = b"saltsalt"
    digest = hashlib.sha1(b"OldPass1234" + salt).digest()
    ssha = "{SSHA}" + base64.b64encode(digest + salt).decode()
    user = make_user("2024000001", kind="staff")
    with idp_app.app_context():
        db.session.get(User, user.id).password_hash = ssha
        db.session.commit()
    assert sign_in(idp_client, "2024000001", "OldPass1234").status_code == 302
    with idp_app.app_context():
        assert db.session.get(User, user.id).password_hash.startswith("$argon2id$")


def test_hash_with_other_argon2_parameters_moves_to_the_configured_ones_at_sign_in(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """A hash of the earlier default (19 MiB × 2) signs in and is stored again with today's."""
    from idp.auth.passwords import Argon2Params, PasswordHasher, hasher_from_config

    user = make_user("2024000001")
    earlier = PasswordHasher(Argon2Params(memory_kib=19456, time_cost=2, parallelism=1))
    with idp_app.app_context():
        db.session.get(User, user.id).password_hash = earlier.hash("OldDefault-2024")
        db.session.commit()
    assert sign_in(idp_client, "2024000001", "OldDefault-2024").status_code == 302
    current = hasher_from_config(idp_app.config)
    p = current.params
    with idp_app.app_context():
        stored = db.session.get(User, user.id).password_hash
    assert stored.startswith(f"$argon2id$v=19$m={p.memory_kib},t={p.time_cost},p={p.parallelism}$")
    assert current.verify(stored, "OldDefault-2024").needs_rehash is False


def test_every_sign_in_attempt_is_audited(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """Success and failure each leave an audit row with IP and method, never the password."""
    make_user("2024000001")
    sign_in(idp_client, "2024000001", "Wrong-password-1")
    sign_in(idp_client, "2024000001")
    with idp_app.app_context():
        events = db.session.query(AuditEvent).filter_by(action="login").all()
        assert sorted(e.outcome for e in events) == ["failure", "success"]
        assert all(e.ip == "127.0.0.1" and e.method == "password" for e in events)
        assert all("Wrong-password" not in (e.detail or "") for e in events)


def test_change_password_needs_the_current_one_and_locks_guessing(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """修改密码 from a signed-in session: a wrong current password is refused, and guessing it
    runs into the same lock as the sign-in page."""
    make_user("2024000001")
    idp_app.config["LOGIN_CAPTCHA_AFTER"] = 100
    client = idp_app.test_client()
    sign_in(client, "2024000001")
    data = {
        "current": "Wrong-password-1",
        "password": "NewSecret-2025a",
        "confirm": "NewSecret-2025a",
    }
    first = post_form(client, "/password/change", data)
    assert first.status_code == 400 and "当前密码不正确" in first.get_data(as_text=True)
    for _ in range(4):
        post_form(client, "/password/change", data)
    locked = post_form(client, "/password/change", {**data, "current": PASSWORD})
    assert "密码错误次数过多" in locked.get_data(as_text=True)


def test_change_password_ends_othersession_count(idp_app: Flask, make_user: MakeUser) -> None:
    """After 修改密码 the other browsers are signed out; this one stays."""
    user = make_user("2024000001")
    here, there = idp_app.test_client(), idp_app.test_client()
    sign_in(here, "2024000001")
    sign_in(there, "2024000001")
    response = post_form(
        here,
        "/password/change",
        {"current": PASSWORD, "password": "NewSecret-2025a", "confirm": "NewSecret-2025a"},
    )
    assert response.status_code == 302
    assert session_count(idp_app, user) == 1
    assert here.get("/security").status_code == 200
    assert there.get("/security").status_code == 302


def test_change_password_gives_this_browser_a_new_session_id(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """After 修改密码 this browser stays signed in under a new SSO session id (no fixation):
    the response sets the new cookie, the old value signs in nowhere, and the session keeps its
    lineage, sign-in methods and sign-in time."""
    user = make_user("2024000001")
    client = idp_app.test_client()
    sign_in(client, "2024000001")
    old_cookie = client.get_cookie("hongliu_sso")
    assert old_cookie is not None
    with idp_app.app_context():
        before = db.session.get(SsoSession, hashlib.sha256(old_cookie.value.encode()).hexdigest())
        assert before is not None
        lineage, methods, auth_time = before.lineage, before.methods, before.auth_time
    response = post_form(
        client,
        "/password/change",
        {"current": PASSWORD, "password": "NewSecret-2025a", "confirm": "NewSecret-2025a"},
    )
    assert response.status_code == 302 and response.location == "/security"
    assert any(h.startswith("hongliu_sso=") for h in response.headers.getlist("Set-Cookie"))
    new_cookie = client.get_cookie("hongliu_sso")
    assert new_cookie is not None and new_cookie.value != old_cookie.value
    assert client.get("/security").status_code == 200
    stale = idp_app.test_client()
    stale.set_cookie("hongliu_sso", old_cookie.value)
    assert stale.get("/security").status_code == 302
    with idp_app.app_context():
        after = db.session.get(SsoSession, hashlib.sha256(new_cookie.value.encode()).hexdigest())
        assert after is not None
        assert (after.lineage, after.methods, after.auth_time) == (lineage, methods, auth_time)
    assert session_count(idp_app, user) == 1


def test_weak_new_password_gets_one_message_per_rule(
    idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """A new password breaking the policy is refused with a message for each broken rule."""
    make_user("2024000001")
    sign_in(idp_client, "2024000001")
    response = post_form(
        idp_client,
        "/password/change",
        {"current": PASSWORD, "password": "2024000001", "confirm": "2024000001"},
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "密码须同时包含字母和数字" in page and "学工号" in page


def test_strength_meter_endpoint_scores_passwords(
    idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """The live meter's endpoint scores a password (CSRF-protected JSON)."""
    from tests.idp.conftest import csrf_token

    token = csrf_token(idp_client, "/activate")
    weak = idp_client.post(
        "/password/strength", json={"password": "123456"}, headers={"X-CSRFToken": token}
    )
    strong = idp_client.post(
        "/password/strength",
        json={"password": "correct horse battery 9"},
        headers={"X-CSRFToken": token},
    )
    assert weak.status_code == strong.status_code == 200
    assert weak.json["score"] < strong.json["score"]
    assert idp_client.post("/password/strength", json={"password": "x"}).status_code == 400
