"""The department tree in the console: list, create, rename, move, delete.

Creating, renaming and moving go through :func:`idp.directory.operations.ensure_department`
(the import's rule, cycle guard included); this module adds the console's checks, worded for
people, and the audit trail. A department that still has people or sub-departments stays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func

from idp.audit.operations import record
from idp.directory.models import Department, User
from idp.directory.operations import DirectoryError, ensure_department, find_department
from idp.extensions import db
from shared.i18n import translate as _

MAX_CODE = 64
MAX_NAME = 200


class DepartmentError(ValueError):
    """A change to the tree was refused; the message says why."""


@dataclass
class DepartmentNode:
    """A department in the tree with its direct members and sub-departments."""

    department: Department
    depth: int
    members: int
    children: list[DepartmentNode] = field(default_factory=list)

    @property
    def total_members(self) -> int:
        """People in this department and every department below it."""
        return self.members + sum(child.total_members for child in self.children)


def department_tree() -> list[DepartmentNode]:
    """Every department as a forest of top-level nodes, each level ordered by code."""
    departments = list(db.session.scalars(db.select(Department).order_by(Department.code)))
    counts = dict(
        db.session.execute(
            db.select(User.department_id, func.count(User.id))
            .where(User.department_id.is_not(None))
            .group_by(User.department_id)
        ).all()
    )
    nodes = {d.id: DepartmentNode(d, 0, int(counts.get(d.id, 0))) for d in departments}
    roots: list[DepartmentNode] = []
    for department in departments:
        node = nodes[department.id]
        parent = nodes.get(department.parent_id) if department.parent_id else None
        (parent.children if parent else roots).append(node)

    def set_depth(node: DepartmentNode, depth: int) -> None:
        node.depth = depth
        for child in node.children:
            set_depth(child, depth + 1)

    for root in roots:
        set_depth(root, 0)
    return roots


def flatten(nodes: list[DepartmentNode]) -> list[DepartmentNode]:
    """The tree in display order: each department followed by its sub-departments."""
    shown: list[DepartmentNode] = []
    for node in nodes:
        shown.append(node)
        shown.extend(flatten(node.children))
    return shown


def _parent(parent_code: str | None) -> Department | None:
    code = (parent_code or "").strip()
    if not code:
        return None
    parent = find_department(code)
    if parent is None:
        raise DepartmentError(_("上级部门不存在：%(code)s", code=code))
    return parent


def _check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        raise DepartmentError(_("部门名称须为 1–%(max)d 个字符", max=MAX_NAME))
    return name


def _audit(action: str, actor: User, department: Department, **detail: Any) -> None:
    reason = detail.pop("reason", "")
    if reason:
        detail["reason"] = reason
    record(action, actor=actor, subject=department.code, detail=detail or None)


def create_department(
    code: str, name: str, parent_code: str | None, *, actor: User, reason: str = ""
) -> Department:
    """Add a department under ``parent_code`` (top level when empty). Audited; caller commits."""
    code = code.strip()
    if not code or len(code) > MAX_CODE or any(c.isspace() for c in code):
        raise DepartmentError(_("部门代码须为 1–%(max)d 个字符，不含空格", max=MAX_CODE))
    if find_department(code) is not None:
        raise DepartmentError(_("部门代码已存在：%(code)s", code=code))
    name = _check_name(name)
    parent = _parent(parent_code)
    try:
        department = ensure_department(code, name, parent.code if parent else None)
    except DirectoryError as exc:
        raise DepartmentError(str(exc)) from None
    _audit(
        "department.create",
        actor,
        department,
        name=name,
        parent=parent.code if parent else None,
        reason=reason,
    )
    return department


def rename_department(department: Department, name: str, *, actor: User, reason: str = "") -> bool:
    """Give the department a new name; False when the name is unchanged."""
    name = _check_name(name)
    if name == department.name:
        return False
    before = department.name
    ensure_department(department.code, name)
    _audit("department.rename", actor, department, before=before, after=name, reason=reason)
    return True


def move_department(
    department: Department, parent_code: str | None, *, actor: User, reason: str = ""
) -> bool:
    """Put the department under another (top level when empty); never under itself or below."""
    parent = _parent(parent_code)
    if (parent.id if parent else None) == department.parent_id:
        return False
    before = department.parent.code if department.parent else None
    try:
        ensure_department(department.code, department.name, parent.code if parent else "")
    except DirectoryError:
        # The only rule left for an existing department and parent is the cycle guard.
        raise DepartmentError(
            _("不能把部门移到它自己或它的下级部门之下：%(code)s", code=department.code)
        ) from None
    _audit(
        "department.move",
        actor,
        department,
        before=before,
        after=parent.code if parent else None,
        reason=reason,
    )
    return True


def delete_department(department: Department, *, actor: User, reason: str = "") -> None:
    """Remove an empty department: no people, no sub-departments. Audited; caller commits."""
    members = db.session.scalar(
        db.select(func.count(User.id)).where(User.department_id == department.id)
    )
    if members:
        raise DepartmentError(
            _(
                "部门 %(name)s 还有 %(count)d 人，请先把他们调到其他部门",
                name=department.name,
                count=members,
            )
        )
    children = db.session.scalar(
        db.select(func.count(Department.id)).where(Department.parent_id == department.id)
    )
    if children:
        raise DepartmentError(
            _("部门 %(name)s 还有下级部门，请先移走或删除它们", name=department.name)
        )
    _audit(
        "department.delete",
        actor,
        department,
        name=department.name,
        parent=department.parent.code if department.parent else None,
        reason=reason,
    )
    db.session.delete(department)
    db.session.flush()
