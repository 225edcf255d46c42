"""Every form of the hall, submitted with hostile values by each kind of visitor (anonymous, a
student with applications and a draft, an approver with open tasks, a service manager and the
hall admin): no 500, and every refusal a page in Chinese; the student again with a browser
that asks for English, who gets every page in English, with no catalogue text left in Chinese.
The crawler and the values are in ``tests/form_fuzz.py``."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from hall.auth.models import HallUser
from hall.catalog.demo import load_demo_catalog
from hall.catalog.models import Service
from hall.catalog.operations import department_by_code
from hall.catalog.roles import HallRole, RoleGrant, grant_role
from hall.directory.models import Department, Position
from hall.extensions import db
from hall.forms.operations import save_draft
from hall.workflow import engine
from hall.workflow import operations as ops
from hall.workflow.demo import load_demo_workflows
from hall.workflow.models import Task
from tests.conftest import AppFactory
from tests.form_fuzz import Visitor, coverage, fuzz_forms, summary
from tests.hall.catalog_support import sign_in_as

STUDENT, COUNSELLOR, MANAGER, ADMIN = "2024000001", "T1001", "M100", "T2001"
LEAVE = {
    "name": "张三",
    "student_no": STUDENT,
    "leave_type": "病假",
    "period": {"start": "2026-12-01", "end": "2026-12-02"},
    "days": 2,
    "leaves_campus": "否",
    "reason": "发烧，需要去校医院就诊休息。",
}


def _people(app: Flask) -> dict[str, int]:
    """The demo catalogue with its forms, the people of the visits and their roles; returns
    their hall user ids. The counsellor heads 计算机与通信学院 (the student's approver); the
    hall admin is the demo's; the service manager manages 教务处."""
    with app.app_context():
        load_demo_catalog()
        load_demo_workflows()
        college = db.session.scalars(select(Department).where(Department.code == "CS")).one()
        people = {
            account: HallUser(
                sub=f"sub-{account}",
                account=account,
                name=name,
                kind=kind,
                department_code="CS",
                department_name="计算机与通信学院",
                phone="+8613912345678",
            )
            for account, name, kind in [
                (STUDENT, "张三", "student"),
                (COUNSELLOR, "王老师", "staff"),
                (MANAGER, "教务处管理员", "staff"),
                (ADMIN, "学校管理员", "staff"),
            ]
        }
        db.session.add_all(people.values())
        db.session.flush()
        db.session.add(
            Position(
                scim_id="pos-cs-head",
                department_id=college.id,
                kind="head",
                title="院长",
                holders=[people[COUNSELLOR]],
            )
        )
        grant_role(MANAGER, HallRole.SERVICE_MANAGER, department_by_code("JWC"), actor="test")
        db.session.add(RoleGrant(account=COUNSELLOR, role="student-affairs", granted_by="test"))
        db.session.commit()
        return {account: user.id for account, user in people.items()}


def _applications(app: Flask) -> None:
    """Ten leaves of the student: nine waiting for the counsellor (a valid 通过 among the hostile
    submissions ends one; 批量审批 needs some left), one returned to the student (its 重新提交
    form); and a draft in the student's 草稿箱."""
    with app.test_request_context():
        service = db.session.scalars(select(Service).where(Service.title == "学生请假")).one()
        student = db.session.scalars(select(HallUser).where(HallUser.account == STUDENT)).one()
        submitted = [ops.submit_application(service, student, LEAVE).id for _ in range(10)]
        task = db.session.scalars(
            select(Task).where(Task.application_id == submitted[-1], Task.status == "open")
        ).one()
        returned = ops.act(submitted[-1], engine.Return(COUNSELLOR, task.engine_id, "请补充证明"))
        assert isinstance(returned, engine.Outcome), returned
        form = ops.latest_form(service.id)
        assert form is not None
        save_draft(student, service, form, {"reason": "草稿里的事由"})
        db.session.commit()


def _signed_in_as(app: Flask, user_id: int) -> Callable[[FlaskClient], None]:
    def enter(client: FlaskClient) -> None:
        sign_in_as(app, client, user_id)

    return enter


def _signed_in(client: FlaskClient) -> bool:
    return client.get("/me").status_code == 200


def _to_the_idp(url: str) -> bool:
    return url.startswith("/login")


def _not_revoking(app: Flask, account: str) -> Callable[[str], bool]:
    """Skip revoking the visitor's own roles (their own management pages would go)."""

    def skip(url: str) -> bool:
        found = re.search(r"/manage/roles/(\d+)/revoke", url)
        if not found:
            return False
        with app.app_context():
            grant = db.session.get(RoleGrant, int(found.group(1)))
            return grant is not None and grant.account == account

    return skip


def _visitors(app: Flask, ids: dict[str, int]) -> list[Visitor]:
    """Everyone who fills in the hall's forms: a stranger, the student, the counsellor with
    open tasks, a service manager and the hall admin."""
    return [
        # 登录 goes on to the IdP, which this hall has none of (503 服务暂不可用, rightly).
        Visitor("anonymous", ["/", "/services", "/notices", "/me"], skip=_to_the_idp),
        Visitor(
            "student",
            ["/", "/services", "/me", "/drafts", "/inbox?tab=mine"],
            enter=_signed_in_as(app, ids[STUDENT]),
            signed_in=_signed_in,
        ),
        Visitor(
            "student reading English",
            ["/", "/services", "/me", "/drafts", "/inbox?tab=mine"],
            enter=_signed_in_as(app, ids[STUDENT]),
            signed_in=_signed_in,
            language="en",
        ),
        Visitor(
            "approver",
            ["/inbox", "/inbox/delegation"],
            enter=_signed_in_as(app, ids[COUNSELLOR]),
            signed_in=_signed_in,
        ),
        Visitor(
            "service manager",
            ["/manage"],
            enter=_signed_in_as(app, ids[MANAGER]),
            signed_in=_signed_in,
            skip=_not_revoking(app, MANAGER),
        ),
        Visitor(
            "hall admin",
            ["/manage", "/manage/roles", "/manage/categories", "/manage/audit"],
            enter=_signed_in_as(app, ids[ADMIN]),
            signed_in=_signed_in,
            skip=_not_revoking(app, ADMIN),
        ),
    ]


def test_every_hall_form_survives_hostile_values(make_hall: AppFactory, tmp_path: Path) -> None:
    """Crawl from each visitor's start pages, submit each distinct form with empty, huge,
    control-character, full-width, out-of-range and duplicated values: no answer is a 5xx, an
    English error, an empty page or a control character shown back."""
    started = time.perf_counter()
    app = make_hall(STORAGE_DIR=str(tmp_path / "attachments"))
    ids = _people(app)
    _applications(app)
    visitors = _visitors(app, ids)
    findings, covered = fuzz_forms(app, visitors)
    elapsed = time.perf_counter() - started
    print(f"form fuzz of the hall: {elapsed:.1f} s\n{coverage(covered)}")
    # The crawl must reach the forms that matter, or a broken start page would pass silently.
    forms = " ".join(key for seen in covered.values() for key in seen["forms"])
    for reached in ("/services/{id}/apply", "/applications/{id}/act", "/manage/services/new"):
        assert reached in forms, forms
    assert not findings, summary(findings)
