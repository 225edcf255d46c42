"""Removing rows nobody can use any more: dead SSO sessions and long-expired OAuth tokens.

Run from cron or a systemd timer (``flask --app idp purge``; see deploy/systemd). Without it
the tables only grow: every sign-in leaves a session row and every token response a token row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import and_, delete, or_
from sqlalchemy.orm import selectinload

from idp.auth.models import SsoSession
from idp.auth.sessions import end_sessions
from idp.directory.models import utcnow
from idp.extensions import db
from idp.oidc.models import OAuthToken

#: Expired tokens are kept this long, so a replayed refresh token still revokes its family
#: (RFC 9700) for a while after it could have been used, and so support can trace a report.
TOKEN_RETENTION = timedelta(days=7)
#: Sessions ended per transaction: a backlog (after the timer was off) goes in short ones.
SESSION_BATCH = 500


@dataclass(frozen=True)
class PurgeReport:
    """How many rows each purge removed."""

    sessions: int
    tokens: int


def end_expired_sessions(now: datetime) -> int:
    """End the sessions past their absolute or idle end as signing out does; returns how many.

    Their clients are told (OIDC back-channel logout, CAS single logout) and the tokens their
    sign-ins obtained are revoked. Each batch is committed on its own; a session another purge
    holds is skipped rather than ended twice, and an ended session is gone, so nothing is sent
    twice for it.
    """
    idle = timedelta(seconds=current_app.config["SESSION_IDLE_TIMEOUT"])
    batch_query = (
        db.select(SsoSession)
        .where(
            or_(
                SsoSession.expires_at <= now,
                and_(SsoSession.remember.is_(False), SsoSession.last_seen_at <= now - idle),
            )
        )
        .order_by(SsoSession.id)
        .limit(SESSION_BATCH)
        .options(selectinload(SsoSession.user))  # every receiver names the session's user
        .with_for_update(skip_locked=True, of=SsoSession)
    )
    ended = 0
    while batch := list(db.session.scalars(batch_query)):
        end_sessions(batch)
        db.session.commit()
        ended += len(batch)
    return ended


def purge_expired(now: datetime | None = None) -> PurgeReport:
    """End sessions past their absolute or idle end; delete tokens dead for TOKEN_RETENTION."""
    now = now or utcnow()
    sessions = end_expired_sessions(now)
    cutoff = now - TOKEN_RETENTION
    tokens = db.session.execute(
        delete(OAuthToken).where(
            OAuthToken.access_expires_at <= cutoff,
            or_(OAuthToken.refresh_expires_at.is_(None), OAuthToken.refresh_expires_at <= cutoff),
        )
    ).rowcount
    db.session.commit()
    return PurgeReport(sessions=sessions, tokens=tokens or 0)
