"""服务台 发送激活通知: a pending account's owner lost the activation notice; the help desk sends
how to activate (the address, the account number, "have your ID number ready") to the phone
and email HR put on file — nothing secret — and the owner activates through 激活账号."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp.directory.models import User, UserStatus
from idp.directory.roles import Role
from idp.extensions import db
from shared.factory import get_store
from shared.messaging import MAIL_FILE, SMS_FILE, read_records
from tests.conftest import AppFactory
from tests.fakes.sms_gateways import FakeAliyunSms
from tests.idp.conftest import ID_NUMBER, MakeUser, last_code, post_form, sign_in
from tests.idp.console_support import confirm_action, console_sign_in, events, make_console_user

HR_PHONE = "13912345678"
HR_EMAIL = "zhang.san@example.edu.cn"
ACCOUNT = "2024000321"
NEW_PASSWORD = "Willow-2025-new"
ACTIVATE = "http://127.0.0.1:5000/activate"  # under the default IDP_ISSUER


@pytest.fixture
def idp_app(make_idp: AppFactory, tmp_path: Path) -> Flask:
    """An IdP with an outbox of this test's own, so "exactly one message" means this test's."""
    return make_idp(OUTBOX_DIR=str(tmp_path / "outbox"))


@pytest.fixture
def desk(idp_app: Flask, make_user: MakeUser) -> tuple[FlaskClient, User]:
    """A help-desk user signed in to the console with password and TOTP."""
    user, secret = make_console_user(
        idp_app, make_user, Role.HELPDESK, account="9000000001", verified_phone="13700000001"
    )
    client = idp_app.test_client()
    console_sign_in(client, user, secret)
    return client, user


def pending(make_user: MakeUser, **contacts: str | None) -> User:
    """A student HR registered (phone and email unverified) who never activated."""
    contacts = {"phone": HR_PHONE, "email": HR_EMAIL, **contacts}
    return make_user(ACCOUNT, pending=True, password=None, verified_phone=None, **contacts)


def notice_url(user: User) -> str:
    return f"/admin/users/{user.id}/actions/resend-activation"


def outbox(app: Flask, filename: str, to: str) -> list[dict[str, str | None]]:
    """What the outbox holds for ``to``."""
    return [r for r in read_records(app.config["OUTBOX_DIR"], filename) if r["to"] == to]


def fresh(app: Flask, user: User) -> User:
    """``user`` as the database now has it."""
    with app.app_context():
        found = db.session.get(User, user.id)
        assert found is not None
        db.session.expunge(found)
        return found


def test_helpdesk_sends_activation_notice_to_hr_phone_and_email(
    idp_app: Flask, desk: tuple[FlaskClient, User], make_user: MakeUser
) -> None:
    """The SMS and the mail carry the /activate address and the account number, and no code."""
    client, helpdesk = desk
    student = pending(make_user)
    page = client.get(f"/admin/users/{student.id}").get_data(as_text=True)
    assert "发送激活通知" in page and notice_url(student) in page

    confirm = client.get(notice_url(student)).get_data(as_text=True)
    assert "将发送至：" in confirm and "139****5678" in confirm and HR_PHONE not in confirm
    response = confirm_action(client, notice_url(student), reason="学生来电说没收到激活通知")
    assert response.status_code == 302
    shown = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "激活通知已发送至手机 139****5678（短信）、邮箱" in shown

    [sms] = outbox(idp_app, SMS_FILE, HR_PHONE)
    assert ACTIVATE in str(sms["text"]) and ACCOUNT in str(sms["text"])
    assert "证件号" in str(sms["text"])
    assert sms["code"] is None
    assert not re.search(r"(?<!\d)\d{6}(?!\d)", str(sms["text"]))  # no verification code
    [mail] = outbox(idp_app, MAIL_FILE, HR_EMAIL)
    assert mail["subject"] and "账号激活通知" in str(mail["subject"])
    assert ACTIVATE in str(mail["text"]) and ACCOUNT in str(mail["text"])
    assert mail["code"] is None

    [event] = events(idp_app, "console.resend-activation")
    assert event["actor_id"] == helpdesk.id and event["target_id"] == student.id
    assert event["outcome"] == "success"
    assert event["detail"]["reason"] == "学生来电说没收到激活通知"
    assert event["detail"]["phone"] == "139****5678"
    assert event["detail"]["email"] and event["detail"]["email"] != HR_EMAIL
    assert HR_PHONE not in str(event) and HR_EMAIL not in str(event)
    # A notice changes nothing about the account: activating is still the owner's to do.
    assert fresh(idp_app, student).status == UserStatus.PENDING


def test_owner_follows_the_notice_and_activates(
    idp_app: Flask, desk: tuple[FlaskClient, User], make_user: MakeUser
) -> None:
    """The address in the SMS is 激活账号: name, account, ID number, phone code, password."""
    client, _ = desk
    student = pending(make_user)
    assert confirm_action(client, notice_url(student)).status_code == 302
    [sms] = outbox(idp_app, SMS_FILE, HR_PHONE)
    match = re.search(r"https?://[^/\s]+(/activate)\b", str(sms["text"]))
    assert match, sms["text"]
    path = match.group(1)

    owner = idp_app.test_client()
    assert "基础信息验证" in owner.get(path).get_data(as_text=True)
    identified = post_form(
        owner, path, {"account": ACCOUNT, "name": "张三", "id_number": ID_NUMBER}
    )
    assert identified.status_code == 302 and identified.location == "/activate/phone"
    sent = post_form(owner, "/activate/phone", {"phone": HR_PHONE, "send": "1"})
    assert sent.status_code == 200
    code = last_code(idp_app, to=HR_PHONE)
    bound = post_form(owner, "/activate/phone", {"phone": HR_PHONE, "code": code})
    assert bound.status_code == 302 and bound.location == "/activate/password"
    done = post_form(
        owner, "/activate/password", {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
    )
    assert done.status_code == 200 and "激活成功" in done.get_data(as_text=True)
    activated = fresh(idp_app, student)
    assert activated.status == UserStatus.ACTIVE and activated.has_security_phone
    assert sign_in(idp_app.test_client(), ACCOUNT, NEW_PASSWORD).status_code == 302

    # Active now: the console no longer offers the notice, and refuses it if asked.
    page = client.get(f"/admin/users/{student.id}").get_data(as_text=True)
    assert notice_url(student) not in page
    assert client.get(notice_url(student)).status_code == 409


def test_notice_is_not_offered_for_an_active_account(
    idp_app: Flask, desk: tuple[FlaskClient, User], make_user: MakeUser
) -> None:
    """An activated account needs no notice: hidden, and refused when asked for directly."""
    client, _ = desk
    active = make_user("2024000777", name="李四", verified_phone=HR_PHONE, email=HR_EMAIL)
    page = client.get(f"/admin/users/{active.id}").get_data(as_text=True)
    assert notice_url(active) not in page and "发送激活通知" not in page
    refused = client.get(notice_url(active))
    assert refused.status_code == 409
    assert "该账号已激活，无需发送激活通知" in refused.get_data(as_text=True)
    assert outbox(idp_app, SMS_FILE, HR_PHONE) == []


def test_notice_needs_an_hr_phone_or_email(
    idp_app: Flask, desk: tuple[FlaskClient, User], make_user: MakeUser
) -> None:
    """Without a phone or email on file the option is not offered, and the page says why."""
    client, _ = desk
    student = pending(make_user, phone=None, email=None)
    page = client.get(f"/admin/users/{student.id}").get_data(as_text=True)
    assert notice_url(student) not in page
    assert "人事登记信息中没有该账号的手机号或邮箱" in page
    assert client.get(notice_url(student)).status_code == 409


def test_email_only_account_gets_the_notice_by_mail(
    idp_app: Flask, desk: tuple[FlaskClient, User], make_user: MakeUser
) -> None:
    """HR gave only an email: the notice goes by mail, and the audit row has no phone."""
    client, _ = desk
    student = pending(make_user, phone=None)
    assert confirm_action(client, notice_url(student)).status_code == 302
    assert len(outbox(idp_app, MAIL_FILE, HR_EMAIL)) == 1
    assert outbox(idp_app, SMS_FILE, HR_PHONE) == []
    [event] = events(idp_app, "console.resend-activation")
    assert event["detail"]["phone"] is None and event["detail"]["email"]


def test_one_notice_per_account_per_ten_minutes(
    idp_app: Flask, desk: tuple[FlaskClient, User], make_user: MakeUser
) -> None:
    """A second notice within ten minutes is refused with a clear message and sends nothing."""
    client, _ = desk
    student = pending(make_user)
    assert confirm_action(client, notice_url(student)).status_code == 302
    again = confirm_action(client, notice_url(student))
    assert again.status_code == 429
    assert "10 分钟内已向该账号发送过激活通知，请稍后再试" in again.get_data(as_text=True)
    assert len(outbox(idp_app, SMS_FILE, HR_PHONE)) == 1
    assert len(outbox(idp_app, MAIL_FILE, HR_EMAIL)) == 1
    [refused] = events(idp_app, "console.resend-activation", outcome="failure")
    assert refused["target_id"] == student.id
    with idp_app.app_context():
        left = get_store().ttl(f"activation-notice-wait:{student.id}")
        assert left is not None and 0 < left <= 600
        get_store().delete(f"activation-notice-wait:{student.id}")  # ten minutes later
    assert confirm_action(client, notice_url(student)).status_code == 302
    assert len(outbox(idp_app, SMS_FILE, HR_PHONE)) == 2


def test_helpdesk_cannot_send_activation_notice_for_an_admin(
    idp_app: Flask, desk: tuple[FlaskClient, User], make_user: MakeUser
) -> None:
    """Another console user's account is off limits: refused, audited, nothing sent."""
    client, helpdesk = desk
    admin, _ = make_console_user(
        idp_app,
        make_user,
        Role.ADMIN,
        totp=False,
        account="9000000002",
        pending=True,
        password=None,
        verified_phone=None,
        phone="13700000002",
    )
    assert client.get(notice_url(admin)).status_code == 403
    forged = client.post(notice_url(admin), data={"reason": "x", "confirm": "y", "nonce": "x"})
    assert forged.status_code in (400, 403)
    assert outbox(idp_app, SMS_FILE, "13700000002") == []
    refused = events(idp_app, "console.resend-activation", outcome="denied")
    assert refused and all(e["actor_id"] == helpdesk.id for e in refused)


@pytest.fixture
def aliyun() -> Iterator[FakeAliyunSms]:
    """A fake Aliyun SMS that knows only the activation-notice template."""
    with FakeAliyunSms(template_code="SMS_ACTIVATION") as gateway:
        yield gateway


def _console(app: Flask, make_user: MakeUser) -> FlaskClient:
    user, secret = make_console_user(app, make_user, Role.HELPDESK, account="9000000001")
    client = app.test_client()
    console_sign_in(client, user, secret)
    return client


def test_vendor_without_activation_template_does_not_offer_sms(
    make_idp: AppFactory, make_user: MakeUser, aliyun: FakeAliyunSms, tmp_path: Path
) -> None:
    """With a vendor and no IDP_SMS_ACTIVATION_TEMPLATE_ID: phone only → hidden and why;
    phone and email → the notice goes by mail only, and the page says why."""
    settings = {**aliyun.settings(), "SMS_TEMPLATE_ID": "SMS_1"}
    app = make_idp(SMS_PROVIDER="aliyun", OUTBOX_DIR=str(tmp_path / "outbox"), **settings)
    client = _console(app, make_user)
    phone_only = pending(make_user, email=None)
    page = client.get(f"/admin/users/{phone_only.id}").get_data(as_text=True)
    assert notice_url(phone_only) not in page
    assert "IDP_SMS_ACTIVATION_TEMPLATE_ID" in page
    assert client.get(notice_url(phone_only)).status_code == 409

    both = make_user(
        "2024000322",
        pending=True,
        password=None,
        verified_phone=None,
        phone="13912340000",
        email=HR_EMAIL,
    )
    page = client.get(f"/admin/users/{both.id}").get_data(as_text=True)
    assert notice_url(both) in page and "IDP_SMS_ACTIVATION_TEMPLATE_ID" in page
    assert confirm_action(client, notice_url(both)).status_code == 302
    assert aliyun.received == []
    assert len(outbox(app, MAIL_FILE, HR_EMAIL)) == 1
    [event] = events(app, "console.resend-activation")
    assert event["detail"]["phone"] is None


def test_vendor_sends_the_notice_through_its_approved_template(
    make_idp: AppFactory, make_user: MakeUser, aliyun: FakeAliyunSms, tmp_path: Path
) -> None:
    """The activation template's one parameter is the account number; no code goes out."""
    settings = {
        **aliyun.settings(),
        "SMS_TEMPLATE_ID": "SMS_1",
        "SMS_ACTIVATION_TEMPLATE_ID": "SMS_ACTIVATION",
    }
    app = make_idp(SMS_PROVIDER="aliyun", OUTBOX_DIR=str(tmp_path / "outbox"), **settings)
    client = _console(app, make_user)
    student = pending(make_user, email=None)
    assert confirm_action(client, notice_url(student)).status_code == 302
    [sms] = aliyun.received
    assert sms.template_id == "SMS_ACTIVATION" and sms.phone == HR_PHONE
    assert sms.params == (ACCOUNT,)


def test_vendor_failure_is_reported_and_can_be_retried_at_once(
    make_idp: AppFactory, make_user: MakeUser, aliyun: FakeAliyunSms, tmp_path: Path
) -> None:
    """When the only channel fails the desk is told (502), and no ten-minute wait is started."""
    settings = {
        **aliyun.settings(),
        "SMS_TEMPLATE_ID": "SMS_1",
        "SMS_ACTIVATION_TEMPLATE_ID": "SMS_ACTIVATION",
    }
    app = make_idp(SMS_PROVIDER="aliyun", OUTBOX_DIR=str(tmp_path / "outbox"), **settings)
    client = _console(app, make_user)
    student = pending(make_user, email=None)
    aliyun.fail_next("isv.BUSINESS_LIMIT_CONTROL")
    failed = confirm_action(client, notice_url(student))
    assert failed.status_code == 502 and "激活通知没有发出" in failed.get_data(as_text=True)
    [event] = events(app, "console.resend-activation", outcome="failure")
    assert event["target_id"] == student.id
    assert confirm_action(client, notice_url(student)).status_code == 302
    assert len(aliyun.received) == 1


def test_mail_failure_still_sends_the_sms_and_says_so(
    make_idp: AppFactory, make_user: MakeUser, tmp_path: Path
) -> None:
    """When the mail server is down the SMS still goes; the desk is told mail failed."""
    with socket.socket() as probe:  # a port nothing listens on: the connection is refused
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    app = make_idp(
        OUTBOX_DIR=str(tmp_path / "outbox"),
        MAIL_SERVER="127.0.0.1",
        MAIL_PORT=closed_port,
        MAIL_SECURITY="none",
    )
    client = _console(app, make_user)
    student = pending(make_user)
    response = confirm_action(client, notice_url(student))
    assert response.status_code == 302
    shown = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "激活通知已发送至手机 139****5678（短信）。" in shown
    assert "邮件发送失败，只通过短信发出" in shown
    assert len(outbox(app, SMS_FILE, HR_PHONE)) == 1
    [event] = events(app, "console.resend-activation")
    assert event["outcome"] == "success" and event["detail"]["failed"] == ["mail"]
    assert event["detail"]["email"] is None
