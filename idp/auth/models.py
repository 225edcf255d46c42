"""Server-side SSO sessions: the browser holds only an opaque id."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, DateTime, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from idp.directory.models import User, utcnow
from idp.extensions import db


def _own_id(context: Any) -> str:
    # A session that continues no earlier one begins its own lineage. (``context`` is the
    # insert's DefaultExecutionContext, whose method mypy sees as untyped.)
    return str(context.get_current_parameters()["id"])


class SsoSession(db.Model):  # type: ignore[name-defined]
    """One signed-in browser. Kept in SQL (not the ephemeral store) so that a user's sessions
    can be listed and ended together — by the user, the help desk, or a password reset."""

    __tablename__ = "sso_sessions"

    #: SHA-256 of the cookie value: a database leak does not hand out live sessions.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: Carried over when the same user signs in again in this browser (CAS ``renew``, OIDC
    #: ``prompt=login``): the new session gets a new id but keeps this. CAS tickets name it, so
    #: they outlive re-authentication and still end at sign-out. Never sent to a browser.
    lineage: Mapped[str] = mapped_column(String(64), index=True, default=_own_id)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    user: Mapped[User] = relationship()
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: When the user last proved who they are (OIDC ``auth_time``).
    auth_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: Absolute end, whatever the activity.
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    #: ``password``, ``sms``…, comma-separated in the order used.
    methods: Mapped[str] = mapped_column(String(64))
    remember: Mapped[bool] = mapped_column(Boolean, default=False)
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(512))
