"""RP-initiated logout at /oauth2/logout: with and without an id_token_hint, naming the
client, expired or unverifiable hints, and cross-site POSTs without the SSO cookie."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from flask import Flask
from flask.testing import FlaskClient
from joserfc import jws, jwt
from joserfc.jwk import RSAKey

from idp.auth.models import SsoSession
from idp.clients.models import OidcClient
from idp.directory.models import utcnow
from idp.extensions import db
from idp.oidc.models import OAuthToken
from tests.idp.conftest import PASSWORD, MakeUser, post_form, sign_in
from tests.idp.oidc_support import (
    LOGOUT_URI,
    authorize,
    bearer,
    exchange,
    expire_retired_keys,
    register,
    still_signed_in,
    token_request,
    tokens_for,
)


@pytest.fixture
def browser(idp_client: FlaskClient, make_user: MakeUser) -> FlaskClient:
    """A browser signed in as a student."""
    sign_in(idp_client, make_user("2024000555").account)
    return idp_client


def test_rp_initiated_logout_returns_to_registered_uri_with_state(
    browser: FlaskClient, idp_app: Flask
) -> None:
    """With a valid id_token_hint the session ends and the browser goes back, state kept."""
    rp = register(idp_app, require_pkce=False)
    tokens = tokens_for(browser, rp)
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
    tokens = tokens_for(browser, rp)
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


def test_logout_naming_the_client_when_signed_out_stays_here(
    browser: FlaskClient, idp_app: Flask
) -> None:
    """Signed out already, nothing is asked, so nobody confirmed: without a verified hint the
    browser is not sent to the client's address (with a state nobody checked)."""
    rp = register(idp_app, require_pkce=False)
    assert post_form(browser, "/logout", {}).status_code in (200, 302)
    assert not still_signed_in(browser, rp)
    query = {"client_id": rp.client_id, "post_logout_redirect_uri": LOGOUT_URI, "state": "s"}
    response = browser.get("/oauth2/logout?" + urlencode(query))
    assert response.status_code == 200 and "Location" not in response.headers
    assert "您已安全退出" in response.get_data(as_text=True)


def test_logout_hint_and_client_id_must_agree(browser: FlaskClient, idp_app: Flask) -> None:
    """A client_id other than the hint's audience is refused; nobody is logged out."""
    rp, other = register(idp_app, require_pkce=False), register(idp_app, require_pkce=False)
    hint = tokens_for(browser, rp)["id_token"]
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
    hint = tokens_for(browser, rp)["id_token"]
    monkeypatch.undo()
    retire_every_key(idp_app)
    published = {key["kid"] for key in browser.get("/oauth2/jwks").get_json()["keys"]}
    assert jws.extract_compact(hint.encode()).protected["kid"] not in published
    assert unverified_claims(hint)["exp"] < time.time()

    query = {"id_token_hint": hint, "post_logout_redirect_uri": LOGOUT_URI, "state": "bye"}
    response = browser.get("/oauth2/logout?" + urlencode(query))
    assert response.status_code == 302 and response.headers["Location"] == LOGOUT_URI + "?state=bye"
    assert not still_signed_in(browser, rp)


@pytest.mark.parametrize("named", [False, True], ids=["no client_id", "client_id"])
@pytest.mark.parametrize("spoiled", ["foreign key", "bad signature", "client disabled"])
def test_unverifiable_hint_is_treated_as_absent(
    browser: FlaskClient, idp_app: Flask, spoiled: str, named: bool
) -> None:
    """A hint no key of ours verifies, or for a client since disabled, neither dead-ends the
    person nor logs them out unasked: they confirm, and stay here (no post-logout redirect),
    even when the request names a live client that registered the address (§4)."""
    rp, other = register(idp_app, require_pkce=False), register(idp_app, require_pkce=False)
    hint = tokens_for(browser, rp)["id_token"]
    if spoiled == "client disabled":
        with idp_app.app_context():
            db.session.execute(
                db.update(OidcClient).filter_by(client_id=rp.client_id).values(enabled=False)
            )
            db.session.commit()
    else:
        hint = signed_elsewhere(hint, same_kid=spoiled == "bad signature")
    query = {"id_token_hint": hint, "post_logout_redirect_uri": LOGOUT_URI, "state": "s"}
    if named:
        query["client_id"] = other.client_id

    page = browser.get("/oauth2/logout?" + urlencode(query))
    assert page.status_code == 200 and "确认退出" in page.get_data(as_text=True)
    assert still_signed_in(browser, other)
    done = post_form(browser, "/oauth2/logout", {**query, "confirm": "1"})
    assert done.status_code == 200 and "Location" not in done.headers
    assert "您已安全退出" in done.get_data(as_text=True)
    assert not still_signed_in(browser, other)


def test_cross_site_post_logout_finds_the_session_after_a_new_sign_in(
    browser: FlaskClient, idp_app: Flask
) -> None:
    """Signing in again (prompt=login) gives the session a new id; the sid the client holds
    from before still names it."""
    rp = register(idp_app, require_pkce=False)
    hint = tokens_for(browser, rp)["id_token"]
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
    hint = signed_elsewhere(tokens_for(browser, rp)["id_token"], same_kid=True)
    form = {"id_token_hint": hint, "post_logout_redirect_uri": LOGOUT_URI, "state": "s"}
    response = idp_app.test_client().post("/oauth2/logout", data=form)
    assert response.status_code == 200 and "Location" not in response.headers
    assert still_signed_in(browser, rp)


def test_code_issued_before_signing_out_issues_no_tokens(
    browser: FlaskClient, idp_app: Flask
) -> None:
    """A code whose sign-in has ended (the browser signed out at /logout before the client
    exchanged it) is invalid_grant: no tokens outlive the session."""
    rp = register(idp_app)
    authz = authorize(browser, rp)
    assert post_form(browser, "/logout", {}).status_code in (200, 302)
    response = exchange(browser, rp, authz)
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_grant"
    with idp_app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(OAuthToken)) == 0


def test_code_survives_signing_in_again(browser: FlaskClient, idp_app: Flask) -> None:
    """Signing in again (prompt=login) continues the session: codes issued before and after
    both exchange for tokens."""
    rp = register(idp_app)
    before = authorize(browser, rp)
    sign_in(browser, "2024000555", PASSWORD)
    after = authorize(browser, rp)
    for authz in (before, after):
        response = exchange(browser, rp, authz)
        assert response.status_code == 200, response.get_data(as_text=True)


@pytest.mark.parametrize("ended_by", ["idleness", "its absolute end"])
def test_refresh_token_of_an_ended_sign_in_refreshes_nothing(
    browser: FlaskClient, idp_app: Flask, ended_by: str
) -> None:
    """A sign-in idle too long or past its end refreshes nothing, even before the hourly
    purge revokes its tokens (invalid_grant, as its codes would get)."""
    rp = register(idp_app)
    tokens = tokens_for(browser, rp)
    past = utcnow() - timedelta(seconds=idp_app.config["SESSION_IDLE_TIMEOUT"] + 1)
    with idp_app.app_context():
        field = "last_seen_at" if ended_by == "idleness" else "expires_at"
        db.session.execute(db.update(SsoSession).values({field: past}))
        db.session.commit()
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    response = token_request(browser, rp, refresh)
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_grant"
