"""Signing in to the hall through a real, live IdP: the code flow with PKCE, refusals, next
sanitising and RP-initiated logout. Nothing about the IdP is faked."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from flask import Flask

from hall.auth.models import HallSession, HallUser
from hall.auth.operations import record_sign_in, safe_next
from hall.auth.sessions import SESSION_KEY, login_required
from hall.extensions import db
from tests.conftest import AppFactory
from tests.e2e.conftest import LiveServer, free_port
from tests.hall.sso_support import (
    ACCOUNT,
    CALLBACK,
    NAME,
    TEST_CLIENT_BASE,
    csrf_token,
    hall_sessions,
    query,
    sign_in,
    sign_in_at_idp,
    start_sign_in,
)


def test_student_signs_in_through_the_idp_and_lands_on_next(
    sso_hall: Flask, sso_idp: LiveServer, hall_registration: dict[str, Any]
) -> None:
    """/login sends a PKCE code request to the IdP; the callback records the user and session."""
    client = sso_hall.test_client()
    authorize = start_sign_in(client, "/services?tab=mine")
    params = query(authorize)
    assert authorize.startswith(sso_idp.url + "/oauth2/authorize?")
    assert params["client_id"] == hall_registration["client_id"]
    assert params["redirect_uri"] == CALLBACK and params["response_type"] == "code"
    assert params["code_challenge_method"] == "S256" and len(params["code_challenge"]) >= 43
    assert set(params["scope"].split()) == {"openid", "profile", "email", "phone", "campus"}
    assert params["state"] and params["nonce"]

    browser = requests.Session()
    callback = sign_in_at_idp(browser, authorize, CALLBACK)
    assert query(callback)["iss"] == sso_idp.url
    landed = client.get(callback.removeprefix(TEST_CLIENT_BASE))
    assert landed.status_code == 302 and landed.headers["Location"] == "/services?tab=mine"
    with client.session_transaction() as flask_session:
        assert list(flask_session) == [SESSION_KEY]  # an opaque id, nothing else
        token = flask_session[SESSION_KEY]
    assert client.get_cookie("hongliu_hall") is not None

    with sso_hall.app_context():
        user = db.session.scalars(db.select(HallUser)).one()
        assert (user.account, user.name, user.kind, user.department_code) == (
            ACCOUNT,
            NAME,
            "student",
            "CS",
        )
        assert user.sub and user.department_name and user.phone == "+8613800000001"
        stored = db.session.scalars(db.select(HallSession)).one()
        assert stored.user_id == user.id and stored.idp_sid and stored.id_token
        assert stored.id != token  # only the token's digest is stored

    home = client.get("/")
    assert NAME in home.text and "退出" in home.text


def test_sign_in_without_department_claims_clears_the_department(hall_app: Flask) -> None:
    """The IdP omits the department of someone in none: with the campus claims, that means
    none; without them (scope dropped), what the hall knew stays."""
    campus = {"sub": "7", "account": ACCOUNT, "kind": "student"}
    with hall_app.app_context():
        user = record_sign_in({**campus, "department": "CS", "department_name": "计算机学院"})
        record_sign_in({"sub": "7", "name": NAME})
        assert (user.department_code, user.department_name) == ("CS", "计算机学院")
        record_sign_in(campus)
        assert (user.department_code, user.department_name) == (None, None)


def test_each_sign_in_starts_a_session_with_a_new_id(sso_hall: Flask) -> None:
    """Completing a second sign-in (another tab) replaces the session with a new id."""
    client = sso_hall.test_client()
    browser = requests.Session()
    first_tab, second_tab = start_sign_in(client), start_sign_in(client)
    first = sign_in_at_idp(browser, first_tab, CALLBACK)
    second = sign_in_at_idp(browser, second_tab, CALLBACK)  # single sign-on: no password
    assert client.get(first.removeprefix(TEST_CLIENT_BASE)).status_code == 302
    with client.session_transaction() as flask_session:
        token = flask_session[SESSION_KEY]
    (before,) = hall_sessions(sso_hall)
    assert client.get(second.removeprefix(TEST_CLIENT_BASE)).status_code == 302
    with client.session_transaction() as flask_session:
        assert flask_session[SESSION_KEY] != token
    (after,) = hall_sessions(sso_hall)
    assert after.id != before.id


def test_replayed_callback_is_refused(sso_hall: Flask) -> None:
    """A callback works once: replaying it shows 登录请求已失效 (400)."""
    client = sso_hall.test_client()
    browser = requests.Session()
    callback = sign_in_at_idp(browser, start_sign_in(client), CALLBACK)
    path = callback.removeprefix(TEST_CLIENT_BASE)
    assert client.get(path).status_code == 302
    replay = client.get(path)
    assert replay.status_code == 400 and "登录请求已失效" in replay.text
    assert replay.headers["Cache-Control"] == "no-store"


def test_state_from_another_browser_or_forged_is_refused(sso_hall: Flask) -> None:
    """A callback whose state this browser never started (login CSRF) is a 400 page."""
    victim, attacker = sso_hall.test_client(), sso_hall.test_client()
    callback = sign_in_at_idp(requests.Session(), start_sign_in(attacker), CALLBACK)
    refused = victim.get(callback.removeprefix(TEST_CLIENT_BASE))
    assert refused.status_code == 400 and "登录请求已失效" in refused.text

    start_sign_in(victim)
    forged = victim.get("/auth/callback", query_string={"code": "x", "state": "forged"})
    assert forged.status_code == 400 and "登录请求已失效" in forged.text
    assert hall_sessions(sso_hall) == []


def test_access_denied_shows_a_clear_page(sso_hall: Flask, sso_idp: LiveServer) -> None:
    """error=access_denied from the IdP shows 未能登录 (403), and the state is used up."""
    client = sso_hall.test_client()
    state = query(start_sign_in(client))["state"]
    answer = {"error": "access_denied", "state": state, "iss": sso_idp.url}
    denied = client.get("/auth/callback", query_string=answer)
    assert denied.status_code == 403 and "未能登录" in denied.text
    assert "重新登录" in denied.text
    assert client.get("/auth/callback", query_string=answer).status_code == 400


def test_response_from_another_issuer_is_refused(sso_hall: Flask) -> None:
    """RFC 9207: a callback whose ``iss`` is not the IdP's (mix-up) is refused."""
    client = sso_hall.test_client()
    callback = sign_in_at_idp(requests.Session(), start_sign_in(client), CALLBACK)
    params = {**query(callback), "iss": "https://evil.example"}
    refused = client.get("/auth/callback", query_string=params)
    assert refused.status_code == 400 and "登录未完成" in refused.text
    assert hall_sessions(sso_hall) == []


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/services?q=1", "/services?q=1"),
        ("/inbox", "/inbox"),
        (None, "/"),
        ("", "/"),
        ("https://evil.example/", "/"),
        ("//evil.example/x", "/"),
        ("/\\evil.example", "/"),
        ("\\\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("services", "/"),
        ("/login?next=/x", "/"),
        ("/logout", "/"),
        ("/auth/callback?code=1", "/"),
        ("/a\r\nLocation: https://evil.example", "/"),
    ],
)
def test_next_must_be_a_path_on_this_site(raw: str | None, expected: str) -> None:
    """``next`` leads only to a path of the hall, never to another site or back to sign-in."""
    assert safe_next(raw) == expected


def test_sign_in_with_a_foreign_next_lands_on_home(sso_hall: Flask) -> None:
    """A sign-in started with next=https://evil.example ends on the hall's home page."""
    _browser, landed = sign_in(sso_hall.test_client(), "https://evil.example/")
    assert landed.status_code == 302 and landed.headers["Location"] == "/"


def test_unreachable_idp_shows_a_chinese_error_page(make_hall: AppFactory) -> None:
    """IdP down: 统一身份认证暂时无法访问 with 503, not a 500."""
    app = make_hall(
        OIDC_ISSUER=f"http://127.0.0.1:{free_port()}",
        OIDC_CLIENT_ID="hall",
        OIDC_CLIENT_SECRET="secret",
    )
    page = app.test_client().get("/login?next=/inbox")
    assert page.status_code == 503 and "统一身份认证暂时无法访问" in page.text
    assert "next=/inbox" in page.text.replace("%2F", "/")


def test_idp_naming_another_issuer_is_a_502(
    make_hall: AppFactory, sso_idp: LiveServer, hall_registration: dict[str, Any]
) -> None:
    """A discovery document for another issuer is not used (OIDC Discovery §4.3)."""
    app = make_hall(
        OIDC_ISSUER=sso_idp.url + "/other",
        OIDC_CLIENT_ID=hall_registration["client_id"],
        OIDC_CLIENT_SECRET=hall_registration["client_secret"],
    )
    page = app.test_client().get("/login")
    assert page.status_code == 502 and "统一身份认证响应异常" in page.text


def test_unconfigured_hall_says_so(make_hall: AppFactory) -> None:
    """Without HALL_OIDC_CLIENT_ID the sign-in page explains it is not set up (503)."""
    page = make_hall().test_client().get("/login")
    assert page.status_code == 503 and "登录功能尚未配置" in page.text


def test_login_required_hands_in_the_user(sso_hall: Flask) -> None:
    """Signed out, a protected page sends to /login?next=…; signed in, the view gets the user."""

    @login_required
    def mine(user: HallUser) -> str:
        return f"hello {user.account}"

    sso_hall.add_url_rule("/mine", view_func=mine)
    client = sso_hall.test_client()
    bounced = client.get("/mine?x=1")
    assert bounced.status_code == 302
    assert query(bounced.headers["Location"])["next"] == "/mine?x=1"
    sign_in(client, "/mine?x=1")
    assert client.get("/mine?x=1").text == f"hello {ACCOUNT}"


def test_logout_ends_the_hall_and_the_idp_session(
    sso_hall: Flask, sso_idp: LiveServer, hall_registration: dict[str, Any]
) -> None:
    """退出 ends the hall session, then RP-initiated logout ends the IdP's and comes home."""
    client = sso_hall.test_client()
    browser, _landed = sign_in(client)
    confirm = client.get("/logout")
    assert confirm.status_code == 200 and "确认退出" in confirm.text
    assert client.post("/logout").status_code == 400  # no CSRF token
    assert len(hall_sessions(sso_hall)) == 1

    leaving = client.post("/logout", data={"csrf_token": csrf_token(confirm.text)})
    assert leaving.status_code == 302
    to_idp = leaving.headers["Location"]
    assert to_idp.startswith(sso_idp.url + "/oauth2/logout?")
    params = query(to_idp)
    assert params["post_logout_redirect_uri"] == TEST_CLIENT_BASE + "/"
    assert params["client_id"] == hall_registration["client_id"] and params["id_token_hint"]
    assert hall_sessions(sso_hall) == []

    back = browser.get(to_idp, allow_redirects=False, timeout=10)
    assert back.status_code == 302 and back.headers["Location"] == TEST_CLIENT_BASE + "/"
    assert "您当前没有登录" in browser.get(sso_idp.url + "/logout", timeout=10).text
    home = client.get("/")
    assert "您已退出红柳易办" in home.text and NAME not in home.text and "登录" in home.text


def test_sign_in_still_works_after_the_idp_rotates_its_signing_key(
    sso_hall: Flask, sso_idp: LiveServer
) -> None:
    """An ID token signed with a key the hall has not seen makes it refetch the IdP's JWKS."""
    import json

    from joserfc.util import urlsafe_b64decode

    def kids() -> list[str]:
        with sso_hall.app_context():
            tokens = db.session.scalars(
                db.select(HallSession.id_token).order_by(HallSession.created_at)
            ).all()
        return [json.loads(urlsafe_b64decode(t.split(".")[0].encode()))["kid"] for t in tokens]

    first = sso_hall.test_client()
    assert sign_in(first)[1].status_code == 302
    sso_idp.flask("keys", "rotate", "--now")  # signing with it at once: a kid the hall never saw
    second = sso_hall.test_client()
    _, landed = sign_in(second)
    assert landed.status_code == 302 and landed.headers["Location"] == "/"
    old, new = kids()
    assert old != new
    assert NAME in second.get("/").text
