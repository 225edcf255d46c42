"""Review 9: 扫码登录 and the console on odd input — a provider answering nonsense, dates at the
edge of the calendar, a WeChat that stops sending its unionid."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp.admin.operations import SEARCH_LIMIT
from idp.directory.models import User
from idp.directory.operations import create_user
from idp.directory.roles import Role
from idp.extensions import db
from tests.fakes.wechat import FakeWeChat, WeChatUser, WeComMember
from tests.idp.conftest import MakeUser, csrf_token, session_count, sign_in
from tests.idp.console_support import console_sign_in, make_console_user
from tests.idp.test_social import bind, bindings, local, scan, start_security_bind

XIAOMING = WeChatUser("o-xiaoming-openid", "u-xiaoming-unionid", "小明")


class OddWeChat(FakeWeChat):
    """A fake WeChat whose ``sns/userinfo`` answers with a JSON value that is not an object."""

    #: What the next userinfo answer is (None: the real one).
    odd_userinfo: Any = None

    def _wechat_userinfo(
        self, handler: BaseHTTPRequestHandler, query: dict[str, str], body: Any
    ) -> None:
        if self.odd_userinfo is None:
            super()._wechat_userinfo(handler, query, body)
            return
        data = json.dumps(self.odd_userinfo).encode()
        self._send(handler, 200, "application/json; encoding=utf-8", data)


@pytest.fixture
def fake() -> Iterator[OddWeChat]:
    """A fake WeChat / WeCom for this test."""
    with OddWeChat() as server:
        yield server


@pytest.fixture
def idp_app(make_idp: Any, fake: OddWeChat) -> Flask:
    """The IdP with WeChat and WeCom pointed at the fake."""
    return make_idp(**fake.settings(timeout=0.5))


@pytest.fixture
def admin(idp_app: Flask, make_user: MakeUser) -> tuple[FlaskClient, User]:
    """An admin signed in to the console with password and TOTP."""
    user, secret = make_console_user(
        idp_app, make_user, Role.ADMIN, account="9000000002", verified_phone="13700000002"
    )
    client = idp_app.test_client()
    console_sign_in(client, user, secret)
    return client, user


# --- 扫码登录 -------------------------------------------------------------------------------


@pytest.mark.parametrize("answer", [["openid"], "openid", 7])
def test_wechat_userinfo_that_is_not_an_object_gives_the_unavailable_page(
    idp_client: FlaskClient, fake: OddWeChat, answer: Any
) -> None:
    """A WeChat answering its userinfo with a list, a string or a number is 暂时无法访问 (503),
    not a server error."""
    fake.odd_userinfo = answer
    response = scan(idp_client, fake, wechat_user=XIAOMING)
    assert response.status_code == 503, response.get_data(as_text=True)[:300]
    assert "暂时无法访问" in response.get_data(as_text=True)


@pytest.mark.parametrize("provider", ["wechat", "wecom"])
def test_identifier_longer_than_a_binding_holds_gives_the_unavailable_page(
    idp_app: Flask, idp_client: FlaskClient, fake: OddWeChat, make_user: MakeUser, provider: str
) -> None:
    """An openid or UserId past the 128 characters a binding stores is a malformed answer (503),
    not a failed insert (a 500 on PostgreSQL) after the user was told to go ahead."""
    user = make_user("2024000203")
    sign_in(idp_client, "2024000203")
    start = start_security_bind(idp_client, provider)
    long_id = "o" * 129
    person: dict[str, Any] = (
        {"wechat_user": WeChatUser(long_id, None, "小明")}
        if provider == "wechat"
        else {"wecom_member": WeComMember(long_id)}
    )
    response = idp_client.get(local(fake.scan(start.location, **person)))
    assert response.status_code == 503, response.get_data(as_text=True)[:300]
    assert bindings(idp_app, user) == []


def test_wechat_sending_no_unionid_still_finds_the_binding_made_with_one(
    idp_app: Flask, idp_client: FlaskClient, fake: OddWeChat, make_user: MakeUser
) -> None:
    """Bound while WeChat sent a unionid; a scan answered without one (the same openid) signs
    the same account in, and that WeChat can never be bound to a second account."""
    owner, other = make_user("2024000201"), make_user("2024000202")
    bind(idp_app, owner, XIAOMING)
    no_unionid = WeChatUser(XIAOMING.openid, None, "小明")
    response = scan(idp_client, fake, wechat_user=no_unionid)
    assert response.status_code == 302 and response.location != "/login/wechat/unbound"
    assert session_count(idp_app, owner) == 1
    # Through the security centre of another account: refused as taken.
    browser = idp_app.test_client()
    sign_in(browser, "2024000202")
    start = start_security_bind(browser)
    refused = browser.get(local(fake.scan(start.location, wechat_user=no_unionid)))
    assert refused.status_code == 409 and "该微信已绑定其他账号" in refused.get_data(as_text=True)
    assert bindings(idp_app, other) == []
    assert bindings(idp_app, owner) == [("wechat", XIAOMING.unionid)]


# --- 审计日志 -------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["/admin/audit", "/admin/audit.csv"])
@pytest.mark.parametrize("field", ["since", "until"])
def test_audit_date_at_the_start_of_the_calendar_is_refused_not_a_crash(
    admin: tuple[FlaskClient, User], where: str, field: str
) -> None:
    """0001-01-01 is a date strptime accepts but campus time cannot move to UTC: a clear 400."""
    client, _ = admin
    response = client.get(where, query_string={field: "0001-01-01"})
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert "YYYY-MM-DD" in response.get_data(as_text=True)
    # The other end of the calendar is an ordinary (empty) range.
    assert client.get(where, query_string={field: "9999-12-31"}).status_code == 200


# --- 角色与权限 -----------------------------------------------------------------------------


@pytest.mark.parametrize("user_id", ["99999999999999999999", "²", "2147483648"])
def test_revoking_a_role_of_a_tampered_account_id_is_refused_not_a_crash(
    admin: tuple[FlaskClient, User], user_id: str
) -> None:
    """An id no row can have (too large for the column, a digit int() does not read) is the
    page's 请求无效 message, not a server error."""
    client, _ = admin
    token = csrf_token(client, "/admin/roles")
    response = client.post(
        "/admin/roles/revoke",
        data={"csrf_token": token, "user_id": user_id, "role": "helpdesk"},
    )
    assert response.status_code == 303, response.get_data(as_text=True)[:300]
    page = client.get(response.location).get_data(as_text=True)
    assert "请求无效" in page


# --- 查找账号 -------------------------------------------------------------------------------


def test_search_by_a_common_name_lists_exact_names_first_and_says_when_it_stopped(
    idp_app: Flask, admin: tuple[FlaskClient, User]
) -> None:
    """王伟 on a big campus: more prefix matches than a page holds must not hide the 王伟 the
    desk is looking for, and the page says the list was cut short."""
    client, _ = admin
    with idp_app.app_context():
        for n in range(SEARCH_LIMIT + 5):
            create_user(f"2020{n:06d}", f"王伟{chr(0x4E00 + n)}", pending=True)
        create_user("2099000001", "王伟", pending=True)
        db.session.commit()
    page = client.get("/admin/users", query_string={"q": "王伟"}).get_data(as_text=True)
    assert "2099000001" in page
    assert page.count('<td><a href="/admin/users/') == SEARCH_LIMIT
    assert f"只显示前 {SEARCH_LIMIT} 个" in page
    # A search that fits says nothing of the kind.
    page = client.get("/admin/users", query_string={"q": "2099000001"}).get_data(as_text=True)
    assert "2099000001" in page and "只显示前" not in page
