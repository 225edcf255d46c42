"""Every piece of Authlib wiring of the hall's OpenID Connect client, in one place.

The client is registered from ``HALL_OIDC_*`` and discovers the IdP's endpoints from
``<issuer>/.well-known/openid-configuration`` (cached for the process; signing keys are
refetched when an unknown ``kid`` shows up). Sign-in is the authorization code flow with S256
PKCE and ``client_secret_basic``. The pending request (state, nonce, PKCE verifier, where to
go next) waits in the ephemeral store; the browser's session holds only its key.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.common.urls import add_params_to_uri
from authlib.integrations.flask_client import OAuth
from flask import Flask, current_app, session
from joserfc.errors import JoseError

from shared.factory import get_store

log = logging.getLogger(__name__)

#: The name the client is registered under (and the prefix of Authlib's state keys).
CLIENT_NAME = "idp"
SCOPE = "openid profile email phone campus"
#: Seconds to wait for the IdP before telling the user it is unreachable.
HTTP_TIMEOUT = 10
#: Seconds an ID token's times may be off (clock skew between the two servers).
LEEWAY = 60
#: Store-key prefix of pending sign-ins.
STATE_PREFIX = "oidc-state:"


class IdpUnavailable(Exception):
    """The IdP could not be reached (503) or answered something unusable (502)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class SignInError(Exception):
    """A sign-in that cannot complete; ``kind`` picks the page the user sees.

    ``state``: unknown, replayed or forged state (400); ``denied``: the IdP or the user
    refused (403); ``failed``: any other protocol error (400).
    """

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind


@dataclass(frozen=True)
class SignIn:
    """A completed sign-in: validated claims, the raw ID token and where to go next."""

    claims: dict[str, Any]
    id_token: str
    target: str

    @property
    def sid(self) -> str | None:
        """The IdP's session id, for back-channel logout."""
        sid = self.claims.get("sid")
        return str(sid) if sid else None


class StoreCache:
    """Authlib's cache interface over the app's ephemeral store (Redis or SQL)."""

    def get(self, key: str) -> str | None:
        """The cached value, or None."""
        return get_store().get(STATE_PREFIX + key)

    def set(self, key: str, value: str, expires_in: float) -> None:
        """Cache ``value`` for ``expires_in`` seconds."""
        get_store().set(STATE_PREFIX + key, value, expires_in)

    def delete(self, key: str) -> None:
        """Forget ``key``."""
        get_store().delete(STATE_PREFIX + key)


def issuer() -> str:
    """The configured issuer, without a trailing slash."""
    return str(current_app.config["OIDC_ISSUER"]).rstrip("/")


def client_id() -> str:
    """The hall's client_id at the IdP."""
    return str(current_app.config["OIDC_CLIENT_ID"])


def is_configured() -> bool:
    """Whether the hall has a registration to sign in with."""
    config = current_app.config
    return bool(config["OIDC_CLIENT_ID"] and config["OIDC_CLIENT_SECRET"])


def setup_oidc_client(app: Flask) -> None:
    """Register the IdP as this app's OAuth client (one registry per app)."""
    oauth = OAuth(app, cache=StoreCache())
    oauth.register(
        CLIENT_NAME,
        client_id=app.config["OIDC_CLIENT_ID"],
        client_secret=app.config["OIDC_CLIENT_SECRET"],
        server_metadata_url=str(app.config["OIDC_ISSUER"]).rstrip("/")
        + "/.well-known/openid-configuration",
        client_kwargs={
            "scope": SCOPE,
            "code_challenge_method": "S256",
            "token_endpoint_auth_method": "client_secret_basic",
            "default_timeout": HTTP_TIMEOUT,
        },
    )


def idp_client() -> Any:
    """This app's Authlib client of the IdP."""
    return current_app.extensions["authlib.integrations.flask_client"].create_client(CLIENT_NAME)


def _unavailable(exc: Exception, what: str) -> IdpUnavailable:
    if isinstance(exc, requests.ConnectionError | requests.Timeout):
        return IdpUnavailable(503, f"{what}: IdP unreachable ({type(exc).__name__})")
    return IdpUnavailable(502, f"{what}: unusable answer from the IdP ({exc})")


def provider_metadata() -> dict[str, Any]:
    """The IdP's discovery document, fetched once per process and checked against the issuer."""
    client = idp_client()
    try:
        metadata = cast(dict[str, Any], client.load_server_metadata())
    except (requests.RequestException, ValueError) as exc:
        raise _unavailable(exc, "discovery") from exc
    if metadata.get("issuer") != issuer():
        # OIDC Discovery §4.3: a document naming another issuer must not be used. Drop it, so
        # that a corrected IdP is picked up without restarting the hall.
        client.server_metadata.clear()
        raise IdpUnavailable(
            502, f"discovery names issuer {metadata.get('issuer')!r}, expected {issuer()!r}"
        )
    return metadata


def begin_sign_in(redirect_uri: str, target: str, ui_locales: str) -> str:
    """Remember a new authorization request and return the IdP address to send the browser to."""
    provider_metadata()
    client = idp_client()
    request = client.create_authorization_url(redirect_uri, ui_locales=ui_locales)
    client.framework.set_state_data(
        session,
        request["state"],
        {
            "redirect_uri": redirect_uri,
            "code_verifier": request["code_verifier"],
            "nonce": request["nonce"],
            "next": target,
        },
    )
    return str(request["url"])


def _take_state(state: str | None) -> dict[str, Any]:
    """The pending request for ``state``, forgotten at once: a state works once."""
    framework = idp_client().framework
    data = framework.get_state_data(session, state) if state else None
    if state:
        framework.clear_state_data(session, state)
    if not data:
        raise SignInError("state", "unknown, expired or replayed state")
    return cast(dict[str, Any], data)


def finish_sign_in(args: Mapping[str, str]) -> SignIn:
    """Complete the authorization response in ``args``: state, ``iss``, code, ID token, userinfo."""
    pending = _take_state(args.get("state"))
    metadata = provider_metadata()
    if metadata.get("authorization_response_iss_parameter_supported") and (
        args.get("iss") != metadata["issuer"]
    ):
        # RFC 9207: a response naming another issuer may be a mix-up attack.
        raise SignInError("failed", f"iss parameter {args.get('iss')!r} is not the IdP's")
    error = args.get("error")
    if error:
        kind = "denied" if error == "access_denied" else "failed"
        raise SignInError(kind, f"IdP answered {error}: {args.get('error_description', '')}")
    code = args.get("code")
    if not code:
        raise SignInError("failed", "no code in the authorization response")

    client = idp_client()
    try:
        token = client.fetch_access_token(
            redirect_uri=pending["redirect_uri"],
            code=code,
            code_verifier=pending["code_verifier"],
            grant_type="authorization_code",
        )
        claims = dict(
            client.parse_id_token(
                token,
                nonce=pending["nonce"],
                claims_options={
                    "iss": {"essential": True, "value": metadata["issuer"]},
                    "aud": {"essential": True, "value": client_id()},
                    "sub": {"essential": True},
                },
                leeway=LEEWAY,
            )
        )
        if metadata.get("userinfo_endpoint"):
            info = dict(client.userinfo(token=token))
            if info.get("sub") != claims["sub"]:
                raise SignInError("failed", "userinfo is about another subject")
            claims = {**info, **claims}
    except SignInError:
        raise
    except AuthlibBaseError as exc:  # an OAuth error answered by the token endpoint
        raise SignInError("failed", f"token endpoint: {exc}") from exc
    except JoseError as exc:
        raise SignInError("failed", f"ID token rejected: {exc!r}") from exc
    except (requests.RequestException, ValueError, KeyError) as exc:
        raise _unavailable(exc, "token exchange") from exc
    if "id_token" not in token:
        raise SignInError("failed", "the token response has no ID token")
    return SignIn(claims=claims, id_token=str(token["id_token"]), target=str(pending["next"]))


def end_session_url(id_token: str, post_logout_redirect_uri: str, ui_locales: str) -> str:
    """The IdP's RP-initiated logout address for a session that signed in with ``id_token``."""
    endpoint = provider_metadata().get("end_session_endpoint")
    if not endpoint:
        raise IdpUnavailable(502, "discovery has no end_session_endpoint")
    params = {
        "id_token_hint": id_token,
        "post_logout_redirect_uri": post_logout_redirect_uri,
        "client_id": client_id(),
        "ui_locales": ui_locales,
    }
    return str(add_params_to_uri(endpoint, params))
