"""CAS Protocol 3.0 under /cas/: login, tickets, validation, proxying and single logout."""

from __future__ import annotations

import json
import re
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp.audit.models import AuditEvent
from idp.cas.responses import validation_success
from idp.cas.views import _with_ticket
from idp.clients.models import CasService
from idp.clients.operations import register_cas_service
from idp.directory.models import Department, User, UserStatus
from idp.extensions import db
from shared.factory import get_store
from tests.fakes import QuietHTTPServer
from tests.idp.conftest import MakeUser, post_form, sign_in

NS = "{http://www.yale.edu/tp/cas}"
SERVICE = "https://app.example.edu/cas/callback?next=%2Fhome"
OTHER = "https://other.example.edu/"
TICKET = re.compile(r"^(ST|PT|PGT|PGTIOU)-[A-Za-z0-9]{43}$")


# --- helpers -------------------------------------------------------------------------------


def add_service(app: Flask, pattern: str = r"https://app\.example\.edu/.*", **options: Any) -> int:
    """Register a CAS service (plus access-policy columns given as options); returns its id."""
    policy = {k: options.pop(k) for k in ("allowed_kinds", "allowed_departments") if k in options}
    with app.app_context():
        service = register_cas_service("教务系统", pattern, **options)
        for name, value in policy.items():
            setattr(service, name, value)
        db.session.commit()
        return int(service.id)


def ticket_in(location: str) -> str:
    """The ``ticket`` query parameter of a redirect."""
    return parse_qs(urlsplit(location).query)["ticket"][0]


def follow_to_service(
    client: FlaskClient, account: str, service: str = SERVICE, **params: Any
) -> Any:
    """Open /cas/login for ``service``, signing in when asked; returns the final response."""
    response = client.get("/cas/login", query_string={"service": service, **params})
    if response.status_code == 302 and response.location.startswith("/login"):
        next_url = parse_qs(urlsplit(response.location).query)["next"][0]
        signed = sign_in(client, account, next=next_url)
        assert signed.status_code == 302 and signed.location == next_url
        response = client.get(next_url)
    return response


def get_ticket(client: FlaskClient, account: str, service: str = SERVICE, **params: Any) -> str:
    """A service ticket for ``service`` through the real login flow."""
    response = follow_to_service(client, account, service, **params)
    assert response.status_code == 303, response.get_data(as_text=True)
    assert response.location.startswith(service.split("?")[0])
    return ticket_in(response.location)


def xml(response: Any) -> ET.Element:
    """The parsed CAS response (our own server's output)."""
    assert response.status_code == 200
    assert response.mimetype == "application/xml"
    root = ET.fromstring(response.get_data())  # noqa: S314 - trusted, produced by the IdP
    assert root.tag == NS + "serviceResponse"
    return root


def validate(client: FlaskClient, path: str, ticket: str, service: str = SERVICE, **params: Any):
    """GET a validation endpoint; returns the response."""
    return client.get(f"/cas/{path}", query_string={"ticket": ticket, "service": service, **params})


def failure_code(response: Any) -> str:
    """The failure code of an XML answer (``authenticationFailure`` or ``proxyFailure``)."""
    node = xml(response)[0]
    assert node.tag in (NS + "authenticationFailure", NS + "proxyFailure"), node.tag
    return node.attrib["code"]


def attributes_of(response: Any) -> dict[str, list[str]]:
    """The ``cas:attributes`` of a successful XML answer, as lists."""
    found: dict[str, list[str]] = {}
    holder = xml(response).find(f"{NS}authenticationSuccess/{NS}attributes")
    for element in holder if holder is not None else []:
        found.setdefault(element.tag.removeprefix(NS), []).append(element.text or "")
    return found


@dataclass
class Recorder:
    """A real HTTP server on 127.0.0.1 that records requests and answers ``status``."""

    status: int = 200
    delay: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)
    server: QuietHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Poll (bounded) until ``count`` requests arrived."""
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.requests


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    """Start a recording HTTP server; stopped after the test."""
    rec = Recorder()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            parts = urlsplit(self.path)
            rec.requests.append(
                {
                    "method": self.command,
                    "path": parts.path,
                    "query": parse_qs(parts.query),
                    "form": parse_qs(body),
                }
            )
            time.sleep(rec.delay)
            self.send_response(rec.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = _answer

        def log_message(self, *args: Any) -> None:
            pass

    server = QuietHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.block_on_close = False
    rec.server = server
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield rec
    server.shutdown()
    server.server_close()


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


# --- tickets and validation -----------------------------------------------------------------


def test_tickets_use_the_protocol_alphabet_and_lifetime(make_idp: Any, make_user: MakeUser) -> None:
    """ST- plus 43 characters of [A-Za-z0-9]; it lives CAS_TICKET_TTL seconds in the store."""
    app = make_idp(CAS_TICKET_TTL=120)
    client = app.test_client()
    add_service(app)
    user = make_user()
    tickets = {get_ticket(client, user.account) for _ in range(5)}
    assert len(tickets) == 5 and all(TICKET.match(t) for t in tickets)
    with app.app_context():
        ttl = get_store().ttl(f"cas:ticket:{tickets.pop()}")
    assert ttl is not None and 100 < ttl <= 120


def test_service_validate_xml_and_json(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """serviceValidate answers the cas namespace in XML, the spec's shape in JSON."""
    add_service(idp_app, attributes=["name"])
    user = make_user()
    response = validate(idp_client, "serviceValidate", get_ticket(idp_client, user.account))
    success = xml(response).find(NS + "authenticationSuccess")
    assert success is not None and success.findtext(NS + "user") == user.account
    assert success.find(NS + "attributes") is None  # attributes are for /p3/
    answer = validate(
        idp_client, "serviceValidate", get_ticket(idp_client, user.account), format="JSON"
    )
    assert answer.mimetype == "application/json"
    assert answer.get_json() == {
        "serviceResponse": {"authenticationSuccess": {"user": user.account}}
    }
    bad = validate(idp_client, "serviceValidate", "ST-x", format="JSON")
    failure = bad.get_json()["serviceResponse"]["authenticationFailure"]
    assert failure["code"] == "INVALID_TICKET" and failure["description"]


def test_p3_releases_registered_attributes_only(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """p3 attributes follow the registration; unverified email is withheld; remember-me shows."""
    with idp_app.app_context():
        db.session.add(Department(code="CS", name="计算机学院"))
        db.session.commit()
    add_service(
        idp_app,
        attributes=["name", "account", "kind", "department", "department_name", "email", "phone"],
    )
    user = make_user(department_code="CS", email="zs@example.edu", verified_phone="13800138001")
    sign_in(idp_client, user.account, remember="y")
    ticket = get_ticket(idp_client, user.account)
    attributes = attributes_of(validate(idp_client, "p3/serviceValidate", ticket))
    assert attributes["name"] == ["张三"] and attributes["account"] == [user.account]
    assert attributes["kind"] == ["student"] and attributes["department"] == ["CS"]
    assert attributes["department_name"] == ["计算机学院"]
    assert attributes["phone"] == ["13800138001"] and "email" not in attributes
    assert attributes["longTermAuthenticationRequestTokenUsed"] == ["true"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", attributes["authenticationDate"][0])
    json_answer = validate(
        idp_client, "p3/serviceValidate", get_ticket(idp_client, user.account), format="json"
    ).get_json()["serviceResponse"]["authenticationSuccess"]["attributes"]
    assert json_answer["name"] == "张三" and json_answer["isFromNewLogin"] is False


def test_multi_valued_attributes_repeat_the_element(idp_app: Flask) -> None:
    """A list of values becomes repeated XML elements and a JSON array."""
    with idp_app.test_request_context():
        response = validation_success("u1", attributes={"role": ["a", "b"], "x": ["1"]})
        json_response = validation_success("u1", attributes={"role": ["a", "b"]}, fmt="JSON")
    values = [e.text for e in xml(response).iter(NS + "role")]
    assert values == ["a", "b"]
    answer = json.loads(json_response.get_data())
    assert answer["serviceResponse"]["authenticationSuccess"]["attributes"]["role"] == ["a", "b"]


def test_cas1_validate_answers_yes_or_no(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """CAS 1 /validate: ``yes\\n<account>\\n`` once, then ``no\\n``."""
    add_service(idp_app)
    user = make_user()
    ticket = get_ticket(idp_client, user.account)
    first = validate(idp_client, "validate", ticket)
    assert first.get_data(as_text=True) == f"yes\n{user.account}\n"
    assert first.mimetype == "text/plain"
    assert validate(idp_client, "validate", ticket).get_data(as_text=True) == "no\n"
    assert idp_client.get("/cas/validate").get_data(as_text=True) == "no\n"


def test_service_ticket_is_single_use_even_after_a_failed_attempt(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """Another service burns the ticket (INVALID_SERVICE); success also burns it."""
    add_service(idp_app)
    add_service(idp_app, r"https://other\.example\.edu/.*")
    user = make_user()
    ticket = get_ticket(idp_client, user.account)
    assert failure_code(validate(idp_client, "serviceValidate", ticket, OTHER)) == "INVALID_SERVICE"
    assert failure_code(validate(idp_client, "serviceValidate", ticket)) == "INVALID_TICKET"
    ticket = get_ticket(idp_client, user.account)
    assert xml(validate(idp_client, "serviceValidate", ticket)).find(NS + "authenticationSuccess")
    assert failure_code(validate(idp_client, "p3/serviceValidate", ticket)) == "INVALID_TICKET"


def test_expired_ticket_is_invalid(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """A ticket past its lifetime is INVALID_TICKET (its store entry is aged artificially)."""
    add_service(idp_app)
    user = make_user()
    ticket = get_ticket(idp_client, user.account)
    with idp_app.app_context():
        store = get_store()
        store.set(f"cas:ticket:{ticket}", store.get(f"cas:ticket:{ticket}") or "", 0.01)
    time.sleep(0.05)
    assert failure_code(validate(idp_client, "serviceValidate", ticket)) == "INVALID_TICKET"


def test_ticket_of_an_ended_session_is_invalid(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """Signing out before the service validates voids the ticket."""
    add_service(idp_app)
    user = make_user()
    ticket = get_ticket(idp_client, user.account)
    idp_client.get("/cas/logout")
    assert failure_code(validate(idp_client, "serviceValidate", ticket)) == "INVALID_TICKET"


def test_missing_parameters_and_bad_format_are_invalid_request(idp_client: FlaskClient) -> None:
    """INVALID_REQUEST for missing ticket/service and for a format other than XML or JSON."""
    for path in ("serviceValidate", "proxyValidate", "p3/serviceValidate", "p3/proxyValidate"):
        assert failure_code(idp_client.get(f"/cas/{path}?service=x")) == "INVALID_REQUEST"
        assert failure_code(idp_client.get(f"/cas/{path}?ticket=ST-1")) == "INVALID_REQUEST"
        bad = validate(idp_client, path, "ST-1", format="YAML")
        assert failure_code(bad) == "INVALID_REQUEST"
    assert failure_code(idp_client.get("/cas/proxy?pgt=PGT-1")) == "INVALID_REQUEST"


def test_validations_and_tickets_are_audited(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """Each validation attempt and each issued ticket leaves an audit event (never the ticket)."""
    add_service(idp_app)
    user = make_user()
    ticket = get_ticket(idp_client, user.account)
    validate(idp_client, "serviceValidate", ticket)
    validate(idp_client, "serviceValidate", ticket)
    with idp_app.app_context():
        events = db.session.query(AuditEvent).filter(AuditEvent.action.like("cas.%")).all()
        outcomes = sorted((e.action, e.outcome) for e in events)
        assert outcomes == [
            ("cas.ticket", "success"),
            ("cas.validate", "failure"),
            ("cas.validate", "success"),
        ]
        assert all(ticket not in (e.detail or "") for e in events)


# --- proxying --------------------------------------------------------------------------------


def test_proxy_flow_end_to_end(make_idp: Any, make_user: MakeUser, recorder: Recorder) -> None:
    """pgtUrl gets PGT and IOU; /proxy gives PTs; proxyValidate lists the proxy; logout ends it."""
    app = make_idp(CAS_PROXY_HTTPS_ONLY=False)
    client = app.test_client()
    portal = recorder.url + "/portal"
    add_service(app, re.escape(recorder.url) + "/.*", proxy_allowed=True, single_logout=False)
    add_service(app, attributes=["name"])
    user = make_user()
    ticket = get_ticket(client, user.account, portal)
    pgt_url = recorder.url + "/pgt?from=portal"
    success = xml(validate(client, "serviceValidate", ticket, portal, pgtUrl=pgt_url))[0]
    iou = success.findtext(NS + "proxyGrantingTicket") or ""
    callback = recorder.requests[-1]
    assert callback["path"] == "/pgt" and callback["query"]["from"] == ["portal"]
    assert callback["query"]["pgtIou"] == [iou] and TICKET.match(iou)
    pgt = callback["query"]["pgtId"][0]
    assert pgt.startswith("PGT-") and TICKET.match(pgt)

    proxied = client.get("/cas/proxy", query_string={"pgt": pgt, "targetService": SERVICE})
    pt = xml(proxied).findtext(f"{NS}proxySuccess/{NS}proxyTicket") or ""
    assert pt.startswith("PT-") and TICKET.match(pt)
    assert failure_code(validate(client, "serviceValidate", pt)) == "INVALID_TICKET_SPEC"
    assert validate(client, "validate", pt).get_data(as_text=True) == "no\n"

    pt = client.get("/cas/proxy", query_string={"pgt": pgt, "targetService": SERVICE}).get_data()
    pt_text = ET.fromstring(pt).findtext(f"{NS}proxySuccess/{NS}proxyTicket") or ""  # noqa: S314
    answer = validate(client, "p3/proxyValidate", pt_text)
    root = xml(answer)
    assert root.findtext(f"{NS}authenticationSuccess/{NS}user") == user.account
    proxies = [p.text for p in root.iter(NS + "proxy")]
    assert proxies == [pgt_url]
    assert attributes_of(answer)["name"] == ["张三"]

    unknown = client.get("/cas/proxy", query_string={"pgt": pgt, "targetService": OTHER})
    assert failure_code(unknown) == "UNAUTHORIZED_SERVICE"

    client.get("/cas/logout")
    dead = client.get("/cas/proxy", query_string={"pgt": pgt, "targetService": SERVICE})
    assert failure_code(dead) == "INVALID_TICKET"


def _proxy_ticket(client: FlaskClient, pgt: str, target: str) -> str:
    response = client.get("/cas/proxy", query_string={"pgt": pgt, "targetService": target})
    return xml(response).findtext(f"{NS}proxySuccess/{NS}proxyTicket") or ""


def _portal_pgt(client: FlaskClient, account: str, recorder: Recorder) -> str:
    """Sign in to the recorder's portal, which validates with a pgtUrl; returns its PGT."""
    portal = recorder.url + "/portal"
    ticket = get_ticket(client, account, portal)
    validate(client, "serviceValidate", ticket, portal, pgtUrl=recorder.url + "/pgt")
    return str(recorder.requests[-1]["query"]["pgtId"][0])


def test_renew_sign_in_keeps_proxy_granting_ticket_until_sign_out(
    make_idp: Any, make_user: MakeUser, recorder: Recorder
) -> None:
    """Signing in again (renew) keeps the portal's PGT and its PTs; signing out deletes it."""
    app = make_idp(CAS_PROXY_HTTPS_ONLY=False)
    client = app.test_client()
    add_service(app, re.escape(recorder.url) + "/.*", proxy_allowed=True, single_logout=False)
    add_service(app)
    user = make_user()
    pgt = _portal_pgt(client, user.account, recorder)
    pending = _proxy_ticket(client, pgt, SERVICE)
    for _ in range(2):  # two renew sign-ins, each with a new session id
        renewed = get_ticket(client, user.account, renew="true")
        answer = validate(client, "p3/serviceValidate", renewed, renew="true")
        assert attributes_of(answer)["isFromNewLogin"] == ["true"]
        pt = _proxy_ticket(client, pgt, SERVICE)
        assert pt.startswith("PT-"), "the PGT died with the session id"
        answer = validate(client, "proxyValidate", pt)
        assert xml(answer).findtext(f"{NS}authenticationSuccess/{NS}user") == user.account
    answer = validate(client, "proxyValidate", pending)
    assert xml(answer).findtext(f"{NS}authenticationSuccess/{NS}user") == user.account

    client.get("/cas/logout")
    with app.app_context():
        assert get_store().get(f"cas:ticket:{pgt}") is None  # deleted, not merely refused
    dead = client.get("/cas/proxy", query_string={"pgt": pgt, "targetService": SERVICE})
    assert failure_code(dead) == "INVALID_TICKET"


def test_another_user_signing_in_in_the_browser_inherits_no_tickets(
    make_idp: Any, make_user: MakeUser, recorder: Recorder
) -> None:
    """Someone else signing in in the same browser ends the first user's PGT and tickets."""
    app = make_idp(CAS_PROXY_HTTPS_ONLY=False)
    client = app.test_client()
    add_service(app, re.escape(recorder.url) + "/.*", proxy_allowed=True, single_logout=False)
    add_service(app)
    first, second = make_user(), make_user()
    pgt = _portal_pgt(client, first.account, recorder)
    pending = get_ticket(client, first.account)  # by single sign-on, not yet validated
    get_ticket(client, second.account, renew="true")  # the second person signs in
    with app.app_context():
        assert get_store().get(f"cas:ticket:{pgt}") is None
    dead = client.get("/cas/proxy", query_string={"pgt": pgt, "targetService": SERVICE})
    assert failure_code(dead) == "INVALID_TICKET"
    assert failure_code(validate(client, "serviceValidate", pending)) == "INVALID_TICKET"
    own = xml(validate(client, "serviceValidate", get_ticket(client, second.account)))
    assert own.findtext(f"{NS}authenticationSuccess/{NS}user") == second.account


def test_proxy_chain_lists_most_recent_proxy_first(
    make_idp: Any, make_user: MakeUser, recorder: Recorder
) -> None:
    """A proxied service proxying again: cas:proxies names both callbacks, newest first."""
    app = make_idp(CAS_PROXY_HTTPS_ONLY=False)
    client = app.test_client()
    add_service(app, re.escape(recorder.url) + "/.*", proxy_allowed=True, single_logout=False)
    add_service(app, allowed_kinds=["staff"])
    user = make_user()
    first, second = recorder.url + "/pgt1", recorder.url + "/pgt2"
    ticket = get_ticket(client, user.account, recorder.url + "/portal")
    validate(client, "serviceValidate", ticket, recorder.url + "/portal", pgtUrl=first)
    pgt_one = recorder.requests[-1]["query"]["pgtId"][0]
    backend = recorder.url + "/backend"
    pt = _proxy_ticket(client, pgt_one, backend)
    answer = xml(validate(client, "proxyValidate", pt, backend, pgtUrl=second))
    assert [p.text for p in answer.iter(NS + "proxy")] == [first]
    pgt_two = recorder.requests[-1]["query"]["pgtId"][0]
    pt = _proxy_ticket(client, pgt_two, recorder.url + "/third")
    answer = xml(validate(client, "proxyValidate", pt, recorder.url + "/third"))
    assert [p.text for p in answer.iter(NS + "proxy")] == [second, first]
    refused = client.get("/cas/proxy", query_string={"pgt": pgt_two, "targetService": SERVICE})
    assert failure_code(refused) == "UNAUTHORIZED_SERVICE"  # a staff-only target


def test_proxy_callback_rules(make_idp: Any, make_user: MakeUser, recorder: Recorder) -> None:
    """http callbacks need CAS_PROXY_HTTPS_ONLY off; non-proxies and foreign URLs are refused."""
    strict = make_idp()
    client = strict.test_client()
    portal = recorder.url + "/portal"
    add_service(strict, re.escape(recorder.url) + "/.*", proxy_allowed=True)
    add_service(strict)
    user = make_user()
    ticket = get_ticket(client, user.account, portal)
    refused = validate(client, "serviceValidate", ticket, portal, pgtUrl=recorder.url + "/pgt")
    assert failure_code(refused) == "INVALID_PROXY_CALLBACK" and recorder.requests == []
    ticket = get_ticket(client, user.account)
    refused = validate(client, "serviceValidate", ticket, pgtUrl="https://app.example.edu/pgt")
    assert failure_code(refused) == "UNAUTHORIZED_SERVICE_PROXY"


def test_failing_proxy_callback_gives_success_without_iou(
    make_idp: Any, make_user: MakeUser, recorder: Recorder
) -> None:
    """A callback answering other than 200 gets no PGTIOU in an otherwise successful answer."""
    app = make_idp(CAS_PROXY_HTTPS_ONLY="false")
    client = app.test_client()
    portal = recorder.url + "/portal"
    add_service(app, re.escape(recorder.url) + "/.*", proxy_allowed=True)
    user = make_user()
    recorder.status = 404
    ticket = get_ticket(client, user.account, portal)
    answer = xml(validate(client, "proxyValidate", ticket, portal, pgtUrl=recorder.url + "/pgt"))
    assert answer[0].tag == NS + "authenticationSuccess"
    assert answer[0].find(NS + "proxyGrantingTicket") is None
    foreign = validate(
        client,
        "serviceValidate",
        get_ticket(client, user.account, portal),
        portal,
        pgtUrl="http://127.0.0.2:1/pgt",
    )
    assert failure_code(foreign) == "INVALID_PROXY_CALLBACK"


def test_proxy_endpoint_failures(idp_app: Flask, idp_client: FlaskClient) -> None:
    """/proxy: unknown PGT → INVALID_TICKET (XML and JSON)."""
    unknown = idp_client.get("/cas/proxy?pgt=PGT-" + "a" * 43 + "&targetService=" + OTHER)
    assert failure_code(unknown) == "INVALID_TICKET"
    as_json = idp_client.get("/cas/proxy?pgt=nonsense&targetService=x&format=JSON").get_json()
    assert as_json["serviceResponse"]["proxyFailure"]["code"] == "INVALID_TICKET"


# --- logout and single logout --------------------------------------------------------------


def test_logout_redirects_only_to_registered_services(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """/cas/logout ends the session; ``service`` must be registered; ``url`` is ignored."""
    add_service(idp_app)
    user = make_user()
    sign_in(idp_client, user.account)
    response = idp_client.get("/cas/logout", query_string={"service": SERVICE})
    assert response.status_code == 303 and response.location == SERVICE
    assert idp_client.get("/cas/login", query_string={"service": SERVICE}).status_code == 302
    for query in ({"service": "https://evil.example/"}, {"url": SERVICE}, {}):
        page = idp_client.get("/cas/logout", query_string=query)
        assert page.status_code == 200 and "已退出登录" in page.get_data(as_text=True)


def test_single_logout_posts_logout_request_to_each_service(
    make_idp: Any, make_user: MakeUser, recorder: Recorder
) -> None:
    """After logout, each service used gets a SAML LogoutRequest naming its service ticket."""
    app = make_idp()
    client = app.test_client()
    add_service(app, re.escape(recorder.url) + "/.*")
    add_service(app, r"https://app\.example\.edu/.*", single_logout=False)
    user = make_user()
    ticket = get_ticket(client, user.account, recorder.url + "/app?x=1")
    get_ticket(client, user.account)  # a service that opted out of single logout
    client.get("/cas/logout")
    arrived = recorder.wait_for(1)
    assert len(arrived) == 1 and arrived[0]["method"] == "POST" and arrived[0]["path"] == "/app"
    message = arrived[0]["form"]["logoutRequest"][0]
    root = ET.fromstring(message)  # noqa: S314 - the IdP's own message
    assert root.tag == "{urn:oasis:names:tc:SAML:2.0:protocol}LogoutRequest"
    assert root.attrib["Version"] == "2.0" and root.attrib["ID"] and root.attrib["IssueInstant"]
    index = root.findtext("{urn:oasis:names:tc:SAML:2.0:protocol}SessionIndex")
    assert index == ticket


def test_signing_out_of_the_idp_also_logs_out_cas_services(
    make_idp: Any, make_user: MakeUser, recorder: Recorder
) -> None:
    """The IdP's own 退出 (POST /logout) ends the one SSO session: CAS services hear of it."""
    app = make_idp()
    client = app.test_client()
    add_service(app, re.escape(recorder.url) + "/.*")
    user = make_user()
    ticket = get_ticket(client, user.account, recorder.url + "/app")
    post_form(client, "/logout", {})
    assert ticket in recorder.wait_for(1)[0]["form"]["logoutRequest"][0]


def test_failing_single_logout_never_blocks_sign_out(
    make_idp: Any, make_user: MakeUser, recorder: Recorder
) -> None:
    """A slow, failing service is retried in the background; logout answers at once."""
    app = make_idp(CAS_SLO_RETRIES=1, CAS_SLO_TIMEOUT=5)
    client = app.test_client()
    add_service(app, re.escape(recorder.url) + "/.*")
    # Each attempt takes 2 s: a logout that waited for them could not answer within 1.5 s.
    recorder.status, recorder.delay = 500, 2.0
    user = make_user()
    get_ticket(client, user.account, recorder.url + "/app")
    started = time.monotonic()
    response = client.get("/cas/logout")
    assert response.status_code == 200 and time.monotonic() - started < 1.5
    assert len(recorder.wait_for(2, timeout=15)) == 2  # first try plus one retry
    from idp.cas.slo import EXECUTOR

    app.extensions[EXECUTOR].shutdown(wait=True)  # let it log its give-up before the test ends


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


def test_disabled_user_ticket_is_refused(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """A user disabled after the ticket was issued does not get validated."""
    add_service(idp_app)
    user = make_user()
    ticket = get_ticket(idp_client, user.account)
    with idp_app.app_context():
        db.session.get(User, user.id).status = UserStatus.DISABLED
        db.session.commit()
    assert failure_code(validate(idp_client, "serviceValidate", ticket)) == "INVALID_TICKET"


def test_service_disabled_after_issue_is_invalid_service(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """A service switched off between login and validation gets INVALID_SERVICE."""
    service_id = add_service(idp_app)
    user = make_user()
    ticket = get_ticket(idp_client, user.account)
    with idp_app.app_context():
        db.session.get(CasService, service_id).enabled = False
        db.session.commit()
    assert failure_code(validate(idp_client, "serviceValidate", ticket)) == "INVALID_SERVICE"


def test_ticket_is_refused_once_the_access_policy_leaves_its_user_out(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """A policy narrowed between login and validation (staff only now) refuses the student's
    ticket with INVALID_TICKET, as a refresh token of an OIDC client is refused."""
    service_id = add_service(idp_app)
    user = make_user()
    tickets = [get_ticket(idp_client, user.account) for _ in range(3)]
    success = xml(validate(idp_client, "serviceValidate", tickets[0]))[0]
    assert success.tag == NS + "authenticationSuccess"
    with idp_app.app_context():
        db.session.get(CasService, service_id).allowed_kinds = ["staff"]
        db.session.commit()
    assert failure_code(validate(idp_client, "serviceValidate", tickets[1])) == "INVALID_TICKET"
    with idp_app.app_context():
        service = db.session.get(CasService, service_id)
        service.allowed_kinds = []
        service.allowed_departments = ["NOWHERE"]
        db.session.commit()
    assert failure_code(validate(idp_client, "p3/serviceValidate", tickets[2])) == "INVALID_TICKET"
