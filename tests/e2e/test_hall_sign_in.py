"""The hall's single sign-on in a real browser: 登录 through the IdP, 退出 at the hall signing
out of the IdP too (RP-initiated logout), and signing out at the IdP ending the hall session
(back-channel logout). Both apps run as live servers; the IdP's issuer is its real address."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import MakeDatabaseUrl
from tests.e2e.conftest import LiveServer
from tests.hall.sso_support import (
    ACCOUNT,
    NAME,
    PASSWORD,
    start_oidc_idp,
    start_registered_hall,
)


@pytest.fixture(scope="module")
def sso_idp(
    make_database_url: MakeDatabaseUrl, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """The IdP, issuer = its own address."""
    yield from start_oidc_idp(make_database_url, tmp_path_factory, "e2e_sso_idp")


@pytest.fixture(scope="module")
def sso_hall(
    make_database_url: MakeDatabaseUrl,
    tmp_path_factory: pytest.TempPathFactory,
    sso_idp: LiveServer,
) -> Iterator[LiveServer]:
    """The hall, registered at the IdP with the real CLI, as a live server."""
    yield from start_registered_hall(make_database_url, tmp_path_factory, "e2e_sso_hall", sso_idp)


def sign_in_from_the_hall(page: Page, hall: LiveServer, idp: LiveServer) -> None:
    """Open the hall, click 登录, sign in at the IdP, land back in the hall showing the name."""
    page.goto(hall.url + "/")
    page.get_by_role("link", name="登录").click()
    expect(page).to_have_url(re.compile("^" + re.escape(idp.url + "/login")))
    page.get_by_label("账号", exact=True).fill(ACCOUNT)
    page.get_by_label("密码", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    expect(page).to_have_url(hall.url + "/")
    expect(page.locator(".header-tools .user-name")).to_have_text(NAME)
    expect(page.get_by_role("button", name="退出")).to_be_visible()


def test_student_signs_in_to_the_hall_through_the_idp(
    page: Page, sso_hall: LiveServer, sso_idp: LiveServer
) -> None:
    """登录 in the hall's header leads through the IdP's sign-in and back, signed in."""
    sign_in_from_the_hall(page, sso_hall, sso_idp)
    page.reload()
    expect(page.locator(".header-tools .user-name")).to_have_text(NAME)


def test_signing_out_of_the_hall_signs_out_of_the_idp(
    page: Page, sso_hall: LiveServer, sso_idp: LiveServer
) -> None:
    """退出 at the hall ends the hall session and the IdP's, and comes back to the hall."""
    sign_in_from_the_hall(page, sso_hall, sso_idp)
    page.get_by_role("button", name="退出").click()
    expect(page).to_have_url(sso_hall.url + "/")
    expect(page.get_by_text("您已退出红柳易办。")).to_be_visible()
    expect(page.get_by_role("link", name="登录")).to_be_visible()
    page.goto(sso_idp.url + "/logout")
    expect(page.get_by_text("您当前没有登录。")).to_be_visible()


def test_signing_out_at_the_idp_ends_the_hall_session(
    page: Page, sso_hall: LiveServer, sso_idp: LiveServer
) -> None:
    """退出 at the IdP reaches the hall by back-channel: its page then offers 登录 again."""
    sign_in_from_the_hall(page, sso_hall, sso_idp)
    page.goto(sso_idp.url + "/logout")
    page.get_by_role("button", name="确认退出").click()
    deadline = time.monotonic() + 15
    while True:
        page.goto(sso_hall.url + "/")
        if page.get_by_role("link", name="登录").count() or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    expect(page.get_by_role("link", name="登录")).to_be_visible()
    expect(page.locator(".header-tools .user-name")).to_have_count(0)
