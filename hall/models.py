"""Imports every hall model so Alembic and the app see one complete metadata."""

from hall.auth.models import HallSession, HallUser
from hall.extensions import db
from shared.store import define_store_table

__all__ = ["HallSession", "HallUser", "store_table"]

#: Ephemeral entries (codes, tickets, sessions) when no Redis is configured.
store_table = define_store_table(db.metadata)
