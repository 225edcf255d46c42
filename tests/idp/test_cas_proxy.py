"""CAS proxying: proxy-granting tickets through https callbacks, proxy tickets and their chains."""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp.cas.tickets import CasError, check_proxy_callback
from idp.clients.models import CasService
from idp.extensions import db
from shared.factory import get_store
from tests.fakes.recorder import Recorder
from tests.idp.cas_support import (
    NS,
    OTHER,
    SERVICE,
    TICKET,
    add_service,
    attributes_of,
    failure_code,
    get_ticket,
    validate,
    xml,
)
from tests.idp.conftest import MakeUser


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


def test_proxy_callback_is_matched_in_linear_time(idp_app: Flask) -> None:
    """The pgtUrl check runs the service's pattern with RE2 too: a long callback URL against
    ``(a+)+b`` is refused at once."""
    service_id = add_service(idp_app, r"https://app\.example\.edu/(a+)+b", proxy_allowed=True)
    with idp_app.app_context():
        service = db.session.get(CasService, service_id)
        started = time.monotonic()
        with pytest.raises(CasError) as refused:
            check_proxy_callback(service, "https://app.example.edu/" + "a" * 2000 + "!")
        assert time.monotonic() - started < 1
        assert refused.value.code == "INVALID_PROXY_CALLBACK"
        check_proxy_callback(service, "https://app.example.edu/aab")
