"""OpenID Connect, as the OpenID Foundation's Basic OP certification plan tests it.

Each ``test_oidcc_*`` mirrors one module of the plan, with a client registered without PKCE
(``--no-require-pkce``, as the plan's client sends none); the happy flow also runs with PKCE.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from authlib.oidc.discovery import OpenIDProviderMetadata
from flask import Flask
from flask.testing import FlaskClient

from idp.directory.models import Department
from idp.extensions import db
from tests.idp.conftest import PASSWORD, MakeUser, post_form, sign_in
from tests.idp.oidc_support import (
    REDIRECT_URI,
    Authorization,
    RelyingParty,
    authorize,
    authorize_url,
    bearer,
    exchange,
    redirect_params,
    register,
    verify_id_token,
)


@pytest.fixture(params=[False, True], ids=["no-pkce", "pkce"])
def rp(idp_app: Flask, request: pytest.FixtureRequest) -> RelyingParty:
    """A confidential, first-party client: registered with --no-require-pkce, as the
    certification plan runs, and again with PKCE required (every request then uses it)."""
    return register(idp_app, require_pkce=request.param)


@pytest.fixture
def browser(idp_client: FlaskClient, make_user: MakeUser) -> FlaskClient:
    """A browser signed in as a student with a verified phone and email."""
    user = make_user("2024000777", verified_email="zhang@lut.edu.cn")
    sign_in(idp_client, user.account)
    return idp_client


def sign_in_and_get_tokens(
    browser: FlaskClient, app: Flask, rp: RelyingParty, *, pkce: bool | None = None, **params: Any
) -> tuple[dict[str, Any], Any]:
    """The code flow end to end: tokens and the verified ID token claims."""
    authz = authorize(browser, rp, pkce=pkce, **params)
    response = exchange(browser, rp, authz)
    assert response.status_code == 200, response.get_data(as_text=True)
    tokens = response.get_json()
    nonce = params.get("nonce")
    claims = verify_id_token(
        browser, app, rp, tokens["id_token"], access_token=tokens["access_token"], nonce=nonce
    )
    return tokens, claims


def test_discovery_document_passes_authlib_validation(idp_client: FlaskClient) -> None:
    """Discovery names the issuer, endpoints, S256, iss responses and passes validation."""
    document = idp_client.get("/.well-known/openid-configuration").get_json()
    OpenIDProviderMetadata(document).validate()
    assert document["issuer"] == "http://127.0.0.1:5000"
    assert document["jwks_uri"] == "http://127.0.0.1:5000/oauth2/jwks"
    assert "openid" in document["scopes_supported"]
    assert document["response_types_supported"] == ["code"]
    assert document["subject_types_supported"] == ["public"]
    assert "RS256" in document["id_token_signing_alg_values_supported"]
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert document["authorization_response_iss_parameter_supported"] is True
    assert document["backchannel_logout_session_supported"] is True


def test_oidcc_server_happy_flow(browser: FlaskClient, idp_app: Flask, rp: RelyingParty) -> None:
    """oidcc-server: state, iss, Bearer, expires_in, a verified ID token and userinfo."""
    authz = authorize(browser, rp, nonce="n-0S6_WzA2Mj", state="af0ifjsldkj")
    assert authz.state == "af0ifjsldkj" and authz.params["iss"] == idp_app.config["ISSUER"]
    response = exchange(browser, rp, authz)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    tokens = response.get_json()
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 3600
    claims = verify_id_token(
        browser,
        idp_app,
        rp,
        tokens["id_token"],
        nonce="n-0S6_WzA2Mj",
        access_token=tokens["access_token"],
    )
    assert claims["nonce"] == "n-0S6_WzA2Mj" and claims["at_hash"]
    assert claims["exp"] > claims["iat"] >= claims["auth_time"]
    assert claims["sid"] and claims["amr"] == ["pwd"]
    info = browser.get("/oauth2/userinfo", headers=bearer(tokens["access_token"])).get_json()
    assert info["sub"] == claims["sub"] and info["preferred_username"] == "2024000777"


def test_happy_flow_with_pkce(browser: FlaskClient, idp_app: Flask) -> None:
    """A client that requires PKCE (the default) completes the flow with S256."""
    rp = register(idp_app)
    tokens, claims = sign_in_and_get_tokens(browser, idp_app, rp, pkce=True, nonce="abc")
    assert claims["aud"] == rp.client_id and tokens["refresh_token"]


def test_oidcc_response_type_missing_is_an_error(browser: FlaskClient, rp: RelyingParty) -> None:
    """oidcc-response-type-missing: an error goes back to the client, nothing crashes."""
    got = redirect_params(browser.get(authorize_url(rp, response_type=None)))
    assert got["error"] == "invalid_request" and "state" in got


def test_unsupported_response_type_is_an_error(browser: FlaskClient, rp: RelyingParty) -> None:
    """response_type=token (implicit) is refused with unsupported_response_type."""
    got = redirect_params(browser.get(authorize_url(rp, response_type="id_token token")))
    assert got["error"] == "unsupported_response_type"


def test_oidcc_idtoken_signature_is_rs256_with_kid(
    browser: FlaskClient, idp_app: Flask, rp: RelyingParty
) -> None:
    """oidcc-idtoken-signature: RS256 by default, the header names the key."""
    _, claims = sign_in_and_get_tokens(browser, idp_app, rp)
    assert claims.header["alg"] == "RS256"
    kids = [k["kid"] for k in browser.get("/oauth2/jwks").get_json()["keys"]]
    assert claims.header["kid"] in kids


@pytest.mark.parametrize("how", ["get", "post-header"])
def test_oidcc_userinfo(browser: FlaskClient, idp_app: Flask, rp: RelyingParty, how: str) -> None:
    """oidcc-userinfo-get / -post-header: the bearer token in the Authorization header."""
    tokens, _ = sign_in_and_get_tokens(browser, idp_app, rp)
    send = browser.get if how == "get" else browser.post
    response = send("/oauth2/userinfo", headers=bearer(tokens["access_token"]))
    assert response.status_code == 200 and response.get_json()["name"] == "张三"


def test_oidcc_userinfo_post_body_is_refused(
    browser: FlaskClient, idp_app: Flask, rp: RelyingParty
) -> None:
    """oidcc-userinfo-post-body: a token in the form body is refused (the plan allows it)."""
    tokens, _ = sign_in_and_get_tokens(browser, idp_app, rp)
    response = browser.post("/oauth2/userinfo", data={"access_token": tokens["access_token"]})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].lower().startswith("bearer")


def test_oidcc_ensure_request_without_nonce_succeeds(
    browser: FlaskClient, idp_app: Flask, rp: RelyingParty
) -> None:
    """oidcc-ensure-request-without-nonce-succeeds-for-code-flow."""
    _, claims = sign_in_and_get_tokens(browser, idp_app, rp, nonce=None)
    assert "nonce" not in claims


@pytest.mark.parametrize(
    ("scope", "present", "absent"),
    [
        ("openid profile", {"name", "preferred_username"}, {"email", "phone_number"}),
        ("openid email", {"email", "email_verified"}, {"name"}),
        ("openid phone", {"phone_number", "phone_number_verified"}, {"email"}),
        ("openid address", {"sub"}, {"address", "name"}),
        # The student belongs to no department: no department claims rather than nulls.
        ("openid campus", {"account", "kind"}, {"email", "department", "department_name"}),
        (
            "openid profile email phone campus address",
            {"name", "email", "phone_number", "kind"},
            {"address"},
        ),
    ],
)
def test_oidcc_scope_claims_in_userinfo(
    browser: FlaskClient,
    idp_app: Flask,
    rp: RelyingParty,
    scope: str,
    present: set[str],
    absent: set[str],
) -> None:
    """oidcc-scope-profile/email/address/phone/all: each scope releases its claims only."""
    tokens, _ = sign_in_and_get_tokens(browser, idp_app, rp, scope=scope)
    info = browser.get("/oauth2/userinfo", headers=bearer(tokens["access_token"])).get_json()
    assert present <= set(info) and not absent & set(info), info
    if "phone_number" in info:
        assert info["phone_number"] == "+8613800138000" and info["phone_number_verified"]
    if "email" in info:
        assert info["email"] == "zhang@lut.edu.cn" and info["email_verified"] is True
    assert None not in info.values(), info  # OIDC Core §5.3.2: omitted, never null


def test_campus_scope_names_the_department_of_someone_in_one(
    idp_client: FlaskClient, idp_app: Flask, make_user: MakeUser, rp: RelyingParty
) -> None:
    """campus releases the department's code and name, in the ID token and from userinfo."""
    with idp_app.app_context():
        db.session.add(Department(code="CS", name="计算机学院"))
        db.session.commit()
    sign_in(idp_client, make_user(department_code="CS").account)
    tokens, claims = sign_in_and_get_tokens(idp_client, idp_app, rp, scope="openid campus")
    info = idp_client.get("/oauth2/userinfo", headers=bearer(tokens["access_token"])).get_json()
    for released in (claims, info):
        assert (released["department"], released["department_name"]) == ("CS", "计算机学院")


def test_oidcc_scope_order_and_parameter_order_do_not_matter(
    browser: FlaskClient, idp_app: Flask, rp: RelyingParty
) -> None:
    """oidcc-ensure-other-scope-order-succeeds: ``email openid`` works like ``openid email``."""
    tokens, claims = sign_in_and_get_tokens(browser, idp_app, rp, scope="email openid")
    assert set(tokens["scope"].split()) == {"openid", "email"} and claims["email"]


@pytest.mark.parametrize("display", ["page", "popup"])
def test_oidcc_display_values_accepted(
    browser: FlaskClient, idp_app: Flask, rp: RelyingParty, display: str
) -> None:
    """oidcc-display-page / -popup: accepted, the flow completes."""
    sign_in_and_get_tokens(browser, idp_app, rp, display=display)


def test_oidcc_prompt_login_forces_a_new_sign_in(
    browser: FlaskClient, idp_app: Flask, rp: RelyingParty
) -> None:
    """oidcc-prompt-login: sent to /login, and the second auth_time is later."""
    _, first = sign_in_and_get_tokens(browser, idp_app, rp)
    time.sleep(1.1)
    url = authorize_url(rp, prompt="login")
    response = browser.get(url)
    assert response.status_code == 302 and response.headers["Location"].startswith("/login?next=")
    again = sign_in_at(browser, response.headers["Location"])
    assert again.status_code == 302 and again.headers["Location"].startswith("/oauth2/authorize")
    got = redirect_params(browser.get(again.headers["Location"]))
    tokens = exchange(browser, rp, _authz(got, rp)).get_json()
    second = verify_id_token(browser, idp_app, rp, tokens["id_token"])
    assert second["auth_time"] > first["auth_time"] and second["sub"] == first["sub"]


def sign_in_at(browser: FlaskClient, login_url: str) -> Any:
    """Sign in on the /login page the provider sent the browser to (keeping ``next``)."""
    return post_form(browser, login_url, {"identifier": "2024000777", "password": PASSWORD})


def _authz(got: dict[str, str], rp: RelyingParty) -> Authorization:
    verifier = rp.verifier if rp.require_pkce else None
    return Authorization(got["code"], got.get("state", ""), verifier, got)


def test_prompt_login_from_a_signed_out_browser_does_not_loop(
    idp_client: FlaskClient, idp_app: Flask, make_user: MakeUser, rp: RelyingParty
) -> None:
    """prompt=login without a session: one sign-in, then the code (no second /login)."""
    make_user("2024000777")
    for params in ({"prompt": "login"}, {"max_age": "0"}):
        response = idp_client.get(authorize_url(rp, **params))
        signed_in = sign_in_at(idp_client, response.headers["Location"])
        got = redirect_params(idp_client.get(signed_in.headers["Location"]))
        assert "code" in got, params
        post_form(idp_client, "/logout", {})


def test_oidcc_prompt_none_not_logged_in(idp_client: FlaskClient, rp: RelyingParty) -> None:
    """oidcc-prompt-none-not-logged-in: login_required goes back to the client with iss."""
    got = redirect_params(idp_client.get(authorize_url(rp, prompt="none", state="s1")))
    assert got["error"] == "login_required" and got["state"] == "s1" and got["iss"]


def test_oidcc_prompt_none_logged_in(
    browser: FlaskClient, idp_app: Flask, rp: RelyingParty
) -> None:
    """oidcc-prompt-none-logged-in: same sub and auth_time, silently."""
    _, first = sign_in_and_get_tokens(browser, idp_app, rp)
    _, second = sign_in_and_get_tokens(browser, idp_app, rp, prompt="none")
    assert (second["sub"], second["auth_time"]) == (first["sub"], first["auth_time"])


def test_oidcc_max_age_1_requires_a_new_sign_in(
    browser: FlaskClient, idp_app: Flask, rp: RelyingParty
) -> None:
    """oidcc-max-age-1: an older sign-in is sent to /login; auth_time is in the token."""
    time.sleep(2.1)
    response = browser.get(authorize_url(rp, max_age="1"))
    assert response.headers["Location"].startswith("/login?next=")
    again = sign_in_at(browser, response.headers["Location"])
    got = redirect_params(browser.get(again.headers["Location"]))
    tokens = exchange(browser, rp, _authz(got, rp)).get_json()
    claims = verify_id_token(browser, idp_app, rp, tokens["id_token"], max_age=1)
    assert time.time() - claims["auth_time"] < 5


def test_oidcc_max_age_10000_does_not_ask_again(
    browser: FlaskClient, idp_app: Flask, rp: RelyingParty
) -> None:
    """oidcc-max-age-10000: a recent sign-in is enough."""
    _, claims = sign_in_and_get_tokens(browser, idp_app, rp, max_age="10000")
    assert claims["auth_time"]


def test_max_age_that_is_not_a_number_is_invalid_request(
    browser: FlaskClient, rp: RelyingParty
) -> None:
    """A malformed max_age is an invalid_request, not a crash."""
    got = redirect_params(browser.get(authorize_url(rp, max_age="soon")))
    assert got["error"] == "invalid_request"


def test_oidcc_unknown_parameter_is_ignored(
    browser: FlaskClient, idp_app: Flask, rp: RelyingParty
) -> None:
    """oidcc-unknown-parameter: extra parameters change nothing."""
    sign_in_and_get_tokens(browser, idp_app, rp, extra="foobar", **{"x-custom": "1"})


def test_oidcc_id_token_hint_with_prompt_none(
    browser: FlaskClient, idp_app: Flask, rp: RelyingParty
) -> None:
    """oidcc-id-token-hint: a previous ID token with prompt=none signs in silently."""
    tokens, first = sign_in_and_get_tokens(browser, idp_app, rp)
    _, second = sign_in_and_get_tokens(
        browser, idp_app, rp, prompt="none", id_token_hint=tokens["id_token"]
    )
    assert second["sub"] == first["sub"]


def test_malformed_id_token_hint_is_invalid_request(browser: FlaskClient, rp: RelyingParty) -> None:
    """A malformed id_token_hint is an invalid_request back to the client."""
    for hint in ("not-a-jwt", "a.b.c", "eyJhbGciOiJub25lIn0.e30."):
        got = redirect_params(browser.get(authorize_url(rp, id_token_hint=hint)))
        assert got["error"] == "invalid_request", hint


@pytest.mark.parametrize(
    "extra", [{"login_hint": "2024000777"}, {"ui_locales": "zh-CN en"}, {"claims_locales": "en"}]
)
def test_oidcc_hints_and_locales_accepted(
    browser: FlaskClient, idp_app: Flask, rp: RelyingParty, extra: dict[str, str]
) -> None:
    """oidcc-login-hint, -ui-locales, -claims-locales: accepted."""
    sign_in_and_get_tokens(browser, idp_app, rp, **extra)


def test_oidcc_acr_values_accepted(browser: FlaskClient, idp_app: Flask, rp: RelyingParty) -> None:
    """oidcc-ensure-request-with-acr-values-succeeds."""
    sign_in_and_get_tokens(browser, idp_app, rp, acr_values="1 2")


def test_oidcc_claims_parameter_with_essential_name(
    browser: FlaskClient, idp_app: Flask, rp: RelyingParty
) -> None:
    """oidcc-claims-essential: the claims parameter does not break the flow; name comes."""
    claims_param = '{"userinfo":{"name":{"essential":true}}}'
    tokens, _ = sign_in_and_get_tokens(browser, idp_app, rp, claims=claims_param)
    info = browser.get("/oauth2/userinfo", headers=bearer(tokens["access_token"])).get_json()
    assert info["name"] == "张三"


def test_oidcc_unregistered_redirect_uri_shows_a_page(
    browser: FlaskClient, rp: RelyingParty
) -> None:
    """oidcc-ensure-registered-redirect-uri: an error page, never a redirect."""
    for uri in ("https://evil.example.com/cb", REDIRECT_URI + "/x", REDIRECT_URI + "?a=1", None):
        response = browser.get(authorize_url(rp, redirect_uri=uri))
        assert response.status_code == 400 and "Location" not in response.headers
        assert "回调地址" in response.get_data(as_text=True)


def test_unknown_client_shows_a_page(browser: FlaskClient) -> None:
    """An unknown or malformed client_id gets the error page too."""
    for client_id in ("nope", "\x00", "a" * 200):
        response = browser.get(
            authorize_url(RelyingParty(client_id, None), redirect_uri=REDIRECT_URI)
        )
        assert response.status_code == 400 and "Location" not in response.headers


@pytest.mark.parametrize(
    "params",
    [
        {"response_type": 'code"\\'},
        {"response_type": "code\x00"},
        {"scope": "openid\x00 profile"},
        {"state": '\x00"\\<>'},
        {"nonce": "\x00" * 3},
        {"prompt": "none login"},
        {"prompt": "\x00"},
        {"code_challenge": "short", "code_challenge_method": "S256"},
        {"code_challenge": "é" * 50, "code_challenge_method": "S256"},
        {"code_challenge_method": "S256"},
        {"id_token_hint": "\x00.\x00.\x00"},
        {"max_age": "-1"},
        {"max_age": "9" * 40},
        {"response_mode": "form_post"},
    ],
)
def test_odd_authorization_parameters_never_crash(
    browser: FlaskClient, rp: RelyingParty, params: dict[str, str]
) -> None:
    """Whatever a client puts in the request, the answer is a redirect or a page, not a 500."""
    response = browser.get(authorize_url(rp, **params))
    assert response.status_code in (200, 302, 400), response.get_data(as_text=True)[:300]


def test_oidcc_post_to_authorization_endpoint(
    browser: FlaskClient, idp_app: Flask, rp: RelyingParty
) -> None:
    """oidcc-ensure-post-request-succeeds: the request may be a form POST."""
    query = urlsplit(authorize_url(rp, nonce="posted")).query
    response = browser.post("/oauth2/authorize", data=dict(parse_qsl(query)))
    got = redirect_params(response)
    tokens = exchange(browser, rp, _authz(got, rp)).get_json()
    assert verify_id_token(browser, idp_app, rp, tokens["id_token"], nonce="posted")


def test_oidcc_client_secret_post(browser: FlaskClient, idp_app: Flask) -> None:
    """oidcc-client-secret-post: credentials in the form body."""
    rp = register(idp_app, require_pkce=False, auth_method="client_secret_post")
    tokens, _ = sign_in_and_get_tokens(browser, idp_app, rp)
    assert tokens["access_token"]


@pytest.mark.parametrize(
    ("param", "error"),
    [("request", "request_not_supported"), ("request_uri", "request_uri_not_supported")],
)
def test_oidcc_request_objects_not_supported(
    browser: FlaskClient, rp: RelyingParty, param: str, error: str
) -> None:
    """oidcc-request-uri-unsigned / -request-unsigned: answered *_not_supported."""
    got = redirect_params(browser.get(authorize_url(rp, **{param: "eyJhbGciOiJub25lIn0.e30."})))
    assert got["error"] == error and got["iss"]
