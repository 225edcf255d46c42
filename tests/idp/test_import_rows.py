"""HR imports row by row: a bad row fails on its own line, whatever is wrong with it."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select

from idp.directory import importing
from idp.directory.importing import import_users
from idp.directory.models import Department, User, UserStatus, utcnow
from idp.directory.operations import DirectoryError, ensure_department, find_user_by_account
from idp.extensions import db
from tests.idp.conftest import sign_in
from tests.idp.directory_support import HEADER, csv_bytes, ssha, user

NAMING_HEADER = "account,name,kind,department,department_name"
QUOTE_REASON = "引号不成对：该行有未闭合的双引号（单元格内不能换行）"


@pytest.fixture
def app(idp_app: Flask) -> Iterator[Flask]:
    """An IdP with an app context and two departments."""
    with idp_app.app_context():
        ensure_department("CS", "计算机与通信学院")
        ensure_department("HR", "人事处")
        db.session.commit()
        yield idp_app


def user_count() -> int:
    """How many accounts the directory holds."""
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(User)) or 0


# --- department names ------------------------------------------------------------------------


def test_overlong_new_department_name_fails_its_row_and_the_rest_lands(app: Flask) -> None:
    """A 201-character department name is that row's problem, not the whole file's."""
    report = import_users(
        csv_bytes(
            "2022001,张三,,,",
            f"2022002,王五,,NEWDEPT,{'部' * 201}",
            "2022003,赵六,,,",
            header=NAMING_HEADER,
        )
    )
    assert (report.created, report.updated, report.unchanged) == (2, 0, 0)
    assert [(f.line, f.reason) for f in report.failed] == [(3, "部门名称须为 1–200 个字符")]
    assert db.session.scalar(select(Department).where(Department.code == "NEWDEPT")) is None


def test_cli_import_with_overlong_department_name_prints_the_summary(
    app: Flask, tmp_path: Path
) -> None:
    """``flask users import`` finishes and reports the row instead of crashing."""
    path = tmp_path / "hr.csv"
    path.write_bytes(
        csv_bytes(
            "2022004,张三,,,",
            f"2022005,王五,,NEWDEPT,{'部' * 201}",
            header=NAMING_HEADER,
        )
    )
    result = app.test_cli_runner().invoke(args=["users", "import", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert '"line": 3' in result.output
    assert user_count() == 1


def test_department_error_while_writing_fails_only_that_row(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should creating a department be refused at write time, the row fails, not the import."""

    def refuse(code: str, name: str) -> Department:
        raise DirectoryError("部门被拒绝")

    monkeypatch.setattr(importing, "ensure_department", refuse)
    rows = ("2022006,张三,,,", "2022007,王五,,AI,人工智能学院", "2022008,赵六,,CS,")
    report = import_users(csv_bytes(*rows, header=NAMING_HEADER))
    assert report.created == 2
    assert [(f.line, f.reason) for f in report.failed] == [(3, "部门被拒绝")]


# --- quotes and line breaks ------------------------------------------------------------------


def test_unclosed_quote_fails_its_line_and_the_next_lines_land(app: Flask) -> None:
    """A stray quote spoils only its own line; the lines after it are read as usual."""
    report = import_users(
        csv_bytes(
            '2022010,"张三,,,,,,',
            "2022011,李四,,,,,,",
            "2022012,王五,,,,,,",
            "x,赵六,,,,,,",
        )
    )
    assert report.created == 2
    assert [f.line for f in report.failed] == [2, 5]
    assert report.failed[0].reason == QUOTE_REASON and "账号" in report.failed[1].reason
    assert find_user_by_account("2022011") is not None


def test_unclosed_quote_on_the_last_line_without_line_break_is_reported(app: Flask) -> None:
    """The file's last line, even without a final line break, cannot hide a stray quote."""
    report = import_users((HEADER + '\r\n2022013,李四,,,,,,\r\n2022014,"王五,,,,,,').encode())
    assert report.created == 1
    assert [(f.line, f.reason) for f in report.failed] == [(3, QUOTE_REASON)]


def test_cell_spanning_two_lines_fails_on_its_first_line_and_numbers_stay_physical(
    app: Flask,
) -> None:
    """A quoted line break is refused; later rows keep the line numbers HR sees."""
    report = import_users(
        csv_bytes('2022015,张三,,,,,,"a', 'b"', "2022016,李四,,,,,bad-email,", "2022017,王五,,,,,,")
    )
    assert report.created == 1
    lines = [f.line for f in report.failed]
    assert lines == [2, 3, 4]
    assert report.failed[0].reason == QUOTE_REASON and "邮箱" in report.failed[2].reason


def test_unclosed_quote_before_thousands_of_rows_loses_none_of_them(app: Flask) -> None:
    """Past the CSV field limit the stray quote used to swallow rows unreported."""
    rows = [f"20230{i:05d},姓名{i},,,,,," for i in range(6000)]
    report = import_users(
        csv_bytes("2022020,张三,,,,,,", '2022021,"李四,,,,,,', *rows, "bad!,坏行,,,,,,")
    )
    assert report.created == 6001
    assert [f.line for f in report.failed] == [3, 6004]
    assert report.failed[0].reason == QUOTE_REASON and "账号" in report.failed[1].reason
    assert user_count() == 6001


# --- legacy hashes ---------------------------------------------------------------------------


def test_reimport_keeps_the_argon2_hash_of_the_first_sign_in(app: Flask) -> None:
    """The nightly export still carries the old hash; the upgraded one must stay."""
    export = csv_bytes(f"T2001,李老师,staff,HR,,,,{ssha('OldPass1234')}")
    import_users(export)
    teacher = user("T2001")
    teacher.phone, teacher.phone_verified_at = "13800000009", utcnow()
    db.session.commit()
    sign_in(app.test_client(), "T2001", "OldPass1234")
    upgraded = user("T2001").password_hash
    assert upgraded is not None and upgraded.startswith("$argon2id$")

    report = import_users(export)
    assert (report.created, report.updated, report.unchanged) == (0, 0, 1)
    assert user("T2001").password_hash == upgraded


def test_reimport_replaces_one_legacy_hash_with_another(app: Flask) -> None:
    """Until the first sign-in, HR's newer legacy hash is the one that counts."""
    import_users(csv_bytes(f"T2002,李老师,staff,HR,,,,{ssha('OldPass1234')}"))
    report = import_users(csv_bytes(f"T2002,李老师,staff,HR,,,,{ssha('NewPass5678')}"))
    assert report.updated == 1
    assert user("T2002").password_hash == ssha("NewPass5678")


@pytest.mark.parametrize(
    "bad",
    [
        "{SSHA}",
        "{SSHA}not-base64!!",
        "{SHA}AAAA",
        "$2b$10$tooshort",
        "$2b$03$" + "a" * 53,
        "pbkdf2_sha256$x$y$z",
        "pbkdf2_sha256$1000$salt$" + base64.b64encode(bytes(15)).decode(),
        "{PBKDF2-SHA256}junk",
        "{PBKDF2-SHA256}1000$c2FsdA$AA",
        "{ARGON2}$argon2id$v=19$m=1024,t=1,p=1$broken",
        "$argon2id$v=19$m=1024,t=1,p=1$c2FsdA$aGFzaA",
    ],
)
def test_malformed_legacy_hash_is_refused_with_its_line(app: Flask, bad: str) -> None:
    """A hash no password could ever match would make an active account nobody can enter."""
    report = import_users(csv_bytes("T2003,张老师,staff,HR,,,,", f"T2004,李老师,staff,HR,,,,{bad}"))
    assert report.created == 1
    assert [(f.line, f.reason) for f in report.failed] == [(3, "无法识别的旧密码哈希格式")]
    assert find_user_by_account("T2004") is None


# --- duplicates ------------------------------------------------------------------------------


def test_corrected_copy_of_a_refused_row_lands(app: Flask) -> None:
    """A copy refused for its department does not make the corrected copy a duplicate."""
    report = import_users(csv_bytes("2022030,张三,,NOPE,,,,", "2022030,张三,,CS,,,,"))
    assert report.created == 1
    assert [(f.line, f.reason) for f in report.failed] == [(2, "未知部门代码 NOPE")]
    department = user("2022030").department
    assert department is not None and department.code == "CS"


def test_department_named_on_an_earlier_row_serves_later_rows(app: Flask) -> None:
    """A department the file creates is known to the rows below it, even in another batch."""
    report = import_users(
        csv_bytes(
            "2022031,张三,,AI,人工智能学院",
            "2022032,李四,,AI,",
            "2022033,王五,,AI,",
            header=NAMING_HEADER,
        ),
        batch_size=1,
    )
    assert (report.created, report.failed) == (3, [])
    assert db.session.scalar(select(func.count()).where(Department.code == "AI")) == 1
    assert user("2022033").status is UserStatus.PENDING


def test_control_characters_in_department_names_and_codes_fail_their_rows(app: Flask) -> None:
    """An export with a tab or an escape sequence in a department's name or code: that row is
    refused with a message saying so, the department is not created, the rest lands."""
    report = import_users(
        csv_bytes(
            "2022011,张三,,,",
            "2022012,王五,,NEWDEPT,计算机\t学院",
            "2022013,赵六,,NEW\x1bDEPT,计算机学院",
            "2022014,孙七,,,",
            header=NAMING_HEADER,
        )
    )
    assert (report.created, report.updated, report.unchanged) == (2, 0, 0)
    assert [(f.line, f.reason) for f in report.failed] == [
        (3, "部门名称含有不可见的控制字符"),
        (4, "部门代码含有不可见的控制字符"),
    ]
    assert sorted(db.session.scalars(select(Department.code))) == ["CS", "HR"]


def test_the_console_keeps_a_tab_out_of_a_department_name(app: Flask) -> None:
    """The same rule for a department made or renamed anywhere else (console, demo)."""
    with pytest.raises(DirectoryError, match="部门名称含有不可见的控制字符"):
        ensure_department("NIC", "网络与\t信息中心")
    with pytest.raises(DirectoryError, match="部门代码含有不可见的控制字符"):
        ensure_department("N\x07IC", "网络与信息中心")
