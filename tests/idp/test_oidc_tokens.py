"""The token side of OpenID Connect: PKCE, codes, refresh rotation, client authentication,
client credentials, introspection and revocation — every bad input gets its RFC error."""

from __future__ import annotations

import json
import time

import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp.clients.models import OidcClient
from idp.directory.models import utcnow
from idp.extensions import db
from idp.oidc.adapters import PresentedToken, code_key
from idp.oidc.models import OAuthToken
from idp.oidc.provider import RotatingRefreshTokenGrant
from shared.factory import get_store
from tests.idp.conftest import MakeUser, sign_in
from tests.idp.oidc_support import (
    Authorization,
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


def tokens_for(browser: FlaskClient, rp: RelyingParty, **params: str) -> dict[str, str]:
    """Sign in through ``rp`` and return its token response."""
    response = exchange(browser, rp, authorize(browser, rp, **params))
    assert response.status_code == 200, response.get_data(as_text=True)
    return dict(response.get_json())


def userinfo_status(client: FlaskClient, access_token: str) -> int:
    """What userinfo answers to ``access_token``."""
    return int(client.get("/oauth2/userinfo", headers=bearer(access_token)).status_code)


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


def test_client_credentials_within_registered_scopes(idp_app: Flask) -> None:
    """A directory client gets a token for directory.read, never for user scopes."""
    service = register(
        idp_app,
        redirect_uris=[],
        grant_types=["client_credentials"],
        scopes=["directory.read"],
        first_party=False,
    )
    client = idp_app.test_client()
    ok = token_request(client, service, {"grant_type": "client_credentials"})
    assert ok.status_code == 200 and ok.get_json()["scope"] == "directory.read"
    assert "refresh_token" not in ok.get_json()
    for scope in ("openid", "directory.write", "directory.read profile"):
        refused = token_request(
            client, service, {"grant_type": "client_credentials", "scope": scope}
        )
        assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_scope"
    access = ok.get_json()["access_token"]
    assert client.get("/oauth2/userinfo", headers=bearer(access)).status_code == 403


def test_client_credentials_needs_the_grant(browser: FlaskClient, rp: RelyingParty) -> None:
    """A client not registered for client_credentials is unauthorized_client."""
    response = token_request(browser, rp, {"grant_type": "client_credentials"})
    assert response.status_code == 400 and response.get_json()["error"] == "unauthorized_client"


def test_introspection_of_own_tokens(browser: FlaskClient, rp: RelyingParty) -> None:
    """A client introspects its tokens; unknown or foreign tokens are inactive."""
    tokens = tokens_for(browser, rp)
    found = browser.post(
        "/oauth2/introspect", data={"token": tokens["access_token"]}, headers=basic(rp)
    ).get_json()
    assert found["active"] is True and found["client_id"] == rp.client_id
    assert found["username"] == "2024000888" and found["scope"] == "openid profile"
    refresh = browser.post(
        "/oauth2/introspect",
        data={"token": tokens["refresh_token"], "token_type_hint": "refresh_token"},
        headers=basic(rp),
    ).get_json()
    assert refresh["active"] is True and refresh["token_type"] == "refresh_token"
    unknown = browser.post("/oauth2/introspect", data={"token": "nope"}, headers=basic(rp))
    assert unknown.get_json() == {"active": False}
    anonymous = browser.post("/oauth2/introspect", data={"token": tokens["access_token"]})
    assert anonymous.status_code == 401


def test_revoking_a_refresh_token_revokes_its_access_tokens(
    browser: FlaskClient, rp: RelyingParty
) -> None:
    """RFC 7009: revocation answers 200, and the family stops working."""
    tokens = tokens_for(browser, rp)
    response = browser.post(
        "/oauth2/revoke",
        data={"token": tokens["refresh_token"], "token_type_hint": "refresh_token"},
        headers=basic(rp),
    )
    assert response.status_code == 200
    assert userinfo_status(browser, tokens["access_token"]) == 401
    unknown = browser.post("/oauth2/revoke", data={"token": "unknown"}, headers=basic(rp))
    assert unknown.status_code == 200


def test_revoking_an_access_token(browser: FlaskClient, rp: RelyingParty) -> None:
    """Revoking an access token makes it inactive at introspection."""
    tokens = tokens_for(browser, rp)
    browser.post("/oauth2/revoke", data={"token": tokens["access_token"]}, headers=basic(rp))
    found = browser.post(
        "/oauth2/introspect", data={"token": tokens["access_token"]}, headers=basic(rp)
    )
    assert found.get_json() == {"active": False}


def test_an_unknown_token_type_hint_is_ignored(browser: FlaskClient, rp: RelyingParty) -> None:
    """RFC 7009 §2.1, RFC 7662 §2.1: a hint we do not know is ignored; every kind is searched."""
    tokens = tokens_for(browser, rp)
    for hint in ("id_token", "urn:x:bogus", "refresh_token"):
        found = browser.post(
            "/oauth2/introspect",
            data={"token": tokens["access_token"], "token_type_hint": hint},
            headers=basic(rp),
        )
        assert found.status_code == 200 and found.get_json()["active"] is True, hint
    revoked = browser.post(
        "/oauth2/revoke",
        data={"token": tokens["refresh_token"], "token_type_hint": "urn:x:bogus"},
        headers=basic(rp),
    )
    assert revoked.status_code == 200
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    assert token_request(browser, rp, refresh).get_json()["error"] == "invalid_grant"
    assert userinfo_status(browser, tokens["access_token"]) == 401


def set_client_enabled(app: Flask, rp: RelyingParty, enabled: bool) -> None:
    """Disable or enable ``rp`` in the registry (what 停用/启用 in the console does)."""
    with app.app_context():
        model = db.session.scalar(db.select(OidcClient).filter_by(client_id=rp.client_id))
        model.enabled = enabled
        db.session.commit()


def test_tokens_of_a_disabled_client_are_inactive(
    browser: FlaskClient, idp_app: Flask, rp: RelyingParty
) -> None:
    """A disabled client's access and refresh tokens stop working until it is enabled again."""
    resource_server = register(idp_app, scopes=["openid", "introspect"], name="资源服务")
    tokens = tokens_for(browser, rp)
    set_client_enabled(idp_app, rp, False)

    userinfo = browser.get("/oauth2/userinfo", headers=bearer(tokens["access_token"]))
    assert userinfo.status_code == 401 and userinfo.get_json()["error"] == "invalid_token"
    for kind in ("access_token", "refresh_token"):
        found = browser.post(
            "/oauth2/introspect", data={"token": tokens[kind]}, headers=basic(resource_server)
        )
        assert found.get_json() == {"active": False}, kind
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    refused = token_request(browser, rp, refresh)
    assert refused.status_code == 401 and refused.get_json()["error"] == "invalid_client"

    set_client_enabled(idp_app, rp, True)
    assert userinfo_status(browser, tokens["access_token"]) == 200
    assert token_request(browser, rp, refresh).status_code == 200


SPA_ORIGIN = {"Origin": "https://spa.example.edu"}


@pytest.mark.parametrize(
    ("path", "methods"),
    [("/oauth2/token", "POST"), ("/oauth2/userinfo", "GET, POST"), ("/oauth2/revoke", "POST")],
)
def test_cors_preflight_of_the_endpoints_a_browser_client_calls(
    idp_client: FlaskClient, path: str, methods: str
) -> None:
    """The preflight names the methods and headers; any origin, never with credentials."""
    ask = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization",
    }
    response = idp_client.options(path, headers={**SPA_ORIGIN, **ask})
    assert response.status_code == 204
    headers = response.headers
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert headers["Access-Control-Allow-Methods"] == methods
    assert headers["Access-Control-Allow-Headers"] == "Authorization, Content-Type"
    assert int(headers["Access-Control-Max-Age"]) > 0
    assert "Access-Control-Allow-Credentials" not in headers


def test_public_client_in_a_browser_reads_token_userinfo_and_revocation_answers(
    browser: FlaskClient, idp_app: Flask
) -> None:
    """A single-page app (public client, PKCE) reads these answers cross-origin, errors too."""
    spa = register(idp_app, public=True)
    authz = authorize(browser, spa)
    data = {
        "grant_type": "authorization_code",
        "code": authz.code,
        "redirect_uri": spa.redirect_uri,
        "code_verifier": authz.verifier,
        "client_id": spa.client_id,
    }
    issued = browser.post("/oauth2/token", data=data, headers=SPA_ORIGIN)
    replayed = browser.post("/oauth2/token", data=data, headers=SPA_ORIGIN)
    assert issued.status_code == 200 and replayed.get_json()["error"] == "invalid_grant"
    tokens = issued.get_json()
    userinfo = browser.get("/oauth2/userinfo", headers={**SPA_ORIGIN, **bearer("unknown")})
    revoked = browser.post(
        "/oauth2/revoke",
        data={"token": tokens["refresh_token"], "client_id": spa.client_id},
        headers=SPA_ORIGIN,
    )
    assert userinfo.status_code == 401 and revoked.status_code == 200
    for response in (issued, replayed, userinfo, revoked):
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert "Access-Control-Allow-Credentials" not in response.headers
    assert issued.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("path", ["/oauth2/introspect", "/oauth2/authorize", "/oauth2/logout"])
def test_no_cors_where_browsers_have_no_business(idp_client: FlaskClient, path: str) -> None:
    """Introspection (resource servers), authorization and logout (top-level pages): no CORS."""
    ask = {"Access-Control-Request-Method": "POST"}
    for response in (
        idp_client.options(path, headers={**SPA_ORIGIN, **ask}),
        idp_client.post(path, headers=SPA_ORIGIN),
    ):
        assert "Access-Control-Allow-Origin" not in response.headers


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


def test_unauthenticated_userinfo_is_401(idp_client: FlaskClient) -> None:
    """Userinfo without a token, or with an unknown one, is 401 with WWW-Authenticate."""
    assert idp_client.get("/oauth2/userinfo").status_code == 401
    response = idp_client.get("/oauth2/userinfo", headers=bearer("made-up"))
    assert response.status_code == 401 and response.get_json()["error"] == "invalid_token"


def test_authorization_for_a_client_without_code_grant(
    browser: FlaskClient, idp_app: Flask
) -> None:
    """A client registered without authorization_code gets unauthorized_client."""
    odd = register(idp_app, grant_types=["authorization_code", "refresh_token"], require_pkce=False)
    with idp_app.app_context():
        from idp.clients.models import OidcClient

        model = db.session.scalar(db.select(OidcClient).filter_by(client_id=odd.client_id))
        model.grant_types = ["refresh_token"]
        db.session.commit()
    got = redirect_params(browser.get(authorize_url(odd)))
    assert got["error"] == "unauthorized_client"
    assert Authorization  # the helper type stays importable for readers
