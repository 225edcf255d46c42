"""Hall roles: ``hall_admin`` (runs the hall, grants roles) and ``service_manager`` of one
department (edits that department's services, notices and system entries)."""

from __future__ import annotations

import enum
from datetime import datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import DateTime, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from hall.audit.operations import record
from hall.auth.models import HallUser, utcnow
from hall.directory.models import Department
from hall.extensions import db


class HallRole(enum.StrEnum):
    """The hall's roles."""

    HALL_ADMIN = "hall_admin"
    SERVICE_MANAGER = "service_manager"


class RoleGrant(db.Model):  # type: ignore[name-defined]
    """One role held by one account (for service managers: in one department).

    Keyed by 学工号 rather than hall user, so a role can be granted before its holder has
    ever signed in to the hall.
    """

    __tablename__ = "hall_role_grants"

    id: Mapped[int] = mapped_column(primary_key=True)
    account: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(32))
    department_id: Mapped[int | None] = mapped_column(
        ForeignKey("departments.id", ondelete="CASCADE")
    )
    department: Mapped[Department | None] = relationship(lazy="joined")
    granted_by: Mapped[str] = mapped_column(String(64))
    granted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (Index("ix_hall_role_grants_account_role", "account", "role"),)


class RoleError(ValueError):
    """A grant that cannot be made; the message is for the person who asked."""


def grants_of(account: str) -> list[RoleGrant]:
    """Every role ``account`` holds."""
    return list(db.session.scalars(db.select(RoleGrant).where(RoleGrant.account == account)))


def is_hall_admin(user: HallUser | None) -> bool:
    """Whether ``user`` runs the hall."""
    if user is None:
        return False
    return any(g.role == HallRole.HALL_ADMIN.value for g in grants_of(user.account))


def managed_department_ids(user: HallUser | None) -> set[int] | None:
    """Departments whose services ``user`` may edit: None means all (hall admin)."""
    if user is None:
        return set()
    grants = grants_of(user.account)
    if any(g.role == HallRole.HALL_ADMIN.value for g in grants):
        return None
    return {
        g.department_id
        for g in grants
        if g.role == HallRole.SERVICE_MANAGER.value and g.department_id is not None
    }


def may_manage(user: HallUser | None) -> bool:
    """Whether ``user`` may open service management at all."""
    managed = managed_department_ids(user)
    return managed is None or bool(managed)


def may_manage_department(user: HallUser | None, department_id: int | None) -> bool:
    """Whether ``user`` may edit what belongs to ``department_id``."""
    managed = managed_department_ids(user)
    return managed is None or (department_id is not None and department_id in managed)


def grant_role(account: str, role: HallRole, department: Department | None, *, actor: str) -> bool:
    """Give ``account`` the role (in ``department`` for managers); False if already held.

    Audited; the caller commits.
    """
    account = account.strip()
    if not account or len(account) > 64:
        raise RoleError(_l("学工号不能为空，且不超过 64 个字符。"))
    if role is HallRole.SERVICE_MANAGER and department is None:
        raise RoleError(_l("服务管理员必须指定所属部门。"))
    department_id = department.id if role is HallRole.SERVICE_MANAGER and department else None
    for grant in grants_of(account):
        if grant.role == role.value and grant.department_id == department_id:
            return False
    db.session.add(
        RoleGrant(account=account, role=role.value, department_id=department_id, granted_by=actor)
    )
    record(
        "role.grant",
        actor,
        f"account:{account}",
        {
            "role": role.value,
            "department": department.code if department_id and department else None,
        },
    )
    return True


def revoke_grant(grant: RoleGrant, *, actor: str) -> None:
    """Take one grant away (audited; the caller commits)."""
    record(
        "role.revoke",
        actor,
        f"account:{grant.account}",
        {"role": grant.role, "department": grant.department.code if grant.department else None},
    )
    db.session.delete(grant)


def all_grants() -> list[RoleGrant]:
    """Every grant, by account."""
    return list(
        db.session.scalars(db.select(RoleGrant).order_by(RoleGrant.account, RoleGrant.role))
    )
