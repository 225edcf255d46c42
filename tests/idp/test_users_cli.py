"""``flask --app idp users add|import|show``, through Flask's CLI runner."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from flask import Flask

from idp.directory.models import UserStatus
from idp.directory.operations import ensure_department, find_user_by_account
from idp.extensions import db

ADD_KEYS = {"account", "name", "kind", "status", "department", "phone", "email"}
ID_NUMBER = "620102199901011239"


@pytest.fixture
def app(idp_app: Flask) -> Flask:
    """An IdP with the department ``CS``."""
    with idp_app.app_context():
        ensure_department("CS", "计算机与通信学院")
        db.session.commit()
    return idp_app


def run(app: Flask, *args: str) -> Result:
    """Invoke ``flask --app idp users …``."""
    return app.test_cli_runner().invoke(args=["users", *args])


def run_json(app: Flask, *args: str) -> Any:
    """Invoke with ``--json`` and parse the single JSON object printed."""
    result = run(app, *args, "--json")
    assert result.exit_code == 0, result.output
    assert len(result.stdout.strip().splitlines()) == 1
    return json.loads(result.stdout)


def write_csv(path: Path, *rows: str, encoding: str = "utf-8") -> Path:
    """Write an import file with the standard header."""
    header = "account,name,kind,department,id_number,phone,email,legacy_hash"
    path.write_bytes(("\n".join([header, *rows]) + "\n").encode(encoding))
    return path


def test_add_with_password_prints_the_active_account_as_json(app: Flask) -> None:
    """With a password the account is active; the JSON has exactly the documented keys."""
    created = run_json(
        app,
        "add",
        "2021001",
        "--name",
        "张三",
        "--password",
        "Campus2024pass",
        "--department",
        "CS",
        "--phone",
        "199 1234 1339",
        "--email",
        "zhang.san@lut.edu.cn",
        "--id-number",
        ID_NUMBER,
    )
    assert set(created) == ADD_KEYS
    assert created == {
        "account": "2021001",
        "name": "张三",
        "kind": "student",
        "status": "active",
        "department": "CS",
        "phone": "199****1339",
        "email": "z***n@lut.edu.cn",
    }


def test_add_pending_staff_prints_pending_and_stores_nothing_verified(app: Flask) -> None:
    """``--pending`` leaves the account for its owner to activate."""
    created = run_json(app, "add", "T0001", "--name", "李老师", "--kind", "staff", "--pending")
    assert (created["kind"], created["status"], created["phone"]) == ("staff", "pending", None)
    with app.app_context():
        user = find_user_by_account("T0001")
        assert user is not None and user.status is UserStatus.PENDING


def test_add_output_never_shows_password_hash_or_id_number(app: Flask) -> None:
    """Neither the plain nor the JSON output carries secrets."""
    for extra in ((), ("--json",)):
        account = f"20210{len(extra)}9"
        result = run(
            app, "add", account, "--name", "王五", "--password", "Campus2024pass",
            "--id-number", ID_NUMBER, *extra,
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert "argon2" not in result.output and ID_NUMBER not in result.output
        assert "Campus2024pass" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("2021002", "--name", "张三", "--password", "abc"), "密码须同时包含字母和数字"),
        (("2021002", "--name", "张三", "--department", "NOPE"), "未知部门代码 NOPE"),
        (("ab", "--name", "张三"), "账号"),
        (("2021002", "--name", "张三", "--phone", "12345"), "手机号"),
    ],
)
def test_add_refusal_is_one_line_on_stderr_and_exit_1(
    app: Flask, args: tuple[str, ...], message: str
) -> None:
    """A refused account prints one line naming the problem, no traceback."""
    result = run(app, "add", *args)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr and "Traceback" not in result.stderr


def test_add_duplicate_account_fails(app: Flask) -> None:
    """Adding the same account twice fails the second time."""
    assert run(app, "add", "2021003", "--name", "张三").exit_code == 0
    result = run(app, "add", "2021003", "--name", "张三")
    assert result.exit_code == 1 and "已存在" in result.stderr


def test_import_prints_summary_then_failures_by_line(app: Flask, tmp_path: Path) -> None:
    """The summary counts each outcome and lists bad rows as ``line N: reason``."""
    path = write_csv(
        tmp_path / "hr.csv",
        "2021101,张三,student,CS,,,,",
        "2021102,李四,student,XX,,,,",
        "2021103,王五,student,CS,,,,",
    )
    result = run(app, "import", str(path))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "created 2, updated 0, unchanged 0, failed 1",
        "line 3: 未知部门代码 XX",
    ]


def test_cli_reasons_stay_chinese_whatever_the_shell_language(app: Flask, tmp_path: Path) -> None:
    """No request, no console language: the CLI speaks the default locale, Chinese."""
    path = write_csv(
        tmp_path / "hr.csv",
        "2021106,张三,student,XX,,,,",
        "2021107,李四,student,CS,,,,",
        "2021107,李四,student,CS,,,,",
    )
    env = {"LANG": "en_US.UTF-8", "LANGUAGE": "en", "LC_ALL": "en_US.UTF-8"}
    result = app.test_cli_runner().invoke(args=["users", "import", str(path)], env=env)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1:] == [
        "line 2: 未知部门代码 XX",
        "line 4: 账号 2021107 与第 3 行重复",
    ]
    refused = app.test_cli_runner().invoke(
        args=["users", "add", "2021108", "--name", "王五", "--department", "NOPE"], env=env
    )
    assert refused.exit_code == 1 and "未知部门代码 NOPE" in refused.stderr


def test_import_json_reports_counts_and_failed_rows(app: Flask, tmp_path: Path) -> None:
    """``--json`` prints exactly created, updated, unchanged and the failed rows."""
    path = write_csv(tmp_path / "hr.csv", "2021104,张三,student,CS,,,,", "x,李四,,,,,,")
    first = run_json(app, "import", str(path))
    assert set(first) == {"created", "updated", "unchanged", "failed"}
    assert (first["created"], first["updated"], first["unchanged"]) == (1, 0, 0)
    assert [failure["line"] for failure in first["failed"]] == [3]
    assert set(first["failed"][0]) == {"line", "reason"}
    again = run_json(app, "import", str(path))
    assert (again["created"], again["unchanged"]) == (0, 1)


def test_import_reads_a_gbk_file_with_legacy_hashes(app: Flask, tmp_path: Path) -> None:
    """A GBK export with an {SSHA} hash makes the teacher active with the old password."""
    salt = b"salt"
    digest = hashlib.sha1(b"OldPass123" + salt).digest()  # SHA-1: the legacy format itself
    legacy = "{SSHA}" + base64.b64encode(digest + salt).decode()
    path = write_csv(tmp_path / "hr.csv", f"T0002,欧阳老师,教职工,CS,,,,{legacy}", encoding="gbk")
    assert run_json(app, "import", str(path))["created"] == 1
    shown = run_json(app, "show", "T0002")
    assert (shown["name"], shown["status"], shown["password"]) == ("欧阳老师", "active", "legacy")


@pytest.mark.parametrize("content", [None, "2021105,张三\n".encode(), b""])
def test_import_of_missing_or_headerless_file_exits_1(
    app: Flask, tmp_path: Path, content: bytes | None
) -> None:
    """Only an unreadable file or one without the header fails the whole command."""
    path = tmp_path / "hr.csv"
    if content is not None:
        path.write_bytes(content)
    result = run(app, "import", str(path))
    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1


def test_show_masks_identifiers_and_reports_flags(app: Flask) -> None:
    """The help desk sees masked contacts and ID number, and what is verified."""
    run(
        app, "add", "2021106", "--name", "张三", "--password", "Campus2024pass",
        "--department", "CS", "--phone", "19912341339", "--email", "zhang.san@lut.edu.cn",
        "--id-number", ID_NUMBER,
    )  # fmt: skip
    shown = run_json(app, "show", "2021106")
    assert shown == {
        "account": "2021106",
        "name": "张三",
        "kind": "student",
        "status": "active",
        "department": "CS",
        "department_name": "计算机与通信学院",
        "phone": "199****1339",
        "phone_verified": False,
        "email": "z***n@lut.edu.cn",
        "email_verified": False,
        "id_number": "6201**********1239",
        "password": "set",
        "must_change_password": False,
        "roles": [],
    }
    text = run(app, "show", "2021106")
    assert text.exit_code == 0
    assert "6201**********1239" in text.stdout and ID_NUMBER not in text.stdout


def test_show_unknown_account_exits_1(app: Flask) -> None:
    """An unknown account is one line on stderr and exit code 1."""
    result = run(app, "show", "nobody")
    assert result.exit_code == 1
    assert "nobody" in result.stderr and result.stdout == ""


def test_cli_creation_and_import_are_audited(idp_app, tmp_path) -> None:
    """Creating and importing accounts from the command line leaves audit rows."""
    from idp.audit.models import AuditEvent
    from idp.extensions import db

    runner = idp_app.test_cli_runner()
    assert runner.invoke(args=["users", "add", "2024777001", "--name", "周八"]).exit_code == 0
    csv_file = tmp_path / "people.csv"
    csv_file.write_text("account,name\n2024777002,吴九\n", encoding="utf-8")
    assert runner.invoke(args=["users", "import", str(csv_file)]).exit_code == 0
    with idp_app.app_context():
        actions = [e.action for e in db.session.query(AuditEvent).order_by(AuditEvent.id)]
    assert actions == ["user.create", "user.import"]


def test_grant_and_revoke_console_roles_are_shown_and_audited(app: Flask) -> None:
    """`users grant` gives a console role once, `show` lists it, `revoke` takes it back."""
    from idp.audit.models import AuditEvent
    from idp.extensions import db

    run(app, "add", "T3001", "--name", "王老师", "--kind", "staff", "--password", "Campus2024pass")
    granted = run(app, "grant", "T3001", "helpdesk")
    assert granted.exit_code == 0 and "now holds helpdesk" in granted.stdout
    assert "already holds" in run(app, "grant", "T3001", "helpdesk").stdout
    assert run(app, "grant", "T3001", "admin").exit_code == 0
    assert run_json(app, "show", "T3001")["roles"] == ["admin", "helpdesk"]
    assert "no longer holds admin" in run(app, "revoke", "T3001", "admin").stdout
    assert run_json(app, "show", "T3001")["roles"] == ["helpdesk"]
    with app.app_context():
        actions = [e.action for e in db.session.query(AuditEvent).order_by(AuditEvent.id)]
    assert actions.count("role.grant") == 2 and actions.count("role.revoke") == 1


def test_grant_refuses_unknown_role_and_unknown_account(app: Flask) -> None:
    """Only helpdesk and admin exist; an unknown account is an error, nothing granted."""
    run(app, "add", "T3002", "--name", "李老师", "--kind", "staff")
    assert run(app, "grant", "T3002", "root").exit_code == 2
    assert run(app, "grant", "nobody", "admin").exit_code == 1
    assert run_json(app, "show", "T3002")["roles"] == []
