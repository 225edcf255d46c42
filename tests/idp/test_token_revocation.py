"""Tokens that must stop: after a secret rotation, in introspection once refresh would refuse,
and the challenge a token without the scope gets at userinfo."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp.admin.registry_operations import rotate_secret
from idp.audit.models import AuditEvent
from idp.auth.models import SsoSession
from idp.clients.models import OidcClient
from idp.directory.models import User, utcnow
from idp.extensions import db
from tests.idp.conftest import MakeUser, sign_in
from tests.idp.oidc_support import (
    RelyingParty,
    basic,
    bearer,
    register,
    token_request,
    tokens_for,
    userinfo_status,
)


@pytest.fixture
def browser(idp_client: FlaskClient, make_user: MakeUser) -> FlaskClient:
    sign_in(idp_client, make_user("2024000888").account)
    return idp_client


def service_client(app: Flask) -> RelyingParty:
    """A campus system reading the directory with its own credentials."""
    return register(
        app,
        redirect_uris=[],
        grant_types=["client_credentials"],
        scopes=["directory.read"],
        first_party=False,
        name="办公系统",
    )


def service_token(client: FlaskClient, rp: RelyingParty) -> str:
    answer = token_request(client, rp, {"grant_type": "client_credentials"})
    assert answer.status_code == 200
    return str(answer.get_json()["access_token"])


def registration(rp: RelyingParty) -> OidcClient:
    found = db.session.scalar(db.select(OidcClient).filter_by(client_id=rp.client_id))
    assert found is not None
    return found


def introspect(client: FlaskClient, rp: RelyingParty, token: str) -> dict[str, Any]:
    answer = client.post("/oauth2/introspect", data={"token": token}, headers=basic(rp))
    assert answer.status_code == 200
    found: dict[str, Any] = answer.get_json()
    return found


def test_rotating_a_leaked_secret_ends_what_it_obtained(
    idp_app: Flask, browser: FlaskClient, make_user: MakeUser
) -> None:
    """重置密钥 is what the desk does when a secret leaks: the tokens obtained with the old
    one stop at once (RFC 6819 §5.1.5.4), the directory's and users' alike, and the audit row
    says how many."""
    desk = make_user("N9001")
    service = service_client(idp_app)
    stolen = service_token(idp_app.test_client(), service)
    rp = register(idp_app)
    user_tokens = tokens_for(browser, rp)
    with idp_app.app_context():
        actor = db.session.get(User, desk.id)
        assert actor is not None
        rotate_secret(registration(service), actor=actor, reason="leaked")
        rotate_secret(registration(rp), actor=actor, reason="leaked")
        db.session.commit()
        counts = [
            json.loads(event.detail or "{}")["tokens_revoked"]
            for event in db.session.scalars(
                db.select(AuditEvent).filter_by(action="client.secret_rotate")
            )
        ]
    client = idp_app.test_client()
    assert client.get("/scim/v2/Users", headers=bearer(stolen)).status_code == 401
    assert userinfo_status(client, user_tokens["access_token"]) == 401
    assert counts == [1, 1]  # one row each: an access token (with its refresh token)


def test_introspection_calls_a_refresh_token_inactive_once_refresh_refuses_it(
    idp_app: Flask, browser: FlaskClient
) -> None:
    """RFC 7662 §2.2: ``active`` is whether the token may be used now. A refresh token whose
    sign-in has ended, or whose user the client's policy no longer admits, is refused by the
    token endpoint at once, and introspection says so, not only after the hourly purge."""
    rp = register(idp_app)
    ended = tokens_for(browser, rp)
    assert introspect(idp_app.test_client(), rp, ended["refresh_token"])["active"] is True
    with idp_app.app_context():
        for sso in db.session.scalars(db.select(SsoSession)):
            sso.expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    assert introspect(idp_app.test_client(), rp, ended["refresh_token"]) == {"active": False}

    other = register(idp_app, name="教务系统")
    sign_in(browser, "2024000888")
    excluded = tokens_for(browser, other)
    with idp_app.app_context():
        registration(other).allowed_kinds = ["staff"]
        db.session.commit()
    refused = token_request(
        idp_app.test_client(),
        other,
        {"grant_type": "refresh_token", "refresh_token": excluded["refresh_token"]},
    )
    assert refused.status_code == 400
    assert introspect(idp_app.test_client(), other, excluded["refresh_token"]) == {"active": False}


def test_a_token_without_openid_gets_the_challenge_at_userinfo(idp_app: Flask) -> None:
    """RFC 6750 §3: refused for its scope, the token still gets ``WWW-Authenticate`` naming
    the error and the scope it lacks."""
    token = service_token(idp_app.test_client(), service_client(idp_app))
    answer = idp_app.test_client().get("/oauth2/userinfo", headers=bearer(token))
    assert answer.status_code == 403
    challenge = answer.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ") and 'error="insufficient_scope"' in challenge
    assert 'scope="openid"' in challenge
