"""When a dependency fails: the database or the store down, the SMS gateway refusing.

People get the 服务暂不可用 page (503, ``Retry-After``) in their language rather than a bare
server error; clients get their protocol's error; nothing is used up by a send that never
happened, and signing out still reaches every CAS service.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp import create_app
from idp.account.codes import DELIVERY
from idp.auth.sessions import cookie_name
from shared.factory import POSTGRES_CONNECT_TIMEOUT, STORE_EXTENSION
from shared.store import RedisStore
from tests.conftest import TEST_DATABASE_URL, AppFactory
from tests.fakes.recorder import Recorder
from tests.fakes.sms_gateways import FakeAliyunSms
from tests.idp.cas_support import SERVICE, add_service, get_ticket
from tests.idp.conftest import MakeUser, csrf_token, post_form, sign_in
from tests.idp.oidc_support import (
    authorize,
    authorize_url,
    basic,
    bearer,
    exchange,
    redirect_params,
    register,
)
from tests.idp.wizard_support import identify

#: Nothing listens on port 1: connections are refused at once.
CLOSED = "127.0.0.1:1"
UNAVAILABLE = "服务暂时不可用"


def store_down(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on ``app``'s store (Redis) refuses connections, as when Redis is down."""
    dead = RedisStore.from_url(f"redis://{CLOSED}/0", "gone:")
    monkeypatch.setitem(app.extensions, STORE_EXTENSION, dead)


@pytest.fixture
def database_down(make_idp: AppFactory) -> Iterator[Flask]:
    """An IdP whose PostgreSQL refuses connections (not kept by the factory: nothing to clean)."""
    app = create_app(make_idp.config(DATABASE_URL=f"postgresql+psycopg://postgres@{CLOSED}/idp"))
    yield app
    with app.app_context():
        app.extensions["sqlalchemy"].engine.dispose()


def assert_unavailable(response: Any) -> None:
    assert response.status_code == 503, response.status_code
    assert response.headers["Retry-After"].isdigit()
    assert UNAVAILABLE in response.get_data(as_text=True)


def test_signed_in_browser_gets_the_unavailable_page_when_the_database_is_down(
    database_down: Flask,
) -> None:
    """The error page looks up who is signed in; with the database gone that lookup must not
    turn the page into a bare server error (a remembered browser carries the cookie for weeks)."""
    browser = database_down.test_client()
    with database_down.app_context():
        browser.set_cookie(cookie_name(), "a" * 64)
    assert_unavailable(browser.get("/security"))
    home = browser.get("/")  # a page that needs nothing else renders, as signed out
    assert home.status_code == 200 and 'class="user-name"' not in home.get_data(as_text=True)


def test_a_database_that_never_answers_fails_the_request_in_seconds(
    make_idp: AppFactory,
) -> None:
    """A server that takes the connection and then says nothing (hung, half-failed over):
    the request gives up after the connect timeout instead of holding its thread for the
    operating system's two minutes."""
    silent = socket.create_server(("127.0.0.1", 0))  # listens, never accepts or answers
    port = silent.getsockname()[1]
    # One attempt (no TLS first): the test waits one connect timeout, not two.
    url = f"postgresql+psycopg://u@127.0.0.1:{port}/d?sslmode=disable"
    app = create_app(make_idp.config(DATABASE_URL=url))
    browser = app.test_client()
    with app.app_context():
        browser.set_cookie(cookie_name(), "a" * 64)
    try:
        started = time.monotonic()
        assert_unavailable(browser.get("/security"))
        assert time.monotonic() - started < POSTGRES_CONNECT_TIMEOUT + 3
    finally:
        silent.close()
        with app.app_context():
            app.extensions["sqlalchemy"].engine.dispose()


@pytest.mark.skipif(not TEST_DATABASE_URL, reason="a PostgreSQL setting")
def test_connections_carry_their_time_limits(make_idp: AppFactory) -> None:
    """``*_DATABASE_STATEMENT_TIMEOUT`` bounds a query the server accepted but never finishes;
    the connect timeout and TCP limits are on every connection."""
    from idp.extensions import db

    app = make_idp(DATABASE_STATEMENT_TIMEOUT=7)
    with app.app_context():
        assert db.session.execute(db.text("SHOW statement_timeout")).scalar() == "7s"
        raw = db.engine.raw_connection()
        try:
            parameters = raw.driver_connection.info.get_parameters()  # type: ignore[union-attr]
        finally:
            raw.close()
    assert parameters["connect_timeout"] == str(POSTGRES_CONNECT_TIMEOUT)
    assert int(parameters["tcp_user_timeout"]) > 0 and parameters["keepalives"] == "1"


def test_sign_in_answers_unavailable_when_the_store_is_down(
    idp_app: Flask, make_user: MakeUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attempt counters live in the store: without it a sign-in cannot be judged, and
    the person is told to try again shortly (503), not that the system broke (500)."""
    user = make_user("2024000001")
    browser = idp_app.test_client()
    token = csrf_token(browser, "/login")
    store_down(idp_app, monkeypatch)
    answer = browser.post(
        "/login", data={"csrf_token": token, "identifier": user.account, "password": "x" * 10}
    )
    assert_unavailable(answer)


def test_token_endpoint_reports_an_outage_as_an_oauth_error(
    idp_app: Flask, make_user: MakeUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client's back end gets RFC 6749 JSON (``temporarily_unavailable``, not stored), with
    the CORS header a browser-based client needs to read it, never an HTML page."""
    user = make_user("2024000001")
    rp = register(idp_app)
    browser = idp_app.test_client()
    sign_in(browser, user.account)
    authz = authorize(browser, rp)
    store_down(idp_app, monkeypatch)
    answer = exchange(idp_app.test_client(), rp, authz, headers={"Accept": "application/json"})
    assert answer.status_code == 503 and answer.mimetype == "application/json"
    assert answer.get_json()["error"] == "temporarily_unavailable"
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.headers["Retry-After"].isdigit()
    assert answer.headers["Access-Control-Allow-Origin"] == "*"


def test_token_endpoint_reports_a_fault_as_server_error(
    idp_app: Flask, make_user: MakeUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any other failure inside the endpoint is ``server_error`` (500), rolled back."""
    from idp.oidc import views

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    rp = register(idp_app)
    monkeypatch.setattr(views.authorization, "create_token_response", broken)
    answer = idp_app.test_client().post(
        "/oauth2/token", data={"grant_type": "client_credentials"}, headers=basic(rp)
    )
    assert answer.status_code == 500 and answer.get_json()["error"] == "server_error"
    assert "Retry-After" not in answer.headers


def test_authorize_sends_an_outage_back_to_the_verified_client(
    idp_app: Flask, make_user: MakeUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the client and its redirect URI verified, the failure goes back to the client
    (RFC 6749 §4.1.2.1), with its state and our ``iss``, instead of stranding the person."""
    user = make_user("2024000001")
    rp = register(idp_app)
    browser = idp_app.test_client()
    sign_in(browser, user.account)
    store_down(idp_app, monkeypatch)
    answer = browser.get(authorize_url(rp, state="s-42"))
    assert answer.status_code == 302
    assert answer.headers["Location"].startswith(rp.redirect_uri)
    params = redirect_params(answer)
    assert params["error"] == "temporarily_unavailable" and params["state"] == "s-42"
    assert params["iss"] == idp_app.config["ISSUER"]


def test_unverifiable_authorization_request_gets_the_page_not_a_redirect(
    database_down: Flask,
) -> None:
    """Without the database the redirect URI cannot be checked: never redirect to it."""
    answer = database_down.test_client().get(
        "/oauth2/authorize?client_id=c&redirect_uri=https%3A%2F%2Fevil.example%2F"
        "&response_type=code&scope=openid"
    )
    assert_unavailable(answer)
    assert "Location" not in answer.headers


@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [
        ("GET", "/.well-known/openid-configuration", {}),
        ("GET", "/oauth2/jwks", {}),
        ("GET", "/oauth2/userinfo", bearer("a" * 40)),
        ("POST", "/oauth2/token", {"Authorization": "Basic Yzpz"}),
        ("POST", "/oauth2/introspect", {"Authorization": "Basic Yzpz"}),
        ("POST", "/oauth2/revoke", {"Authorization": "Basic Yzpz"}),
    ],
)
def test_protocol_endpoints_answer_json_when_the_database_is_down(
    database_down: Flask, method: str, path: str, headers: dict[str, str]
) -> None:
    data = {"grant_type": "client_credentials", "token": "t"} if method == "POST" else None
    answer = database_down.test_client().open(path, method=method, headers=headers, data=data)
    assert answer.status_code == 503 and answer.mimetype == "application/json"
    assert answer.get_json()["error"] == "temporarily_unavailable"


def test_cas_validation_answers_internal_error_when_the_database_is_down(
    database_down: Flask,
) -> None:
    answer = database_down.test_client().get(
        "/cas/p3/serviceValidate",
        query_string={"ticket": "ST-" + "a" * 40, "service": SERVICE, "format": "JSON"},
    )
    failure = answer.get_json()["serviceResponse"]["authenticationFailure"]
    assert failure["code"] == "INTERNAL_ERROR"


def test_signing_out_reaches_cas_services_while_the_store_is_down(
    make_idp: AppFactory,
    make_user: MakeUser,
    recorder: Recorder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The logout requests need only the database: a store outage (where proxy-granting
    tickets are forgotten) must not leave every CAS service signed in."""
    app = make_idp()
    browser = app.test_client()
    add_service(app, re.escape(recorder.url) + "/.*")
    ticket = get_ticket(browser, make_user().account, recorder.url + "/app")
    store_down(app, monkeypatch)
    assert browser.get("/cas/logout").status_code == 200
    [delivered] = recorder.wait_for(1, timeout=5)
    assert ticket in delivered["form"]["logoutRequest"][0]


def recovery_at_verification(app: Flask, account: str) -> FlaskClient:
    browser = app.test_client()
    assert identify(browser, "/recover", account).status_code == 302
    return browser


def test_codes_the_gateway_refused_are_given_back(
    make_idp: AppFactory, make_user: MakeUser
) -> None:
    """找回密码 while the SMS gateway refuses: each try says 验证码发送失败 and may be repeated at
    once; none uses up the day's codes, so the owner recovers the account once it is back."""
    with FakeAliyunSms() as gateway:
        app = make_idp(SMS_PROVIDER="aliyun", CODE_DAILY_LIMIT=3, **gateway.settings())
        user = make_user("2024000001", verified_phone="13800138000")
        browser = recovery_at_verification(app, user.account)
        for _ in range(4):
            gateway.fail_next("isv.BUSINESS_LIMIT_CONTROL")
            failed = post_form(browser, "/recover/verify", {"method": "sms", "send": "1"})
            assert failed.status_code == 502
            assert "验证码发送失败" in failed.get_data(as_text=True)
        sent = post_form(browser, "/recover/verify", {"method": "sms", "send": "1"})
        assert sent.status_code == 200 and "验证码已发送至" in sent.get_data(as_text=True)
        [sms] = gateway.received
        assert sms.phone == "13800138000"


def test_background_codes_the_gateway_refused_are_given_back(
    make_idp: AppFactory, make_user: MakeUser
) -> None:
    """The same for SMS sign-in, which sends in the background: a refused send voids its code
    and gives back the day's count and the address's hourly count."""
    with FakeAliyunSms() as gateway:
        app = make_idp(
            SMS_PROVIDER="aliyun", CODE_DAILY_LIMIT=2, CODE_IP_HOURLY_LIMIT=2, **gateway.settings()
        )
        make_user("2024000001", verified_phone="13800138000")
        browser = app.test_client()
        for _ in range(3):
            gateway.fail_next("isv.BUSINESS_LIMIT_CONTROL")
            asked = post_form(browser, "/login?tab=sms", {"phone": "13800138000", "send": "1"})
            assert asked.status_code == 200
            assert app.extensions[DELIVERY].wait_idle(10)
        assert gateway.received == []
        asked = post_form(browser, "/login?tab=sms", {"phone": "13800138000", "send": "1"})
        assert asked.status_code == 200
        assert app.extensions[DELIVERY].wait_idle(10)
        [sms] = gateway.received
        signed_in = post_form(
            browser, "/login?tab=sms", {"phone": "13800138000", "code": sms.params[0]}
        )
        assert signed_in.status_code == 302
