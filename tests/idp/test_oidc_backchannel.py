"""Back-channel logout: logout tokens POSTed to a real HTTP server whenever an SSO session
ends — by RP-initiated logout, by signing out at the IdP, or by timing out — never blocking it."""

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
from joserfc import jws, jwt
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
    bearer,
    register,
    still_signed_in,
    token_request,
    tokens_for,
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


def signed_in_to_listener(
    browser: FlaskClient, app: Flask, receiver: Receiver
) -> tuple[RelyingParty, dict[str, str], dict[str, Any]]:
    """Sign in to a client whose back-channel endpoint is ``receiver``: the client, its token
    response and the verified claims of its ID token."""
    rp = register(app, require_pkce=False, backchannel_logout_uri=receiver.url)
    tokens = tokens_for(browser, rp)
    return rp, tokens, verify_id_token(browser, app, rp, tokens["id_token"])


def test_backchannel_logout_token_after_rp_logout(
    browser: FlaskClient, idp_app: Flask, receiver: Receiver
) -> None:
    """/oauth2/logout POSTs a signed logout token with the ID token's sid and sub."""
    rp, tokens, id_claims = signed_in_to_listener(browser, idp_app, receiver)
    browser.get("/oauth2/logout?" + urlencode({"id_token_hint": tokens["id_token"]}))
    claims = verify_logout_token(browser, idp_app, receiver.next_token())
    assert claims["aud"] == rp.client_id
    assert (claims["sid"], claims["sub"]) == (id_claims["sid"], id_claims["sub"])


def test_token_response_names_the_session_a_logout_token_will_name(
    browser: FlaskClient, idp_app: Flask, receiver: Receiver
) -> None:
    """``session_state`` in the code exchange's answer is the sid that the ID token and, at
    sign-out, the logout token carry: Keycloak's identity brokering keys its session by it,
    and without it a brokered sign-in is never signed out."""
    _, tokens, id_claims = signed_in_to_listener(browser, idp_app, receiver)
    assert tokens["session_state"] == id_claims["sid"]
    post_form(browser, "/logout", {})
    claims = verify_logout_token(browser, idp_app, receiver.next_token())
    assert claims["sid"] == tokens["session_state"]


def test_backchannel_logout_token_is_signed_like_the_clients_id_tokens(
    browser: FlaskClient, idp_app: Flask, receiver: Receiver
) -> None:
    """A client registered for ES256 gets ES256 logout tokens; one that named no algorithm,
    RS256 — each with the kid its ID tokens carry."""
    assert (
        idp_app.test_cli_runner().invoke(args=["keys", "rotate", "--alg", "ES256"]).exit_code == 0
    )
    es_rp = register(
        idp_app, require_pkce=False, backchannel_logout_uri=receiver.url, id_token_alg="ES256"
    )
    rs_rp = register(
        idp_app, require_pkce=False, backchannel_logout_uri=receiver.url, name="图书馆"
    )
    headers = {}
    for rp in (es_rp, rs_rp):
        id_token = tokens_for(browser, rp)["id_token"]
        header = verify_id_token(browser, idp_app, rp, id_token).header
        headers[rp.client_id] = (header["alg"], header["kid"])
    post_form(browser, "/logout", {})
    logout_tokens = [receiver.next_token(), receiver.next_token()]
    signed = {}
    for token in logout_tokens:
        claims = verify_logout_token(browser, idp_app, token)
        header = jws.extract_compact(token.encode()).protected
        signed[claims["aud"]] = (header["alg"], header["kid"])
    assert signed == headers
    assert headers[es_rp.client_id][0] == "ES256" and headers[rs_rp.client_id][0] == "RS256"


def test_backchannel_logout_after_signing_out_at_the_idp(
    browser: FlaskClient, idp_app: Flask, receiver: Receiver
) -> None:
    """/logout at the IdP tells every client of the session; refresh tokens stop working."""
    rp = register(idp_app, require_pkce=False, backchannel_logout_uri=receiver.url)
    tokens = tokens_for(browser, rp)
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
        tokens_for(browser, bad)
        tokens_for(browser, good)
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
    tokens_for(browser, rp)
    started = time.monotonic()
    assert post_form(browser, "/logout", {}).status_code == 302
    assert time.monotonic() - started < 2
    assert wait_for_deliveries(10)


def test_backchannel_logout_when_the_session_times_out(
    browser: FlaskClient, idp_app: Flask, receiver: Receiver
) -> None:
    """A session that ends idle is ended by ``purge`` like a sign-out: told once, tokens die."""
    rp, tokens, id_claims = signed_in_to_listener(browser, idp_app, receiver)
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


def test_cross_site_post_logout_ends_the_session_its_hint_names(
    browser: FlaskClient, idp_app: Flask, receiver: Receiver
) -> None:
    """A form POSTed from the client's site comes without the SameSite=Lax cookie: the hint's
    sid names the session, which ends as at any sign-out; the person's other browser stays."""
    rp, tokens, id_claims = signed_in_to_listener(browser, idp_app, receiver)
    laptop = idp_app.test_client()
    sign_in(laptop, "2024000555")
    tokens_for(laptop, rp)

    form = {"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": LOGOUT_URI}
    response = idp_app.test_client().post("/oauth2/logout", data={**form, "state": "bye"})
    assert response.status_code == 302 and response.headers["Location"] == LOGOUT_URI + "?state=bye"
    assert not still_signed_in(browser, rp) and still_signed_in(laptop, rp)
    claims = verify_logout_token(browser, idp_app, receiver.next_token())
    assert (claims["sid"], claims["sub"]) == (id_claims["sid"], id_claims["sub"])
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    assert token_request(browser, rp, refresh).get_json()["error"] == "invalid_grant"

    again = idp_app.test_client().post("/oauth2/logout", data=form)
    assert again.status_code == 302 and still_signed_in(laptop, rp)  # no live session: redirect
    assert wait_for_deliveries(10) and receiver.tokens.empty()
