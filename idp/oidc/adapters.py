"""Authlib's view of the IdP's data: clients, authorization codes and tokens.

Adapters rather than mixins on the models, so the client registry and the token table stay
free of Authlib; :mod:`idp.oidc.provider` is their only user.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from authlib.oauth2.rfc6749 import ClientMixin, TokenMixin, scope_to_list
from authlib.oidc.core import AuthorizationCodeMixin
from sqlalchemy import bindparam
from sqlalchemy.orm import joinedload

from idp.clients.models import OidcClient
from idp.clients.operations import hash_secret, policy_admits, secret_matches
from idp.clients.rules import web_url_parts
from idp.directory.models import User, UserStatus, utcnow
from idp.extensions import db
from idp.oidc.claims import timestamp
from idp.oidc.models import OAuthToken

#: Registered client_ids are hex; anything else is not looked up at all (no NUL bytes to SQL).
CLIENT_ID_PATTERN = re.compile(r"[A-Za-z0-9._~-]{1,64}")


class RelyingParty(ClientMixin):  # type: ignore[misc]
    """An :class:`OidcClient` as Authlib sees it; the registry's model stays Authlib-free."""

    def __init__(self, model: OidcClient) -> None:
        self.model = model

    @property
    def client_id(self) -> str:
        return self.model.client_id

    @property
    def client_metadata(self) -> dict[str, Any]:
        return {"post_logout_redirect_uris": list(self.model.post_logout_redirect_uris or [])}

    def get_client_id(self) -> str:
        return self.model.client_id

    def get_default_redirect_uri(self) -> None:
        # The authorization endpoint insists on an explicit, exactly registered redirect_uri.
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        # Scopes the client did not register are dropped rather than refused (OIDC Core 3.1.2.1).
        allowed = set(self.model.scopes)
        wanted = scope_to_list(scope) or []
        return " ".join(dict.fromkeys(s for s in wanted if s in allowed))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        # One registered before check_uri refused what Werkzeug cannot redirect to (a port out
        # of range…) would fail only when the Location header is built: a 500, not a 400.
        return redirect_uri in self.model.redirect_uris and web_url_parts(redirect_uri) is not None

    def check_client_secret(self, client_secret: str) -> bool:
        return secret_matches(self.model, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == self.model.token_endpoint_auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.model.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.model.grant_types


def find_client(client_id: Any) -> RelyingParty | None:
    """The enabled client registered as ``client_id``, or None."""
    if not isinstance(client_id, str) or not CLIENT_ID_PATTERN.fullmatch(client_id):
        return None
    model = db.session.scalar(_CLIENT_BY_ID, {"client_id": client_id})
    return RelyingParty(model) if model is not None and model.enabled else None


# The token endpoint's lookups are built once, with bound parameters: building and keying a new
# statement for every request costs more than running it.
_CLIENT_BY_ID = db.select(OidcClient).where(OidcClient.client_id == bindparam("client_id"))


@dataclass
class IssuedCode(AuthorizationCodeMixin):  # type: ignore[misc]
    """What an authorization code stands for, as kept in the store."""

    code_hash: str
    client_id: str
    redirect_uri: str
    scope: str
    user_id: int
    auth_time: int
    sid: str
    nonce: str | None = None
    code_challenge: str | None = None
    code_challenge_method: str | None = None
    amr: list[str] = field(default_factory=list)

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_amr(self) -> list[str] | None:
        return self.amr or None


def code_key(code: str) -> str:
    """The store key of an authorization code (its digest: the store never holds a code)."""
    return "oidc:code:" + hash_secret(code)


class PresentedToken(TokenMixin):  # type: ignore[misc]
    """A stored token row, seen as the access or the refresh token a client presented."""

    def __init__(self, row: OAuthToken, kind: str) -> None:
        self.row = row
        self.kind = kind
        self.scope = self.get_scope()

    def check_client(self, client: RelyingParty) -> bool:
        return self.row.client_id == client.model.id

    def get_scope(self) -> str:
        """An access token's own scope; for a refresh token, the whole grant (RFC 6749 §6)."""
        row = self.row
        if self.kind == "refresh_token" and row.granted_scope is not None:
            return row.granted_scope
        return row.scope

    def get_expires_in(self) -> int:
        return max(0, timestamp(self.expires_at) - timestamp(utcnow()))

    @property
    def expires_at(self) -> Any:
        row = self.row
        return row.access_expires_at if self.kind == "access_token" else row.refresh_expires_at

    def is_expired(self) -> bool:
        return self.expires_at is None or timestamp(self.expires_at) <= timestamp(utcnow())

    def is_revoked(self) -> bool:
        row = self.row
        # A disabled client's tokens stop working with it (and work again if it is enabled).
        if row.revoked_at is not None or not row.client.enabled:
            return True
        if self.kind == "refresh_token" and row.refresh_used_at is not None:
            return True
        if row.user is None:
            return False  # a client-credentials token: no person whose standing could change
        # A person's token stops with their account, and with the client's access policy as it
        # is now (an administrator narrowing it to staff ends a student's tokens already out,
        # as the refresh grant already refuses them).
        return row.user.status != UserStatus.ACTIVE or not policy_admits(row.client, row.user)

    def get_user(self) -> User | None:
        return self.row.user

    def get_client(self) -> RelyingParty:
        return RelyingParty(self.row.client)


def find_token(token_string: Any, hint: str | None = None) -> PresentedToken | None:
    """The access or refresh token ``token_string`` is, looking first where ``hint`` says."""
    if not isinstance(token_string, str) or not token_string:
        return None
    digest = hash_secret(token_string)
    kinds = ["access_token", "refresh_token"]
    if hint == "refresh_token":
        kinds.reverse()
    for kind in kinds:
        row = db.session.scalar(_TOKEN_BY_DIGEST[kind], {"digest": digest})
        if row is not None:
            return PresentedToken(row, kind)
    return None


# The user and the client come in the same query: every caller checks their status.
_TOKEN_BY_DIGEST = {
    kind: db.select(OAuthToken)
    .where(column == bindparam("digest"))
    .options(joinedload(OAuthToken.user), joinedload(OAuthToken.client))
    for kind, column in (
        ("access_token", OAuthToken.access_token_hash),
        ("refresh_token", OAuthToken.refresh_token_hash),
    )
}
