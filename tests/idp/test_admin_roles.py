"""角色与权限 (/admin/roles): admins see who holds which console role, grant and revoke."""

from __future__ import annotations

from flask import Flask

from idp.directory.models import User
from idp.directory.roles import Role, user_roles
from idp.extensions import db
from tests.idp.admin_support import Signed, admin_fixture, desk_fixture  # noqa: F401
from tests.idp.conftest import MakeUser, csrf_token, post_form
from tests.idp.console_support import events

ROLES = "/admin/roles"


def _roles(app: Flask, user: User) -> set[Role]:
    with app.app_context():
        fresh = db.session.get(User, user.id)
        assert fresh is not None
        return user_roles(fresh)


def _revoke(signed: Signed, user: User, role: Role, reason: str = "") -> str:
    token = csrf_token(signed.client, ROLES)
    response = signed.client.post(
        f"{ROLES}/revoke",
        data={"csrf_token": token, "user_id": str(user.id), "role": role.value, "reason": reason},
        follow_redirects=True,
    )
    return response.get_data(as_text=True)


def test_admin_grants_help_desk_by_account_and_revokes_it(
    idp_app: Flask, admin: Signed, make_user: MakeUser
) -> None:
    """授予 by 学工号, listed with who granted it; 撤销 with a reason; both audited."""
    staff = make_user("T3001", name="孙老师")
    response = post_form(
        admin.client, ROLES, {"account": "T3001", "role": "helpdesk", "reason": "新入职服务台"}
    )
    assert response.status_code == 302
    assert _roles(idp_app, staff) == {Role.HELPDESK}
    page = admin.client.get(ROLES).get_data(as_text=True)
    assert "孙老师" in page and "T3001" in page
    grant = events(idp_app, "role.grant", target_id=staff.id)[-1]
    assert grant["actor_id"] == admin.user.id
    assert grant["detail"]["reason"] == "新入职服务台"

    _revoke(admin, staff, Role.HELPDESK, "调岗")
    assert _roles(idp_app, staff) == set()
    assert events(idp_app, "role.revoke", target_id=staff.id)[-1]["detail"]["reason"] == "调岗"


def test_unknown_account_and_repeated_grant_are_refused(
    idp_app: Flask, admin: Signed, make_user: MakeUser
) -> None:
    """A 学工号 that does not exist, or a role already held: a clear message, nothing changes."""
    unknown = post_form(admin.client, ROLES, {"account": "NOPE999", "role": "admin"})
    assert unknown.status_code == 400
    assert "找不到学工号为 NOPE999 的账号" in unknown.get_data(as_text=True)
    again = post_form(admin.client, ROLES, {"account": admin.user.account, "role": "admin"})
    assert again.status_code == 400
    assert "已经拥有这个角色" in again.get_data(as_text=True)
    forged = post_form(admin.client, ROLES, {"account": admin.user.account, "role": "root"})
    assert forged.status_code == 400
    assert _roles(idp_app, admin.user) == {Role.ADMIN}


def test_the_last_admin_cannot_be_revoked(idp_app: Flask, admin: Signed) -> None:
    """The console never loses its last admin."""
    page = _revoke(admin, admin.user, Role.ADMIN)
    assert "不能撤销最后一位管理员" in page
    assert _roles(idp_app, admin.user) == {Role.ADMIN}


def test_help_desk_cannot_grant_roles(idp_app: Flask, desk: Signed) -> None:
    """Help desk cannot make itself admin: 403, audited, nothing granted."""
    assert desk.client.get(ROLES).status_code == 403
    response = desk.client.post(ROLES, data={"account": desk.user.account, "role": "admin"})
    assert response.status_code in (400, 403)
    assert _roles(idp_app, desk.user) == {Role.HELPDESK}
    assert events(idp_app, "console.denied", actor_id=desk.user.id)
