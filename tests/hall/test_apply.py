"""在线办理 for applicants: filling a service's form, 草稿箱, attachments, 重新提交 after 退回."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from hall.audit.models import HallAuditEvent
from hall.auth.models import HallUser, utcnow
from hall.catalog.demo import load_demo_catalog
from hall.catalog.models import Service
from hall.catalog.roles import RoleGrant
from hall.directory.models import Department, Position
from hall.extensions import db
from hall.forms import attachments, files
from hall.forms.models import Attachment, Draft
from hall.forms.operations import drafts_of
from hall.workflow import engine
from hall.workflow import operations as ops
from hall.workflow.demo import DEMOS, load_demo_workflows
from hall.workflow.models import Application, CarbonCopy, FormDefinition, Task
from tests.hall.catalog_support import sign_in_as

STUDENT, OTHER, COUNSELLOR, AFFAIRS, ADMIN = "2024000001", "2024000002", "T1001", "T3001", "T2001"
PDF = b"%PDF-1.7\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
MAX_BYTES = 64 * 1024


@pytest.fixture
def hall(make_hall: Any, tmp_path: Path) -> Iterator[Flask]:
    """The demo catalogue with its online forms; a student of 计算机与通信学院 whose counsellor
    (the college's head) is T1001; T3001 holds 学生工作处 (copied on leave); T2001 runs the hall."""
    app = make_hall(STORAGE_DIR=str(tmp_path / "attachments"), ATTACHMENT_MAX_BYTES=MAX_BYTES)
    with app.app_context():
        load_demo_catalog()
        load_demo_workflows()
        college = db.session.scalars(select(Department).where(Department.code == "CS")).one()
        people = [
            HallUser(
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
                (OTHER, "李四", "student"),
                (COUNSELLOR, "王老师", "staff"),
                (AFFAIRS, "赵老师", "staff"),
                (ADMIN, "学校管理员", "staff"),
            ]
        ]
        db.session.add_all(people)
        db.session.flush()
        db.session.add_all(
            [
                Position(
                    scim_id="pos-cs-head",
                    department_id=college.id,
                    kind="head",
                    title="院长",
                    holders=[people[2]],
                ),
                RoleGrant(account=AFFAIRS, role="student-affairs", granted_by="test"),
            ]
        )
        db.session.commit()
    yield app


def user_id(app: Flask, account: str) -> int:
    """The hall user id of an account."""
    with app.app_context():
        return int(db.session.scalars(select(HallUser.id).where(HallUser.account == account)).one())


def signed_in(app: Flask, account: str) -> FlaskClient:
    """A browser signed in to the hall as ``account``."""
    client = app.test_client()
    sign_in_as(app, client, user_id(app, account))
    return client


def service_id(app: Flask, title: str) -> int:
    """The id of a demo service."""
    with app.app_context():
        return int(db.session.scalars(select(Service.id).where(Service.title == title)).one())


def page_fields(html: str) -> dict[str, str]:
    """The hidden csrf_token and form_version (and draft_id) of a form page."""
    found = {}
    for name in ("csrf_token", "form_version", "draft_id"):
        match = re.search(rf'name="{name}" value="([^"]*)"', html)
        if match:
            found[name] = match.group(1)
    return found


def field_block(html: str, name: str) -> str:
    """The HTML of one field, up to the next field."""
    start = html.index(f'data-field="{name}"')
    following = html.find("data-field=", start + 1)
    return html[start : following if following != -1 else len(html)]


def leave(**changes: Any) -> dict[str, Any]:
    """A correctly filled 学生请假 as a browser posts it."""
    data: dict[str, Any] = {
        "leave_type": "病假",
        "period-start": "2026-12-01",
        "period-end": "2026-12-02",
        "leaves_campus": "否",
        "reason": "发烧，需要去校医院就诊休息。",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def post_form(
    client: FlaskClient, path: str, fields: dict[str, Any], action: str = "submit", **hidden: str
) -> Any:
    """Open the form page, then post ``fields`` with its hidden values (multipart)."""
    page = client.get(path)
    assert page.status_code == 200, page.text
    data = {**page_fields(page.text), **hidden, **fields, "action": action}
    return client.post(
        path.split("?")[0], data=data, content_type="multipart/form-data", follow_redirects=False
    )


def applications(app: Flask) -> list[Application]:
    """Every stored application."""
    with app.app_context():
        rows = list(db.session.scalars(select(Application).order_by(Application.id)))
        db.session.expunge_all()
        return rows


def apply_path(app: Flask, title: str = "学生请假") -> str:
    """The form page of a service."""
    return f"/services/{service_id(app, title)}/apply"


# --------------------------------------------------------------------------- filling in


def test_guide_button_opens_the_form_with_profile_fields_filled(hall: Flask) -> None:
    """在线办理 on 学生请假's guide leads to its form; 姓名, 学号, 学院 come from the profile."""
    client = signed_in(hall, STUDENT)
    guide = client.get(f"/services/{service_id(hall, '学生请假')}")
    assert f'href="{apply_path(hall)}"' in guide.text
    page = client.get(apply_path(hall))
    assert page.status_code == 200
    assert "张三" in page.text and STUDENT in page.text and "计算机与通信学院" in page.text
    assert "来自个人信息，不可修改" in page.text
    assert 'enctype="multipart/form-data"' in page.text
    assert not re.search(r'<input[^>]+name="name"', page.text)  # no input for a profile field


def test_signed_out_visitor_is_sent_to_sign_in_first(hall: Flask) -> None:
    """The form page needs a signed-in applicant."""
    response = hall.test_client().get(apply_path(hall))
    assert response.status_code == 302
    assert "/login?next=" in response.headers["Location"]


def test_service_without_online_form_has_no_form_page(hall: Flask) -> None:
    """A service without a form definition answers 404 with a message, not a 500."""
    client = signed_in(hall, STUDENT)
    with hall.app_context():
        without = db.session.scalars(
            select(Service.id).where(Service.title.not_in([d["title"] for d in DEMOS.values()]))
        ).first()
    response = client.get(f"/services/{without}/apply")
    assert response.status_code == 404
    assert "尚未开通在线办理" in response.text


def test_mistakes_are_all_shown_next_to_their_fields_and_nothing_typed_is_lost(
    hall: Flask,
) -> None:
    """Wrong dates, a missing type and a missing destination: every error at once, data kept."""
    client = signed_in(hall, STUDENT)
    response = post_form(
        client,
        apply_path(hall),
        leave(
            leave_type=None,
            **{"period-start": "2026-12-05", "period-end": "2026-12-01"},
            leaves_campus="是",
            reason="回家处理家中急事，需要离校几天。",
        ),
    )
    assert response.status_code == 422
    html = response.text
    assert "有 3 项需要修改" in html
    for field, message in [
        ("leave_type", "请选择此项"),
        ("period", "结束日期不能早于开始日期"),
        ("destination", "此项为必填项"),
    ]:
        assert message in field_block(html, field), field
    # 请假天数 is counted from the dates: no second message for what the dates already say.
    days = field_block(html, "days")
    assert "（未填写）" in days and "has-error" not in days
    assert "回家处理家中急事，需要离校几天。" in html
    assert 'value="2026-12-05"' in html and 'value="2026-12-01"' in html
    assert re.search(r'value="是" checked', html)
    assert applications(hall) == []


def test_table_rows_are_kept_when_the_form_has_errors(hall: Flask) -> None:
    """因公出国: typed 行程安排 rows come back in their cells when the form is refused."""
    client = signed_in(hall, ADMIN)
    response = post_form(
        client,
        apply_path(hall, "教职工因公出国(境)审批表"),
        {
            "itinerary-0-date": "2026-12-03",
            "itinerary-0-country": "德国",
            "itinerary-0-city": "柏林",
            "itinerary-1-country": "法国",
            "id_number": "12345",
        },
    )
    assert response.status_code == 422
    assert 'value="柏林"' in response.text and 'value="法国"' in response.text
    assert "请输入18位身份证号" in response.text
    assert "第2行“日期”：此项为必填项" in response.text


def test_profile_fields_cannot_be_changed_by_posting_them(hall: Flask) -> None:
    """A posted 姓名 or 学号 is ignored: the application carries the applicant's own."""
    client = signed_in(hall, STUDENT)
    response = post_form(
        client, apply_path(hall), leave(name="冒名顶替", student_no="9999", phone="110")
    )
    assert response.status_code == 302
    (application,) = applications(hall)
    assert application.applicant == STUDENT
    assert application.data["name"] == "张三"
    assert application.data["student_no"] == STUDENT
    assert application.data["phone"] == "13912345678"
    assert application.data["department"] == "计算机与通信学院"


def test_submission_leads_to_a_confirmation_linking_the_application(hall: Flask) -> None:
    """提交: the application starts at the counsellor and 提交成功 links /applications/<id>."""
    client = signed_in(hall, STUDENT)
    response = post_form(client, apply_path(hall), leave())
    (application,) = applications(hall)
    assert response.headers["Location"] == f"/applications/{application.id}/submitted"
    page = client.get(response.headers["Location"])
    assert "提交成功" in page.text
    assert f'href="/applications/{application.id}"' in page.text
    with hall.app_context():
        assert [t.assignee for t in db.session.scalars(select(Task))] == [COUNSELLOR]
    other = signed_in(hall, OTHER)
    assert other.get(f"/applications/{application.id}/submitted").status_code == 404


def test_application_keeps_the_form_version_it_was_started_with(hall: Flask) -> None:
    """The definition changes while the applicant types: the application uses the old version."""
    client = signed_in(hall, STUDENT)
    path = apply_path(hall)
    page = client.get(path)
    started = page_fields(page.text)
    with hall.app_context():
        sid = service_id(hall, "学生请假")
        old = ops.latest_form(sid)
        assert old is not None
        schema = {
            **old.schema,
            "properties": {**old.schema["properties"], "guardian": {"type": "string"}},
            "required": [*old.schema["required"], "guardian"],
        }
        ui = {**old.ui, "order": [*old.ui["order"], "guardian"]}
        new = ops.save_form_definition(sid, schema, ui, actor="admin")
        old_id, new_id = old.id, new.id
    assert started["form_version"] == str(old_id)
    response = client.post(
        path,
        data={**started, **leave(), "action": "submit"},
        content_type="multipart/form-data",
    )
    assert response.status_code == 302, response.text
    (application,) = applications(hall)
    assert application.form_definition_id == old_id
    assert f'name="form_version" value="{new_id}"' in client.get(path).text


# --------------------------------------------------------------------------- drafts


def test_draft_is_saved_listed_resumed_and_submitted(hall: Flask) -> None:
    """存到我的草稿箱 skips validation; 草稿箱 lists it; resuming refills it; submitting ends it."""
    client = signed_in(hall, STUDENT)
    path = apply_path(hall)
    saved = post_form(client, path, {"reason": "半成品", "period-start": "很多"}, action="draft")
    assert saved.status_code == 302 and saved.headers["Location"] == "/drafts"
    listing = client.get("/drafts")
    assert "“学生请假”已存到草稿箱。" in listing.text
    with hall.app_context():
        (draft,) = drafts_of(STUDENT)
        draft_id = draft.id
        assert draft.data == {"reason": "半成品", "period": {"start": "很多"}}
    assert f'href="/drafts/{draft_id}"' in listing.text
    resumed = client.get(f"/drafts/{draft_id}", follow_redirects=True)
    assert "半成品" in resumed.text and 'value="很多"' in resumed.text
    assert f'name="draft_id" value="{draft_id}"' in resumed.text

    again = post_form(client, f"{path}?draft={draft_id}", leave(reason="写完了"), action="draft")
    assert again.status_code == 302
    with hall.app_context():
        assert [d.data["reason"] for d in drafts_of(STUDENT)] == ["写完了"]  # updated, not copied

    done = post_form(client, f"{path}?draft={draft_id}", leave(reason="写完了"))
    assert done.status_code == 302
    with hall.app_context():
        assert drafts_of(STUDENT) == []
    assert applications(hall)[0].data["reason"] == "写完了"


def test_resumed_draft_keeps_its_form_version(hall: Flask) -> None:
    """A draft begun on version 1 reopens on version 1 after the form changed."""
    client = signed_in(hall, STUDENT)
    post_form(client, apply_path(hall), {"reason": "草稿"}, action="draft")
    with hall.app_context():
        sid = service_id(hall, "学生请假")
        old = ops.latest_form(sid)
        assert old is not None
        ops.save_form_definition(sid, old.schema, old.ui, actor="admin")
        (draft,) = drafts_of(STUDENT)
        draft_id, old_id = draft.id, old.id
    page = client.get(f"/drafts/{draft_id}", follow_redirects=True)
    assert f'name="form_version" value="{old_id}"' in page.text
    assert "该表单已更新" in page.text
    post_form(client, f"{apply_path(hall)}?draft={draft_id}", leave())
    assert applications(hall)[0].form_definition_id == old_id


def test_draft_is_deleted_with_csrf_and_only_by_its_owner(hall: Flask) -> None:
    """删除 needs the page's CSRF token; someone else's draft looks missing."""
    client = signed_in(hall, STUDENT)
    post_form(client, apply_path(hall), {"reason": "不要了"}, action="draft")
    with hall.app_context():
        draft_id = drafts_of(STUDENT)[0].id
    other = signed_in(hall, OTHER)
    assert other.get(f"/drafts/{draft_id}").status_code == 404
    assert other.get(f"{apply_path(hall)}?draft={draft_id}").status_code == 404
    assert "草稿箱是空的" in other.get("/drafts").text
    other_page = other.get(apply_path(hall))
    other_token = page_fields(other_page.text)["csrf_token"]
    refused = other.post(f"/drafts/{draft_id}/delete", data={"csrf_token": other_token})
    assert refused.status_code == 404
    assert client.post(f"/drafts/{draft_id}/delete").status_code == 400  # no CSRF token
    token = page_fields(client.get("/drafts").text)["csrf_token"]
    deleted = client.post(f"/drafts/{draft_id}/delete", data={"csrf_token": token})
    assert deleted.status_code == 302
    assert "已删除“学生请假”的草稿。" in client.get("/drafts").text
    with hall.app_context():
        assert db.session.scalars(select(Draft)).all() == []


def test_oversized_draft_is_refused_with_a_message(hall: Flask) -> None:
    """A draft skips validation but not the size limit; what was typed stays on the page."""
    client = signed_in(hall, STUDENT)
    response = post_form(client, apply_path(hall), {"reason": "长" * 100_000}, action="draft")
    assert response.status_code == 422
    assert "草稿内容过多" in response.text
    with hall.app_context():
        assert drafts_of(STUDENT) == []


# --------------------------------------------------------------------------- attachments


def upload(name: str, content: bytes) -> tuple[io.BytesIO, str]:
    """A file as the test client posts it."""
    return io.BytesIO(content), name


def test_attachment_is_stored_outside_the_web_root_under_a_random_name(
    hall: Flask, tmp_path: Path
) -> None:
    """The PDF is kept with its metadata; the stored file's name says nothing about it."""
    client = signed_in(hall, STUDENT)
    response = post_form(
        client, apply_path(hall), {"attachments-upload": upload("医院证明.pdf", PDF)}, "draft"
    )
    assert response.status_code == 302
    with hall.app_context():
        (attachment,) = db.session.scalars(select(Attachment)).all()
        assert attachment.owner == STUDENT
        assert attachment.original_name == "医院证明.pdf"
        assert attachment.size == len(PDF)
        assert attachment.content_type == "application/pdf"
        assert len(attachment.sha256) == 64
        assert attachment.application_id is None
        stored = files.storage_path(tmp_path / "attachments", attachment.storage_name)
        assert "医院" not in attachment.storage_name
        assert drafts_of(STUDENT)[0].data["attachments"] == [str(attachment.id)]
    assert stored.read_bytes() == PDF
    resumed = client.get(f"/drafts/{drafts_of_id(hall)}", follow_redirects=True)
    assert "医院证明.pdf" in resumed.text


def drafts_of_id(app: Flask) -> int:
    """The student's only draft."""
    with app.app_context():
        return drafts_of(STUDENT)[0].id


def test_too_large_and_forbidden_files_are_refused_with_messages_keeping_the_form(
    hall: Flask,
) -> None:
    """Over the size limit, a forbidden type, a renamed program: clear messages, data kept."""
    client = signed_in(hall, STUDENT)
    path = apply_path(hall)
    big = post_form(
        client, path, leave(**{"attachments-upload": upload("大.pdf", PDF + b"0" * MAX_BYTES)})
    )
    assert big.status_code == 422
    assert "“大.pdf”超过了 64 KB 的大小上限" in big.text
    assert "发烧，需要去校医院就诊休息。" in big.text
    exe = post_form(client, path, leave(**{"attachments-upload": upload("a.exe", b"MZ\x90\x00")}))
    assert "“a.exe”的文件类型不允许上传" in exe.text
    fake = post_form(client, path, leave(**{"attachments-upload": upload("证明.pdf", b"MZ\x90")}))
    assert "“证明.pdf”的内容不是 PDF 文件" in fake.text
    assert 'value="2026-12-01"' in fake.text
    assert applications(hall) == []
    with hall.app_context():
        assert db.session.scalars(select(Attachment)).all() == []


def test_good_upload_survives_another_fields_error(hall: Flask) -> None:
    """A form refused for a missing field keeps the file just uploaded (as its id)."""
    client = signed_in(hall, STUDENT)
    response = post_form(
        client, apply_path(hall), leave(reason=None, **{"attachments-upload": upload("x.png", PNG)})
    )
    assert response.status_code == 422
    with hall.app_context():
        (attachment,) = db.session.scalars(select(Attachment)).all()
    assert re.search(rf'name="attachments" value="{attachment.id}" checked', response.text)
    assert "x.png" in response.text


def test_someone_elses_attachment_id_is_refused(hall: Flask) -> None:
    """Posting another person's attachment id does not put it in one's application."""
    other = signed_in(hall, OTHER)
    post_form(other, apply_path(hall), {"attachments-upload": upload("他的.pdf", PDF)}, "draft")
    with hall.app_context():
        (theirs,) = db.session.scalars(select(Attachment)).all()
    client = signed_in(hall, STUDENT)
    response = post_form(client, apply_path(hall), leave(attachments=str(theirs.id)))
    assert response.status_code == 422
    assert "有附件无法使用" in response.text
    assert applications(hall) == []
    assert status_of(client, f"/attachments/{theirs.id}") == 404


def status_of(client: FlaskClient, url: str) -> int:
    """The status of a GET, its response closed (downloads hold their file open)."""
    response = client.get(url)
    response.close()
    return int(response.status_code)


def test_attachment_downloads_only_for_people_who_may_see_the_application(hall: Flask) -> None:
    """Before submission: the uploader only; afterwards: applicant, approver, CC, hall admin."""
    client = signed_in(hall, STUDENT)
    post_form(
        client, apply_path(hall), {"attachments-upload": upload("医院证明.pdf", PDF)}, "draft"
    )
    with hall.app_context():
        (attachment,) = db.session.scalars(select(Attachment)).all()
    url = f"/attachments/{attachment.id}"
    own = client.get(url)
    assert own.status_code == 200 and own.get_data() == PDF
    own.close()
    assert own.headers["Content-Type"] == "application/pdf"
    assert own.headers["X-Content-Type-Options"] == "nosniff"
    disposition = own.headers["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert "filename*=UTF-8''%E5%8C%BB%E9%99%A2%E8%AF%81%E6%98%8E.pdf" in disposition
    for account in (COUNSELLOR, ADMIN, OTHER):
        assert status_of(signed_in(hall, account), url) == 404, account

    resumed = f"{apply_path(hall)}?draft={drafts_of_id(hall)}"
    assert status_of(client, resumed) == 200
    post_form(client, resumed, leave(attachments=str(attachment.id)))  # the ticked file
    (application,) = applications(hall)
    assert application.data["attachments"] == [str(attachment.id)]
    with hall.app_context():
        assert db.session.get(Attachment, attachment.id).application_id == application.id
        task = db.session.scalars(select(Task)).one()
    assert status_of(signed_in(hall, COUNSELLOR), url) == 200
    assert status_of(signed_in(hall, ADMIN), url) == 200
    assert status_of(signed_in(hall, OTHER), url) == 404
    assert status_of(signed_in(hall, AFFAIRS), url) == 404
    with hall.app_context():
        outcome = ops.act(application.id, engine.Approve(COUNSELLOR, task.engine_id, "同意"))
        assert isinstance(outcome, engine.Outcome)
        assert [c.recipient for c in db.session.scalars(select(CarbonCopy))] == [AFFAIRS]
    assert status_of(signed_in(hall, AFFAIRS), url) == 200
    with hall.app_context():
        readers = db.session.scalars(
            select(HallAuditEvent.actor).where(HallAuditEvent.action == "attachment.download")
        ).all()
    assert sorted(readers) == sorted([COUNSELLOR, ADMIN, AFFAIRS])  # not the uploader's own


def test_request_over_the_size_limit_gets_a_friendly_413_page(hall: Flask) -> None:
    """More than the request limit: 413 with an explanation, not a 500."""
    client = signed_in(hall, STUDENT)
    limit = hall.config["MAX_CONTENT_LENGTH"]
    assert limit == 5 * MAX_BYTES + 1024 * 1024
    body = b"--x\r\n" + b"P" * limit + b"\r\n--x--\r\n"
    response = client.post(
        apply_path(hall), data=body, content_type="multipart/form-data; boundary=x"
    )
    assert response.status_code == 413
    assert "上传的文件太大" in response.text
    assert "每个附件不超过 64 KB" in response.text


def test_file_types_are_told_by_their_content() -> None:
    """Magic bytes decide: Office files are ZIPs with Word or Excel parts; .doc is OLE2."""

    def archive(*names: str) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as z:
            for name in names:
                z.writestr(name, "x")
        return buffer.getvalue()

    docx = archive("[Content_Types].xml", "word/document.xml")
    xlsx = archive("[Content_Types].xml", "xl/workbook.xml")
    plain = archive("readme.txt")
    assert files.content_matches("docx", docx) and not files.content_matches("xlsx", docx)
    assert files.content_matches("xlsx", xlsx) and not files.content_matches("docx", plain)
    assert files.content_matches("zip", plain) and files.content_matches("zip", docx)
    assert files.content_matches("doc", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 8)
    assert files.content_matches("jpg", b"\xff\xd8\xff\xe0") and not files.content_matches(
        "png", b"\xff\xd8\xff\xe0"
    )
    assert not files.content_matches("zip", b"PK\x03\x04 broken")
    with pytest.raises(ValueError, match="unknown types exe"):
        files.parse_attachment_types("pdf,exe")
    assert files.parse_attachment_types(" PDF, .png ") == ("pdf", "png")


# --------------------------------------------------------------------------- resubmission


def submitted_and_returned(app: Flask, client: FlaskClient) -> Application:
    """The student's leave, submitted and returned (退回) by the counsellor."""
    post_form(client, apply_path(app), leave())
    (application,) = applications(app)
    with app.app_context():
        task = db.session.scalars(select(Task)).one()
        result = ops.act(
            application.id, engine.Return(COUNSELLOR, task.engine_id, "请补充医院证明")
        )
        assert isinstance(result, engine.Outcome)
    return applications(app)[0]


def test_returned_application_is_edited_and_resubmitted(hall: Flask) -> None:
    """退回 → the applicant sees the old values, fixes them (validated) and resubmits."""
    client = signed_in(hall, STUDENT)
    application = submitted_and_returned(hall, client)
    assert application.status == "returned"
    path = f"/applications/{application.id}/resubmit"
    page = client.get(path)
    assert page.status_code == 200
    assert "发烧，需要去校医院就诊休息。" in page.text and "重新提交" in page.text
    assert "存到我的草稿箱" not in page.text
    wrong = post_form(client, path, leave(**{"period-end": "2026-11-30"}))
    assert wrong.status_code == 422 and "结束日期不能早于开始日期" in wrong.text
    done = post_form(
        client,
        path,
        leave(reason="已补充证明", **{"attachments-upload": upload("证明.pdf", PDF)}),
    )
    assert done.status_code == 302 and done.headers["Location"] == f"/applications/{application.id}"
    (again,) = applications(hall)
    assert again.status == "running" and again.data["reason"] == "已补充证明"
    with hall.app_context():
        (attachment,) = db.session.scalars(select(Attachment)).all()
        assert attachment.application_id == application.id
        assert db.session.scalars(select(Task).where(Task.status == "open")).one().assignee == (
            COUNSELLOR
        )
    assert client.get(path).status_code == 409  # running again: nothing to resubmit


def test_only_the_applicant_may_resubmit(hall: Flask) -> None:
    """Someone else gets 404 for another person's returned application."""
    client = signed_in(hall, STUDENT)
    application = submitted_and_returned(hall, client)
    other = signed_in(hall, OTHER)
    assert other.get(f"/applications/{application.id}/resubmit").status_code == 404


def test_form_page_in_english(hall: Flask) -> None:
    """?lang=en: the page still renders (labels come from the definition)."""
    client = signed_in(hall, STUDENT)
    assert client.get(apply_path(hall) + "?lang=en").status_code == 200


def test_demo_forms_have_their_entry_on_the_guide(hall: Flask) -> None:
    """The five demo services with forms open /services/<id>/apply from 在线办理."""
    with hall.app_context():
        entries = {
            s.title: s.entry_url
            for s in db.session.scalars(
                select(Service).where(Service.title.in_([d["title"] for d in DEMOS.values()]))
            )
        }
    assert len(entries) == 5
    for title, url in entries.items():
        assert url == f"/services/{service_id(hall, title)}/apply"


def test_form_definition_id_of_another_service_is_not_used(hall: Flask) -> None:
    """A posted form_version of a different service falls back to this service's form."""
    client = signed_in(hall, STUDENT)
    other_form = service_id(hall, "在读证明")
    with hall.app_context():
        foreign = ops.latest_form(other_form)
        assert isinstance(foreign, FormDefinition)
        foreign_id = foreign.id
    response = post_form(client, apply_path(hall), {**leave(), "form_version": str(foreign_id)})
    assert response.status_code == 302
    assert applications(hall)[0].form_definition_id != foreign_id


def test_odd_ids_in_urls_and_posts_are_refused_calmly(hall: Flask) -> None:
    """Huge, negative or non-ASCII ids: a 404 or a field message, never a 500."""
    client = signed_in(hall, STUDENT)
    for draft in ("99999999999999999999", "²", "-1", "abc"):
        assert client.get(f"{apply_path(hall)}?draft={draft}").status_code == 404, draft
    response = post_form(
        client,
        apply_path(hall),
        leave(attachments="99999999999999999999", form_version="²", draft_id="1e9"),
    )
    assert response.status_code == 422
    assert "有附件无法使用" in response.text
    assert status_of(client, "/attachments/99999999999999999999") == 404


#: A flow whose one approver (导师审批) the applicant chooses (自选审批人).
TUTOR_CHOSEN_BY_APPLICANT: dict[str, Any] = {
    "nodes": [
        {"id": "start", "kind": "start", "name": "申请人"},
        {
            "id": "tutor",
            "kind": "approver",
            "name": "导师审批",
            "approver": {"type": "applicant_choice"},
            "mode": "any",
        },
        {"id": "end", "kind": "end", "name": "结束"},
    ]
}


def test_applicant_chooses_approvers_where_the_flow_asks(hall: Flask) -> None:
    """自选审批人: asked for by the form, checked, kept in a draft and used at submission."""
    sid = service_id(hall, "在读证明")
    with hall.app_context():
        ops.save_flow_definition(
            sid,
            TUTOR_CHOSEN_BY_APPLICANT,
            actor="admin",
        )
    client = signed_in(hall, STUDENT)
    path = apply_path(hall, "在读证明")
    certificate = {"purpose": "实习就业", "copies": "1", "languages": "中文"}
    assert "导师审批" in client.get(path).text
    missing = post_form(client, path, certificate)
    assert missing.status_code == 422
    assert "请为“导师审批”选择审批人" in field_block(missing.text, "chosen-tutor")
    unknown = post_form(client, path, {**certificate, "chosen-tutor": "T9999"})
    assert "找不到工号或学号为 T9999 的人员" in unknown.text
    assert 'value="T9999"' in unknown.text
    post_form(client, path, {"chosen-tutor": COUNSELLOR}, action="draft")
    resumed = client.get(f"/drafts/{drafts_of_id(hall)}", follow_redirects=True)
    assert f'name="chosen-tutor" value="{COUNSELLOR}"' in resumed.text
    done = post_form(
        client, f"{path}?draft={drafts_of_id(hall)}", {**certificate, "chosen-tutor": COUNSELLOR}
    )
    assert done.status_code == 302, done.text
    with hall.app_context():
        assert [t.assignee for t in db.session.scalars(select(Task))] == [COUNSELLOR]


def test_purge_removes_old_uploads_no_application_or_draft_holds(
    hall: Flask, tmp_path: Path
) -> None:
    """`flask --app hall attachments purge`: the abandoned upload goes, kept ones stay."""
    client = signed_in(hall, STUDENT)
    path = apply_path(hall)
    post_form(client, path, {"attachments-upload": upload("草稿里的.pdf", PDF)}, "draft")
    post_form(client, path, leave(**{"attachments-upload": upload("已提交.pdf", PDF)}))
    refused = {"period-end": "2026-11-30", "attachments-upload": upload("放弃.png", PNG)}
    post_form(client, path, leave(**refused))
    with hall.app_context():
        rows = {a.original_name: a for a in db.session.scalars(select(Attachment))}
        assert set(rows) == {"草稿里的.pdf", "已提交.pdf", "放弃.png"}
        abandoned = files.storage_path(tmp_path / "attachments", rows["放弃.png"].storage_name)
        assert abandoned.exists()
        runner = hall.test_cli_runner()
        fresh = runner.invoke(args=["attachments", "purge", "--json"])
        assert fresh.exit_code == 0 and '"removed": 0' in fresh.output  # all younger than 7 days
        db.session.execute(
            Attachment.__table__.update().values(created_at=utcnow() - timedelta(days=30))
        )
        db.session.commit()
        result = runner.invoke(args=["attachments", "purge", "--days", "7"])
        assert result.exit_code == 0, result.output
        assert "removed 1 unsubmitted attachments" in result.output
        left = set(db.session.scalars(select(Attachment.original_name)))
    assert left == {"草稿里的.pdf", "已提交.pdf"}
    assert not abandoned.exists()


def test_fields_hidden_at_the_start_are_neither_shown_nor_taken(hall: Flask) -> None:
    """因公出国: 所在单位意见 is for approvers; the applicant neither sees nor fills it."""
    client = signed_in(hall, ADMIN)
    path = apply_path(hall, "教职工因公出国(境)审批表")
    page = client.get(path).text
    assert "所在单位意见" not in page and 'name="department_opinion"' not in page
    response = post_form(client, path, {"department_opinion": "同意", "ethnicity": "汉族"}, "draft")
    assert response.status_code == 302
    with hall.app_context():
        assert drafts_of(ADMIN)[0].data == {"ethnicity": "汉族"}


def test_uploads_per_hour_are_limited(hall: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the hourly upload allowance a file is refused with a message, the form kept."""
    monkeypatch.setattr(attachments, "UPLOADS_PER_HOUR", 2)
    client = signed_in(hall, STUDENT)
    path = apply_path(hall)
    for name in ("1.png", "2.png"):
        post_form(client, path, {"attachments-upload": upload(name, PNG)}, "draft")
    refused = post_form(client, path, leave(**{"attachments-upload": upload("3.png", PNG)}))
    assert refused.status_code == 422
    assert "“3.png”未上传：一小时内上传的文件过多" in refused.text
    assert "发烧，需要去校医院就诊休息。" in refused.text
    with hall.app_context():
        assert len(db.session.scalars(select(Attachment)).all()) == 2
    other = signed_in(hall, OTHER)  # counted per person
    assert (
        post_form(other, path, leave(**{"attachments-upload": upload("4.png", PNG)})).status_code
        == 302
    )


def test_an_old_form_version_the_new_flow_cannot_route_is_not_submitted(hall: Flask) -> None:
    """学生请假 gains 监护人 and a flow that sends applications naming one to the dean: a page
    still on the old version (no such field) cannot submit past that step. It is shown the new
    version with what was typed, and nothing is submitted."""
    client = signed_in(hall, STUDENT)
    path = apply_path(hall)
    started = page_fields(client.get(path).text)
    with hall.app_context():
        sid = service_id(hall, "学生请假")
        old, flow = ops.latest_form(sid), ops.latest_flow(sid)
        assert old is not None and flow is not None
        schema = {
            **old.schema,
            "properties": {**old.schema["properties"], "guardian": {"type": "string"}},
        }
        new = ops.save_form_definition(
            sid, schema, {**old.ui, "order": [*old.ui["order"], "guardian"]}, actor="admin"
        )
        nodes = list(flow.definition["nodes"])
        nodes.insert(
            -1,
            {
                "id": "guardian-check",
                "kind": "condition",
                "name": "监护人",
                "branches": [
                    {
                        "id": "no-guardian",
                        "name": "未填监护人",
                        "priority": 1,
                        "conditions": [{"field": "guardian", "op": "eq", "value": ""}],
                        "nodes": [],
                    },
                    {"id": "other", "name": "其他", "default": True, "nodes": []},
                ],
            },
        )
        ops.save_flow_definition(sid, {**flow.definition, "nodes": nodes}, actor="admin")
        new_id = new.id
    response = client.post(
        path, data={**started, **leave(), "action": "submit"}, content_type="multipart/form-data"
    )
    assert response.status_code == 409
    assert "表单已更新" in response.text
    assert f'name="form_version" value="{new_id}"' in response.text
    assert 'name="guardian"' in response.text
    assert applications(hall) == []
