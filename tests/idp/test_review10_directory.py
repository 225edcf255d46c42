"""Review 10 of the directory: filters and ids the database cannot hold, case-exact position
codes, sub-attribute projection, and HR files that are neither clean UTF-8 nor GBK."""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from idp.directory.importing import import_users
from idp.directory.models import User
from idp.directory.operations import DirectoryError, ensure_department
from idp.directory.positions import PositionKind, appoint
from idp.extensions import db
from tests.idp.conftest import MakeUser
from tests.idp.directory_support import user
from tests.idp.oidc_support import token_request
from tests.idp.test_scim_robustness import Reader, scim_error, service_client

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


@pytest.fixture(name="reader")
def reader_fixture(idp_app: Flask) -> Reader:
    """A campus system with a client-credentials token for ``directory.read``."""
    client = idp_app.test_client()
    rp = service_client(idp_app)
    answer = token_request(client, rp, {"grant_type": "client_credentials"})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return Reader(idp_app, client, rp, answer.get_json()["access_token"])


@pytest.fixture
def staff(reader: Reader, make_user: MakeUser) -> User:
    """A head of 计算机与通信学院 (CS) who is also head of a department coded ``cs``, and a
    student of CS whose manager the head is."""
    head = make_user("T1001", name="欧阳老师", kind="staff")
    make_user("2024000001", name="李四")
    with reader.app.app_context():
        cs = ensure_department("CS", "计算机与通信学院")
        lower = ensure_department("cs", "继续教育学院")
        found = db.session.get(User, head.id)
        student = db.session.scalars(db.select(User).where(User.account == "2024000001")).one()
        assert found is not None
        found.department = cs
        student.department = cs
        appoint(found, cs, PositionKind.HEAD)
        appoint(found, lower, PositionKind.HEAD)
        db.session.commit()
    return head


def resources(response: Any) -> list[dict[str, Any]]:
    """The Resources of a 200 ListResponse."""
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    listed: list[dict[str, Any]] = response.get_json()["Resources"]
    return listed


# --- Filters and ids ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/Users", "/Groups"])
@pytest.mark.parametrize(
    "expression",
    ["id eq \u0661\u0662", 'userName eq "a" and active eq \u0663', "displayName gt -\u0665"],
)
def test_number_in_another_scripts_digits_is_invalid_filter(
    reader: Reader, path: str, expression: str
) -> None:
    """Arabic-Indic digits where a value goes are 400 invalidFilter, not a 500 (JSON cannot
    read them, though ``\\d`` matched them)."""
    scim_error(reader.get(path, filter=expression), 400, "invalidFilter")


def test_ids_beyond_the_key_range_or_with_leading_zeros_match_nothing(
    reader: Reader, staff: User
) -> None:
    """An id no row can have is a 404 or an empty list — on PostgreSQL it was "integer out of
    range", a 500 — and ``012`` is not the id ``12``."""
    huge = "99999999999"
    padded = f"0{staff.id}"
    for path in (
        f"/Users/{huge}",
        f"/Groups/dept-{huge}",
        f"/Groups/pos-{huge}",
        f"/Users/{padded}",
    ):
        scim_error(reader.get(path), 404)
    assert reader.get(f"/Users/{staff.id}").status_code == 200
    for path, expression in (
        ("/Users", f'id eq "{huge}"'),
        ("/Users", f'groups.value eq "dept-{huge}"'),
        ("/Users", f'groups.value eq "pos-{huge}"'),
        ("/Groups", f'members.value eq "{huge}"'),
        ("/Users", f'id eq "{padded}"'),
        ("/Groups", f'members.value eq "{padded}"'),
    ):
        assert resources(reader.get(path, filter=expression)) == [], expression
    everyone = resources(reader.get("/Users", filter=f'id ne "{huge}"'))
    assert len(everyone) == 2


def test_position_external_id_is_matched_case_exactly(reader: Reader, staff: User) -> None:
    """``CS:head`` is the head of CS only, not also of the department coded ``cs`` — codes are
    case-sensitive, as a department's own externalId is matched."""
    found = resources(
        reader.get("/Groups", filter='externalId eq "CS:head"', excludedAttributes="members")
    )
    assert [group["externalId"] for group in found] == ["CS:head"]
    assert [
        g["externalId"] for g in resources(reader.get("/Groups", filter='externalId eq "CS"'))
    ] == ["CS"]


# --- attributes / excludedAttributes -------------------------------------------------------


def test_excluding_a_sub_attribute_keeps_the_rest_of_its_attribute(
    reader: Reader, staff: User
) -> None:
    """``excludedAttributes=members.display`` drops the names, not every group's members;
    ``meta.location`` and ``groups.display`` likewise (RFC 7644 §3.4.2.5)."""
    groups = resources(reader.get("/Groups", excludedAttributes="members.display"))
    cs = next(group for group in groups if group["externalId"] == "CS")
    assert [set(member) for member in cs["members"]] == [{"value", "$ref", "type"}] * 2

    people = resources(
        reader.get(
            "/Users",
            filter='userName eq "2024000001"',
            excludedAttributes=f"meta.location,groups.display,{ENTERPRISE}:manager.displayName",
        )
    )
    (student,) = people
    assert set(student["meta"]) == {"resourceType", "created", "lastModified"}
    assert student["groups"] and all("display" not in group for group in student["groups"])
    assert student["groups"][0]["value"].startswith("dept-")
    assert student[ENTERPRISE]["manager"] == {
        "value": str(staff.id),
        "$ref": f"http://127.0.0.1:5000/scim/v2/Users/{staff.id}",
    }
    assert student[ENTERPRISE]["department"] == "计算机与通信学院"


def test_asking_for_a_sub_attribute_returns_just_that(reader: Reader, staff: User) -> None:
    """``attributes=members.value,meta.lastModified`` gives each member's id and the change
    time, with ``id`` and ``schemas`` always there."""
    groups = resources(
        reader.get(
            "/Groups", filter='externalId eq "CS"', attributes="members.value,meta.lastModified"
        )
    )
    (cs,) = groups
    assert set(cs) == {"schemas", "id", "members", "meta"}
    assert all(set(member) == {"value"} for member in cs["members"]) and len(cs["members"]) == 2
    assert set(cs["meta"]) == {"lastModified"}
    (head,) = resources(
        reader.get(
            "/Users",
            filter='userName eq "2024000001"',
            attributes=f"userName,{ENTERPRISE}:manager.value",
        )
    )
    assert head[ENTERPRISE] == {"manager": {"value": str(staff.id)}}
    assert head["userName"] == "2024000001" and "name" not in head


# --- HR files --------------------------------------------------------------------------------


@pytest.fixture
def app(idp_app: Flask) -> Iterator[Flask]:
    """An IdP with an app context."""
    with idp_app.app_context():
        yield idp_app


@pytest.mark.parametrize(
    "data",
    [
        # "Unicode text" from Excel cut off in the middle of a character
        codecs.BOM_UTF16_LE + "account\tname\r\n2022001\t张三\r\n".encode("utf-16-le") + b"\x00",
        # a lone surrogate
        codecs.BOM_UTF16_LE + "account\tname\r\n2022001\t".encode("utf-16-le") + b"\x00\xd8",
    ],
    ids=["truncated", "lone-surrogate"],
)
def test_broken_utf16_file_is_refused_with_advice(app: Flask, tmp_path: Path, data: bytes) -> None:
    """A damaged UTF-16 export is the file's problem, said in words — not a crash of the
    command (nor a 500 of the console's upload)."""
    with pytest.raises(DirectoryError, match="文件编码无法识别"):
        import_users(data)
    path = tmp_path / "hr.txt"
    path.write_bytes(data)
    result = app.test_cli_runner().invoke(args=["users", "import", str(path)])
    assert result.exit_code == 1
    assert "文件编码无法识别" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_quoted_cell_after_a_space_keeps_its_comma(app: Flask) -> None:
    """``2022001, "欧阳, 娜娜"`` (a space after each comma, as hand-made files have) is one
    quoted name, not a name starting with a quote and the rest spilling into the next column."""
    report = import_users('account, name, kind\r\n2022001, "欧阳,娜娜", 学生\r\n'.encode())
    assert (report.created, report.failed) == (1, [])
    assert user("2022001").name == "欧阳,娜娜"
