"""What OpenID Connect keeps in SQL: signing keys, issued tokens and remembered consent.

Authorization codes live in the ephemeral store (single use, a minute long); everything here
outlives a request. Access tokens are opaque random strings, not RFC 9068 JWTs: every resource
server here (userinfo, the SCIM API, relying parties through introspection) asks the IdP
anyway, and an opaque token can be revoked at once — after a reused code, a reused refresh
token or a logout — where a JWT would stay valid until it expired. Only SHA-256 digests of
tokens are stored, so a copy of the database hands out no live token.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from idp.clients.models import OidcClient
from idp.directory.models import User, utcnow
from idp.extensions import db


class SigningKey(db.Model):  # type: ignore[name-defined,misc]
    """A key that signs ID tokens and logout tokens, published in the JWKS."""

    __tablename__ = "oidc_signing_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: RFC 7638 thumbprint: the ``kid`` in token headers and in the JWKS.
    kid: Mapped[str] = mapped_column(String(64), unique=True)
    #: ``RS256`` or ``ES256``.
    alg: Mapped[str] = mapped_column(String(8))
    #: PEM of the private key, encrypted with the data key (Fernet).
    private_key_encrypted: Mapped[str] = mapped_column(Text)
    #: The public JWK as published (kid, alg and use included).
    public_jwk: Mapped[dict[str, str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: When a newer key took over; a retired key signs nothing more.
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: When the last token it signed has expired: it leaves the JWKS then.
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)

    def __repr__(self) -> str:
        return f"<SigningKey {self.alg} {self.kid}>"


class OAuthToken(db.Model):  # type: ignore[name-defined,misc]
    """One token response: an access token and, for most sign-ins, a refresh token.

    Refresh tokens rotate: each use marks the row used and issues a new row in the same
    family. Presenting a used refresh token again means it was copied, so the whole family
    is revoked (RFC 9700 §4.14.2). A family starts at one authorization code.
    """

    __tablename__ = "oidc_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: SHA-256 (hex) of the access token.
    access_token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: SHA-256 (hex) of the refresh token, if one was issued.
    refresh_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    client_id: Mapped[int] = mapped_column(
        ForeignKey("oidc_clients.id", ondelete="CASCADE"), index=True
    )
    client: Mapped[OidcClient] = relationship()
    #: None for client_credentials tokens, which act for the client itself.
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    user: Mapped[User | None] = relationship()
    #: What this access token was issued for (a refresh may have narrowed it).
    scope: Mapped[str] = mapped_column(Text, default="")
    #: What the authorization granted, passed along the family: a refresh may ask for any part
    #: of it, and one that names no scope gets all of it (RFC 6749 §6). None on rows issued
    #: before it was kept; their ``scope`` stands in.
    granted_scope: Mapped[str | None] = mapped_column(Text)
    #: Shared by every token descending from one authorization (code or first token).
    family_id: Mapped[str] = mapped_column(String(32), index=True)
    #: The row whose refresh token was exchanged for this one.
    rotated_from_id: Mapped[int | None] = mapped_column(
        ForeignKey("oidc_tokens.id", ondelete="SET NULL")
    )
    #: SHA-256 of the authorization code this family came from: a replayed code revokes it.
    authorization_code_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    #: The ``sid`` of the SSO session the sign-in belonged to: its logout revokes the family.
    sid: Mapped[str | None] = mapped_column(String(64), index=True)
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    access_expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    refresh_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: When the refresh token was exchanged (rotated); it must never be accepted again.
    refresh_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    def __repr__(self) -> str:
        return f"<OAuthToken {self.id} family={self.family_id}>"


class Consent(db.Model):  # type: ignore[name-defined,misc]
    """Scopes a person agreed to share with a (non-first-party) client: 同意授权, remembered."""

    __tablename__ = "oidc_consents"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    client_id: Mapped[int] = mapped_column(
        ForeignKey("oidc_clients.id", ondelete="CASCADE"), index=True
    )
    #: Every scope agreed to so far; a request within them needs no new consent.
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    granted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    __table_args__ = (
        UniqueConstraint("user_id", "client_id", name="uq_oidc_consents_user_client"),
    )
