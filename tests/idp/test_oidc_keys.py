"""Signing keys: made on first use, stored encrypted, rotated without breaking issued tokens."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp.clients.models import OidcClient
from idp.directory.models import aware, utcnow
from idp.extensions import db
from idp.oidc.keys import current_key, rotate_keys
from idp.oidc.models import SigningKey
from tests.idp.conftest import MakeUser, sign_in
from tests.idp.oidc_support import (
    REDIRECT_URI,
    RelyingParty,
    authorize,
    exchange,
    expire_retired_keys,
    register,
    verify_id_token,
)


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


def add_oidc(app: Flask, *args: str) -> dict[str, Any]:
    """Run ``flask --app idp clients add-oidc … --json`` for a first-party client."""
    command = ["clients", "add-oidc", "图书馆", "--redirect-uri", REDIRECT_URI, "--first-party"]
    result = app.test_cli_runner().invoke(args=[*command, *args, "--json"])
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
    """After ``keys rotate --now`` old ID tokens verify with the JWKS, new ones carry the new
    kid (a rotation without ``--now`` waits first: the tests at the end of this file)."""
    before = id_token(browser, rp)
    old_kid = verify_id_token(browser, idp_app, rp, before).header["kid"]
    rotated = rotate(idp_app, "--now")
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


def test_rotating_to_es256_leaves_default_clients_on_rs256(
    browser: FlaskClient, idp_app: Flask, rp: RelyingParty
) -> None:
    """``keys rotate --alg ES256`` adds an ES256 key; a client that registered no algorithm
    still gets RS256 ID tokens (OIDC Core §3.1.3.7), and its key never leaves the JWKS."""
    rs256_kid = verify_id_token(browser, idp_app, rp, id_token(browser, rp)).header["kid"]
    rotated = rotate(idp_app, "--alg", "ES256")
    assert rotated["retired"] == []
    expire_retired_keys(idp_app)  # any grace period is over
    published = browser.get("/oauth2/jwks").get_json()["keys"]
    assert {(k["alg"], k["kid"]) for k in published} == {
        ("RS256", rs256_kid),
        ("ES256", rotated["key"]["kid"]),  # type: ignore[index]
    }
    claims = verify_id_token(browser, idp_app, rp, id_token(browser, rp))
    assert (claims.header["alg"], claims.header["kid"]) == ("RS256", rs256_kid)


def test_rotating_rs256_leaves_the_es256_key_alone(idp_app: Flask) -> None:
    """Each algorithm rotates on its own: a new RS256 key retires only the older RS256 one."""
    first = rotate(idp_app)["key"]
    es256 = rotate(idp_app, "--alg", "ES256")["key"]
    rs256 = rotate(idp_app)
    assert [k["kid"] for k in rs256["retired"]] == [first["kid"]]  # type: ignore[union-attr]
    listed = idp_app.test_cli_runner().invoke(args=["keys", "list", "--json"])
    signing = {k["alg"]: k["kid"] for k in json.loads(listed.output) if not k["retired_at"]}
    assert signing == {"ES256": es256["kid"], "RS256": rs256["key"]["kid"]}  # type: ignore[index]


def test_client_registered_for_es256_gets_es256_tokens(
    browser: FlaskClient, idp_app: Flask, rp: RelyingParty
) -> None:
    """``clients add-oidc --id-token-alg ES256`` gets ID tokens signed by the ES256 key; the
    other clients keep RS256."""
    es256_kid = rotate(idp_app, "--alg", "ES256")["key"]["kid"]  # type: ignore[index]
    shown = add_oidc(idp_app, "--id-token-alg", "ES256")
    assert shown["id_token_signed_response_alg"] == "ES256"
    es_rp = RelyingParty(shown["client_id"], shown["client_secret"])
    claims = verify_id_token(browser, idp_app, es_rp, id_token(browser, es_rp))
    assert (claims.header["alg"], claims.header["kid"]) == ("ES256", es256_kid)
    assert verify_id_token(browser, idp_app, rp, id_token(browser, rp)).header["alg"] == "RS256"


def test_cli_refuses_es256_clients_without_an_es256_key(idp_app: Flask) -> None:
    """Before any ES256 key exists, ``--id-token-alg ES256`` is refused with what to run."""
    result = idp_app.test_cli_runner().invoke(
        args=[
            "clients",
            "add-oidc",
            "网盘",
            "--redirect-uri",
            REDIRECT_URI,
            "--id-token-alg",
            "ES256",
        ]
    )
    assert result.exit_code == 1
    assert "keys rotate --alg ES256" in result.output
    with idp_app.app_context():
        assert db.session.scalar(db.select(OidcClient).filter_by(name="网盘")) is None


def test_discovery_lists_the_algorithms_that_have_a_key(
    idp_client: FlaskClient, idp_app: Flask
) -> None:
    """RS256 always; ES256 once ``keys rotate --alg ES256`` made its key."""
    discovery = "/.well-known/openid-configuration"
    supported = "id_token_signing_alg_values_supported"
    assert idp_client.get(discovery).get_json()[supported] == ["RS256"]
    rotate(idp_app, "--alg", "ES256")
    assert idp_client.get(discovery).get_json()[supported] == ["RS256", "ES256"]


def test_keys_list_shows_signing_and_retired_keys(idp_app: Flask) -> None:
    """``keys list`` names each published key and whether it still signs."""
    rotate(idp_app)
    rotate(idp_app, "--now")
    result = idp_app.test_cli_runner().invoke(args=["keys", "list"])
    assert result.exit_code == 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 2 and "signing" in lines[0] and "retired" in lines[1]


def test_keys_list_shows_each_algorithms_signing_key_first(idp_app: Flask) -> None:
    """With keys of both algorithms, both sign and come before the retired ones."""
    rotate(idp_app)
    rotate(idp_app, "--alg", "ES256")
    rotate(idp_app, "--now")
    lines = idp_app.test_cli_runner().invoke(args=["keys", "list"]).output.strip().splitlines()
    assert [line.split()[1:] for line in lines] == [
        ["RS256", "signing"],
        ["ES256", "signing"],
        ["RS256", "retired"],
    ]


# --------------------------------------------------------------------------- publish, then sign
# ``keys rotate`` publishes the new key first and signs with it after OIDC_KEY_PREPUBLISH: a
# relying party that cached the JWKS (mod_auth_openidc keeps one for an hour) and does not fetch
# it again on an unknown ``kid`` never meets a token it cannot verify. ``--now`` is for a key
# that leaked.


def _later(app: Flask, seconds: int) -> None:
    """Move every key's times ``seconds`` into the past, as if that much time went by."""
    with app.app_context():
        for key in db.session.scalars(db.select(SigningKey)):
            key.created_at -= timedelta(seconds=seconds)
            if key.retired_at is not None:
                key.retired_at -= timedelta(seconds=seconds)
            if key.expires_at is not None:
                key.expires_at -= timedelta(seconds=seconds)
        db.session.commit()


def _kid(browser: FlaskClient, app: Flask, rp: RelyingParty) -> str:
    return str(verify_id_token(browser, app, rp, id_token(browser, rp)).header["kid"])


def _published(browser: FlaskClient) -> set[str]:
    return {k["kid"] for k in browser.get("/oauth2/jwks").get_json()["keys"]}


def _states(app: Flask) -> list[list[str]]:
    result = app.test_cli_runner().invoke(args=["keys", "list"])
    assert result.exit_code == 0, result.output
    return [line.split()[1:] for line in result.output.strip().splitlines()]


def test_the_new_key_is_published_first_and_signs_an_hour_later(
    browser: FlaskClient, idp_app: Flask, rp: RelyingParty
) -> None:
    old = _kid(browser, idp_app, rp)
    rotated = rotate(idp_app)
    new = rotated["key"]["kid"]  # type: ignore[index]
    assert rotated["key"]["state"] == "next"  # type: ignore[index]
    assert _published(browser) == {old, new}
    assert _kid(browser, idp_app, rp) == old  # relying parties may not have the new key yet
    assert _states(idp_app) == [["RS256", "signing"], ["RS256", "next"]]

    _later(idp_app, 3599)
    assert _kid(browser, idp_app, rp) == old
    _later(idp_app, 2)
    assert _kid(browser, idp_app, rp) == new
    assert _states(idp_app) == [["RS256", "signing"], ["RS256", "retired"]]
    assert _published(browser) == {old, new}  # the old key's tokens still verify for a while


def test_now_switches_at_once(browser: FlaskClient, idp_app: Flask, rp: RelyingParty) -> None:
    """A key that leaked must stop signing now."""
    old = _kid(browser, idp_app, rp)
    new = rotate(idp_app, "--now")["key"]["kid"]  # type: ignore[index]
    assert _kid(browser, idp_app, rp) == new != old
    assert _states(idp_app) == [["RS256", "signing"], ["RS256", "retired"]]


def test_now_also_stops_a_key_still_signing_after_an_earlier_rotation(
    browser: FlaskClient, idp_app: Flask, rp: RelyingParty
) -> None:
    """A rotation is under way and then the old key leaks: --now ends it at once too."""
    first = _kid(browser, idp_app, rp)
    second = rotate(idp_app)["key"]["kid"]  # type: ignore[index]
    third = rotate(idp_app, "--now")["key"]["kid"]  # type: ignore[index]
    assert _kid(browser, idp_app, rp) == third
    assert first != third != second


def test_two_rotations_in_a_row_sign_with_the_key_published_longest(
    browser: FlaskClient, idp_app: Flask, rp: RelyingParty
) -> None:
    first = _kid(browser, idp_app, rp)
    second = rotate(idp_app)["key"]["kid"]  # type: ignore[index]
    _later(idp_app, 600)
    third = rotate(idp_app)["key"]["kid"]  # type: ignore[index]
    assert _kid(browser, idp_app, rp) == first
    assert _published(browser) == {first, second, third}
    assert _states(idp_app) == [["RS256", "signing"], ["RS256", "next"], ["RS256", "retiring"]]
    _later(idp_app, 3001)  # an hour after the first rotation: the second key has been out that long
    assert _kid(browser, idp_app, rp) == second
    _later(idp_app, 600)  # an hour after the second rotation
    assert _kid(browser, idp_app, rp) == third


def test_the_first_key_of_an_algorithm_signs_at_once(idp_app: Flask) -> None:
    """Nothing else could sign: the first RS256 key, and the first ES256 key."""
    with idp_app.app_context():
        rs256, _ = rotate_keys()
        es256, _ = rotate_keys("ES256")
        db.session.commit()
        assert current_key().kid == rs256.kid and current_key("ES256").kid == es256.kid


def test_no_wait_when_the_deployment_asks_for_none(make_idp: object) -> None:
    app = make_idp(OIDC_KEY_PREPUBLISH=0)  # type: ignore[operator]
    with app.app_context():
        first = current_key()
        db.session.commit()
        new, retired = rotate_keys()
        db.session.commit()
        assert [k.kid for k in retired] == [first.kid]
        assert current_key().kid == new.kid
        assert retired[0].retired_at is not None and aware(retired[0].retired_at) <= utcnow()
