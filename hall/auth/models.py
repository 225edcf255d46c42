"""People the hall has seen sign in, and their server-side hall sessions."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Boolean, DateTime, ForeignKey, String, Text, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from hall.extensions import db


def utcnow() -> datetime:
    """Timezone-aware now, the only clock hall models use."""
    return datetime.now(UTC)


#: The campus clock: dates people type and read (委托 days, 定时发布 times) are Beijing time.
CAMPUS_TZ = ZoneInfo("Asia/Shanghai")


def campus_today() -> date:
    """Today's date on campus (not in UTC: from 00:00 to 08:00 the two differ)."""
    return utcnow().astimezone(CAMPUS_TZ).date()


def aware(moment: datetime) -> datetime:
    """``moment`` as UTC; SQLite returns naive datetimes even for timezone-aware columns."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class HallUser(db.Model):  # type: ignore[name-defined]
    """A person as the IdP last described them; refreshed from the claims at each sign-in."""

    __tablename__ = "hall_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The IdP's ``sub``: stable for life, unlike a 学工号, which may be handed out again.
    sub: Mapped[str] = mapped_column(String(255), unique=True)
    #: 学工号 (``account`` / ``preferred_username``).
    account: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(128))
    #: ``student``, ``staff`` or ``visitor`` (kept as the IdP's string, so a new kind is no crash).
    kind: Mapped[str | None] = mapped_column(String(32))
    department_code: Mapped[str | None] = mapped_column(String(64), index=True)
    department_name: Mapped[str | None] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(255))
    #: E.164, as the IdP's ``phone_number`` claim gives it.
    phone: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: When the claims were last copied from the IdP.
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_sign_in_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: False once the IdP's directory no longer lists the person or disabled the account.
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    #: When directory sync last saw the person (None: known only from sign-in).
    directory_synced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class HallSession(db.Model):  # type: ignore[name-defined]
    """One signed-in browser. The Flask session holds only the opaque token; this row holds
    its SHA-256, so back-channel logout can find sessions by the IdP's ``sid`` or ``sub``."""

    __tablename__ = "hall_sessions"

    #: SHA-256 of the token in the browser's session: a database leak hands out no sessions.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("hall_users.id", ondelete="CASCADE"), index=True
    )
    user: Mapped[HallUser] = relationship()
    #: The IdP's session id (``sid`` of the ID token), named again by back-channel logout.
    idp_sid: Mapped[str | None] = mapped_column(String(255), index=True)
    #: The ID token, sent back as ``id_token_hint`` when the user signs out here.
    id_token: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: Absolute end, whatever the activity.
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    ip: Mapped[str | None] = mapped_column(String(64))
