"""Two-step verification records: the TOTP secret, recovery codes and trusted browsers."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, String, exists
from sqlalchemy.orm import Mapped, column_property, mapped_column, undefer

from idp.directory.models import User, utcnow
from idp.extensions import db


class TotpCredential(db.Model):  # type: ignore[name-defined]
    """A user's authenticator-app secret; unconfirmed until a first code proves the app has it."""

    __tablename__ = "totp_credentials"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    #: Fernet token of the base32 secret under the IdP data key: a database leak alone does
    #: not let anyone generate codes.
    secret_encrypted: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: None while enrolment is under way; sign-in asks for codes only once this is set.
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: The last accepted 30-second time step: a code (or an earlier one) is never accepted twice.
    last_used_step: Mapped[int | None] = mapped_column(BigInteger)


#: Whether the account has a confirmed authenticator app, as a deferred column of ``users``.
#: Password sign-in loads it with the account (``undefer``), so every sign-in asks the database
#: once instead of twice; everywhere else it is not loaded, and :func:`totp_enabled` asks.
User.totp_confirmed = column_property(
    exists().where(TotpCredential.user_id == User.id, TotpCredential.confirmed_at.is_not(None)),
    deferred=True,
)
#: The loader option for account lookups that lead to a sign-in.
WITH_TOTP_FLAG = undefer(User.totp_confirmed)


class RecoveryCode(db.Model):  # type: ignore[name-defined]
    """One single-use recovery code (恢复码), for when the phone with the app is not at hand."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    #: SHA-256 of the normalised code; codes carry 50 random bits, so no slow hash is needed.
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class TrustedDevice(db.Model):  # type: ignore[name-defined]
    """A browser where the user chose “30 天内在此设备上免验证”."""

    __tablename__ = "trusted_devices"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    #: SHA-256 of the cookie value; the cookie alone proves nothing without this row.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_agent: Mapped[str | None] = mapped_column(String(512))
    ip: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
