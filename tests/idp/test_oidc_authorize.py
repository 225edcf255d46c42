"""The authorization request beyond the certification plan: max_age measured precisely,
parameters sent empty or twice, and signed tokens that are no ID token hints."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode

import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp.auth.models import SsoSession
from idp.clients.models import OidcClient
from idp.directory.models import utcnow
from idp.extensions import db
from idp.oidc.backchannel import logout_token
from tests.idp.conftest import PASSWORD, MakeUser, post_form, sign_in
from tests.idp.oidc_support import (
    Authorization,
    RelyingParty,
    authorize_url,
    challenge_for,
    exchange,
    redirect_params,
    register,
    tokens_for,
    verify_id_token,
)

ACCOUNT = "2024000666"


@pytest.fixture
def rp(idp_app: Flask) -> RelyingParty:
    """A confidential, first-party client that requires PKCE (the default)."""
    return register(idp_app)


@pytest.fixture
def browser(idp_client: FlaskClient, make_user: MakeUser) -> FlaskClient:
    """A browser signed in as a student."""
    sign_in(idp_client, make_user(ACCOUNT).account)
    return idp_client


def test_max_age_0_asks_again_even_right_after_signing_in(
    browser: FlaskClient, idp_app: Flask, rp: RelyingParty
) -> None:
    """max_age=0 is prompt=login (OIDC Core §3.1.2.1): a sign-in of this very second is asked
    again, and once the person has signed in the code comes (no second trip to /login)."""
    sent = browser.get(authorize_url(rp, max_age="0"))
    assert sent.status_code == 302 and sent.headers["Location"].startswith("/login?next=")
    again = post_form(
        browser, sent.headers["Location"], {"identifier": ACCOUNT, "password": PASSWORD}
    )
    assert again.headers["Location"].startswith("/oauth2/authorize")
    got = redirect_params(browser.get(again.headers["Location"]))
    response = exchange(browser, rp, Authorization(got["code"], got["state"], rp.verifier, got))
    assert response.status_code == 200, response.get_data(as_text=True)
    claims = verify_id_token(browser, idp_app, rp, response.get_json()["id_token"])
    assert claims["auth_time"]


def test_max_age_counts_fractions_of_a_second(
    browser: FlaskClient, idp_app: Flask, rp: RelyingParty
) -> None:
    """A sign-in just after the start of the previous second is more than 1 s old, though
    counted in whole seconds it is only 1: max_age=1 asks again."""
    start_of_second = utcnow().replace(microsecond=0)
    signed_in = start_of_second - timedelta(seconds=1) + timedelta(microseconds=1)
    with idp_app.app_context():
        db.session.execute(db.update(SsoSession).values(auth_time=signed_in))
        db.session.commit()
    sent = browser.get(authorize_url(rp, max_age="1"))
    assert sent.status_code == 302 and sent.headers["Location"].startswith("/login?next=")


def test_registered_redirect_uri_werkzeug_cannot_redirect_to_is_refused(
    browser: FlaskClient, idp_app: Flask, rp: RelyingParty
) -> None:
    """A redirect URI stored before the registry refused it (a port out of range) gets the
    error page, not a 500 when the Location header is built."""
    bad = "https://rp.example.edu:99999/callback"
    with idp_app.app_context():
        db.session.execute(
            db.update(OidcClient)
            .where(OidcClient.client_id == rp.client_id)
            .values(redirect_uris=[bad])
        )
        db.session.commit()
    response = browser.get(authorize_url(rp, redirect_uri=bad))
    assert response.status_code == 400


@pytest.mark.parametrize("name", ["request", "request_uri"])
def test_empty_request_object_parameters_count_as_omitted(
    browser: FlaskClient, rp: RelyingParty, name: str
) -> None:
    """RFC 6749 §3.1: a parameter sent without a value is treated as omitted."""
    got = redirect_params(browser.get(authorize_url(rp, **{name: ""})))
    assert "code" in got, got


@pytest.mark.parametrize(
    ("mode", "issued"), [("query", True), ("", True), ("fragment", False), ("query.jwt", False)]
)
def test_only_query_and_form_post_response_modes_are_served(
    browser: FlaskClient, rp: RelyingParty, mode: str, issued: bool
) -> None:
    """Discovery offers response_mode=query and form_post (tests/idp/test_oidc_form_post.py):
    another mode is refused (invalid_request, in the query), not answered with a code in a
    URL the client did not ask for."""
    got = redirect_params(browser.get(authorize_url(rp, response_mode=mode)))
    assert ("code" in got) is issued and (got.get("error") == "invalid_request") is not issued


#: Two values each parameter could take in a request that would otherwise succeed.
REPEATED = {
    "nonce": ("n-1", "n-2"),
    "prompt": ("consent", "consent"),
    "max_age": ("10000", "20000"),
    "login_hint": (ACCOUNT, ACCOUNT),
    "code_challenge": ("same", "same"),
    "code_challenge_method": ("S256", "S256"),
    "response_mode": ("query", "query"),
    "acr_values": ("1", "2"),
    "claims": ('{"userinfo":{"name":null}}', '{"userinfo":{"name":null}}'),
    "display": ("page", "popup"),
    "ui_locales": ("zh-CN", "en"),
    "claims_locales": ("zh-CN", "en"),
    "id_token_hint": ("hint", "hint"),
}


@pytest.mark.parametrize("name", sorted(REPEATED))
def test_repeated_authorization_parameter_is_invalid_request(
    browser: FlaskClient, rp: RelyingParty, name: str
) -> None:
    """RFC 6749 §3.1: no parameter more than once. Which nonce or max_age was meant? The
    request goes back to the client as invalid_request, with its state."""
    values = list(REPEATED[name])
    if name == "id_token_hint":
        values = [tokens_for(browser, rp)["id_token"]] * 2
    elif name == "code_challenge":
        values = [challenge_for(rp.verifier)] * 2
    url = authorize_url(rp, state="st-twice", **{name: None})
    got = redirect_params(browser.get(url + "&" + urlencode([(name, v) for v in values])))
    assert got["error"] == "invalid_request" and got["state"] == "st-twice", got
    assert name in got["error_description"]


def test_parameters_sent_empty_or_unknown_may_repeat(
    browser: FlaskClient, rp: RelyingParty
) -> None:
    """An empty value counts as omitted, and parameters we do not know are ignored."""
    url = authorize_url(rp, nonce=None) + "&nonce=&nonce=n-1&extra=1&extra=2"
    assert "code" in redirect_params(browser.get(url))


def test_logout_token_is_no_id_token_hint(
    browser: FlaskClient, idp_app: Flask, rp: RelyingParty
) -> None:
    """A back-channel logout token is signed with our key and names the person, but it is no
    ID token: refused at authorization, and at logout it ends nothing without asking."""
    tokens = tokens_for(browser, rp)
    claims = verify_id_token(browser, idp_app, rp, tokens["id_token"])
    with idp_app.app_context():
        client = db.session.scalar(db.select(OidcClient).filter_by(client_id=rp.client_id))
        assert client is not None
        hint = logout_token(client, claims["sub"], claims["sid"])
    got = redirect_params(browser.get(authorize_url(rp, prompt="none", id_token_hint=hint)))
    assert got["error"] == "invalid_request", got
    page = browser.get("/oauth2/logout?" + urlencode({"id_token_hint": hint}))
    assert page.status_code == 200 and "确认退出" in page.get_data(as_text=True)
    assert "code" in redirect_params(browser.get(authorize_url(rp, prompt="none")))
