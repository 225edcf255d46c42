"""The directory: identifiers, masks, account creation and HR imports."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, insert, select

from idp.auth.passwords import hasher_from_config
from idp.directory import importing
from idp.directory.identifiers import (
    check_data_key,
    data_key,
    decrypt_identifier,
    encrypt_identifier,
    hash_identifier,
    id_number_check_char,
    mask_email,
    mask_id_number,
    mask_phone,
    normalise_email,
    normalise_id_number,
    normalise_phone,
    validate_id_number,
)
from idp.directory.importing import import_users
from idp.directory.models import Department, User, UserKind, UserStatus
from idp.directory.operations import (
    DirectoryError,
    create_user,
    ensure_department,
    find_user_by_account,
    find_users_by_id_number,
)
from idp.directory.positions import parse_holdings
from idp.extensions import db
from shared.config import ConfigError
from tests.idp.directory_support import csv_bytes, ssha, user

ID_NUMBER = "620102199901011239"  # valid check digit


def make_id_number(serial: int) -> str:
    """A resident ID number with a correct check character."""
    first17 = f"62010219990101{serial % 1000:03d}"
    return first17 + id_number_check_char(first17)


@pytest.fixture
def app(idp_app: Flask) -> Iterator[Flask]:
    """An IdP with an app context and two departments."""
    with idp_app.app_context():
        ensure_department("CS", "计算机与通信学院")
        ensure_department("HR", "人事处")
        db.session.commit()
        yield idp_app


# --- identifiers -----------------------------------------------------------------------------


def test_id_number_is_normalised_without_spaces_and_with_upper_case_x() -> None:
    """Spaces go and a final lower-case x becomes X, full-width digits become ASCII."""
    assert normalise_id_number(" 6201 0219 9901 0112 3x ") == "62010219990101123X"
    assert normalise_id_number("６２０１０２199901011239") == ID_NUMBER


def test_passport_number_is_upper_cased_and_stripped() -> None:
    """Passport numbers are accepted upper-cased, without spaces."""
    assert validate_id_number(" e1234 5678 ") == "E12345678"


def test_id_number_with_wrong_check_digit_is_refused() -> None:
    """A typo in an 18-digit number is caught by its check character."""
    with pytest.raises(ValueError, match="校验位"):
        validate_id_number("620102199901011234")


def test_id_number_mangled_by_excel_is_explained() -> None:
    """Excel's scientific notation gets a message saying how to fix the export."""
    with pytest.raises(ValueError, match="科学计数法"):
        validate_id_number("6.20102E+17")


def test_id_number_hash_is_keyed_and_stable() -> None:
    """The same number and key give the same hash; another key gives another."""
    key = b"k" * 32
    assert hash_identifier(ID_NUMBER, key) == hash_identifier(ID_NUMBER, key)
    assert hash_identifier(ID_NUMBER, key) != hash_identifier(ID_NUMBER, b"j" * 32)
    assert len(hash_identifier(ID_NUMBER, key)) == 64
    assert ID_NUMBER not in hash_identifier(ID_NUMBER, key)


def test_encrypted_id_number_round_trips_and_never_repeats() -> None:
    """Encryption is reversible with the key and gives a new token each time."""
    key = b"k" * 32
    first, second = encrypt_identifier(ID_NUMBER, key), encrypt_identifier(ID_NUMBER, key)
    assert first != second
    assert decrypt_identifier(first, key) == ID_NUMBER
    with pytest.raises(ValueError, match="IDP_DATA_KEY"):
        decrypt_identifier(first, b"j" * 32)


def test_masks_show_what_the_recovery_page_shows() -> None:
    """ID numbers, phones and emails are masked as the manual's screenshots show."""
    assert mask_id_number("620102199901011234") == "6201**********1234"
    assert mask_id_number("E12345678") == "E1*****78"
    assert mask_phone("19912341339") == "199****1339"
    assert mask_email("zhang.san@lut.edu.cn") == "z***n@lut.edu.cn"
    assert mask_email("ab@lut.edu.cn") == "a***@lut.edu.cn"


@pytest.mark.parametrize(
    "raw",
    ["19912341339", "199 1234 1339", "199-1234-1339", "+86 199 1234 1339", "8619912341339"],
)
def test_mainland_mobile_is_normalised_from_common_spellings(raw: str) -> None:
    """Prefixes, spaces and dashes people type are removed."""
    assert normalise_phone(raw) == "19912341339"


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "1991234133",
        "29912341339",
        "0931-2973386",
        "+1 2025550123",
        "19\u0669\u0661\u0662\u0663\u0664\u0661\u0663\u0663\u0669",  # Arabic-Indic digits
    ],
)
def test_phone_that_is_not_a_mainland_mobile_is_refused(raw: str) -> None:
    """Landlines, foreign numbers, wrong lengths and digits of other scripts (which NFKC
    leaves as they are) are not security phones."""
    assert normalise_phone(raw) is None


def test_id_number_in_digits_of_another_script_is_refused() -> None:
    """Only ASCII digits (full-width ones become ASCII): one number, one spelling."""
    arabic_indic = "".join(chr(0x0660 + int(d)) for d in "11010519491231002")
    with pytest.raises(ValueError):
        validate_id_number(arabic_indic + "X")


def test_email_is_lower_cased_and_malformed_refused() -> None:
    """Addresses are compared lower-case; a malformed one is refused."""
    assert normalise_email(" Zhang.San@LUT.edu.cn ") == "zhang.san@lut.edu.cn"
    assert normalise_email("zhang.san@") is None
    assert normalise_email("no at sign") is None


def test_data_key_is_idp_data_key_when_set() -> None:
    """A configured data key is used as given."""
    config = {"ENV": "production", "DATA_KEY": "d" * 40, "SECRET_KEY": "s" * 40}
    assert data_key(config) == b"d" * 40


def test_development_data_key_is_derived_from_the_secret_key() -> None:
    """Without IDP_DATA_KEY, development derives a stable key that is not the secret key."""
    config = {"ENV": "development", "DATA_KEY": None, "SECRET_KEY": "s" * 40}
    assert data_key(config) == data_key(dict(config))
    assert data_key(config) != b"s" * 40
    assert data_key(config) != data_key({**config, "SECRET_KEY": "t" * 40})


@pytest.mark.parametrize("value", [None, "", "too-short"])
def test_production_refuses_a_missing_or_short_data_key(value: str | None) -> None:
    """Production names IDP_DATA_KEY when it is missing or shorter than 32 characters."""
    with pytest.raises(ConfigError, match="IDP_DATA_KEY"):
        check_data_key({"ENV": "production", "DATA_KEY": value, "SECRET_KEY": "s" * 40})


# --- accounts and departments ----------------------------------------------------------------


def test_account_created_with_password_is_active_with_argon2_hash(app: Flask) -> None:
    """An admin-set password activates the account at once, stored as argon2id."""
    created = create_user("2021001", "张三", password="Campus2024pass", department_code="CS")
    db.session.commit()
    found = user("2021001")
    assert found.id == created.id
    assert found.status is UserStatus.ACTIVE
    assert found.password_hash and found.password_hash.startswith("$argon2id$")
    assert hasher_from_config(app.config).verify(found.password_hash, "Campus2024pass").ok
    assert found.department is not None and found.department.code == "CS"
    assert found.password_changed_at is not None


def test_account_created_without_password_waits_for_activation(app: Flask) -> None:
    """Without a password the owner must activate the account (激活账号)."""
    create_user("2021002", "李四", kind="staff")
    assert user("2021002").status is UserStatus.PENDING
    assert user("2021002").kind is UserKind.STAFF
    assert user("2021002").password_hash is None


def test_pending_flag_keeps_account_pending_even_with_password(app: Flask) -> None:
    """``pending`` wins over a password: the owner still activates."""
    create_user("2021003", "王五", password="Campus2024pass", pending=True)
    assert user("2021003").status is UserStatus.PENDING


def test_weak_password_is_refused_with_every_policy_message(app: Flask) -> None:
    """The policy's messages reach the admin, one problem each."""
    with pytest.raises(DirectoryError) as caught:
        create_user("2021004", "赵六", password="abc")
    assert "密码须同时包含字母和数字" in caught.value.problems
    assert len(caught.value.problems) >= 2
    assert find_user_by_account("2021004") is None


def test_hr_phone_and_email_are_stored_unverified(app: Flask) -> None:
    """Contacts given by HR are not security phone or email until their owner verifies them."""
    create_user("2021005", "钱七", phone="+86 199-1234-1339", email="Qian@LUT.edu.cn")
    found = user("2021005")
    assert (found.phone, found.email) == ("19912341339", "qian@lut.edu.cn")
    assert found.phone_verified_at is None and found.email_verified_at is None
    assert not found.has_security_phone


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"account": "ab"}, "账号"),
        ({"account": "张三"}, "账号"),
        ({"name": "  "}, "姓名"),
        ({"name": "名" * 101}, "姓名"),
        ({"name": "张\x00三"}, "控制字符"),
        ({"name": "\u202e三张"}, "控制字符"),  # a bidi override shows the name backwards
        ({"name": "张\u200b三"}, "控制字符"),  # zero-width space
        ({"phone": "12345"}, "手机号"),
        ({"email": "nobody"}, "邮箱"),
        ({"id_number": "620102199901011234"}, "校验位"),
        ({"department_code": "NOPE"}, "未知部门代码 NOPE"),
        ({"kind": "alumni"}, "人员类别"),
    ],
)
def test_invalid_account_details_are_refused(
    app: Flask, overrides: dict[str, Any], message: str
) -> None:
    """Each malformed detail is refused with a message naming it."""
    details: dict[str, Any] = {"account": "2021006", "name": "孙八", **overrides}
    with pytest.raises(DirectoryError, match=message):
        create_user(**details)


def test_a_persian_name_with_its_zero_width_non_joiner_is_kept(app: Flask) -> None:
    """ZWNJ is part of how Persian and Urdu names are written (a key of its own on Persian
    keyboards): an international student's name keeps it."""
    create_user("2021010", "محمد\u200cرضا")
    assert user("2021010").name == "محمد\u200cرضا"


def test_duplicate_account_is_refused(app: Flask) -> None:
    """An account number is unique."""
    create_user("2021007", "周九")
    with pytest.raises(DirectoryError, match="已存在"):
        create_user("2021007", "周九")


def test_id_number_is_stored_hashed_and_encrypted_and_found_in_any_spelling(app: Flask) -> None:
    """The number is never stored in clear, and matching ignores spaces and case."""
    create_user("2021008", "吴十", id_number=" 620102 19990101 1239 ")
    create_user("S2021008", "吴十", kind="staff", id_number=ID_NUMBER)
    found = user("2021008")
    assert found.id_number_hash and ID_NUMBER not in found.id_number_hash
    assert found.id_number_encrypted and ID_NUMBER not in found.id_number_encrypted
    assert decrypt_identifier(found.id_number_encrypted, data_key(app)) == ID_NUMBER
    matches = find_users_by_id_number(" 6201 0219 9901 0112 39 ")
    assert [u.account for u in matches] == ["2021008", "S2021008"]
    assert find_users_by_id_number(make_id_number(999)) == []


def test_ensure_department_creates_then_renames_and_moves(app: Flask) -> None:
    """Ensuring a department twice updates it instead of duplicating it."""
    ensure_department("SE", "软件工程系", parent_code="CS")
    ensure_department("SE", "软件工程系（新）", parent_code="HR")
    db.session.commit()
    departments = db.session.scalars(select(Department).where(Department.code == "SE")).all()
    assert len(departments) == 1
    assert departments[0].name == "软件工程系（新）"
    assert departments[0].parent is not None and departments[0].parent.code == "HR"


def test_department_tree_refuses_loops_and_unknown_parents(app: Flask) -> None:
    """A department cannot sit under itself or under a code nobody knows."""
    ensure_department("SE", "软件工程系", parent_code="CS")
    with pytest.raises(DirectoryError, match="下级"):
        ensure_department("CS", "计算机与通信学院", parent_code="SE")
    with pytest.raises(DirectoryError, match="未知部门代码 XX"):
        ensure_department("AI", "人工智能学院", parent_code="XX")


# --- imports ---------------------------------------------------------------------------------


def test_import_makes_students_pending_and_staff_with_legacy_hash_active(app: Flask) -> None:
    """Staff sign in with the old password (manual 2.1.4); students must activate."""
    report = import_users(
        csv_bytes(
            f"2021101,张三,student,CS,{make_id_number(1)},19912341339,zs@lut.edu.cn,",
            f"T0001,李老师,staff,HR,{make_id_number(2)},,,{ssha('OldPass123')}",
            "T0002,王老师,staff,HR,,,,",
        )
    )
    assert report.as_dict() == {"created": 3, "updated": 0, "unchanged": 0, "failed": []}
    assert user("2021101").status is UserStatus.PENDING
    assert user("T0002").status is UserStatus.PENDING
    teacher = user("T0001")
    assert teacher.status is UserStatus.ACTIVE and teacher.kind is UserKind.STAFF
    assert hasher_from_config(app.config).verify(teacher.password_hash, "OldPass123").ok
    assert teacher.password_changed_at is None
    assert user("2021101").phone_verified_at is None


def test_reimport_updates_name_but_keeps_verified_security_phone(app: Flask) -> None:
    """HR may rename someone; a phone the owner verified stays theirs."""
    import_users(csv_bytes("2021102,张三,student,CS,,19912341339,zs@lut.edu.cn,"))
    found = user("2021102")
    found.phone, found.phone_verified_at = "13800000001", datetime.now(UTC)
    found.email, found.email_verified_at = "mine@example.com", datetime.now(UTC)
    db.session.commit()
    report = import_users(csv_bytes("2021102,张叁,student,CS,,19900000000,new@lut.edu.cn,"))
    assert (report.created, report.updated, report.unchanged) == (0, 1, 0)
    found = user("2021102")
    assert found.name == "张叁"
    assert (found.phone, found.email) == ("13800000001", "mine@example.com")


def test_reimport_replaces_an_unverified_hr_phone(app: Flask) -> None:
    """A phone nobody verified is still HR's to correct."""
    import_users(csv_bytes("2021103,张三,,,,19912341339,,"))
    import_users(csv_bytes("2021103,张三,,,,19900000000,,"))
    assert user("2021103").phone == "19900000000"


def test_reimport_never_duplicates_and_counts_unchanged_rows(app: Flask) -> None:
    """The same file twice creates nothing the second time."""
    data = csv_bytes(
        f"2021104,张三,student,CS,{make_id_number(4)},19912341339,,",
        f"T0004,李老师,staff,HR,,,,{ssha('OldPass123')}",
    )
    assert import_users(data).created == 2
    again = import_users(data)
    assert again.as_dict() == {"created": 0, "updated": 0, "unchanged": 2, "failed": []}
    assert db.session.scalar(select(func.count()).select_from(User)) == 2


def test_empty_cells_on_reimport_keep_what_is_recorded(app: Flask) -> None:
    """A later export without department, kind or ID number does not erase them."""
    import_users(csv_bytes(f"T0005,李老师,staff,HR,{make_id_number(5)},19912341339,,"))
    report = import_users(csv_bytes("T0005,李老师,,,,,,"))
    assert report.unchanged == 1
    found = user("T0005")
    assert found.kind is UserKind.STAFF and found.department is not None
    assert found.id_number_hash and found.phone == "19912341339"


def test_reimport_moves_department_and_changes_id_number(app: Flask) -> None:
    """Department and a corrected ID number are updated; the new number matches."""
    import_users(csv_bytes(f"2021106,张三,student,CS,{make_id_number(6)},,,"))
    import_users(csv_bytes(f"2021106,张三,staff,HR,{make_id_number(7)},,,"))
    found = user("2021106")
    assert found.kind is UserKind.STAFF
    assert found.department is not None and found.department.code == "HR"
    assert [u.account for u in find_users_by_id_number(make_id_number(7))] == ["2021106"]
    assert find_users_by_id_number(make_id_number(6)) == []


def test_legacy_hash_activates_a_pending_account_on_reimport(app: Flask) -> None:
    """A teacher first imported without a hash becomes active when the hash arrives."""
    import_users(csv_bytes("T0008,李老师,staff,HR,,,,"))
    import_users(csv_bytes(f"T0008,李老师,staff,HR,,,,{ssha('OldPass123')}"))
    assert user("T0008").status is UserStatus.ACTIVE


def test_legacy_hash_never_replaces_a_password_the_owner_set(app: Flask) -> None:
    """Once someone chose their own password, HR's old hash no longer applies."""
    create_user("T0009", "李老师", kind="staff", password="Campus2024pass")
    db.session.commit()
    own_hash = user("T0009").password_hash
    report = import_users(csv_bytes(f"T0009,李老师,staff,HR,,,,{ssha('OldPass123')}"))
    assert report.updated == 1  # the department, not the password
    assert user("T0009").password_hash == own_hash


@pytest.mark.parametrize("status", [UserStatus.DISABLED, UserStatus.LOCKED])
def test_legacy_hash_does_not_reopen_a_disabled_or_locked_account(
    app: Flask, status: UserStatus
) -> None:
    """The help desk's lock outlives re-imports."""
    import_users(csv_bytes("T0010,李老师,staff,HR,,,,"))
    user("T0010").status = status
    db.session.commit()
    import_users(csv_bytes(f"T0010,李老师,staff,HR,,,,{ssha('OldPass123')}"))
    assert user("T0010").status is status


def test_bad_rows_are_reported_by_line_and_the_rest_lands(app: Flask) -> None:
    """Each bad row names its line (header = line 1) and reason; good rows are imported."""
    report = import_users(
        csv_bytes(
            "2021111,张三,student,CS,,,,",
            "x,李四,student,CS,,,,",
            "2021113,,student,CS,,,,",
            "2021114,王五,alumni,CS,,,,",
            "2021115,赵六,student,CS,620102199901011234,,,",
            "2021116,钱七,student,CS,,12345,,",
            "2021117,孙八,student,CS,,,not-an-email,",
            "2021118,周九,staff,HR,,,,{CLEARTEXT}secret",
            "2021119,吴十,student,XX,,,,",
            "2021120,郑十一,student,CS,,,,",
        )
    )
    assert (report.created, report.updated, report.unchanged) == (2, 0, 0)
    assert [f.line for f in report.failed] == [3, 4, 5, 6, 7, 8, 9, 10]
    reasons = {f.line: f.reason for f in report.failed}
    assert "账号" in reasons[3] and "姓名" in reasons[4] and "人员类别" in reasons[5]
    assert "校验位" in reasons[6] and "手机号" in reasons[7] and "邮箱" in reasons[8]
    assert reasons[9] == "无法识别的旧密码哈希格式"
    assert reasons[10] == "未知部门代码 XX"
    assert "secret" not in " ".join(reasons.values())
    assert find_user_by_account("2021120") is not None


def test_duplicate_account_in_one_file_reports_the_later_row(app: Flask) -> None:
    """The first occurrence is imported, the second reported as a duplicate."""
    report = import_users(csv_bytes("2021121,张三,,,,,,", "", "2021121,张三三,,,,,,"))
    assert report.created == 1
    assert [(f.line, f.reason) for f in report.failed] == [(4, "账号 2021121 与第 2 行重复")]
    assert user("2021121").name == "张三"


def test_unknown_department_is_created_when_the_file_names_it(app: Flask) -> None:
    """With a department_name column an unknown code becomes a new department."""
    report = import_users(
        csv_bytes(
            "2021122,张三,AI,人工智能学院",
            "2021123,李四,AI,人工智能学院",
            "2021124,王五,ZZ,",
            header="account,name,department,department_name",
        )
    )
    assert report.created == 2
    assert [(f.line, f.reason) for f in report.failed] == [(4, "未知部门代码 ZZ")]
    department = user("2021122").department
    assert department is not None and department.name == "人工智能学院"
    assert db.session.scalar(select(func.count()).where(Department.code == "AI")) == 1


def test_reasons_speak_the_request_language_and_chinese_without_one(app: Flask) -> None:
    """In an English console request the rules explain themselves in English; with no request
    (the CLI, a job) they stay Chinese, the default locale."""
    rows = csv_bytes(
        "2021140,张三,student,XX,,,,",
        "2021141,李四,student,,,,,",
        "2021141,李四,student,,,,,",
        "ab,王五,student,,,,,",
        f"2021142,赵六,student,,{ID_NUMBER[:-1]}0,,,",
    )
    english = {
        2: "Unknown department code XX",
        4: "Account 2021141 duplicates line 3",
        5: "Account 'ab' is not valid: it must be 3–64 letters, digits or _ . -",
        6: "The check digit of ID card number 6201**********1230 is wrong",
    }
    with app.app_context(), app.test_request_context(headers={"Accept-Language": "en"}):
        report = import_users(rows)
        assert {f.line: f.reason for f in report.failed} == english
        with pytest.raises(DirectoryError, match=r"^Unknown department code NOPE$"):
            create_user("2021143", "孙七", department_code="NOPE")
        with pytest.raises(DirectoryError, match=r"^Department CS cannot be placed under itself"):
            ensure_department("CS", "计算机与通信学院", "CS")
        with pytest.raises(ValueError, match=r"^Unknown position kind 'boss': use head"):
            parse_holdings("CS:boss")
    report = import_users(rows)
    assert {f.line: f.reason for f in report.failed} == {
        2: "未知部门代码 XX",
        4: "账号 2021141 与第 3 行重复",
        5: "账号 'ab' 不合规：须为 3–64 位字母、数字或 _ . -",
        6: "身份证号 6201**********1230 的校验位不正确",
    }


def test_gbk_export_from_excel_is_read(app: Flask) -> None:
    """HR files saved by Excel on Chinese Windows are GBK; names survive."""
    report = import_users(csv_bytes("2021125,欧阳修,学生,CS,,,,", encoding="gbk"))
    assert report.created == 1
    assert user("2021125").name == "欧阳修"


def test_utf8_with_bom_and_extra_columns_is_read(app: Flask) -> None:
    """A BOM does not spoil the first column's name, and unknown columns are ignored."""
    data = csv_bytes("2021126,张三,计算机,19912341339", header="account,name,major,phone")
    report = import_users(b"\xef\xbb\xbf" + data)
    assert report.created == 1
    assert user("2021126").phone == "19912341339"


def test_file_without_required_header_is_refused(app: Flask) -> None:
    """A file whose first line is not a header is not imported at all."""
    with pytest.raises(DirectoryError, match="account"):
        import_users("2021127,张三\r\n2021128,李四\r\n".encode())


def test_rows_given_as_mappings_are_numbered_like_a_file(app: Flask) -> None:
    """Callers may hand in rows directly; line numbers start at 2 as in a file."""
    report = import_users([{"account": "2021129", "name": "张三"}, {"account": "x", "name": "李"}])
    assert report.created == 1
    assert [f.line for f in report.failed] == [3]


def test_import_spanning_many_batches_lands_every_row(app: Flask) -> None:
    """Small batches give the same result as one big one."""
    rows = [f"21{n:05d},学生{n},student,CS,{make_id_number(n)},,," for n in range(10)]
    report = import_users(csv_bytes(*rows, "x,bad,,,,,,"), batch_size=3)
    assert (report.created, len(report.failed)) == (10, 1)
    assert import_users(csv_bytes(*rows), batch_size=4).unchanged == 10


def test_two_thousand_rows_import_quickly(app: Flask) -> None:
    """A smoke test of bulk writes: 2,000 rows, then the same file again, in seconds."""
    legacy = ssha("OldPass123")
    rows = [
        f"20{n:06d},学生{n},{'staff' if n % 3 == 0 else 'student'},CS,{make_id_number(n)},"
        f"199{n:08d},s{n}@lut.edu.cn,{legacy if n % 3 == 0 else ''}"
        for n in range(2000)
    ]
    data = csv_bytes(*rows)
    started = time.perf_counter()
    assert import_users(data).created == 2000
    assert import_users(data).unchanged == 2000
    assert time.perf_counter() - started < 20
    assert db.session.scalar(select(func.count()).where(User.status == UserStatus.ACTIVE)) == 667


def test_account_created_elsewhere_during_an_import_is_updated_not_failed(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If another writer adds an account mid-batch, the batch is retried row by row."""
    original = importing._Importer._new_user
    calls = 0

    def new_user_while_someone_else_writes(self: Any, *args: Any) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if calls == 1:
            with db.engine.begin() as other:
                other.execute(
                    insert(User),
                    [{"account": "2021131", "name": "旧名", "status": UserStatus.PENDING}],
                )
        return original(self, *args)

    monkeypatch.setattr(importing._Importer, "_new_user", new_user_while_someone_else_writes)
    report = import_users(
        csv_bytes("2021130,张三,,,,,,", "2021131,李四,,,,,,", "2021132,王五,,,,,,")
    )
    assert (report.created, report.updated, report.failed) == (2, 1, [])
    assert user("2021131").name == "李四"


def test_unparsable_record_is_a_bad_row_not_a_bad_file(app: Flask) -> None:
    """A runaway field spoils only its own row; NUL padding is dropped."""
    runaway = "x" * 200_000
    report = import_users(
        csv_bytes("2021133,张\x00三,,,,,,", f"2021134,{runaway},,,,,,", "2021135,王五")
    )
    assert report.created == 2
    assert [f.line for f in report.failed] == [3]
    assert "无法解析" in report.failed[0].reason
    assert user("2021133").name == "张三"
