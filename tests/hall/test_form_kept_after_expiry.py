"""A form posted just after the hall session expired is kept, and given back once after the
same person signs in again: the apply page, a draft's page, 重新提交 and an approver's opinion."""

from __future__ import annotations

import json
import logging
import re
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask, session
from flask.testing import FlaskClient
from flask_wtf.csrf import generate_csrf
from sqlalchemy import select

from hall.auth.kept_forms import KEPT_FORM_KEY
from hall.auth.models import HallSession, HallUser, utcnow
from hall.auth.sessions import SESSION_KEY, digest, start_session
from hall.extensions import db
from hall.forms.models import Attachment
from hall.forms.operations import drafts_of
from hall.workflow.models import Task
from shared.factory import get_store
from tests.hall.test_apply import (  # noqa: F401 - ``hall`` is a fixture
    ADMIN,
    COUNSELLOR,
    OTHER,
    PDF,
    STUDENT,
    applications,
    apply_path,
    hall,
    leave,
    page_fields,
    signed_in,
    submitted_and_returned,
    upload,
    user_id,
)

NOTICE = "登录已超时，已为您保留填写的内容，请检查后再提交（附件需要重新选择）。"
ABROAD = "教职工因公出国(境)审批表"
TRIP = {
    "itinerary-0-date": "2026-12-03",
    "itinerary-0-country": "德国",
    "itinerary-0-city": "柏林",
    "itinerary-1-country": "法国",
}


@pytest.fixture
def app(hall: Flask) -> Flask:  # noqa: F811 - test_apply's fixture of the demo catalogue
    """The demo catalogue with its online forms and people (see test_apply)."""
    return hall


def hidden_values(html: str) -> dict[str, str]:
    """The hidden values of a form page, its submission id included."""
    found = page_fields(html)
    match = re.search(r'name="submission_id" value="([^"]*)"', html)
    if match:
        found["submission_id"] = match.group(1)
    return found


def expire(app: Flask, client: FlaskClient, *, absolute: bool = False) -> None:
    """Let ``client``'s hall session run out: idle for 3 hours, or past its lifetime."""
    with client.session_transaction() as flask_session:
        token = flask_session[SESSION_KEY]
    with app.app_context():
        hall_session = db.session.get(HallSession, digest(token))
        assert hall_session is not None
        past = utcnow() - timedelta(hours=3)
        if absolute:
            hall_session.expires_at = past
        else:
            hall_session.last_seen_at = past
        db.session.commit()


def sign_in_again(app: Flask, client: FlaskClient, account: str) -> None:
    """Sign ``account`` in on ``client``'s browser the way the sign-in callback does."""
    with client.session_transaction() as flask_session:
        before = dict(flask_session)
    with app.test_request_context():
        session.update(before)
        person = db.session.get(HallUser, user_id(app, account))
        assert person is not None
        start_session(person, None, None)
        db.session.commit()
        after = dict(session)
    with client.session_transaction() as flask_session:
        flask_session.clear()
        flask_session.update(after)


def post_late(client: FlaskClient, path: str, data: dict[str, Any]) -> Any:
    """Post a page the browser opened while signed in (its CSRF token still valid)."""
    return client.post(path, data=data, content_type="multipart/form-data")


def kept_key(client: FlaskClient) -> str | None:
    """The kept form's key in the browser's Flask session."""
    with client.session_transaction() as flask_session:
        key: str | None = flask_session.get(KEPT_FORM_KEY)
        return key


def kept_raw(app: Flask, client: FlaskClient) -> str | None:
    """The kept form as stored."""
    key = kept_key(client)
    if key is None:
        return None
    with app.app_context():
        return get_store().get(f"kept-form:{key}")


def test_typed_form_is_kept_across_expiry_and_given_back_once(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    """因公出国: 提交 after the idle timeout, sign in: the page shows what was typed, once."""
    client = signed_in(app, ADMIN)
    path = apply_path(app, ABROAD)
    hidden = hidden_values(client.get(path).text)
    expire(app, client)
    with caplog.at_level(logging.INFO, logger="hall.auth.kept_forms"):
        late = post_late(client, path, {**hidden, **TRIP, "id_number": "12345", "action": "submit"})
    assert late.status_code == 302
    assert late.headers["Location"] == f"/login?next={quote(path, safe='/')}"
    assert applications(app) == []  # nothing submitted
    assert "kept a form" in caplog.text and "柏林" not in caplog.text  # no values in the log

    sign_in_again(app, client, ADMIN)
    restored = client.get(path)
    assert restored.status_code == 200
    assert NOTICE in restored.text
    assert 'value="柏林"' in restored.text and 'value="法国"' in restored.text
    assert 'value="12345"' in restored.text
    assert hidden_values(restored.text)["submission_id"] == hidden["submission_id"]
    assert applications(app) == []  # still nothing submitted: the person checks and sends

    assert kept_key(client) is None
    again = client.get(path)
    assert "柏林" not in again.text and NOTICE not in again.text


def test_kept_form_is_given_back_in_english(app: Flask) -> None:
    """The notice speaks the person's language."""
    client = signed_in(app, STUDENT)
    path = apply_path(app)
    hidden = hidden_values(client.get(path).text)
    expire(app, client)
    post_late(client, path, {**hidden, **leave(reason="看病"), "action": "draft"})
    sign_in_again(app, client, STUDENT)
    restored = client.get(path + "?lang=en")
    assert "Your sign-in had expired. What you typed has been kept" in restored.text
    assert NOTICE not in restored.text
    assert "看病" in restored.text


def test_another_person_signing_in_on_the_same_browser_never_sees_it(app: Flask) -> None:
    """A shared computer: 李四 signs in after 张三's session expired; 张三's text is dropped."""
    client = signed_in(app, STUDENT)
    path = apply_path(app)
    hidden = hidden_values(client.get(path).text)
    expire(app, client)
    post_late(client, path, {**hidden, **leave(reason="张三的私事"), "action": "submit"})
    assert kept_raw(app, client) is not None

    sign_in_again(app, client, OTHER)
    page = client.get(path)
    assert page.status_code == 200
    assert "张三的私事" not in page.text and NOTICE not in page.text
    assert kept_key(client) is None

    sign_in_again(app, client, STUDENT)  # the owner coming back later: it is gone
    assert "张三的私事" not in client.get(path).text


def test_kept_form_waits_for_its_own_page(app: Flask) -> None:
    """Another form page shows nothing of it; its own page still does."""
    client = signed_in(app, ADMIN)
    path = apply_path(app, ABROAD)
    hidden = hidden_values(client.get(path).text)
    expire(app, client)
    post_late(client, path, {**hidden, **TRIP, "action": "submit"})
    sign_in_again(app, client, ADMIN)
    elsewhere = client.get(apply_path(app))
    assert elsewhere.status_code == 200
    assert "柏林" not in elsewhere.text and NOTICE not in elsewhere.text
    assert 'value="柏林"' in client.get(path).text


def test_files_csrf_token_and_passwords_are_not_kept(app: Flask) -> None:
    """Only text fields are kept: the upload is neither stored nor remembered."""
    client = signed_in(app, STUDENT)
    path = apply_path(app)
    hidden = hidden_values(client.get(path).text)
    expire(app, client)
    post_late(
        client,
        path,
        {
            **hidden,
            **leave(reason="附上证明"),
            "attachments-upload": upload("证明.pdf", PDF),
            "new_password": "hunter2-secret",
            "action": "submit",
        },
    )
    raw = kept_raw(app, client)
    assert raw is not None
    names = {name for name, _value in json.loads(raw)["fields"]}
    assert "reason" in names and "submission_id" in names
    assert not names & {"csrf_token", "new_password", "attachments-upload"}
    assert "证明.pdf" not in raw and "hunter2" not in raw
    with app.app_context():
        assert db.session.scalars(select(Attachment)).all() == []

    sign_in_again(app, client, STUDENT)
    restored = client.get(path)
    assert "附上证明" in restored.text and "附件需要重新选择" in restored.text
    with app.app_context():
        assert db.session.scalars(select(Attachment)).all() == []


def test_a_browser_that_never_signed_in_keeps_nothing(app: Flask) -> None:
    """A post without any earlier hall session is sent to sign in as before, nothing kept."""
    client = app.test_client()
    with app.test_request_context():
        token = generate_csrf()
        secret = session["csrf_token"]
    with client.session_transaction() as flask_session:
        flask_session["csrf_token"] = secret
    response = post_late(
        client, apply_path(app), {"csrf_token": token, **leave(), "action": "submit"}
    )
    assert response.status_code == 302
    assert response.headers["Location"] == f"/login?next={quote('/', safe='/')}"
    assert kept_key(client) is None


def test_too_large_a_post_is_not_kept(app: Flask) -> None:
    """Past 256 KB of text nothing is kept (the plain redirect of a late post)."""
    client = signed_in(app, STUDENT)
    path = apply_path(app)
    hidden = hidden_values(client.get(path).text)
    expire(app, client)
    response = post_late(
        client, path, {**hidden, **leave(reason="长" * 100_000), "action": "submit"}
    )
    assert response.status_code == 302
    assert kept_key(client) is None


def test_draft_page_keeps_its_draft_and_submission_id(app: Flask) -> None:
    """A draft's page posted late comes back as that draft; sending it twice makes one
    application and the draft goes."""
    client = signed_in(app, STUDENT)
    path = apply_path(app)
    first = hidden_values(client.get(path).text)
    client.post(
        path,
        data={**first, "reason": "半成品", "action": "draft"},
        content_type="multipart/form-data",
    )
    with app.app_context():
        (draft,) = drafts_of(STUDENT)
        draft_id = draft.id
    hidden = hidden_values(client.get(f"{path}?draft={draft_id}").text)
    assert hidden["draft_id"] == str(draft_id)
    expire(app, client, absolute=True)
    post_late(client, path, {**hidden, **leave(reason="写完了"), "action": "submit"})
    sign_in_again(app, client, STUDENT)

    restored = client.get(path)
    assert NOTICE in restored.text and "写完了" in restored.text
    values = hidden_values(restored.text)
    assert values["draft_id"] == str(draft_id)
    assert values["submission_id"] == hidden["submission_id"]
    data = {**values, **leave(reason="写完了"), "action": "submit"}
    one = client.post(path, data=data, content_type="multipart/form-data")
    two = client.post(path, data=data, content_type="multipart/form-data")
    assert one.status_code == two.status_code == 302
    assert one.headers["Location"] == two.headers["Location"]
    (application,) = applications(app)
    assert application.data["reason"] == "写完了"
    with app.app_context():
        assert drafts_of(STUDENT) == []


def test_resubmit_page_keeps_what_was_typed(app: Flask) -> None:
    """重新提交 posted after the session ran out: the edits come back on the resubmit page."""
    client = signed_in(app, STUDENT)
    application = submitted_and_returned(app, client)
    path = f"/applications/{application.id}/resubmit"
    hidden = hidden_values(client.get(path).text)
    expire(app, client)
    late = post_late(client, path, {**hidden, **leave(reason="已补充医院证明"), "action": "submit"})
    assert late.headers["Location"] == f"/login?next={quote(path, safe='/')}"
    sign_in_again(app, client, STUDENT)
    restored = client.get(path)
    assert restored.status_code == 200
    assert NOTICE in restored.text and "已补充医院证明" in restored.text
    assert applications(app)[0].status == "returned"
    assert "已补充医院证明" not in client.get(path).text


def opened_task(app: Flask) -> tuple[int, FlaskClient, str]:
    """The student's leave, waiting at the counsellor, whose browser has its page open."""
    student = signed_in(app, STUDENT)
    path = apply_path(app)
    hidden = hidden_values(student.get(path).text)
    student.post(
        path, data={**hidden, **leave(), "action": "submit"}, content_type="multipart/form-data"
    )
    (application,) = applications(app)
    counsellor = signed_in(app, COUNSELLOR)
    page = counsellor.get(f"/applications/{application.id}")
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text)
    assert token
    return application.id, counsellor, token.group(1)


def test_approvers_opinion_is_kept(app: Flask) -> None:
    """通过 pressed after the counsellor's session expired: the opinion is back in its box."""
    app_id, client, token = opened_task(app)
    with app.app_context():
        task = db.session.scalars(select(Task)).one()
        engine_id = task.engine_id
    expire(app, client)
    late = client.post(
        f"/applications/{app_id}/act",
        data={
            "csrf_token": token,
            "wf-task": engine_id,
            "wf-action": "approve",
            "wf-opinion": "同意，注意安全按时返校",
        },
    )
    page = f"/applications/{app_id}"
    assert late.headers["Location"] == f"/login?next={quote(page, safe='/')}"
    sign_in_again(app, client, COUNSELLOR)
    restored = client.get(page)
    assert NOTICE in restored.text
    box = re.search(r'<textarea id="wf-opinion"[^>]*>([^<]*)</textarea>', restored.text)
    assert box and box.group(1) == "同意，注意安全按时返校"
    with app.app_context():
        assert db.session.scalars(select(Task)).one().status == "open"  # not approved for them
    assert "同意，注意安全按时返校" not in client.get(page).text


def test_pass_on_opinion_is_kept(app: Flask) -> None:
    """转办 pressed late: the person chosen and the note come back in the 转办 form."""
    app_id, client, token = opened_task(app)
    with app.app_context():
        engine_id = db.session.scalars(select(Task)).one().engine_id
    expire(app, client)
    client.post(
        f"/applications/{app_id}/pass-on",
        data={
            "csrf_token": token,
            "task": engine_id,
            "who": ADMIN,
            "opinion": "请管理员代为处理",
            "action": "transfer",
        },
    )
    sign_in_again(app, client, COUNSELLOR)
    restored = client.get(f"/applications/{app_id}")
    assert NOTICE in restored.text
    box = re.search(r'<textarea id="pass-on-opinion"[^>]*>([^<]*)</textarea>', restored.text)
    assert box and box.group(1) == "请管理员代为处理"
    assert f'name="who" value="{ADMIN}"' in restored.text
