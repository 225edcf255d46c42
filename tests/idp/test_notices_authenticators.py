"""Security notices for the authenticators (NIST SP 800-63B): a new login password, 两步验证
turned on, off or reset by the help desk, new recovery codes and a recovery code spent tell the
security phone and email on file, in the background and audited as ``security.notice``; setting
the first password in 激活账号 or 信息完善 tells no one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp.directory.models import User
from idp.directory.roles import Role
from idp.extensions import db
from idp.social.clients import SocialProfile
from idp.social.operations import bind_identity
from shared.messaging import MAIL_FILE, SMS_FILE, changed_item, read_records
from tests.conftest import AppFactory
from tests.fakes.sms_gateways import FakeAliyunSms
from tests.idp.conftest import PASSWORD, MakeUser, last_code, post_form, settle_deliveries, sign_in
from tests.idp.console_support import confirm_action, console_sign_in, events, make_console_user
from tests.idp.mfa_support import enable_totp_with_codes
from tests.idp.wizard_support import NEW_PASSWORD, bind_phone, fresh_user, identify, new_password

PHONE = "13800138000"
EMAIL = "zhang.san@lut.edu.cn"
MASKED = ["138****8000", "z***n@lut.edu.cn"]


@pytest.fixture
def idp_app(make_idp: AppFactory, tmp_path: Path) -> Flask:
    """An IdP whose outbox holds only this test's messages, so that notices can be counted."""
    return make_idp(OUTBOX_DIR=str(tmp_path / "outbox"))


@pytest.fixture
def owner(make_user: MakeUser) -> User:
    """张三, with a verified security phone and email."""
    return make_user("2024000001", verified_phone=PHONE, verified_email=EMAIL)


def _notices(app: Flask, kind: str, to: str) -> list[dict[str, Any]]:
    """The outbox records without a code (notices, not codes) sent by ``kind`` to ``to``."""
    settle_deliveries(app)
    records = read_records(app.config["OUTBOX_DIR"], SMS_FILE if kind == "sms" else MAIL_FILE)
    return [r for r in records if r["to"] == to and r["code"] is None]


def _told(app: Flask, user: User, change: str, words: str, subject: str) -> None:
    """The phone and email on file each got one notice of ``change`` (its text has ``words``,
    the help desk's number; the mail has ``subject``), audited as sent to both."""
    [sms] = _notices(app, "sms", PHONE)
    [mail] = _notices(app, "mail", EMAIL)
    for text in (sms["text"], mail["text"]):
        assert words in text, text
        assert "如非本人操作" in text and app.config["HELP_PHONE"] in text
    assert mail["subject"].endswith(subject), mail["subject"]
    [notice] = events(app, "security.notice")
    assert notice["actor_id"] == user.id and notice["outcome"] == "success"
    assert notice["detail"] == {"change": change, "sent": MASKED, "failed": [], "not_sent": []}


def _no_notice(app: Flask) -> None:
    settle_deliveries(app)
    for kind in ("sms", "mail"):
        records = read_records(app.config["OUTBOX_DIR"], SMS_FILE if kind == "sms" else MAIL_FILE)
        assert [r for r in records if r["code"] is None] == []
    assert events(app, "security.notice") == []


def _signed_in_with_totp(app: Flask, secret: str) -> FlaskClient:
    """张三 signed in with the password and a current code from the app."""
    client = app.test_client()
    assert sign_in(client, "2024000001").location == "/login/verify"
    done = post_form(client, "/login/verify", {"code": pyotp.TOTP(secret).now()})
    assert done.status_code == 302
    return client


# 登录密码 ---------------------------------------------------------------------------------


def test_password_changed_in_the_security_centre_tells_phone_and_email(
    idp_app: Flask, owner: User
) -> None:
    """安全中心 修改密码: once changed, the phone and email on file hear of it."""
    client = idp_app.test_client()
    assert sign_in(client, "2024000001").status_code == 302
    data = {"current": PASSWORD, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
    done = post_form(client, "/password/change", data)
    assert done.status_code == 302 and done.location == "/security"
    _told(idp_app, owner, "password", "登录密码已于", "登录密码已修改")


def test_temporary_password_replaced_tells_phone_and_email(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """The forced 修改密码 after a temporary password is a new password like any other."""
    user = make_user(
        "2024000001", verified_phone=PHONE, verified_email=EMAIL, must_change_password=True
    )
    client = idp_app.test_client()
    assert sign_in(client, "2024000001").location == "/password/change"
    done = post_form(
        client, "/password/change", {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
    )
    assert done.status_code == 302
    assert not fresh_user(idp_app, user).must_change_password
    _told(idp_app, user, "password", "登录密码已于", "登录密码已修改")


def test_password_recovered_tells_phone_and_email(idp_app: Flask, owner: User) -> None:
    """找回密码 by the email's code: the phone is told too (someone with the mailbox alone)."""
    client = idp_app.test_client()
    assert identify(client, "/recover", "2024000001").location == "/recover/verify"
    post_form(client, "/recover/verify", {"method": "email", "send": "1"})
    code = last_code(idp_app, "mail", to=EMAIL)
    verified = post_form(client, "/recover/verify", {"method": "email", "code": code})
    assert verified.location == "/recover/password"
    assert new_password(client, "/recover/password").location == "/login"
    _told(idp_app, owner, "password", "登录密码已于", "登录密码已修改")


def test_password_set_through_the_help_desk_link_tells_phone_and_email(
    idp_app: Flask, make_user: MakeUser, owner: User
) -> None:
    """The help desk's reset link (/recover/link/<token>), once used, is told like 找回密码."""
    helpdesk, secret = make_console_user(
        idp_app, make_user, Role.HELPDESK, account="9000000001", verified_phone="13700000001"
    )
    desk = idp_app.test_client()
    console_sign_in(desk, helpdesk, secret)
    sent = confirm_action(desk, f"/admin/users/{owner.id}/actions/reset-link")
    assert sent.status_code == 302
    [link] = [r for r in read_records(idp_app.config["OUTBOX_DIR"], SMS_FILE) if r["code"]]
    path = "/recover/link/" + link["code"]
    done = post_form(
        idp_app.test_client(), path, {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
    )
    assert done.status_code == 302 and done.location.endswith("/login")
    _told(idp_app, owner, "password", "登录密码已于", "登录密码已修改")
    assert _notices(idp_app, "sms", "13700000001") == []  # the help desk is not the owner


def test_activation_sets_the_first_password_without_a_notice(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """激活账号: the person has just proved themselves; there is no earlier password to warn of."""
    user = make_user("2024000001", pending=True, verified_phone=None, verified_email=EMAIL)
    client = idp_app.test_client()
    assert identify(client, "/activate", "2024000001").location == "/activate/phone"
    assert bind_phone(idp_app, client, "/activate/phone", PHONE).location == "/activate/password"
    assert new_password(client, "/activate/password").status_code == 200
    assert fresh_user(idp_app, user).password_changed_at is not None
    _no_notice(idp_app)


def test_completion_sets_the_password_without_a_notice(idp_app: Flask, make_user: MakeUser) -> None:
    """信息完善: the phone just bound and the new password tell no one, as at activation."""
    user = make_user("2024000001", verified_phone=None, verified_email=EMAIL)
    client = idp_app.test_client()
    assert sign_in(client, "2024000001").location == "/complete"
    identify(client, "/complete?start=1", "2024000001")
    assert bind_phone(idp_app, client, "/complete", PHONE).location == "/complete"
    assert new_password(client, "/complete").status_code == 302
    assert sign_in(idp_app.test_client(), user.account, NEW_PASSWORD).status_code == 302
    _no_notice(idp_app)


# 两步验证 ---------------------------------------------------------------------------------


def test_turning_two_step_on_tells_phone_and_email(idp_app: Flask, owner: User) -> None:
    """开启两步验证, once the first code is confirmed."""
    client = idp_app.test_client()
    sign_in(client, "2024000001")
    assert post_form(client, "/security/totp", {"password": PASSWORD}).status_code == 302
    page = client.get("/security/totp").get_data(as_text=True)
    secret = page.split('id="totp-secret">', 1)[1].split("<", 1)[0].replace(" ", "")
    done = post_form(client, "/security/totp", {"code": pyotp.TOTP(secret).now()})
    assert done.status_code == 200 and "保存您的恢复码" in done.get_data(as_text=True)
    _told(idp_app, owner, "mfa.enable", "开启两步验证", "两步验证已开启")


def test_turning_two_step_off_tells_phone_and_email(idp_app: Flask, owner: User) -> None:
    """关闭两步验证 (here with a recovery code, as someone who lost the phone would)."""
    secret, codes = enable_totp_with_codes(idp_app, owner)
    client = _signed_in_with_totp(idp_app, secret)
    off = post_form(client, "/security/totp/disable", {"password": PASSWORD, "code": codes[0]})
    assert off.status_code == 302 and off.location == "/security"
    _told(idp_app, owner, "mfa.disable", "两步验证已于", "两步验证已关闭")


def test_new_recovery_codes_tell_phone_and_email(idp_app: Flask, owner: User) -> None:
    """重新生成恢复码: the old sheet is void, and the owner hears of it."""
    secret, codes = enable_totp_with_codes(idp_app, owner)
    client = _signed_in_with_totp(idp_app, secret)
    done = post_form(client, "/security/totp/recovery-codes", {"code": codes[0]})
    assert done.status_code == 200 and "恢复码" in done.get_data(as_text=True)
    _told(idp_app, owner, "recovery_codes.regenerate", "恢复码已于", "恢复码已重新生成")


def test_help_desk_resetting_two_step_tells_phone_and_email(
    idp_app: Flask, make_user: MakeUser, owner: User
) -> None:
    """服务台 重置两步验证 removes an authenticator: the owner is told, not the help desk."""
    enable_totp_with_codes(idp_app, owner)
    helpdesk, secret = make_console_user(
        idp_app, make_user, Role.HELPDESK, account="9000000001", verified_phone="13700000001"
    )
    desk = idp_app.test_client()
    console_sign_in(desk, helpdesk, secret)
    done = confirm_action(desk, f"/admin/users/{owner.id}/actions/reset-totp", reason="手机丢失")
    assert done.status_code == 302
    _told(idp_app, owner, "mfa.reset", "由服务台重置", "两步验证已由服务台重置")
    assert _notices(idp_app, "sms", "13700000001") == []


@pytest.mark.parametrize(
    ("action", "change", "subject"),
    [
        ("temp-password", "password.helpdesk", "登录密码已由服务台重置"),
        ("unbind-phone", "phone.unbind", "安全手机已由服务台解除绑定"),
        ("unbind-email", "email.unbind", "安全邮箱已由服务台解除绑定"),
    ],
)
def test_help_desk_changes_to_how_the_owner_signs_in_tell_phone_and_email(
    idp_app: Flask, make_user: MakeUser, owner: User, action: str, change: str, subject: str
) -> None:
    """服务台 临时密码 / 解除绑定: the owner's phone and email as they were before are told — the
    unbound one too — so that a help desk talked into it by someone else is noticed."""
    helpdesk, secret = make_console_user(
        idp_app, make_user, Role.HELPDESK, account="9000000001", verified_phone="13700000001"
    )
    desk = idp_app.test_client()
    console_sign_in(desk, helpdesk, secret)
    done = confirm_action(desk, f"/admin/users/{owner.id}/actions/{action}", reason="本人来电")
    assert done.status_code in (200, 302)
    _told(idp_app, owner, change, "由服务台", subject)
    assert _notices(idp_app, "sms", "13700000001") == []


def test_help_desk_unbinding_wechat_tells_phone_and_email(
    idp_app: Flask, make_user: MakeUser, owner: User
) -> None:
    """服务台 解除微信绑定: the owner hears of it on the phone and email on file."""
    with idp_app.app_context():
        profile = SocialProfile("wechat", "union-zhang", "open-zhang", "union-zhang")
        bind_identity(db.session.get(User, owner.id), profile, via="security")
        db.session.commit()
    helpdesk, secret = make_console_user(
        idp_app, make_user, Role.HELPDESK, account="9000000001", verified_phone="13700000001"
    )
    desk = idp_app.test_client()
    console_sign_in(desk, helpdesk, secret)
    done = confirm_action(desk, f"/admin/users/{owner.id}/actions/unbind-wechat", reason="换号")
    assert done.status_code in (200, 302)
    _told(idp_app, owner, "wechat.unbind", "微信已于", "微信已由服务台解除绑定")


def test_signing_in_with_a_recovery_code_tells_phone_and_email(idp_app: Flask, owner: User) -> None:
    """A recovery code spent at sign-in (/login/verify?mode=recovery): the owner should know."""
    _, codes = enable_totp_with_codes(idp_app, owner)
    client = idp_app.test_client()
    assert sign_in(client, "2024000001").location == "/login/verify"
    done = post_form(client, "/login/verify?mode=recovery", {"recovery_code": codes[0]})
    assert done.status_code == 302 and client.get("/security").status_code == 200
    _told(idp_app, owner, "recovery_code.use", "使用一个恢复码", "恢复码已被使用")


def test_signing_in_with_the_app_code_tells_no_one(idp_app: Flask, owner: User) -> None:
    """An ordinary sign-in with the authenticator's code is not a change: no notice."""
    secret, _ = enable_totp_with_codes(idp_app, owner)
    _signed_in_with_totp(idp_app, secret)
    _no_notice(idp_app)


def test_step_up_with_a_recovery_code_tells_phone_and_email(idp_app: Flask, owner: User) -> None:
    """The step-up page (/mfa/verify?mode=recovery) spends a recovery code too."""
    secret, codes = enable_totp_with_codes(idp_app, owner)
    client = _signed_in_with_totp(idp_app, secret)
    url = "/mfa/verify?mode=recovery&next=/security"
    done = post_form(client, url, {"recovery_code": codes[0], "next": "/security"})
    assert done.status_code == 302 and done.location == "/security"
    _told(idp_app, owner, "recovery_code.use", "使用一个恢复码", "恢复码已被使用")


# The notice itself --------------------------------------------------------------------------


def test_a_notice_that_cannot_be_sent_does_not_undo_the_new_password(
    idp_app: Flask, owner: User, caplog: pytest.LogCaptureFixture
) -> None:
    """Whatever goes wrong in the notice, the password is changed and the page says so."""
    client = idp_app.test_client()
    sign_in(client, "2024000001")
    real = idp_app.extensions["idp_sms"]

    class Broken:
        def send(self, message: Any) -> None:
            raise RuntimeError("unexpected")

    idp_app.extensions["idp_sms"] = Broken()
    try:
        data = {"current": PASSWORD, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
        done = post_form(client, "/password/change", data)
        settle_deliveries(idp_app)
    finally:
        idp_app.extensions["idp_sms"] = real
    assert done.status_code == 302 and done.location == "/security"
    assert sign_in(idp_app.test_client(), "2024000001", NEW_PASSWORD).status_code == 302
    [notice] = events(idp_app, "security.notice")
    assert notice["outcome"] == "failure" and notice["detail"]["failed"] == ["138****8000"]
    assert notice["detail"]["sent"] == ["z***n@lut.edu.cn"]
    assert "sending the password change notice by sms failed" in caplog.text


def test_notice_is_written_in_the_users_language(idp_app: Flask, owner: User) -> None:
    """An English page gets an English notice and subject."""
    client = idp_app.test_client()
    sign_in(client, "2024000001")
    client.get("/security?lang=en")
    data = {"current": PASSWORD, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
    assert post_form(client, "/password/change?lang=en", data).status_code == 302
    [mail] = _notices(idp_app, "mail", EMAIL)
    assert "The login password of your account was changed at" in mail["text"]
    assert mail["subject"].endswith("Your login password was changed")


@pytest.fixture
def aliyun() -> Iterator[FakeAliyunSms]:
    """A fake Aliyun SMS that knows only the security-notice template."""
    with FakeAliyunSms(template_code="SMS_NOTICE") as gateway:
        yield gateway


def test_vendor_template_parameter_names_the_authenticator(
    make_idp: AppFactory, make_user: MakeUser, aliyun: FakeAliyunSms, tmp_path: Path
) -> None:
    """Through a vendor, the approved template's one parameter is the short item: 登录密码."""
    settings = {**aliyun.settings(), "SMS_TEMPLATE_ID": "SMS_CODES"}
    app = make_idp(
        SMS_PROVIDER="aliyun",
        OUTBOX_DIR=str(tmp_path / "outbox"),
        SMS_SECURITY_NOTICE_TEMPLATE_ID="SMS_NOTICE",
        **settings,
    )
    make_user("2024000001", verified_phone=PHONE, verified_email=EMAIL)
    client = app.test_client()
    sign_in(client, "2024000001")
    data = {"current": PASSWORD, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
    assert post_form(client, "/password/change", data).status_code == 302
    settle_deliveries(app)
    [sms] = aliyun.received
    assert sms.template_id == "SMS_NOTICE" and sms.phone == PHONE
    assert sms.params == ("登录密码",)


@pytest.mark.parametrize(
    ("change", "item"),
    [
        ("password", "登录密码"),
        ("mfa.enable", "两步验证"),
        ("mfa.disable", "两步验证"),
        ("mfa.reset", "两步验证"),
        ("recovery_codes.regenerate", "恢复码"),
        ("recovery_code.use", "恢复码"),
        ("password.helpdesk", "登录密码"),
        ("phone.unbind", "安全手机"),
        ("email.unbind", "安全邮箱"),
        ("wechat.unbind", "微信"),
        ("wecom.unbind", "企业微信"),
    ],
)
def test_each_change_names_one_short_item_for_the_sms_template(change: str, item: str) -> None:
    """The approved template's single parameter stays a short item name for every change."""
    assert changed_item(change, "zh_CN") == item
