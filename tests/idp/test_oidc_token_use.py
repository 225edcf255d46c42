"""What an issued token is good for: userinfo, introspection and revocation, the client
credentials grant, a disabled client's tokens, and the CORS answers browser clients read."""

from __future__ import annotations

import base64

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.datastructures import MultiDict

from idp.clients.models import OidcClient
from idp.extensions import db
from tests.idp.conftest import MakeUser, sign_in
from tests.idp.oidc_support import (
    RelyingParty,
    authorize,
    basic,
    bearer,
    register,
    token_request,
    tokens_for,
    userinfo_status,
)


@pytest.fixture
def browser(idp_client: FlaskClient, make_user: MakeUser) -> FlaskClient:
    """A browser signed in as a student."""
    sign_in(idp_client, make_user("2024000888").account)
    return idp_client


@pytest.fixture
def rp(idp_app: Flask) -> RelyingParty:
    """A confidential client that requires PKCE (the default)."""
    return register(idp_app)


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


def assert_tokens_stopped(
    browser: FlaskClient, tokens: dict[str, str], resource_server: RelyingParty
) -> None:
    """Userinfo refuses the access token; introspection calls both tokens inactive."""
    userinfo = browser.get("/oauth2/userinfo", headers=bearer(tokens["access_token"]))
    assert userinfo.status_code == 401 and userinfo.get_json()["error"] == "invalid_token"
    for kind in ("access_token", "refresh_token"):
        found = browser.post(
            "/oauth2/introspect", data={"token": tokens[kind]}, headers=basic(resource_server)
        )
        assert found.get_json() == {"active": False}, kind


def test_tokens_of_a_disabled_client_are_inactive(
    browser: FlaskClient, idp_app: Flask, rp: RelyingParty
) -> None:
    """A disabled client's access and refresh tokens stop working until it is enabled again."""
    resource_server = register(idp_app, scopes=["openid", "introspect"], name="资源服务")
    tokens = tokens_for(browser, rp)
    set_client_enabled(idp_app, rp, False)

    assert_tokens_stopped(browser, tokens, resource_server)
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    refused = token_request(browser, rp, refresh)
    assert refused.status_code == 401 and refused.get_json()["error"] == "invalid_client"

    set_client_enabled(idp_app, rp, True)
    assert userinfo_status(browser, tokens["access_token"]) == 200
    assert token_request(browser, rp, refresh).status_code == 200


def test_access_tokens_stop_when_the_clients_policy_leaves_their_user_out(
    browser: FlaskClient, idp_app: Flask, rp: RelyingParty
) -> None:
    """The console narrows a client to staff: a student's access token, issued before, stops at
    userinfo and reads inactive at introspection, as the refresh token already did; widened
    again, it works again (it was never revoked)."""
    resource_server = register(idp_app, scopes=["openid", "introspect"], name="资源服务")
    tokens = tokens_for(browser, rp)
    with idp_app.app_context():
        model = db.session.scalar(db.select(OidcClient).filter_by(client_id=rp.client_id))
        model.allowed_kinds = ["staff"]
        db.session.commit()
    assert_tokens_stopped(browser, tokens, resource_server)

    with idp_app.app_context():
        model = db.session.scalar(db.select(OidcClient).filter_by(client_id=rp.client_id))
        model.allowed_kinds = None
        db.session.commit()
    assert userinfo_status(browser, tokens["access_token"]) == 200


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


def test_browser_clients_may_read_the_authentication_challenge(
    idp_client: FlaskClient, rp: RelyingParty
) -> None:
    """A 401 from userinfo or the token endpoint exposes its WWW-Authenticate header, which
    says what went wrong, to the script that called it cross-origin."""
    responses = (
        idp_client.get("/oauth2/userinfo", headers=SPA_ORIGIN),
        idp_client.get("/oauth2/userinfo", headers={**SPA_ORIGIN, **bearer("made-up")}),
        idp_client.post(
            "/oauth2/token",
            data={"grant_type": "client_credentials"},
            headers={**SPA_ORIGIN, **basic(rp, "wrong")},
        ),
    )
    for response in responses:
        assert response.status_code == 401 and response.headers["WWW-Authenticate"]
        exposed = response.headers.get("Access-Control-Expose-Headers", "")
        assert "www-authenticate" in {name.strip().lower() for name in exposed.split(",")}


@pytest.mark.parametrize("path", ["/oauth2/introspect", "/oauth2/authorize", "/oauth2/logout"])
def test_no_cors_where_browsers_have_no_business(idp_client: FlaskClient, path: str) -> None:
    """Introspection (resource servers), authorization and logout (top-level pages): no CORS."""
    ask = {"Access-Control-Request-Method": "POST"}
    for response in (
        idp_client.options(path, headers={**SPA_ORIGIN, **ask}),
        idp_client.post(path, headers=SPA_ORIGIN),
    ):
        assert "Access-Control-Allow-Origin" not in response.headers


def basic_header() -> dict[str, str]:
    """HTTP Basic credentials, which are no bearer token."""
    return {"Authorization": "Basic " + base64.b64encode(b"someone:secret").decode()}


def test_unauthenticated_userinfo_is_401(idp_client: FlaskClient) -> None:
    """RFC 6750 §3.1: without credentials, the challenge alone; an unknown token is named
    invalid_token in the challenge and the body."""
    for headers in ({}, {"Authorization": ""}, {"Authorization": "Bearer "}, basic_header()):
        bare = idp_client.get("/oauth2/userinfo", headers=headers)
        assert bare.status_code == 401 and bare.headers["Cache-Control"] == "no-store", headers
        assert bare.headers["WWW-Authenticate"] == 'Bearer realm="http://127.0.0.1:5000"', headers
        assert bare.get_data() == b"", headers
    response = idp_client.get("/oauth2/userinfo", headers=bearer("made-up"))
    assert response.status_code == 401 and response.get_json()["error"] == "invalid_token"
    assert response.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')


def test_repeated_parameters_at_introspection_and_revocation(
    browser: FlaskClient, rp: RelyingParty
) -> None:
    """Two tokens in one introspection or revocation request: invalid_request, nothing revoked."""
    tokens = tokens_for(browser, rp)
    twice = MultiDict([("token", tokens["refresh_token"]), ("token", tokens["access_token"])])
    for path in ("/oauth2/introspect", "/oauth2/revoke"):
        refused = browser.post(path, data=twice, headers=basic(rp))
        assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_request"
    assert userinfo_status(browser, tokens["access_token"]) == 200


@pytest.mark.parametrize("path", ["/oauth2/token", "/oauth2/introspect", "/oauth2/revoke"])
def test_basic_credentials_that_are_not_base64_are_invalid_client(
    idp_client: FlaskClient, path: str
) -> None:
    """Non-ASCII HTTP Basic credentials are malformed credentials like any other: 401
    invalid_client with the Basic challenge, not a crash."""
    response = idp_client.post(
        path,
        data={"grant_type": "client_credentials", "token": "x"},
        headers={"Authorization": "Basic éééé"},
    )
    assert response.status_code == 401, response.get_data(as_text=True)[:300]
    assert response.get_json()["error"] == "invalid_client"
    assert response.headers["WWW-Authenticate"].startswith("Basic ")
