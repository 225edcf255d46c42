"""Back-channel logout: the IdP's signed logout token ends hall sessions; anything else is
refused with a JSON error. The IdP is real; for its own tokens the hall is a live server."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
import requests
from flask import Flask
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey

from hall.auth.logout_tokens import EVENT, LogoutTokenError, check_logout_claims
from hall.auth.models import HallSession, HallUser, utcnow
from hall.auth.sessions import end_sessions
from hall.extensions import db
from tests.e2e.conftest import LiveServer
from tests.hall.sso_support import (
    NAME,
    eventually,
    hall_sessions,
    server_log,
    sign_in,
    sign_in_at_idp,
    sign_out_at_idp,
)


def _logout_token(key: Any, claims: dict[str, Any], alg: str = "RS256", **header: str) -> str:
    return jwt.encode({"alg": alg, "typ": "logout+jwt", **header}, claims, key, algorithms=[alg])


def test_forged_logout_tokens_are_refused(
    sso_hall: Flask, sso_idp: LiveServer, hall_registration: dict[str, Any]
) -> None:
    """Tokens not signed by the IdP's keys get 400 with a JSON error; the session survives."""
    client = sso_hall.test_client()
    sign_in(client)
    with sso_hall.app_context():
        stored = db.session.scalars(db.select(HallSession)).one()
        sid, sub = stored.idp_sid, stored.user.sub
    kid = requests.get(sso_idp.url + "/oauth2/jwks", timeout=10).json()["keys"][0]["kid"]
    now = int(time.time())
    claims = {
        "iss": sso_idp.url,
        "aud": hall_registration["client_id"],
        "iat": now,
        "exp": now + 120,
        "jti": "forged-1",
        "sub": sub,
        "sid": sid,
        "events": {EVENT: {}},
    }
    forgeries = [
        _logout_token(RSAKey.generate_key(2048), claims, kid=kid),
        _logout_token(RSAKey.generate_key(2048), claims, kid="unknown-key"),
        _logout_token(OctKey.import_key(hall_registration["client_secret"]), claims, "HS256"),
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.",
        "not a token",
    ]
    outsider = sso_hall.test_client()  # no cookies, no CSRF token: server to server
    for forged in forgeries:
        refused = outsider.post("/auth/backchannel-logout", data={"logout_token": forged})
        assert refused.status_code == 400, forged
        assert refused.json is not None and refused.json["error"] == "invalid_request"
        assert refused.headers["Cache-Control"] == "no-store"
    missing = outsider.post("/auth/backchannel-logout", data={})
    assert missing.status_code == 400 and missing.json["error"] == "invalid_request"
    assert len(hall_sessions(sso_hall)) == 1 and NAME in client.get("/").text


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"events": None}, "missing"),
        ({"events": {"http://example.com/other": {}}}, "event"),
        ({"nonce": "n"}, "nonce"),
        ({"sid": None, "sub": None}, "sid nor sub"),
        ({"aud": "another-client"}, "aud"),
        ({"iss": "https://evil.example"}, "iss"),
        ({"iat": int(time.time()) - 3600, "exp": None}, "too long ago"),
        ({"exp": int(time.time()) - 300}, "exp"),
        ({"jti": None}, "jti"),
    ],
)
def test_logout_token_claims_are_checked(
    sso_hall: Flask,
    sso_idp: LiveServer,
    hall_registration: dict[str, Any],
    change: dict[str, Any],
    reason: str,
) -> None:
    """Each rule of Back-Channel Logout §2.6 refuses a token breaking it."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": sso_idp.url,
        "aud": hall_registration["client_id"],
        "iat": now,
        "exp": now + 120,
        "jti": "j-1",
        "sub": "1",
        "sid": "s-1",
        "events": {EVENT: {}},
    }
    with sso_hall.app_context():
        check_logout_claims(dict(claims), sso_idp.url)  # the unchanged token passes
        claims.update(change)
        claims = {k: v for k, v in claims.items() if v is not None}
        with pytest.raises(LogoutTokenError, match=reason):
            check_logout_claims(claims, sso_idp.url)


def test_logout_by_sid_or_sub_ends_the_right_sessions(hall_app: Flask) -> None:
    """``sid`` ends that IdP session's hall sessions; ``sub`` alone ends all of the user's."""
    with hall_app.app_context():
        later = utcnow() + timedelta(hours=1)
        ann, bob = (
            HallUser(sub="1", account="A1", name="安"),
            HallUser(sub="2", account="B2", name="博"),
        )
        rows = [("a-pc", ann, "s1"), ("a-phone", ann, "s2"), ("b-pc", bob, "s3")]
        for key, user, sid in rows:
            db.session.add(HallSession(id=key, user=user, idp_sid=sid, expires_at=later))
        db.session.commit()

        def left() -> set[str]:
            return set(db.session.scalars(db.select(HallSession.id)))

        assert end_sessions(sub="2", sid="s1") == 0  # sid of another person's session
        assert end_sessions(sub="1", sid="s1") == 1 and left() == {"a-phone", "b-pc"}
        assert end_sessions(sub=None, sid="s3") == 1 and left() == {"a-phone"}
        assert end_sessions(sub="1", sid=None) == 1 and left() == set()
        assert end_sessions(sub=None, sid=None) == 0


def _signed_in_browser(hall: LiveServer) -> requests.Session:
    browser = requests.Session()
    start = browser.get(hall.url + "/login", allow_redirects=False, timeout=10)
    callback = sign_in_at_idp(browser, start.headers["Location"], hall.url + "/auth/callback")
    landed = browser.get(callback, allow_redirects=False, timeout=10)
    assert landed.status_code == 302, landed.text[:300]
    assert NAME in browser.get(hall.url + "/", timeout=10).text
    return browser


def test_signing_out_at_the_idp_ends_the_hall_session(
    live_sso_hall: LiveServer, sso_idp: LiveServer
) -> None:
    """The IdP's logout token (back-channel) ends exactly the hall sessions of that SSO session."""
    leaving, staying = _signed_in_browser(live_sso_hall), _signed_in_browser(live_sso_hall)
    sign_out_at_idp(leaving, sso_idp)

    def signed_out() -> bool:
        return NAME not in leaving.get(live_sso_hall.url + "/", timeout=10).text

    assert eventually(signed_out), server_log(live_sso_hall)[-2000:]
    assert "登录" in leaving.get(live_sso_hall.url + "/", timeout=10).text
    assert "1 hall session(s) ended" in server_log(live_sso_hall)
    # The same person's other browser had its own SSO session: it stays signed in.
    assert NAME in staying.get(live_sso_hall.url + "/", timeout=10).text
