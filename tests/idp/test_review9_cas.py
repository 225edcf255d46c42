"""CAS review: service URLs that name another host, back-end services that are not web
services."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp.cas.tickets import CasError, check_proxy_callback, is_service_identifier
from idp.clients.models import CasService
from idp.extensions import db
from tests.fakes.recorder import Recorder
from tests.idp.cas_support import (
    NS,
    add_service,
    failure_code,
    get_ticket,
    validate,
    xml,
)
from tests.idp.conftest import MakeUser, sign_in

#: A pattern as administrators often wrote it: no ``/`` after the host. Registration refuses
#: it now (test_service_patterns), but rows saved before stay until someone edits them.
LOOSE = r"https://app\.example\.edu.*"


def add_legacy_service(app: Flask, pattern: str, **options: Any) -> None:
    """A CAS service row saved before today's registration rules (written directly)."""
    with app.app_context():
        db.session.add(CasService(name="旧系统", service_pattern=pattern, attributes=[], **options))
        db.session.commit()


@pytest.mark.parametrize(
    "service",
    [
        "https://app.example.edu@evil.example.com/",
        "https://app.example.edu:443@evil.example.com/cas",
        "https://app.example.edu\\@evil.example.com/",
    ],
)
def test_service_url_with_a_user_name_gets_no_ticket_even_when_the_pattern_matches(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser, service: str
) -> None:
    """``https://app.example.edu@evil…`` goes to evil's host: no ticket, no logout redirect,
    no proxy callback, however loosely the service's pattern was written."""
    add_legacy_service(idp_app, LOOSE, proxy_allowed=True)
    user = make_user()
    sign_in(idp_client, user.account)
    for params in ({}, {"gateway": "true"}, {"method": "POST"}):
        response = idp_client.get("/cas/login", query_string={"service": service, **params})
        assert response.status_code == 400
        assert "Location" not in response.headers
        assert "ST-" not in response.get_data(as_text=True)
    logout = idp_client.get("/cas/logout", query_string={"service": service})
    assert logout.status_code == 200 and "Location" not in logout.headers
    with idp_app.app_context():
        registered = db.session.scalars(db.select(CasService)).one()
        with pytest.raises(CasError) as refused:
            check_proxy_callback(registered, service)
        assert refused.value.code == "INVALID_PROXY_CALLBACK"


def test_the_loose_pattern_still_serves_its_own_host(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """The same pattern keeps working for the service's real addresses."""
    add_legacy_service(idp_app, LOOSE)
    user = make_user()
    for service in ("https://app.example.edu/", "https://app.example.edu/x?next=a@b"):
        ticket = get_ticket(idp_client, user.account, service)
        answer = xml(validate(idp_client, "serviceValidate", ticket, service))
        assert answer.findtext(f"{NS}authenticationSuccess/{NS}user") == user.account


def test_proxy_ticket_for_a_back_end_service_that_is_not_on_the_web(
    make_idp: Any, make_user: MakeUser, recorder: Recorder
) -> None:
    """A webmail portal proxies to its IMAP server, registered as ``imaps://…`` (CAS 3.0
    §2.7.1: a back-end service identifier is not always a URL): /proxy issues the PT and
    /proxyValidate accepts it for that identifier."""
    app = make_idp(CAS_PROXY_HTTPS_ONLY=False)
    client = app.test_client()
    add_service(app, re.escape(recorder.url) + "/.*", proxy_allowed=True, single_logout=False)
    add_service(app, r"imaps://mail\.example\.edu(:993)?")
    user = make_user()
    portal = recorder.url + "/portal"
    ticket = get_ticket(client, user.account, portal)
    pgt_url = recorder.url + "/pgt"
    validate(client, "serviceValidate", ticket, portal, pgtUrl=pgt_url)
    pgt = recorder.requests[-1]["query"]["pgtId"][0]

    imap = "imaps://mail.example.edu:993"
    proxied = client.get("/cas/proxy", query_string={"pgt": pgt, "targetService": imap})
    pt = xml(proxied).findtext(f"{NS}proxySuccess/{NS}proxyTicket") or ""
    assert pt.startswith("PT-")
    answer = xml(validate(client, "proxyValidate", pt, imap))
    assert answer.findtext(f"{NS}authenticationSuccess/{NS}user") == user.account
    assert [p.text for p in answer.iter(NS + "proxy")] == [pgt_url]

    for target in ("imaps://mail.example.edu/ x", "imaps://other.example.edu", "x" * 3000):
        refused = client.get("/cas/proxy", query_string={"pgt": pgt, "targetService": target})
        assert failure_code(refused) == "UNAUTHORIZED_SERVICE"


def test_service_identifiers_for_proxying() -> None:
    """Web URLs follow the browser rules; other identifiers need only be sane."""
    assert is_service_identifier("imaps://mail.example.edu")
    assert is_service_identifier("https://app.example.edu/")
    assert not is_service_identifier("https://app.example.edu@evil.example.com/")
    assert not is_service_identifier("HTTPS://[bad")
    assert not is_service_identifier("imap://mail.example.edu\n")
    assert not is_service_identifier("")
