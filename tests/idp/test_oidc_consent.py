"""What a person sees during an OpenID Connect sign-in: /login first, the consent page
(同意授权) for outside systems, and a refusal when the client's access policy says no."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp.clients.models import OidcClient
from idp.extensions import db
from idp.oidc.models import Consent
from tests.idp.conftest import PASSWORD, MakeUser, post_form, sign_in
from tests.idp.oidc_support import (
    Authorization,
    RelyingParty,
    authorize_url,
    exchange,
    pkce_pair,
    redirect_params,
    register,
)


@pytest.fixture
def outsider(idp_app: Flask) -> RelyingParty:
    """A client that is not a university system (consent needed), PKCE off for brevity."""
    return register(idp_app, first_party=False, require_pkce=False, name="校外选课助手")


@pytest.fixture
def browser(idp_client: FlaskClient, make_user: MakeUser) -> FlaskClient:
    """A browser signed in as a student."""
    sign_in(idp_client, make_user("2024000999").account)
    return idp_client


def consent_form(page: str) -> dict[str, str]:
    """The hidden fields of the consent form."""
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page))


def test_signed_out_browser_signs_in_and_comes_back(
    idp_client: FlaskClient, make_user: MakeUser, idp_app: Flask
) -> None:
    """Not signed in: /login with next=the request, then straight on to the client."""
    make_user("2024000111")
    rp = register(idp_app)
    verifier, challenge = pkce_pair()
    url = authorize_url(rp, code_challenge=challenge, code_challenge_method="S256", state="keep")
    response = idp_client.get(url)
    login_url = response.headers["Location"]
    assert response.status_code == 302 and login_url.startswith("/login?next=")
    signed_in = post_form(idp_client, login_url, {"identifier": "2024000111", "password": PASSWORD})
    back = signed_in.headers["Location"]
    assert urlsplit(back).path == "/oauth2/authorize"
    got = redirect_params(idp_client.get(back))
    assert got["state"] == "keep"
    tokens = exchange(idp_client, rp, Authorization(got["code"], got["state"], verifier, got))
    assert tokens.status_code == 200


def test_outside_client_asks_for_consent_once(
    browser: FlaskClient, idp_app: Flask, outsider: RelyingParty
) -> None:
    """同意授权 lists the scopes in Chinese; once agreed, the next sign-in goes straight on."""
    url = authorize_url(outsider, scope="openid profile phone", state="s")
    page = browser.get(url)
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and "同意授权" in text and "校外选课助手" in text
    assert "姓名和学工号" in text and "安全手机号码" in text
    form = consent_form(text)
    got = redirect_params(browser.post("/oauth2/authorize", data={**form, "decision": "allow"}))
    assert got["code"] and got["state"] == "s"
    again = browser.get(authorize_url(outsider, scope="openid profile"))
    assert "code" in redirect_params(again)
    with idp_app.app_context():
        consent = db.session.scalar(db.select(Consent))
        assert consent.scopes == ["openid", "phone", "profile"]


def test_more_scopes_ask_again(browser: FlaskClient, outsider: RelyingParty) -> None:
    """Consent covers what was agreed to; a wider request shows the page again."""
    page = browser.get(authorize_url(outsider, scope="openid")).get_data(as_text=True)
    browser.post("/oauth2/authorize", data={**consent_form(page), "decision": "allow"})
    wider = browser.get(authorize_url(outsider, scope="openid email"))
    assert wider.status_code == 200 and "安全邮箱地址" in wider.get_data(as_text=True)


def test_prompt_consent_shows_the_page_even_when_remembered(
    browser: FlaskClient, outsider: RelyingParty
) -> None:
    """prompt=consent asks again."""
    page = browser.get(authorize_url(outsider)).get_data(as_text=True)
    browser.post("/oauth2/authorize", data={**consent_form(page), "decision": "allow"})
    assert browser.get(authorize_url(outsider, prompt="consent")).status_code == 200


def test_denied_consent_is_access_denied(browser: FlaskClient, outsider: RelyingParty) -> None:
    """拒绝 sends access_denied (with state and iss) back to the client."""
    page = browser.get(authorize_url(outsider, state="s2")).get_data(as_text=True)
    got = redirect_params(
        browser.post("/oauth2/authorize", data={**consent_form(page), "decision": "deny"})
    )
    assert got["error"] == "access_denied" and got["state"] == "s2" and got["iss"]


def test_consent_without_csrf_token_issues_nothing(
    browser: FlaskClient, outsider: RelyingParty
) -> None:
    """A forged consent post (no CSRF token) shows the page again instead of a code."""
    page = browser.get(authorize_url(outsider)).get_data(as_text=True)
    form = {k: v for k, v in consent_form(page).items() if k != "csrf_token"}
    response = browser.post("/oauth2/authorize", data={**form, "decision": "allow"})
    assert response.status_code == 400 and "Location" not in response.headers


def test_prompt_none_without_consent_is_consent_required(
    browser: FlaskClient, outsider: RelyingParty
) -> None:
    """prompt=none cannot show the consent page: consent_required."""
    got = redirect_params(browser.get(authorize_url(outsider, prompt="none")))
    assert got["error"] == "consent_required"


def test_first_party_client_needs_no_consent(browser: FlaskClient, idp_app: Flask) -> None:
    """A university system (first party) goes straight to the code."""
    rp = register(idp_app, require_pkce=False)
    assert "code" in redirect_params(browser.get(authorize_url(rp)))


def test_access_policy_refusal_is_a_clear_403(
    browser: FlaskClient, idp_app: Flask, outsider: RelyingParty
) -> None:
    """A student at a staff-only system gets a 403 page naming it; prompt=none gets an error."""
    with idp_app.app_context():
        client = db.session.scalar(db.select(OidcClient).filter_by(client_id=outsider.client_id))
        client.allowed_kinds = ["staff"]
        db.session.commit()
    response = browser.get(authorize_url(outsider))
    text = response.get_data(as_text=True)
    assert response.status_code == 403 and "校外选课助手" in text and "无权访问" in text
    got = redirect_params(browser.get(authorize_url(outsider, prompt="none")))
    assert got["error"] == "access_denied"


def test_disabled_client_is_unknown(browser: FlaskClient, idp_app: Flask) -> None:
    """A disabled client gets the error page, like an unregistered one."""
    rp = register(idp_app)
    with idp_app.app_context():
        client = db.session.scalar(db.select(OidcClient).filter_by(client_id=rp.client_id))
        client.enabled = False
        db.session.commit()
    response = browser.get(authorize_url(rp))
    assert response.status_code == 400 and "Location" not in response.headers


def test_simultaneous_first_consents_merge_instead_of_failing(
    idp_app: Flask, make_user: MakeUser, outsider: RelyingParty
) -> None:
    """Two tabs agreeing at once: the loser of the insert race merges its scopes, no 500."""
    from sqlalchemy import event

    from idp.oidc.operations import remember_consent

    user = make_user("2024000998")
    with idp_app.app_context():
        client = db.session.scalars(
            db.select(OidcClient).filter_by(client_id=outsider.client_id)
        ).one()

        raced: list[bool] = []

        def other_tab_commits_first(mapper: object, connection: object, target: Consent) -> None:
            if raced:
                return
            raced.append(True)
            with db.engine.begin() as other:
                other.execute(
                    Consent.__table__.insert().values(
                        user_id=user.id, client_id=client.id, scopes=["openid", "email"]
                    )
                )

        event.listen(Consent, "before_insert", other_tab_commits_first)
        try:
            remember_consent(db.session.get(type(user), user.id), client, ["openid", "profile"])
            db.session.commit()
        finally:
            event.remove(Consent, "before_insert", other_tab_commits_first)
        rows = db.session.scalars(db.select(Consent).filter_by(user_id=user.id)).all()
    assert raced and [sorted(row.scopes) for row in rows] == [["email", "openid", "profile"]]
