"""Approvers from the hall's copy of the directory: role grants, positions, department heads."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, select

from hall.auth.models import HallUser
from hall.catalog.roles import RoleGrant
from hall.directory.models import Department, Position, position_holders
from hall.extensions import db

#: A role naming a position in the applicant's department (``position:secretary``).
POSITION_ROLE = "position:"


def _left(account: ColumnElement[str]) -> ColumnElement[bool]:
    """Whether the person holding ``account`` is marked inactive (left the university, or the
    account was disabled): they never sign in again, so a task of theirs would wait forever.
    A grant to someone the hall has not yet seen stays usable."""
    return (
        select(HallUser.id).where(HallUser.account == account, HallUser.active.is_(False)).exists()
    )


class DirectoryResolver:
    """Approvers from the hall's directory copy: role grants, positions, department heads."""

    def _user(self, account: str) -> HallUser | None:
        return db.session.scalars(select(HallUser).where(HallUser.account == account)).first()

    def _department(self, account: str) -> Department | None:
        user = self._user(account)
        if user is None or not user.department_code:
            return None
        return db.session.scalars(
            select(Department).where(Department.code == user.department_code)
        ).first()

    def _holders(self, department_id: int, kind: str) -> list[str]:
        rows = db.session.scalars(
            select(HallUser.account)
            .join(position_holders, position_holders.c.user_id == HallUser.id)
            .join(Position, Position.id == position_holders.c.position_id)
            .where(Position.department_id == department_id, Position.kind == kind)
            .where(HallUser.active.is_(True))
            .order_by(HallUser.account)
        )
        return list(dict.fromkeys(rows))

    def users_with_role(self, role: str, applicant: str) -> list[str]:
        """Active holders of a hall role grant, or of a position in the applicant's department."""
        if role.startswith(POSITION_ROLE):
            department = self._department(applicant)
            if department is None:
                return []
            return self._holders(department.id, role[len(POSITION_ROLE) :])
        rows = db.session.scalars(
            select(RoleGrant.account)
            .where(RoleGrant.role == role, ~_left(RoleGrant.account))
            .order_by(RoleGrant.account)
        )
        return list(dict.fromkeys(rows))

    def present(self, users: Sequence[str]) -> list[str]:
        """``users`` but those marked inactive: a person named in a flow (an approver, the
        fallback) or in a form who has since left would get a task nobody ever clears."""
        if not users:
            return []
        gone = set(
            db.session.scalars(
                select(HallUser.account).where(
                    HallUser.account.in_(set(users)), HallUser.active.is_(False)
                )
            )
        )
        return [user for user in users if user not in gone]

    def department_head(self, applicant: str) -> list[str]:
        """The head(s) of the applicant's department."""
        department = self._department(applicant)
        return [] if department is None else self._holders(department.id, "head")

    def supervisor(self, applicant: str, level: int) -> list[str]:
        """Level 1: the department head (the parent's head for a head); each level one up."""
        department = self._department(applicant)
        if department is not None and applicant in self._holders(department.id, "head"):
            department = db.session.get(Department, department.parent_id or 0)
        for _step in range(level - 1):
            if department is None:
                return []
            department = db.session.get(Department, department.parent_id or 0)
        return [] if department is None else self._holders(department.id, "head")
