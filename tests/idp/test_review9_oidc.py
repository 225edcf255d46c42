"""Review of the OpenID provider: inputs and sequences an off-the-shelf relying party (or
someone imitating one) can send, each answered the way the specifications ask."""

from __future__ import annotations

import base64
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp.auth.models import SsoSession
from idp.directory.models import utcnow
from idp.extensions import db
from tests.idp.conftest import MakeUser, sign_in
from tests.idp.oidc_support import (
    basic,
    register,
    still_signed_in,
    token_request,
    tokens_for,
    userinfo_status,
)


@pytest.fixture
def browser(idp_client: FlaskClient, make_user: MakeUser) -> FlaskClient:
    """A browser signed in as a student."""
    sign_in(idp_client, make_user("2024000999").account)
    return idp_client


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_logout_hint_with_a_deeply_nested_payload_is_refused_not_a_crash(
    browser: FlaskClient, idp_app: Flask
) -> None:
    """A JWS-looking id_token_hint whose payload nests arrays a thousand deep (2.7 kB, fits in a
    URL) gets the logout error page, not a 500; nobody is signed out."""
    rp = register(idp_app, require_pkce=False)
    hint = _b64(b'{"alg":"RS256"}') + "." + _b64(b"[" * 1000 + b"]" * 1000) + ".AAAA"
    for method in ("get", "post"):
        query = urlencode({"id_token_hint": hint})
        if method == "get":
            response = browser.get("/oauth2/logout?" + query)
        else:
            response = browser.post("/oauth2/logout", data={"id_token_hint": hint})
        assert response.status_code == 400 and "Location" not in response.headers
        assert "退出请求无效" in response.get_data(as_text=True)
    assert still_signed_in(browser, rp)


def test_revoking_a_refresh_token_the_token_endpoint_would_refuse_still_revokes_its_family(
    browser: FlaskClient, idp_app: Flask
) -> None:
    """RFC 7009 §2.1: a relying party signing its user out revokes the refresh token, and the
    access tokens of that grant stop with it — even when the refresh token itself would no
    longer refresh (here: the sign-in it came from has ended, and the hourly purge has not yet
    revoked its tokens; a narrowed access policy would stop the access token by itself)."""
    rp = register(idp_app)
    tokens = tokens_for(browser, rp)
    with idp_app.app_context():
        db.session.execute(db.update(SsoSession).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    assert token_request(browser, rp, refresh).status_code == 400  # it would not refresh
    assert userinfo_status(browser, tokens["access_token"]) == 200
    response = browser.post(
        "/oauth2/revoke",
        data={"token": tokens["refresh_token"], "token_type_hint": "refresh_token"},
        headers=basic(rp),
    )
    assert response.status_code == 200
    assert userinfo_status(browser, tokens["access_token"]) == 401
    found = browser.post(
        "/oauth2/introspect", data={"token": tokens["access_token"]}, headers=basic(rp)
    )
    assert found.get_json() == {"active": False}
