"""Who may use the console: sign-in, roles, the TOTP gate, and why help desk cannot escalate
(no role grants, no admin pages, no actions on admins or other console users, not on itself)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.routing import IntegerConverter

from idp.admin.operations import ACTIONS, Action
from idp.directory.models import User, UserStatus
from idp.directory.roles import Role, user_roles
from idp.extensions import db
from tests.idp.conftest import MakeUser, sign_in
from tests.idp.console_support import (
    confirm_action,
    console_sign_in,
    enable_totp,
    events,
    make_console_user,
)

HELP_DESK_ACTIONS = [a for a, info in ACTIONS.items() if info.role is Role.HELPDESK]


@pytest.fixture
def desk(idp_app: Flask, make_user: MakeUser) -> tuple[FlaskClient, User]:
    """A help-desk user signed in to the console with password and TOTP."""
    user, secret = make_console_user(
        idp_app, make_user, Role.HELPDESK, account="9000000001", verified_phone="13700000001"
    )
    client = idp_app.test_client()
    console_sign_in(client, user, secret)
    return client, user


def _snapshot(app: Flask, user: User) -> tuple[Any, ...]:
    with app.app_context():
        found = db.session.get(User, user.id)
        assert found is not None
        return (
            found.password_hash,
            found.status,
            found.phone,
            found.email,
            found.must_change_password,
            frozenset(user_roles(found)),
        )


def _url_for_rule(rule: Any, user_id: int) -> str:
    """A concrete address for ``rule``: ints become ``user_id``, other parts a plausible word."""
    values: dict[str, Any] = {}
    for name in rule.arguments:
        numeric = isinstance(rule._converters[name], IntegerConverter)
        values[name] = user_id if numeric else "x"
    return rule.build(values, append_unknown=False)[1]


# 登录与角色 ---------------------------------------------------------------------------------


def test_visitor_who_is_not_signed_in_is_sent_to_sign_in_and_back(idp_client: FlaskClient) -> None:
    """/admin without a session goes to /login?next=/admin."""
    response = idp_client.get("/admin")
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.path == "/login" and parse_qs(location.query)["next"] == ["/admin"]


def test_student_without_a_role_is_refused_and_the_attempt_audited(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """An ordinary account gets 403 on every console page, recorded as console.denied."""
    student = make_user("2024000001")
    client = idp_app.test_client()
    sign_in(client, student.account)
    for url in ("/admin", "/admin/users?q=2024", "/admin/audit"):
        response = client.get(url)
        assert response.status_code == 403
        assert "没有权限" in response.get_data(as_text=True)
    denied = events(idp_app, "console.denied", actor_id=student.id)
    assert len(denied) == 3 and all(e["outcome"] == "denied" for e in denied)


def test_console_user_without_totp_is_asked_to_enable_it_first(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """A help-desk user with no authenticator app sees “请先启用两步验证” (403) and its link."""
    user, _ = make_console_user(idp_app, make_user, Role.HELPDESK, totp=False)
    client = idp_app.test_client()
    sign_in(client, user.account)
    response = client.get("/admin")
    page = response.get_data(as_text=True)
    assert response.status_code == 403
    assert "请先启用两步验证" in page and "/security/totp" in page


def test_session_signed_in_without_totp_is_sent_to_the_step_up_page(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """Signed in before TOTP was on: the console asks for a code first, then comes back."""
    user, _ = make_console_user(idp_app, make_user, Role.HELPDESK, totp=False)
    client = idp_app.test_client()
    sign_in(client, user.account)
    enable_totp(idp_app, user)
    response = client.get("/admin/users?q=abc")
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.path == "/mfa/verify"
    assert parse_qs(location.query)["next"] == ["/admin/users?q=abc"]


def test_help_desk_nav_shows_only_help_desk_sections(
    idp_app: Flask, desk: tuple[FlaskClient, User], make_user: MakeUser
) -> None:
    """Help desk sees search, not the audit log or the admins' sections; admins see all."""
    client, _ = desk
    nav = client.get("/admin").get_data(as_text=True).split("console-main")[0]
    assert "查找账号" in nav and "审计日志" not in nav and "/admin/audit" not in nav
    boss, secret = make_console_user(idp_app, make_user, Role.ADMIN, verified_phone="13700000002")
    admin_client = idp_app.test_client()
    console_sign_in(admin_client, boss, secret)
    nav = admin_client.get("/admin").get_data(as_text=True).split("console-main")[0]
    assert "查找账号" in nav and "审计日志" in nav


# 服务台不能越权 -----------------------------------------------------------------------------


def test_help_desk_cannot_open_any_admin_page(
    idp_app: Flask, desk: tuple[FlaskClient, User]
) -> None:
    """Every /admin route that needs the admin role answers help desk 403, audited, for each
    method it accepts (the admin helper's pages included, found through the URL map)."""
    client, helpdesk = desk
    token = _token(client)
    admin_rules = [
        rule
        for rule in idp_app.url_map.iter_rules()
        if rule.rule.startswith("/admin")
        and getattr(idp_app.view_functions[rule.endpoint], "console_role", None) is Role.ADMIN
    ]
    endpoints = {rule.endpoint for rule in admin_rules}
    assert {"admin.audit", "admin.audit_export", "admin.role_action"} <= endpoints
    tried = 0
    for rule in admin_rules:
        url = _url_for_rule(rule, helpdesk.id)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            data = {"csrf_token": token} if method != "GET" else None
            response = client.open(url, method=method, data=data)
            assert response.status_code == 403, (method, url, response.status_code)
            tried += 1
    assert len(events(idp_app, "console.denied", actor_id=helpdesk.id)) == tried


def _token(client: FlaskClient) -> str:
    page = client.get("/admin").get_data(as_text=True)
    match = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert match
    return match.group(1)


def test_help_desk_cannot_grant_roles_not_even_to_itself(
    idp_app: Flask, desk: tuple[FlaskClient, User], make_user: MakeUser
) -> None:
    """Granting a role is for admins: help desk gets 403 and nobody gains a role."""
    client, helpdesk = desk
    student = make_user("2024000002", verified_phone="13900000002")
    for target in (student, helpdesk):
        url = f"/admin/users/{target.id}/roles/grant-role"
        assert client.get(url).status_code == 403
        response = client.post(
            url,
            data={"csrf_token": _token(client), "reason": "x", "confirm": "y", "role": "admin"},
        )
        assert response.status_code == 403
    with idp_app.app_context():
        assert user_roles(db.session.get(User, student.id)) == set()
        assert user_roles(db.session.get(User, helpdesk.id)) == {Role.HELPDESK}


@pytest.mark.parametrize("role", [Role.ADMIN, Role.HELPDESK])
@pytest.mark.parametrize("action", HELP_DESK_ACTIONS)
def test_help_desk_cannot_act_on_admins_or_other_console_users(
    idp_app: Flask,
    desk: tuple[FlaskClient, User],
    make_user: MakeUser,
    role: Role,
    action: Action,
) -> None:
    """Every action on a console user is refused (403), changes nothing, and is audited."""
    client, helpdesk = desk
    other, _ = make_console_user(idp_app, make_user, role, verified_phone="13700000009")
    before = _snapshot(idp_app, other)
    url = f"/admin/users/{other.id}/actions/{action.value}"
    assert client.get(url).status_code == 403
    response = client.post(
        url, data={"csrf_token": _token(client), "nonce": "x", "reason": "越权", "confirm": "y"}
    )
    assert response.status_code == 403
    assert _snapshot(idp_app, other) == before
    refused = events(idp_app, f"console.{action.value}", target_id=other.id)
    assert len(refused) == 2 and {e["outcome"] for e in refused} == {"denied"}
    assert refused[0]["actor_id"] == helpdesk.id


def test_nobody_uses_the_console_on_their_own_account(
    idp_app: Flask, desk: tuple[FlaskClient, User]
) -> None:
    """Help desk cannot reset its own TOTP or password here (the security centre is for that)."""
    client, helpdesk = desk
    before = _snapshot(idp_app, helpdesk)
    for action in ("reset-totp", "temp-password"):
        assert client.get(f"/admin/users/{helpdesk.id}/actions/{action}").status_code == 403
    assert _snapshot(idp_app, helpdesk) == before
    page = client.get(f"/admin/users/{helpdesk.id}").get_data(as_text=True)
    assert "不能在此处理" in page and "/actions/" not in page


def test_admin_may_help_a_help_desk_colleague(
    idp_app: Flask, desk: tuple[FlaskClient, User], make_user: MakeUser
) -> None:
    """Admins act on help-desk accounts (e.g. a lost phone) — the role hierarchy, not a wall."""
    _, helpdesk = desk
    boss, secret = make_console_user(idp_app, make_user, Role.ADMIN, verified_phone="13700000002")
    client = idp_app.test_client()
    console_sign_in(client, boss, secret)
    response = confirm_action(client, f"/admin/users/{helpdesk.id}/actions/disable", reason="离职")
    assert response.status_code == 302
    with idp_app.app_context():
        assert db.session.get(User, helpdesk.id).status == UserStatus.DISABLED


def test_disabled_console_user_loses_the_console_at_once(
    idp_app: Flask, desk: tuple[FlaskClient, User], make_user: MakeUser
) -> None:
    """Once disabled, a help-desk user's open console session no longer works."""
    client, helpdesk = desk
    with idp_app.app_context():
        db.session.get(User, helpdesk.id).status = UserStatus.DISABLED
        db.session.commit()
    response = client.get("/admin")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_unknown_action_or_account_is_not_found(desk: tuple[FlaskClient, User]) -> None:
    """A made-up action or account number answers 404, not an error page."""
    client, helpdesk = desk
    assert client.get(f"/admin/users/{helpdesk.id}/actions/delete-everything").status_code == 404
    assert client.get("/admin/users/999999").status_code == 404
    assert client.get("/admin/users/999999/actions/unlock").status_code == 404
