"""一事联办 in a real browser: a visitor browses and searches without signing in; a student
signs in through the IdP's real login page, searches, reads a guide, collects it and signs out
(of the IdP too); a department's service manager creates and publishes a service and edits
a service's approval flow (审批流程定义)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

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
    yield from start_oidc_idp(make_database_url, tmp_path_factory, "e2e_catalog_idp")


@pytest.fixture(scope="module")
def hall(
    make_database_url: MakeDatabaseUrl,
    tmp_path_factory: pytest.TempPathFactory,
    sso_idp: LiveServer,
) -> Iterator[LiveServer]:
    """The hall with its demo catalogue (LiveServer.start runs `flask --app hall demo`)."""
    yield from start_registered_hall(
        make_database_url, tmp_path_factory, "e2e_catalog_hall", sso_idp
    )


def sign_in(page: Page, hall: LiveServer, idp: LiveServer) -> None:
    """登录 from the hall's header through the IdP's real login page."""
    page.goto(hall.url + "/")
    page.get_by_role("link", name="登录", exact=True).click()
    expect(page).to_have_url(re.compile("^" + re.escape(idp.url + "/login")))
    page.get_by_label("账号", exact=True).fill(ACCOUNT)
    page.get_by_label("密码", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    expect(page).to_have_url(hall.url + "/")
    expect(page.locator(".header-tools .user-name")).to_have_text(NAME)


def test_visitor_browses_and_searches_without_signing_in(page: Page, hall: LiveServer) -> None:
    """首页 shows 推荐服务 for visitors and 直通部门; cgcj finds the trip-abroad form."""
    page.goto(hall.url + "/")
    expect(page.get_by_role("heading", name="推荐服务")).to_be_visible()
    expect(page.get_by_role("link", name="访客预约")).to_be_visible()
    page.get_by_role("link", name=re.compile("^保卫处")).click()
    expect(page.locator("#result-count")).to_contain_text("共 3 项服务")

    page.goto(hall.url + "/")
    page.get_by_placeholder(re.compile("搜索服务")).fill("cgcj")
    page.get_by_role("button", name="搜索").click()
    expect(page).to_have_url(re.compile(r"/services\?q=cgcj"))
    expect(page.locator("#result-count")).to_have_text("找到 2 项服务")
    page.get_by_role("link", name="教职工因公出国(境)审批表").click()
    expect(page.get_by_role("heading", name="教职工因公出国(境)审批表")).to_be_visible()
    expect(page.get_by_text("国际合作与交流处审核", exact=False)).to_be_visible()
    expect(page.get_by_role("link", name="登录后收藏")).to_be_visible()

    page.goto(hall.url + "/services?q=" + "%21" * 20)
    expect(page.get_by_text("只有标点或符号", exact=False)).to_be_visible()
    assert page.goto(hall.url + "/services/999999").status == 404  # type: ignore[union-attr]
    expect(page.get_by_role("heading", name="服务不存在")).to_be_visible()


def test_catalogue_fits_a_phone_screen(browser: Browser, hall: LiveServer) -> None:
    """At phone width the home page and the catalogue need no sideways scrolling."""
    context = browser.new_context(locale="zh-CN", viewport={"width": 375, "height": 740})
    try:
        page = context.new_page()
        for path in ("/", "/services?q=证明", "/services/1"):
            page.goto(hall.url + path)
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 1, f"{path} scrolls sideways by {overflow}px"
    finally:
        context.close()


def test_student_searches_opens_a_guide_collects_it_and_signs_out(
    page: Page, hall: LiveServer, sso_idp: LiveServer
) -> None:
    """Sign in, search 在读, open 在读证明, 收藏, see it in 个人中心, 退出 (the IdP too)."""
    sign_in(page, hall, sso_idp)
    expect(page.get_by_role("link", name="学生请假")).to_be_visible()  # the student's tab
    page.get_by_role("link", name="一事联办").click()
    page.get_by_label("搜索服务").fill("在读")
    page.get_by_role("button", name="搜索").click()
    page.get_by_role("link", name="在读证明", exact=True).click()
    expect(page.get_by_role("heading", name="办事指南")).to_be_visible()
    page.get_by_role("button", name="☆ 收藏").click()
    expect(page.get_by_text("已收藏“在读证明”。")).to_be_visible()
    expect(page.get_by_role("button", name="★ 取消收藏")).to_be_visible()

    page.get_by_role("link", name="个人中心").click()
    favourites = page.locator("section", has=page.get_by_role("heading", name="我收藏的服务"))
    expect(favourites.get_by_role("link", name="在读证明")).to_be_visible()
    frequent = page.locator("section", has=page.get_by_role("heading", name="我常用的"))
    expect(frequent.get_by_role("link", name="在读证明")).to_be_visible()

    page.get_by_role("button", name="退出").click()
    expect(page).to_have_url(hall.url + "/")
    expect(page.get_by_text("您已退出红柳易办。")).to_be_visible()
    page.goto(sso_idp.url + "/logout")
    expect(page.get_by_text("您当前没有登录。")).to_be_visible()


def test_service_manager_creates_and_publishes_a_service(
    page: Page, browser: Browser, hall: LiveServer, sso_idp: LiveServer
) -> None:
    """A manager of 计算机与通信学院 (granted by the CLI) creates a service, previews, publishes."""
    hall.flask("roles", "grant", ACCOUNT, "service_manager", "--department", "CS")
    sign_in(page, hall, sso_idp)
    page.get_by_role("link", name="服务管理").click()
    page.get_by_role("link", name="新建服务").first.click()
    page.get_by_label("服务名称").fill("毕业设计选题申请")
    page.get_by_label("所属部门").select_option(label="计算机与通信学院")
    page.get_by_label("搜索关键字").fill("毕设 选题 毕业设计")
    page.get_by_label("学生", exact=True).check()
    page.get_by_label("教职工", exact=True).uncheck()
    page.get_by_label("事项说明").fill("本科生毕业设计选题。")
    page.get_by_label("审批流程").fill("指导教师审核 → 学院审批。")
    page.get_by_role("button", name="保存").click()
    expect(page.get_by_text("已保存“毕业设计选题申请”。")).to_be_visible()
    expect(page.locator(".manage-actions .tag")).to_have_text("未发布")

    page.get_by_role("link", name="预览").click()
    expect(page.get_by_text("指导教师审核 → 学院审批。")).to_be_visible()
    page.go_back()
    page.get_by_role("button", name="发布").click()
    expect(page.get_by_text("“毕业设计选题申请”已发布。")).to_be_visible()

    visitor = browser.new_context(locale="zh-CN")
    try:
        other = visitor.new_page()
        other.goto(hall.url + "/services?q=bysj")
        expect(other.get_by_role("link", name="毕业设计选题申请")).to_be_visible()
    finally:
        visitor.close()


def test_service_manager_edits_a_flow_with_preview_and_versions(
    page: Page, hall: LiveServer, sso_idp: LiveServer
) -> None:
    """审批流程定义: a typo is pointed at by line and column and kept; 预览 draws the diagram;
    保存为新版本 adds version 1 to the history, viewable read-only."""
    hall.flask("roles", "grant", ACCOUNT, "service_manager", "--department", "CS")
    sign_in(page, hall, sso_idp)
    page.goto(hall.url + "/manage")
    page.get_by_role("link", name="学院实验室开放预约").click()
    page.get_by_role("link", name="审批流程定义").click()
    expect(page.get_by_text("尚未保存任何版本。")).to_be_visible()
    editor = page.get_by_label("JSON 定义")
    typo = (
        '{\n  "nodes": [\n    {"id": "start", "kind": "start"}\n'
        '    {"id": "end", "kind": "end"}\n  ]\n}'
    )
    editor.fill(typo)
    page.get_by_role("button", name="预览").click()
    expect(page.locator("#definition-errors")).to_contain_text("第 4 行第 5 列，此处缺少逗号")
    expect(page.get_by_label("JSON 定义")).to_have_value(typo)
    flow = (
        '{"nodes": [{"id": "start", "kind": "start"},\n'
        ' {"id": "lab", "kind": "approver", "name": "实验室审核",'
        ' "approver": {"type": "person", "users": ["T3001"]}},\n'
        ' {"id": "end", "kind": "end"}]}'
    )
    page.get_by_label("JSON 定义").fill(flow)
    page.get_by_role("button", name="预览").click()
    expect(page.get_by_text("校验通过（尚未保存）")).to_be_visible()
    expect(page.locator('#definition-preview g[data-node="lab"]')).to_have_attribute(
        "data-state", "future"
    )
    expect(page.get_by_text("暂无版本。")).to_be_visible()
    page.get_by_role("button", name="保存为新版本").click()
    expect(page.get_by_text("已保存为第 1 版。")).to_be_visible()
    expect(page.locator('tr[data-version="1"]')).to_contain_text(ACCOUNT)
    page.locator('tr[data-version="1"]').get_by_role("link", name="查看").click()
    expect(page.get_by_text("这是当前版本。")).to_be_visible()
    expect(page.locator('g[data-node="lab"]')).to_be_visible()
