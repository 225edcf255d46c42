"""部门管理 (/admin/departments): the department tree, guarded against loops and lost people."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from flask import Flask

from idp.admin.departments import (
    DepartmentError,
    create_department,
    department_tree,
    flatten,
    move_department,
)
from idp.directory.models import Department, User
from idp.directory.operations import ensure_department
from idp.extensions import db
from tests.idp.admin_support import (  # noqa: F401 - fixtures
    Signed,
    admin_fixture,
    desk_fixture,
    post_from,
)
from tests.idp.conftest import MakeUser, post_form
from tests.idp.console_support import events


def _seed(app: Flask) -> dict[str, int]:
    """计算机学院 > 软件工程系 > 软件2201班; 机械学院 at the top level too."""
    with app.app_context():
        ensure_department("CS", "计算机学院")
        ensure_department("SE", "软件工程系", "CS")
        ensure_department("SE2201", "软件2201班", "SE")
        ensure_department("ME", "机械学院")
        db.session.commit()
        return {d.code: d.id for d in db.session.scalars(db.select(Department))}


def _field_errors(response: Any) -> list[str]:
    """The error messages shown under the form's fields."""
    page = response.get_data(as_text=True)
    return [
        html.unescape(error) for error in re.findall(r'class="field-error"[^>]*>(.*?)</p>', page)
    ]


def _parent_code(app: Flask, code: str) -> str | None:
    with app.app_context():
        department = db.session.scalars(db.select(Department).where(Department.code == code)).one()
        return department.parent.code if department.parent else None


def test_department_tree_lists_children_under_parents(idp_app: Flask, admin: Signed) -> None:
    """The page shows the tree in order, each department after its parent, with head counts."""
    _seed(idp_app)
    with idp_app.app_context():
        shown = [(node.department.code, node.depth) for node in flatten(department_tree())]
    assert shown == [("CS", 0), ("SE", 1), ("SE2201", 2), ("ME", 0)]
    page = admin.client.get("/admin/departments").get_data(as_text=True)
    assert page.index("计算机学院") < page.index("软件工程系") < page.index("软件2201班")


def test_admin_creates_renames_and_moves_a_department(idp_app: Flask, admin: Signed) -> None:
    """Create under a parent, rename, move to the top level: each step audited."""
    _seed(idp_app)
    created = post_form(
        admin.client,
        "/admin/departments",
        {"code": "AI", "name": "人工智能系", "parent_code": "CS", "reason": "新设系"},
    )
    assert created.status_code == 302
    assert _parent_code(idp_app, "AI") == "CS"
    with idp_app.app_context():
        ai = db.session.scalars(db.select(Department).where(Department.code == "AI")).one().id
    url = f"/admin/departments/{ai}"
    renamed = post_form(admin.client, url, {"rename-name": "智能科学系", "rename-submit": "y"})
    assert renamed.status_code == 302
    moved = post_form(admin.client, url, {"move-parent_code": "", "move-submit": "y"})
    assert moved.status_code == 302
    assert _parent_code(idp_app, "AI") is None
    with idp_app.app_context():
        assert db.session.get(Department, ai).name == "智能科学系"
    assert events(idp_app, "department.create")[-1]["detail"]["reason"] == "新设系"
    assert events(idp_app, "department.rename")[-1]["detail"]["after"] == "智能科学系"
    assert events(idp_app, "department.move")[-1]["detail"]["before"] == "CS"


def test_moving_a_department_under_its_own_child_is_refused(idp_app: Flask, admin: Signed) -> None:
    """计算机学院 cannot go under its own class: clear message, tree unchanged."""
    ids = _seed(idp_app)
    response = post_form(
        admin.client,
        f"/admin/departments/{ids['CS']}",
        {"move-parent_code": "SE2201", "move-submit": "y"},
    )
    assert response.status_code == 400
    assert "不能把部门移到它自己或它的下级部门之下" in response.get_data(as_text=True)
    assert _parent_code(idp_app, "CS") is None
    assert _parent_code(idp_app, "SE2201") == "SE"
    with idp_app.app_context(), pytest.raises(DepartmentError):
        cs = db.session.get(Department, ids["CS"])
        admin_user = db.session.get(User, admin.user.id)
        move_department(cs, "CS", actor=admin_user)


def test_duplicate_code_and_unknown_parent_are_refused(idp_app: Flask, admin: Signed) -> None:
    """A code already in use, or a parent that does not exist: refused, nothing added."""
    _seed(idp_app)
    duplicate = post_form(admin.client, "/admin/departments", {"code": "CS", "name": "重复"})
    assert duplicate.status_code == 400
    assert "部门代码已存在" in duplicate.get_data(as_text=True)
    orphan = post_form(
        admin.client, "/admin/departments", {"code": "X1", "name": "新系", "parent_code": "NOPE"}
    )
    assert orphan.status_code == 400
    assert "上级部门不存在" in orphan.get_data(as_text=True)
    with idp_app.app_context():
        assert db.session.query(Department).count() == 4
        admin_user = db.session.get(User, admin.user.id)
        with pytest.raises(DepartmentError):
            create_department("has space", "x", None, actor=admin_user)


def test_department_form_errors_are_english_in_english(idp_app: Flask, admin: Signed) -> None:
    """An English console explains a refused move or an unknown parent in English."""
    ids = _seed(idp_app)
    admin.client.get("/admin/departments?lang=en")
    moved = post_form(
        admin.client,
        f"/admin/departments/{ids['CS']}",
        {"move-parent_code": "SE2201", "move-submit": "y"},
    )
    assert moved.status_code == 400
    assert _field_errors(moved) == [
        "A department cannot be moved under itself or one of its sub-departments: CS"
    ]
    orphan = post_form(
        admin.client, "/admin/departments", {"code": "X1", "name": "新系", "parent_code": "NOPE"}
    )
    assert orphan.status_code == 400
    assert _field_errors(orphan) == ["No such parent department: NOPE"]
    assert _parent_code(idp_app, "CS") is None


def test_department_with_people_or_children_cannot_be_deleted(
    idp_app: Flask, admin: Signed, make_user: MakeUser
) -> None:
    """Deleting is refused while people or sub-departments remain; an empty one goes."""
    ids = _seed(idp_app)
    make_user("2022000001", department_code="SE2201")
    url = f"/admin/departments/{ids['SE2201']}"
    refused = post_from(admin.client, url, f"{url}/delete", {})
    assert refused.status_code == 302
    assert "还有 1 人" in admin.client.get(url).get_data(as_text=True)
    parent_url = f"/admin/departments/{ids['CS']}"
    post_from(admin.client, parent_url, f"{parent_url}/delete", {})
    me_url = f"/admin/departments/{ids['ME']}"
    deleted = post_from(admin.client, me_url, f"{me_url}/delete", {"delete-reason": "合并"})
    assert deleted.status_code == 302
    with idp_app.app_context():
        codes = set(db.session.scalars(db.select(Department.code)))
    assert codes == {"CS", "SE", "SE2201"}
    assert [e["detail"]["reason"] for e in events(idp_app, "department.delete")] == ["合并"]


def test_help_desk_cannot_change_departments(idp_app: Flask, desk: Signed) -> None:
    """Help desk is refused (403) and nothing is created."""
    assert desk.client.get("/admin/departments").status_code == 403
    with idp_app.app_context():
        assert db.session.query(Department).count() == 0


def test_a_refused_rename_or_move_shows_the_other_form_as_it_stands(
    idp_app: Flask, admin: Signed
) -> None:
    """软件工程系: a rename refused (empty name) still shows 计算机学院 as its parent, not an
    empty box that reads as 顶级; a move refused still shows its current name."""
    ids = _seed(idp_app)
    url = f"/admin/departments/{ids['SE']}"
    rename = post_form(admin.client, url, {"rename-name": "", "rename-submit": "y"})
    page = rename.get_data(as_text=True)
    assert rename.status_code == 400
    assert re.search(r'id="move-parent_code"[^>]*value="CS"', page), page
    move = post_form(admin.client, url, {"move-parent_code": "SE2201", "move-submit": "y"})
    page = move.get_data(as_text=True)
    assert move.status_code == 400
    assert re.search(r'id="rename-name"[^>]*value="软件工程系"', page)
    assert _parent_code(idp_app, "SE") == "CS"
