"""服务管理 and directory sync under odd input: tampered ids, a withdrawn notice edited again,
category order 0, and a directory listing that stops short or is not SCIM at all."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
import requests
from flask import Flask

from hall.audit.models import HallAuditEvent
from hall.auth.models import HallUser
from hall.catalog.models import Category, Notice, Service, SystemEntry
from hall.directory.models import Department, DirectorySyncState, Position
from hall.directory.sync import DirectoryClient, SyncError, sync_directory
from hall.extensions import db
from tests.hall.catalog_support import csrf_token, load_demo, make_hall_user, sign_in_as
from tests.hall.test_manage import department_id, manager_client, service_form

TOO_BIG = "99999999999999999999"

Page = Callable[[dict[str, Any]], tuple[int, Any]]


def admin_client(app: Flask) -> Any:
    """The demo hall admin T2001, signed in."""
    client = app.test_client()
    sign_in_as(app, client, make_hall_user(app, "T2001", "staff", "HR", "王老师"))
    return client


def test_out_of_range_ids_in_manage_forms_are_refused_in_chinese(demo_hall: Flask) -> None:
    """A tampered category, department or grant id too big for the database: 400, text kept."""
    manager = manager_client(demo_hall)
    token = csrf_token(manager, "/manage/services/new")
    service = manager.post(
        "/manage/services/new",
        data={**service_form(demo_hall, "JWC", category_id=TOO_BIG), "csrf_token": token},
    )
    assert service.status_code == 400
    assert "请从列出的选项中选择" in service.text and "毕业证明补办" in service.text

    admin = admin_client(demo_hall)
    token = csrf_token(admin, "/manage/systems/new")
    system = admin.post(
        "/manage/systems/new",
        data={
            "csrf_token": token,
            "name": "网上报修",
            "url": "https://bx.example.edu.cn/",
            "section": "convenience",
            "department_id": TOO_BIG,
            "sort": "1",
        },
    )
    assert system.status_code == 400 and "请从列出的选项中选择" in system.text
    assert "网上报修" in system.text
    grant = admin.post(
        "/manage/roles",
        data={
            "csrf_token": token,
            "account": "M200",
            "role": "service_manager",
            "department_id": TOO_BIG,
        },
    )
    assert grant.status_code == 400 and "请从列出的选项中选择" in grant.text
    with demo_hall.app_context():
        assert db.session.scalar(db.select(Service).where(Service.title == "毕业证明补办")) is None
        assert (
            db.session.scalar(db.select(SystemEntry).where(SystemEntry.name == "网上报修")) is None
        )


def test_system_entry_in_a_department_that_does_not_exist_is_refused(demo_hall: Flask) -> None:
    """A hall admin's forged department id saves no entry pointing at nothing."""
    admin = admin_client(demo_hall)
    token = csrf_token(admin, "/manage/systems/new")
    refused = admin.post(
        "/manage/systems/new",
        data={
            "csrf_token": token,
            "name": "网上报修",
            "url": "https://bx.example.edu.cn/",
            "section": "convenience",
            "department_id": "987654",
            "sort": "1",
        },
    )
    assert refused.status_code == 400 and "请选择所属部门" in refused.text
    with demo_hall.app_context():
        assert (
            db.session.scalar(db.select(SystemEntry).where(SystemEntry.name == "网上报修")) is None
        )


def test_editing_a_withdrawn_notice_does_not_publish_it_again(demo_hall: Flask) -> None:
    """The edit page of a withdrawn notice offers 暂不发布; saving it as shown keeps it down."""
    client = manager_client(demo_hall)
    token = csrf_token(client, "/manage/notices/new")
    jwc = department_id(demo_hall, "JWC")
    client.post(
        "/manage/notices/new",
        data={"csrf_token": token, "department_id": jwc, "title": "选课通知", "body": "下周一。"},
    )
    with demo_hall.app_context():
        notice_id = db.session.scalar(db.select(Notice.id).where(Notice.title == "选课通知"))
    client.post(f"/manage/notices/{notice_id}/withdraw", data={"csrf_token": token})
    page = client.get(f"/manage/notices/{notice_id}/edit").text
    checked = re.search(r'<input checked id="mode-\d" name="mode" type="radio" value="(\w+)"', page)
    assert checked is not None and checked.group(1) == "draft"
    saved = client.post(
        f"/manage/notices/{notice_id}/edit",
        data={
            "csrf_token": token,
            "department_id": jwc,
            "title": "选课通知（更正）",
            "body": "下周二。",
            "mode": checked.group(1),
        },
    )
    assert saved.status_code == 302
    public = demo_hall.test_client()
    assert "选课通知" not in public.get("/notices").text
    assert public.get(f"/notices/{notice_id}").status_code == 404


def test_category_order_zero_puts_it_first(demo_hall: Flask) -> None:
    """排序 0 is kept as 0 when adding or re-ordering a category (not turned into 100)."""
    client = manager_client(demo_hall)
    token = csrf_token(client, "/manage/categories")
    added = client.post(
        "/manage/categories", data={"csrf_token": token, "name": "置顶类别", "sort": "0"}
    )
    assert added.status_code == 302
    with demo_hall.app_context():
        category = db.session.scalar(db.select(Category).where(Category.name == "置顶类别"))
        assert category is not None and category.sort == 0
        other = db.session.scalar(db.select(Category).where(Category.name != "置顶类别"))
        other_id, other_name = other.id, other.name
    client.post(
        f"/manage/categories/{other_id}",
        data={"csrf_token": token, "name": other_name, "sort": "0"},
    )
    with demo_hall.app_context():
        assert db.session.get(Category, other_id).sort == 0


def test_audit_names_a_changed_online_entry_address_and_audience(demo_hall: Flask) -> None:
    """service.update lists entry_url and the audiences among the changed fields."""
    client = manager_client(demo_hall)
    token = csrf_token(client, "/manage/services/new")
    form = {**service_form(demo_hall, "JWC"), "csrf_token": token}
    assert client.post("/manage/services/new", data=form).status_code == 302
    with demo_hall.app_context():
        sid = db.session.scalar(db.select(Service.id).where(Service.title == "毕业证明补办"))
    moved = {**form, "entry_url": "https://phish.example.com/", "audiences": ["student", "staff"]}
    assert client.post(f"/manage/services/{sid}/edit", data=moved).status_code == 302
    with demo_hall.app_context():
        event = db.session.scalars(
            db.select(HallAuditEvent)
            .where(HallAuditEvent.action == "service.update")
            .order_by(HallAuditEvent.id.desc())
        ).first()
        assert event is not None and event.object == f"service:{sid}"
        assert json.loads(event.detail or "{}")["changed"] == ["entry_url", "for_staff"]


# 目录同步 --------------------------------------------------------------------------------


class FakeDirectory(DirectoryClient):
    """A DirectoryClient whose SCIM answers come from functions of the query parameters."""

    def __init__(self, users: Page, groups: Page) -> None:
        self.issuer, self.client_id, self.client_secret, self.timeout = "https://idp", "c", "s", 1
        self.pages = {"/Users": users, "/Groups": groups}
        self.session = self  # type: ignore[assignment]
        self.single: Callable[[str], tuple[int, Any]] = lambda path: (404, {"status": "404"})

    def get(
        self, url: str, params: dict[str, Any] | None = None, timeout: float = 1
    ) -> requests.Response:
        """One SCIM page, or one resource (``/Groups/<id>``) from ``self.single``."""
        path = url.rsplit("/scim/v2", 1)[1]
        if path in self.pages:
            status, body = self.pages[path](dict(params or {}))
        else:
            status, body = self.single(path)
        response = requests.Response()
        response.status_code = status
        response._content = (body if isinstance(body, str) else json.dumps(body)).encode()
        return response

    def close(self) -> None:
        """Nothing to release."""


def person(n: int) -> dict[str, Any]:
    """A SCIM User."""
    return {
        "id": f"u{n}",
        "userName": f"S{n:05d}",
        "displayName": f"学生{n}",
        "userType": "student",
        "active": True,
        "meta": {"lastModified": "2026-09-01T08:00:00Z"},
    }


def post(n: int) -> dict[str, Any]:
    """A SCIM Group of kind position held by person n."""
    return {
        "id": f"pos-{n}",
        "displayName": f"辅导员{n}",
        "members": [{"value": f"u{n}"}],
        "meta": {"lastModified": "2026-09-01T08:00:00Z"},
        "urn:hongliu:params:scim:schemas:extension:campus:2.0:Group": {
            "kind": "position",
            "positionKind": "counsellor",
        },
    }


def listing(resources: list[dict[str, Any]], stop_after: int | None = None) -> Page:
    """A paged ListResponse; with ``stop_after`` pages after that one come back empty."""

    def page(params: dict[str, Any]) -> tuple[int, Any]:
        start, count = params["startIndex"], params["count"]
        items = resources[start - 1 : start - 1 + count]
        if stop_after is not None and start > stop_after:
            items = []
        return 200, {"totalResults": len(resources), "startIndex": start, "Resources": items}

    return page


def active_people() -> int:
    """How many hall users are active."""
    return int(db.session.scalar(db.select(db.func.count()).where(HallUser.active.is_(True))))


@pytest.mark.parametrize("short", ["/Users", "/Groups"])
def test_directory_listing_that_stops_short_marks_nobody_inactive(
    hall_app: Flask, short: str
) -> None:
    """A full run whose listing ends before totalResults fails; nobody and no post is dropped."""
    people = [person(n) for n in range(1, 801)]
    posts = [post(n) for n in range(1, 601)]
    with hall_app.app_context():
        sync_directory(client=FakeDirectory(listing(people), listing(posts)))
        assert active_people() == 800
        assert db.session.scalar(db.select(db.func.count()).select_from(Position)) == 600
        state = db.session.get(DirectorySyncState, 1)
        watermark = state.users_modified
        pages = {"/Users": listing(people), "/Groups": listing(posts)}
        pages[short] = listing(people if short == "/Users" else posts, stop_after=1)
        with pytest.raises(SyncError, match="stopped after 500 of"):
            sync_directory(full=True, client=FakeDirectory(pages["/Users"], pages["/Groups"]))
        db.session.expire_all()
        assert active_people() == 800
        assert db.session.scalar(db.select(db.func.count()).select_from(Position)) == 600
        state = db.session.get(DirectorySyncState, 1)
        assert "stopped after" in (state.last_result or "")
        assert state.users_modified == watermark


@pytest.mark.parametrize(
    "body",
    [
        "<html>502 Bad Gateway</html>",
        [1, 2],
        {"totalResults": "many", "Resources": []},
        {"totalResults": 1, "Resources": "u1"},
        {"totalResults": 1, "Resources": [None]},
    ],
)
def test_directory_answer_that_is_not_a_scim_list_is_a_clear_sync_error(
    hall_app: Flask, body: Any
) -> None:
    """A proxy's HTML page or a malformed list is a SyncError, recorded; nothing is changed."""
    with hall_app.app_context():
        with pytest.raises(SyncError, match="not a SCIM list"):
            sync_directory(
                client=FakeDirectory(lambda params: (200, body), listing([])),
            )
        state = db.session.get(DirectorySyncState, 1)
        assert state is not None and "not a SCIM list" in (state.last_result or "")
        assert state.last_full_at is None
        assert db.session.scalar(db.select(db.func.count()).select_from(HallUser)) == 0


def test_discovery_document_that_is_not_an_object_is_a_clear_sync_error(
    hall_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A discovery document that is a JSON list is reported like any unreadable one."""

    def discovery(url: str, timeout: float) -> requests.Response:
        response = requests.Response()
        response.status_code, response._content = 200, b'["token_endpoint"]'
        return response

    monkeypatch.setattr(requests, "get", discovery)
    with hall_app.app_context(), pytest.raises(SyncError, match="discovery document"):
        DirectoryClient("https://idp.example", "c", "s")


def test_full_run_keeps_a_position_skipped_because_another_was_deleted_mid_listing(
    hall_app: Flask,
) -> None:
    """Paging is by offset: a group deleted at the IdP between two pages pushes the next one
    out of the listing. The skipped position is asked for by id and kept; only one the IdP
    answers 404 for is removed."""
    posts = [post(n) for n in range(1, 601)]
    people = [person(n) for n in range(1, 601)]
    with hall_app.app_context():
        sync_directory(client=FakeDirectory(listing(people), listing(posts)))
        assert db.session.scalar(db.select(db.func.count()).select_from(Position)) == 600
        # pos-600 was removed at the IdP before this run; pos-3 goes between its two pages.
        before = posts[:-1]
        after = [p for p in before if p["id"] != "pos-3"]

        def shifting(params: dict[str, Any]) -> tuple[int, Any]:
            return listing(before if params["startIndex"] == 1 else after)(params)

        asked: list[str] = []

        def single(path: str) -> tuple[int, Any]:
            asked.append(path)
            found = [p for p in after if path == f"/Groups/{p['id']}"]
            return (200, found[0]) if found else (404, {"status": "404"})

        client = FakeDirectory(listing(people), shifting)
        client.single = single
        report = sync_directory(full=True, client=client)
        assert sorted(asked) == ["/Groups/pos-501", "/Groups/pos-600"]
        assert report.positions_removed == 1
        kept = set(db.session.scalars(db.select(Position.scim_id)))
        assert "pos-600" not in kept and "pos-501" in kept and len(kept) == 599
        skipped = db.session.scalar(db.select(Position).where(Position.scim_id == "pos-501"))
        assert skipped is not None and [u.account for u in skipped.holders] == ["S00501"]


def test_an_unreadable_recheck_fails_the_run_and_removes_nothing(hall_app: Flask) -> None:
    """When the IdP cannot say whether an unlisted position is gone, nothing is removed."""
    posts = [post(n) for n in range(1, 4)]
    people = [person(n) for n in range(1, 4)]
    with hall_app.app_context():
        sync_directory(client=FakeDirectory(listing(people), listing(posts)))
        client = FakeDirectory(listing(people), listing(posts[:2]))
        client.single = lambda path: (503, {"detail": "维护中"})
        with pytest.raises(SyncError, match="503"):
            sync_directory(full=True, client=client)
        db.session.expire_all()
        assert db.session.scalar(db.select(db.func.count()).select_from(Position)) == 3


def test_a_department_renamed_at_the_idp_finds_its_services_by_the_new_name(
    hall_app: Flask,
) -> None:
    """教务处 becomes 本科生院 at the IdP: after the sync its services' search text has the new
    name."""
    load_demo(hall_app)
    renamed = {
        "id": "dept-1",
        "externalId": "JWC",
        "displayName": "本科生院",
        "meta": {"lastModified": "2026-09-01T08:00:00Z"},
        "urn:hongliu:params:scim:schemas:extension:campus:2.0:Group": {"kind": "department"},
    }
    with hall_app.app_context():
        sync_directory(client=FakeDirectory(listing([]), listing([renamed])))
        texts = db.session.scalars(
            db.select(Service.search_text).join(Service.department).where(Department.code == "JWC")
        ).all()
        assert texts and all("本科生院" in t for t in texts)
