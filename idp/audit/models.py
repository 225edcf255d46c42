"""The audit log: one append-only row per security-relevant event."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from idp.directory.models import utcnow
from idp.extensions import db


class AuditEvent(db.Model):  # type: ignore[name-defined]
    """Who did what to whom, from where, and how it ended. Never updated or deleted by the app."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    #: ``login``, ``code.send``, ``password.change``… (see README's audit table).
    action: Mapped[str] = mapped_column(String(64))
    #: ``success``, ``failure`` or ``denied``.
    outcome: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    target_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    #: What the event concerned when it is not a user, e.g. a masked phone or a client id.
    subject: Mapped[str | None] = mapped_column(String(255))
    #: Sign-in method or channel: ``password``, ``sms``, ``email``…
    method: Mapped[str | None] = mapped_column(String(32))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    request_id: Mapped[str | None] = mapped_column(String(64))
    #: Reason or other detail, as JSON; never a password, code or token.
    detail: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_audit_events_target_at", "target_id", "at"),
        Index("ix_audit_events_actor_at", "actor_id", "at"),
        Index("ix_audit_events_action_at", "action", "at"),
    )
