"""Authlib's own OAuth 2 client against the IdP as a live server: discovery, the code flow
with S256 PKCE (signing in through /login like a browser), ID token validation with the
JWKS, userinfo, refresh-token rotation and RP-initiated logout."""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc9207 import AuthorizationServerMetadata
from authlib.oidc.core import CodeIDToken
from authlib.oidc.discovery import OpenIDProviderMetadata
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.conftest import MakeDatabaseUrl
from tests.e2e.conftest import LiveServer, _server_env, free_port

#: A demo account (``flask --app idp demo``).
ACCOUNT, PASSWORD = "2024000001", "Hongliu2024demo"
REDIRECT_URI = "http://127.0.0.1:9/callback"  # never contacted: the redirect is read, not followed


@pytest.fixture(scope="module")
def oidc_idp(
    make_database_url: MakeDatabaseUrl, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A live IdP whose IDP_ISSUER is its own address, as relying parties must see it."""
    instance = tmp_path_factory.mktemp("interop_oidc")
    port = free_port()
    env = _server_env("IDP", make_database_url("interop_oidc_idp"), instance)
    env["IDP_ISSUER"] = f"http://127.0.0.1:{port}"
    server = LiveServer("idp", env, instance / "server.log", port=port)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def registration(oidc_idp: LiveServer) -> dict[str, Any]:
    """A client registered with the real command line."""
    return oidc_idp.add_oidc_client(
        "Authlib 互通测试",
        "--first-party",
        "--redirect-uri",
        REDIRECT_URI,
        "--post-logout-uri",
        REDIRECT_URI,
    )


def discover(server: LiveServer) -> dict[str, Any]:
    """The discovery document, validated by Authlib."""
    document = requests.get(server.url + "/.well-known/openid-configuration", timeout=10).json()
    metadata = OpenIDProviderMetadata(document)
    metadata.validate(metadata_classes=[AuthorizationServerMetadata])
    return dict(document)


def sign_in_through_browser(authorization_url: str) -> str:
    """Follow the authorization request like a browser, signing in on /login; returns the
    redirect back to the client."""
    browser = requests.Session()
    url = authorization_url
    for _ in range(10):
        response = browser.get(url, allow_redirects=False, timeout=10)
        if response.status_code in (302, 303):
            location = urljoin(url, response.headers["Location"])
            if location.startswith(REDIRECT_URI):
                return location
            url = location
            continue
        assert response.status_code == 200 and "/login" in url, response.text[:300]
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', response.text)
        assert token, "no CSRF token on the login page"
        posted = browser.post(
            url,
            data={"csrf_token": token.group(1), "identifier": ACCOUNT, "password": PASSWORD},
            allow_redirects=False,
            timeout=10,
        )
        assert posted.status_code in (302, 303), posted.text[:300]
        url = urljoin(url, posted.headers["Location"])
    raise AssertionError("the authorization request never came back to the client")


def validate_id_token(
    document: dict[str, Any], client_id: str, id_token: str, **params: Any
) -> CodeIDToken:
    """Verify an ID token with the published JWKS and check its claims."""
    keys = KeySet.import_key_set(requests.get(document["jwks_uri"], timeout=10).json())
    decoded = jwt.decode(
        id_token, keys, algorithms=document["id_token_signing_alg_values_supported"]
    )
    options = {
        "iss": {"essential": True, "value": document["issuer"]},
        "aud": {"essential": True, "value": client_id},
    }
    claims = CodeIDToken(
        decoded.claims, decoded.header, options, {"client_id": client_id, **params}
    )
    claims.validate(leeway=5)
    return claims


def test_authlib_client_signs_in_with_pkce_and_refreshes(
    oidc_idp: LiveServer, registration: dict[str, Any]
) -> None:
    """Discovery, S256 code flow, ID token, userinfo, refresh rotation, logout."""
    document = discover(oidc_idp)
    assert document["issuer"] == oidc_idp.url
    client = OAuth2Session(
        registration["client_id"],
        registration["client_secret"],
        scope="openid profile campus",
        redirect_uri=REDIRECT_URI,
        code_challenge_method="S256",
    )
    verifier, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(12)
    url, state = client.create_authorization_url(
        document["authorization_endpoint"], code_verifier=verifier, nonce=nonce
    )
    callback = sign_in_through_browser(url)
    returned = parse_qs(urlsplit(callback).query)
    assert returned["state"] == [state] and returned["iss"] == [document["issuer"]]

    token = client.fetch_token(
        document["token_endpoint"], authorization_response=callback, code_verifier=verifier
    )
    claims = validate_id_token(
        document,
        registration["client_id"],
        token["id_token"],
        nonce=nonce,
        access_token=token["access_token"],
    )
    assert claims.header["kid"] and claims["sid"]

    info = client.get(document["userinfo_endpoint"], timeout=10).json()
    assert info["sub"] == claims["sub"] and info["preferred_username"] == ACCOUNT
    assert info["kind"] == "student"

    first_refresh = token["refresh_token"]
    refreshed = client.refresh_token(document["token_endpoint"])
    assert refreshed["refresh_token"] != first_refresh
    assert client.get(document["userinfo_endpoint"], timeout=10).status_code == 200
    replay = requests.post(
        document["token_endpoint"],
        data={"grant_type": "refresh_token", "refresh_token": first_refresh},
        auth=(registration["client_id"], registration["client_secret"]),
        timeout=10,
    )
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"

    logout = requests.get(
        document["end_session_endpoint"],
        params={"id_token_hint": token["id_token"], "post_logout_redirect_uri": REDIRECT_URI},
        allow_redirects=False,
        timeout=10,
    )
    assert logout.status_code == 302 and logout.headers["Location"] == REDIRECT_URI


def _one_sign_in(document: dict[str, Any], registration: dict[str, Any]) -> str:
    """A whole code flow by Authlib's client, signing in on the form; the ID token."""
    client = OAuth2Session(
        registration["client_id"],
        registration["client_secret"],
        scope="openid profile",
        redirect_uri=REDIRECT_URI,
        code_challenge_method="S256",
    )
    verifier = secrets.token_urlsafe(48)
    url, _ = client.create_authorization_url(
        document["authorization_endpoint"], code_verifier=verifier, nonce=secrets.token_urlsafe(8)
    )
    callback = sign_in_through_browser(url)
    token = client.fetch_token(
        document["token_endpoint"], authorization_response=callback, code_verifier=verifier
    )
    return str(token["id_token"])


def test_key_rotation_under_load_breaks_no_relying_party(
    oidc_idp: LiveServer, registration: dict[str, Any]
) -> None:
    """Sign-ins run without pause on three threads while the IdP rotates its key twice: first
    as an administrator normally does (``keys rotate``), then for a leaked key (``--now``).

    Not one sign-in fails. Every ID token verifies against the JWKS as published afterwards,
    those signed before the rotation included. And a relying party that cached the JWKS before
    the first rotation — and never fetches it again — verifies every token signed until
    ``--now``: the new key was published before it signed anything.
    """
    document = discover(oidc_idp)
    jwks = document["jwks_uri"]
    cached = KeySet.import_key_set(requests.get(jwks, timeout=10).json())
    algorithms = document["id_token_signing_alg_values_supported"]
    phase = ["before"]
    issued: list[tuple[str, str]] = []  # (phase, ID token), for sign-ins within one phase
    failures: list[str] = []
    stop = threading.Event()

    def sign_in_repeatedly() -> None:
        while not stop.is_set():
            started = phase[0]
            try:
                id_token = _one_sign_in(document, registration)
            except Exception as error:  # every failure is the finding: report them all
                failures.append(f"{started}: {error!r}")
                continue
            if phase[0] == started:
                issued.append((started, id_token))

    def enough(name: str, count: int = 3) -> None:
        deadline = time.monotonic() + 60
        while sum(1 for p, _ in issued if p == name) < count and not failures:
            assert time.monotonic() < deadline, f"too few sign-ins during {name}"
            time.sleep(0.05)

    threads = [threading.Thread(target=sign_in_repeatedly) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        enough("before")
        # A sign-in that overlaps a command belongs to no phase: which key signed it depends
        # on when the command committed.
        phase[0] = "rotating"
        oidc_idp.flask("keys", "rotate")
        phase[0] = "published"
        enough("published")
        phase[0] = "switching"
        oidc_idp.flask("keys", "rotate", "--now")
        phase[0] = "switched"
        enough("switched")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert not failures, failures

    published = KeySet.import_key_set(requests.get(jwks, timeout=10).json())
    kids: dict[str, set[str]] = {}
    for name, id_token in issued:  # those of the commands' own moments too
        kids.setdefault(name, set()).add(jwt.decode(id_token, published, algorithms).header["kid"])
        if name not in ("switching", "switched"):
            jwt.decode(id_token, cached, algorithms)  # the old cache knows the key
    assert kids["published"] == kids["before"]  # the new key had not signed yet
    assert not kids["switched"] & kids["before"]
    assert len(published.keys) == 3  # the first key, and both rotated in
