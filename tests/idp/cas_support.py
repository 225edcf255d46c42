"""Helpers of the CAS tests: registering services, getting tickets through the real login
flow, reading the server's XML answers, and a recording HTTP server for proxy callbacks and
single logout."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import parse_qs, urlsplit

from flask import Flask
from flask.testing import FlaskClient

from idp.clients.operations import register_cas_service
from idp.extensions import db
from tests.idp.conftest import sign_in

NS = "{http://www.yale.edu/tp/cas}"
SERVICE = "https://app.example.edu/cas/callback?next=%2Fhome"
OTHER = "https://other.example.edu/"
TICKET = re.compile(r"^(ST|PT|PGT|PGTIOU)-[A-Za-z0-9]{43}$")


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
