"""Validation of OpenID Connect Back-Channel Logout 1.0 logout tokens (§2.6).

A logout token is a JWT the IdP signs and POSTs to ``/auth/backchannel-logout`` when an SSO
session ends. It is accepted only when signed by a key in the IdP's JWKS, issued by our
issuer for our client_id, recent, carrying the back-channel logout event and ``sid`` and/or
``sub``, with no ``nonce`` (so an ID token cannot be passed off as one), and seen once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from hall.auth.oidc import IdpUnavailable, client_id, idp_client, provider_metadata
from shared.factory import get_store

EVENT = "http://schemas.openid.net/event/backchannel-logout"
#: Seconds after ``iat`` a logout token is still accepted (the IdP retries for a few seconds).
MAX_AGE = 300
#: Allowed clock skew between the IdP and the hall, in seconds.
LEEWAY = 60
#: Least seconds between two forced JWKS refetches, so forged ``kid`` values cannot make the
#: hall hammer the IdP.
REFETCH_INTERVAL = 30
#: ``typ`` headers of a logout token (explicit typing is recommended, not required).
TYPES = {"logout+jwt", "application/logout+jwt"}
JTI_PREFIX = "logout-jti:"


class LogoutTokenError(ValueError):
    """The token must be refused; the message is safe to return to the IdP."""


@dataclass(frozen=True)
class LogoutRequest:
    """What a valid logout token asks to end."""

    sub: str | None
    sid: str | None


def _keys(force: bool) -> KeySet:
    client = idp_client()
    try:
        return KeySet.import_key_set(client.fetch_jwk_set(force=force))
    except Exception as exc:  # requests errors, bad JSON, malformed keys alike
        raise IdpUnavailable(503, f"cannot load the IdP's JWKS: {exc!r}") from exc


def _decode(token: str, algorithms: list[str]) -> jwt.Token:
    try:
        return jwt.decode(token, _keys(force=False), algorithms=algorithms)
    except InvalidKeyIdError:
        pass  # perhaps a key rotated in since the JWKS was cached
    except (JoseError, ValueError, TypeError) as exc:
        raise LogoutTokenError(f"not a valid signed token ({type(exc).__name__})") from exc
    client = idp_client()
    now = time.monotonic()
    last = getattr(client, "hall_jwks_refetched_at", None)
    if last is not None and now - last < REFETCH_INTERVAL:
        raise LogoutTokenError("signed with an unknown key")
    client.hall_jwks_refetched_at = now
    try:
        return jwt.decode(token, _keys(force=True), algorithms=algorithms)
    except (JoseError, ValueError, TypeError) as exc:
        raise LogoutTokenError(f"not a valid signed token ({type(exc).__name__})") from exc


def check_logout_claims(claims: dict[str, Any], issuer: str) -> None:
    """Raise LogoutTokenError unless the claims of a (signature-checked) token are acceptable."""
    registry = jwt.JWTClaimsRegistry(
        leeway=LEEWAY,
        iss={"essential": True, "value": issuer},
        aud={"essential": True, "value": client_id()},
        iat={"essential": True},
        jti={"essential": True},
        events={"essential": True},
    )
    try:
        registry.validate(claims)
    except JoseError as exc:
        raise LogoutTokenError(f"claims rejected ({exc.error}: {exc.description})") from exc
    if time.time() - claims["iat"] > MAX_AGE + LEEWAY:
        raise LogoutTokenError("issued too long ago")
    events = claims["events"]
    if not isinstance(events, dict) or not isinstance(events.get(EVENT), dict):
        raise LogoutTokenError("no back-channel logout event")
    if "nonce" in claims:
        raise LogoutTokenError("a logout token must not carry a nonce")
    if not claims.get("sid") and not claims.get("sub"):
        raise LogoutTokenError("neither sid nor sub")
    for name in ("sid", "sub"):
        if name in claims and not isinstance(claims[name], str):
            raise LogoutTokenError(f"{name} must be a string")


def verify_logout_token(token: str) -> LogoutRequest:
    """The request a logout token makes, after every check of §2.6; raises LogoutTokenError."""
    metadata = provider_metadata()
    algorithms = [
        alg
        for alg in metadata.get("id_token_signing_alg_values_supported", ["RS256"])
        if alg != "none"
    ]
    decoded = _decode(token, algorithms)
    typ = decoded.header.get("typ")
    if typ is not None and str(typ).lower() not in TYPES:
        raise LogoutTokenError(f"typ {typ!r} is not a logout token")
    claims = dict(decoded.claims)
    check_logout_claims(claims, metadata["issuer"])
    # A jti seen before is a replay; remember it for as long as the token could be accepted.
    if not get_store().add(JTI_PREFIX + str(claims["jti"]), "1", MAX_AGE + 2 * LEEWAY):
        raise LogoutTokenError("this logout token was already used")
    return LogoutRequest(sub=claims.get("sub") or None, sid=claims.get("sid") or None)
