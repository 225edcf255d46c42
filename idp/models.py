"""Imports every IdP model so Alembic and the app see one complete metadata."""

from idp.audit.models import AuditEvent
from idp.auth.models import SsoSession
from idp.clients.models import CasService, OidcClient, SessionParticipant
from idp.directory.models import Department, User
from idp.directory.positions import Position, position_holders
from idp.directory.roles import RoleGrant
from idp.extensions import db
from idp.mfa.models import RecoveryCode, TotpCredential, TrustedDevice
from idp.oidc.models import Consent, OAuthToken, SigningKey
from idp.policy_settings import PolicySetting
from idp.social.models import SocialIdentity
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
    "PolicySetting",
    "Position",
    "RecoveryCode",
    "RoleGrant",
    "SessionParticipant",
    "SigningKey",
    "SocialIdentity",
    "SsoSession",
    "TotpCredential",
    "TrustedDevice",
    "User",
    "position_holders",
    "store_table",
]
