"""The token side of OpenID Connect: PKCE, codes, refresh rotation, client authentication,
client credentials, introspection and revocation — every bad input gets its RFC error."""

from __future__ import annotations

import json
import time

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.datastructures import MultiDict

from idp.clients.models import OidcClient
from idp.directory.models import utcnow
from idp.extensions import db
from idp.oidc.adapters import PresentedToken, code_key
from idp.oidc.grants import RotatingRefreshTokenGrant
from idp.oidc.models import OAuthToken
from shared.factory import get_store
from tests.idp.conftest import MakeUser, sign_in
from tests.idp.oidc_support import (
    RelyingParty,
    authorize,
    authorize_url,
    basic,
    bearer,
    exchange,
    pkce_pair,
    redirect_params,
    register,
    token_request,
    tokens_for,
    userinfo_status,
)


@pytest.fixture
def browser(idp_client: FlaskClient, make_user: MakeUser) -> FlaskClient:
    """A browser signed in as a student."""
    user = make_user("2024000888")
    sign_in(idp_client, user.account)
    return idp_client


@pytest.fixture
def rp(idp_app: Flask) -> RelyingParty:
    """A confidential client that requires PKCE (the default)."""
    return register(idp_app)


def test_plain_pkce_is_refused(browser: FlaskClient, rp: RelyingParty) -> None:
    """code_challenge_method=plain, or a challenge without a method, is invalid_request."""
    verifier, _ = pkce_pair()
    for method in ("plain", None):
        url = authorize_url(rp, code_challenge=verifier, code_challenge_method=method)
        got = redirect_params(browser.get(url))
        assert got["error"] == "invalid_request"
        assert "code_challenge_method" in got["error_description"]


def test_missing_challenge_is_refused_when_required(
    browser: FlaskClient, idp_app: Flask, rp: RelyingParty
) -> None:
    """A client registered with PKCE, or a public client, must send a challenge."""
    public = register(idp_app, public=True)
    for client in (rp, public):
        got = redirect_params(browser.get(authorize_url(client, code_challenge=None)))
        assert got["error"] == "invalid_request" and "code_challenge" in got["error_description"]


def test_public_client_completes_flow_with_pkce_and_no_secret(
    browser: FlaskClient, idp_app: Flask
) -> None:
    """A public client authenticates with its client_id and the verifier only."""
    public = register(idp_app, public=True)
    tokens = tokens_for(browser, public)
    assert tokens["id_token"] and tokens["refresh_token"]


def test_wrong_verifier_is_invalid_grant(browser: FlaskClient, rp: RelyingParty) -> None:
    """A verifier that does not match the challenge fails with invalid_grant."""
    authz = authorize(browser, rp)
    response = exchange(browser, rp, authz, code_verifier=pkce_pair()[0])
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_grant"


def test_missing_verifier_is_refused(browser: FlaskClient, rp: RelyingParty) -> None:
    """A code issued with a challenge needs the verifier."""
    authz = authorize(browser, rp)
    authz.verifier = None
    response = exchange(browser, rp, authz)
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_request"


def test_verifier_without_challenge_is_a_refused_downgrade(
    browser: FlaskClient, idp_app: Flask
) -> None:
    """A code_verifier for a code issued without a challenge is refused (RFC 9700 §4.8)."""
    legacy = register(idp_app, require_pkce=False)
    authz = authorize(browser, legacy, pkce=False)
    response = exchange(browser, legacy, authz, code_verifier=pkce_pair()[0])
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_request"


def test_reused_code_is_invalid_grant_and_revokes_its_tokens(
    browser: FlaskClient, rp: RelyingParty
) -> None:
    """oidcc-codereuse: the second exchange fails and the first tokens stop working."""
    authz = authorize(browser, rp)
    first = exchange(browser, rp, authz).get_json()
    assert userinfo_status(browser, first["access_token"]) == 200
    again = exchange(browser, rp, authz)
    assert again.status_code == 400 and again.get_json()["error"] == "invalid_grant"
    assert userinfo_status(browser, first["access_token"]) == 401
    refresh = token_request(
        browser, rp, {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    )
    assert refresh.get_json()["error"] == "invalid_grant"


def test_expired_code_is_invalid_grant(
    browser: FlaskClient, idp_app: Flask, rp: RelyingParty
) -> None:
    """A code past its lifetime fails with invalid_grant."""
    authz = authorize(browser, rp)
    with idp_app.app_context():
        store = get_store()
        stored = store.get(code_key(authz.code))
        assert stored is not None and authz.code not in stored
        store.set(code_key(authz.code), stored, 0.05)
    time.sleep(0.2)
    response = exchange(browser, rp, authz)
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_grant"


def test_code_is_bound_to_client_and_redirect_uri(
    browser: FlaskClient, idp_app: Flask, rp: RelyingParty
) -> None:
    """Another client's code, or a different redirect_uri, is invalid_grant."""
    other = register(idp_app, redirect_uris=[rp.redirect_uri, "https://rp.example.edu/other"])
    authz = authorize(browser, rp)
    stolen = exchange(browser, other, authz)
    assert stolen.status_code == 400 and stolen.get_json()["error"] == "invalid_grant"
    authz = authorize(browser, other)
    moved = exchange(browser, other, authz, redirect_uri="https://rp.example.edu/other")
    assert moved.get_json()["error"] == "invalid_grant"


def test_code_of_a_user_the_policy_now_excludes_is_invalid_grant(
    browser: FlaskClient, idp_app: Flask, rp: RelyingParty
) -> None:
    """A code issued to a student, exchanged after the admin restricted the client to staff,
    gets no tokens (as a refresh token of theirs would not)."""
    authz = authorize(browser, rp)
    with idp_app.app_context():
        db.session.execute(
            db.update(OidcClient)
            .where(OidcClient.client_id == rp.client_id)
            .values(allowed_kinds=["staff"])
        )
        db.session.commit()
    response = exchange(browser, rp, authz)
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_grant"


def test_wrong_secret_is_401_invalid_client(browser: FlaskClient, rp: RelyingParty) -> None:
    """A wrong client secret (basic) is 401 invalid_client with a WWW-Authenticate header."""
    authz = authorize(browser, rp)
    data = {"grant_type": "authorization_code", "code": authz.code, "redirect_uri": rp.redirect_uri}
    response = token_request(browser, rp, data, secret="wrong")
    assert response.status_code == 401 and response.get_json()["error"] == "invalid_client"
    assert response.headers["WWW-Authenticate"].startswith("Basic ")


def test_wrong_auth_method_is_invalid_client(browser: FlaskClient, rp: RelyingParty) -> None:
    """A client registered for client_secret_basic cannot use client_secret_post."""
    authz = authorize(browser, rp)
    response = browser.post(
        "/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": authz.code,
            "redirect_uri": rp.redirect_uri,
            "code_verifier": authz.verifier,
            "client_id": rp.client_id,
            "client_secret": rp.secret,
        },
    )
    assert response.status_code == 401 and response.get_json()["error"] == "invalid_client"


@pytest.mark.parametrize(
    ("headers", "data"),
    [
        ({"Authorization": "Basic //79"}, {"grant_type": "authorization_code", "code": "x"}),
        ({"Authorization": "Basic !!!"}, {"grant_type": "authorization_code", "code": "x"}),
        ({"Authorization": "Bearer x"}, {"grant_type": "refresh_token"}),
        ({}, {"grant_type": "password", "username": "a", "password": "b"}),
        ({}, {"grant_type": '"\\\x00'}),
        ({}, {}),
        ({}, {"grant_type": "client_credentials", "client_id": "\x00"}),
    ],
)
def test_malformed_token_requests_get_oauth_errors(
    idp_client: FlaskClient, headers: dict[str, str], data: dict[str, str]
) -> None:
    """Garbage at the token endpoint gets a 400/401 JSON error, never a 500."""
    response = idp_client.post("/oauth2/token", data=data, headers=headers)
    assert response.status_code in (400, 401), response.get_data(as_text=True)
    assert response.get_json()["error"] in {
        "invalid_client",
        "invalid_request",
        "unsupported_grant_type",
    }


def test_refresh_token_rotates(browser: FlaskClient, rp: RelyingParty) -> None:
    """oidcc-refresh-token: a refresh gives new tokens and a new refresh token."""
    tokens = tokens_for(browser, rp)
    response = token_request(
        browser, rp, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )
    assert response.status_code == 200
    fresh = response.get_json()
    assert fresh["refresh_token"] != tokens["refresh_token"]
    assert userinfo_status(browser, fresh["access_token"]) == 200


def test_reused_refresh_token_revokes_the_family(
    browser: FlaskClient, idp_app: Flask, rp: RelyingParty
) -> None:
    """Presenting a rotated refresh token again revokes every token of its family."""
    tokens = tokens_for(browser, rp)
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    fresh = token_request(browser, rp, refresh).get_json()
    replay = token_request(browser, rp, refresh)
    assert replay.status_code == 400 and replay.get_json()["error"] == "invalid_grant"
    assert userinfo_status(browser, fresh["access_token"]) == 401
    newest = {"grant_type": "refresh_token", "refresh_token": fresh["refresh_token"]}
    assert token_request(browser, rp, newest).get_json()["error"] == "invalid_grant"
    with idp_app.app_context():
        rows = db.session.scalars(db.select(OAuthToken)).all()
        assert len(rows) == 2 and all(r.revoked_at for r in rows)
        assert len({r.family_id for r in rows}) == 1


def test_refresh_token_raced_by_two_requests_is_exchanged_once(
    browser: FlaskClient, idp_app: Flask, rp: RelyingParty, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refresh token exchanged by another request while this one checks it counts as reused."""
    tokens = tokens_for(browser, rp)
    checked = RotatingRefreshTokenGrant.authenticate_refresh_token

    def raced(grant: RotatingRefreshTokenGrant, refresh_token: str) -> PresentedToken | None:
        found = checked(grant, refresh_token)
        assert found is not None
        table = OAuthToken.__table__
        with db.engine.begin() as other:  # the other request wins and commits first
            other.execute(
                table.update().where(table.c.id == found.row.id).values(refresh_used_at=utcnow())
            )
        return found

    monkeypatch.setattr(RotatingRefreshTokenGrant, "authenticate_refresh_token", raced)
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    response = token_request(browser, rp, refresh)
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_grant"
    with idp_app.app_context():
        rows = db.session.scalars(db.select(OAuthToken)).all()
        assert len(rows) == 1 and rows[0].revoked_at is not None


def test_refresh_token_of_another_client_is_refused(
    browser: FlaskClient, idp_app: Flask, rp: RelyingParty
) -> None:
    """oidcc-refresh-token (client binding): another client's refresh token is invalid_grant."""
    tokens = tokens_for(browser, rp)
    other = register(idp_app, name="另一系统")
    response = token_request(
        browser, other, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_grant"


def test_refresh_cannot_widen_scope(browser: FlaskClient, rp: RelyingParty) -> None:
    """A refresh may narrow the scope but not add to it."""
    tokens = tokens_for(browser, rp, scope="openid profile")
    data = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    wider = token_request(browser, rp, {**data, "scope": "openid profile email"})
    assert wider.status_code == 400 and wider.get_json()["error"] == "invalid_scope"


def test_narrowed_refresh_keeps_the_original_grant(browser: FlaskClient, rp: RelyingParty) -> None:
    """RFC 6749 §6: after a refresh that asked for less, one without scope gets all back."""
    tokens = tokens_for(browser, rp, scope="openid profile email")

    def refresh(token: str, scope: str | None = None) -> dict[str, str]:
        data = {"grant_type": "refresh_token", "refresh_token": token, "scope": scope}
        response = token_request(browser, rp, {k: v for k, v in data.items() if v is not None})
        return dict(response.get_json())

    narrowed = refresh(tokens["refresh_token"], "openid")
    assert narrowed["scope"] == "openid"
    claims = browser.get("/oauth2/userinfo", headers=bearer(narrowed["access_token"])).get_json()
    assert "name" not in claims
    restored = refresh(narrowed["refresh_token"])
    assert restored["scope"] == "openid profile email"
    subset = refresh(restored["refresh_token"], "email openid")
    assert set(subset["scope"].split()) == {"openid", "email"}
    introspected = browser.post(
        "/oauth2/introspect", data={"token": narrowed["access_token"]}, headers=basic(rp)
    ).get_json()
    assert introspected["scope"] == "openid"


def test_tokens_and_codes_are_stored_only_as_digests(
    browser: FlaskClient, idp_app: Flask, rp: RelyingParty
) -> None:
    """Neither the database nor the store holds a token or code in clear."""
    authz = authorize(browser, rp)
    tokens = exchange(browser, rp, authz).get_json()
    with idp_app.app_context():
        row = db.session.scalar(db.select(OAuthToken))
        dumped = json.dumps({c.name: str(getattr(row, c.name)) for c in row.__table__.columns})
    assert tokens["access_token"] not in dumped and tokens["refresh_token"] not in dumped


def test_repeated_parameters_are_invalid_request(browser: FlaskClient, rp: RelyingParty) -> None:
    """RFC 6749 §3.2: a token request naming a parameter twice is refused, and its code is not
    spent — the client may still send the request it meant."""
    authz = authorize(browser, rp)
    exchange_form = [
        ("grant_type", "authorization_code"),
        ("code", authz.code),
        ("redirect_uri", rp.redirect_uri),
        ("code_verifier", authz.verifier),
    ]
    for repeated in (("code", authz.code), ("code", "another"), ("redirect_uri", rp.redirect_uri)):
        refused = browser.post(
            "/oauth2/token", data=MultiDict([*exchange_form, repeated]), headers=basic(rp)
        )
        assert refused.status_code == 400, repeated
        assert refused.get_json()["error"] == "invalid_request", repeated
        assert repeated[0] in refused.get_json()["error_description"]
    assert exchange(browser, rp, authz).status_code == 200


def test_parameters_to_ignore_may_repeat(browser: FlaskClient, rp: RelyingParty) -> None:
    """RFC 6749 §3.1: unknown parameters are ignored, even twice (RFC 8707 repeats `resource`),
    and an empty value counts as omitted, so an empty second code_verifier is no repeat."""
    authz = authorize(browser, rp)
    form = [
        ("grant_type", "authorization_code"),
        ("code", authz.code),
        ("redirect_uri", rp.redirect_uri),
        ("code_verifier", authz.verifier),
        ("code_verifier", ""),
        ("resource", "https://a.example.edu/"),
        ("resource", "https://b.example.edu/"),
        ("x_trace", "1"),
        ("x_trace", "2"),
    ]
    response = browser.post("/oauth2/token", data=MultiDict(form), headers=basic(rp))
    assert response.status_code == 200, response.get_data(as_text=True)
    access = response.get_json()["access_token"]
    userinfo = browser.get("/oauth2/userinfo?_=1&_=2", headers=bearer(access))
    assert userinfo.status_code == 200


def test_authorization_for_a_client_without_code_grant(
    browser: FlaskClient, idp_app: Flask
) -> None:
    """A client registered without authorization_code gets unauthorized_client."""
    odd = register(idp_app, grant_types=["authorization_code", "refresh_token"], require_pkce=False)
    with idp_app.app_context():
        model = db.session.scalar(db.select(OidcClient).filter_by(client_id=odd.client_id))
        model.grant_types = ["refresh_token"]
        db.session.commit()
    got = redirect_params(browser.get(authorize_url(odd)))
    assert got["error"] == "unauthorized_client"
