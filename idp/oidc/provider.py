"""The Authlib wiring of the OpenID provider: the authorization server with its grants
(:mod:`idp.oidc.grants`), the resource protector, and the userinfo, revocation,
introspection and end-session endpoints. The views call the two objects at the bottom,
``authorization`` and ``require_oauth``; nothing else touches Authlib's server side.

Tokens are opaque and stored hashed (see :mod:`idp.oidc.models`).
"""

from __future__ import annotations

import json
import secrets
from datetime import timedelta
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

from authlib.common.urls import add_params_to_uri
from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import OAuth2Request
from authlib.oauth2.rfc6749.errors import (
    AccessDeniedError,
    InvalidClientError,
    InvalidRequestError,
)
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc6750 import BearerTokenGenerator, BearerTokenValidator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oauth2.rfc9207 import IssuerParameter
from authlib.oidc.core import UserInfo, UserInfoEndpoint
from authlib.oidc.core.errors import (
    ConsentRequiredError,
    LoginRequiredError,
    RequestNotSupportedError,
    RequestURINotSupportedError,
)
from authlib.oidc.rpinitiated import EndSessionEndpoint, EndSessionRequest
from flask import Response, current_app, redirect, render_template
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from werkzeug.wrappers import Response as BaseResponse

from idp.audit.operations import record
from idp.auth.sessions import current_session, end_session
from idp.clients.operations import hash_secret
from idp.directory.models import User, utcnow
from idp.extensions import db
from idp.oidc import operations
from idp.oidc.adapters import (
    IssuedCode,
    PresentedToken,
    RelyingParty,
    find_client,
    find_token,
)
from idp.oidc.backchannel import LOGOUT_JWT_TYPE
from idp.oidc.claims import (
    issuer,
    subject,
    timestamp,
    user_claims,
)
from idp.oidc.grants import (
    SECRET_METHODS,
    CodeGrant,
    OpenIDConnectCode,
    RotatingRefreshTokenGrant,
    S256CodeChallenge,
    ServiceGrant,
    refresh_still_good,
)
from idp.oidc.keys import ALGORITHMS, signing_keyset, verification_keyset
from idp.oidc.models import OAuthToken

__all__ = [
    "RESPONSE_MODES",
    "AccessDeniedError",
    "ConsentRequiredError",
    "InvalidRequestError",
    "LoginRequiredError",
    "OAuth2Error",
    "RelyingParty",
    "RequestNotSupportedError",
    "RequestURINotSupportedError",
    "authorization",
    "authorization_error",
    "find_client",
    "in_response_mode",
    "require_oauth",
    "verify_id_token_hint",
]

#: A client registered with this scope may introspect any token (a resource server).
INTROSPECT_SCOPE = "introspect"


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
        # Found even when it would no longer refresh (its sign-in idle, the client's policy now
        # leaving its user out): the access tokens of its grant may still work, and stop here.
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
        token = find_token(token_string, token_type_hint)
        if token is not None and token.kind == "refresh_token" and not token.is_revoked():
            # Unknown is what an inactive token looks like: active: false.
            return token if refresh_still_good(token) else None
        return token

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
    except (JoseError, ValueError, RecursionError):
        # RecursionError: a payload of arrays nested past the interpreter's depth (2 kB will do).
        return False
    return token.protected.get("alg") in ALGORITHMS and isinstance(payload, dict)


#: How an authorization response may reach the client (discovery lists them): in the query of
#: the redirect, the code flow's default, or posted by the browser (OAuth 2.0 Form Post
#: Response Mode, what ASP.NET Core's OpenIdConnect handler asks for unless told otherwise).
RESPONSE_MODES = ("query", "form_post")


def authorization_response(
    redirect_uri: str, params: list[tuple[str, str]], response_mode: str
) -> BaseResponse:
    """Hand ``params`` to the client at its verified ``redirect_uri``: added to its query (a
    302), or, for form_post, as a page whose form the browser posts there (Form Post §2: the
    action is the redirect URI as it is; a static script submits it, 继续 without one)."""
    if response_mode == "form_post":
        page = render_template("oidc/form_post.html", action=redirect_uri, params=params)
        return Response(page, 200, mimetype="text/html")
    return redirect(add_params_to_uri(redirect_uri, params), 302)


def authorization_error(
    redirect_uri: str, error: OAuth2Error, state: str | None, response_mode: str
) -> BaseResponse:
    """Send an authorization error back to a verified redirect_uri, with ``iss`` (RFC 9207)."""
    params = [("error", error.error)]
    if error.description:
        params.append(("error_description", error.description))
    if state:
        params.append(("state", state))
    params.append(("iss", issuer()))
    return authorization_response(redirect_uri, params, response_mode)


def _query_pairs(uri: str) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(uri).query, keep_blank_values=True)


def in_response_mode(response: Response, redirect_uri: str, response_mode: str) -> BaseResponse:
    """Authlib's redirect to ``redirect_uri`` (a code, or access_denied) delivered in
    ``response_mode``; any other answer as it is."""
    location = response.location
    if response_mode == "query" or not location:
        return response
    # Authlib appends its parameters, then IssuerInResponse its iss, to the redirect URI's own
    # query, which it parses and re-encodes just as _query_pairs reads it: they follow it.
    params = _query_pairs(location)[len(_query_pairs(redirect_uri)) :]
    return authorization_response(redirect_uri, params, response_mode)


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
