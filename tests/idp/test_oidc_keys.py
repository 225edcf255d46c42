"""Signing keys: made on first use, stored encrypted, rotated without breaking issued tokens."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp.directory.models import utcnow
from idp.extensions import db
from idp.oidc.models import SigningKey
from tests.idp.conftest import MakeUser, sign_in
from tests.idp.oidc_support import RelyingParty, authorize, exchange, register, verify_id_token


@pytest.fixture
def browser(idp_client: FlaskClient, make_user: MakeUser) -> FlaskClient:
    """A browser signed in as a student."""
    sign_in(idp_client, make_user("2024000444").account)
    return idp_client


@pytest.fixture
def rp(idp_app: Flask) -> RelyingParty:
    """A first-party client."""
    return register(idp_app)


def id_token(browser: FlaskClient, rp: RelyingParty) -> str:
    """A fresh ID token for ``rp``."""
    response = exchange(browser, rp, authorize(browser, rp))
    assert response.status_code == 200
    return str(response.get_json()["id_token"])


def rotate(app: Flask, *args: str) -> dict[str, object]:
    """Run ``flask --app idp keys rotate --json``."""
    result = app.test_cli_runner().invoke(args=["keys", "rotate", "--json", *args])
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.output))


def count_keys(app: Flask) -> int:
    """How many keys the database holds."""
    with app.app_context():
        return len(db.session.scalars(db.select(SigningKey)).all())


def test_first_key_is_made_on_first_use_and_stored_encrypted(
    idp_app: Flask, idp_client: FlaskClient
) -> None:
    """No key exists until the provider is first used; the private key is not in clear."""
    assert count_keys(idp_app) == 0
    published = idp_client.get("/oauth2/jwks").get_json()["keys"]
    assert len(published) == 1 and published[0]["alg"] == "RS256" and "d" not in published[0]
    with idp_app.app_context():
        key = db.session.scalar(db.select(SigningKey))
        assert "PRIVATE KEY" not in key.private_key_encrypted
        assert key.kid == published[0]["kid"]


def test_tokens_signed_before_rotation_still_verify(
    browser: FlaskClient, idp_app: Flask, rp: RelyingParty
) -> None:
    """After ``keys rotate`` old ID tokens verify with the JWKS, new ones carry the new kid."""
    before = id_token(browser, rp)
    old_kid = verify_id_token(browser, idp_app, rp, before).header["kid"]
    rotated = rotate(idp_app)
    assert [k["kid"] for k in rotated["retired"]] == [old_kid]  # type: ignore[index, union-attr]
    after = id_token(browser, rp)
    new_kid = verify_id_token(browser, idp_app, rp, after).header["kid"]
    assert new_kid == rotated["key"]["kid"] != old_kid  # type: ignore[index]
    assert verify_id_token(browser, idp_app, rp, before).header["kid"] == old_kid
    kids = {k["kid"] for k in browser.get("/oauth2/jwks").get_json()["keys"]}
    assert kids == {old_kid, new_kid}


def test_retired_key_leaves_the_jwks_after_its_tokens_expire(
    browser: FlaskClient, idp_app: Flask, rp: RelyingParty
) -> None:
    """A retired key is published until its expiry, then dropped from the JWKS."""
    old_kid = verify_id_token(browser, idp_app, rp, id_token(browser, rp)).header["kid"]
    rotate(idp_app)
    with idp_app.app_context():
        old = db.session.scalar(db.select(SigningKey).filter_by(kid=old_kid))
        assert old.retired_at is not None and old.expires_at is not None
        assert timedelta(seconds=3500) < old.expires_at - old.retired_at <= timedelta(hours=1)
        old.expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    kids = {k["kid"] for k in browser.get("/oauth2/jwks").get_json()["keys"]}
    assert old_kid not in kids and len(kids) == 1


def test_rotating_to_es256(browser: FlaskClient, idp_app: Flask, rp: RelyingParty) -> None:
    """``keys rotate --alg ES256`` makes ES256 ID tokens that verify with the JWKS."""
    rotate(idp_app, "--alg", "ES256")
    claims = verify_id_token(browser, idp_app, rp, id_token(browser, rp))
    assert claims.header["alg"] == "ES256"
    listed = idp_app.test_cli_runner().invoke(args=["keys", "list", "--json"])
    assert [k["alg"] for k in json.loads(listed.output)] == ["ES256"]


def test_keys_list_shows_signing_and_retired_keys(idp_app: Flask) -> None:
    """``keys list`` names each published key and whether it still signs."""
    rotate(idp_app)
    rotate(idp_app)
    result = idp_app.test_cli_runner().invoke(args=["keys", "list"])
    assert result.exit_code == 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 2 and "signing" in lines[0] and "retired" in lines[1]
