"""Removing rows nobody can use any more: dead SSO sessions and long-expired OAuth tokens.

Run from cron or a systemd timer (``flask --app idp purge``; see deploy/systemd). Without it
the tables only grow: every sign-in leaves a session row and every token response a token row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import and_, delete, or_

from idp.auth.models import SsoSession
from idp.directory.models import utcnow
from idp.extensions import db
from idp.oidc.models import OAuthToken

#: Expired tokens are kept this long, so a replayed refresh token still revokes its family
#: (RFC 9700) for a while after it could have been used, and so support can trace a report.
TOKEN_RETENTION = timedelta(days=7)


@dataclass(frozen=True)
class PurgeReport:
    """How many rows each purge removed."""

    sessions: int
    tokens: int


def purge_expired(now: datetime | None = None) -> PurgeReport:
    """Delete sessions past their absolute or idle end and tokens dead for TOKEN_RETENTION."""
    now = now or utcnow()
    idle = timedelta(seconds=current_app.config["SESSION_IDLE_TIMEOUT"])
    sessions = db.session.execute(
        delete(SsoSession).where(
            or_(
                SsoSession.expires_at <= now,
                and_(SsoSession.remember.is_(False), SsoSession.last_seen_at <= now - idle),
            )
        )
    ).rowcount
    cutoff = now - TOKEN_RETENTION
    tokens = db.session.execute(
        delete(OAuthToken).where(
            OAuthToken.access_expires_at <= cutoff,
            or_(OAuthToken.refresh_expires_at.is_(None), OAuthToken.refresh_expires_at <= cutoff),
        )
    ).rowcount
    db.session.commit()
    return PurgeReport(sessions=sessions or 0, tokens=tokens or 0)
