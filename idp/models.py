"""Imports every IdP model so Alembic and the app see one complete metadata."""

from idp.audit.models import AuditEvent
from idp.auth.models import SsoSession
from idp.clients.models import CasService, OidcClient, SessionParticipant
from idp.directory.models import Department, User
from idp.directory.roles import RoleGrant
from idp.extensions import db
from idp.oidc.models import Consent, OAuthToken, SigningKey
from shared.store import define_store_table

#: Ephemeral entries (codes, counters, tickets) when no Redis is configured.
store_table = define_store_table(db.metadata)

__all__ = [
    "AuditEvent",
    "CasService",
    "Consent",
    "Department",
    "OAuthToken",
    "OidcClient",
    "RoleGrant",
    "SessionParticipant",
    "SigningKey",
    "SsoSession",
    "User",
    "store_table",
]
