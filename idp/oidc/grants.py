"""The grants of the OpenID provider, as Authlib wants them (registered in
:mod:`idp.oidc.provider`): authorization code with OpenID Connect and S256-only PKCE, rotating
refresh tokens, client credentials for service clients.

Authorization codes live in the ephemeral store under the SHA-256 of the code and are taken
(read and deleted atomically) at the token endpoint, so a code works once even when two
requests race.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any, ClassVar

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import OAuth2Request, grants, scope_to_list
from authlib.oauth2.rfc6749.errors import (
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
)
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import OpenIDCode, UserInfo
from flask import current_app
from joserfc.jwk import KeySet

from idp.audit.operations import DENIED, record
from idp.auth.sessions import current_session
from idp.clients.models import OidcClient
from idp.clients.operations import hash_secret, policy_admits
from idp.directory.models import User, UserStatus, utcnow
from idp.extensions import db
from idp.oidc import operations
from idp.oidc.adapters import (
    IssuedCode,
    PresentedToken,
    RelyingParty,
    code_key,
    find_token,
)
from idp.oidc.claims import (
    USER_SCOPES,
    amr,
    issuer,
    session_sid,
    subject,
    timestamp,
    user_claims,
)
from idp.oidc.keys import client_algorithm, signing_keyset
from shared.factory import get_store

#: How confidential clients authenticate; public clients use "none" (PKCE instead).
SECRET_METHODS = ["client_secret_basic", "client_secret_post"]


class S256CodeChallenge(CodeChallenge):  # type: ignore[misc]
    """PKCE with S256 only; required for public clients and clients registered with it."""

    SUPPORTED_CODE_CHALLENGE_METHOD: ClassVar[list[str]] = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        super().validate_code_challenge(grant, redirect_uri)
        data = grant.request.payload.data
        challenge, method = data.get("code_challenge"), data.get("code_challenge_method")
        if challenge and method != "S256":
            # Absent means plain (RFC 7636 §4.3), which reveals the verifier to anyone who sees it.
            raise InvalidRequestError("Only code_challenge_method=S256 is supported.")
        client: OidcClient = grant.request.client.model
        if not challenge and (client.require_pkce or client.public):
            raise InvalidRequestError("This client must send a code_challenge (PKCE, S256).")


class CodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    """The authorization code grant, codes kept in the store."""

    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = [*SECRET_METHODS, "none"]

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        sso = current_session()
        assert sso is not None, "codes are only issued to a signed-in browser"
        client: OidcClient = request.client.model
        data = request.payload.data
        issued = IssuedCode(
            code_hash=hash_secret(code),
            client_id=client.client_id,
            redirect_uri=request.payload.redirect_uri,
            scope=request.scope or "",
            user_id=request.user.id,
            auth_time=timestamp(sso.auth_time),
            sid=session_sid(sso),
            nonce=data.get("nonce") or None,
            code_challenge=data.get("code_challenge") or None,
            code_challenge_method="S256" if data.get("code_challenge") else None,
            amr=amr(sso.methods),
        )
        ttl = current_app.config["OIDC_CODE_TTL"]
        get_store().set(code_key(code), json.dumps(asdict(issued)), ttl)
        operations.remember_participant(sso, client, issued.sid)

    def query_authorization_code(self, code: str, client: RelyingParty) -> IssuedCode | None:
        raw = get_store().take(code_key(code))
        if raw is None:
            operations.revoke_replayed_code(code, client.client_id)
            return None
        issued = IssuedCode(**json.loads(raw))
        # A code presented by another client is spent all the same: it was exposed.
        return issued if issued.client_id == client.client_id else None

    def delete_authorization_code(self, authorization_code: IssuedCode) -> None:
        """Nothing to do: the code left the store when it was taken."""

    def authenticate_user(self, authorization_code: IssuedCode) -> User | None:
        user = db.session.get(User, authorization_code.user_id)
        if user is None or user.status != UserStatus.ACTIVE:
            return None
        # A code issued just before the browser signed out must not outlive the sign-in it came
        # from (its refresh token would live on for weeks): no live session, no user.
        client: OidcClient = self.request.client.model
        sso = operations.session_of_sid(authorization_code.sid, subject(user), client)
        if sso is None:
            return None
        # The client's access policy may have changed since the code was issued (as at refresh).
        return user if policy_admits(client, user) else None


class OpenIDConnectCode(OpenIDCode):  # type: ignore[misc]
    """ID tokens for the code flow: signed with the current key of the algorithm the client
    registered (RS256 by default), ``kid`` in the header."""

    def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
        # The relying party checks the nonce it sent; OIDC Core asks the OP to do nothing more.
        return False

    def resolve_client_private_key(self, client: RelyingParty) -> KeySet:
        return signing_keyset(client_algorithm(client.model))

    def get_client_algorithm(self, client: RelyingParty) -> str:
        return client_algorithm(client.model)

    def get_client_claims(self, client: RelyingParty) -> dict[str, Any]:
        lifetime = current_app.config["OIDC_ID_TOKEN_TTL"]
        # aud as a string: RP-initiated logout resolves the client from it (Authlib trap 6).
        return {
            "iss": issuer(),
            "aud": client.get_client_id(),
            "exp": timestamp(utcnow()) + lifetime,
        }

    def get_authorization_code_claims(self, authorization_code: IssuedCode) -> dict[str, Any]:
        claims: dict[str, Any] = super().get_authorization_code_claims(authorization_code)
        claims["sid"] = authorization_code.sid
        return claims

    def generate_user_info(self, user: User, scope: str) -> UserInfo:
        return UserInfo(user_claims(user, scope))

    def process_token(self, grant: CodeGrant, response: Any) -> dict[str, Any]:
        token: dict[str, Any] = super().process_token(grant, response)
        code: IssuedCode | None = grant.request.authorization_code
        if "id_token" in token and code is not None:
            # Keycloak's identity brokering keys its session by the token response's
            # session_state, then looks the back-channel logout token's sid up under it:
            # without it a brokered sign-in is never signed out (keycloak#12142).
            token["session_state"] = code.sid
        return token


def refresh_still_good(token: PresentedToken) -> bool:
    """Whether an unused, unrevoked refresh token would refresh now: the one rule for the
    refresh grant and for introspection, which must not call active what the token endpoint
    refuses (RFC 7662 §2.2)."""
    user = token.row.user
    if token.is_expired() or user is None or user.status != UserStatus.ACTIVE:
        return False
    # The client's access policy may have changed since the sign-in.
    if not policy_admits(token.row.client, user):
        return False
    # Tokens die with the sign-in they came from: one idle or past its end refreshes nothing,
    # even before the hourly purge revokes its tokens (as a code would not exchange). Every
    # code-flow token names its session's sid.
    sid = token.row.sid
    return not sid or operations.session_of_sid(sid, subject(user), token.row.client) is not None


class RotatingRefreshTokenGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
    """Each refresh token works once; a second use revokes its whole family."""

    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = [*SECRET_METHODS, "none"]
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> PresentedToken | None:
        token = find_token(refresh_token, "refresh_token")
        if token is None or token.kind != "refresh_token" or token.row.revoked_at is not None:
            return None
        if token.row.refresh_used_at is not None:
            operations.revoke_reused_refresh_token(token.row)
            return None
        return token if refresh_still_good(token) else None

    def authenticate_user(self, refresh_token: PresentedToken) -> User | None:
        return refresh_token.row.user

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        # Claim the token before issuing its successor: of two requests racing with one token,
        # only one marks it used; the other is a reuse like any later one.
        presented: PresentedToken = self.request.refresh_token
        if not operations.claim_refresh_token(presented.row):
            operations.revoke_reused_refresh_token(presented.row)
            raise InvalidGrantError()  # the same answer as for any other reused token
        response: tuple[int, dict[str, Any], list[tuple[str, str]]]
        response = super().create_token_response()
        return response

    def revoke_old_credential(self, refresh_token: PresentedToken) -> None:
        """Nothing left to do: :meth:`create_token_response` marked it used first."""


class ServiceGrant(grants.ClientCredentialsGrant):  # type: ignore[misc]
    """client_credentials: a client acting for itself, within its registered service scopes."""

    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = SECRET_METHODS

    def _service_scopes(self) -> list[str]:
        return [s for s in self.client.model.scopes if s not in USER_SCOPES]

    def validate_requested_scope(self) -> None:
        wanted = set(scope_to_list(self.request.payload.scope) or [])
        if not wanted <= set(self._service_scopes()):
            raise InvalidScopeError("The client may only ask for its registered service scopes.")

    #: The client once authenticated, named in the audit trail even when refused later.
    authenticated: RelyingParty | None = None

    def authenticate_token_endpoint_client(self) -> RelyingParty:
        client: RelyingParty = super().authenticate_token_endpoint_client()
        self.authenticated = client  # named in the audit trail even when refused later
        return client

    def validate_token_request(self) -> None:
        self.authenticated = None
        try:
            super().validate_token_request()
        except OAuth2Error as error:
            client = self.authenticated
            record(
                "oauth.client_credentials",
                DENIED,
                subject=client.get_client_id() if client is not None else None,
                detail={"error": error.error, "scope": (self.request.payload.scope or "")[:200]},
            )
            raise

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        scope = self.request.payload.scope or " ".join(self._service_scopes())
        token = self.generate_token(scope=scope, include_refresh_token=False)
        self.save_token(token)
        # A service token reads data about everyone (the directory): keep a trail of each.
        record(
            "oauth.client_credentials",
            subject=self.client.get_client_id(),
            detail={"scope": scope},
        )
        return 200, token, self.TOKEN_RESPONSE_HEADER
