"""Console roles (``helpdesk``, ``admin``): who may open /admin and what they may do there."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from idp.audit.operations import record
from idp.directory.models import User, utcnow
from idp.extensions import db


class Role(enum.StrEnum):
    """What a console user is: help desk fixes accounts; admin also runs the registry."""

    HELPDESK = "helpdesk"
    ADMIN = "admin"


class RoleGrant(db.Model):  # type: ignore[name-defined]
    """One role held by one user, with who granted it and when."""

    __tablename__ = "role_grants"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(32))
    granted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: None when granted from the command line.
    granted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    __table_args__ = (UniqueConstraint("user_id", "role", name="uq_role_grants_user_role"),)


def user_roles(user: User) -> set[Role]:
    """The roles ``user`` holds."""
    rows = db.session.scalars(db.select(RoleGrant.role).where(RoleGrant.user_id == user.id))
    return {Role(value) for value in rows if value in Role._value2member_map_}


def has_role(user: User, role: Role) -> bool:
    """Whether ``user`` holds ``role`` (admin implies every help-desk power)."""
    roles = user_roles(user)
    return role in roles or (role is Role.HELPDESK and Role.ADMIN in roles)


def grant_role(user: User, role: Role, *, actor: User | None = None, reason: str = "") -> bool:
    """Give ``user`` the role; False when they already hold it. Audited; caller commits."""
    if role in user_roles(user):
        return False
    db.session.add(
        RoleGrant(user_id=user.id, role=role.value, granted_by_id=actor.id if actor else None)
    )
    record(
        "role.grant",
        actor=actor,
        target=user,
        subject=role.value,
        detail={"reason": reason} if reason else None,
    )
    return True


def revoke_role(user: User, role: Role, *, actor: User | None = None, reason: str = "") -> bool:
    """Take the role away; False when they did not hold it. Audited; caller commits."""
    grant = db.session.scalar(
        db.select(RoleGrant).where(RoleGrant.user_id == user.id, RoleGrant.role == role.value)
    )
    if grant is None:
        return False
    db.session.delete(grant)
    record(
        "role.revoke",
        actor=actor,
        target=user,
        subject=role.value,
        detail={"reason": reason} if reason else None,
    )
    return True
