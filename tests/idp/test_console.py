"""管理控制台 (help desk): finding an account, the account page, every action with its reason and
audit record, single-use confirmation forms, and the audit viewer with its CSV export."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp.audit.models import AuditEvent, AuditLogIsAppendOnly
from idp.auth.sessions import session_ending
from idp.directory.models import User, UserStatus
from idp.directory.roles import Role, user_roles
from idp.extensions import db
from idp.mfa import operations as mfa
from tests.idp.conftest import PASSWORD, MakeUser, session_count, sign_in
from tests.idp.console_support import (
    confirm_action,
    confirm_nonce,
    console_sign_in,
    csrf_token_from,
    enable_totp,
    events,
    make_console_user,
)

STUDENT_PHONE = "13912345678"


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
def admin(idp_app: Flask, make_user: MakeUser) -> tuple[FlaskClient, User]:
    """An admin signed in to the console with password and TOTP."""
    user, secret = make_console_user(
        idp_app, make_user, Role.ADMIN, account="9000000002", verified_phone="13700000002"
    )
    client = idp_app.test_client()
    console_sign_in(client, user, secret)
    return client, user


@pytest.fixture
def student(make_user: MakeUser) -> User:
    """An ordinary active student with a security phone and email."""
    return make_user(
        "2024000123",
        name="李四",
        verified_phone=STUDENT_PHONE,
        verified_email="li.si@example.edu.cn",
        id_number="620102200001011239",
    )


def fresh(app: Flask, user: User) -> User:
    """``user`` as the database now has it."""
    with app.app_context():
        found = db.session.get(User, user.id)
        assert found is not None
        db.session.expunge(found)
        return found


def act_url(user: User, action: str) -> str:
    return f"/admin/users/{user.id}/actions/{action}"


# 查找账号 -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "2024000123",
        "李四",
        "李",
        "139 1234 5678",
        "+8613912345678",
        "620102200001011239",
        "LI.SI@example.edu.cn",
    ],
)
def test_helpdesk_finds_student_by_any_identifier_with_details_masked(
    desk: tuple[FlaskClient, User], student: User, query: str
) -> None:
    """Account number, name, phone (any spelling), ID number or email find the student, masked."""
    client, _ = desk
    response = client.get("/admin/users", query_string={"q": query})
    page = response.get_data(as_text=True).split("查找结果")[1]  # the typed query aside
    assert response.status_code == 200
    assert f"/admin/users/{student.id}" in page and "李四" in page
    assert STUDENT_PHONE not in page and "139****5678" in page
    assert "620102200001011239" not in page and "6201**********1239" in page
    assert "li.si@example.edu.cn" not in page


def test_search_for_nothing_is_refused_clearly_and_lists_nobody(
    idp_app: Flask, desk: tuple[FlaskClient, User], student: User
) -> None:
    """An empty or blank query gets a message, no listing of everyone, and an audit record."""
    client, helpdesk = desk
    for blank in ("", "   "):
        response = client.get("/admin/users", query_string={"q": blank})
        page = response.get_data(as_text=True)
        assert response.status_code == 400
        assert "请输入学工号、姓名、手机号、证件号或邮箱后再查找" in page
        assert student.account not in page
    refused = events(idp_app, "console.search", actor_id=helpdesk.id, outcome="failure")
    assert len(refused) == 2 and refused[0]["detail"] == {"reason": "empty"}


def test_search_does_not_treat_wildcards_as_wildcards(
    desk: tuple[FlaskClient, User], student: User
) -> None:
    """A ``%`` or ``_`` typed into the box matches only itself, so it cannot list everyone."""
    client, _ = desk
    for query in ("%", "_", "%%"):
        page = client.get("/admin/users", query_string={"q": query}).get_data(as_text=True)
        assert student.account not in page and "没有找到匹配的账号" in page


# 账号页 -------------------------------------------------------------------------------------


def test_account_page_shows_status_bindings_lock_sessions_and_sign_ins(
    idp_app: Flask, desk: tuple[FlaskClient, User], student: User
) -> None:
    """The account page shows what the help desk needs to judge the case, masked."""
    client, _ = desk
    student_browser = idp_app.test_client()
    sign_in(student_browser, student.account)
    sign_in(idp_app.test_client(), student.account, "Wrong-password-1")
    page = client.get(f"/admin/users/{student.id}").get_data(as_text=True)
    assert "李四" in page and "正常" in page
    assert "139****5678" in page and STUDENT_PHONE not in page
    assert "近期密码错误 1 次" in page and "未锁定" in page
    assert "登录设备" in page and "127.0.0.1" in page
    assert page.count("成功") >= 1 and "失败" in page  # the sign-in history
    assert "两步验证" in page and "未开启" in page
    assert "重置密码（临时密码）" in page and "解除锁定" in page
    assert "授予角色" not in page  # help desk cannot grant roles


# 重置密码 -----------------------------------------------------------------------------------


def test_helpdesk_resets_password_with_a_temporary_one_shown_once(
    idp_app: Flask, desk: tuple[FlaskClient, User], student: User
) -> None:
    """The temporary password works once shown; the old one no longer does; a change is forced."""
    client, helpdesk = desk
    student_browser = idp_app.test_client()
    sign_in(student_browser, student.account)
    assert session_count(idp_app, student) == 1
    response = confirm_action(
        client, act_url(student, "temp-password"), reason="忘记密码，手机已换"
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    import re

    password = re.search(r'<code id="temp-password">([^<]+)</code>', page).group(1)  # type: ignore[union-attr]
    assert len(password) >= 12
    assert session_count(idp_app, student) == 0  # every device signed out
    assert fresh(idp_app, student).must_change_password
    assert sign_in(idp_app.test_client(), student.account, PASSWORD).status_code == 401
    signed_in = sign_in(idp_app.test_client(), student.account, password)
    assert signed_in.status_code == 302 and "/password/change" in signed_in.headers["Location"]
    [event] = events(idp_app, "console.temp-password")
    assert event["actor_id"] == helpdesk.id and event["target_id"] == student.id
    assert event["outcome"] == "success" and event["ip"] == "127.0.0.1"
    assert event["detail"]["reason"] == "忘记密码，手机已换"
    assert password not in str(event)  # never in the log


def test_replayed_temporary_password_form_reveals_no_second_password(
    idp_app: Flask, desk: tuple[FlaskClient, User], student: User
) -> None:
    """Submitting the same confirmation again (back button, replay) changes and shows nothing."""
    client, _ = desk
    url = act_url(student, "temp-password")
    text = client.get(url).get_data(as_text=True)
    data = {
        "csrf_token": csrf_token_from(text),
        "nonce": confirm_nonce(text),
        "reason": "忘记密码",
        "confirm": "y",
    }
    first = client.post(url, data=data)
    assert first.status_code == 200 and "temp-password" in first.get_data(as_text=True)
    hash_after_first = fresh(idp_app, student).password_hash
    again = client.post(url, data=data)
    assert again.status_code == 409
    assert 'id="temp-password"' not in again.get_data(as_text=True)
    assert "此确认页面已使用或已过期" in again.get_data(as_text=True)
    assert fresh(idp_app, student).password_hash == hash_after_first
    assert len(events(idp_app, "console.temp-password", outcome="failure")) == 1


def test_confirmation_of_another_action_or_account_is_not_accepted(
    idp_app: Flask, desk: tuple[FlaskClient, User], student: User, make_user: MakeUser
) -> None:
    """A nonce confirms only the action and account it was issued for."""
    client, _ = desk
    other = make_user("2024000999", verified_phone="13911112222")
    text = client.get(act_url(student, "unlock")).get_data(as_text=True)
    data = {
        "csrf_token": csrf_token_from(text),
        "nonce": confirm_nonce(text),
        "reason": "试图套用",
        "confirm": "y",
    }
    assert client.post(act_url(other, "temp-password"), data=data).status_code == 409
    assert fresh(idp_app, other).password_hash == other.password_hash


def test_action_without_reason_or_confirmation_changes_nothing(
    idp_app: Flask, desk: tuple[FlaskClient, User], student: User
) -> None:
    """A reason is required and the box must be ticked; the refusal is audited."""
    client, _ = desk
    url = act_url(student, "disable")
    for data in ({"reason": "", "confirm": "y"}, {"reason": "离校"}):
        text = client.get(url).get_data(as_text=True)
        response = client.post(
            url,
            data={"csrf_token": csrf_token_from(text), "nonce": confirm_nonce(text), **data},
        )
        assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "请勾选确认后再提交" in page
    assert fresh(idp_app, student).status == UserStatus.ACTIVE
    assert len(events(idp_app, "console.disable", outcome="failure")) == 2


def test_forged_form_without_csrf_token_is_refused(
    idp_app: Flask, desk: tuple[FlaskClient, User], student: User
) -> None:
    """A form posted from elsewhere (no CSRF token) is refused and changes nothing."""
    client, _ = desk
    text = client.get(act_url(student, "disable")).get_data(as_text=True)
    response = client.post(
        act_url(student, "disable"),
        data={"nonce": confirm_nonce(text), "reason": "伪造", "confirm": "y"},
    )
    assert response.status_code == 400
    assert fresh(idp_app, student).status == UserStatus.ACTIVE


def test_confirmation_page_changes_nothing_by_itself(
    idp_app: Flask, desk: tuple[FlaskClient, User], student: User
) -> None:
    """Opening an action's page (GET) only asks; the account is untouched."""
    client, _ = desk
    before = fresh(idp_app, student)
    for action in ("temp-password", "disable", "unbind-phone", "end-sessions"):
        assert client.get(act_url(student, action)).status_code == 200
    after = fresh(idp_app, student)
    assert (after.password_hash, after.status, after.phone) == (
        before.password_hash,
        before.status,
        before.phone,
    )


# 解锁、解绑、两步验证 ------------------------------------------------------------------------


def test_helpdesk_unlocks_account_locked_by_wrong_passwords(
    idp_app: Flask, desk: tuple[FlaskClient, User], student: User
) -> None:
    """After five wrong passwords the account is locked; unlocking lets the owner sign in."""
    idp_app.config["LOGIN_CAPTCHA_AFTER"] = 100
    client, helpdesk = desk
    browser = idp_app.test_client()
    for _ in range(5):
        sign_in(browser, student.account, "Wrong-password-1")
    assert sign_in(browser, student.account).status_code == 401
    assert "已锁定" in client.get(f"/admin/users/{student.id}").get_data(as_text=True)
    response = confirm_action(client, act_url(student, "unlock"), reason="学生本人来电")
    assert response.status_code == 302
    assert sign_in(browser, student.account).status_code == 302
    [event] = events(idp_app, "console.unlock")
    assert event["detail"]["reason"] == "学生本人来电" and event["detail"]["throttle"] is True
    assert event["actor_id"] == helpdesk.id


def test_unlocking_an_account_that_is_not_locked_says_so(
    idp_app: Flask, desk: tuple[FlaskClient, User], student: User
) -> None:
    """Nothing to unlock: a clear answer (409), recorded as a failure."""
    client, _ = desk
    response = confirm_action(client, act_url(student, "unlock"))
    assert response.status_code == 409 and "没有被锁定" in response.get_data(as_text=True)
    assert [e["outcome"] for e in events(idp_app, "console.unlock")] == ["failure"]


def test_helpdesk_unbinds_changed_phone_and_the_student_binds_a_new_one_at_sign_in(
    idp_app: Flask, desk: tuple[FlaskClient, User], student: User
) -> None:
    """换了手机号: unbinding the security phone makes the next sign-in ask for a new one."""
    client, _ = desk
    response = confirm_action(client, act_url(student, "unbind-phone"), reason="手机号已更换")
    assert response.status_code == 302
    after = fresh(idp_app, student)
    assert after.phone is None and not after.has_security_phone
    assert after.email == "li.si@example.edu.cn"  # only what the action says
    signed_in = sign_in(idp_app.test_client(), student.account)
    assert "/complete" in signed_in.headers["Location"]
    assert events(idp_app, "console.unbind-phone")[0]["detail"]["reason"] == "手机号已更换"


def test_helpdesk_unbinds_security_email(
    idp_app: Flask, desk: tuple[FlaskClient, User], student: User
) -> None:
    """Unbinding the security email removes it and nothing else."""
    client, _ = desk
    assert confirm_action(client, act_url(student, "unbind-email")).status_code == 302
    after = fresh(idp_app, student)
    assert after.email is None and after.has_security_phone
    assert len(events(idp_app, "console.unbind-email")) == 1


def test_helpdesk_resets_lost_authenticator(
    idp_app: Flask, desk: tuple[FlaskClient, User], student: User
) -> None:
    """重置两步验证: the student's TOTP is gone and sign-in asks for the password only."""
    client, helpdesk = desk
    enable_totp(idp_app, student)
    response = confirm_action(client, act_url(student, "reset-totp"), reason="手机丢失")
    assert response.status_code == 302
    with idp_app.app_context():
        assert not mfa.totp_enabled(db.session.get(User, student.id))
    assert sign_in(idp_app.test_client(), student.account).headers["Location"] == "/"
    [event] = events(idp_app, "console.reset-totp")
    assert event["actor_id"] == helpdesk.id and event["detail"]["reason"] == "手机丢失"
    assert events(idp_app, "mfa.reset")[0]["detail"]["reason"] == "手机丢失"


def test_social_bindings_can_be_unbound_when_present(
    idp_app: Flask, desk: tuple[FlaskClient, User], student: User
) -> None:
    """Unbinding WeChat when none is bound is refused clearly; a bound one is removed."""
    social = pytest.importorskip("idp.social.operations")
    client, _ = desk
    response = confirm_action(client, act_url(student, "unbind-wechat"))
    assert response.status_code == 409
    from idp.social.models import SocialIdentity

    with idp_app.app_context():
        db.session.add(
            SocialIdentity(user_id=student.id, provider="wechat", subject="u-1", nickname="小李")
        )
        db.session.commit()
    assert "小李" in client.get(f"/admin/users/{student.id}").get_data(as_text=True)
    assert confirm_action(client, act_url(student, "unbind-wechat")).status_code == 302
    with idp_app.app_context():
        assert not social.identities_of(db.session.get(User, student.id))
    assert [e["outcome"] for e in events(idp_app, "console.unbind-wechat")] == [
        "failure",
        "success",
    ]


# 停用、启用、退出登录 ------------------------------------------------------------------------


def test_disabling_signs_out_everywhere_and_enabling_lets_the_student_back(
    idp_app: Flask, desk: tuple[FlaskClient, User], student: User
) -> None:
    """A disabled account loses its sessions and cannot sign in; enabling restores it."""
    client, _ = desk
    browser = idp_app.test_client()
    sign_in(browser, student.account)
    assert confirm_action(client, act_url(student, "disable"), reason="退学").status_code == 302
    assert fresh(idp_app, student).status == UserStatus.DISABLED
    assert session_count(idp_app, student) == 0
    assert sign_in(idp_app.test_client(), student.account).status_code != 302
    assert confirm_action(client, act_url(student, "enable"), reason="复学").status_code == 302
    assert fresh(idp_app, student).status == UserStatus.ACTIVE
    assert sign_in(idp_app.test_client(), student.account).status_code == 302
    assert events(idp_app, "console.disable")[0]["detail"]["reason"] == "退学"
    assert events(idp_app, "console.enable")[0]["detail"]["reason"] == "复学"


def test_end_all_sessions_tells_every_signed_in_system(
    idp_app: Flask, desk: tuple[FlaskClient, User], student: User
) -> None:
    """退出所有登录 ends each session through the single-logout signal."""
    client, _ = desk
    for _ in range(2):
        sign_in(idp_app.test_client(), student.account)
    ended: list[Any] = []

    def listen(sender: Any, sessions: list[Any]) -> None:
        ended.extend(s.user_id for s in sessions)

    session_ending.connect(listen)
    try:
        response = confirm_action(client, act_url(student, "end-sessions"), reason="账号被盗嫌疑")
    finally:
        session_ending.disconnect(listen)
    assert response.status_code == 302
    assert ended == [student.id, student.id]
    assert session_count(idp_app, student) == 0
    assert events(idp_app, "console.end-sessions")[0]["detail"]["sessions_ended"] == 2


# 角色 ---------------------------------------------------------------------------------------


def test_admin_grants_and_revokes_help_desk_role_on_the_account_page(
    idp_app: Flask, admin: tuple[FlaskClient, User], student: User
) -> None:
    """Admins grant and revoke console roles, with a reason, on the record."""
    client, boss = admin
    assert "授予角色" in client.get(f"/admin/users/{student.id}").get_data(as_text=True)
    url = f"/admin/users/{student.id}/roles/grant-role"
    assert confirm_action(client, url, reason="新入职服务台", role="helpdesk").status_code == 302
    with idp_app.app_context():
        assert user_roles(db.session.get(User, student.id)) == {Role.HELPDESK}
    url = f"/admin/users/{student.id}/roles/revoke-role"
    assert confirm_action(client, url, reason="调岗", role="helpdesk").status_code == 302
    with idp_app.app_context():
        assert user_roles(db.session.get(User, student.id)) == set()
    assert events(idp_app, "role.grant", target_id=student.id)[0]["actor_id"] == boss.id
    assert events(idp_app, "console.revoke-role")[0]["detail"] == {
        "reason": "调岗",
        "role": "helpdesk",
    }


# 审计日志 -----------------------------------------------------------------------------------


def _seed_events(app: Flask, actor: User, target: User, count: int) -> None:
    from idp.audit.operations import record

    with app.app_context():
        a, t = db.session.get(User, actor.id), db.session.get(User, target.id)
        for n in range(count):
            record("console.unlock", actor=a, target=t, detail={"reason": f"第{n}次"})
        record(
            "console.disable", "denied", actor=a, target=t, detail={"reason": "=cmd|' /C calc'!A0"}
        )
        db.session.commit()


def test_audit_viewer_filters_by_actor_target_action_outcome_and_time(
    idp_app: Flask, admin: tuple[FlaskClient, User], desk: tuple[FlaskClient, User], student: User
) -> None:
    """Each filter narrows the list; a malformed date is a clear 400."""
    client, _ = admin
    _, helpdesk = desk
    _seed_events(idp_app, helpdesk, student, 3)
    page = client.get(
        "/admin/audit", query_string={"actor": helpdesk.account, "action": "console.unlock"}
    ).get_data(as_text=True)
    assert page.count("<code>console.unlock</code>") == 3 and "console.disable" not in page
    page = client.get(
        "/admin/audit", query_string={"target": student.account, "outcome": "denied"}
    ).get_data(as_text=True)
    assert "console.disable" in page and "<code>console.unlock</code>" not in page
    page = client.get("/admin/audit", query_string={"action": "console."}).get_data(as_text=True)
    assert page.count("<code>console.unlock</code>") == 3
    page = client.get(
        "/admin/audit", query_string={"action": "console.unlock", "until": "2000-01-01"}
    ).get_data(as_text=True)
    assert "没有符合条件的记录" in page
    page = client.get(
        "/admin/audit", query_string={"action": "console.unlock", "since": "2000-01-01"}
    ).get_data(as_text=True)
    assert page.count("<code>console.unlock</code>") == 3
    bad = client.get("/admin/audit", query_string={"since": "yesterday"})
    assert bad.status_code == 400 and "YYYY-MM-DD" in bad.get_data(as_text=True)


def test_audit_viewer_pages_through_the_log(
    idp_app: Flask, admin: tuple[FlaskClient, User], desk: tuple[FlaskClient, User], student: User
) -> None:
    """50 events a page, newest first, with links to the next and previous pages."""
    client, _ = admin
    _seed_events(idp_app, desk[1], student, 60)
    first = client.get("/admin/audit", query_string={"action": "console.unlock"}).get_data(
        as_text=True
    )
    assert first.count("<code>console.unlock</code>") == 50 and "第59次" in first
    assert "page=2" in first and "下一页" in first
    second = client.get(
        "/admin/audit", query_string={"action": "console.unlock", "page": "2"}
    ).get_data(as_text=True)
    assert second.count("<code>console.unlock</code>") == 10 and "第0次" in second
    assert "下一页" not in second and "上一页" in second


def test_audit_csv_export_opens_in_excel_with_the_same_filters(
    idp_app: Flask, admin: tuple[FlaskClient, User], desk: tuple[FlaskClient, User], student: User
) -> None:
    """UTF-8 with BOM, one row per event, the filters applied, formulas defused, on the record."""
    client, boss = admin
    _seed_events(idp_app, desk[1], student, 2)
    response = client.get("/admin/audit.csv", query_string={"target": student.account})
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.is_streamed
    assert "attachment" in response.headers["Content-Disposition"]
    body = response.get_data()
    assert body.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[0][:3] == ["time", "actor_account", "actor_name"]
    assert len(rows) == 4  # header + two unlocks + one disable
    assert {row[3] for row in rows[1:]} == {student.account}
    assert rows[1][5] == "console.disable" and rows[1][6] == "denied"
    assert rows[1][12].startswith("{")  # JSON detail, Chinese kept readable
    assert any("第1次" in row[12] for row in rows)
    assert rows[1][2] == "服务台"
    assert events(idp_app, "audit.export", actor_id=boss.id)


def test_audit_csv_cells_that_excel_would_run_are_quoted_as_text(
    idp_app: Flask, admin: tuple[FlaskClient, User], desk: tuple[FlaskClient, User], student: User
) -> None:
    """A user agent or subject starting with ``=`` is written with a leading apostrophe."""
    client, _ = admin
    from idp.audit.operations import record

    with idp_app.app_context():
        record("login", "failure", subject='=HYPERLINK("http://x")', detail={"r": 1})
        db.session.commit()
    body = client.get("/admin/audit.csv", query_string={"action": "login"}).get_data()
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    subjects = [row[7] for row in rows[1:]]
    assert '\'=HYPERLINK("http://x")' in subjects


def test_audit_events_cannot_be_changed_or_deleted_by_the_application(
    idp_app: Flask, student: User
) -> None:
    """The log is append-only for the app: edits, deletes and bulk statements are refused."""
    from idp.audit.operations import record

    with idp_app.app_context():
        record("console.unlock", target=db.session.get(User, student.id))
        db.session.commit()
        event = db.session.scalars(db.select(AuditEvent)).one()
        event.outcome = "denied"
        with pytest.raises(AuditLogIsAppendOnly):
            db.session.commit()
        db.session.rollback()
        db.session.delete(db.session.scalars(db.select(AuditEvent)).one())
        with pytest.raises(AuditLogIsAppendOnly):
            db.session.commit()
        db.session.rollback()
        with pytest.raises(AuditLogIsAppendOnly):
            db.session.execute(db.update(AuditEvent).values(outcome="denied"))
        db.session.rollback()
        with pytest.raises(AuditLogIsAppendOnly):
            db.session.execute(db.delete(AuditEvent))
        db.session.rollback()
        assert db.session.scalars(db.select(AuditEvent.outcome)).all() == ["success"]


def test_written_events_match_recorded_ones_and_roll_back_with_the_caller(
    idp_app: Flask, student: User
) -> None:
    """``write`` (one plain INSERT, for sign-in and CAS validation) leaves the same row as
    ``record``, request details included, and in the caller's transaction: a rollback takes it."""
    from idp.audit.operations import record, write

    columns = ("action", "outcome", "actor_id", "target_id", "subject", "method", "detail")
    columns += ("ip", "user_agent", "request_id")
    headers = {"User-Agent": "Probe/1.0", "X-Request-ID": "req-0001"}
    environ = {"REMOTE_ADDR": "10.1.2.3"}
    with idp_app.test_request_context(
        "/cas/serviceValidate", headers=headers, environ_base=environ
    ):
        idp_app.preprocess_request()  # the request id is assigned before the view
        user = db.session.get(User, student.id)
        write("cas.validate", "failure", target=user, subject="cas:1", detail={"code": "X"})
        db.session.rollback()
        assert db.session.scalars(db.select(AuditEvent)).all() == []
        write("login", "denied", target=user, method="password", detail={"reason": "已停用"})
        record("login", "denied", target=user, method="password", detail={"reason": "已停用"})
        db.session.commit()
        written, recorded = db.session.scalars(db.select(AuditEvent).order_by(AuditEvent.id))
    assert [getattr(written, name) for name in columns] == [
        getattr(recorded, name) for name in columns
    ]
    assert (written.target_id, written.ip, written.user_agent, written.request_id) == (
        student.id,
        "10.1.2.3",
        "Probe/1.0",
        "req-0001",
    )
    assert written.detail == '{"reason": "已停用"}' and written.at <= recorded.at


def test_pending_account_is_pointed_to_self_service_activation(
    idp_app: Flask, desk: tuple[FlaskClient, User], make_user: MakeUser
) -> None:
    """An account not yet activated gets no temporary password; the page says to use /activate."""
    client, _ = desk
    pending = make_user("2024000777", password=None, verified_phone=None)
    assert fresh(idp_app, pending).status == UserStatus.PENDING
    page = client.get(f"/admin/users/{pending.id}").get_data(as_text=True)
    assert "该账号尚未激活" in page and "/activate" in page
    response = confirm_action(client, act_url(pending, "temp-password"))
    assert response.status_code == 409 and "激活账号" in response.get_data(as_text=True)
    assert fresh(idp_app, pending).password_hash is None
