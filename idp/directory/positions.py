"""Positions (职务): a department's head, deputy heads, party secretary, a class's counsellor.

A position is one kind of post in one department (classes are departments too, under their
school), held by any number of people. HR exports name them per person in the import's
``positions`` column (``CS:head;CS-2021-1:counsellor``); the directory API serves each
position as a SCIM group whose members are its holders.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from datetime import datetime

from sqlalchemy import (
    Column,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Table,
    UniqueConstraint,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from idp.directory.models import Department, User, utcnow
from idp.extensions import db
from shared.i18n import translate as _


class PositionKind(enum.StrEnum):
    """The posts the directory knows."""

    HEAD = "head"
    DEPUTY_HEAD = "deputy_head"
    SECRETARY = "secretary"
    COUNSELLOR = "counsellor"


#: How a title is made when the import names none: ``计算机与通信学院 负责人``.
KIND_LABELS = {
    PositionKind.HEAD: "负责人",
    PositionKind.DEPUTY_HEAD: "副职负责人",
    PositionKind.SECRETARY: "书记",
    PositionKind.COUNSELLOR: "辅导员",
}

#: Spellings HR exports use besides our own values.
KIND_ALIASES = {
    "负责人": PositionKind.HEAD,
    "院长": PositionKind.HEAD,
    "处长": PositionKind.HEAD,
    "主任": PositionKind.HEAD,
    "副院长": PositionKind.DEPUTY_HEAD,
    "副处长": PositionKind.DEPUTY_HEAD,
    "副主任": PositionKind.DEPUTY_HEAD,
    "书记": PositionKind.SECRETARY,
    "辅导员": PositionKind.COUNSELLOR,
    "班主任": PositionKind.COUNSELLOR,
}

position_holders = Table(
    "position_holders",
    db.metadata,
    Column(
        "position_id", Integer, ForeignKey("positions.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
)


class Position(db.Model):  # type: ignore[name-defined]
    """One post in one department and the people who hold it."""

    __tablename__ = "positions"

    id: Mapped[int] = mapped_column(primary_key=True)
    department_id: Mapped[int] = mapped_column(
        ForeignKey("departments.id", ondelete="CASCADE"), index=True
    )
    department: Mapped[Department] = relationship()
    #: A :class:`PositionKind` value.
    kind: Mapped[str] = mapped_column(String(32))
    #: What people call it, e.g. ``计算机与通信学院 院长``.
    title: Mapped[str] = mapped_column(String(200))
    holders: Mapped[list[User]] = relationship(secondary=position_holders, order_by=User.id)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: Also moved when holders come or go, so incremental readers see the change.
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow, index=True
    )

    __table_args__ = (UniqueConstraint("department_id", "kind", name="uq_positions_dept_kind"),)


#: One holding as an import names it: (department code, kind, title or None).
Holding = tuple[str, PositionKind, str | None]


def parse_kind(raw: str) -> PositionKind | None:
    """The kind ``raw`` names (our value or an HR spelling), or None."""
    value = raw.strip()
    if value in KIND_ALIASES:
        return KIND_ALIASES[value]
    try:
        return PositionKind(value.lower())
    except ValueError:
        return None


def parse_holdings(cell: str) -> list[Holding]:
    """``CS:head;CS-2021-1:counsellor:2021级1班辅导员`` → holdings; ValueError says what is wrong.

    Entries are separated by ``;`` (or the full-width ``；``); each is ``CODE:KIND`` with an
    optional ``:TITLE``. An empty cell means no positions.
    """
    holdings: list[Holding] = []
    for entry in cell.replace("；", ";").replace("：", ":").split(";"):
        entry = entry.strip()
        if not entry:
            continue
        parts = [part.strip() for part in entry.split(":", 2)]
        if len(parts) < 2 or not parts[0] or not parts[1]:
            raise ValueError(
                _("职务 %(entry)r 格式不正确：应为 部门代码:职务类别，如 CS:head", entry=entry)
            )
        kind = parse_kind(parts[1])
        if kind is None:
            raise ValueError(
                _(
                    "未知职务类别 %(kind)r：应为 head、deputy_head、secretary 或 counsellor",
                    kind=parts[1],
                )
            )
        title = parts[2] if len(parts) == 3 and parts[2] else None
        if title is not None and len(title) > 200:
            raise ValueError(_("职务名称不能超过 %(max)d 个字符", max=200))
        if len(parts[0]) > 64:
            raise ValueError(_("部门代码不能超过 %(max)d 个字符", max=64))
        holdings.append((parts[0], kind, title))
    return holdings


def default_title(department: Department | str, kind: PositionKind) -> str:
    """The title of a post nobody named: the department's name and the kind's label."""
    name = department if isinstance(department, str) else department.name
    return f"{name} {KIND_LABELS[kind]}"[:200]


def ensure_position(
    department: Department, kind: PositionKind, title: str | None = None
) -> Position:
    """The post ``kind`` of ``department``, created if missing; ``title`` renames it (flushes)."""
    position = db.session.scalar(
        select(Position).where(Position.department_id == department.id, Position.kind == kind)
    )
    if position is None:
        position = Position(
            department=department, kind=kind.value, title=title or default_title(department, kind)
        )
        db.session.add(position)
    elif title and title != position.title:
        position.title = title
    db.session.flush()
    return position


def set_holdings(
    wanted: Mapping[int, Iterable[tuple[int, PositionKind, str | None]]],
    department_names: Mapping[int, str],
) -> set[int]:
    """Make each user in ``wanted`` (user id → (department id, kind, title)) hold exactly those
    posts; returns the ids of users whose posts changed. Bulk statements, caller commits.

    Posts are created on first mention; a post whose holders change, and each user whose
    posts change, gets a new ``updated_at`` so incremental directory readers see it.
    """
    if not wanted:
        return set()
    now = utcnow()
    keys = {(dept, kind.value) for items in wanted.values() for dept, kind, _ in items}
    positions: dict[tuple[int, str], int] = {}
    titles: dict[tuple[int, str], str] = {}
    if keys:
        departments = {dept for dept, _ in keys}
        for row in db.session.execute(
            select(Position.id, Position.department_id, Position.kind, Position.title).where(
                Position.department_id.in_(departments)
            )
        ):
            positions[(row.department_id, row.kind)] = row.id
            titles[(row.department_id, row.kind)] = row.title
    touched_positions: set[int] = set()
    for items in wanted.values():
        for dept, kind, title in items:
            key = (dept, kind.value)
            if key not in positions:
                position_id = db.session.execute(
                    insert(Position).returning(Position.id),
                    {
                        "department_id": dept,
                        "kind": kind.value,
                        "title": title or default_title(department_names[dept], kind),
                        "created_at": now,
                        "updated_at": now,
                    },
                ).scalar_one()
                positions[key] = position_id
                titles[key] = title or ""
            elif title and title != titles[key]:
                db.session.execute(
                    update(Position)
                    .where(Position.id == positions[key])
                    .values(title=title, updated_at=now)
                )
                titles[key] = title
    user_ids = list(wanted)
    held: dict[int, set[int]] = {user_id: set() for user_id in user_ids}
    for position_id, user_id in db.session.execute(
        select(position_holders.c.position_id, position_holders.c.user_id).where(
            position_holders.c.user_id.in_(user_ids)
        )
    ):
        held[user_id].add(position_id)
    adds: list[dict[str, int]] = []
    removes: list[tuple[int, int]] = []
    changed_users: set[int] = set()
    for user_id, items in wanted.items():
        target = {positions[(dept, kind.value)] for dept, kind, _ in items}
        for position_id in target - held[user_id]:
            adds.append({"position_id": position_id, "user_id": user_id})
        for position_id in held[user_id] - target:
            removes.append((position_id, user_id))
        if target != held[user_id]:
            changed_users.add(user_id)
            touched_positions |= target ^ held[user_id]
    if adds:
        db.session.execute(insert(position_holders), adds)
    for position_id, user_id in removes:
        db.session.execute(
            delete(position_holders).where(
                position_holders.c.position_id == position_id,
                position_holders.c.user_id == user_id,
            )
        )
    if touched_positions:
        db.session.execute(
            update(Position).where(Position.id.in_(touched_positions)).values(updated_at=now)
        )
    if changed_users:
        db.session.execute(update(User).where(User.id.in_(changed_users)).values(updated_at=now))
    return changed_users


def appoint(
    user: User, department: Department, kind: PositionKind, title: str | None = None
) -> Position:
    """Add ``user`` to the post (created if missing); flushes, caller commits."""
    position = ensure_position(department, kind, title)
    if user not in position.holders:
        position.holders.append(user)
        now = utcnow()
        position.updated_at = now
        user.updated_at = now
    db.session.flush()
    return position
