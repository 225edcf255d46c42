"""The directory: people (accounts) and the department tree they belong to."""

from __future__ import annotations

import enum
from datetime import UTC, datetime

from sqlalchemy import Boolean, DateTime, Enum, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from idp.extensions import db


def utcnow() -> datetime:
    """Timezone-aware now, the only clock models use."""
    return datetime.now(UTC)


def aware(moment: datetime) -> datetime:
    """``moment`` with its time zone: SQLite hands back naive datetimes even for
    timezone-aware columns; they were stored as UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class UserKind(enum.StrEnum):
    """Who the account belongs to."""

    STUDENT = "student"
    STAFF = "staff"
    VISITOR = "visitor"


class UserStatus(enum.StrEnum):
    """Where the account is in its life."""

    #: Imported from HR / student systems, not yet activated by its owner (激活账号).
    PENDING = "pending"
    ACTIVE = "active"
    #: Locked by the help desk (not the temporary brute-force lock, which lives in the store).
    LOCKED = "locked"
    DISABLED = "disabled"


def _enum(cls: type[enum.StrEnum]) -> Enum:
    # Stored as plain strings with a CHECK, so adding a member needs no PostgreSQL type change.
    return Enum(cls, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e])


class Department(db.Model):  # type: ignore[name-defined]
    """A department or unit; departments form a tree."""

    __tablename__ = "departments"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: Code used by the HR and student systems (and in CSV imports).
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"), index=True)
    parent: Mapped[Department | None] = relationship(remote_side=[id], back_populates="children")
    children: Mapped[list[Department]] = relationship(back_populates="parent")
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class User(db.Model):  # type: ignore[name-defined]
    """One person's account (学工号)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: Student or staff number (学工号); what people type to sign in.
    account: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[UserKind] = mapped_column(_enum(UserKind), default=UserKind.STUDENT)
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"), index=True)
    department: Mapped[Department | None] = relationship()
    #: Keyed hash of the normalised national ID number, for matching (never the number itself).
    id_number_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    #: The ID number encrypted with the data key, for masked display by the help desk.
    id_number_encrypted: Mapped[str | None] = mapped_column(Text)
    #: Security phone (安全手机); counts for sign-in and recovery only once verified.
    phone: Mapped[str | None] = mapped_column(String(32), index=True)
    phone_verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: Security email (安全邮箱); counts only once verified.
    email: Mapped[str | None] = mapped_column(String(254), index=True)
    email_verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[UserStatus] = mapped_column(_enum(UserStatus), default=UserStatus.PENDING)
    #: argon2id hash, or an imported legacy ``{SCHEME}…`` / bcrypt / PBKDF2 string until first use.
    password_hash: Mapped[str | None] = mapped_column(Text)
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    password_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    __table_args__ = (Index("ix_users_updated_at", "updated_at"),)

    @property
    def has_security_phone(self) -> bool:
        """True when a phone is bound and was verified by an SMS code."""
        return bool(self.phone and self.phone_verified_at)

    @property
    def has_security_email(self) -> bool:
        """True when an email is bound and was verified by a mailed code."""
        return bool(self.email and self.email_verified_at)

    def __repr__(self) -> str:
        return f"<User {self.account}>"
