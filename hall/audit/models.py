"""Audit events of the hall (append-only)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from hall.auth.models import utcnow
from hall.extensions import db


class HallAuditEvent(db.Model):  # type: ignore[name-defined]
    """One administrative action in the hall: actor, action, object, time, detail."""

    __tablename__ = "hall_audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    #: The 学工号 of who acted; ``cli`` for the command line.
    actor: Mapped[str] = mapped_column(String(64), index=True)
    #: Dotted verb such as ``service.publish`` or ``role.grant``.
    action: Mapped[str] = mapped_column(String(64), index=True)
    #: What was acted on, as ``type:id`` (``service:12``, ``notice:3``, ``account:T2001``).
    object: Mapped[str] = mapped_column(String(128), index=True)
    #: JSON: the fields changed (never secrets).
    detail: Mapped[str | None] = mapped_column(Text)
    ip: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(64))
