"""服务台 发送重置链接: the help desk sends a one-time reset link to the verified security phone;
the student opens it, sets a new password once, and signs in. Links expire, die when used or
replaced, and reveal nothing when they are not valid."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from idp.account import reset_links
from idp.directory.models import User
from idp.directory.roles import Role
from idp.extensions import db
from shared.factory import get_store
from shared.messaging import SMS_FILE, read_records
from tests.conftest import AppFactory
from tests.fakes.sms_gateways import FakeAliyunSms
from tests.idp.conftest import PASSWORD, MakeUser, csrf_token, session_count, sign_in
from tests.idp.console_support import confirm_action, console_sign_in, events, make_console_user

STUDENT_PHONE = "13912345678"
NEW_PASSWORD = "Willow-2025-new"
LINK = re.compile(r"(https?://[^/\s]+)(/recover/link/([A-Za-z0-9_-]+))")


@pytest.fixture
def desk(idp_app: Flask, make_user: MakeUser) -> tuple[FlaskClient, User]:
    """A help-desk user signed in to the console with password and TOTP."""
    user, secret = make_console_user(
        idp_app, make_user, Role.HELPDESK, account="9000000001", verified_phone="13700000001"
    )
    client = idp_app.test_client()
    console_sign_in(client, user, secret)
    return client, user


@pytest.fixture
def student(make_user: MakeUser) -> User:
    """An ordinary active student with a verified security phone."""
    return make_user(
        "2024000123", name="李四", verified_phone=STUDENT_PHONE, id_number="620102200001011239"
    )


def link_url(user: User) -> str:
    return f"/admin/users/{user.id}/actions/reset-link"


def fresh(app: Flask, user: User) -> User:
    """``user`` as the database now has it."""
    with app.app_context():
        found = db.session.get(User, user.id)
        assert found is not None
        db.session.expunge(found)
        return found


def sent_link(app: Flask, to: str = STUDENT_PHONE) -> tuple[str, str]:
    """The (absolute URL, path) of the newest reset link in the SMS outbox for ``to``."""
    records = [r for r in read_records(app.config["OUTBOX_DIR"], SMS_FILE) if r["to"] == to]
    assert records, f"no SMS to {to}"
    match = LINK.search(records[-1]["text"])
    assert match, records[-1]["text"]
    assert records[-1]["code"] == match.group(3)  # the token is the record's code
    return match.group(0), match.group(2)


def send_link(app: Flask, desk: tuple[FlaskClient, User], student: User) -> str:
    """The help desk sends a reset link; returns the link's path."""
    client, _ = desk
    response = confirm_action(client, link_url(student), reason="学生来电，核实身份后发送")
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return sent_link(app)[1]


def set_password(
    client: FlaskClient, path: str, password: str, confirm: str | None = None
) -> TestResponse:
    """Submit the link page's new-password form (with this browser's CSRF token)."""
    data = {"csrf_token": csrf_token(client, "/recover"), "password": password}
    data["confirm"] = password if confirm is None else confirm
    return client.post(path, data=data)


def test_helpdesk_sends_reset_link_to_the_verified_security_phone(
    idp_app: Flask, desk: tuple[FlaskClient, User], student: User
) -> None:
    """The SMS carries <IDP_ISSUER>/recover/link/<token>; sessions end; a change is forced."""
    client, helpdesk = desk
    sign_in(idp_app.test_client(), student.account)
    assert session_count(idp_app, student) == 1
    page = client.get(f"/admin/users/{student.id}").get_data(as_text=True)
    assert "发送重置链接" in page and link_url(student) in page

    response = confirm_action(client, link_url(student), reason="学生来电，核实身份后发送")
    assert response.status_code == 302
    shown = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "重置链接已发送至安全手机 139****5678" in shown

    url, _path = sent_link(idp_app)
    assert url.startswith("http://127.0.0.1:5000/recover/link/")  # the default IDP_ISSUER
    token = url.rsplit("/", 1)[1]
    assert len(token) == 43
    assert session_count(idp_app, student) == 0
    assert fresh(idp_app, student).must_change_password
    # The old password still signs in, but only as far as 修改密码.
    signed_in = sign_in(idp_app.test_client(), student.account, PASSWORD)
    assert signed_in.status_code == 302 and "/password/change" in signed_in.headers["Location"]

    [event] = events(idp_app, "console.reset-link")
    assert event["actor_id"] == helpdesk.id and event["target_id"] == student.id
    assert event["outcome"] == "success"
    assert event["detail"]["phone"] == "139****5678"
    assert event["detail"]["reason"] == "学生来电，核实身份后发送"
    assert event["detail"]["sessions_ended"] == 1
    assert token not in str(event) and STUDENT_PHONE not in str(event)
    with idp_app.app_context():
        # Stored as a digest: the token itself opens nothing in the store.
        assert get_store().get(f"reset-link:{token}") is None


def test_student_sets_new_password_through_the_link_once(
    idp_app: Flask, desk: tuple[FlaskClient, User], student: User
) -> None:
    """Opening the link uses nothing; the form sets the password once; the second use is refused."""
    path = send_link(idp_app, desk, student)
    before = fresh(idp_app, student).password_hash
    browser = idp_app.test_client()
    for _ in range(2):  # opening (or a link preview) does not use it up
        opened = browser.get(path)
        assert opened.status_code == 200
        assert opened.headers["Cache-Control"] == "no-store"
        assert opened.headers["Referrer-Policy"] == "no-referrer"
        assert "设置新密码" in opened.get_data(as_text=True)

    mismatch = set_password(browser, path, NEW_PASSWORD, confirm=NEW_PASSWORD + "x")
    assert mismatch.status_code == 400 and "两次输入的密码不一致" in mismatch.get_data(as_text=True)
    weak = set_password(browser, path, student.account)
    assert weak.status_code == 400  # the password policy, as in 找回密码
    assert fresh(idp_app, student).password_hash == before

    done = set_password(browser, path, NEW_PASSWORD)
    assert done.status_code == 302 and done.headers["Location"].endswith("/login")
    assert "密码已重置，请使用新密码登录" in browser.get("/login").get_data(as_text=True)
    assert not fresh(idp_app, student).must_change_password
    assert sign_in(idp_app.test_client(), student.account, PASSWORD).status_code == 401
    signed_in = sign_in(idp_app.test_client(), student.account, NEW_PASSWORD)
    assert signed_in.status_code == 302 and "/password/change" not in signed_in.headers["Location"]

    [reset] = events(idp_app, "password.reset", outcome="success")
    assert reset["actor_id"] == student.id
    with idp_app.app_context():
        from idp.audit.models import AuditEvent

        methods = db.session.scalars(
            db.select(AuditEvent.method).where(AuditEvent.action == "password.reset")
        ).all()
    assert methods == ["helpdesk-link"]

    hash_after = fresh(idp_app, student).password_hash
    again = browser.get(path)
    assert again.status_code == 410
    reused = set_password(idp_app.test_client(), path, "Another-2025-pass")
    assert reused.status_code == 410
    assert fresh(idp_app, student).password_hash == hash_after
    [refused] = events(idp_app, "password.reset", outcome="failure")
    assert refused["detail"] == {"reason": "link-invalid"}


@pytest.mark.parametrize("token", ["nope", "A" * 43, "A" * 200])
def test_unknown_link_shows_recovery_and_help_desk_and_no_account(
    idp_app: Flask, student: User, token: str
) -> None:
    """A link that is not (or no longer) valid offers 找回密码 and the help-desk phone only."""
    response = idp_app.test_client().get(f"/recover/link/{token}")
    page = response.get_data(as_text=True)
    assert response.status_code == 410
    assert "此重置链接无效、已使用或已过期" in page
    assert 'href="/recover"' in page and idp_app.config["HELP_PHONE"] in page
    assert student.account not in page and "李四" not in page
    english = idp_app.test_client().get(f"/recover/link/{token}?lang=en")
    assert english.status_code == 410


def test_reset_link_expires(
    idp_app: Flask,
    desk: tuple[FlaskClient, User],
    student: User,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A link past its lifetime is refused like any invalid one; the password is unchanged."""
    monkeypatch.setattr(reset_links, "LINK_TTL", 1)
    path = send_link(idp_app, desk, student)
    before = fresh(idp_app, student).password_hash
    time.sleep(1.2)
    assert idp_app.test_client().get(path).status_code == 410
    assert set_password(idp_app.test_client(), path, NEW_PASSWORD).status_code == 410
    assert fresh(idp_app, student).password_hash == before


def test_newer_link_or_another_reset_voids_the_earlier_link(
    idp_app: Flask, desk: tuple[FlaskClient, User], student: User
) -> None:
    """Only the newest link works, and a temporary password given later voids it too."""
    client, _ = desk
    first = send_link(idp_app, desk, student)
    too_soon = confirm_action(client, link_url(student))
    assert too_soon.status_code == 429 and "一分钟后再试" in too_soon.get_data(as_text=True)
    with idp_app.app_context():
        get_store().delete(f"reset-link-wait:{student.id}")  # a minute later
    second = send_link(idp_app, desk, student)
    assert second != first
    assert idp_app.test_client().get(first).status_code == 410
    assert idp_app.test_client().get(second).status_code == 200

    temporary = confirm_action(client, f"/admin/users/{student.id}/actions/temp-password")
    assert temporary.status_code == 200
    assert idp_app.test_client().get(second).status_code == 410


def test_link_dies_when_the_security_phone_is_unbound(
    idp_app: Flask, desk: tuple[FlaskClient, User], student: User
) -> None:
    """A link sent to a phone the student has since lost (unbound at the desk) sets nothing."""
    client, _ = desk
    path = send_link(idp_app, desk, student)
    unbound = confirm_action(client, f"/admin/users/{student.id}/actions/unbind-phone")
    assert unbound.status_code == 302
    before = fresh(idp_app, student).password_hash
    assert idp_app.test_client().get(path).status_code == 410
    assert set_password(idp_app.test_client(), path, NEW_PASSWORD).status_code == 410
    assert fresh(idp_app, student).password_hash == before


def test_helpdesk_cannot_send_reset_link_for_an_admin(
    idp_app: Flask, desk: tuple[FlaskClient, User], make_user: MakeUser
) -> None:
    """Another console user's account is off limits: refused, audited, no SMS sent."""
    client, helpdesk = desk
    admin, _ = make_console_user(
        idp_app, make_user, Role.ADMIN, account="9000000002", verified_phone="13700000002"
    )
    assert client.get(link_url(admin)).status_code == 403
    forged = client.post(link_url(admin), data={"reason": "x", "confirm": "y", "nonce": "x"})
    assert forged.status_code in (400, 403)
    sms = read_records(idp_app.config["OUTBOX_DIR"], SMS_FILE)
    assert [r for r in sms if r["to"] == "13700000002"] == []
    refused = events(idp_app, "console.reset-link", outcome="denied")
    assert refused and all(e["actor_id"] == helpdesk.id for e in refused)
    assert not fresh(idp_app, admin).must_change_password


def test_reset_link_needs_a_verified_security_phone(
    idp_app: Flask, desk: tuple[FlaskClient, User], make_user: MakeUser
) -> None:
    """Without a verified phone the option is not offered, and the page says why."""
    client, _ = desk
    nophone = make_user("2024000999", name="王五", verified_phone=None)
    page = client.get(f"/admin/users/{nophone.id}").get_data(as_text=True)
    assert link_url(nophone) not in page
    assert "该账号没有已验证的安全手机，无法发送重置链接" in page
    refused = client.get(link_url(nophone))
    assert refused.status_code == 409


@pytest.fixture
def aliyun() -> Iterator[FakeAliyunSms]:
    """A fake Aliyun SMS that knows only the reset-link template (not the code template)."""
    with FakeAliyunSms(template_code="SMS_RESET_LINK") as gateway:
        yield gateway


def test_vendor_without_reset_link_template_offers_only_the_temporary_password(
    make_idp: AppFactory, make_user: MakeUser, aliyun: FakeAliyunSms
) -> None:
    """With Aliyun or Tencent and no IDP_SMS_RESET_LINK_TEMPLATE_ID the console says why."""
    app = make_idp(SMS_PROVIDER="aliyun", **{**aliyun.settings(), "SMS_TEMPLATE_ID": "SMS_1"})
    user, secret = make_console_user(app, make_user, Role.HELPDESK, account="9000000001")
    client = app.test_client()
    console_sign_in(client, user, secret)
    target = _student_in(app, make_user)
    page = client.get(f"/admin/users/{target.id}").get_data(as_text=True)
    assert "temp-password" in page and link_url(target) not in page
    assert "IDP_SMS_RESET_LINK_TEMPLATE_ID" in page
    assert client.get(link_url(target)).status_code == 409
    assert aliyun.received == []


def _student_in(app: Flask, make_user: MakeUser) -> User:
    """The student the vendor tests work on."""
    return make_user("2024000555", name="赵六", verified_phone=STUDENT_PHONE)


def test_vendor_sends_the_link_through_its_own_approved_template(
    make_idp: AppFactory, make_user: MakeUser, aliyun: FakeAliyunSms
) -> None:
    """The reset-link template carries the token as its one parameter; the link then works."""
    app = make_idp(
        SMS_PROVIDER="aliyun",
        **{
            **aliyun.settings(),
            "SMS_TEMPLATE_ID": "SMS_1",
            "SMS_RESET_LINK_TEMPLATE_ID": "SMS_RESET_LINK",
        },
    )
    user, secret = make_console_user(app, make_user, Role.HELPDESK, account="9000000001")
    client = app.test_client()
    console_sign_in(client, user, secret)
    target = _student_in(app, make_user)
    assert link_url(target) in client.get(f"/admin/users/{target.id}").get_data(as_text=True)
    assert confirm_action(client, link_url(target)).status_code == 302
    [sms] = aliyun.received
    assert sms.template_id == "SMS_RESET_LINK" and sms.phone == STUDENT_PHONE
    [token] = sms.params
    browser = app.test_client()
    assert browser.get(f"/recover/link/{token}").status_code == 200
    done = set_password(browser, f"/recover/link/{token}", NEW_PASSWORD)
    assert done.status_code == 302


def test_vendor_failure_sends_nothing_and_changes_nothing(
    make_idp: AppFactory, make_user: MakeUser, aliyun: FakeAliyunSms
) -> None:
    """When the SMS is refused the help desk is told; no link lives, no session ends."""
    app = make_idp(
        SMS_PROVIDER="aliyun",
        **{
            **aliyun.settings(),
            "SMS_TEMPLATE_ID": "SMS_1",
            "SMS_RESET_LINK_TEMPLATE_ID": "SMS_RESET_LINK",
        },
    )
    user, secret = make_console_user(app, make_user, Role.HELPDESK, account="9000000001")
    client = app.test_client()
    console_sign_in(client, user, secret)
    target = _student_in(app, make_user)
    sign_in(app.test_client(), target.account)
    aliyun.fail_next("isv.BUSINESS_LIMIT_CONTROL")
    response = confirm_action(client, link_url(target))
    assert response.status_code == 502
    assert "短信发送失败" in response.get_data(as_text=True)
    assert session_count(app, target) == 1
    assert not fresh(app, target).must_change_password
    [failed] = events(app, "console.reset-link", outcome="failure")
    assert failed["target_id"] == target.id


def test_link_page_is_rate_limited_per_address(
    idp_app: Flask, student: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the hourly limit an address gets 429, whatever the token."""
    monkeypatch.setattr(reset_links, "IP_HOURLY_LIMIT", 3)
    client = idp_app.test_client()
    statuses = [client.get(f"/recover/link/{'B' * 43}").status_code for _ in range(4)]
    assert statuses == [410, 410, 410, 429]
    assert "请求过于频繁" in client.get(f"/recover/link/{'B' * 43}").get_data(as_text=True)
