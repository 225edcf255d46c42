"""CAS tickets and their validation: the ticket alphabet and lifetime, v1/v2/v3 answers in XML
and JSON, released attributes, single use, every failure code, and what has changed since the
ticket was issued (session, account, service, access policy)."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp.audit.models import AuditEvent
from idp.cas.responses import validation_success
from idp.clients.models import CasService
from idp.directory.models import Department, User, UserStatus
from idp.extensions import db
from shared.factory import get_store
from tests.idp.cas_support import (
    NS,
    OTHER,
    SERVICE,
    TICKET,
    add_service,
    attributes_of,
    failure_code,
    follow_to_service,
    get_ticket,
    ticket_in,
    validate,
    xml,
)
from tests.idp.conftest import MakeUser, post_form, sign_in
from tests.idp.console_support import enable_totp


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


def test_p3_says_how_the_session_signed_in(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """``authenticationMethod`` names the factors, as OIDC's ``amr`` does: a service that
    wants two-step verification can tell a password-only sign-in from one with a code."""
    add_service(idp_app)
    plain = make_user()
    ticket = get_ticket(idp_client, plain.account)
    methods = attributes_of(validate(idp_client, "p3/serviceValidate", ticket))
    assert methods["authenticationMethod"] == ["password"]

    careful = make_user()
    secret = enable_totp(idp_app, careful)
    browser = idp_app.test_client()
    assert sign_in(browser, careful.account).location.startswith("/login/verify")
    code = {"code": pyotp.TOTP(secret).now()}
    assert post_form(browser, "/login/verify", code).status_code == 302
    ticket = get_ticket(browser, careful.account)
    methods = attributes_of(validate(browser, "p3/serviceValidate", ticket))
    assert methods["authenticationMethod"] == ["password", "totp"]


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


def test_a_service_written_another_way_is_the_same_service(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """What phpCAS and single-page apps really send: a query with characters browsers leave
    bare (the redirect percent-encodes them), and a hash route the back end never sees. The
    ticket still validates; another path of the same registered site still burns it."""
    add_service(idp_app)
    user = make_user()
    issued_for = "https://app.example.edu/list?filter=a|b"
    ticket = get_ticket(idp_client, user.account, issued_for)
    encoded = "https://app.example.edu/list?filter=a%7Cb"
    assert xml(validate(idp_client, "serviceValidate", ticket, encoded)).find(
        NS + "authenticationSuccess"
    )
    hash_routed = follow_to_service(idp_client, user.account, "https://app.example.edu/spa/#/home")
    assert hash_routed.location.endswith("#/home")
    ticket = ticket_in(hash_routed.location)
    assert xml(
        validate(idp_client, "serviceValidate", ticket, "https://app.example.edu/spa/")
    ).find(NS + "authenticationSuccess")
    ticket = get_ticket(idp_client, user.account, "https://app.example.edu/spa/")
    other_path = "https://app.example.edu/spa/admin"
    assert failure_code(validate(idp_client, "serviceValidate", ticket, other_path)) == (
        "INVALID_SERVICE"
    )


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


@pytest.mark.parametrize(
    "path", ["validate", "serviceValidate", "proxyValidate", "p3/serviceValidate", "proxy"]
)
def test_a_head_request_burns_no_ticket(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser, path: str
) -> None:
    """A HEAD (a link checker, a monitoring probe) gets 405 with ``Allow: GET`` and leaves the
    ticket for the GET the service sends: validation is a GET (CAS 3.0 §2.4-2.7), and answering
    HEAD as one would spend a single-use ticket on an answer nobody reads."""
    add_service(idp_app)
    ticket = get_ticket(idp_client, make_user().account)
    head = idp_client.head(f"/cas/{path}", query_string={"ticket": ticket, "service": SERVICE})
    assert head.status_code == 405 and head.headers["Allow"] == "GET"
    if path != "proxy":  # /proxy takes a PGT, not this ticket: only the refusal matters there
        body = validate(idp_client, path, ticket).get_data(as_text=True)
        assert "authenticationSuccess" in body or body.startswith("yes\n"), body
