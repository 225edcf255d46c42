"""Helpers of the OpenID Connect tests: registering relying parties, running the code flow
through the Flask test client, and verifying tokens the way a relying party does."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from authlib.oidc.core import CodeIDToken
from flask import Flask
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import KeySet

from idp.clients.operations import register_oidc_client
from idp.directory.models import utcnow
from idp.extensions import db
from idp.oidc.models import SigningKey

REDIRECT_URI = "https://rp.example.edu/callback"
LOGOUT_URI = "https://rp.example.edu/signed-out"


@dataclass
class RelyingParty:
    """A registered client as its developers know it."""

    client_id: str
    secret: str | None
    redirect_uri: str = REDIRECT_URI
    auth_method: str = "client_secret_basic"
    #: Registered with PKCE required (the default) — then every request sends a challenge.
    require_pkce: bool = True
    #: The code verifier :func:`authorize_url` derives its automatic challenge from.
    verifier: str = field(default_factory=lambda: secrets.token_urlsafe(48))


def register(app: Flask, **options: Any) -> RelyingParty:
    """Register a client (first-party, PKCE required, code + refresh, unless told otherwise)."""
    redirect_uris = options.pop("redirect_uris", [REDIRECT_URI])
    options.setdefault("first_party", True)
    options.setdefault("post_logout_uris", [LOGOUT_URI])
    name = options.pop("name", "教务系统")
    with app.app_context():
        client, secret = register_oidc_client(name, redirect_uris, **options)
        db.session.commit()
        return RelyingParty(
            client.client_id,
            secret,
            redirect_uris[0] if redirect_uris else "",
            client.token_endpoint_auth_method,
            client.require_pkce,
        )


def challenge_for(verifier: str) -> str:
    """The S256 challenge of a code verifier."""
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def pkce_pair() -> tuple[str, str]:
    """A code verifier and its S256 challenge."""
    verifier = secrets.token_urlsafe(48)
    return verifier, challenge_for(verifier)


def authorize_url(rp: RelyingParty, **params: Any) -> str:
    """``/oauth2/authorize?…`` for ``rp``; ``None`` values are left out.

    A client registered with PKCE required gets a challenge unless the caller set one (or set
    ``code_challenge=None`` to leave it out on purpose).
    """
    if rp.require_pkce and "code_challenge" not in params:
        params["code_challenge"] = challenge_for(rp.verifier)
        params.setdefault("code_challenge_method", "S256")
    query = {
        "response_type": "code",
        "client_id": rp.client_id,
        "redirect_uri": rp.redirect_uri,
        "scope": "openid profile",
        "state": "st-" + secrets.token_hex(4),
        "nonce": "n-" + secrets.token_hex(4),
        **params,
    }
    return "/oauth2/authorize?" + urlencode({k: v for k, v in query.items() if v is not None})


def redirect_params(response: Any) -> dict[str, str]:
    """The query parameters of a redirect to the client (asserting it is one)."""
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    location = response.headers["Location"]
    assert location.startswith(REDIRECT_URI) or "rp.example.edu" in location, location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


@dataclass
class Authorization:
    """What came back from the authorization endpoint."""

    code: str
    state: str
    verifier: str | None
    params: dict[str, str]


def authorize(
    client: FlaskClient, rp: RelyingParty, *, pkce: bool | None = None, **params: Any
) -> Authorization:
    """Run the authorization request of a signed-in browser; returns the code.

    PKCE is used when asked, or by default when the client was registered requiring it.
    """
    verifier = None
    if pkce if pkce is not None else rp.require_pkce:
        verifier, challenge = pkce_pair()
        params.setdefault("code_challenge", challenge)
        params.setdefault("code_challenge_method", "S256")
    response = client.get(authorize_url(rp, **params))
    got = redirect_params(response)
    assert "code" in got, got
    return Authorization(got["code"], got.get("state", ""), verifier, got)


def token_request(
    client: FlaskClient, rp: RelyingParty, data: dict[str, Any], *, secret: str | None = None
) -> Any:
    """POST to the token endpoint, authenticating as ``rp`` registered."""
    secret = secret if secret is not None else rp.secret
    headers = {}
    form = dict(data)
    if rp.auth_method == "client_secret_basic":
        raw = f"{rp.client_id}:{secret}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
    elif rp.auth_method == "client_secret_post":
        form.update(client_id=rp.client_id, client_secret=secret)
    else:
        form["client_id"] = rp.client_id
    return client.post("/oauth2/token", data=form, headers=headers)


def exchange(client: FlaskClient, rp: RelyingParty, authz: Authorization, **extra: Any) -> Any:
    """Exchange an authorization code for tokens."""
    data = {"grant_type": "authorization_code", "code": authz.code, "redirect_uri": rp.redirect_uri}
    if authz.verifier:
        data["code_verifier"] = authz.verifier
    data.update(extra)
    return token_request(client, rp, {k: v for k, v in data.items() if v is not None})


def jwks(client: FlaskClient) -> KeySet:
    """The provider's published keys, fetched as a relying party would."""
    return KeySet.import_key_set(client.get("/oauth2/jwks").get_json())


def verify_id_token(
    client: FlaskClient, app: Flask, rp: RelyingParty, id_token: str, **params: Any
) -> CodeIDToken:
    """Verify signature and claims of an ID token like a relying party; returns the claims."""
    token = jwt.decode(id_token, jwks(client), algorithms=["RS256", "ES256"])
    options = {
        "iss": {"essential": True, "value": app.config["ISSUER"]},
        "aud": {"essential": True, "value": rp.client_id},
    }
    claims = CodeIDToken(token.claims, token.header, options, {"client_id": rp.client_id, **params})
    claims.validate(leeway=5)
    return claims


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for an access token."""
    return {"Authorization": f"Bearer {token}"}


def basic(rp: RelyingParty, secret: str | None = None) -> dict[str, str]:
    """HTTP Basic credentials of ``rp``."""
    raw = f"{rp.client_id}:{secret if secret is not None else rp.secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def expire_retired_keys(app: Flask) -> None:
    """Let every retired key's time in the JWKS run out."""
    with app.app_context():
        db.session.execute(
            db.update(SigningKey)
            .where(SigningKey.retired_at.is_not(None))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        db.session.commit()


def tokens_for(browser: FlaskClient, rp: RelyingParty, **params: str) -> dict[str, str]:
    """Sign in through ``rp`` and return its token response."""
    response = exchange(browser, rp, authorize(browser, rp, **params))
    assert response.status_code == 200, response.get_data(as_text=True)
    return dict(response.get_json())


def userinfo_status(client: FlaskClient, access_token: str) -> int:
    """What userinfo answers to ``access_token``."""
    return int(client.get("/oauth2/userinfo", headers=bearer(access_token)).status_code)


def still_signed_in(browser: FlaskClient, rp: RelyingParty) -> bool:
    """Whether prompt=none still gets ``rp`` (registered without required PKCE) a code: the
    browser's SSO session lives."""
    got = redirect_params(browser.get(authorize_url(rp, prompt="none", code_challenge=None)))
    return "code" in got
