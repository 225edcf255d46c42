"""WeChat and WeCom identities bound to accounts (one per provider per account)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from idp.directory.models import User, utcnow
from idp.extensions import db


class SocialIdentity(db.Model):  # type: ignore[name-defined]
    """A WeChat user or WeCom member who may sign in as ``user`` by scanning a QR code."""

    __tablename__ = "social_identities"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    user: Mapped[User] = relationship()
    #: ``wechat`` or ``wecom``.
    provider: Mapped[str] = mapped_column(String(16))
    #: Who the provider says scanned: WeChat's unionid when the app has one (stable across the
    #: university's apps), else its openid; the WeCom member's UserId.
    subject: Mapped[str] = mapped_column(String(128))
    openid: Mapped[str | None] = mapped_column(String(128))
    unionid: Mapped[str | None] = mapped_column(String(128))
    #: The WeChat nickname (or WeCom UserId) at binding time, so people recognise the binding.
    nickname: Mapped[str | None] = mapped_column(String(100))
    bound_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (
        # One identity opens one account; one account has at most one identity per provider.
        UniqueConstraint("provider", "subject", name="uq_social_identities_provider_subject"),
        UniqueConstraint("user_id", "provider", name="uq_social_identities_user_provider"),
    )

    def __repr__(self) -> str:
        return f"<SocialIdentity {self.provider} user={self.user_id}>"
