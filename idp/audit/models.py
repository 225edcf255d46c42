"""The audit log: one append-only row per security-relevant event."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Index, String, Text, event
from sqlalchemy.orm import Mapped, ORMExecuteState, Session, mapped_column

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


class AuditLogIsAppendOnly(RuntimeError):
    """Raised when application code tries to change or remove an audit event."""


@event.listens_for(Session, "before_flush")
def _refuse_changed_events(session: Session, flush_context: Any, instances: Any) -> None:
    # The log is evidence: the app may add events, never edit or delete one.
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, AuditEvent) and (obj in session.deleted or session.is_modified(obj)):
            raise AuditLogIsAppendOnly(f"audit event {obj.id} cannot be changed or deleted")


@event.listens_for(Session, "do_orm_execute")
def _refuse_bulk_changes(state: ORMExecuteState) -> None:
    # Bulk UPDATE / DELETE statements bypass the flush; refuse them at execution.
    if (state.is_update or state.is_delete) and any(
        mapper.class_ is AuditEvent for mapper in state.all_mappers
    ):
        raise AuditLogIsAppendOnly("audit events cannot be changed or deleted")
