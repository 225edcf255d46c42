"""CAS Protocol 3.0 under /cas/: login (service, renew, gateway, warn, method=POST) and
malformed requests."""

from __future__ import annotations

import re
import time
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp.audit.models import AuditEvent
from idp.cas.views import _with_ticket
from idp.extensions import db
from tests.idp.cas_support import (
    NS,
    SERVICE,
    TICKET,
    add_service,
    attributes_of,
    failure_code,
    get_ticket,
    ticket_in,
    validate,
    xml,
)
from tests.idp.conftest import MakeUser, post_form, sign_in

# --- /cas/login ------------------------------------------------------------------------------


def test_login_without_session_signs_in_and_returns_with_ticket(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """No session: /cas/login sends to /login, then to the service with a fresh-login ticket."""
    add_service(idp_app)
    user = make_user()
    first = idp_client.get("/cas/login", query_string={"service": SERVICE})
    assert first.status_code == 302 and first.location.startswith("/login?next=")
    assert first.headers["Cache-Control"] == "no-store"
    ticket = get_ticket(idp_client, user.account)
    assert TICKET.match(ticket) and ticket.startswith("ST-")
    response = validate(idp_client, "p3/serviceValidate", ticket)
    success = xml(response).find(NS + "authenticationSuccess")
    assert success is not None and success.findtext(NS + "user") == user.account
    assert attributes_of(response)["isFromNewLogin"] == ["true"]


def test_ticket_redirect_keeps_query_and_fragment() -> None:
    """``ticket=`` joins an existing query with ``&`` and goes before a fragment."""
    assert _with_ticket("https://a/x", "ST-1") == "https://a/x?ticket=ST-1"
    assert _with_ticket("https://a/x?y=1", "ST-1") == "https://a/x?y=1&ticket=ST-1"
    assert _with_ticket("https://a/x?", "ST-1") == "https://a/x?ticket=ST-1"
    assert _with_ticket("https://a/x?y=1#top", "ST-1") == "https://a/x?y=1&ticket=ST-1#top"


def test_single_sign_on_issues_ticket_without_prompt(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """With a session, /cas/login redirects (303) straight back; the ticket is not a new login."""
    add_service(idp_app)
    user = make_user()
    sign_in(idp_client, user.account)
    response = idp_client.get("/cas/login", query_string={"service": SERVICE})
    assert response.status_code == 303
    assert response.location.startswith(SERVICE + "&ticket=ST-")
    answer = validate(idp_client, "p3/serviceValidate", ticket_in(response.location))
    assert attributes_of(answer)["isFromNewLogin"] == ["false"]


def test_signed_in_without_service_sees_success_page(
    idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """No service: signed out → /login?next=/cas/login; signed in → a 登录成功 page."""
    response = idp_client.get("/cas/login")
    assert response.status_code == 302
    assert parse_qs(urlsplit(response.location).query)["next"][0].startswith("/cas/login")
    user = make_user()
    sign_in(idp_client, user.account)
    page = idp_client.get("/cas/login")
    assert page.status_code == 200 and "登录成功" in page.get_data(as_text=True)
    assert page.headers["Cache-Control"] == "no-store"


def test_unregistered_or_malformed_service_is_refused_without_redirect(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """An unknown service gets a 403 page, a non-web URL a 400 page; no Location either way."""
    add_service(idp_app)
    user = make_user()
    sign_in(idp_client, user.account)
    for service, status in (
        ("https://evil.example/", 403),
        ("https://app.example.edu.evil.example/", 403),
        ("javascript:alert(1)", 400),
    ):
        response = idp_client.get("/cas/login", query_string={"service": service})
        assert response.status_code == status and "Location" not in response.headers
        assert "无法访问该应用" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "service",
    [
        "https://app.example.edu:99999/x",  # a port no URL can have
        "https://" + "a" * 64 + ".example.edu/x",  # a host label IDNA refuses (over 63)
        "https://app.example.edu/\x1b[31m",  # a terminal escape, bound for the logs
        "https://app.example.edu/\x0bx",  # vertical tab
        "https://app.example.edu/\x7fx",  # DEL
    ],
)
def test_service_no_location_header_can_carry_is_refused_not_a_500(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser, service: str
) -> None:
    """A pattern allowing ports and subdomains still never leads to a 500 or a ticket."""
    add_service(idp_app, r"https://([a-z0-9-]+\.)*example\.edu(:\d+)?/.*")
    gateway = idp_client.get("/cas/login", query_string={"service": service, "gateway": "true"})
    assert gateway.status_code == 400 and "Location" not in gateway.headers
    user = make_user()
    sign_in(idp_client, user.account)
    response = idp_client.get("/cas/login", query_string={"service": service})
    assert response.status_code == 400 and "Location" not in response.headers
    assert "应用地址不正确" in response.get_data(as_text=True)
    page = idp_client.get("/cas/logout", query_string={"service": service})
    assert page.status_code == 200 and "已退出登录" in page.get_data(as_text=True)


def test_backtracking_pattern_answers_a_long_service_url_at_once(
    idp_app: Flask, idp_client: FlaskClient
) -> None:
    """``(a+)+b`` is matched by RE2 in linear time: an anonymous /cas/login or /cas/logout
    with 2,000 ``a``s cannot hold a worker (a backtracking matcher would take ages)."""
    add_service(idp_app, r"https://app\.example\.edu/(a+)+b")
    slow = "https://app.example.edu/" + "a" * 2000 + "!"
    started = time.monotonic()
    login = idp_client.get("/cas/login", query_string={"service": slow})
    logout = idp_client.get("/cas/logout", query_string={"service": slow})
    assert time.monotonic() - started < 1
    assert login.status_code == 403 and "Location" not in logout.headers
    matching = idp_client.get("/cas/login", query_string={"service": slow[:-1] + "b"})
    assert matching.status_code == 302 and matching.location.startswith("/login")


def test_access_policy_refusal_issues_no_ticket(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """A student at a staff-only service sees a 403 refusal; the refusal is audited."""
    add_service(idp_app, allowed_kinds=["staff"])
    user = make_user()
    sign_in(idp_client, user.account)
    response = idp_client.get("/cas/login", query_string={"service": SERVICE})
    assert response.status_code == 403 and "Location" not in response.headers
    assert "无权访问" in response.get_data(as_text=True)
    with idp_app.app_context():
        assert db.session.query(AuditEvent).filter_by(action="cas.ticket", outcome="denied").count()


def test_gateway_without_session_returns_without_ticket(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """gateway never prompts: no session → back to the service with no ticket; SSO → a ticket."""
    add_service(idp_app)
    response = idp_client.get("/cas/login", query_string={"service": SERVICE, "gateway": "true"})
    assert response.status_code == 303 and response.location == SERVICE
    user = make_user()
    sign_in(idp_client, user.account)
    again = idp_client.get("/cas/login", query_string={"service": SERVICE, "gateway": "true"})
    assert again.status_code == 303 and "ticket=ST-" in again.location


def test_renew_forces_credentials_once_and_marks_new_login(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """renew skips SSO, asks for the password, then comes back without looping."""
    add_service(idp_app)
    user = make_user()
    sign_in(idp_client, user.account)
    sso_ticket = get_ticket(idp_client, user.account)
    assert failure_code(validate(idp_client, "serviceValidate", sso_ticket, renew="true")) == (
        "INVALID_TICKET"
    )
    asked = idp_client.get("/cas/login", query_string={"service": SERVICE, "renew": "true"})
    assert asked.status_code == 302 and asked.location.startswith("/login")
    renewed = get_ticket(idp_client, user.account, renew="true", gateway="true")
    answer = validate(idp_client, "p3/serviceValidate", renewed, renew="true")
    assert attributes_of(answer)["isFromNewLogin"] == ["true"]


def test_renew_marker_cannot_be_replayed(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """The return address after renew works once; replaying it asks for credentials again."""
    add_service(idp_app)
    user = make_user()
    sign_in(idp_client, user.account)
    asked = idp_client.get("/cas/login", query_string={"service": SERVICE, "renew": "true"})
    next_url = parse_qs(urlsplit(asked.location).query)["next"][0]
    sign_in(idp_client, user.account, next=next_url)
    assert idp_client.get(next_url).status_code == 303
    replay = idp_client.get(next_url)
    assert replay.status_code == 302 and replay.location.startswith("/login")


def test_renew_marker_made_in_another_browser_does_not_count(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """A renew return address from another browser asks this one for credentials again."""
    add_service(idp_app)
    user = make_user()
    stranger = idp_app.test_client()
    asked = stranger.get("/cas/login", query_string={"service": SERVICE, "renew": "true"})
    next_url = parse_qs(urlsplit(asked.location).query)["next"][0]
    sign_in(idp_client, user.account)  # the owner signed in a moment later, without renew
    response = idp_client.get(next_url)
    assert response.status_code == 302 and response.location.startswith("/login")


def test_ticket_from_single_sign_on_survives_a_renew_sign_in_until_validated(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """A service ticket not yet validated when the user signs in again for renew: valid once."""
    add_service(idp_app)
    user = make_user()
    sign_in(idp_client, user.account)
    pending = get_ticket(idp_client, user.account)  # by single sign-on
    before = idp_client.get_cookie("hongliu_sso")
    get_ticket(idp_client, user.account, renew="true")  # another service asks for renew
    after = idp_client.get_cookie("hongliu_sso")
    assert before is not None and after is not None and before.value != after.value
    answer = validate(idp_client, "p3/serviceValidate", pending)
    assert xml(answer).findtext(f"{NS}authenticationSuccess/{NS}user") == user.account
    assert attributes_of(answer)["isFromNewLogin"] == ["false"]
    assert failure_code(validate(idp_client, "serviceValidate", pending)) == "INVALID_TICKET"


def test_warn_asks_before_single_sign_on(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """warn shows a 确认登录 page; its form (with CSRF token) continues to the service."""
    add_service(idp_app)
    user = make_user()
    sign_in(idp_client, user.account)
    url = "/cas/login?" + urlencode({"service": SERVICE, "warn": "true"})
    page = idp_client.get(url)
    assert page.status_code == 200 and "确认登录" in page.get_data(as_text=True)
    response = post_form(idp_client, url, {"service": SERVICE})
    assert response.status_code == 303 and "ticket=ST-" in response.location


def test_method_post_renders_self_submitting_form(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """method=POST answers a form posting the ticket to the service, with a static script."""
    add_service(idp_app)
    user = make_user()
    sign_in(idp_client, user.account)
    response = idp_client.get("/cas/login", query_string={"service": SERVICE, "method": "POST"})
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    assert 'method="post" action="https://app.example.edu/cas/callback?next=%2Fhome"' in page
    assert re.search(r'name="ticket" value="ST-[A-Za-z0-9]{43}"', page)
    assert "cas-post.js" in page and "<script>" not in page and "继续" in page


# --- robustness ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/cas/serviceValidate?ticket=ST-" + "a" * 5000 + "&service=x",
        "/cas/serviceValidate?ticket=ST-%E4%B8%AD%E6%96%87&service=%00",
        "/cas/p3/proxyValidate?ticket=PT-../../etc&service=http://[::1&pgtUrl=javascript:x",
        "/cas/proxyValidate?ticket=ST-x&service=y&format=%00",
        "/cas/validate?ticket=&service=&renew=%FF",
        "/cas/proxy?pgt=PGT-" + "b" * 300 + "&targetService=http://[bad",
        "/cas/login?service=http://[bad",
        "/cas/login?service=" + "h" * 10000,
        "/cas/login?service=https://app.example.edu/%0d%0aSet-Cookie:x&method=POST",
        "/cas/login?renew&gateway&warn&method=HEADER",
        "/cas/logout?service=http://[bad&url=javascript:alert(1)",
        "/cas/login?fresh=zz&service=https://app.example.edu/",
    ],
)
def test_malformed_requests_never_fail_with_500(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser, url: str
) -> None:
    """Hostile or broken parameters get a protocol answer or a clear page, never a 500."""
    add_service(idp_app)
    user = make_user()
    sign_in(idp_client, user.account)
    response = idp_client.get(url)
    assert response.status_code < 500
    location = response.headers.get("Location", "")
    assert "\n" not in location and "\r" not in location
