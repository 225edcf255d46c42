"""The certified Node ``openid-client`` v6 (npm) against the IdP as a live server.

``tests/interop/node/rp.mjs`` is the relying party: discovery (over http, allowed with
``allowInsecureRequests``), an S256 PKCE authorization request with state and nonce, the code
exchange with the ID token's signature verified against the JWKS
(``enableNonRepudiationChecks``), claim checks, userinfo and a refresh. This test plays the
browser: it signs in on /login with ``requests`` and hands the redirect back to the script.

The Node packages come from ``tests/interop/node/package-lock.json`` (``npm ci``, done by
``make test`` and ``.ci/run``). Without Node or ``node_modules`` the tests are skipped locally;
under CI (``CI`` set) a missing ``node_modules`` is a failure.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit, urlunsplit

import pytest
import requests

from tests.conftest import TEST_REDIS_URL, MakeDatabaseUrl, flush_redis_prefix
from tests.e2e.conftest import ROOT, LiveServer, _server_env, free_port

NODE_DIR = ROOT / "tests" / "interop" / "node"
NODE = shutil.which("node")
#: A demo account (``flask --app idp demo``).
ACCOUNT, PASSWORD = "2024000001", "Hongliu2024demo"
#: Never contacted: the test stops at the redirect and reads its Location header.
REDIRECT_URI = "http://localhost:9/openid-client/callback"
SCOPE = "openid profile campus"
TIMEOUT = 60


def _node_missing() -> str | None:
    """Why the Node relying party cannot run, or None."""
    if NODE is None:
        return "node is not installed"
    if not (NODE_DIR / "node_modules" / "openid-client").is_dir():
        return (
            "tests/interop/node/node_modules is missing: "
            "run `npm ci --prefix tests/interop/node` (make test does it)"
        )
    return None


@pytest.fixture(scope="module", autouse=True)
def _node_available() -> None:
    reason = _node_missing()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: the openid-client interop test must run)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def oidc_idp(
    make_database_url: MakeDatabaseUrl, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A live IdP whose IDP_ISSUER is its own address, as relying parties must see it."""
    instance = tmp_path_factory.mktemp("interop_openid_client")
    port = free_port()
    env = _server_env("IDP", make_database_url("interop_openid_client"), instance)
    env["IDP_ISSUER"] = f"http://127.0.0.1:{port}"
    server = LiveServer("idp", env, instance / "server.log", port=port)
    server.start()
    yield server
    server.stop()
    prefix = env.get("IDP_STORE_PREFIX")
    if TEST_REDIS_URL and prefix:
        flush_redis_prefix(TEST_REDIS_URL, prefix)


@pytest.fixture(scope="module")
def registration(oidc_idp: LiveServer) -> dict[str, Any]:
    """A confidential client (client_secret_basic, PKCE required) via the real command line."""
    client = oidc_idp.add_oidc_client(
        "openid-client 互通测试", "--first-party", "--redirect-uri", REDIRECT_URI
    )
    assert client["client_secret"] and client["require_pkce"]
    return client


class RelyingParty:
    """``node rp.mjs`` as a child process speaking one JSON object per line."""

    def __init__(self, server: LiveServer, client: dict[str, Any]) -> None:
        assert NODE is not None
        self.process = subprocess.Popen(
            [NODE, str(NODE_DIR / "rp.mjs")],
            cwd=NODE_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.deadline = time.monotonic() + TIMEOUT
        self.send(
            {
                "issuer": server.url,
                "client_id": client["client_id"],
                "client_secret": client["client_secret"],
                "redirect_uri": REDIRECT_URI,
                "scope": SCOPE,
                "token_endpoint_auth_method": client["token_endpoint_auth_method"],
            }
        )

    def send(self, value: dict[str, Any] | str) -> None:
        assert self.process.stdin is not None
        line = value if isinstance(value, str) else json.dumps(value)
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def receive(self) -> dict[str, Any]:
        """The next JSON line the script prints, within the overall timeout."""
        assert self.process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout=max(0.0, self.deadline - time.monotonic())):
                self.close()
                raise AssertionError(f"rp.mjs printed nothing in {TIMEOUT} s")
        line = self.process.stdout.readline()
        if not line:
            raise AssertionError(f"rp.mjs ended without output: {self.finish()[1]}")
        return dict(json.loads(line))

    def finish(self) -> tuple[int, str]:
        """Wait for the script to end; its exit status and stderr."""
        assert self.process.stdin is not None and self.process.stderr is not None
        self.process.stdin.close()
        try:
            status = self.process.wait(timeout=max(1.0, self.deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.close()
            raise
        return status, self.process.stderr.read()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def relying_party(oidc_idp: LiveServer, registration: dict[str, Any]) -> Iterator[RelyingParty]:
    party = RelyingParty(oidc_idp, registration)
    yield party
    party.close()


def sign_in_through_browser(authorization_url: str) -> str:
    """Follow the authorization request like a browser, signing in on /login; returns the
    redirect back to the client (never followed)."""
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


def authorize(party: RelyingParty) -> tuple[dict[str, Any], dict[str, list[str]], str]:
    """The script's authorization request, checked, and the callback URL it leads to."""
    started = party.receive()
    assert "authorization_url" in started, started
    request = parse_qs(urlsplit(started["authorization_url"]).query)
    assert request["response_type"] == ["code"]
    assert request["code_challenge_method"] == ["S256"] and request["code_challenge"]
    assert request["state"] == [started["state"]] and request["nonce"] == [started["nonce"]]
    callback = sign_in_through_browser(started["authorization_url"])
    return started, parse_qs(urlsplit(callback).query), callback


def test_openid_client_code_flow_with_pkce_userinfo_and_refresh(
    oidc_idp: LiveServer, registration: dict[str, Any], relying_party: RelyingParty
) -> None:
    """Discovery, S256 code flow, signed ID token, userinfo and refresh, all accepted."""
    started, returned, callback = authorize(relying_party)
    assert returned["state"] == [started["state"]] and returned["iss"] == [oidc_idp.url]
    relying_party.send(callback)
    result = relying_party.receive()
    status, stderr = relying_party.finish()
    assert status == 0 and "error" not in result, (result, stderr)

    claims = result["id_token_claims"]
    assert result["sub"] == claims["sub"] and claims["iss"] == oidc_idp.url
    assert registration["client_id"] in (
        claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    )
    assert claims["nonce"] == started["nonce"]
    assert result["id_token_header"]["kid"] and result["id_token_header"]["alg"] == "RS256"
    assert result["token_type"].lower() == "bearer"

    info = result["userinfo"]
    assert info["sub"] == result["sub"] and info["preferred_username"] == ACCOUNT
    assert info["kind"] == "student"

    assert result["refreshed"] is True and result["refresh_rotated"] is True
    assert result["refreshed_userinfo"]["sub"] == result["sub"]


def test_openid_client_rejects_a_tampered_state(relying_party: RelyingParty) -> None:
    """A callback whose state is not the one sent is refused before any code exchange."""
    started, returned, callback = authorize(relying_party)
    parts = urlsplit(callback)
    tampered = {key: values[0] for key, values in returned.items()}
    tampered["state"] = started["state"][::-1] + "x"
    relying_party.send(urlunsplit(parts._replace(query=urlencode(tampered))))
    result = relying_party.receive()
    status, stderr = relying_party.finish()
    assert status == 1, (result, stderr)
    assert result["code"] == "OAUTH_INVALID_RESPONSE", result
    assert result["cause"]["message"] == 'unexpected "state" response parameter value', result
    assert "sub" not in result
