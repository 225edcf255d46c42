"""Second review of 待办中心 and the application page: approvers keep or drop files but upload
none, a delegator opens what was handled on their behalf, a refused 批量通过 keeps its list."""

from __future__ import annotations

import io
import re
from datetime import date
from typing import cast

import pytest
from flask import Flask
from sqlalchemy import select

from hall.catalog.models import Service, ServiceStatus
from hall.extensions import db
from hall.forms import attachments
from hall.forms.models import Attachment
from hall.inbox import queries
from hall.workflow import engine
from hall.workflow import operations as ops
from hall.workflow.models import Application
from tests.hall.catalog_support import csrf_token
from tests.hall.test_apply import status_of
from tests.hall.test_form_kept_after_expiry import NOTICE as KEPT_NOTICE
from tests.hall.test_form_kept_after_expiry import expire, sign_in_again
from tests.hall.test_inbox import END, PDF, START, client_of, person, submit, task_of, user
from tests.hall.test_inbox import hall as inbox_hall  # noqa: F401 - a fixture
from tests.hall.test_review_workflow_inbox import add_service

#: The approver 王主任 may edit 附件 (keep or drop the applicant's files).
FILES_EDITABLE = {"nodes": [START, person("first", ["bob"], permissions={"files": "edit"}), END]}
#: Rows a page of 我待办的 holds.
PER_PAGE = 20
FILE_INPUT = re.compile(r'<input type="file"[^>]*name="files-upload"')


@pytest.fixture(name="hall")
def hall_fixture(request: pytest.FixtureRequest) -> Flask:
    """The to-do centre tests' hall: their people and their 两级审批 and 并行办理 services."""
    return cast(Flask, request.getfixturevalue("inbox_hall"))


def submit_with_file(title: str) -> tuple[int, int]:
    """alice submits ``title`` with 证明.pdf in 附件; the application's and the file's ids."""
    upload = attachments.store_upload("alice", "证明.pdf", io.BytesIO(PDF))
    app_id = submit(title, files=[str(upload.id)])
    attachments.link_to_application([upload.id], "alice", app_id)
    db.session.commit()
    return app_id, upload.id


# --------------------------------------------------------------------------- attachments


def test_an_approver_editing_attachments_is_offered_no_upload_only_keep_or_drop(
    hall: Flask,
) -> None:
    """The approval form takes no files: the approver's page ticks the held files to keep and
    draws no file input (a chosen file would vanish); with no files it says （无）."""
    with hall.test_request_context():
        add_service("附件可改", FILES_EDITABLE)
        app_id, upload_id = submit_with_file("附件可改")
        empty_id = submit("附件可改")
    bob = client_of(hall, "bob")
    page = bob.get(f"/applications/{app_id}").text
    assert 'id="act-form"' in page and not FILE_INPUT.search(page)
    assert 'type="file"' not in page
    assert f'name="files" value="{upload_id}" checked' in page and "证明.pdf" in page
    empty = bob.get(f"/applications/{empty_id}").text
    assert 'id="act-form"' in empty and 'type="file"' not in empty
    assert re.search(r'data-field="files".*?（无）', empty, re.S)


def test_a_file_in_a_field_hidden_from_the_approver_is_not_theirs_to_download(
    hall: Flask,
) -> None:
    """王主任's node hides 附件: no link on the page, and the download by id is a 404 too (ids
    are sequential); the applicant still downloads it, and so does an approver who sees it."""
    hidden = {"nodes": [START, person("first", ["bob"], permissions={"files": "hidden"}), END]}
    with hall.test_request_context():
        add_service("附件保密", hidden)
        app_id, upload_id = submit_with_file("附件保密")
        add_service("附件可改", FILES_EDITABLE)
        shown_app, shown_id = submit_with_file("附件可改")
    bob = client_of(hall, "bob")
    assert f"/attachments/{upload_id}" not in bob.get(f"/applications/{app_id}").text
    assert status_of(bob, f"/attachments/{upload_id}") == 404
    assert status_of(client_of(hall, "alice"), f"/attachments/{upload_id}") == 200
    assert f"/attachments/{shown_id}" in bob.get(f"/applications/{shown_app}").text
    assert status_of(bob, f"/attachments/{shown_id}") == 200


def test_the_applicant_still_uploads_on_the_form_and_when_resubmitting(hall: Flask) -> None:
    """The applicant's form page (apply, and resubmit after 退回) keeps its file input."""
    with hall.test_request_context():
        service_id = add_service("附件可改", FILES_EDITABLE)
        service = db.session.get(Service, service_id)
        assert service is not None
        service.status = ServiceStatus.PUBLISHED.value
        db.session.commit()
        app_id, upload_id = submit_with_file("附件可改")
        task = task_of(app_id, "bob")
        returned = ops.act(app_id, engine.Return("bob", task.engine_id, "请补充", engine.APPLICANT))
        assert isinstance(returned, engine.Outcome)
    alice = client_of(hall, "alice")
    apply_page = alice.get(f"/services/{service_id}/apply").text
    assert 'enctype="multipart/form-data"' in apply_page and FILE_INPUT.search(apply_page)
    resubmit = alice.get(f"/applications/{app_id}/resubmit").text
    assert FILE_INPUT.search(resubmit)
    assert f'name="files" value="{upload_id}" checked' in resubmit


# --------------------------------------------------------------------------- 委托


def test_a_delegator_back_from_leave_reads_what_their_delegate_handled(hall: Flask) -> None:
    """王主任 delegated to 人事专员, who approved for them: back again, 王主任 opens the
    application read-only with the node's permissions (内部编号 stays hidden) and its files."""
    with hall.test_request_context():
        delegation = ops.set_delegation("bob", "erin", date(2020, 1, 1), date(2099, 1, 1))
        db.session.commit()
        delegation_id = delegation.id
        upload = attachments.store_upload("alice", "证明.pdf", io.BytesIO(PDF))
        app_id = submit(secret="NO-778", files=[str(upload.id)])
        attachments.link_to_application([upload.id], "alice", app_id)
        db.session.commit()
        upload_id = upload.id
        task = task_of(app_id, "erin")
        assert task.on_behalf_of == "bob"
        assert isinstance(
            ops.act(app_id, engine.Approve("erin", task.engine_id, "同意（代王主任）")),
            engine.Outcome,
        )
        ops.end_delegation("bob", delegation_id, date.today())
        db.session.commit()
        # The same people open the application and download its files.
        assert queries.may_see(db.session.get_one(Application, app_id), "bob")
        assert attachments.may_read(db.session.get_one(Attachment, upload_id), user("bob"))
    bob = client_of(hall, "bob")
    page = bob.get(f"/applications/{app_id}")
    assert page.status_code == 200 and "同意（代王主任）" in page.text
    assert 'id="act-form"' not in page.text  # read-only: the task was never bob's to act on
    assert "NO-778" not in page.text and "内部编号" not in page.text
    assert f'href="/attachments/{upload_id}"' in page.text
    outsider = client_of(hall, "mallory")
    assert outsider.get(f"/applications/{app_id}").status_code == 404


# --------------------------------------------------------------------------- 批量通过


def test_a_refused_batch_shows_the_same_page_and_service_with_the_ticks_and_opinion(
    hall: Flask,
) -> None:
    """批量通过 without an opinion on page 2 of one service: that page of that service again,
    the ticked tasks still ticked and what was typed (blank here, spaces kept) still there."""
    with hall.test_request_context():
        ids = [submit() for _ in range(PER_PAGE + 2)]
        submit("并行办理")  # another service's task, outside the filter
        service_id = db.session.scalar(select(Service.id).where(Service.title == "两级审批"))
        tasks = [task_of(i, "bob").id for i in ids]
    bob = client_of(hall, "bob")
    listed = bob.get(f"/inbox?tab=todo&service={service_id}&page=2").text
    assert f'name="service" value="{service_id}"' in listed
    assert 'name="page" value="2"' in listed
    on_page_two = [t for t in tasks if f'name="task" value="{t}"' in listed]
    assert len(on_page_two) == 2
    ticked = on_page_two[:1]
    refused = bob.post(
        "/inbox/batch-approve",
        data={
            "task": ticked,
            "opinion": "   ",
            "service": str(service_id),
            "page": "2",
            "csrf_token": csrf_token(bob, "/inbox"),
        },
    )
    assert refused.status_code == 400 and "请填写审批意见" in refused.text
    rows = re.findall(r'name="task" value="(\d+)"', refused.text)
    assert sorted(int(r) for r in rows) == sorted(on_page_two)
    assert re.search(rf'value="{ticked[0]}" id="task-{ticked[0]}" checked', refused.text)
    assert refused.text.count(" checked") == 1
    assert 'name="page" value="2"' in refused.text
    assert f'name="service" value="{service_id}"' in refused.text
    assert 'id="batch-opinion" name="opinion" rows="2" maxlength="1000" aria-invalid="true"' in (
        refused.text
    )
    too_long = bob.post(
        "/inbox/batch-approve",
        data={
            "task": ticked,
            "opinion": "同意" * ops.MAX_OPINION,
            "service": str(service_id),
            "page": "2",
            "csrf_token": csrf_token(bob, "/inbox"),
        },
    )
    assert too_long.status_code == 400 and "同意" * ops.MAX_OPINION in too_long.text
    assert sorted(int(r) for r in re.findall(r'name="task" value="(\d+)"', too_long.text)) == (
        sorted(on_page_two)
    )
    with hall.test_request_context():
        assert queries.pending_count("bob") == len(ids) + 1


def test_a_batch_posted_after_the_session_expired_comes_back_ticked_after_sign_in(
    hall: Flask,
) -> None:
    """批量通过 pressed just after the session expired: nothing is approved for them; after
    signing in, 我待办的 shows the same service and page with the same ticks and opinion, once."""
    with hall.test_request_context():
        ids = [submit() for _ in range(PER_PAGE + 2)]
        service_id = db.session.scalar(select(Service.id).where(Service.title == "两级审批"))
        tasks = [task_of(i, "bob").id for i in ids]
    bob = client_of(hall, "bob")
    listed = bob.get(f"/inbox?tab=todo&service={service_id}&page=2").text
    on_page_two = [t for t in tasks if f'name="task" value="{t}"' in listed]
    token = csrf_token(bob, "/inbox")
    expire(hall, bob)
    late = bob.post(
        "/inbox/batch-approve",
        data={
            "task": on_page_two,
            "opinion": "同意，材料齐全",
            "service": str(service_id),
            "page": "2",
            "csrf_token": token,
        },
    )
    assert late.status_code == 302 and late.headers["Location"] == "/login?next=/inbox"
    with hall.test_request_context():
        assert queries.pending_count("bob") == len(ids)  # nothing approved for them
    sign_in_again(hall, bob, "bob")
    back = bob.get("/inbox")
    assert back.status_code == 200 and KEPT_NOTICE in back.text
    assert 'name="page" value="2"' in back.text
    assert f'name="service" value="{service_id}"' in back.text
    for task in on_page_two:
        assert re.search(rf'value="{task}" id="task-{task}" checked', back.text)
    assert "同意，材料齐全" in back.text
    again = bob.get("/inbox")
    assert KEPT_NOTICE not in again.text and " checked" not in again.text
