"""Drafts (草稿箱) of online forms and uploaded attachments (附件)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from hall.auth.models import utcnow
from hall.catalog.models import Service
from hall.extensions import db
from hall.workflow.models import FormDefinition


class Draft(db.Model):  # type: ignore[name-defined]
    """A form saved half-filled (存到我的草稿箱), pinned to the form version it was begun on."""

    __tablename__ = "form_drafts"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The owner's 学工号.
    owner: Mapped[str] = mapped_column(String(64))
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"))
    service: Mapped[Service] = relationship(lazy="joined")
    #: The form version the draft was begun on; resuming reopens that version.
    form_definition_id: Mapped[int] = mapped_column(
        ForeignKey("form_definitions.id", ondelete="CASCADE"), index=True
    )
    form_definition: Mapped[FormDefinition] = relationship(lazy="joined")
    #: The typed values so far (profile fields left out: they are filled at submission).
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: Approvers the applicant named so far (自选审批人): node id → 学工号 list.
    chosen: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (
        # 草稿箱: one person's drafts, most recently saved first.
        Index("ix_form_drafts_owner_updated", "owner", "updated_at"),
    )


class Attachment(db.Model):  # type: ignore[name-defined]
    """An uploaded file: the bytes sit in the storage folder under ``storage_name``."""

    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The uploader's 学工号; before submission only they may read the file.
    owner: Mapped[str] = mapped_column(String(64), index=True)
    #: Random file name in the storage folder (never derived from the original name).
    storage_name: Mapped[str] = mapped_column(String(64), unique=True)
    #: The name on the uploader's computer, given back on download.
    original_name: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(Integer)
    #: Decided by the hall from the file's content, not taken from the browser.
    content_type: Mapped[str] = mapped_column(String(100))
    sha256: Mapped[str] = mapped_column(String(64))
    #: Set at submission: from then on the application's readers may download it.
    application_id: Mapped[int | None] = mapped_column(
        ForeignKey("applications.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
