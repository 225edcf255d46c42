"""方式三：微信、企业微信扫码登录 in a real browser: a live IdP pointed at the fake WeChat /
WeCom (tests/fakes/wechat.py), whose QR page plays the phone (允许 / 拒绝)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import TEST_REDIS_URL, MakeDatabaseUrl, flush_redis_prefix
from tests.e2e.conftest import LiveServer, _server_env
from tests.fakes.wechat import FakeWeChat

PASSWORD = "Hongliu2024xy"
_numbers = itertools.count(1)


@pytest.fixture(scope="module")
def fake_wechat() -> Iterator[FakeWeChat]:
    """The fake WeChat / WeCom the live IdP talks to."""
    with FakeWeChat() as fake:
        yield fake


@pytest.fixture(scope="module")
def social_idp(
    make_database_url: MakeDatabaseUrl,
    tmp_path_factory: pytest.TempPathFactory,
    fake_wechat: FakeWeChat,
) -> Iterator[LiveServer]:
    """A live IdP with WeChat and WeCom sign-in configured against the fake."""
    instance = tmp_path_factory.mktemp("live_idp_social")
    env = _server_env("IDP", make_database_url("e2e_idp_social"), instance)
    env.update(fake_wechat.env(timeout=5))
    server = LiveServer("idp", env, instance / "server.log")
    # WeChat is sent back under the IdP's public address, as a deployed IdP names its own.
    server.env["IDP_ISSUER"] = server.url
    server.start()
    yield server
    server.stop()
    prefix = env.get("IDP_STORE_PREFIX")
    if TEST_REDIS_URL and prefix:
        flush_redis_prefix(TEST_REDIS_URL, prefix)


@pytest.fixture
def add_user(social_idp: LiveServer) -> Callable[..., str]:
    """Create an active account with a security phone through the real CLI; returns it."""

    def add(*, name: str = "赵六") -> str:
        n = next(_numbers)
        account = f"WX{n:05d}"
        social_idp.flask("users", "add", account, "--name", name, "--password", PASSWORD)
        social_idp.sql(
            "UPDATE users SET phone = :p, phone_verified_at = CURRENT_TIMESTAMP WHERE account = :a",
            p=f"1377777{n:04d}",
            a=account,
        )
        return account

    return add


def _bind(server: LiveServer, account: str, provider: str, subject: str, openid: str = "") -> None:
    server.sql(
        "INSERT INTO social_identities (user_id, provider, subject, openid, unionid, nickname, "
        "bound_at) SELECT id, :provider, :subject, :openid, :unionid, :nickname, "
        "CURRENT_TIMESTAMP FROM users WHERE account = :account",
        provider=provider,
        subject=subject,
        openid=openid or None,
        unionid=subject if provider == "wechat" else None,
        nickname="测试昵称",
        account=account,
    )


def _allow_on_phone(page: Page, **identity: str) -> None:
    """On the fake QR page: scan as ``identity`` and tap 允许."""
    expect(page.get_by_role("heading", level=1)).to_contain_text("登录")
    for field, value in identity.items():
        page.get_by_label(field).fill(value)
    page.get_by_role("button", name="允许").click()


def test_student_signs_in_by_scanning_bound_wechat(
    page: Page, social_idp: LiveServer, add_user: Callable[..., str]
) -> None:
    """/security → 扫码登录 → WeChat icon → 允许 on the phone → back in the security centre."""
    account = add_user(name="钱七")
    _bind(social_idp, account, "wechat", "u-e2e-qianqi", "o-e2e-qianqi")
    page.goto(social_idp.url + "/security")
    page.get_by_role("link", name="扫码登录").click()
    page.locator(".social-icon-wechat").click()
    _allow_on_phone(page, openid="o-e2e-qianqi", unionid="u-e2e-qianqi", nickname="七七")
    expect(page).to_have_url(social_idp.url + "/security")
    expect(page.locator(".user-name")).to_have_text("钱七")
    expect(page.get_by_text(account, exact=True)).to_be_visible()


def test_first_scan_binds_after_password_sign_in(
    page: Page, social_idp: LiveServer, add_user: Callable[..., str]
) -> None:
    """An unbound WeChat: 该微信尚未绑定账号 → 账号登录 → 确认绑定 → bound, next scan works."""
    account = add_user(name="孙八")
    page.goto(social_idp.url + "/login?tab=qr")
    page.locator(".social-icon-wechat").click()
    _allow_on_phone(page, openid="o-e2e-sunba", unionid="u-e2e-sunba", nickname="八哥")
    expect(page.get_by_role("status")).to_contain_text(
        "该微信尚未绑定账号，请先用账号密码登录以完成绑定"
    )
    page.get_by_role("link", name="账号登录").click()
    page.get_by_label("账号", exact=True).fill(account)
    page.get_by_label("密码", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("确认绑定微信")
    expect(page.locator(".security-facts")).to_contain_text("八哥")
    expect(page.locator(".security-facts")).to_contain_text(account)
    page.get_by_role("button", name="确认绑定").click()
    expect(page.locator(".flash-success")).to_contain_text("微信已绑定到您的账号")
    expect(page.locator(".user-name")).to_have_text("孙八")
    page.goto(social_idp.url + "/security")
    expect(page.locator("#social-title + ul")).to_contain_text("八哥")
    # Signed out, the scan alone signs in now.
    page.get_by_role("button", name="退出").first.click()
    page.goto(social_idp.url + "/login?tab=qr")
    page.locator(".social-icon-wechat").click()
    _allow_on_phone(page, openid="o-e2e-sunba", unionid="u-e2e-sunba", nickname="八哥")
    expect(page.locator(".user-name")).to_have_text("孙八")


def test_wechat_left_waiting_is_not_bound_when_the_next_person_declines(
    page: Page, social_idp: LiveServer, add_user: Callable[..., str]
) -> None:
    """A stranger's unbound scan left on the page: the next person signs in, sees the stranger's
    nickname, presses 暂不绑定, and the stranger's scan still opens nothing."""
    account = add_user(name="郑一")
    page.goto(social_idp.url + "/login?tab=qr")
    page.locator(".social-icon-wechat").click()
    _allow_on_phone(page, openid="o-e2e-stranger", unionid="u-e2e-stranger", nickname="路人")
    page.get_by_role("link", name="账号登录").click()
    page.get_by_label("账号", exact=True).fill(account)
    page.get_by_label("密码", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    expect(page.locator(".security-facts")).to_contain_text("路人")
    page.get_by_role("button", name="暂不绑定").click()
    expect(page.locator(".user-name")).to_have_text("郑一")
    page.goto(social_idp.url + "/security")
    expect(page.locator("#social-title + ul li").first).to_contain_text("未绑定")
    page.get_by_role("button", name="退出").first.click()
    page.goto(social_idp.url + "/login?tab=qr")
    page.locator(".social-icon-wechat").click()
    _allow_on_phone(page, openid="o-e2e-stranger", unionid="u-e2e-stranger", nickname="路人")
    expect(page.get_by_role("status")).to_contain_text("该微信尚未绑定账号")


def test_student_binds_and_unbinds_wechat_in_security_centre(
    page: Page, social_idp: LiveServer, add_user: Callable[..., str]
) -> None:
    """安全中心: 去绑定 → 登录密码 → 去扫码 → scan → 已绑定; 解除绑定 → 登录密码 → 确认 → 未绑定."""
    account = add_user(name="周九")
    page.goto(social_idp.url + "/login")
    page.get_by_label("账号", exact=True).fill(account)
    page.get_by_label("密码", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    page.goto(social_idp.url + "/security")
    card = page.locator("section", has=page.locator("#social-title"))
    expect(card.locator("li").nth(1)).to_contain_text("企业微信")
    card.locator("li").first.get_by_role("link", name="去绑定").click()
    page.get_by_role("radio", name="登录密码").check()
    page.get_by_role("textbox", name="登录密码").fill(PASSWORD)
    page.get_by_role("button", name="下一步").click()
    page.get_by_role("button", name="去扫码").click()
    _allow_on_phone(page, openid="o-e2e-zhoujiu", unionid="u-e2e-zhoujiu", nickname="阿九")
    expect(page.locator(".flash-success")).to_contain_text("微信绑定成功")
    expect(card.locator("li").first).to_contain_text("阿九")
    card.locator("li").first.get_by_role("link", name="解除绑定").click()
    page.get_by_role("radio", name="登录密码").check()
    page.get_by_role("textbox", name="登录密码").fill(PASSWORD)
    page.get_by_role("button", name="下一步").click()
    expect(page.get_by_text("解除绑定后，将不能再用该微信扫码登录。")).to_be_visible()
    page.get_by_role("button", name="解除绑定").click()
    expect(page.locator(".flash-success")).to_contain_text("已解除微信绑定")
    expect(card.locator("li").first).to_contain_text("未绑定")


def test_staff_signs_in_with_wecom(
    page: Page, social_idp: LiveServer, add_user: Callable[..., str]
) -> None:
    """企业微信 icon → the wwlogin QR page → 允许 → signed in."""
    account = add_user(name="吴十")
    _bind(social_idp, account, "wecom", "wushi")
    page.goto(social_idp.url + "/login?tab=qr")
    page.locator(".social-icon-wecom").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("企业微信登录")
    _allow_on_phone(page, userid="wushi")
    expect(page.locator(".user-name")).to_have_text("吴十")


def test_cancelled_scan_offers_the_other_ways_in(page: Page, social_idp: LiveServer) -> None:
    """拒绝 on the phone: a clear page, and 账号登录 from it works."""
    page.goto(social_idp.url + "/login?tab=qr")
    page.locator(".social-icon-wechat").click()
    page.get_by_role("button", name="拒绝").click()
    expect(page.get_by_role("alert")).to_contain_text("取消了授权")
    page.get_by_role("link", name="账号登录").click()
    expect(page.get_by_label("账号", exact=True)).to_be_visible()
