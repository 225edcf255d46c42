"""The directory API (SCIM 2.0) as a campus system sees it: a client-credentials token from the
token endpoint, then Users and Groups over real HTTP (requests against a live server)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from flask import Flask
from sqlalchemy import insert
from werkzeug.serving import make_server

from idp.audit.models import AuditEvent
from idp.clients.operations import register_oidc_client
from idp.directory.models import Department, User, UserKind, UserStatus, utcnow
from idp.directory.operations import ensure_department
from idp.directory.positions import Position, PositionKind, appoint
from idp.extensions import db
from idp.oidc.claims import subject
from idp.oidc.models import OAuthToken
from tests.conftest import AppFactory
from tests.e2e.conftest import free_port
from tests.idp.conftest import MakeUser, sign_in
from tests.idp.oidc_support import authorize, exchange, register

SCIM_TYPE = "application/scim+json"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CAMPUS_USER = "urn:hongliu:params:scim:schemas:extension:campus:2.0:User"
CAMPUS_GROUP = "urn:hongliu:params:scim:schemas:extension:campus:2.0:Group"


@dataclass
class LiveIdp:
    """The IdP served over HTTP on a loopback port, with its Flask app for set-up."""

    app: Flask
    url: str

    @property
    def scim(self) -> str:
        return self.url + "/scim/v2"


@pytest.fixture
def live(make_idp: AppFactory) -> Iterator[LiveIdp]:
    """The IdP as a real HTTP server in a thread (issuer = its own address)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app = make_idp(ISSUER=url)
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield LiveIdp(app, url)
    server.shutdown()
    thread.join()
    server.server_close()


def directory_client(live: LiveIdp, scopes: tuple[str, ...] = ("directory.read",)) -> Any:
    """Register a service client the way campus IT does (no redirect URI)."""
    with live.app.app_context():
        client, secret = register_oidc_client(
            "教务系统同步", [], grant_types=["client_credentials"], scopes=list(scopes)
        )
        db.session.commit()
        return client.client_id, secret


def fetch_token(live: LiveIdp, client_id: str, secret: str, scope: str | None = None) -> str:
    """A client-credentials token, fetched with Authlib's requests client."""
    with OAuth2Session(client_id, secret, scope=scope) as session:
        token = session.fetch_token(live.url + "/oauth2/token", grant_type="client_credentials")
    return str(token["access_token"])


@pytest.fixture
def reader(live: LiveIdp) -> requests.Session:
    """An HTTP session carrying a directory.read token."""
    client_id, secret = directory_client(live)
    session = requests.Session()
    session.headers["Authorization"] = "Bearer " + fetch_token(live, client_id, secret)
    return session


def denials(app: Flask) -> list[AuditEvent]:
    """Audited refusals of the directory API, oldest first."""
    with app.app_context():
        return list(
            db.session.scalars(
                db.select(AuditEvent)
                .where(AuditEvent.action == "directory.read")
                .order_by(AuditEvent.id)
            )
        )


def bulk_users(app: Flask, count: int, department: str | None = None) -> None:
    """Insert ``count`` imported accounts in one statement (as an HR import would)."""
    with app.app_context():
        department_id = None
        if department:
            department_id = ensure_department(department, department + " 学院").id
        now = utcnow()
        rows = [
            {
                "account": f"2025{n:06d}",
                "name": f"学生{n}",
                "kind": UserKind.STUDENT,
                "status": UserStatus.PENDING,
                "department_id": department_id,
                "must_change_password": False,
                "created_at": now,
                "updated_at": now,
            }
            for n in range(count)
        ]
        db.session.execute(insert(User), rows)
        db.session.commit()


def scim_error(response: requests.Response, status: int, scim_type: str | None = None) -> None:
    """Assert ``response`` is a SCIM Error with ``status`` (and ``scimType``)."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith(SCIM_TYPE)
    body = response.json()
    assert body["schemas"] == [ERROR_SCHEMA] and body["status"] == str(status)
    assert body["detail"]
    if scim_type:
        assert body["scimType"] == scim_type


def test_campus_system_pages_through_every_user(live: LiveIdp, reader: requests.Session) -> None:
    """1,050 people come back in pages of 500, each exactly once, in a ListResponse."""
    bulk_users(live.app, 1050)
    seen: list[str] = []
    start = 1
    while True:
        response = reader.get(live.scim + "/Users", params={"startIndex": start, "count": 500})
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith(SCIM_TYPE)
        page = response.json()
        assert page["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:ListResponse"]
        assert page["totalResults"] == 1050 and page["startIndex"] == start
        assert page["itemsPerPage"] == len(page["Resources"]) <= 500
        seen += [user["id"] for user in page["Resources"]]
        if not page["Resources"]:
            break
        start += page["itemsPerPage"]
    assert len(seen) == len(set(seen)) == 1050


def test_paging_values_are_clamped_as_the_rfc_says(live: LiveIdp, reader: requests.Session) -> None:
    """count above 500 gives 500, below 0 gives 0, startIndex below 1 means 1; words are refused."""
    bulk_users(live.app, 600)
    too_many = reader.get(live.scim + "/Users", params={"count": 100000}).json()
    assert too_many["itemsPerPage"] == 500 and too_many["totalResults"] == 600
    negative = reader.get(live.scim + "/Users", params={"count": -3}).json()
    assert negative["itemsPerPage"] == 0 and negative["totalResults"] == 600
    zero = reader.get(live.scim + "/Users", params={"startIndex": 0, "count": 2}).json()
    assert zero["startIndex"] == 1 and len(zero["Resources"]) == 2
    beyond = reader.get(live.scim + "/Users", params={"startIndex": 10**40}).json()
    assert beyond["Resources"] == [] and beyond["totalResults"] == 600
    default = reader.get(live.scim + "/Users").json()
    assert default["itemsPerPage"] == 100
    scim_error(reader.get(live.scim + "/Users", params={"count": "lots"}), 400, "invalidValue")
    scim_error(reader.get(live.scim + "/Groups", params={"startIndex": "1.5"}), 400, "invalidValue")


def test_filters_find_people_by_account_name_and_change_time(
    live: LiveIdp, reader: requests.Session, make_user: MakeUser
) -> None:
    """userName eq, displayName co, meta.lastModified gt, and their combination with and/or."""
    bulk_users(live.app, 30)
    wang = make_user("T3001", name="王小明", kind="staff")
    make_user("T3002", name="王大明", kind="staff")

    def find(expression: str) -> list[str]:
        response = reader.get(live.scim + "/Users", params={"filter": expression, "count": 500})
        assert response.status_code == 200, response.text
        return sorted(user["userName"] for user in response.json()["Resources"])

    assert find('userName eq "T3001"') == ["T3001"]
    assert find('USERNAME EQ "t3001"') == ["T3001"]  # names and operators are case-insensitive
    assert find('displayName co "小明"') == ["T3001"]
    assert find('displayName co "明"') == ["T3001", "T3002"]
    assert find('displayName co "%"') == []  # a literal, not a wildcard
    assert find('userType eq "staff" and displayName sw "王大"') == ["T3002"]
    assert find('userName eq "T3001" or userName eq "T3002"') == ["T3001", "T3002"]
    assert find('userType eq "staff" and not (userName eq "T3001")') == ["T3002"]
    assert find(f'id eq "{subject(wang)}"') == ["T3001"]
    assert find('id eq "²"') == [] and find('groups.value eq "dept-²"') == []
    assert find('userName eq "nobody"') == []

    with live.app.app_context():
        later = utcnow() + timedelta(seconds=5)
        db.session.execute(db.update(User).where(User.account == "T3002").values(updated_at=later))
        db.session.commit()
    mark = (later - timedelta(seconds=1)).isoformat().replace("+00:00", "Z")
    assert find(f'meta.lastModified gt "{mark}"') == ["T3002"]
    assert find(f'meta.lastModified gt "{mark}" and userType eq "student"') == []
    total = reader.get(live.scim + "/Users", params={"filter": 'userType eq "student"'}).json()
    assert total["totalResults"] == 30


@pytest.mark.parametrize(
    "expression",
    [
        'emails[type eq "work"]',
        'nickName eq "x"',
        'userName zz "x"',
        'userName eq "unterminated',
        "userName eq",
        '(userName eq "a"',
        'userName eq "a" and',
        'meta.lastModified gt "yesterday"',
        'meta.lastModified co "2026"',
        'active eq "yes"',
        "userName eq 5",
        'userName eq "a\\u0000b"',
        "x" * 1200,
    ],
)
def test_unsupported_filter_is_invalid_filter(
    live: LiveIdp, reader: requests.Session, expression: str
) -> None:
    """A filter the API cannot honour is 400 invalidFilter, never a 500 or an empty list."""
    response = reader.get(live.scim + "/Users", params={"filter": expression})
    scim_error(response, 400, "invalidFilter")
    assert denials(live.app)[-1].outcome == "failure"


def test_user_resource_carries_sub_enterprise_extension_and_groups(
    live: LiveIdp, reader: requests.Session, make_user: MakeUser
) -> None:
    """id is the OIDC sub; verified contacts only; department, manager and positions shown."""
    head = make_user("T4001", name="院长甲", kind="staff", verified_phone=None)
    student = make_user(
        "2024004001", name="学生乙", verified_phone="13800000009", verified_email="yi@lut.edu.cn"
    )
    hr_only = make_user("2024004002", name="学生丙", verified_phone=None, email="bing@lut.edu.cn")
    with live.app.app_context():
        school = ensure_department("CS", "计算机与通信学院")
        klass = ensure_department("CS-2024-1", "计算机2024级1班", "CS")
        for account, department in (("T4001", school), ("2024004001", klass)):
            db.session.execute(
                db.update(User).where(User.account == account).values(department_id=department.id)
            )
        appoint(db.session.get(User, head.id), school, PositionKind.HEAD, "计算机与通信学院 院长")
        db.session.commit()
        school_id = school.id

    response = reader.get(f"{live.scim}/Users/{subject(student)}")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == str(student.id) and body["userName"] == "2024004001"
    assert body["name"]["formatted"] == body["displayName"] == "学生乙"
    assert body["userType"] == "student" and body["active"] is True
    assert body["emails"] == [{"value": "yi@lut.edu.cn", "type": "other", "primary": True}]
    assert body["phoneNumbers"][0]["value"] == "+8613800000009"
    enterprise = body[ENTERPRISE]
    assert (
        enterprise["department"] == "计算机2024级1班"
        and enterprise["employeeNumber"] == "2024004001"
    )
    # The class has no head: the manager is the head of the school above it.
    assert enterprise["manager"]["value"] == str(head.id)
    assert body[CAMPUS_USER]["departmentCode"] == "CS-2024-1"
    assert body["meta"]["resourceType"] == "User"
    assert body["meta"]["location"] == f"{live.scim}/Users/{student.id}"
    assert body["meta"]["created"].endswith("Z") and body["meta"]["lastModified"].endswith("Z")

    head_body = reader.get(f"{live.scim}/Users/{head.id}").json()
    assert "manager" not in head_body[ENTERPRISE]
    group_ids = {group["value"] for group in head_body["groups"]}
    assert f"dept-{school_id}" in group_ids and any(g.startswith("pos-") for g in group_ids)

    unverified = reader.get(f"{live.scim}/Users/{hr_only.id}").json()
    assert "emails" not in unverified and "phoneNumbers" not in unverified

    narrowed = reader.get(
        f"{live.scim}/Users/{student.id}", params={"attributes": "userName,emails"}
    ).json()
    assert set(narrowed) == {"schemas", "id", "userName", "emails"}
    without = reader.get(
        f"{live.scim}/Users/{student.id}", params={"excludedAttributes": "groups,phoneNumbers"}
    ).json()
    assert "groups" not in without and "phoneNumbers" not in without and "userName" in without


def test_groups_are_departments_and_positions_with_members(
    live: LiveIdp, reader: requests.Session, make_user: MakeUser
) -> None:
    """Departments carry their parent; a position lists its holders; members can be left out."""
    counsellor = make_user("T5001", name="辅导员丁", kind="staff", verified_phone=None)
    with live.app.app_context():
        ensure_department("LUT", "红柳大学")
        school = ensure_department("CS", "计算机与通信学院", "LUT")
        klass = ensure_department("CS-2021-1", "计算机2021级1班", "CS")
        db.session.execute(
            db.update(User).where(User.account == "T5001").values(department_id=school.id)
        )
        position = appoint(db.session.get(User, counsellor.id), klass, PositionKind.COUNSELLOR)
        db.session.commit()
        school_id, klass_id, position_id = school.id, klass.id, position.id

    listed = reader.get(live.scim + "/Groups").json()
    assert listed["totalResults"] == 4
    ids = [group["id"] for group in listed["Resources"]]
    assert ids[-1] == f"pos-{position_id}" and f"dept-{school_id}" in ids

    school_group = reader.get(f"{live.scim}/Groups/dept-{school_id}").json()
    assert school_group["externalId"] == "CS" and school_group["displayName"] == "计算机与通信学院"
    assert school_group[CAMPUS_GROUP]["parent"]["externalId"] == "LUT"
    assert [m["value"] for m in school_group["members"]] == [str(counsellor.id)]

    post = reader.get(f"{live.scim}/Groups/pos-{position_id}").json()
    assert post["displayName"] == "计算机2021级1班 辅导员"
    assert post["externalId"] == "CS-2021-1:counsellor"
    assert post[CAMPUS_GROUP]["positionKind"] == "counsellor"
    assert post[CAMPUS_GROUP]["department"]["value"] == f"dept-{klass_id}"
    assert post["members"] == [
        {
            "value": str(counsellor.id),
            "$ref": f"{live.scim}/Users/{counsellor.id}",
            "display": "辅导员丁",
            "type": "User",
        }
    ]

    def find(expression: str, **params: str) -> list[str]:
        response = reader.get(live.scim + "/Groups", params={"filter": expression, **params})
        assert response.status_code == 200, response.text
        return [group["id"] for group in response.json()["Resources"]]

    assert find('externalId eq "CS-2021-1:counsellor"') == [f"pos-{position_id}"]
    assert find('externalId eq "CS"') == [f"dept-{school_id}"]
    assert find('displayName co "2021级"') == [f"dept-{klass_id}", f"pos-{position_id}"]
    assert find(f'members.value eq "{counsellor.id}"') == [
        f"dept-{school_id}",
        f"pos-{position_id}",
    ]
    assert find(f'{CAMPUS_GROUP}:kind eq "position"') == [f"pos-{position_id}"]
    paged = reader.get(live.scim + "/Groups", params={"startIndex": 3, "count": 2}).json()
    assert [g["id"] for g in paged["Resources"]] == [f"dept-{klass_id}", f"pos-{position_id}"]
    bare = reader.get(live.scim + "/Groups", params={"excludedAttributes": "members"}).json()
    assert all("members" not in group for group in bare["Resources"])


@pytest.mark.parametrize(
    "path",
    [
        "/Users/999999",
        "/Users/abc",
        "/Users/1e3",
        "/Users/²",
        "/Users/٣",
        "/Groups/dept-999",
        "/Groups/xyz",
        "/Groups/pos-",
        "/Nothing",
        "/Schemas/urn:nope",
        "",  # the base address itself, with and without the slash
        "/",
    ],
)
def test_unknown_resource_is_a_scim_404(live: LiveIdp, reader: requests.Session, path: str) -> None:
    """An unknown id is 404 with a SCIM Error body."""
    scim_error(reader.get(live.scim + path), 404)


def test_requests_without_a_good_token_are_refused_and_audited(
    live: LiveIdp, make_user: MakeUser
) -> None:
    """No token, a wrong or expired one: 401 with a Bearer challenge; every refusal audited."""
    client_id, secret = directory_client(live)
    token = fetch_token(live, client_id, secret)
    missing = requests.get(live.scim + "/Users", timeout=10)
    scim_error(missing, 401)
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="hongliu-directory"'
    wrong = requests.get(live.scim + "/Users", headers={"Authorization": "Bearer nope"}, timeout=10)
    scim_error(wrong, 401)
    assert 'error="invalid_token"' in wrong.headers["WWW-Authenticate"]
    basic = requests.get(live.scim + "/Users", auth=(client_id, secret), timeout=10)
    scim_error(basic, 401)

    with live.app.app_context():
        db.session.execute(
            db.update(OAuthToken).values(access_expires_at=utcnow() - timedelta(seconds=1))
        )
        db.session.commit()
    expired = requests.get(
        live.scim + "/Users", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    scim_error(expired, 401)
    assert "expired" in expired.headers["WWW-Authenticate"]

    fresh = fetch_token(live, client_id, secret)
    with live.app.app_context():
        db.session.execute(db.update(OAuthToken).values(revoked_at=utcnow()))
        db.session.commit()
    revoked = requests.get(
        live.scim + "/Groups", headers={"Authorization": f"Bearer {fresh}"}, timeout=10
    )
    scim_error(revoked, 401)

    events = denials(live.app)
    assert [event.outcome for event in events] == ["denied"] * 5
    assert events[-1].subject == client_id and '"status": 401' in (events[-1].detail or "")


def test_tokens_without_directory_read_get_403(live: LiveIdp, make_user: MakeUser) -> None:
    """A service token for another scope, or a person's token, is 403 insufficient_scope."""
    client_id, secret = directory_client(live, scopes=("reports.read",))
    other_scope = fetch_token(live, client_id, secret)
    response = requests.get(
        live.scim + "/Users", headers={"Authorization": f"Bearer {other_scope}"}, timeout=10
    )
    scim_error(response, 403)
    challenge = response.headers["WWW-Authenticate"]
    assert 'error="insufficient_scope"' in challenge and 'scope="directory.read"' in challenge

    # An authorization-code client (a person signed in to it) holds no directory access, even
    # when its registration lists directory.read.
    rp = register(live.app, scopes=["openid", "profile", "directory.read"])
    browser = live.app.test_client()
    user = make_user("2024006001")
    sign_in(browser, user.account)
    tokens = exchange(browser, rp, authorize(browser, rp, scope="openid directory.read")).get_json()
    person = requests.get(
        live.scim + "/Users",
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        timeout=10,
    )
    scim_error(person, 403)
    plain = exchange(browser, rp, authorize(browser, rp, scope="openid profile")).get_json()
    without = requests.get(
        live.scim + "/Groups",
        headers={"Authorization": f"Bearer {plain['access_token']}"},
        timeout=10,
    )
    scim_error(without, 403)
    assert 'error="insufficient_scope"' in without.headers["WWW-Authenticate"]
    assert [event.outcome for event in denials(live.app)] == ["denied"] * 3


def test_the_api_is_read_only(live: LiveIdp, reader: requests.Session, make_user: MakeUser) -> None:
    """POST, PUT, PATCH and DELETE are 405 and change nothing."""
    user = make_user("2024007001")
    body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "x"}
    for method, path in (
        ("POST", "/Users"),
        ("PUT", f"/Users/{user.id}"),
        ("PATCH", f"/Users/{user.id}"),
        ("DELETE", f"/Users/{user.id}"),
        ("POST", "/Groups"),
    ):
        response = reader.request(method, live.scim + path, json=body)
        scim_error(response, 405)
    with live.app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(User)) == 1
        assert db.session.get(User, user.id).account == "2024007001"


def test_service_provider_config_schemas_and_resource_types(live: LiveIdp) -> None:
    """The self-description endpoints answer without a token, as application/scim+json."""
    config = requests.get(live.scim + "/ServiceProviderConfig", timeout=10)
    assert config.headers["Content-Type"].startswith(SCIM_TYPE)
    document = config.json()
    assert document["filter"] == {"supported": True, "maxResults": 500}
    assert document["patch"]["supported"] is False
    assert document["authenticationSchemes"][0]["type"] == "oauthbearertoken"
    schemas = requests.get(live.scim + "/Schemas", timeout=10).json()
    urns = {schema["id"] for schema in schemas["Resources"]}
    assert {"urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE, CAMPUS_GROUP} <= urns
    user_schema = requests.get(
        live.scim + "/Schemas/urn:ietf:params:scim:schemas:core:2.0:User", timeout=10
    ).json()
    assert "userName" in {attribute["name"] for attribute in user_schema["attributes"]}
    types = requests.get(live.scim + "/ResourceTypes", timeout=10).json()
    assert {t["endpoint"] for t in types["Resources"]} == {"/Users", "/Groups"}
    group_type = requests.get(live.scim + "/ResourceTypes/Group", timeout=10).json()
    assert group_type["schema"] == "urn:ietf:params:scim:schemas:core:2.0:Group"


def test_client_credentials_token_only_for_registered_grant_and_scope(live: LiveIdp) -> None:
    """Authlib's client gets directory.read; other scopes, clients and secrets are refused."""
    client_id, secret = directory_client(live)
    with OAuth2Session(client_id, secret, scope="directory.read") as session:
        token = session.fetch_token(live.url + "/oauth2/token", grant_type="client_credentials")
    assert token["scope"] == "directory.read" and "refresh_token" not in token
    with pytest.raises(Exception, match="invalid_scope"):
        fetch_token(live, client_id, secret, scope="directory.read openid")
    with pytest.raises(Exception, match="invalid_client"):
        fetch_token(live, client_id, secret + "x")
    rp = register(live.app)
    with pytest.raises(Exception, match="unauthorized_client"):
        fetch_token(live, rp.client_id, rp.secret or "")
    with live.app.app_context():
        outcomes = [
            (event.outcome, event.subject)
            for event in db.session.scalars(
                db.select(AuditEvent)
                .where(AuditEvent.action == "oauth.client_credentials")
                .order_by(AuditEvent.id)
            )
        ]
    assert outcomes[0] == ("success", client_id)
    assert ("denied", client_id) in outcomes and ("denied", rp.client_id) in outcomes


def test_positions_sync_with_the_import_column(idp_app: Flask) -> None:
    """HR's positions column appoints, renames and removes; bad entries name their line."""
    from idp.directory.importing import import_users

    with idp_app.app_context():
        ensure_department("CS", "计算机与通信学院")
        ensure_department("CS-2021-1", "计算机2021级1班", "CS")
        db.session.commit()
        first = import_users(
            "account,name,kind,department,positions\n"
            "T6001,张院长,staff,CS,CS:院长:计算机与通信学院 院长\n"
            "T6002,李老师,staff,CS,CS-2021-1:counsellor;CS:secretary\n"
            "T6003,赵老师,staff,CS,CS:chief\n"
            "T6004,钱老师,staff,CS,XX:head\n".encode()
        )
        assert first.created == 2
        assert [(f.line, f.reason) for f in first.failed] == [
            (4, "未知职务类别 'chief'：应为 head、deputy_head、secretary 或 counsellor"),
            (5, "职务中的未知部门代码 XX"),
        ]
        posts = {
            (p.department.code, p.kind): (p.title, [h.account for h in p.holders])
            for p in db.session.scalars(db.select(Position))
        }
        assert posts == {
            ("CS", "head"): ("计算机与通信学院 院长", ["T6001"]),
            ("CS-2021-1", "counsellor"): ("计算机2021级1班 辅导员", ["T6002"]),
            ("CS", "secretary"): ("计算机与通信学院 书记", ["T6002"]),
        }
        # The next export: T6002 gave up the secretary post; T6001's row has no change.
        second = import_users(
            "account,name,kind,department,positions\n"
            "T6001,张院长,staff,CS,CS:head\n"
            "T6002,李老师,staff,CS,CS-2021-1:辅导员\n".encode()
        )
        assert (second.created, second.updated, second.unchanged) == (0, 1, 1)
        secretary = db.session.scalar(db.select(Position).where(Position.kind == "secretary"))
        assert secretary is not None and secretary.holders == []
        # A file without the column leaves every post as it is.
        import_users("account,name\nT6001,张院长\n".encode())
        head = db.session.scalar(db.select(Position).where(Position.kind == "head"))
        assert head is not None and [h.account for h in head.holders] == ["T6001"]
        assert db.session.scalar(db.select(db.func.count()).select_from(Department)) == 2


def test_directory_client_cli_refuses_impossible_registrations(idp_app: Flask) -> None:
    """No redirect URI and no grant, or a public service client, is refused with a reason."""
    runner = idp_app.test_cli_runner()
    bare = runner.invoke(args=["clients", "add-oidc", "sync", "--scope", "directory.read"])
    assert bare.exit_code == 1 and "client_credentials" in bare.output
    public = runner.invoke(
        args=["clients", "add-oidc", "sync", "--public", "--grant-type", "client_credentials"]
    )
    assert public.exit_code == 1 and "public client" in public.output
    code = runner.invoke(args=["clients", "add-oidc", "sync", "--grant-type", "authorization_code"])
    assert code.exit_code == 1 and "redirect-uri" in code.output
    with idp_app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(AuditEvent)) == 0
