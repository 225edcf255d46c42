"""The catalogue's tables: categories, services with their guides, system entries, notices,
favourites and per-user use counts."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from hall.auth.models import utcnow
from hall.directory.models import Department
from hall.extensions import db


class Audience(enum.StrEnum):
    """Who a service is for (办理对象); the values are ``HallUser.kind``'s."""

    STUDENT = "student"
    STAFF = "staff"
    VISITOR = "visitor"


class ServiceStatus(enum.StrEnum):
    """A service is drafted by its department, then published (and may be withdrawn again)."""

    DRAFT = "draft"
    PUBLISHED = "published"


class Category(db.Model):  # type: ignore[name-defined]
    """A kind of service (服务类别): 教学事务, 人事服务, 后勤保障…"""

    __tablename__ = "service_categories"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    sort: Mapped[int] = mapped_column(Integer, default=100)


class Service(db.Model):  # type: ignore[name-defined]
    """One service (办事服务) and its guide (办事指南)."""

    __tablename__ = "services"

    id: Mapped[int] = mapped_column(primary_key=True)
    department_id: Mapped[int] = mapped_column(
        ForeignKey("departments.id", ondelete="RESTRICT"), index=True
    )
    department: Mapped[Department] = relationship(lazy="joined")
    category_id: Mapped[int | None] = mapped_column(
        ForeignKey("service_categories.id", ondelete="SET NULL"), index=True
    )
    category: Mapped[Category | None] = relationship(lazy="joined")
    title: Mapped[str] = mapped_column(String(120))
    summary: Mapped[str] = mapped_column(String(500), default="")
    #: Extra words people search with, separated by spaces or commas (出国 出境 护照).
    keywords: Mapped[str] = mapped_column(String(500), default="")
    for_student: Mapped[bool] = mapped_column(Boolean, default=False)
    for_staff: Mapped[bool] = mapped_column(Boolean, default=False)
    for_visitor: Mapped[bool] = mapped_column(Boolean, default=False)
    #: 网上办理 (an entry URL) or 线下办理 (offline instructions).
    online: Mapped[bool] = mapped_column(Boolean, default=True)
    entry_url: Mapped[str | None] = mapped_column(String(500))
    #: Shown among 推荐服务 before the most used ones.
    recommended: Mapped[bool] = mapped_column(Boolean, default=False)

    # 办事指南
    purpose: Mapped[str] = mapped_column(Text, default="")  #: 事项说明
    eligibility: Mapped[str] = mapped_column(Text, default="")  #: 办理对象与条件
    materials: Mapped[str] = mapped_column(Text, default="")  #: 所需材料
    steps: Mapped[str] = mapped_column(Text, default="")  #: 办理流程
    approval_flow: Mapped[str] = mapped_column(Text, default="")  #: 审批流程
    time_limit: Mapped[str] = mapped_column(String(200), default="")  #: 办理时限
    fee: Mapped[str] = mapped_column(String(200), default="")  #: 收费标准
    contact_phone: Mapped[str] = mapped_column(String(100), default="")  #: 咨询电话
    place: Mapped[str] = mapped_column(String(200), default="")  #: 办理地点
    offline_instructions: Mapped[str] = mapped_column(Text, default="")  #: 线下办理说明

    status: Mapped[str] = mapped_column(String(16), default=ServiceStatus.DRAFT.value, index=True)
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: Opens of the guide by anyone: 推荐服务 ranks by it.
    open_count: Mapped[int] = mapped_column(Integer, default=0)

    # Search columns, rewritten by every operation that saves a service (catalog.search).
    #: Lowercased title, keywords, summary, department, category and guide text.
    search_text: Mapped[str] = mapped_column(Text, default="")
    #: Full pinyin of title and keywords, words joined (chuguochujing).
    search_pinyin: Mapped[str] = mapped_column(Text, default="")
    #: Pinyin initials of title and keywords (cgcj).
    search_initials: Mapped[str] = mapped_column(String(500), default="")

    __table_args__ = (Index("ix_services_status_open_count", "status", "open_count"),)

    @property
    def audiences(self) -> list[Audience]:
        """The audiences this service is for."""
        flags = (
            (Audience.STUDENT, self.for_student),
            (Audience.STAFF, self.for_staff),
            (Audience.VISITOR, self.for_visitor),
        )
        return [audience for audience, on in flags if on]

    @property
    def is_published(self) -> bool:
        """Whether the public may see it."""
        return self.status == ServiceStatus.PUBLISHED.value


class EntrySection(enum.StrEnum):
    """Where an entry is listed: 常用系统 (campus systems) or 便民服务 (everyday websites)."""

    SYSTEM = "system"
    CONVENIENCE = "convenience"


class SystemEntry(db.Model):  # type: ignore[name-defined]
    """A link to a campus system (常用系统入口) or an everyday website (便民服务)."""

    __tablename__ = "system_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    department_id: Mapped[int | None] = mapped_column(
        ForeignKey("departments.id", ondelete="SET NULL"), index=True
    )
    department: Mapped[Department | None] = relationship(lazy="joined")
    section: Mapped[str] = mapped_column(String(16), default=EntrySection.SYSTEM.value)
    name: Mapped[str] = mapped_column(String(100))
    url: Mapped[str] = mapped_column(String(500))
    #: A short label shown as the tile's icon (one or two characters, e.g. 教).
    icon: Mapped[str] = mapped_column(String(16), default="")
    description: Mapped[str] = mapped_column(String(300), default="")
    #: Comma-separated kinds that may use it (student,staff); empty: everyone, even visitors.
    allowed_kinds: Mapped[str] = mapped_column(String(100), default="")
    published: Mapped[bool] = mapped_column(Boolean, default=True)
    sort: Mapped[int] = mapped_column(Integer, default=100)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    @property
    def kinds(self) -> set[str]:
        """The kinds allowed (empty: everyone)."""
        return {k.strip() for k in self.allowed_kinds.split(",") if k.strip()}


class Notice(db.Model):  # type: ignore[name-defined]
    """A notice (通知公告) from a department; visible from ``publish_at`` until withdrawn."""

    __tablename__ = "notices"

    id: Mapped[int] = mapped_column(primary_key=True)
    department_id: Mapped[int] = mapped_column(
        ForeignKey("departments.id", ondelete="RESTRICT"), index=True
    )
    department: Mapped[Department] = relationship(lazy="joined")
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")
    #: None: a draft; in the future: scheduled.
    publish_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Favourite(db.Model):  # type: ignore[name-defined]
    """A service or system a user collected (收藏); exactly one of the two is set."""

    __tablename__ = "favourites"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("hall_users.id", ondelete="CASCADE"))
    service_id: Mapped[int | None] = mapped_column(
        ForeignKey("services.id", ondelete="CASCADE"), index=True
    )
    system_id: Mapped[int | None] = mapped_column(
        ForeignKey("system_entries.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (
        UniqueConstraint("user_id", "service_id", name="uq_favourites_user_service"),
        UniqueConstraint("user_id", "system_id", name="uq_favourites_user_system"),
    )


class UsageCount(db.Model):  # type: ignore[name-defined]
    """How often one user opened one service guide or system (我常用的)."""

    __tablename__ = "usage_counts"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("hall_users.id", ondelete="CASCADE"))
    service_id: Mapped[int | None] = mapped_column(
        ForeignKey("services.id", ondelete="CASCADE"), index=True
    )
    system_id: Mapped[int | None] = mapped_column(
        ForeignKey("system_entries.id", ondelete="CASCADE"), index=True
    )
    count: Mapped[int] = mapped_column(Integer, default=0)
    last_used_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (
        UniqueConstraint("user_id", "service_id", name="uq_usage_counts_user_service"),
        UniqueConstraint("user_id", "system_id", name="uq_usage_counts_user_system"),
    )
