"""方式三：微信、企业微信扫码登录, and binding WeChat / WeCom in 信息完善 and the 安全中心.

The IdP's real client code (wechatpy) talks to a fake WeChat / WeCom on 127.0.0.1
(``tests/fakes/wechat.py``); the "phone" taps 允许 or 拒绝 on the fake's QR page.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from idp.audit.models import AuditEvent
from idp.directory.models import User, UserStatus
from idp.extensions import db
from idp.social.clients import SocialProfile
from idp.social.models import SocialIdentity
from idp.social.operations import bind_identity, identities_of, unbind_identity
from shared.messaging import SMS_FILE, read_records
from tests.fakes.wechat import FakeWeChat, WeChatUser, WeComMember
from tests.idp.conftest import (
    PASSWORD,
    MakeUser,
    csrf_token,
    last_code,
    post_form,
    session_count,
    settle_deliveries,
    sign_in,
)

XIAOMING = WeChatUser("o-xiaoming-openid", "u-xiaoming-unionid", "小明")
STRANGER = WeChatUser("o-stranger-openid", "u-stranger-unionid", "陌生人")


@pytest.fixture
def fake() -> Iterator[FakeWeChat]:
    """A fake WeChat / WeCom for this test."""
    with FakeWeChat() as server:
        yield server


@pytest.fixture
def idp_app(make_idp: Any, fake: FakeWeChat) -> Flask:
    """The IdP with WeChat and WeCom pointed at the fake (short timeout for the slow cases)."""
    return make_idp(**fake.settings(timeout=0.5))


# --- helpers -------------------------------------------------------------------------------


def local(url: str) -> str:
    """The path and query of an absolute URL (what the test client can request)."""
    parts = urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


def qr_page(client: FlaskClient, provider: str = "wechat", **params: Any) -> str:
    """Click the provider's icon; returns the provider's QR page URL it redirects to."""
    response = client.get(f"/login/{provider}", query_string=params)
    assert response.status_code == 302, response.get_data(as_text=True)
    assert response.location.startswith("http://127.0.0.1:"), response.location
    return str(response.location)


def scan(
    client: FlaskClient,
    fake: FakeWeChat,
    provider: str = "wechat",
    start: str | None = None,
    **scan_options: Any,
) -> Any:
    """Start at ``start`` (or the login icon), scan on the fake, come back to the IdP."""
    page = qr_page(client, provider) if start is None else start
    callback = fake.scan(page, **scan_options)
    return client.get(local(callback))


def post_from(
    client: FlaskClient, page: str, action: str, data: dict[str, Any] | None = None
) -> Any:
    """Press a button on ``page`` that posts to ``action`` (with the page's CSRF token)."""
    return client.post(action, data={"csrf_token": csrf_token(client, page), **(data or {})})


def start_security_bind(client: FlaskClient, provider: str = "wechat") -> Any:
    """安全中心 → 去绑定 → 身份验证 with the login password → 去扫码: the redirect to the scan."""
    url = f"/security/social/{provider}/bind"
    verified = post_form(client, url, {"method": "password", "password": PASSWORD})
    assert verified.status_code == 302 and verified.location == url, verified.get_data(as_text=True)
    return post_form(client, url, {})


def bind(app: Flask, user: User, person: WeChatUser | WeComMember) -> None:
    """Bind an identity directly (set-up)."""
    if isinstance(person, WeChatUser):
        profile = SocialProfile(
            "wechat",
            person.unionid or person.openid,
            person.openid,
            person.unionid,
            person.nickname,
        )
    else:
        profile = SocialProfile("wecom", person.userid, nickname=person.userid)
    with app.app_context():
        bind_identity(db.session.get(User, user.id), profile, via="security")
        db.session.commit()


def bindings(app: Flask, user: User) -> list[tuple[str, str]]:
    """``(provider, subject)`` of every identity bound to ``user``."""
    with app.app_context():
        return [(i.provider, i.subject) for i in identities_of(db.session.get(User, user.id))]


def events(app: Flask, action: str) -> list[AuditEvent]:
    """Audit events of ``action``, oldest first."""
    with app.app_context():
        rows = db.session.scalars(
            db.select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
        ).all()
        for row in rows:
            db.session.expunge(row)
        return list(rows)


def signed_in_as(client: FlaskClient) -> str | None:
    """The account the browser's SSO session belongs to (from the security centre)."""
    response = client.get("/security")
    if response.status_code != 200:
        return None
    return response.get_data(as_text=True)


# --- the sign-in page -----------------------------------------------------------------------


def test_login_page_offers_scan_tab_with_wechat_and_wecom_icons(idp_client: FlaskClient) -> None:
    """扫码登录 shows both icons; each goes to /login/<provider> with next kept."""
    page = idp_client.get("/login?tab=qr&next=/security").get_data(as_text=True)
    assert "扫码登录" in page
    assert 'formaction="/login/wechat"' in page and 'formaction="/login/wecom"' in page
    assert 'name="next" value="/security"' in page
    assert "<script" not in page  # CSP: nothing inline
    assert "扫码登录" in idp_client.get("/login").get_data(as_text=True)


def test_unconfigured_provider_is_not_offered(make_idp: Any, fake: FakeWeChat) -> None:
    """Without an app id WeChat is neither on the page nor reachable; WeCom still is."""
    settings = {**fake.settings(), "WECHAT_APP_ID": None}
    client = make_idp(**settings).test_client()
    page = client.get("/login?tab=qr").get_data(as_text=True)
    assert "/login/wechat" not in page and "/login/wecom" in page
    assert client.get("/login/wechat").status_code == 404
    assert client.get("/login/qq").status_code == 404
    bare = make_idp().test_client()
    assert "扫码登录" not in bare.get("/login").get_data(as_text=True)
    assert bare.get("/login/wecom").status_code == 404


def test_qr_page_request_carries_app_id_scope_callback_and_state(
    idp_client: FlaskClient, fake: FakeWeChat
) -> None:
    """The redirect is WeChat's qrconnect with snsapi_login, our callback and a random state."""
    url = qr_page(idp_client)
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert parts.path == "/connect/qrconnect" and parts.fragment == "wechat_redirect"
    assert query["appid"] == fake.app_id and query["scope"] == "snsapi_login"
    assert query["redirect_uri"] == "http://127.0.0.1:5000/login/wechat/callback"
    assert len(query["state"]) == 32
    assert qr_page(idp_client) != url  # a new state every time


@pytest.mark.parametrize("provider", ["wechat", "wecom"])
def test_callback_address_is_under_the_issuer_whatever_host_the_request_names(
    make_idp: Any, fake: FakeWeChat, provider: str
) -> None:
    """redirect_uri is IDP_ISSUER + the callback path; a forged Host header does not move it."""
    app = make_idp(**fake.settings(), ISSUER="https://id.example.edu/")
    response = app.test_client().get(f"/login/{provider}", headers={"Host": "evil.example.com"})
    assert response.status_code == 302
    query = {k: v[0] for k, v in parse_qs(urlsplit(response.location).query).items()}
    assert query["redirect_uri"] == f"https://id.example.edu/login/{provider}/callback"


# --- scanning to sign in --------------------------------------------------------------------


def test_student_signs_in_by_scanning_bound_wechat(
    idp_app: Flask, idp_client: FlaskClient, fake: FakeWeChat, make_user: MakeUser
) -> None:
    """A bound WeChat signs its account in and the browser continues to ``next``."""
    user = make_user("2024000101")
    bind(idp_app, user, XIAOMING)
    page = qr_page(idp_client, next="/security")
    response = idp_client.get(local(fake.scan(page, wechat_user=XIAOMING)))
    assert response.status_code == 302 and response.location == "/security"
    assert session_count(idp_app, user) == 1
    assert "2024000101" in (signed_in_as(idp_client) or "")
    login = events(idp_app, "login")[-1]
    assert (login.outcome, login.method, login.target_id) == ("success", "wechat", user.id)


def test_unionid_is_the_subject_so_another_app_openid_still_matches(
    idp_app: Flask, idp_client: FlaskClient, fake: FakeWeChat, make_user: MakeUser
) -> None:
    """Bindings are keyed on the unionid: the same person with another openid signs in."""
    user = make_user()
    bind(idp_app, user, XIAOMING)
    assert bindings(idp_app, user) == [("wechat", XIAOMING.unionid)]
    same_person = WeChatUser("o-other-app-openid", XIAOMING.unionid, "小明")
    response = scan(idp_client, fake, wechat_user=same_person)
    assert response.status_code == 302 and session_count(idp_app, user) == 1


def test_openid_only_binding_moves_to_unionid_when_wechat_sends_one(
    idp_app: Flask, idp_client: FlaskClient, fake: FakeWeChat, make_user: MakeUser
) -> None:
    """An app without unionid bound on openid; once WeChat sends a unionid the row uses it."""
    user = make_user()
    bind(idp_app, user, WeChatUser(XIAOMING.openid, None, "小明"))
    assert bindings(idp_app, user) == [("wechat", XIAOMING.openid)]
    assert scan(idp_client, fake, wechat_user=XIAOMING).status_code == 302
    assert bindings(idp_app, user) == [("wechat", XIAOMING.unionid)]


def test_scan_sign_in_still_asks_for_information_completion(
    idp_app: Flask, idp_client: FlaskClient, fake: FakeWeChat, make_user: MakeUser
) -> None:
    """Required steps still apply: an account without a security phone goes to 信息完善."""
    user = make_user(verified_phone=None)
    bind(idp_app, user, XIAOMING)
    response = scan(idp_client, fake, wechat_user=XIAOMING)
    assert response.status_code == 302 and response.location == "/complete"
    assert session_count(idp_app, user) == 0


def test_disabled_account_cannot_sign_in_by_scan(
    idp_app: Flask, idp_client: FlaskClient, fake: FakeWeChat, make_user: MakeUser
) -> None:
    """A disabled account's WeChat is refused with the help-desk message."""
    user = make_user()
    bind(idp_app, user, XIAOMING)
    with idp_app.app_context():
        db.session.get(User, user.id).status = UserStatus.DISABLED
        db.session.commit()
    response = scan(idp_client, fake, wechat_user=XIAOMING)
    assert response.status_code == 403
    assert "已被停用或锁定" in response.get_data(as_text=True)
    assert session_count(idp_app, user) == 0
    assert events(idp_app, "login")[-1].outcome == "denied"


def test_staff_signs_in_with_wecom(
    idp_app: Flask, idp_client: FlaskClient, fake: FakeWeChat, make_user: MakeUser
) -> None:
    """WeCom web login: the wwlogin QR page, gettoken, getuserinfo by code, then the session."""
    user = make_user("T3001", kind="staff")
    bind(idp_app, user, WeComMember("lisi"))
    page = qr_page(idp_client, "wecom", next="/security")
    query = {k: v[0] for k, v in parse_qs(urlsplit(page).query).items()}
    assert urlsplit(page).path == "/wwlogin/sso/login"
    assert (query["appid"], query["agentid"], query["login_type"]) == (
        fake.corp_id,
        fake.agent_id,
        "CorpApp",
    )
    response = idp_client.get(local(fake.scan(page, wecom_member=WeComMember("lisi"))))
    assert response.status_code == 302 and response.location == "/security"
    assert session_count(idp_app, user) == 1
    assert [r.path for r in fake.requests if r.path.startswith("/cgi-bin/")] == [
        "/cgi-bin/gettoken",
        "/cgi-bin/user/getuserinfo",
    ]


def test_wecom_token_is_shared_and_fetched_again_when_refused(
    idp_app: Flask, fake: FakeWeChat, make_user: MakeUser
) -> None:
    """The token is cached in the store across browsers; a refused token is replaced once."""
    user = make_user(kind="staff")
    bind(idp_app, user, WeComMember("lisi"))
    for _ in range(2):
        client = idp_app.test_client()
        assert scan(client, fake, "wecom", wecom_member=WeComMember("lisi")).status_code == 302
    assert [r.path for r in fake.requests].count("/cgi-bin/gettoken") == 1
    fake.expire_wecom_tokens()
    client = idp_app.test_client()
    assert scan(client, fake, "wecom", wecom_member=WeComMember("lisi")).status_code == 302
    assert [r.path for r in fake.requests].count("/cgi-bin/gettoken") == 2
    assert session_count(idp_app, user) == 3


def test_wecom_wrong_secret_is_a_clear_refusal(
    make_idp: Any, fake: FakeWeChat, make_user: MakeUser
) -> None:
    """A misconfigured WeCom secret (40001) gives a page with the error code, not a 500."""
    app = make_idp(**{**fake.settings(), "WECOM_SECRET": "wrong"})
    response = scan(app.test_client(), fake, "wecom")
    text = response.get_data(as_text=True)
    assert response.status_code == 502 and "40001" in text and "账号登录" in text


# --- CAS and OIDC continue after scanning ----------------------------------------------------


def test_cas_service_gets_its_ticket_after_scan(
    idp_app: Flask, idp_client: FlaskClient, fake: FakeWeChat, make_user: MakeUser
) -> None:
    """/cas/login → /login?next=… → 扫码登录 → back at /cas/login → the service's ticket."""
    from idp.clients.operations import register_cas_service

    with idp_app.app_context():
        register_cas_service("教务系统", r"https://app\.example\.edu/.*")
        db.session.commit()
    user = make_user("2024000102")
    bind(idp_app, user, XIAOMING)
    service = "https://app.example.edu/cas/callback"
    response = idp_client.get("/cas/login", query_string={"service": service})
    assert response.status_code == 302 and response.location.startswith("/login")
    next_url = parse_qs(urlsplit(response.location).query)["next"][0]
    back = idp_client.get(
        local(fake.scan(qr_page(idp_client, next=next_url), wechat_user=XIAOMING))
    )
    assert back.status_code == 302 and back.location == next_url
    final = idp_client.get(next_url)
    assert final.status_code == 303 and final.location.startswith(service + "?ticket=ST-")
    ticket = parse_qs(urlsplit(final.location).query)["ticket"][0]
    validated = idp_client.get(
        "/cas/p3/serviceValidate", query_string={"service": service, "ticket": ticket}
    ).get_data(as_text=True)
    assert "<cas:user>2024000102</cas:user>" in validated


def test_oidc_client_gets_its_code_after_scan_with_wechat_amr(
    idp_app: Flask, idp_client: FlaskClient, fake: FakeWeChat, make_user: MakeUser
) -> None:
    """/oauth2/authorize → 扫码登录 → a code whose ID token says it was a WeChat sign-in."""
    from tests.idp.oidc_support import (
        authorize_url,
        exchange,
        redirect_params,
        register,
        verify_id_token,
    )

    rp = register(idp_app)
    user = make_user()
    bind(idp_app, user, XIAOMING)
    response = idp_client.get(authorize_url(rp, nonce="n-social"))
    assert response.status_code == 302 and response.location.startswith("/login")
    next_url = parse_qs(urlsplit(response.location).query)["next"][0]
    back = idp_client.get(
        local(fake.scan(qr_page(idp_client, next=next_url), wechat_user=XIAOMING))
    )
    assert back.status_code == 302 and back.location == next_url
    params = redirect_params(idp_client.get(next_url))
    from tests.idp.oidc_support import Authorization

    tokens = exchange(
        idp_client, rp, Authorization(params["code"], params.get("state", ""), rp.verifier, params)
    ).get_json()
    claims = verify_id_token(idp_client, idp_app, rp, tokens["id_token"], nonce="n-social")
    assert claims["sub"] == str(user.id) and claims["amr"] == ["wechat"]


# --- bad input --------------------------------------------------------------------------------


def test_callback_without_state_or_with_a_foreign_state_is_refused(
    idp_app: Flask, idp_client: FlaskClient, fake: FakeWeChat, make_user: MakeUser
) -> None:
    """Missing state, another browser's state and a state typed by hand: all refused."""
    user = make_user()
    bind(idp_app, user, XIAOMING)
    callback = fake.scan(qr_page(idp_client), wechat_user=XIAOMING)
    query = parse_qs(urlsplit(callback).query)
    no_state = idp_client.get("/login/wechat/callback", query_string={"code": query["code"][0]})
    assert no_state.status_code == 400 and "扫码请求已失效" in no_state.get_data(as_text=True)
    # Another browser's callback (an attacker's scan) does not sign this one in.
    other = idp_app.test_client()
    attacker = fake.scan(qr_page(other), wechat_user=XIAOMING)
    victim = idp_app.test_client()
    qr_page(victim)
    assert victim.get(local(attacker)).status_code == 400
    assert session_count(idp_app, user) == 0
    assert {e.detail for e in events(idp_app, "login")} == {json.dumps({"reason": "state"})}


def test_replayed_callback_is_refused(
    idp_app: Flask, idp_client: FlaskClient, fake: FakeWeChat, make_user: MakeUser
) -> None:
    """The state is single use: the same callback twice starts one session."""
    user = make_user()
    bind(idp_app, user, XIAOMING)
    callback = local(fake.scan(qr_page(idp_client), wechat_user=XIAOMING))
    assert idp_client.get(callback).status_code == 302
    again = idp_client.get(callback)
    assert again.status_code == 400 and "重新扫码" in again.get_data(as_text=True)
    assert session_count(idp_app, user) == 1


def test_cancelled_scan_explains_and_offers_other_ways_in(
    idp_client: FlaskClient, fake: FakeWeChat
) -> None:
    """拒绝 on the phone: a page saying so, with 重新扫码 / 账号登录 / 短信登录."""
    response = scan(idp_client, fake, allow=False)
    text = response.get_data(as_text=True)
    assert response.status_code == 401
    assert "取消了授权" in text
    assert 'href="/login?tab=qr' in text and 'href="/login?tab=sms' in text


def test_used_code_40163_and_expired_code_40029_ask_to_scan_again(
    idp_app: Flask, idp_client: FlaskClient, fake: FakeWeChat, make_user: MakeUser
) -> None:
    """A code someone already redeemed, or one older than five minutes: 二维码已失效."""
    user = make_user()
    bind(idp_app, user, XIAOMING)
    callback = fake.scan(qr_page(idp_client), wechat_user=XIAOMING)
    code = parse_qs(urlsplit(callback).query)["code"][0]
    spent = requests.get(
        f"{fake.url}/sns/oauth2/access_token",
        params={
            "appid": fake.app_id,
            "secret": fake.app_secret,
            "code": code,
            "grant_type": "authorization_code",
        },
        timeout=5,
    ).json()
    assert "access_token" in spent
    used = idp_client.get(local(callback))
    assert used.status_code == 400 and "二维码已失效" in used.get_data(as_text=True)
    callback = fake.scan(qr_page(idp_client), wechat_user=XIAOMING)
    fake.expire_codes()
    expired = idp_client.get(local(callback))
    assert expired.status_code == 400 and "二维码已失效" in expired.get_data(as_text=True)
    reasons = [json.loads(e.detail or "{}") for e in events(idp_app, "login")]
    assert [r.get("errcode") for r in reasons] == [40163, 40029]
    assert session_count(idp_app, user) == 0


def test_wechat_timeout_and_system_busy_give_a_friendly_page(
    idp_client: FlaskClient, fake: FakeWeChat
) -> None:
    """WeChat slower than IDP_SOCIAL_TIMEOUT, or answering -1: 503 with other ways in."""
    fake.delay_next(1.5, path="/sns/oauth2/access_token")
    slow = scan(idp_client, fake)
    assert slow.status_code == 503 and "暂时没有响应" in slow.get_data(as_text=True)
    fake.fail_next(-1)
    busy = scan(idp_client, fake)
    assert busy.status_code == 503 and "短信登录" in busy.get_data(as_text=True)


def test_wrong_app_secret_is_a_clear_refusal(make_idp: Any, fake: FakeWeChat) -> None:
    """40125 invalid appsecret: a page naming the error code, nothing half done."""
    app = make_idp(**{**fake.settings(), "WECHAT_APP_SECRET": "wrong"})
    response = scan(app.test_client(), fake)
    assert response.status_code == 502 and "40125" in response.get_data(as_text=True)


# --- bind on first scan -----------------------------------------------------------------------


def link_form(client: FlaskClient, provider: str = "wechat") -> dict[str, str]:
    """The hidden fields of the 确认绑定 page's form (its CSRF token and the scan it shows)."""
    page = client.get(f"/login/{provider}/link")
    assert page.status_code == 200, page.location
    fields = re.findall(
        r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.get_data(as_text=True)
    )
    return dict(fields)


def confirm_link(client: FlaskClient, decision: str = "bind", provider: str = "wechat") -> Any:
    """Press 确认绑定 (``bind``) or 暂不绑定 (``skip``) on the confirmation page."""
    data = {**link_form(client, provider), "decision": decision}
    return client.post(f"/login/{provider}/link", data=data)


def test_unbound_wechat_is_bound_after_sign_in_and_confirmation_and_sign_in_continues(
    idp_app: Flask, idp_client: FlaskClient, fake: FakeWeChat, make_user: MakeUser
) -> None:
    """该微信尚未绑定账号 → 账号登录 → 确认绑定 → bound, and on to where the user was going."""
    user = make_user("2024000103")
    response = idp_client.get(
        local(fake.scan(qr_page(idp_client, next="/security"), wechat_user=XIAOMING))
    )
    assert response.status_code == 302 and response.location == "/login/wechat/unbound"
    page = idp_client.get(response.location).get_data(as_text=True)
    assert "该微信尚未绑定账号，请先用账号密码登录以完成绑定" in page
    assert "小明" in page and "/login?next=/login/wechat/link" in page
    signed = sign_in(idp_client, "2024000103", next="/login/wechat/link")
    assert signed.status_code == 302 and signed.location == "/login/wechat/link"
    linked = confirm_link(idp_client)
    assert linked.status_code == 302 and linked.location == "/security"
    assert bindings(idp_app, user) == [("wechat", XIAOMING.unionid)]
    assert "微信已绑定到您的账号" in idp_client.get("/security").get_data(as_text=True)
    assert events(idp_app, "social.bind")[-1].detail == json.dumps({"via": "login"})
    # Next time the scan alone signs in.
    fresh = idp_app.test_client()
    assert scan(fresh, fake, wechat_user=XIAOMING).status_code == 302
    assert session_count(idp_app, user) == 2


def test_unbound_wechat_can_be_bound_by_sms_sign_in(
    idp_app: Flask, idp_client: FlaskClient, fake: FakeWeChat, make_user: MakeUser
) -> None:
    """The 短信登录 button on the 尚未绑定 page works the same way."""
    user = make_user(verified_phone="13900000001")
    scan(idp_client, fake, wechat_user=XIAOMING)
    url = "/login?tab=sms"
    post_form(idp_client, url, {"phone": "13900000001", "send": "1", "next": "/login/wechat/link"})
    signed = post_form(
        idp_client,
        url,
        {"phone": "13900000001", "code": last_code(idp_app), "next": "/login/wechat/link"},
    )
    assert signed.status_code == 302 and signed.location == "/login/wechat/link"
    assert confirm_link(idp_client).status_code == 302
    assert bindings(idp_app, user) == [("wechat", XIAOMING.unionid)]


def test_link_page_names_wechat_and_account_and_binds_nothing_by_itself(
    idp_app: Flask, idp_client: FlaskClient, fake: FakeWeChat, make_user: MakeUser
) -> None:
    """GET /login/wechat/link only asks: which WeChat, which account, 确认绑定 or 暂不绑定."""
    user = make_user("2024000113", name="李四")
    scan(idp_client, fake, wechat_user=XIAOMING)
    sign_in(idp_client, "2024000113", next="/login/wechat/link")
    for _ in range(2):  # a reload asks again; it never binds
        page = idp_client.get("/login/wechat/link")
        text = page.get_data(as_text=True)
        assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
        assert "微信" in text and "小明" in text and "李四" in text and "2024000113" in text
        assert '<form method="post" action="/login/wechat/link"' in text
        assert 'name="csrf_token"' in text and "确认绑定" in text and "暂不绑定" in text
    assert bindings(idp_app, user) == []
    assert events(idp_app, "social.bind") == []


def test_wechat_left_waiting_on_a_shared_computer_is_not_bound_to_the_next_person(
    idp_app: Flask, idp_client: FlaskClient, fake: FakeWeChat, make_user: MakeUser
) -> None:
    """Someone scans their unbound WeChat and walks away; whoever signs in next is asked, and
    暂不绑定 drops the waiting WeChat, so the stranger's scan never opens that account."""
    victim = make_user("2024000114")
    scan(idp_client, fake, start=qr_page(idp_client, next="/security"), wechat_user=STRANGER)
    signed = sign_in(idp_client, "2024000114", next="/login/wechat/link")
    assert signed.status_code == 302 and signed.location == "/login/wechat/link"
    page = idp_client.get("/login/wechat/link")
    assert page.status_code == 200 and "陌生人" in page.get_data(as_text=True)
    assert bindings(idp_app, victim) == []
    skipped = confirm_link(idp_client, "skip")
    assert skipped.status_code == 302 and skipped.location == "/security"
    assert bindings(idp_app, victim) == []
    # The waiting scan is gone: the link neither binds nor asks again.
    again = idp_client.get("/login/wechat/link")
    assert again.status_code == 302 and again.location == "/security"
    declined = events(idp_app, "social.bind")[-1]
    assert (declined.outcome, declined.actor_id, declined.method) == ("denied", victim.id, "wechat")
    assert json.loads(declined.detail or "{}") == {"reason": "declined", "via": "login"}
    # The stranger scanning again is still a stranger.
    stranger = idp_app.test_client()
    back = scan(stranger, fake, wechat_user=STRANGER)
    assert back.status_code == 302 and back.location == "/login/wechat/unbound"
    assert session_count(idp_app, victim) == 1


def test_binding_needs_a_post_with_the_csrf_token_for_the_scan_shown(
    idp_app: Flask, idp_client: FlaskClient, fake: FakeWeChat, make_user: MakeUser
) -> None:
    """No CSRF token, another scan than the page showed, another provider: nothing is bound."""
    user = make_user("2024000115")
    scan(idp_client, fake, wechat_user=XIAOMING)
    sign_in(idp_client, "2024000115")
    form = link_form(idp_client)
    no_token = idp_client.post(
        "/login/wechat/link", data={**form, "csrf_token": "", "decision": "bind"}
    )
    assert no_token.status_code == 400
    other_scan = idp_client.post(
        "/login/wechat/link", data={**form, "scan": "x", "decision": "bind"}
    )
    assert other_scan.status_code == 302 and other_scan.location == "/login/wechat/link"
    wecom = idp_client.post("/login/wecom/link", data={**form, "decision": "bind"})
    assert wecom.status_code == 302 and wecom.location == "/security"
    assert bindings(idp_app, user) == []
    assert confirm_link(idp_client).status_code == 302
    assert bindings(idp_app, user) == [("wechat", XIAOMING.unionid)]


def test_old_session_cannot_bind_without_signing_in_after_the_scan(
    idp_app: Flask, idp_client: FlaskClient, fake: FakeWeChat, make_user: MakeUser
) -> None:
    """A browser signed in before the scan is sent to sign in again rather than asked or bound."""
    user = make_user("2024000104")
    sign_in(idp_client, "2024000104")
    scan(idp_client, fake, wechat_user=XIAOMING)
    response = idp_client.get("/login/wechat/link")
    assert response.status_code == 302 and response.location == "/login/wechat/unbound"
    token = csrf_token(idp_client, "/security")
    forced = idp_client.post("/login/wechat/link", data={"csrf_token": token, "decision": "bind"})
    assert forced.status_code == 302 and forced.location == "/login/wechat/unbound"
    assert bindings(idp_app, user) == []


def test_wechat_bound_to_someone_else_is_not_bound_again_at_sign_in(
    idp_app: Flask, idp_client: FlaskClient, fake: FakeWeChat, make_user: MakeUser
) -> None:
    """Bound meanwhile to another account: the user is told, signed in, and nothing is bound."""
    owner, other = make_user("2024000105"), make_user("2024000106")
    scan(idp_client, fake, wechat_user=XIAOMING)
    bind(idp_app, owner, XIAOMING)
    sign_in(idp_client, "2024000106", next="/login/wechat/link")
    refused = confirm_link(idp_client)
    response = idp_client.get(refused.location)
    assert "该微信已绑定其他账号" in response.get_data(as_text=True)
    assert bindings(idp_app, other) == []
    assert bindings(idp_app, owner) == [("wechat", XIAOMING.unionid)]


# --- the security centre ---------------------------------------------------------------------


def test_student_binds_wechat_in_security_centre(
    idp_app: Flask, idp_client: FlaskClient, fake: FakeWeChat, make_user: MakeUser
) -> None:
    """安全中心 → 微信 去绑定 → scan → 已绑定."""
    user = make_user("2024000107")
    sign_in(idp_client, "2024000107")
    page = idp_client.get("/security").get_data(as_text=True)
    assert "/security/social/wechat/bind" in page and "去绑定" in page
    start = start_security_bind(idp_client)
    assert start.status_code == 302
    back = idp_client.get(local(fake.scan(start.location, wechat_user=XIAOMING)))
    assert back.status_code == 302 and back.location == "/security"
    page = idp_client.get("/security").get_data(as_text=True)
    assert "微信绑定成功" in page and "小明" in page and "解除绑定" in page
    assert bindings(idp_app, user) == [("wechat", XIAOMING.unionid)]


def test_wechat_of_another_account_cannot_be_bound(
    idp_app: Flask, idp_client: FlaskClient, fake: FakeWeChat, make_user: MakeUser
) -> None:
    """One WeChat, one account: a clear 409 page, and the user's bindings unchanged."""
    owner, user = make_user(), make_user("2024000108")
    bind(idp_app, owner, XIAOMING)
    sign_in(idp_client, "2024000108")
    start = start_security_bind(idp_client)
    response = idp_client.get(local(fake.scan(start.location, wechat_user=XIAOMING)))
    text = response.get_data(as_text=True)
    assert response.status_code == 409 and "该微信已绑定其他账号" in text
    assert "返回安全中心" in text
    assert bindings(idp_app, user) == []
    refused = events(idp_app, "social.bind")[-1]
    assert refused.outcome == "failure" and "taken" in (refused.detail or "")


def test_unbind_needs_password_or_sms_code_first(
    idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser
) -> None:
    """解除绑定: a wrong password is refused; the right one leads to the confirmation."""
    user = make_user("2024000109")
    bind(idp_app, user, XIAOMING)
    sign_in(idp_client, "2024000109")
    url = "/security/social/wechat/unbind"
    page = idp_client.get(url).get_data(as_text=True)
    assert "身份验证" in page and "登录密码" in page
    wrong = post_form(idp_client, url, {"method": "password", "password": "nope"})
    assert wrong.status_code == 400 and bindings(idp_app, user)
    # Skipping the verification by posting the confirmation straight away does nothing.
    assert post_form(idp_client, url, {}).status_code == 400
    assert bindings(idp_app, user)
    right = post_form(idp_client, url, {"method": "password", "password": PASSWORD})
    assert right.status_code == 302
    confirm = idp_client.get(url).get_data(as_text=True)
    assert "确认解除" in confirm
    done = post_form(idp_client, url, {})
    assert done.status_code == 302 and done.location == "/security"
    assert bindings(idp_app, user) == []
    assert "已解除微信绑定" in idp_client.get("/security").get_data(as_text=True)
    event = events(idp_app, "social.unbind")[-1]
    assert (event.actor_id, event.target_id, event.method) == (user.id, user.id, "wechat")


def test_unbind_with_sms_code(idp_app: Flask, idp_client: FlaskClient, make_user: MakeUser) -> None:
    """The SMS code to the security phone works as the 身份验证 too."""
    user = make_user("2024000110", verified_phone="13900000002")
    bind(idp_app, user, WeComMember("wangwu"))
    sign_in(idp_client, "2024000110")
    url = "/security/social/wecom/unbind"
    post_form(idp_client, url, {"method": "sms", "send": "1"})
    assert (
        post_form(idp_client, url, {"method": "sms", "code": last_code(idp_app)}).status_code == 302
    )
    assert post_form(idp_client, url, {}).status_code == 302
    assert bindings(idp_app, user) == []


def test_help_desk_unbinds_with_reason(idp_app: Flask, make_user: MakeUser) -> None:
    """unbind_identity (the help-desk console's call) removes the binding and audits who and why."""
    user, agent = make_user(), make_user()
    bind(idp_app, user, XIAOMING)
    with idp_app.app_context():
        target = db.session.get(User, user.id)
        assert unbind_identity(
            target, "wechat", actor=db.session.get(User, agent.id), reason="手机丢失，本人来电"
        )
        assert not unbind_identity(target, "wechat", actor=None, reason="again")
        db.session.commit()
    assert bindings(idp_app, user) == []
    event = events(idp_app, "social.unbind")[-1]
    assert (event.actor_id, event.target_id) == (agent.id, user.id)
    assert "手机丢失" in (event.detail or "")


def test_second_wechat_needs_the_first_unbound(
    idp_app: Flask, idp_client: FlaskClient, fake: FakeWeChat, make_user: MakeUser
) -> None:
    """An account has one WeChat: binding another is refused until the first is removed."""
    user = make_user("2024000111")
    bind(idp_app, user, XIAOMING)
    sign_in(idp_client, "2024000111")
    refused = idp_client.get("/security/social/wechat/bind")
    assert refused.status_code == 302 and refused.location == "/security"
    assert "请先解除绑定" in idp_client.get("/security").get_data(as_text=True)
    with idp_app.app_context():
        assert db.session.query(SocialIdentity).count() == 1


# --- 信息完善 ------------------------------------------------------------------------------------


def test_wechat_can_be_bound_during_information_completion(
    idp_app: Flask, idp_client: FlaskClient, fake: FakeWeChat, make_user: MakeUser
) -> None:
    """信息完善 step 2 shows 安全手机 / 微信 / 企业微信 rows; 微信 去绑定 binds and comes back."""
    user = make_user("2024000112", verified_phone=None)
    sign_in(idp_client, "2024000112")
    from tests.idp.conftest import ID_NUMBER

    post_form(
        idp_client,
        "/complete?start=1",
        {"account": "2024000112", "name": "张三", "id_number": ID_NUMBER},
    )
    page = idp_client.get("/complete").get_data(as_text=True)
    assert "安全手机" in page and "未绑定微信" in page and "未绑定企业微信" in page
    start = post_from(idp_client, "/complete", "/complete/social/wechat/bind")
    assert start.status_code == 302
    back = idp_client.get(local(fake.scan(start.location, wechat_user=XIAOMING)))
    assert back.status_code == 302 and back.location == "/complete"
    page = idp_client.get("/complete").get_data(as_text=True)
    assert "微信绑定成功" in page and "未绑定微信" not in page and "未绑定安全手机" in page
    assert bindings(idp_app, user) == [("wechat", XIAOMING.unionid)]
    assert session_count(idp_app, user) == 0  # the phone is still required


def test_complete_bind_needs_a_pending_sign_in(idp_client: FlaskClient) -> None:
    """Nobody part-way through sign-in: 去绑定 sends to /login."""
    token = csrf_token(idp_client, "/login")
    response = idp_client.post("/complete/social/wechat/bind", data={"csrf_token": token})
    assert response.status_code == 302 and response.location == "/login"


# --- 去绑定 asks 身份验证 first; the owner is told --------------------------------------------

BIND_URL = "/security/social/wechat/bind"
NOTICE_PHONE = "13900000031"


def notices_to(app: Flask, phone: str) -> list[str]:
    """The texts of the notices (not codes) sent to ``phone``."""
    settle_deliveries(app)
    records = read_records(app.config["OUTBOX_DIR"], SMS_FILE)
    return [r["text"] for r in records if r["to"] == phone and r["code"] is None]


def test_binding_asks_who_you_are_before_the_scan(
    idp_app: Flask, idp_client: FlaskClient, fake: FakeWeChat, make_user: MakeUser
) -> None:
    """A signed-in browser alone (someone else at an unlocked computer) cannot start a scan:
    去扫码 without the 身份验证, or with a wrong password, leads nowhere near WeChat."""
    user = make_user("2024000301")
    sign_in(idp_client, "2024000301")
    page = idp_client.get(BIND_URL).get_data(as_text=True)
    assert "身份验证" in page and "登录密码" in page
    skipped = post_form(idp_client, BIND_URL, {})
    assert skipped.status_code == 400 and "Location" not in skipped.headers
    wrong = post_form(idp_client, BIND_URL, {"method": "password", "password": "not-it-1"})
    assert wrong.status_code == 400 and "Location" not in wrong.headers
    right = post_form(idp_client, BIND_URL, {"method": "password", "password": PASSWORD})
    assert right.status_code == 302 and right.location == BIND_URL
    assert "去扫码" in idp_client.get(BIND_URL).get_data(as_text=True)
    start = post_form(idp_client, BIND_URL, {})
    assert start.status_code == 302 and "state=" in start.location
    assert bindings(idp_app, user) == []
    # One scan per 身份验证: the step is used up, and the page asks again.
    again = post_form(idp_client, BIND_URL, {})
    assert again.status_code == 400 and "Location" not in again.headers
    assert "身份验证" in again.get_data(as_text=True)


def test_owner_is_told_of_a_wechat_bound_and_removed(
    idp_app: Flask, idp_client: FlaskClient, fake: FakeWeChat, make_user: MakeUser
) -> None:
    """The phone on file hears of the WeChat bound through 安全中心, and of its removal."""
    user = make_user("2024000302", verified_phone=NOTICE_PHONE)
    sign_in(idp_client, "2024000302")
    start = start_security_bind(idp_client)
    assert idp_client.get(local(fake.scan(start.location, wechat_user=XIAOMING))).status_code == 302
    assert bindings(idp_app, user) == [("wechat", XIAOMING.unionid)]
    [told] = notices_to(idp_app, NOTICE_PHONE)
    assert "微信" in told and "绑定" in told and "如非本人操作" in told
    unbind = "/security/social/wechat/unbind"
    assert (
        post_form(idp_client, unbind, {"method": "password", "password": PASSWORD}).status_code
        == 302
    )
    assert post_form(idp_client, unbind, {}).status_code == 302
    assert bindings(idp_app, user) == []
    told_again = notices_to(idp_app, NOTICE_PHONE)
    assert len(told_again) == 2 and "解除绑定" in told_again[-1]
