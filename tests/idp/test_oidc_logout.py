"""Logout: RP-initiated logout at /oauth2/logout, and back-channel logout tokens POSTed to a
real HTTP server whenever an SSO session ends."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlencode

import pytest
from flask import Flask
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import KeySet

from idp.auth.models import SsoSession
from idp.directory.models import utcnow
from idp.extensions import db
from idp.oidc.backchannel import wait_for_deliveries
from tests.fakes import QuietHTTPServer
from tests.idp.conftest import MakeUser, post_form, sign_in
from tests.idp.oidc_support import (
    LOGOUT_URI,
    RelyingParty,
    authorize,
    authorize_url,
    bearer,
    exchange,
    redirect_params,
    register,
    token_request,
    verify_id_token,
)

EVENT = "http://schemas.openid.net/event/backchannel-logout"


class Receiver:
    """A relying party's back-channel logout endpoint: a real server on 127.0.0.1."""

    def __init__(self, status: int = 200) -> None:
        self.tokens: queue.Queue[str] = queue.Queue()
        received = self.tokens

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = parse_qs(self.rfile.read(length).decode())
                received.put(body.get("logout_token", [""])[0])
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = QuietHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/backchannel"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def next_token(self, timeout: float = 5) -> str:
        return self.tokens.get(timeout=timeout)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A working back-channel endpoint."""
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def browser(idp_client: FlaskClient, make_user: MakeUser) -> FlaskClient:
    """A browser signed in as a student."""
    sign_in(idp_client, make_user("2024000555").account)
    return idp_client


def id_token_for(browser: FlaskClient, app: Flask, rp: RelyingParty) -> dict[str, Any]:
    """Sign in to ``rp``; returns the token response."""
    response = exchange(browser, rp, authorize(browser, rp))
    assert response.status_code == 200
    return dict(response.get_json())


def still_signed_in(browser: FlaskClient, rp: RelyingParty) -> bool:
    """Whether prompt=none still gets a code (the SSO session lives)."""
    got = redirect_params(browser.get(authorize_url(rp, prompt="none", code_challenge=None)))
    return "code" in got


def verify_logout_token(client: FlaskClient, app: Flask, token: str) -> dict[str, Any]:
    """Check a logout token as the OIDC Back-Channel Logout spec asks a relying party to."""
    keys = KeySet.import_key_set(client.get("/oauth2/jwks").get_json())
    decoded = jwt.decode(token, keys, algorithms=["RS256", "ES256"])
    assert decoded.header["typ"] == "logout+jwt" and decoded.header["kid"]
    claims = dict(decoded.claims)
    assert claims["iss"] == app.config["ISSUER"] and "nonce" not in claims
    assert claims["events"] == {EVENT: {}} and claims["jti"]
    assert abs(claims["iat"] - time.time()) < 30
    return claims


def test_rp_initiated_logout_returns_to_registered_uri_with_state(
    browser: FlaskClient, idp_app: Flask
) -> None:
    """With a valid id_token_hint the session ends and the browser goes back, state kept."""
    rp = register(idp_app, require_pkce=False)
    tokens = id_token_for(browser, idp_app, rp)
    query = urlencode(
        {
            "id_token_hint": tokens["id_token"],
            "post_logout_redirect_uri": LOGOUT_URI,
            "state": "bye",
        }
    )
    response = browser.get("/oauth2/logout?" + query)
    assert response.status_code == 302 and response.headers["Location"] == LOGOUT_URI + "?state=bye"
    assert not still_signed_in(browser, rp)
    assert (
        browser.get("/oauth2/userinfo", headers=bearer(tokens["access_token"])).status_code == 401
    )


def test_unregistered_post_logout_uri_is_not_followed(browser: FlaskClient, idp_app: Flask) -> None:
    """An unregistered post_logout_redirect_uri ends the session but shows our own page."""
    rp = register(idp_app, require_pkce=False)
    tokens = id_token_for(browser, idp_app, rp)
    query = urlencode(
        {"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": "https://evil.example/"}
    )
    response = browser.get("/oauth2/logout?" + query)
    assert response.status_code == 200 and "您已安全退出" in response.get_data(as_text=True)
    assert not still_signed_in(browser, rp)


def test_logout_without_hint_asks_first(browser: FlaskClient, idp_app: Flask) -> None:
    """Without an id_token_hint the person confirms (with a CSRF-protected form)."""
    rp = register(idp_app, require_pkce=False)
    page = browser.get("/oauth2/logout")
    assert page.status_code == 200 and "确认退出" in page.get_data(as_text=True)
    assert still_signed_in(browser, rp)
    forged = browser.post("/oauth2/logout", data={"confirm": "1"})
    assert "确认退出" in forged.get_data(as_text=True) and still_signed_in(browser, rp)
    done = post_form(browser, "/oauth2/logout", {"confirm": "1"})
    assert done.status_code == 200 and not still_signed_in(browser, rp)


@pytest.mark.parametrize("hint", ["not-a-jwt", "a.b.c", "eyJhbGciOiJub25lIn0.e30."])
def test_malformed_id_token_hint_is_refused(
    browser: FlaskClient, idp_app: Flask, hint: str
) -> None:
    """A malformed id_token_hint gets a 400 page; nobody is logged out, nothing crashes."""
    rp = register(idp_app, require_pkce=False)
    response = browser.get("/oauth2/logout?" + urlencode({"id_token_hint": hint}))
    assert response.status_code == 400 and "Location" not in response.headers
    assert still_signed_in(browser, rp)


def test_backchannel_logout_token_after_rp_logout(
    browser: FlaskClient, idp_app: Flask, receiver: Receiver
) -> None:
    """/oauth2/logout POSTs a signed logout token with the ID token's sid and sub."""
    rp = register(idp_app, require_pkce=False, backchannel_logout_uri=receiver.url)
    tokens = id_token_for(browser, idp_app, rp)
    id_claims = verify_id_token(browser, idp_app, rp, tokens["id_token"])
    browser.get("/oauth2/logout?" + urlencode({"id_token_hint": tokens["id_token"]}))
    claims = verify_logout_token(browser, idp_app, receiver.next_token())
    assert claims["aud"] == rp.client_id
    assert (claims["sid"], claims["sub"]) == (id_claims["sid"], id_claims["sub"])


def test_backchannel_logout_after_signing_out_at_the_idp(
    browser: FlaskClient, idp_app: Flask, receiver: Receiver
) -> None:
    """/logout at the IdP tells every client of the session; refresh tokens stop working."""
    rp = register(idp_app, require_pkce=False, backchannel_logout_uri=receiver.url)
    tokens = id_token_for(browser, idp_app, rp)
    post_form(browser, "/logout", {})
    claims = verify_logout_token(browser, idp_app, receiver.next_token())
    assert claims["aud"] == rp.client_id
    from tests.idp.oidc_support import token_request

    refreshed = token_request(
        browser, rp, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.get_json()["error"] == "invalid_grant"


def test_failing_backchannel_endpoint_does_not_block(
    browser: FlaskClient, idp_app: Flask, receiver: Receiver
) -> None:
    """A client answering 500 delays neither the logout nor the other clients."""
    broken = Receiver(status=500)
    try:
        bad = register(idp_app, require_pkce=False, backchannel_logout_uri=broken.url, name="坏")
        good = register(idp_app, require_pkce=False, backchannel_logout_uri=receiver.url)
        id_token_for(browser, idp_app, bad)
        id_token_for(browser, idp_app, good)
        started = time.monotonic()
        response = post_form(browser, "/logout", {})
        assert response.status_code == 302 and time.monotonic() - started < 2
        claims = verify_logout_token(browser, idp_app, receiver.next_token())
        assert claims["aud"] == good.client_id
        broken.next_token()
        broken.next_token()  # retried
        assert wait_for_deliveries(10)
    finally:
        broken.close()


def test_unreachable_backchannel_endpoint_does_not_block(
    browser: FlaskClient, idp_app: Flask
) -> None:
    """A client whose endpoint refuses connections does not delay the logout."""
    gone = Receiver()
    url = gone.url
    gone.close()
    rp = register(idp_app, require_pkce=False, backchannel_logout_uri=url)
    id_token_for(browser, idp_app, rp)
    started = time.monotonic()
    assert post_form(browser, "/logout", {}).status_code == 302
    assert time.monotonic() - started < 2
    assert wait_for_deliveries(10)


def test_backchannel_logout_when_the_session_times_out(
    browser: FlaskClient, idp_app: Flask, receiver: Receiver
) -> None:
    """A session that ends idle is ended by ``purge`` like a sign-out: told once, tokens die."""
    rp = register(idp_app, require_pkce=False, backchannel_logout_uri=receiver.url)
    tokens = id_token_for(browser, idp_app, rp)
    id_claims = verify_id_token(browser, idp_app, rp, tokens["id_token"])
    idle = timedelta(seconds=idp_app.config["SESSION_IDLE_TIMEOUT"] + 1)
    with idp_app.app_context():
        db.session.execute(db.update(SsoSession).values(last_seen_at=utcnow() - idle))
        db.session.commit()

    purge = idp_app.test_cli_runner().invoke(args=["purge", "--json"])
    assert json.loads(purge.stdout)["sessions"] == 1, purge.output
    claims = verify_logout_token(browser, idp_app, receiver.next_token())
    assert (claims["aud"], claims["sid"], claims["sub"]) == (
        rp.client_id,
        id_claims["sid"],
        id_claims["sub"],
    )
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    assert token_request(browser, rp, refresh).get_json()["error"] == "invalid_grant"
    assert (
        browser.get("/oauth2/userinfo", headers=bearer(tokens["access_token"])).status_code == 401
    )

    again = idp_app.test_cli_runner().invoke(args=["purge", "--json"])
    assert json.loads(again.stdout)["sessions"] == 0
    assert wait_for_deliveries(10) and receiver.tokens.empty()
