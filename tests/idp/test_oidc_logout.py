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
from joserfc import jws, jwt
from joserfc.jwk import KeySet, RSAKey

from idp.auth.models import SsoSession
from idp.clients.models import OidcClient
from idp.directory.models import utcnow
from idp.extensions import db
from idp.oidc.backchannel import wait_for_deliveries
from tests.fakes import QuietHTTPServer
from tests.idp.conftest import PASSWORD, MakeUser, post_form, sign_in
from tests.idp.oidc_support import (
    LOGOUT_URI,
    RelyingParty,
    authorize,
    authorize_url,
    bearer,
    exchange,
    expire_retired_keys,
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


@pytest.mark.parametrize("case", ["registered", "unregistered uri", "client disabled"])
def test_logout_naming_the_client_returns_after_confirmation(
    browser: FlaskClient, idp_app: Flask, case: str
) -> None:
    """Without a hint, client_id names the client: after 确认退出 the browser goes back to
    the address that client registered (with state), and to no other, nor for a disabled one."""
    rp = register(idp_app, require_pkce=False)
    uri = "https://rp.example.edu/elsewhere" if case == "unregistered uri" else LOGOUT_URI
    if case == "client disabled":
        with idp_app.app_context():
            db.session.execute(
                db.update(OidcClient).filter_by(client_id=rp.client_id).values(enabled=False)
            )
            db.session.commit()
    query = {"client_id": rp.client_id, "post_logout_redirect_uri": uri, "state": "s"}
    page = browser.get("/oauth2/logout?" + urlencode(query))
    assert page.status_code == 200 and "确认退出" in page.get_data(as_text=True)
    other = register(idp_app, require_pkce=False)
    assert still_signed_in(browser, other)
    done = post_form(browser, "/oauth2/logout", {**query, "confirm": "1"})
    if case == "registered":
        assert done.status_code == 302 and done.headers["Location"] == LOGOUT_URI + "?state=s"
    else:
        assert done.status_code == 200 and "您已安全退出" in done.get_data(as_text=True)
    assert not still_signed_in(browser, other)


def test_logout_hint_and_client_id_must_agree(browser: FlaskClient, idp_app: Flask) -> None:
    """A client_id other than the hint's audience is refused; nobody is logged out."""
    rp, other = register(idp_app, require_pkce=False), register(idp_app, require_pkce=False)
    hint = id_token_for(browser, idp_app, rp)["id_token"]
    query = {"id_token_hint": hint, "client_id": other.client_id}
    response = browser.get("/oauth2/logout?" + urlencode(query))
    assert response.status_code == 400 and "Location" not in response.headers
    assert still_signed_in(browser, rp)


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
        id_token = id_token_for(browser, idp_app, rp)["id_token"]
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


def unverified_claims(token: str) -> dict[str, Any]:
    """A JWT's claims as anyone can read them, signature unchecked."""
    return dict(json.loads(jws.extract_compact(token.encode()).payload))


def signed_elsewhere(token: str, *, same_kid: bool) -> str:
    """``token``'s claims signed by a key this provider never had (naming our kid, or its own)."""
    foreign = RSAKey.generate_key(2048, private=True)
    kid = jws.extract_compact(token.encode()).protected["kid"] if same_kid else foreign.thumbprint()
    return jwt.encode({"alg": "RS256", "kid": kid}, unverified_claims(token), foreign)


def sessions_on_record(app: Flask) -> set[str]:
    """The ids of the SSO sessions in the database."""
    with app.app_context():
        return set(db.session.scalars(db.select(SsoSession.id)))


def retire_every_key(app: Flask) -> None:
    """``keys rotate``, then let the retired keys' time in the JWKS run out."""
    assert app.test_cli_runner().invoke(args=["keys", "rotate"]).exit_code == 0
    expire_retired_keys(app)


def test_expired_hint_signed_by_a_key_gone_from_the_jwks_still_logs_out(
    browser: FlaskClient, idp_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ID token kept since sign-in, expired, its key rotated out of the JWKS since, still
    ends the session and returns to the client (RP-Initiated Logout §2: accept expired ones)."""
    rp = register(idp_app, require_pkce=False)
    monkeypatch.setitem(idp_app.config, "OIDC_ID_TOKEN_TTL", -60)  # expired when issued
    hint = id_token_for(browser, idp_app, rp)["id_token"]
    monkeypatch.undo()
    retire_every_key(idp_app)
    published = {key["kid"] for key in browser.get("/oauth2/jwks").get_json()["keys"]}
    assert jws.extract_compact(hint.encode()).protected["kid"] not in published
    assert unverified_claims(hint)["exp"] < time.time()

    query = {"id_token_hint": hint, "post_logout_redirect_uri": LOGOUT_URI, "state": "bye"}
    response = browser.get("/oauth2/logout?" + urlencode(query))
    assert response.status_code == 302 and response.headers["Location"] == LOGOUT_URI + "?state=bye"
    assert not still_signed_in(browser, rp)


@pytest.mark.parametrize("spoiled", ["foreign key", "bad signature", "client disabled"])
def test_unverifiable_hint_is_treated_as_absent(
    browser: FlaskClient, idp_app: Flask, spoiled: str
) -> None:
    """A hint no key of ours verifies, or for a client since disabled, neither dead-ends the
    person nor logs them out unasked: they confirm, and stay here (no post-logout redirect)."""
    rp, other = register(idp_app, require_pkce=False), register(idp_app, require_pkce=False)
    hint = id_token_for(browser, idp_app, rp)["id_token"]
    if spoiled == "client disabled":
        with idp_app.app_context():
            db.session.execute(
                db.update(OidcClient).filter_by(client_id=rp.client_id).values(enabled=False)
            )
            db.session.commit()
    else:
        hint = signed_elsewhere(hint, same_kid=spoiled == "bad signature")
    query = {"id_token_hint": hint, "post_logout_redirect_uri": LOGOUT_URI, "state": "s"}

    page = browser.get("/oauth2/logout?" + urlencode(query))
    assert page.status_code == 200 and "确认退出" in page.get_data(as_text=True)
    assert still_signed_in(browser, other)
    done = post_form(browser, "/oauth2/logout", {**query, "confirm": "1"})
    assert done.status_code == 200 and "Location" not in done.headers
    assert "您已安全退出" in done.get_data(as_text=True)
    assert not still_signed_in(browser, other)


def test_cross_site_post_logout_ends_the_session_its_hint_names(
    browser: FlaskClient, idp_app: Flask, receiver: Receiver
) -> None:
    """A form POSTed from the client's site comes without the SameSite=Lax cookie: the hint's
    sid names the session, which ends as at any sign-out; the person's other browser stays."""
    rp = register(idp_app, require_pkce=False, backchannel_logout_uri=receiver.url)
    tokens = id_token_for(browser, idp_app, rp)
    id_claims = verify_id_token(browser, idp_app, rp, tokens["id_token"])
    laptop = idp_app.test_client()
    sign_in(laptop, "2024000555")
    id_token_for(laptop, idp_app, rp)

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


def test_cross_site_post_logout_finds_the_session_after_a_new_sign_in(
    browser: FlaskClient, idp_app: Flask
) -> None:
    """Signing in again (prompt=login) gives the session a new id; the sid the client holds
    from before still names it."""
    rp = register(idp_app, require_pkce=False)
    hint = id_token_for(browser, idp_app, rp)["id_token"]
    before = sessions_on_record(idp_app)
    sign_in(browser, "2024000555", PASSWORD)
    after = sessions_on_record(idp_app)
    assert len(after) == 1 and after != before and still_signed_in(browser, rp)

    response = idp_app.test_client().post("/oauth2/logout", data={"id_token_hint": hint})
    assert response.status_code == 200 and not still_signed_in(browser, rp)


def test_cross_site_post_logout_with_an_unverifiable_hint_ends_nothing(
    browser: FlaskClient, idp_app: Flask
) -> None:
    """Without the cookie, only a hint we verify may end a session: a forged one is ignored."""
    rp = register(idp_app, require_pkce=False)
    hint = signed_elsewhere(id_token_for(browser, idp_app, rp)["id_token"], same_kid=True)
    form = {"id_token_hint": hint, "post_logout_redirect_uri": LOGOUT_URI, "state": "s"}
    response = idp_app.test_client().post("/oauth2/logout", data=form)
    assert response.status_code == 200 and "Location" not in response.headers
    assert still_signed_in(browser, rp)
