"""OAuth 2.0 Form Post Response Mode (``response_mode=form_post``, ASP.NET Core's default): the
authorization response, code or error, reaches the verified redirect URI as a page whose form
the browser posts there (a static script submits it; 继续 for browsers without JavaScript)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from authlib.oidc.discovery import OpenIDProviderMetadata
from flask import Flask
from flask.testing import FlaskClient

from idp.clients.models import OidcClient
from idp.extensions import db
from tests.idp.conftest import PASSWORD, MakeUser, post_form, sign_in
from tests.idp.oidc_support import (
    REDIRECT_URI,
    Authorization,
    RelyingParty,
    authorize_url,
    exchange,
    redirect_params,
    register,
    verify_id_token,
)

ACCOUNT = "2024000777"


@dataclass
class PostedForm:
    """The page's form with id ``form-post``: what the browser will POST, and where."""

    action: str | None = None
    method: str | None = None
    fields: list[tuple[str, str]] = field(default_factory=list)
    scripts: list[str | None] = field(default_factory=list)
    buttons: list[str] = field(default_factory=list)

    @property
    def params(self) -> dict[str, str]:
        return dict(self.fields)


class _FormReader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.form = PostedForm()
        self.inside = False
        self.in_button = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "form" and found.get("id") == "form-post":
            self.inside = True
            self.form.action, self.form.method = found.get("action"), found.get("method")
        elif tag == "input" and self.inside:
            assert found.get("type") == "hidden", found
            self.form.fields.append((found["name"] or "", found.get("value") or ""))
        elif tag == "button" and self.inside:
            self.in_button = True
        elif tag == "script":
            self.form.scripts.append(found.get("src"))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        elif tag == "button":
            self.in_button = False

    def handle_data(self, data: str) -> None:
        if self.in_button and data.strip():
            self.form.buttons.append(data.strip())


def posted_form(response: Any) -> PostedForm:
    """The self-posting page's form (asserting the response is one, never stored)."""
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert response.mimetype == "text/html" and "Location" not in response.headers
    assert response.headers["Cache-Control"] == "no-store"
    reader = _FormReader()
    reader.feed(response.get_data(as_text=True))
    assert reader.form.action is not None, "no form-post form on the page"
    return reader.form


@pytest.fixture
def rp(idp_app: Flask) -> RelyingParty:
    """A confidential, first-party client that requires PKCE (the default)."""
    return register(idp_app)


@pytest.fixture
def outsider(idp_app: Flask) -> RelyingParty:
    """A client that is not a university system: consent is asked."""
    return register(idp_app, first_party=False, require_pkce=False, name="校外选课助手")


@pytest.fixture
def browser(idp_client: FlaskClient, make_user: MakeUser) -> FlaskClient:
    """A browser signed in as a student."""
    sign_in(idp_client, make_user(ACCOUNT).account)
    return idp_client


def _hidden_fields(page: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page))


def test_form_post_delivers_code_state_and_iss_to_the_redirect_uri(
    browser: FlaskClient, idp_app: Flask, rp: RelyingParty
) -> None:
    """The code, the state and our iss are posted to the exact redirect URI, by a static
    script (no inline one: the CSP forbids it) or the 继续 button; the code then exchanges."""
    form = posted_form(browser.get(authorize_url(rp, response_mode="form_post", state="s-fp")))
    assert form.action == rp.redirect_uri and form.method == "post"
    assert [name for name, _ in form.fields] == ["code", "state", "iss"]
    assert form.params["state"] == "s-fp" and form.params["iss"] == idp_app.config["ISSUER"]
    assert form.buttons == ["继续"]
    assert None not in form.scripts  # every script is a file the CSP's script-src 'self' allows
    script = next(src for src in form.scripts if src and "form-post" in src)
    with browser.get(script) as served:
        assert served.status_code == 200 and b"form-post" in served.data
    authz = Authorization(form.params["code"], form.params["state"], rp.verifier, form.params)
    tokens = exchange(browser, rp, authz)
    assert tokens.status_code == 200, tokens.get_data(as_text=True)
    verify_id_token(browser, idp_app, rp, tokens.get_json()["id_token"])


def test_form_post_keeps_the_redirect_uris_own_query_in_the_action(
    browser: FlaskClient, idp_app: Flask
) -> None:
    """A redirect URI with a query of its own is the form's action as registered; only the
    response's parameters are posted."""
    uri = REDIRECT_URI + "?tenant=math&x="
    rp = register(idp_app, redirect_uris=[uri])
    form = posted_form(browser.get(authorize_url(rp, response_mode="form_post")))
    assert form.action == uri
    assert [name for name, _ in form.fields] == ["code", "state", "iss"]


def test_signed_out_browser_signs_in_and_gets_the_form_post(
    idp_client: FlaskClient, make_user: MakeUser, rp: RelyingParty
) -> None:
    """Not signed in: /login, then back to authorize with response_mode=form_post intact."""
    make_user(ACCOUNT)
    sent = idp_client.get(authorize_url(rp, response_mode="form_post", state="keep"))
    assert sent.status_code == 302 and sent.headers["Location"].startswith("/login?next=")
    next_url = parse_qs(urlsplit(sent.headers["Location"]).query)["next"][0]
    assert parse_qs(urlsplit(next_url).query)["response_mode"] == ["form_post"]
    signed_in = post_form(
        idp_client, sent.headers["Location"], {"identifier": ACCOUNT, "password": PASSWORD}
    )
    form = posted_form(idp_client.get(signed_in.headers["Location"]))
    assert form.action == rp.redirect_uri and form.params["state"] == "keep"
    assert "code" in form.params


def test_consent_keeps_the_form_post(browser: FlaskClient, outsider: RelyingParty) -> None:
    """The consent page carries response_mode on; 同意 ends in the self-posting page."""
    page = browser.get(authorize_url(outsider, response_mode="form_post")).get_data(as_text=True)
    fields = _hidden_fields(page)
    assert fields["response_mode"] == "form_post"
    form = posted_form(browser.post("/oauth2/authorize", data={**fields, "decision": "allow"}))
    assert form.action == outsider.redirect_uri and "code" in form.params


def _deny_consent(browser: FlaskClient, outsider: RelyingParty, **params: Any) -> Any:
    page = browser.get(authorize_url(outsider, **params)).get_data(as_text=True)
    return browser.post("/oauth2/authorize", data={**_hidden_fields(page), "decision": "deny"})


def _fail_inside(monkeypatch: pytest.MonkeyPatch) -> None:
    from idp.oidc import views

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(views.authorization, "create_authorization_response", broken)


@pytest.mark.parametrize(
    "error",
    ["login_required", "consent_required", "access_denied", "invalid_request", "server_error"],
)
def test_errors_for_the_verified_redirect_uri_are_posted_too(
    idp_client: FlaskClient,
    make_user: MakeUser,
    idp_app: Flask,
    outsider: RelyingParty,
    monkeypatch: pytest.MonkeyPatch,
    error: str,
) -> None:
    """Every error the client may hear of comes back the way it asked: posted to its
    redirect URI with error, description when there is one, state and iss."""
    params = {"response_mode": "form_post", "state": "s-err"}
    if error != "login_required":
        sign_in(idp_client, make_user(ACCOUNT).account)
    if error in ("login_required", "consent_required"):  # signed out; no consent given yet
        response = idp_client.get(authorize_url(outsider, prompt="none", **params))
    elif error == "access_denied":
        response = _deny_consent(idp_client, outsider, **params)
    elif error == "invalid_request":
        response = idp_client.get(authorize_url(outsider, max_age="-1", **params))
    else:
        _fail_inside(monkeypatch)
        fields = _hidden_fields(idp_client.get(authorize_url(outsider, **params)).get_data(True))
        response = idp_client.post("/oauth2/authorize", data={**fields, "decision": "allow"})
    form = posted_form(response)
    assert form.action == outsider.redirect_uri and form.method == "post"
    got = form.params
    assert got["error"] == error and got["state"] == "s-err", got
    assert got["iss"] == idp_app.config["ISSUER"] and "code" not in got
    assert set(got) <= {"error", "error_description", "state", "iss"}


@pytest.mark.parametrize(
    "modes",
    [["fragment"], ["jwt"], ["form_post.jwt"], ["FORM_POST"], ["form_post", "form_post"]],
)
def test_unserved_or_repeated_response_mode_is_refused_in_the_query(
    browser: FlaskClient, rp: RelyingParty, modes: list[str]
) -> None:
    """A mode we do not serve, or two, is invalid_request; it goes back in the code flow's
    default mode (the query), the one every client of it can read, never as a page."""
    url = authorize_url(rp, state="s-q") + "&" + urlencode([("response_mode", m) for m in modes])
    response = browser.get(url)
    got = redirect_params(response)
    assert got["error"] == "invalid_request" and got["state"] == "s-q" and "code" not in got
    assert "response_mode" in got["error_description"]
    assert response.headers["Cache-Control"] == "no-store"


def test_form_post_to_a_redirect_uri_that_is_no_web_address_is_refused(
    browser: FlaskClient, idp_app: Flask, rp: RelyingParty
) -> None:
    """A redirect URI stored before the registry insisted on http(s) never becomes a form's
    action (a javascript: one would run in our origin): invalid_request, in the query."""
    odd = "com.example.app:/callback"
    with idp_app.app_context():
        db.session.execute(
            db.update(OidcClient)
            .where(OidcClient.client_id == rp.client_id)
            .values(redirect_uris=[odd])
        )
        db.session.commit()
    response = browser.get(authorize_url(rp, redirect_uri=odd, response_mode="form_post"))
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    location = response.headers["Location"]
    assert location.startswith(odd + "?") and "error=invalid_request" in location
    assert "code=" not in location


@pytest.mark.parametrize(
    "params",
    [{"client_id": "nope"}, {"redirect_uri": "https://evil.example/callback"}],
)
def test_unverified_client_gets_the_page_never_a_post(
    browser: FlaskClient, rp: RelyingParty, params: dict[str, str]
) -> None:
    """An unknown client or an unregistered redirect URI: our error page, nothing posted."""
    client = RelyingParty(params.get("client_id", rp.client_id), None)
    client.redirect_uri = params.get("redirect_uri", rp.redirect_uri)
    response = browser.get(authorize_url(client, response_mode="form_post"))
    assert response.status_code == 400 and "Location" not in response.headers
    page = response.get_data(as_text=True)
    assert 'id="form-post"' not in page and 'action="https://evil' not in page


def test_query_mode_is_unchanged(browser: FlaskClient, rp: RelyingParty) -> None:
    """response_mode=query, or none, still redirects with the code in the query."""
    for mode in ("query", None):
        assert "code" in redirect_params(browser.get(authorize_url(rp, response_mode=mode)))


def test_discovery_offers_query_and_form_post(idp_client: FlaskClient) -> None:
    """Discovery lists both modes, and Authlib's metadata validation still passes."""
    document = idp_client.get("/.well-known/openid-configuration").get_json()
    OpenIDProviderMetadata(document).validate()
    assert document["response_modes_supported"] == ["query", "form_post"]
