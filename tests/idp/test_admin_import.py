"""批量导入 (/admin/import): an admin uploads the HR export and reads the per-row report."""

from __future__ import annotations

import html
import io
import re

from flask import Flask
from werkzeug.test import EnvironBuilder

from idp.directory.models import User, UserStatus
from idp.extensions import db
from tests.idp.admin_support import Signed, admin_fixture, desk_fixture  # noqa: F401
from tests.idp.conftest import ID_NUMBER, csrf_token
from tests.idp.console_support import events

IMPORT = "/admin/import"
CSV = (
    "account,name,kind,department,department_name,id_number\n"
    f"2025000001,王五,学生,CS,计算机学院,{ID_NUMBER}\n"
    ",没有学号,学生,CS,计算机学院,\n"
    "2025000002,赵六,教职工,CS,计算机学院,\n"
).encode()
#: Line 2 names a department that does not exist, line 4 repeats line 3's account.
BAD_ROWS = (
    "account,name,kind,department\n"
    "2025000011,王五,学生,NOPE\n"
    "2025000012,赵六,学生,\n"
    "2025000012,赵六,学生,\n"
).encode()
CJK = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]")


def _upload(signed: Signed, data: bytes, filename: str, **fields: str) -> tuple[int, str]:
    token = csrf_token(signed.client, IMPORT)
    builder = EnvironBuilder(
        path=IMPORT,
        method="POST",
        data={"csrf_token": token, "file": (io.BytesIO(data), filename), **fields},
        content_type="multipart/form-data",
    )
    environ = builder.get_environ()
    try:  # close the spooled body here: a refused big upload is never read to its end
        response = signed.client.open(environ)
        return response.status_code, response.get_data(as_text=True)
    finally:
        environ["wsgi.input"].close()
        builder.close()


def _failures(page: str) -> dict[int, str]:
    """The report's failed rows: line → reason, as the admin reads them."""
    table = page[page.index('id="import-failures"') :]
    rows = re.findall(r"<tr><td>(\d+)</td><td>(.*?)</td></tr>", table)
    return {int(line): html.unescape(reason) for line, reason in rows}


def _accounts(app: Flask) -> set[str]:
    with app.app_context():
        return set(db.session.scalars(db.select(User.account)))


def test_admin_imports_csv_and_sees_the_row_report(idp_app: Flask, admin: Signed) -> None:
    """Good rows land (waiting for activation), a bad row is reported by line, audited."""
    status, page = _upload(admin, CSV, "2025级新生.csv", reason="新生入学")
    assert status == 200, page[:2000]
    assert "新建 2 个" in page and "失败 1 行" in page
    assert "<td>3</td>" in page  # the line without an account number
    assert {"2025000001", "2025000002"} <= _accounts(idp_app)
    with idp_app.app_context():
        wang = db.session.scalars(db.select(User).where(User.account == "2025000001")).one()
        assert wang.status is UserStatus.PENDING and wang.department.code == "CS"
    event = events(idp_app, "user.import")[-1]
    assert event["actor_id"] == admin.user.id
    assert event["detail"]["created"] == 2 and event["detail"]["failed"] == 1
    assert event["detail"]["reason"] == "新生入学"

    status, page = _upload(admin, CSV, "again.csv")
    assert "新建 0 个" in page  # re-importing never duplicates


def test_excel_or_other_files_are_refused(idp_app: Flask, admin: Signed) -> None:
    """An .xlsx (a zip) or a non-CSV name is refused with advice; nothing is imported."""
    before = _accounts(idp_app)
    status, page = _upload(admin, b"PK\x03\x04" + b"\x00" * 100, "名单.xlsx")
    assert status == 400 and "只能导入 CSV 文件" in page
    status, page = _upload(admin, CSV, "名单.exe")
    assert status == 400 and "只能导入 CSV 文件" in page
    status, page = _upload(admin, "name,phone\n张三,1\n".encode(), "no-header.csv")
    assert status == 400 and "缺少列" in page
    assert _accounts(idp_app) == before
    assert events(idp_app, "user.import") == []


def test_upload_over_the_limit_is_refused_without_an_error_page(
    idp_app: Flask, admin: Signed
) -> None:
    """A 6 MB upload gets 413 and the size limit in words, never a 500; nothing is imported."""
    big = CSV + b"#" * (6 * 1024 * 1024)
    status, page = _upload(admin, big, "big.csv")
    assert status == 413
    assert "文件过大：最多 5 MB" in page
    assert _accounts(idp_app) == {admin.user.account}


def test_import_page_in_english(idp_app: Flask, admin: Signed) -> None:
    """?lang=en serves the page (its wording falls back to Chinese until translated)."""
    assert admin.client.get(IMPORT + "?lang=en").status_code == 200


def test_english_report_gives_english_reasons(idp_app: Flask, admin: Signed) -> None:
    """In English the per-row reasons are English too: no Chinese but the data itself."""
    admin.client.get(IMPORT + "?lang=en")
    status, page = _upload(admin, BAD_ROWS, "hr.csv")
    assert status == 200, page[:2000]
    assert _failures(page) == {
        2: "Unknown department code NOPE",
        4: "Account 2025000012 duplicates line 3",
    }
    assert not any(CJK.search(reason) for reason in _failures(page).values())
    assert "2025000012" in _accounts(idp_app)

    status, page = _upload(admin, "name,phone\n张三,1\n".encode(), "no-header.csv")
    assert status == 400
    assert "The first row must be the header; missing columns: account" in page


def test_chinese_report_keeps_chinese_reasons(idp_app: Flask, admin: Signed) -> None:
    """The default (Chinese) console shows the same reasons in Chinese."""
    status, page = _upload(admin, BAD_ROWS, "hr.csv")
    assert status == 200, page[:2000]
    assert _failures(page) == {2: "未知部门代码 NOPE", 4: "账号 2025000012 与第 3 行重复"}


def test_help_desk_cannot_import(idp_app: Flask, desk: Signed) -> None:
    """Help desk gets 403; the upload is not read and nobody is created."""
    response = desk.client.get(IMPORT)
    assert response.status_code == 403
    assert "2025000001" not in _accounts(idp_app)
