"""Forms, flows, applications and their tasks as stored rows.

Form and flow definitions are versioned per service; an application points at the form version
it was started with and carries a copy of its flow, so editing a flow never breaks running
applications. The engine's state is kept as JSON on the application; tasks and events are
also rows of their own, indexed for the to-do centre's lists (我待办的, 我已办的, 抄送给我).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Date,
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
from hall.extensions import db

#: The ``Task.status`` of a task still waiting in someone's 我待办的.
OPEN = "open"


class FormDefinition(db.Model):  # type: ignore[name-defined]
    """One version of a service's form: JSON Schema 2020-12 plus the UI schema."""

    __tablename__ = "form_definitions"

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"))
    #: 1, 2, 3… per service; the highest is used for new applications.
    version: Mapped[int] = mapped_column(Integer)
    schema: Mapped[dict[str, Any]] = mapped_column(JSON)
    ui: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (
        UniqueConstraint("service_id", "version", name="uq_form_definitions_version"),
    )


class FlowDefinition(db.Model):  # type: ignore[name-defined]
    """One version of a service's approval flow (see ``hall.workflow.definitions``)."""

    __tablename__ = "flow_definitions"

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (
        UniqueConstraint("service_id", "version", name="uq_flow_definitions_version"),
    )


class Application(db.Model):  # type: ignore[name-defined]
    """One submitted application (申请) and where it stands."""

    __tablename__ = "applications"

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="RESTRICT"))
    #: The form version the application was started with (kept for its whole life).
    form_definition_id: Mapped[int] = mapped_column(
        ForeignKey("form_definitions.id", ondelete="RESTRICT"), index=True
    )
    form_definition: Mapped[FormDefinition] = relationship(lazy="joined")
    #: A copy of the flow as it was at submission; later edits of the flow do not touch it.
    flow_snapshot: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: The applicant's 学工号.
    applicant: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200))
    #: ``running``, ``approved``, ``returned``, ``terminated`` or ``withdrawn``.
    status: Mapped[str] = mapped_column(String(16))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: The engine's state (``engine.state_to_json``): active nodes, joins, history.
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    submitted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: Bumped by every write: a second writer that read the same version fails (SQLite has no
    #: SELECT … FOR UPDATE; PostgreSQL's row lock makes this never trigger there).
    lock_version: Mapped[int] = mapped_column(Integer)

    __mapper_args__: ClassVar[dict[str, Any]] = {"version_id_col": lock_version}

    __table_args__ = (
        # 我发起的: one applicant's applications by status, newest first.
        Index("ix_applications_applicant_status", "applicant", "status", "submitted_at"),
        Index("ix_applications_service_status", "service_id", "status"),
        # 我发起的 without a status filter: newest first.
        Index("ix_applications_applicant_submitted", "applicant", "submitted_at"),
    )


class Task(db.Model):  # type: ignore[name-defined]
    """A task (待办) of one person at one node; closed tasks stay as 我已办的."""

    __tablename__ = "workflow_tasks"

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id", ondelete="CASCADE"))
    application: Mapped[Application] = relationship(lazy="joined")
    #: Copies of the application's service and status, kept in step by
    #: ``hall.workflow.operations``: the to-do centre counts one person's tasks per service
    #: (全部 / 进行中 / 已办结) from an index alone, without visiting tens of thousands of
    #: application rows for a busy approver.
    service_id: Mapped[int] = mapped_column(Integer)
    application_status: Mapped[str] = mapped_column(String(16))
    #: The engine's task id, unique within the application.
    engine_id: Mapped[int] = mapped_column(Integer)
    node_id: Mapped[str] = mapped_column(String(64))
    node_name: Mapped[str] = mapped_column(String(200), default="")
    assignee: Mapped[str] = mapped_column(String(64))
    #: The approver the assignee stands in for (委托), if any.
    on_behalf_of: Mapped[str | None] = mapped_column(String(64))
    #: ``open`` or how it was closed (``engine.TaskStatus``).
    status: Mapped[str] = mapped_column(String(16), default=OPEN)
    opinion: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    acted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: When the applicant last urged (催办) this open task: 我待办的 marks it.
    urged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("application_id", "engine_id", name="uq_workflow_tasks_engine_id"),
        # 我待办的 / 我已办的: one person's tasks by status, newest first.
        Index("ix_workflow_tasks_assignee_status", "assignee", "status", "created_at"),
        Index("ix_workflow_tasks_application_status", "application_id", "status"),
        # The to-do centre's per-service counts: an index-only scan of one person's tasks,
        # already in (service, application) order.
        Index(
            "ix_workflow_tasks_assignee_service",
            "assignee",
            "service_id",
            "application_id",
            "application_status",
            "status",
            "created_at",
        ),
        # 我已办的: latest action first.
        Index("ix_workflow_tasks_assignee_acted", "assignee", "acted_at"),
    )


class ApplicationEvent(db.Model):  # type: ignore[name-defined]
    """One line of an application's history (流程记录)."""

    __tablename__ = "application_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str | None] = mapped_column(String(64))
    on_behalf_of: Mapped[str | None] = mapped_column(String(64))
    node_id: Mapped[str | None] = mapped_column(String(64))
    opinion: Mapped[str | None] = mapped_column(Text)
    target: Mapped[str | None] = mapped_column(String(500))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (UniqueConstraint("application_id", "seq", name="uq_application_events_seq"),)


class CarbonCopy(db.Model):  # type: ignore[name-defined]
    """An application copied to someone (抄送给我)."""

    __tablename__ = "carbon_copies"

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(
        ForeignKey("applications.id", ondelete="CASCADE"), index=True
    )
    recipient: Mapped[str] = mapped_column(String(64))
    node_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_carbon_copies_recipient_created", "recipient", "created_at"),
        # The unread count of 抄送给我.
        Index("ix_carbon_copies_recipient_read", "recipient", "read_at"),
    )


class Delegation(db.Model):  # type: ignore[name-defined]
    """While away (委托): tasks of ``delegator`` go to ``delegate`` between the dates."""

    __tablename__ = "workflow_delegations"

    id: Mapped[int] = mapped_column(primary_key=True)
    delegator: Mapped[str] = mapped_column(String(64), index=True)
    delegate: Mapped[str] = mapped_column(String(64))
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
