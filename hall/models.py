"""Imports every hall model so Alembic and the app see one complete metadata."""

from hall.audit.models import HallAuditEvent
from hall.auth.models import HallSession, HallUser
from hall.catalog.models import Category, Favourite, Notice, Service, SystemEntry, UsageCount
from hall.catalog.roles import RoleGrant
from hall.directory.models import Department, DirectorySyncState, Position, position_holders
from hall.extensions import db
from hall.forms.models import Attachment, Draft
from hall.workflow.models import (
    Application,
    ApplicationEvent,
    CarbonCopy,
    Delegation,
    FlowDefinition,
    FormDefinition,
    Task,
)
from shared.store import define_store_table

__all__ = [
    "Application",
    "ApplicationEvent",
    "Attachment",
    "CarbonCopy",
    "Category",
    "Delegation",
    "Department",
    "DirectorySyncState",
    "Draft",
    "Favourite",
    "FlowDefinition",
    "FormDefinition",
    "HallAuditEvent",
    "HallSession",
    "HallUser",
    "Notice",
    "Position",
    "RoleGrant",
    "Service",
    "SystemEntry",
    "Task",
    "UsageCount",
    "position_holders",
    "store_table",
]

#: Ephemeral entries (codes, tickets, sessions) when no Redis is configured.
store_table = define_store_table(db.metadata)
