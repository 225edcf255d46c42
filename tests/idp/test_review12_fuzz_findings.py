"""What the form fuzz (test_form_fuzz.py) found in the IdP: control characters other than NUL
were taken from any form and stored as typed — a help-desk reason carrying a terminal escape
sequence went into the append-only audit log, a department name with a bell character into the
directory that CAS answers in XML (which cannot hold one). Now refused like a NUL."""

from __future__ import annotations

import pytest
from flask import Flask

from idp.directory.models import Department
from idp.directory.roles import Role
from idp.extensions import db
from tests.idp.conftest import MakeUser, post_form
from tests.idp.console_support import (
    confirm_action,
    console_sign_in,
    events,
    make_console_user,
)

UNREADABLE = "提交的内容含有无法识别的字符，请检查后重新输入。"


@pytest.mark.parametrize(
    "reason",
    ["本人到服务台\x1b[31m办理", "本人\x07到服务台", "本人到服务台\x7f", "本人\x85到服务台"],
    ids=["terminal-escape", "bell", "delete", "c1-next-line"],
)
def test_help_desk_reason_with_a_control_character_is_refused_and_not_audited(
    idp_app: Flask, make_user: MakeUser, reason: str
) -> None:
    """A reason no keyboard types gets the Chinese 400 page; nothing is done, and the audit
    log holds no such reason."""
    target = make_user("2025000001", name="李四")
    helpdesk, secret = make_console_user(idp_app, make_user, Role.HELPDESK)
    client = idp_app.test_client()
    console_sign_in(client, helpdesk, secret)

    response = confirm_action(client, f"/admin/users/{target.id}/actions/disable", reason=reason)

    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert UNREADABLE in page and '<html lang="zh-CN">' in page
    assert events(idp_app, "console.disable") == []


def test_department_name_with_a_control_character_is_refused_and_not_stored(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """新建部门 with a bell character in the name: the 400 page, and no department."""
    admin, secret = make_console_user(idp_app, make_user, Role.ADMIN)
    client = idp_app.test_client()
    console_sign_in(client, admin, secret)

    response = post_form(
        client,
        "/admin/departments",
        {"code": "EDU2", "name": "教务\x07处", "parent_code": "", "reason": "新设"},
    )

    assert response.status_code == 400
    assert UNREADABLE in response.get_data(as_text=True)
    with idp_app.app_context():
        assert db.session.scalars(db.select(Department).filter_by(code="EDU2")).first() is None


def test_tab_and_line_breaks_still_pass_the_guard(idp_app: Flask, make_user: MakeUser) -> None:
    """A reason typed over two lines (a textarea's CR LF) and a tab are what people type."""
    target = make_user("2025000001", name="李四")
    helpdesk, secret = make_console_user(idp_app, make_user, Role.HELPDESK)
    client = idp_app.test_client()
    console_sign_in(client, helpdesk, secret)

    response = confirm_action(
        client, f"/admin/users/{target.id}/actions/disable", reason="本人到服务台\r\n\t持学生证"
    )

    assert response.status_code in (302, 303), response.get_data(as_text=True)[:500]
    (disabled,) = events(idp_app, "console.disable")
    assert disabled["detail"]["reason"] == "本人到服务台 持学生证"
