"""在线办理 defects found in review: one application per form page, numbers too long to be
numbers, choosing oneself as approver, and files two drafts share."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from hall.extensions import db
from hall.forms import operations as forms_ops
from hall.forms.models import Attachment, Draft
from hall.workflow import operations as ops
from hall.workflow.models import Task
from shared.factory import get_store
from tests.hall.test_apply import (  # noqa: F401 - ``hall`` is a fixture
    PDF,
    STUDENT,
    TUTOR_CHOSEN_BY_APPLICANT,
    applications,
    apply_path,
    field_block,
    hall,
    leave,
    page_fields,
    service_id,
    signed_in,
    upload,
)


def page_values(html: str) -> dict[str, str]:
    """The hidden values of a form page, its submission id included."""
    found = page_fields(html)
    match = re.search(r'name="submission_id" value="([^"]*)"', html)
    if match:
        found["submission_id"] = match.group(1)
    return found


def post_page(
    client: FlaskClient,
    path: str,
    hidden: dict[str, str],
    fields: dict[str, Any],
    action: str = "submit",
) -> Any:
    """Post a page already opened (its hidden values given) with ``fields``."""
    return client.post(
        path.split("?")[0],
        data={**hidden, **fields, "action": action},
        content_type="multipart/form-data",
    )


@pytest.fixture
def app(hall: Flask) -> Flask:  # noqa: F811 - test_apply's fixture of the demo catalogue
    """test_apply's hall: the demo catalogue with its online forms and a student."""
    return hall


def drafts(app: Flask) -> list[Draft]:
    """Every stored draft."""
    with app.app_context():
        rows = list(db.session.scalars(select(Draft).order_by(Draft.id)))
        db.session.expunge_all()
        return rows


# --------------------------------------------------------------------------- one submission


def test_double_click_on_submit_makes_one_application(app: Flask) -> None:
    """提交 clicked twice (or the page resent): one application; the second post lands on it."""
    client = signed_in(app, STUDENT)
    path = apply_path(app)
    hidden = page_values(client.get(path).text)
    assert hidden.get("submission_id")
    first = post_page(client, path, hidden, leave())
    second = post_page(client, path, hidden, leave())
    assert first.status_code == second.status_code == 302
    (application,) = applications(app)
    assert second.headers["Location"] == first.headers["Location"]
    assert f"/applications/{application.id}/submitted" in second.headers["Location"]
    assert "这份表单已经提交过，没有重复提交。" in client.get(second.headers["Location"]).text


def test_two_tabs_of_one_draft_make_one_application(app: Flask) -> None:
    """A draft open in two tabs and submitted from both: one application."""
    client = signed_in(app, STUDENT)
    path = apply_path(app)
    post_page(client, path, page_values(client.get(path).text), leave(), action="draft")
    (draft,) = drafts(app)
    tab_one = page_values(client.get(f"{path}?draft={draft.id}").text)
    tab_two = page_values(client.get(f"{path}?draft={draft.id}").text)
    assert post_page(client, path, tab_one, leave()).status_code == 302
    assert post_page(client, path, tab_two, leave()).status_code == 302
    assert len(applications(app)) == 1
    assert drafts(app) == []


def test_page_refused_for_mistakes_is_submitted_once_fixed(app: Flask) -> None:
    """A refused post does not use up the page: fixed, the same page submits."""
    client = signed_in(app, STUDENT)
    path = apply_path(app)
    hidden = page_values(client.get(path).text)
    refused = post_page(client, path, hidden, leave(reason=None))
    assert refused.status_code == 422
    assert page_values(refused.text)["submission_id"] == hidden["submission_id"]
    assert post_page(client, path, page_values(refused.text), leave()).status_code == 302
    assert len(applications(app)) == 1


def test_second_post_while_the_first_is_processed_is_told_to_wait(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A post of a page whose first post is still running gets 409, not a second application."""
    monkeypatch.setattr(forms_ops, "SUBMISSION_WAIT", 0)
    client = signed_in(app, STUDENT)
    path = apply_path(app)
    hidden = page_values(client.get(path).text)
    with app.app_context():
        key = f"form-submission:{STUDENT}:{hidden['submission_id']}"
        get_store().add(key, "pending", 60)
    response = post_page(client, path, hidden, leave())
    assert response.status_code == 409
    assert "正在处理中" in response.text
    assert applications(app) == []


def test_saving_one_page_twice_keeps_one_draft(app: Flask) -> None:
    """存到我的草稿箱 twice from one page (or again after Back): the draft is updated."""
    client = signed_in(app, STUDENT)
    path = apply_path(app)
    hidden = page_values(client.get(path).text)
    post_page(client, path, hidden, leave(reason="第一次"), action="draft")
    post_page(client, path, hidden, leave(reason="第二次"), action="draft")
    (draft,) = drafts(app)
    assert draft.data["reason"] == "第二次"


# --------------------------------------------------------------------------- numbers


@pytest.mark.parametrize("copies", ["9" * 5000, "9" * 400 + ".5"])
def test_number_too_long_to_be_one_gets_a_message_not_a_500(app: Flask, copies: str) -> None:
    """Thousands of digits in 在读证明's 份数: 请输入整数 beside the field, and a draft keeps
    it as text."""
    client = signed_in(app, STUDENT)
    path = apply_path(app, "在读证明")
    typed = {"purpose": "实习就业", "copies": copies, "languages": "中文"}
    refused = post_page(client, path, page_values(client.get(path).text), typed)
    assert refused.status_code == 422
    assert "请输入整数" in refused.text
    saved = post_page(client, path, page_values(client.get(path).text), typed, "draft")
    assert saved.status_code == 302
    (draft,) = drafts(app)
    assert draft.data["copies"] == copies  # no float('inf'), which PostgreSQL's json refuses


# --------------------------------------------------------------------------- 自选审批人


def test_applicant_cannot_choose_themselves_as_approver(app: Flask) -> None:
    """自选审批人: one's own 学号 is refused, so nobody approves their own application."""
    sid = service_id(app, "在读证明")
    with app.app_context():
        ops.save_flow_definition(
            sid,
            TUTOR_CHOSEN_BY_APPLICANT,
            actor="admin",
        )
    client = signed_in(app, STUDENT)
    path = apply_path(app, "在读证明")
    certificate = {"purpose": "实习就业", "copies": "1", "languages": "中文"}
    response = post_page(
        client, path, page_values(client.get(path).text), {**certificate, "chosen-tutor": STUDENT}
    )
    assert response.status_code == 422
    message = "不能选择申请人本人作为“导师审批”的审批人"
    assert message in field_block(response.text, "chosen-tutor")  # beside the field
    assert applications(app) == []
    with app.app_context():
        assert db.session.scalars(select(Task)).all() == []


# --------------------------------------------------------------------------- attachments


def test_deleting_a_draft_keeps_files_another_draft_holds(app: Flask) -> None:
    """One upload saved in two drafts (from two pages): deleting one draft leaves the file."""
    client = signed_in(app, STUDENT)
    path = apply_path(app)
    refused = post_page(
        client,
        path,
        page_values(client.get(path).text),
        leave(reason=None, **{"attachments-upload": upload("证明.pdf", PDF)}),
    )
    (attachment_id,) = re.findall(r'name="attachments" value="(\d+)"', refused.text)
    for _ in range(2):
        hidden = page_values(client.get(path).text)
        post_page(client, path, hidden, {**leave(), "attachments": attachment_id}, "draft")
    kept, deleted = drafts(app)
    token = page_fields(client.get("/drafts").text)["csrf_token"]
    assert (
        client.post(f"/drafts/{deleted.id}/delete", data={"csrf_token": token}).status_code == 302
    )
    with app.app_context():
        assert db.session.get(Attachment, int(attachment_id)) is not None
    assert "证明.pdf" in client.get(f"/drafts/{kept.id}", follow_redirects=True).text
    # The last draft holding it takes it along.
    client.post(f"/drafts/{kept.id}/delete", data={"csrf_token": token})
    with app.app_context():
        assert db.session.get(Attachment, int(attachment_id)) is None
