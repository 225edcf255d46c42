"""CAS logout and single logout: redirects only to registered services, logoutRequest POSTed
to each service a session used, never blocking the sign-out."""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from tests.fakes.recorder import Recorder
from tests.idp.cas_support import (
    SERVICE,
    add_service,
    get_ticket,
)
from tests.idp.conftest import MakeUser, post_form, sign_in


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
