"""The client registry: OIDC relying parties and CAS services allowed to use the IdP, and which
of them took part in each SSO session (for single logout)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from idp.directory.models import utcnow
from idp.extensions import db


class AccessPolicyMixin:
    """Which people may sign in to a client: by kind and by department (None = everyone)."""

    #: e.g. ``["staff"]``; None lets every kind in.
    allowed_kinds: Mapped[list[str] | None] = mapped_column(JSON)
    #: Department codes (a department admits its sub-departments); None admits all.
    allowed_departments: Mapped[list[str] | None] = mapped_column(JSON)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class OidcClient(AccessPolicyMixin, db.Model):  # type: ignore[name-defined]
    """An OpenID Connect relying party."""

    __tablename__ = "oidc_clients"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    #: SHA-256 of the secret (secrets are 256-bit random, so a fast hash is enough); None if public.
    client_secret_hash: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    #: Matched exactly, character for character.
    redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    post_logout_redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    backchannel_logout_uri: Mapped[str | None] = mapped_column(String(1000))
    grant_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: ``client_secret_basic``, ``client_secret_post`` or ``none`` (public clients).
    token_endpoint_auth_method: Mapped[str] = mapped_column(String(32))
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    #: A campus system of the university itself: no consent page.
    first_party: Mapped[bool] = mapped_column(Boolean, default=False)
    require_pkce: Mapped[bool] = mapped_column(Boolean, default=True)
    #: ``RS256`` or ``ES256``: the key that signs its ID tokens and logout tokens. None means
    #: RS256, the default of OIDC Dynamic Registration (and of clients registered before it).
    id_token_signed_response_alg: Mapped[str | None] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class CasService(AccessPolicyMixin, db.Model):  # type: ignore[name-defined]
    """A CAS service: the URLs it may use, what it learns about people, and its logout."""

    __tablename__ = "cas_services"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    #: A regular expression matched against the whole service URL (anchored by the IdP).
    service_pattern: Mapped[str] = mapped_column(Text)
    #: Attributes released in validation responses, e.g. ``["name", "kind", "department"]``.
    attributes: Mapped[list[str]] = mapped_column(JSON, default=list)
    proxy_allowed: Mapped[bool] = mapped_column(Boolean, default=False)
    single_logout: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SessionParticipant(db.Model):  # type: ignore[name-defined]
    """A client that received a sign-in from an SSO session; told when the session ends."""

    __tablename__ = "session_participants"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("sso_sessions.id", ondelete="CASCADE"), index=True
    )
    #: ``cas`` or ``oidc``.
    protocol: Mapped[str] = mapped_column(String(8))
    oidc_client_id: Mapped[int | None] = mapped_column(
        ForeignKey("oidc_clients.id", ondelete="CASCADE")
    )
    cas_service_id: Mapped[int | None] = mapped_column(
        ForeignKey("cas_services.id", ondelete="CASCADE")
    )
    #: CAS: the service URL the ticket was issued for (where the logoutRequest goes).
    service_url: Mapped[str | None] = mapped_column(Text)
    #: CAS: the service ticket (the logoutRequest's SessionIndex). OIDC: the ``sid`` claim.
    session_index: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (Index("ix_session_participants_session_protocol", "session_id", "protocol"),)

    def __repr__(self) -> str:
        return f"<SessionParticipant {self.protocol} {self.session_index}>"


def as_dict(obj: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    """Selected attributes of a model, for JSON output."""
    return {name: getattr(obj, name) for name in fields}
