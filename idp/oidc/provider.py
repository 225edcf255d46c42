"""Every piece of Authlib wiring of the OpenID provider, in one place.

The authorization server with its grants (authorization code + OpenID Connect + S256-only
PKCE, rotating refresh tokens, client credentials), the resource protector, and the userinfo,
revocation, introspection and end-session endpoints. The views call the two objects at the
bottom, ``authorization`` and ``require_oauth``; nothing else touches Authlib's server side.

Authorization codes live in the ephemeral store under the SHA-256 of the code and are taken
(read and deleted atomically) at the token endpoint, so a code works once even when two
requests race. Tokens are opaque and stored hashed (see :mod:`idp.oidc.models`).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict
from datetime import timedelta
from typing import Any, ClassVar

from authlib.common.urls import add_params_to_uri
from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import OAuth2Request, grants, scope_to_list
from authlib.oauth2.rfc6749.errors import (
    AccessDeniedError,
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
)
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc6750 import BearerTokenGenerator, BearerTokenValidator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oauth2.rfc9207 import IssuerParameter
from authlib.oidc.core import OpenIDCode, UserInfo, UserInfoEndpoint
from authlib.oidc.core.errors import (
    ConsentRequiredError,
    LoginRequiredError,
    RequestNotSupportedError,
    RequestURINotSupportedError,
)
from authlib.oidc.rpinitiated import EndSessionEndpoint, EndSessionRequest
from flask import current_app, redirect
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from werkzeug.wrappers import Response as BaseResponse

from idp.audit.operations import DENIED, record
from idp.auth.sessions import current_session, end_session
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
    find_client,
    find_token,
)
from idp.oidc.backchannel import LOGOUT_JWT_TYPE
from idp.oidc.claims import (
    USER_SCOPES,
    amr,
    issuer,
    session_sid,
    subject,
    timestamp,
    user_claims,
)
from idp.oidc.keys import ALGORITHMS, client_algorithm, signing_keyset, verification_keyset
from idp.oidc.models import OAuthToken
from shared.factory import get_store

__all__ = [
    "AccessDeniedError",
    "ConsentRequiredError",
    "InvalidRequestError",
    "LoginRequiredError",
    "OAuth2Error",
    "RelyingParty",
    "RequestNotSupportedError",
    "RequestURINotSupportedError",
    "authorization",
    "error_redirect",
    "find_client",
    "require_oauth",
    "verify_id_token_hint",
]

#: A client registered with this scope may introspect any token (a resource server).
INTROSPECT_SCOPE = "introspect"
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
        return user if sso is not None else None


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
        user = token.row.user
        if token.is_expired() or user is None or user.status != UserStatus.ACTIVE:
            return None
        # The client's access policy may have changed since the sign-in.
        return token if policy_admits(token.row.client, user) else None

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


class IssuerInResponse(IssuerParameter):  # type: ignore[misc]
    """RFC 9207: ``iss`` in every authorization response (discovery says so)."""

    def get_issuer(self) -> str:
        return issuer()


def _require_token(request: OAuth2Request) -> None:
    """``token`` is required; ``token_type_hint`` only says where to look first, so a value we
    do not know is ignored rather than refused (RFC 7009 §2.1, RFC 7662 §2.1)."""
    if "token" not in request.form:
        raise InvalidRequestError()


class TokenRevocation(RevocationEndpoint):  # type: ignore[misc]
    """RFC 7009. Revoking a refresh token revokes its whole family, access tokens included."""

    CLIENT_AUTH_METHODS: ClassVar[list[str]] = [*SECRET_METHODS, "none"]

    def check_params(self, request: OAuth2Request, client: RelyingParty) -> None:
        _require_token(request)

    def query_token(self, token_string: str, token_type_hint: str | None) -> Any:
        return find_token(token_string, token_type_hint)

    def revoke_token(self, token: PresentedToken, request: OAuth2Request) -> None:
        if token.kind == "refresh_token":
            operations.revoke_families([token.row.family_id])
        elif token.row.revoked_at is None:
            token.row.revoked_at = utcnow()


class TokenIntrospection(IntrospectionEndpoint):  # type: ignore[misc]
    """RFC 7662: a client may introspect its own tokens; one with ``introspect``, any token."""

    CLIENT_AUTH_METHODS: ClassVar[list[str]] = SECRET_METHODS

    def check_params(self, request: OAuth2Request, client: RelyingParty) -> None:
        _require_token(request)

    def query_token(self, token_string: str, token_type_hint: str | None) -> Any:
        return find_token(token_string, token_type_hint)

    def check_permission(
        self, token: PresentedToken, client: RelyingParty, request: OAuth2Request
    ) -> bool:
        return token.check_client(client) or INTROSPECT_SCOPE in client.model.scopes

    def introspect_token(self, token: PresentedToken) -> dict[str, Any]:
        row = token.row
        payload: dict[str, Any] = {
            "active": True,
            "client_id": row.client.client_id,
            "token_type": "Bearer" if token.kind == "access_token" else "refresh_token",
            "scope": token.get_scope(),
            "iss": issuer(),
            "iat": timestamp(row.issued_at),
            "exp": timestamp(token.expires_at),
        }
        if row.user is not None:
            payload.update(sub=subject(row.user), username=row.user.account)
        return payload


class AccessTokenValidator(BearerTokenValidator):  # type: ignore[misc]
    """Bearer access tokens, looked up by digest."""

    def authenticate_token(self, token_string: str) -> PresentedToken | None:
        token = find_token(token_string, "access_token")
        return token if token is not None and token.kind == "access_token" else None


class ClaimsEndpoint(UserInfoEndpoint):  # type: ignore[misc]
    """``/oauth2/userinfo``: the claims the token's scopes release."""

    def get_issuer(self) -> str:
        return issuer()

    def generate_user_info(self, user: User, scope: str) -> UserInfo:
        return UserInfo(user_claims(user, scope))

    def resolve_private_key(self) -> KeySet:
        return signing_keyset()


def verify_id_token_hint(hint: str) -> dict[str, Any] | None:
    """The claims of an ID token this provider issued to a registered client, or None.

    Expired or not (RP-Initiated Logout §2 asks to accept expired ones), and whichever of our
    keys signed it, even one long gone from the JWKS; ``iss`` and the signature must hold.
    """
    try:
        token = jwt.decode(hint, verification_keyset(), algorithms=list(ALGORITHMS))
    except (JoseError, ValueError, TypeError, KeyError):
        return None
    claims = dict(token.claims)
    if claims.get("iss") != issuer() or not isinstance(claims.get("sub"), str):
        return None
    if "events" in claims or token.header.get("typ") == LOGOUT_JWT_TYPE:
        return None  # a back-channel logout token: signed by us, but no ID token
    return claims if find_client(claims.get("aud")) is not None else None


def _is_signed_token(hint: str) -> bool:
    """Whether ``hint`` is at least a JWT signed with an algorithm we use, whoever signed it."""
    try:
        token = jws.extract_compact(hint.encode())
        payload = json.loads(token.payload)
    except (JoseError, ValueError):
        return False
    return token.protected.get("alg") in ALGORITHMS and isinstance(payload, dict)


def error_redirect(redirect_uri: str, error: OAuth2Error, state: str | None) -> BaseResponse:
    """Send an authorization error back to a verified redirect_uri, with ``iss`` (RFC 9207)."""
    params = [("error", error.error)]
    if error.description:
        params.append(("error_description", error.description))
    if state:
        params.append(("state", state))
    params.append(("iss", issuer()))
    return redirect(add_params_to_uri(redirect_uri, params), 302)


class EndSession(EndSessionEndpoint):  # type: ignore[misc]
    """RP-initiated logout: ends the SSO session, which tells every participant."""

    def validate_request(self, request: OAuth2Request) -> EndSessionRequest:
        data = request.payload.data
        hint = data.get("id_token_hint")
        request.hint_refused = bool(hint) and verify_id_token_hint(hint) is None
        if request.hint_refused:
            if not _is_signed_token(hint):
                raise InvalidRequestError("The id_token_hint is not an ID token.")
            # Signed by no key we hold, or for a client gone: nothing to dead-end the person
            # on. The request goes on as one without a hint (confirmation; no redirection, see
            # is_post_logout_redirect_uri_legitimate).
            request.payload = BasicOAuth2Payload(
                {k: v for k, v in data.items() if k != "id_token_hint"}
            )
        validated: EndSessionRequest = super().validate_request(request)
        return validated

    def get_server_jwks(self) -> KeySet:
        return verification_keyset()

    def is_post_logout_redirect_uri_legitimate(
        self,
        request: OAuth2Request,
        post_logout_redirect_uri: str,
        client: RelyingParty,
        logout_hint: str | None,
    ) -> bool:
        """The one rule for returning to a client without a verified ID token hint.

        ``client_id`` may name the client (RP-Initiated Logout §2): Authlib has found it
        enabled and the address one it registered, exactly. The browser goes back only once the
        person has confirmed the logout, so nobody is sent back unasked (nor, signed out
        already, on anyone's say-so), and never after a hint we could not verify (§4: an
        error, no redirection).
        """
        return not request.hint_refused and operations.logout_confirmed()

    def end_session(self, end_session_request: EndSessionRequest) -> None:
        sso = current_session()
        client = end_session_request.client
        claims = end_session_request.id_token_claims
        if sso is None and claims is not None and client is not None:
            # No cookie (a cross-site POST leaves the SameSite=Lax one behind): the verified
            # hint names the session, by the sid it gave this client.
            sso = operations.session_of_sid(claims.get("sid"), claims["sub"], client.model)
        if sso is None:
            return
        record(
            "logout",
            target=sso.user,
            method="oidc",
            detail={"client": client.client_id if client else None},
        )
        end_session(sso)


class ProviderServer(AuthorizationServer):  # type: ignore[misc]
    """Authlib's Flask authorization server bound to the client registry and token table."""

    def query_client(self, client_id: str) -> RelyingParty | None:
        return find_client(client_id)

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        now = utcnow()
        config = current_app.config
        previous: PresentedToken | None = request.refresh_token
        code: IssuedCode | None = request.authorization_code
        refresh = token.get("refresh_token")
        # A plain INSERT: nothing in this request reads the new row back, and the ORM's unit of
        # work would cost more than the statement itself on every token response.
        db.session.connection().execute(
            _INSERT_TOKEN,
            dict(
                access_token_hash=hash_secret(token["access_token"]),
                refresh_token_hash=hash_secret(refresh) if refresh else None,
                client_id=request.client.model.id,
                user_id=request.user.id if request.user is not None else None,
                scope=token.get("scope") or "",
                # A narrowing refresh does not shrink the grant: a later one may ask for it all.
                granted_scope=previous.get_scope() if previous else (token.get("scope") or ""),
                family_id=previous.row.family_id if previous else secrets.token_hex(16),
                rotated_from_id=previous.row.id if previous else None,
                authorization_code_hash=code.code_hash if code else None,
                sid=code.sid if code else (previous.row.sid if previous else None),
                issued_at=now,
                access_expires_at=now + timedelta(seconds=int(token["expires_in"])),
                refresh_expires_at=(
                    now + timedelta(seconds=config["OIDC_REFRESH_TOKEN_TTL"]) if refresh else None
                ),
                refresh_used_at=None,
                revoked_at=None,
            ),
        )

    def authenticate_client(
        self, request: OAuth2Request, methods: list[str], endpoint: str = "token"
    ) -> Any:
        try:
            return super().authenticate_client(request, methods, endpoint)
        except ValueError:
            # Authlib decodes HTTP Basic credentials strictly (ASCII base64, then UTF-8) and lets
            # the error through: malformed credentials, to be answered like any other.
            raise InvalidClientError(
                status_code=401, description="Malformed client credentials."
            ) from None


_INSERT_TOKEN = OAuthToken.__table__.insert()


def _random_token(**_: Any) -> str:
    return secrets.token_urlsafe(32)


def _token_lifetime(client: RelyingParty, grant_type: str) -> int:
    return int(current_app.config["OIDC_ACCESS_TOKEN_TTL"])


authorization = ProviderServer()
# Registered by hand rather than from OAUTH2_* settings: refresh tokens need a generator
# (Authlib issues none by default), and lifetimes come from IDP_OIDC_* settings per request.
authorization.register_token_generator(
    "default", BearerTokenGenerator(_random_token, _random_token, _token_lifetime)
)
authorization.register_grant(
    CodeGrant, [S256CodeChallenge(required=True), OpenIDConnectCode(require_nonce=False)]
)
authorization.register_grant(RotatingRefreshTokenGrant)
authorization.register_grant(ServiceGrant)
authorization.register_extension(IssuerInResponse())

require_oauth = ResourceProtector()
require_oauth.register_token_validator(AccessTokenValidator())

authorization.register_endpoint(TokenRevocation)
authorization.register_endpoint(TokenIntrospection)
authorization.register_endpoint(ClaimsEndpoint(resource_protector=require_oauth))
authorization.register_endpoint(EndSession)
