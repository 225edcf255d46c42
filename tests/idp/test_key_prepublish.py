"""``keys rotate`` publishes the new key first and signs with it later.

A relying party that cached the JWKS (mod_auth_openidc keeps one for an hour) and does not fetch
it again on an unknown ``kid`` would refuse every sign-in between a rotation and its next fetch.
So the key a rotation makes is in the JWKS at once but signs only after
``OIDC_KEY_PREPUBLISH`` seconds; the key it replaces signs until then. ``--now`` is for a key
that leaked.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp.directory.models import aware, utcnow
from idp.extensions import db
from idp.oidc.keys import current_key, rotate_keys
from idp.oidc.models import SigningKey
from tests.idp.conftest import MakeUser, sign_in
from tests.idp.oidc_support import RelyingParty, register, verify_id_token
from tests.idp.test_oidc_keys import id_token, rotate


@pytest.fixture
def browser(idp_client: FlaskClient, make_user: MakeUser) -> FlaskClient:
    sign_in(idp_client, make_user("2024000444").account)
    return idp_client


@pytest.fixture
def rp(idp_app: Flask) -> RelyingParty:
    return register(idp_app)


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
