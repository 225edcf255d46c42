"""/admin/roles: who holds which console role; granting by account number and revoking.

The grant and revoke themselves are :mod:`idp.directory.roles` (the CLI's); this module finds
the people, keeps the console from losing its last admin, and words refusals for people.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import aliased

from idp.directory.models import User
from idp.directory.operations import find_user_by_account
from idp.directory.roles import Role, RoleGrant, grant_role, revoke_role
from idp.extensions import db
from shared.i18n import translate as _


class RoleError(ValueError):
    """A grant or revocation was refused; the message says why."""


@dataclass(frozen=True)
class Holding:
    """One role held by one person, as the roles page lists it."""

    user: User
    role: Role
    granted_at: datetime
    granted_by: User | None


def role_holders() -> list[Holding]:
    """Every role grant, admins first, then by account."""
    granter = aliased(User)
    rows = db.session.execute(
        db.select(RoleGrant, User, granter)
        .join(User, User.id == RoleGrant.user_id)
        .outerjoin(granter, granter.id == RoleGrant.granted_by_id)
        .order_by(RoleGrant.role, User.account)
    ).all()
    holdings = [
        Holding(user, Role(grant.role), grant.granted_at, by)
        for grant, user, by in rows
        if grant.role in Role._value2member_map_
    ]
    return sorted(holdings, key=lambda h: (h.role is not Role.ADMIN, h.user.account))


def grant_by_account(account: str, role: Role, *, actor: User, reason: str = "") -> User:
    """Give the person with this account number the role. Audited; caller commits."""
    user = find_user_by_account(account.strip()) if account.strip() else None
    if user is None:
        raise RoleError(_("找不到学工号为 %(account)s 的账号", account=account.strip()))
    if not grant_role(user, role, actor=actor, reason=reason):
        raise RoleError(_("%(name)s 已经拥有这个角色", name=user.name))
    return user


def revoke(user_id: int, role: Role, *, actor: User, reason: str = "") -> User:
    """Take the role away; the last admin cannot be removed. Audited; caller commits."""
    user = db.session.get(User, user_id)
    if user is None:
        raise RoleError(_("账号不存在"))
    if role is Role.ADMIN:
        admins = db.session.scalar(
            db.select(db.func.count(RoleGrant.id)).where(RoleGrant.role == Role.ADMIN.value)
        )
        if admins is not None and admins <= 1:
            raise RoleError(_("不能撤销最后一位管理员，请先授予其他人管理员角色"))
    if not revoke_role(user, role, actor=actor, reason=reason):
        raise RoleError(_("%(name)s 没有这个角色", name=user.name))
    return user
