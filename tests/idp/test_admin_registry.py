"""应用接入 (/admin/clients): admins register and maintain OIDC clients and CAS services."""

from __future__ import annotations

import html
import re

import pytest
from flask import Flask

from idp.clients.models import CasService, OidcClient
from idp.clients.operations import find_cas_service, register_cas_service, secret_matches
from idp.extensions import db
from tests.idp.admin_support import (  # noqa: F401 - fixtures
    Signed,
    admin_fixture,
    desk_fixture,
    post_from,
)
from tests.idp.conftest import form_tokens, post_form
from tests.idp.console_support import events

NEW_OIDC = "/admin/clients/oidc/new"
NEW_CAS = "/admin/clients/cas/new"


def _oidc(app: Flask, client_id: str) -> OidcClient:
    with app.app_context():
        client = db.session.scalar(db.select(OidcClient).where(OidcClient.client_id == client_id))
        assert client is not None
        db.session.expunge(client)
        return client


def _register(admin: Signed, **fields: str) -> tuple[str, str]:
    data = {
        "name": "教务系统",
        "redirect_uris": "https://jw.example.edu.cn/callback",
        "scopes": "openid profile email",
        "grant_types": ["authorization_code", "refresh_token"],  # checked on the blank form
        **fields,
    }
    response = post_form(admin.client, NEW_OIDC, data)
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    assert response.headers["Cache-Control"] == "no-store"
    page = response.get_data(as_text=True)
    client_id = re.search(r'id="client-id">([^<]+)<', page)
    secret = re.search(r'id="client-secret">([^<]+)<', page)
    assert client_id and secret
    return client_id.group(1), secret.group(1)


def test_admin_registers_oidc_client_and_sees_secret_once(idp_app: Flask, admin: Signed) -> None:
    """A new client's secret is on the creation page only; later pages never show it."""
    client_id, secret = _register(admin, allowed_kinds="staff")
    client = _oidc(idp_app, client_id)
    assert secret_matches(client, secret)
    assert client.redirect_uris == ["https://jw.example.edu.cn/callback"]
    assert client.scopes == ["openid", "profile", "email"]
    assert client.allowed_kinds == ["staff"]
    page = admin.client.get(f"/admin/clients/oidc/{client_id}").get_data(as_text=True)
    assert secret not in page
    assert client_id in admin.client.get("/admin/clients").get_data(as_text=True)
    created = events(idp_app, "client.create")
    assert created[-1]["actor_id"] == admin.user.id
    assert created[-1]["detail"]["via"] == "console"


def test_admin_chooses_client_id_and_a_duplicate_is_refused(idp_app: Flask, admin: Signed) -> None:
    """An admin may name the client id; the same id twice is refused with a clear message."""
    client_id, _ = _register(admin, client_id="jw-system")
    assert client_id == "jw-system"
    response = post_form(
        admin.client,
        NEW_OIDC,
        {
            "name": "另一个",
            "client_id": "jw-system",
            "redirect_uris": "https://b.example.edu.cn/cb",
        },
    )
    assert response.status_code == 400
    assert "客户端 ID 已被使用" in response.get_data(as_text=True)
    with idp_app.app_context():
        assert db.session.query(OidcClient).count() == 1


def test_invalid_redirect_uri_is_refused_and_nothing_is_saved(
    idp_app: Flask, admin: Signed
) -> None:
    """Plain http away from loopback, a relative path or a fragment: refused, nothing created."""
    for bad in ("http://jw.example.edu.cn/cb", "/callback", "https://jw.example.edu.cn/cb#x"):
        response = post_form(
            admin.client, NEW_OIDC, {"name": "教务", "redirect_uris": bad, "scopes": "openid"}
        )
        assert response.status_code == 400
        assert "地址无效" in response.get_data(as_text=True)
    with idp_app.app_context():
        assert db.session.query(OidcClient).count() == 0
    # Loopback http is fine for a developer's machine.
    client_id, _ = _register(admin, redirect_uris="http://127.0.0.1:8000/cb")
    assert _oidc(idp_app, client_id).redirect_uris == ["http://127.0.0.1:8000/cb"]


@pytest.mark.parametrize(
    ("field", "uri"),
    [
        ("redirect_uris", "http://127.evil.com/cb"),  # a name, not a loopback address
        ("redirect_uris", "https://jw.example.edu.cn@evil.example/cb"),
        ("post_logout_uris", "http://127.0.0.1.nip.io/bye"),
        ("backchannel_logout_uri", "https://jw.example.edu.cn/b c"),  # inner whitespace
        ("backchannel_logout_uri", "https://jw.example.edu.cn:99999/bcl"),
    ],
)
def test_lookalike_loopback_and_malformed_uris_are_refused(
    idp_app: Flask, admin: Signed, field: str, uri: str
) -> None:
    """The CLI's URI rules, worded under the field; nothing is registered."""
    data = {"name": "教务", "redirect_uris": "https://jw.example.edu.cn/cb", "scopes": "openid"}
    response = post_form(admin.client, NEW_OIDC, {**data, field: uri})
    assert response.status_code == 400
    assert "地址无效" in response.get_data(as_text=True)
    with idp_app.app_context():
        assert db.session.query(OidcClient).count() == 0


def test_unchecking_every_grant_type_is_refused(idp_app: Flask, admin: Signed) -> None:
    """No grant type ticked is a mistake to point out, not a cue to register the defaults."""
    response = post_form(
        admin.client,
        NEW_OIDC,
        {"name": "教务", "redirect_uris": "https://jw.example.edu.cn/cb", "scopes": "openid"},
    )
    assert response.status_code == 400
    assert "请至少选择一种授权类型" in response.get_data(as_text=True)
    with idp_app.app_context():
        assert db.session.query(OidcClient).count() == 0


def test_admin_edits_client_and_a_bad_edit_keeps_the_old_values(
    idp_app: Flask, admin: Signed
) -> None:
    """Edits are audited with the changed fields; a refused edit leaves everything as it was."""
    client_id, _ = _register(admin)
    url = f"/admin/clients/oidc/{client_id}"
    response = post_form(
        admin.client,
        url,
        {
            "name": "教务系统（新）",
            "redirect_uris": "https://jw.example.edu.cn/callback\nhttps://jw2.example.edu.cn/cb",
            "post_logout_uris": "https://jw.example.edu.cn/",
            "backchannel_logout_uri": "https://jw.example.edu.cn/bcl",
            "scopes": "openid profile",
            "reason": "新增备用域名",
        },
    )
    assert response.status_code == 302
    client = _oidc(idp_app, client_id)
    assert client.name == "教务系统（新）"
    assert client.redirect_uris[1] == "https://jw2.example.edu.cn/cb"
    assert client.backchannel_logout_uri == "https://jw.example.edu.cn/bcl"
    update = events(idp_app, "client.update")[-1]
    assert update["detail"]["reason"] == "新增备用域名"
    assert "redirect_uris" in update["detail"]["fields"]

    refused = post_form(
        admin.client,
        url,
        {"name": "坏", "redirect_uris": "javascript:alert(1)", "scopes": "openid"},
    )
    assert refused.status_code == 400
    assert _oidc(idp_app, client_id).name == "教务系统（新）"


def test_admin_chooses_es256_id_tokens_once_an_es256_key_exists(
    idp_app: Flask, admin: Signed
) -> None:
    """The ID token algorithm is RS256 unless chosen; ES256 is refused until its key exists."""
    refused = post_form(
        admin.client,
        NEW_OIDC,
        {
            "name": "一卡通",
            "redirect_uris": "https://card.example.edu.cn/cb",
            "scopes": "openid",
            "id_token_alg": "ES256",
        },
    )
    assert refused.status_code == 400
    assert "keys rotate --alg ES256" in refused.get_data(as_text=True)
    default_id, _ = _register(admin)
    assert _oidc(idp_app, default_id).id_token_signed_response_alg is None  # RS256
    assert (
        idp_app.test_cli_runner().invoke(args=["keys", "rotate", "--alg", "ES256"]).exit_code == 0
    )
    es_id, _ = _register(admin, name="一卡通", id_token_alg="ES256")
    assert _oidc(idp_app, es_id).id_token_signed_response_alg == "ES256"
    page = admin.client.get(f"/admin/clients/oidc/{es_id}").get_data(as_text=True)
    assert re.search(r'<option selected value="ES256">|<option value="ES256" selected', page)


def test_rotating_the_secret_shows_a_new_one_and_voids_the_old(
    idp_app: Flask, admin: Signed
) -> None:
    """重置密钥: the new secret is shown once; the old one stops working at once."""
    client_id, old = _register(admin)
    url = f"/admin/clients/oidc/{client_id}"
    tokens = form_tokens(admin.client, url)
    response = admin.client.post(f"{url}/rotate-secret", data={**tokens, "reason": "密钥泄露"})
    assert response.status_code == 200
    new = re.search(r'id="client-secret">([^<]+)<', response.get_data(as_text=True))
    assert new and new.group(1) != old
    client = _oidc(idp_app, client_id)
    assert secret_matches(client, new.group(1)) and not secret_matches(client, old)
    assert events(idp_app, "client.secret_rotate")[-1]["detail"]["reason"] == "密钥泄露"


def test_admin_registers_cas_service_and_disabling_it_refuses_tickets(
    idp_app: Flask, admin: Signed
) -> None:
    """A CAS service registered in the console works at once; disabled, /cas/login refuses it."""
    response = post_form(
        admin.client,
        NEW_CAS,
        {
            "name": "图书馆",
            "service_pattern": r"https://lib\.example\.edu\.cn/.*",
            "attributes": ["name", "kind"],
            "single_logout": "y",
        },
    )
    assert response.status_code == 302
    with idp_app.app_context():
        service = db.session.scalars(db.select(CasService)).one()
        assert service.attributes == ["name", "kind"]
        assert find_cas_service("https://lib.example.edu.cn/login") is not None
        service_id = service.id
    page = admin.client.get(f"/admin/clients/cas/{service_id}").get_data(as_text=True)
    assert "http://localhost/cas/p3/serviceValidate" in page or "/cas/p3/serviceValidate" in page
    assert "CASClient(" in page and "cas.server-url-prefix=" in page
    page_url = f"/admin/clients/cas/{service_id}"
    disabled = post_from(admin.client, page_url, f"{page_url}/disable", {"reason": "停止服务"})
    assert disabled.status_code == 302
    with idp_app.app_context():
        assert find_cas_service("https://lib.example.edu.cn/login") is None
    login = admin.client.get("/cas/login?service=https://lib.example.edu.cn/login")
    assert "ticket=" not in login.headers.get("Location", "")
    assert events(idp_app, "client.disable")[-1]["detail"]["reason"] == "停止服务"
    post_from(admin.client, page_url, f"{page_url}/enable", {})
    with idp_app.app_context():
        assert find_cas_service("https://lib.example.edu.cn/login") is not None


def test_bad_cas_pattern_is_refused(idp_app: Flask, admin: Signed) -> None:
    """A pattern that is not a regular expression is refused; nothing is registered."""
    response = post_form(admin.client, NEW_CAS, {"name": "坏", "service_pattern": "https://(x"})
    assert response.status_code == 400
    assert "正则表达式" in response.get_data(as_text=True)
    with idp_app.app_context():
        assert db.session.query(CasService).count() == 0


@pytest.mark.parametrize(
    ("pattern", "says"),
    [
        ("(" * 600 + ")" * 600, "不是有效的正则表达式"),
        (r"https://a\.edu/x{4294967296}", "不是有效的正则表达式"),
        (r"https://(jw)\.edu/\1/.*", "RE2 语法"),
        (r"https://(?=jw)\w+\.edu/.*", "RE2 语法"),
    ],
)
def test_pattern_that_breaks_the_parser_or_needs_backtracking_is_refused(
    idp_app: Flask, admin: Signed, pattern: str, says: str
) -> None:
    """400 with the reason under the field and what was typed kept, on creation and on edit."""
    response = post_form(admin.client, NEW_CAS, {"name": "坏", "service_pattern": pattern})
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and says in page and html.escape(pattern) in page
    with idp_app.app_context():
        service = register_cas_service("教务", r"https://jw\.example\.edu\.cn/.*")
        db.session.commit()
        url = f"/admin/clients/cas/{service.id}"
    edited = post_form(admin.client, url, {"name": "教务", "service_pattern": pattern})
    assert edited.status_code == 400 and says in edited.get_data(as_text=True)
    with idp_app.app_context():
        patterns = db.session.scalars(db.select(CasService.service_pattern)).all()
        assert patterns == [r"https://jw\.example\.edu\.cn/.*"]


def test_oidc_client_page_shows_integration_snippets(idp_app: Flask, admin: Signed) -> None:
    """Discovery URL, client id, an Authlib and an openid-client snippet, never the secret."""
    client_id, secret = _register(admin)
    page = admin.client.get(f"/admin/clients/oidc/{client_id}").get_data(as_text=True)
    assert "/.well-known/openid-configuration" in page
    assert "oauth.register(" in page and "client.discovery(" in page
    assert page.count(client_id) >= 3
    assert secret not in page


def test_help_desk_cannot_reach_the_registry(idp_app: Flask, desk: Signed) -> None:
    """Help desk gets 403 on every admin page and action; each attempt is audited."""
    assert desk.client.get("/admin/clients").status_code == 403
    response = desk.client.post(NEW_CAS, data={"name": "x", "service_pattern": ".*"})
    assert response.status_code in (400, 403)
    with idp_app.app_context():
        assert db.session.query(CasService).count() == 0
    denied = events(idp_app, "console.denied", actor_id=desk.user.id)
    assert denied and denied[0]["outcome"] == "denied"


def test_forged_form_without_csrf_token_changes_nothing(idp_app: Flask, admin: Signed) -> None:
    """A cross-site POST (no CSRF token) to disable a service is refused."""
    with idp_app.app_context():
        service = register_cas_service("教务", r"https://jw\.example\.edu\.cn/.*")
        db.session.commit()
        service_id = service.id
    response = admin.client.post(f"/admin/clients/cas/{service_id}/disable", data={})
    assert response.status_code == 400
    with idp_app.app_context():
        assert db.session.get(CasService, service_id).enabled


def test_admin_registers_a_client_credentials_client(idp_app: Flask, admin: Signed) -> None:
    """A system-to-system client (e.g. the hall's directory sync): no redirect URI needed."""
    client_id, secret = _register(
        admin,
        redirect_uris="",
        grant_types="client_credentials",
        scopes="directory.read",
    )
    client = _oidc(idp_app, client_id)
    assert secret_matches(client, secret)
    assert client.grant_types == ["client_credentials"]
    assert client.scopes == ["directory.read"]
    refused = post_form(
        admin.client,
        NEW_OIDC,
        {"name": "坏", "public": "y", "grant_types": "client_credentials", "scopes": "x"},
    )
    assert refused.status_code == 400
    assert "公开客户端不能使用 client_credentials" in refused.get_data(as_text=True)


REGISTRATION = {
    "name": "一卡通",
    "redirect_uris": "https://card.example.edu.cn/callback",
    "scopes": "openid profile",
    "grant_types": ["authorization_code"],
}


def test_reloading_the_new_secret_page_registers_no_second_client(
    idp_app: Flask, admin: Signed
) -> None:
    """登记 answered with the secret; the browser posts the same form again (reload, double
    click): no second client, the first one's page with a note, its secret still the good one."""
    tokens = form_tokens(admin.client, NEW_OIDC)
    first = admin.client.post(NEW_OIDC, data={**tokens, **REGISTRATION})
    assert first.status_code == 200
    secret = re.search(r'id="client-secret">([^<]+)<', first.get_data(as_text=True))
    client_id = re.search(r'id="client-id">([^<]+)<', first.get_data(as_text=True))
    assert secret and client_id
    again = admin.client.post(NEW_OIDC, data={**tokens, **REGISTRATION})
    assert again.status_code == 302
    assert again.location == f"/admin/clients/oidc/{client_id.group(1)}"
    page = admin.client.get(again.location).get_data(as_text=True)
    assert "重复的提交没有再登记一个" in page and "client-secret" not in page
    with idp_app.app_context():
        assert db.session.query(OidcClient).filter_by(name="一卡通").count() == 1
    assert secret_matches(_oidc(idp_app, client_id.group(1)), secret.group(1))


def test_a_registration_without_a_good_form_token_is_refused_keeping_the_input(
    idp_app: Flask, admin: Signed
) -> None:
    """A token that is missing, made up or another form's: 400, nothing registered, what was
    typed still there with a fresh token to send it again."""
    csrf = form_tokens(admin.client, NEW_OIDC)["csrf_token"]
    for once in ("", "made-up"):
        refused = admin.client.post(
            NEW_OIDC, data={"csrf_token": csrf, "once": once, **REGISTRATION}
        )
        page = refused.get_data(as_text=True)
        assert refused.status_code == 400 and "页面已过期，请检查后重新提交" in page
        assert 'value="一卡通"' in page and 'name="once"' in page
    with idp_app.app_context():
        assert db.session.query(OidcClient).filter_by(name="一卡通").count() == 0


def test_refused_input_can_be_corrected_and_sent_with_the_same_page(
    idp_app: Flask, admin: Signed
) -> None:
    """A registration refused for its input (an http redirect URI) did not use the token up."""
    tokens = form_tokens(admin.client, NEW_OIDC)
    bad = {**REGISTRATION, "redirect_uris": "http://card.example.edu.cn/callback"}
    assert admin.client.post(NEW_OIDC, data={**tokens, **bad}).status_code == 400
    assert admin.client.post(NEW_OIDC, data={**tokens, **REGISTRATION}).status_code == 200


def test_rotating_twice_with_one_page_keeps_the_secret_shown_first(
    idp_app: Flask, admin: Signed
) -> None:
    """重置密钥 reloaded: the second post resets nothing, so the secret shown stays good."""
    client_id, _ = _register(admin)
    url = f"/admin/clients/oidc/{client_id}"
    tokens = form_tokens(admin.client, url)
    first = admin.client.post(f"{url}/rotate-secret", data={**tokens, "reason": "轮换"})
    shown = re.search(r'id="client-secret">([^<]+)<', first.get_data(as_text=True))
    assert first.status_code == 200 and shown
    again = admin.client.post(f"{url}/rotate-secret", data={**tokens, "reason": "轮换"})
    assert again.status_code == 302 and again.location == url
    assert "重复的提交没有再重置一次" in admin.client.get(url).get_data(as_text=True)
    assert secret_matches(_oidc(idp_app, client_id), shown.group(1))
    assert len(events(idp_app, "client.secret_rotate")) == 1
