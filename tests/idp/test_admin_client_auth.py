"""令牌端点认证方式 in the console registry: how a confidential client presents its secret at the
token endpoint (client_secret_basic or client_secret_post), chosen at registration, changed by
an edit, and matched by the integration snippets."""

from __future__ import annotations

import base64
import html
import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp.admin.registry_operations import OidcSettings, RegistryError, create_oidc_client
from idp.clients.models import OidcClient
from idp.extensions import db
from tests.idp.admin_support import Signed, admin_fixture  # noqa: F401 - fixtures
from tests.idp.conftest import post_form
from tests.idp.console_support import events

NEW_OIDC = "/admin/clients/oidc/new"
#: A system-to-system client: the shortest way to the token endpoint with its secret.
SYSTEM = {
    "name": "通讯录同步",
    "redirect_uris": "",
    "grant_types": "client_credentials",
    "scopes": "directory.read",
}


def _method(app: Flask, client_id: str) -> str:
    with app.app_context():
        client = db.session.scalar(db.select(OidcClient).where(OidcClient.client_id == client_id))
        assert client is not None
        return client.token_endpoint_auth_method


def _register(admin: Signed, **fields: str) -> tuple[str, str, str]:
    """登记 through the form: the client id, the secret and the page showing them."""
    response = post_form(admin.client, NEW_OIDC, {**SYSTEM, **fields})
    page = response.get_data(as_text=True)
    assert response.status_code == 200, page[:2000]
    client_id = re.search(r'id="client-id">([^<]+)<', page)
    secret = re.search(r'id="client-secret">([^<]+)<', page)
    assert client_id and secret
    return client_id.group(1), secret.group(1), html.unescape(page)


def _token_status(client: FlaskClient, client_id: str, secret: str, method: str) -> int:
    """A client_credentials request presenting the secret as ``method`` does; its status."""
    data = {"grant_type": "client_credentials"}
    headers = {}
    if method == "client_secret_post":
        data |= {"client_id": client_id, "client_secret": secret}
    else:
        pair = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        headers["Authorization"] = f"Basic {pair}"
    return client.post("/oauth2/token", data=data, headers=headers).status_code


def _selected(page: str) -> str | None:
    """The 令牌端点认证方式 option selected on ``page``; None when it offers no such choice."""
    select = re.search(r'<select[^>]*name="token_endpoint_auth_method".*?</select>', page, re.S)
    if select is None:
        return None
    option = re.search(r"<option[^>]*\bselected\b[^>]*>", select.group(0))
    assert option, "no method selected"
    value = re.search(r'value="([^"]+)"', option.group(0))
    assert value
    return value.group(1)


def test_new_client_form_offers_the_method_with_client_secret_basic_first(
    idp_app: Flask, admin: Signed
) -> None:
    """登记 OIDC 客户端 offers both methods, basic selected, and says who needs post."""
    page = html.unescape(admin.client.get(NEW_OIDC).get_data(as_text=True))
    assert "令牌端点认证方式" in page
    assert _selected(page) == "client_secret_basic"
    assert "client_secret_basic（推荐）" in page and 'value="client_secret_post"' in page
    assert "ASP.NET Core、Keycloak 身份代理和 openid-client 默认使用 client_secret_post" in page


def test_default_client_authenticates_with_basic_and_its_snippets_say_so(
    idp_app: Flask, admin: Signed
) -> None:
    """Left at the default, the client is client_secret_basic, and so are both snippets."""
    client_id, secret, created = _register(admin, token_endpoint_auth_method="client_secret_basic")
    assert _method(idp_app, client_id) == "client_secret_basic"
    assert _token_status(admin.client, client_id, secret, "client_secret_basic") == 200
    page = html.unescape(admin.client.get(f"/admin/clients/oidc/{client_id}").get_data(True))
    for shown in (created, page):
        assert 'client.ClientSecretBasic("<client_secret>")' in shown
        assert '"token_endpoint_auth_method": "client_secret_basic"' in shown
        assert "ClientSecretPost" not in shown
    assert _selected(page) == "client_secret_basic"


def test_admin_registers_a_client_that_sends_its_secret_in_the_body(
    idp_app: Flask, admin: Signed
) -> None:
    """client_secret_post (ASP.NET Core, Keycloak): the token endpoint takes the secret in the
    body, still refuses it in the header, and the snippets send it the same way."""
    client_id, secret, created = _register(admin, token_endpoint_auth_method="client_secret_post")
    assert _method(idp_app, client_id) == "client_secret_post"
    assert _token_status(admin.client, client_id, secret, "client_secret_post") == 200
    assert _token_status(admin.client, client_id, secret, "client_secret_basic") == 401
    assert '<code id="client-auth-method">client_secret_post</code>' in created
    assert 'client.ClientSecretPost("<client_secret>")' in created
    assert '"token_endpoint_auth_method": "client_secret_post"' in created
    page = html.unescape(admin.client.get(f"/admin/clients/oidc/{client_id}").get_data(True))
    assert _selected(page) == "client_secret_post"
    assert "机密客户端 · client_secret_post" in page


def test_admin_switches_the_method_and_the_change_is_audited(idp_app: Flask, admin: Signed) -> None:
    """An edit moves a client to client_secret_post at once, logged with its reason."""
    client_id, secret, _ = _register(admin)
    assert _method(idp_app, client_id) == "client_secret_basic"
    url = f"/admin/clients/oidc/{client_id}"
    response = post_form(
        admin.client,
        url,
        {**SYSTEM, "token_endpoint_auth_method": "client_secret_post", "reason": "改用 Keycloak"},
    )
    assert response.status_code == 302
    assert _method(idp_app, client_id) == "client_secret_post"
    update = events(idp_app, "client.update")[-1]
    assert update["detail"]["fields"] == ["token_endpoint_auth_method"]
    assert update["detail"]["reason"] == "改用 Keycloak"
    assert update["actor_id"] == admin.user.id
    assert _token_status(admin.client, client_id, secret, "client_secret_post") == 200
    assert _token_status(admin.client, client_id, secret, "client_secret_basic") == 401
    # A form without the choice (a page from before it existed) leaves the method alone.
    unchanged = post_form(admin.client, url, {**SYSTEM, "name": "通讯录同步（新）"})
    assert unchanged.status_code == 302
    assert _method(idp_app, client_id) == "client_secret_post"


@pytest.mark.parametrize("tampered", ["none", "private_key_jwt", "client_secret_jwt"])
def test_a_method_the_page_did_not_offer_is_refused_and_nothing_is_lost(
    idp_app: Flask, admin: Signed, tampered: str
) -> None:
    """A tampered value: 400 with the reason under the field, what was typed kept, nothing
    registered or changed."""
    response = post_form(
        admin.client,
        NEW_OIDC,
        {**SYSTEM, "name": "教务系统（篡改）", "token_endpoint_auth_method": tampered},
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert re.search(r'id="token_endpoint_auth_method-error"[^>]*>请从列出的选项中选择<', page)
    assert 'value="教务系统（篡改）"' in page
    with idp_app.app_context():
        assert db.session.query(OidcClient).count() == 0

    client_id, _, _ = _register(admin)
    url = f"/admin/clients/oidc/{client_id}"
    edited = post_form(admin.client, url, {**SYSTEM, "token_endpoint_auth_method": tampered})
    assert edited.status_code == 400
    assert "请从列出的选项中选择" in edited.get_data(as_text=True)
    assert _method(idp_app, client_id) == "client_secret_basic"


def test_public_client_is_none_and_offers_no_choice(idp_app: Flask, admin: Signed) -> None:
    """A public client has no secret: its method is none whatever the form carried, its page
    offers no choice, and its snippets authenticate with none."""
    response = post_form(
        admin.client,
        NEW_OIDC,
        {
            "name": "校园 App",
            "public": "y",
            "grant_types": ["authorization_code", "refresh_token"],
            "redirect_uris": "https://app.example.edu.cn/cb",
            "scopes": "openid profile",
            "token_endpoint_auth_method": "client_secret_post",
        },
    )
    created = html.unescape(response.get_data(as_text=True))
    assert response.status_code == 200, created[:2000]
    client_id = re.search(r'id="client-id">([^<]+)<', created)
    assert client_id and 'id="client-secret"' not in created
    url = f"/admin/clients/oidc/{client_id.group(1)}"
    assert _method(idp_app, client_id.group(1)) == "none"
    assert "client.None()" in created and '"token_endpoint_auth_method": "none"' in created
    page = admin.client.get(url).get_data(as_text=True)
    assert _selected(page) is None and "令牌端点认证方式" not in page
    edited = post_form(
        admin.client,
        url,
        {
            "name": "校园 App",
            "redirect_uris": "https://app.example.edu.cn/cb",
            "scopes": "openid profile",
            "token_endpoint_auth_method": "client_secret_post",
        },
    )
    assert edited.status_code == 302
    assert _method(idp_app, client_id.group(1)) == "none"


SECRET_METHODS_ONLY = "令牌端点认证方式须为 client_secret_basic 或 client_secret_post"


@pytest.mark.parametrize(
    ("public", "method", "says"),
    [
        (False, "none", SECRET_METHODS_ONLY),
        (False, "private_key_jwt", SECRET_METHODS_ONLY),
        (True, "client_secret_post", "公开客户端没有密钥，令牌端点认证方式只能是 none"),
    ],
)
def test_registry_refuses_a_method_that_does_not_fit_the_client(
    idp_app: Flask, admin: Signed, public: bool, method: str, says: str
) -> None:
    """Below the form, the registry itself refuses a method the client cannot use."""
    settings = OidcSettings(
        name="教务系统",
        redirect_uris=["https://jw.example.edu.cn/cb"],
        scopes=["openid"],
        token_endpoint_auth_method=method,
    )
    with idp_app.test_request_context(), pytest.raises(RegistryError) as refused:
        create_oidc_client(settings, actor=admin.user, public=public)
    assert refused.value.problems == {"token_endpoint_auth_method": says}
