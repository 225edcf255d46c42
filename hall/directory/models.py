"""Departments as the hall knows them: its own copy of the IdP's, kept by directory sync."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, DateTime, ForeignKey, Integer, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from hall.auth.models import HallUser
from hall.extensions import db


class Department(db.Model):  # type: ignore[name-defined]
    """A department or unit (部门); the tree mirrors the IdP's directory."""

    __tablename__ = "departments"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The IdP's department code (``department`` claim, SCIM group externalId).
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("departments.id", ondelete="SET NULL"), index=True
    )
    #: Order in lists such as 直通部门 (smaller first).
    sort: Mapped[int] = mapped_column(Integer, default=100)


#: Who holds which position (both sides are the hall's copies).
position_holders = Table(
    "position_holders",
    db.metadata,
    Column(
        "position_id", Integer, ForeignKey("positions.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("user_id", Integer, ForeignKey("hall_users.id", ondelete="CASCADE"), primary_key=True),
)


class Position(db.Model):  # type: ignore[name-defined]
    """A post in a department (院长, 辅导员 of a class…), copied from the IdP's directory;
    approvals are routed to its holders."""

    __tablename__ = "positions"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The IdP's SCIM group id (``pos-<n>``): stable while the post exists.
    scim_id: Mapped[str] = mapped_column(String(64), unique=True)
    department_id: Mapped[int | None] = mapped_column(
        ForeignKey("departments.id", ondelete="CASCADE"), index=True
    )
    department: Mapped[Department | None] = relationship()
    #: ``head``, ``deputy_head``, ``secretary`` or ``counsellor``.
    kind: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(200))
    holders: Mapped[list[HallUser]] = relationship(secondary=position_holders)
    #: When directory sync last wrote it.
    synced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DirectorySyncState(db.Model):  # type: ignore[name-defined]
    """Where directory sync stands (one row): its watermarks for incremental runs."""

    __tablename__ = "directory_sync_state"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The latest ``meta.lastModified`` of a User seen; the next run asks for newer ones.
    users_modified: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: The same for Groups (departments and positions).
    groups_modified: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: The last complete run (which also marks people the IdP no longer lists inactive).
    last_full_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: The last run's counts or error, as JSON.
    last_result: Mapped[str | None] = mapped_column(Text)
