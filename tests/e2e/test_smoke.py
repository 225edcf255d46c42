"""Smoke tests: each app's home page loads in a real browser with its Chinese title rendered."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.e2e.conftest import LiveServer

CJK_FONT_CHECK = "() => document.fonts.check('24px \"WenQuanYi Micro Hei\"', '统一')"


def _heading_is_drawn(page: Page) -> None:
    box = page.locator("h1").first.bounding_box()
    assert box is not None and box["width"] > 40 and box["height"] > 10


def test_idp_home_page_shows_chinese_title(page: Page, live_idp: LiveServer) -> None:
    """The IdP home page loads styled, titled 统一身份认证."""
    page.goto(live_idp.url + "/")
    expect(page).to_have_title("统一身份认证 · 红柳大学")
    expect(page.locator("h1")).to_have_text("统一身份认证")
    _heading_is_drawn(page)
    header_colour = page.locator(".site-header").evaluate(
        "e => getComputedStyle(e).backgroundColor"
    )
    assert header_colour == "rgb(158, 31, 36)", "the stylesheet did not load"


def test_hall_home_page_shows_chinese_title(page: Page, live_hall: LiveServer) -> None:
    """The hall home page loads styled, titled 红柳易办."""
    page.goto(live_hall.url + "/")
    expect(page.locator("h1")).to_have_text("红柳易办")
    expect(page).to_have_title("首页 · 红柳大学")
    _heading_is_drawn(page)
    assert page.evaluate(CJK_FONT_CHECK), "no installed font covers Chinese text"


def test_language_switch_in_browser(page: Page, live_hall: LiveServer) -> None:
    """Clicking English switches the page to English and back."""
    page.goto(live_hall.url + "/")
    page.get_by_role("link", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_text("Network and Information")).to_be_visible()
    page.get_by_role("link", name="中文").click()
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")


def test_phone_width_layout_has_no_horizontal_scroll(page: Page, live_idp: LiveServer) -> None:
    """On a phone-sized screen the layout fits the width."""
    page.set_viewport_size({"width": 375, "height": 740})
    page.goto(live_idp.url + "/")
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
