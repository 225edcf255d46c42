"""待办中心 in a real browser, everyone signing in through the IdP's login page: an application
submitted and approved by two approvers; returned and resubmitted; terminated; withdrawn;
the parallel 教职工入校办理手续通知单 signed off by every department; a CC seen and read."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from flask import Flask
from playwright.sync_api import Browser, BrowserContext, Page, expect
from sqlalchemy import select

from tests.conftest import MakeDatabaseUrl
from tests.e2e.conftest import LiveServer
from tests.hall.sso_support import add_staff, start_oidc_idp, start_registered_hall

PASSWORD = "Inbox2024approve"
#: 学工号 → name of the people of this journey (created at the IdP with the CLI).
PEOPLE = {
    "S7001": "陈申请",
    "S7002": "刘审批",
    "S7003": "周审批",
    "S7004": "吴抄送",
}
FLOW = {
    "nodes": [
        {"id": "start", "kind": "start", "name": "申请人", "permissions": {"note": "read"}},
        {
            "id": "first",
            "kind": "approver",
            "name": "部门审核",
            "approver": {"type": "person", "users": ["S7002"]},
            "permissions": {"note": "edit"},
        },
        {
            "id": "second",
            "kind": "approver",
            "name": "学校审批",
            "approver": {"type": "person", "users": ["S7003"]},
        },
        {
            "id": "cc",
            "kind": "cc",
            "name": "抄送",
            "recipients": {"type": "person", "users": ["S7004"]},
        },
        {"id": "end", "kind": "end", "name": "结束"},
    ]
}
SCHEMA = {
    "type": "object",
    "properties": {
        "reason": {"type": "string", "title": "事由", "maxLength": 100},
        "note": {"type": "string", "title": "审核备注", "maxLength": 100},
    },
    "required": ["reason"],
}
UI = {"order": ["reason", "note"], "fields": {"reason": {"widget": "input"}, "note": {}}}
TITLE = "办公用品申领"


@pytest.fixture(scope="module")
def sso_idp(
    make_database_url: MakeDatabaseUrl, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """The IdP with the people of this journey, their phones verified."""
    for server in start_oidc_idp(make_database_url, tmp_path_factory, "e2e_inbox_idp"):
        add_staff(server, PEOPLE, PASSWORD)
        yield server


@pytest.fixture(scope="module")
def hall(
    make_database_url: MakeDatabaseUrl,
    tmp_path_factory: pytest.TempPathFactory,
    sso_idp: LiveServer,
) -> Iterator[LiveServer]:
    """The hall with its demo catalogue and workflows."""
    yield from start_registered_hall(make_database_url, tmp_path_factory, "e2e_inbox_hall", sso_idp)


@pytest.fixture(scope="module")
def hall_app(hall: LiveServer) -> Iterator[Flask]:
    """The live hall's database from this process (set-up only: services, flows, roles)."""
    from hall import create_app

    app = create_app(
        {
            "ENV": "testing",
            "SECRET_KEY": hall.env["HALL_SECRET_KEY"],
            "DATABASE_URL": hall.env["HALL_DATABASE_URL"],
            "REDIS_URL": hall.env.get("HALL_REDIS_URL"),
            "STORE_PREFIX": hall.env.get("HALL_STORE_PREFIX", ""),
            "PREFLIGHT": False,
            "SERVER_NAME": None,
        }
    )
    with app.app_context():
        from hall.catalog.models import Service, ServiceStatus
        from hall.directory.models import Department
        from hall.extensions import db
        from hall.workflow import operations as ops

        department = db.session.scalars(select(Department).order_by(Department.id)).first()
        assert department is not None
        service = Service(
            department_id=department.id,
            title=TITLE,
            for_staff=True,
            online=True,
            status=ServiceStatus.PUBLISHED.value,
        )
        db.session.add(service)
        db.session.commit()
        ops.save_form_definition(service.id, SCHEMA, UI, actor="e2e")
        ops.save_flow_definition(service.id, FLOW, actor="e2e")
    yield app
    with app.app_context():
        app.extensions["sqlalchemy"].engine.dispose()


def service_id(app: Flask, title: str = TITLE) -> int:
    """A service's id by title."""
    from hall.catalog.models import Service
    from hall.extensions import db

    with app.app_context():
        return db.session.scalars(select(Service.id).where(Service.title == title)).one()


class People:
    """One signed-in browser context per person, opened on demand."""

    def __init__(self, browser: Browser, hall: LiveServer, idp: LiveServer) -> None:
        self.browser, self.hall, self.idp = browser, hall, idp
        self.contexts: dict[str, BrowserContext] = {}
        self.pages: dict[str, Page] = {}

    def __call__(self, account: str) -> Page:
        """The page of ``account``, signed in through the IdP the first time."""
        if account not in self.pages:
            context = self.browser.new_context(locale="zh-CN")
            page = context.new_page()
            page.goto(self.hall.url + "/")
            page.get_by_role("link", name="登录", exact=True).click()
            expect(page).to_have_url(re.compile("^" + re.escape(self.idp.url + "/login")))
            page.get_by_label("账号", exact=True).fill(account)
            page.get_by_label("密码", exact=True).fill(PASSWORD)
            page.get_by_role("button", name="登录").click()
            expect(page.locator(".header-tools .user-name")).to_have_text(PEOPLE[account])
            self.contexts[account], self.pages[account] = context, page
        return self.pages[account]

    def close(self) -> None:
        """Close every context."""
        for context in self.contexts.values():
            context.close()


@pytest.fixture
def people(browser: Browser, hall: LiveServer, sso_idp: LiveServer) -> Iterator[People]:
    """Browsers of the journey's people."""
    found = People(browser, hall, sso_idp)
    yield found
    found.close()


def submit(page: Page, hall: LiveServer, app: Flask, reason: str) -> int:
    """The applicant fills 事由 and submits through the applicant side's page."""
    page.goto(f"{hall.url}/services/{service_id(app)}/apply")
    page.get_by_label("事由").fill(reason)
    page.get_by_role("button", name="提交", exact=True).first.click()
    page.get_by_role("link", name="查看申请").click()
    found = re.search(r"/applications/(\d+)$", page.url)
    assert found, page.url
    return int(found.group(1))


def open_from_inbox(page: Page, hall: LiveServer, app_id: int) -> None:
    """待办中心 → 我待办的 → the application's title."""
    page.goto(hall.url + "/")
    page.get_by_role("link", name=re.compile("^待办中心")).click()
    page.locator(f'tr[data-application="{app_id}"]').get_by_role("link", name=TITLE).click()
    expect(page).to_have_url(f"{hall.url}/applications/{app_id}")


def decide(page: Page, button: str, opinion: str) -> None:
    """Type an opinion and press 通过 / 退回 / 中止."""
    page.get_by_label("审批意见").fill(opinion)
    page.get_by_role("button", name=button, exact=True).click()


def test_submitted_application_goes_through_two_approvers_to_done(
    people: People, hall: LiveServer, hall_app: Flask
) -> None:
    """提交 → 部门审核 (with 审核备注, empty opinion refused first) → 学校审批 → 已通过."""
    applicant = people("S7001")
    app_id = submit(applicant, hall, hall_app, "申领打印纸")
    expect(applicant.locator('[data-node="first"]').first).to_have_attribute(
        "data-state", "current"
    )

    first = people("S7002")
    open_from_inbox(first, hall, app_id)
    first.get_by_label("审核备注").fill("按标准发放")
    decide(first, "通过", "")
    expect(first.get_by_role("alert").first).to_contain_text("请填写审批意见")
    expect(first.get_by_label("审核备注")).to_have_value("按标准发放")
    decide(first, "通过", "同意")
    expect(first.get_by_text("已通过", exact=True).first).to_be_visible()

    second = people("S7003")
    open_from_inbox(second, hall, app_id)
    expect(second.get_by_text("按标准发放")).to_be_visible()
    decide(second, "通过", "同意发放")
    expect(second.get_by_text("已通过", exact=True).first).to_be_visible()

    applicant.goto(hall.url + "/inbox?tab=mine")
    row = applicant.locator(f'tr[data-application="{app_id}"]')
    expect(row).to_contain_text("已通过")
    row.get_by_role("link", name=TITLE).click()
    expect(applicant.locator('[data-node="end"]').first).to_have_attribute("data-state", "done")
    expect(applicant.locator("table.history")).to_contain_text("同意发放")


def test_returned_application_is_resubmitted_and_approved(
    people: People, hall: LiveServer, hall_app: Flask
) -> None:
    """退回 to the applicant with an opinion; 修改后重新提交; the approver gets it again."""
    applicant = people("S7001")
    app_id = submit(applicant, hall, hall_app, "申领墨盒")
    first = people("S7002")
    open_from_inbox(first, hall, app_id)
    first.get_by_label("退回到").select_option(label="申请人")
    decide(first, "退回", "请写明型号")

    applicant.goto(f"{hall.url}/applications/{app_id}")
    expect(applicant.locator("table.history")).to_contain_text("请写明型号")
    applicant.get_by_role("link", name="修改后重新提交").click()
    applicant.get_by_label("事由").fill("申领墨盒 HP 802")
    applicant.get_by_role("button", name="重新提交").first.click()

    open_from_inbox(first, hall, app_id)
    expect(first.get_by_text("申领墨盒 HP 802")).to_be_visible()
    decide(first, "通过", "同意")
    expect(first.get_by_text("已通过", exact=True).first).to_be_visible()


def test_approver_terminates_and_applicant_withdraws(
    people: People, hall: LiveServer, hall_app: Flask
) -> None:
    """中止 ends one application; the applicant 撤回 another before anyone acted."""
    applicant = people("S7001")
    ended = submit(applicant, hall, hall_app, "申领笔记本电脑")
    taken_back = submit(applicant, hall, hall_app, "申领订书机")

    first = people("S7002")
    open_from_inbox(first, hall, ended)
    decide(first, "中止", "不属于办公用品")
    expect(first.get_by_text("已中止", exact=True).first).to_be_visible()

    applicant.goto(f"{hall.url}/applications/{taken_back}")
    applicant.get_by_role("button", name="撤回").click()
    expect(applicant.locator("[data-application-status]")).to_have_text("已撤回")
    applicant.goto(f"{hall.url}/applications/{ended}")
    expect(applicant.locator("[data-application-status]")).to_have_text("已中止")
    expect(applicant.get_by_role("button", name="撤回")).to_have_count(0)


def test_cc_recipient_sees_the_unread_mark_until_opening_it(
    people: People, hall: LiveServer, hall_app: Flask
) -> None:
    """抄送给我: 未读 after the approval, gone once the application was opened."""
    applicant = people("S7001")
    app_id = submit(applicant, hall, hall_app, "申领文件夹")
    for account in ("S7002", "S7003"):
        page = people(account)
        open_from_inbox(page, hall, app_id)
        decide(page, "通过", "同意")
    cc = people("S7004")
    cc.goto(hall.url + "/inbox?tab=cc")
    row = cc.locator(f'tr[data-application="{app_id}"]')
    expect(row.get_by_text("未读")).to_be_visible()
    row.get_by_role("link", name=TITLE).click()
    expect(cc.get_by_role("heading", name=TITLE)).to_be_visible()
    cc.goto(hall.url + "/inbox?tab=cc")
    expect(cc.locator(f'tr[data-application="{app_id}"]').get_by_text("未读")).to_have_count(0)


def test_parallel_sign_off_by_every_department(
    people: People, hall: LiveServer, hall_app: Flask
) -> None:
    """教职工入校办理手续通知单: 人事处, then the departments side by side (批量通过)."""
    from hall.catalog.roles import RoleGrant
    from hall.extensions import db
    from hall.workflow.demo import SIGN_OFFS

    with hall_app.app_context():
        grants = [("S7002", "hr-office")] + [
            ("S7002" if i % 2 else "S7003", f"onboarding-{key}")
            for i, key in enumerate([k for k, _label in SIGN_OFFS] + ["staffing"])
        ]
        db.session.add_all(RoleGrant(account=a, role=r, granted_by="e2e") for a, r in grants)
        db.session.commit()
    applicant = people("S7001")
    onboarding = service_id(hall_app, "教职工入校办理手续通知单")
    applicant.goto(f"{hall.url}/services/{onboarding}/apply")
    applicant.get_by_label("人调字号").fill("人调2024-018")
    applicant.get_by_label("专任教师").check()
    applicant.get_by_label("入校原因").fill("新进教师")
    applicant.get_by_role("button", name="提交", exact=True).first.click()
    applicant.get_by_role("link", name="查看申请").click()
    app_id = int(applicant.url.rsplit("/", 1)[1])

    hr = people("S7002")
    hr.goto(f"{hall.url}/applications/{app_id}")
    decide(hr, "通过", "材料齐全")
    applicant.reload()
    lanes = applicant.locator('g[data-state="current"]')
    expect(lanes).to_have_count(8)  # 各部门办理 and its seven first nodes, side by side
    for account in ("S7002", "S7003", "S7002", "S7003"):
        page = people(account)
        page.goto(hall.url + "/inbox")
        boxes = page.locator(f'tr[data-application="{app_id}"] input[type=checkbox]')
        if boxes.count() == 0:
            continue
        for i in range(boxes.count()):
            boxes.nth(i).check()
        page.get_by_label("批量通过的审批意见").fill("已办理")
        page.get_by_role("button", name="批量通过").click()
        expect(page.get_by_text(re.compile(r"已通过 \d+ 项"))).to_be_visible()
    applicant.reload()
    expect(applicant.locator("[data-application-status]")).to_have_text("已通过")
    expect(applicant.locator('g[data-node="staffing"]')).to_have_attribute("data-state", "done")
