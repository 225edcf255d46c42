"""The directory API (SCIM 2.0) under hostile input and failure: every answer is a SCIM Error,
``not ( )`` is the complement of its filter, and a registration change reaches tokens already
issued."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import exc as sql_errors
from sqlalchemy.orm import Session
from werkzeug.exceptions import TooManyRequests

from idp import create_app
from idp.audit.models import AuditEvent
from idp.clients.models import OidcClient
from idp.directory import scim
from idp.directory.models import User
from idp.directory.operations import ensure_department
from idp.directory.positions import PositionKind, appoint
from idp.directory.scim_filter import FilterError, parse_filter
from idp.extensions import db
from shared.web import RETRY_AFTER_OUTAGE
from tests.conftest import AppFactory
from tests.idp.conftest import MakeUser
from tests.idp.oidc_support import RelyingParty, bearer, register, token_request
from tests.idp.test_scim import CAMPUS_GROUP, CAMPUS_USER, ENTERPRISE, ERROR_SCHEMA, SCIM_TYPE


@dataclass
class Reader:
    """A campus system's test client with its client-credentials token."""

    app: Flask
    client: FlaskClient
    rp: RelyingParty
    token: str

    def get(self, path: str, **params: Any) -> Any:
        return self.client.get("/scim/v2" + path, headers=bearer(self.token), query_string=params)

    def ids(self, path: str, expression: str) -> list[str]:
        response = self.get(path, filter=expression, count=500)
        assert response.status_code == 200, response.get_data(as_text=True)
        return [resource["id"] for resource in response.get_json()["Resources"]]


def service_client(app: Flask, scopes: tuple[str, ...] = ("directory.read",)) -> RelyingParty:
    """A service client registered the way campus IT does (no redirect URI)."""
    return register(
        app,
        redirect_uris=[],
        post_logout_uris=[],
        grant_types=["client_credentials"],
        scopes=list(scopes),
        first_party=False,
        name="教务系统同步",
    )


@pytest.fixture
def reader(idp_app: Flask) -> Reader:
    """A directory.read reader of ``idp_app``."""
    client = idp_app.test_client()
    rp = service_client(idp_app)
    answer = token_request(client, rp, {"grant_type": "client_credentials"})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return Reader(idp_app, client, rp, answer.get_json()["access_token"])


def scim_error(response: Any, status: int, scim_type: str | None = None) -> dict[str, Any]:
    """Assert ``response`` is a SCIM Error (RFC 7644 §3.12) with ``status``; its body."""
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    assert response.mimetype == SCIM_TYPE
    body: dict[str, Any] = response.get_json()
    assert body["schemas"] == [ERROR_SCHEMA] and body["status"] == str(status) and body["detail"]
    if scim_type:
        assert body["scimType"] == scim_type
    return body


def last_refusal(app: Flask) -> AuditEvent | None:
    with app.app_context():
        return db.session.scalar(
            db.select(AuditEvent)
            .where(AuditEvent.action == "directory.read")
            .order_by(AuditEvent.id.desc())
            .limit(1)
        )


# --- Hostile filters -----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/Users", "/Groups"])
@pytest.mark.parametrize(
    "expression",
    [
        'displayName eq "\\ud800"',  # a JSON-escaped lone surrogate: no driver encodes it
        'displayName co "\\udfff"',
        'displayName sw "a\\ud83d"',  # half of an escaped emoji
        'meta.lastModified gt "0001-01-01T00:00:00+14:00"',  # before year 1 in UTC
        'meta.lastModified lt "9999-12-31T23:59:59-14:00"',  # after year 9999 in UTC
        'meta.created gt "0001-01-01T00:00:00+01:00"',
    ],
)
def test_hostile_filter_values_are_invalid_filter(
    reader: Reader, path: str, expression: str
) -> None:
    """Values no database can hold or datetime can express are 400 invalidFilter, not a 500."""
    scim_error(reader.get(path, filter=expression), 400, "invalidFilter")
    refusal = last_refusal(reader.app)
    assert refusal is not None and refusal.outcome == "failure"


def test_a_lone_surrogate_outside_a_string_is_refused_by_the_parser() -> None:
    """HTTP cannot carry one (bad bytes decode to U+FFFD), but a caller of the parser can."""
    for text in ('userName eq "\ud800"', '\udfff eq "a"'):
        with pytest.raises(FilterError, match="surrogate"):
            parse_filter(text)


# --- Failures ------------------------------------------------------------------------------


def test_an_unexpected_failure_is_a_scim_500_rolled_back_and_logged(
    reader: Reader, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug answers a SCIM Error naming the request id, never the HTML error page."""
    rollbacks: list[Session] = []
    rollback = Session.rollback

    def counted(session: Session) -> None:
        rollbacks.append(session)
        rollback(session)

    def broken(*args: Any, **kwargs: Any) -> Any:
        rollbacks.clear()
        raise RuntimeError("a bug")

    monkeypatch.setattr(scim, "list_users", broken)
    monkeypatch.setattr(Session, "rollback", counted)
    answer = reader.client.get(
        "/scim/v2/Users", headers={**bearer(reader.token), "X-Request-ID": "req-12345678"}
    )
    body = scim_error(answer, 500)
    assert "req-12345678" in body["detail"] and "a bug" not in body["detail"]
    assert "Retry-After" not in answer.headers and answer.headers["Cache-Control"] == "no-store"
    assert rollbacks, "the failed transaction was not rolled back"
    failure = next(r for r in caplog.records if r.getMessage().startswith("scim: GET /scim/v2"))
    assert failure.exc_info is not None and reader.rp.client_id in failure.getMessage()


@pytest.fixture
def database_down(make_idp: AppFactory) -> Iterator[Flask]:
    """An IdP whose PostgreSQL refuses connections (nothing listens on port 1)."""
    app = create_app(make_idp.config(DATABASE_URL="postgresql+psycopg://postgres@127.0.0.1:1/idp"))
    yield app
    with app.app_context():
        app.extensions["sqlalchemy"].engine.dispose()


def test_a_database_outage_is_a_scim_503_with_retry_after(database_down: Flask) -> None:
    """Whether the token lookup or the refusal's audit meets the outage: 503, retry later."""
    client = database_down.test_client()
    for headers in (bearer("a" * 43), {}):
        answer = client.get("/scim/v2/Users", headers=headers)
        scim_error(answer, 503)
        assert answer.headers["Retry-After"] == str(RETRY_AFTER_OUTAGE)


def test_a_failure_after_the_view_is_a_scim_error(make_idp: AppFactory) -> None:
    """Flask hands a failure in a response hook to the handler as InternalServerError: its
    cause still decides (an outage here), and the answer is still SCIM."""
    app = make_idp(PROPAGATE_EXCEPTIONS=False)
    failures = iter([sql_errors.OperationalError("SELECT 1", {}, Exception("gone"))])

    @app.after_request
    def store_gone(response: Any) -> Any:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return response

    answer = app.test_client().get("/scim/v2/ServiceProviderConfig")
    scim_error(answer, 503)
    assert answer.headers["Retry-After"] == str(RETRY_AFTER_OUTAGE)


def test_an_http_error_raised_under_scim_keeps_its_status_and_headers(
    reader: Reader, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Werkzeug HTTP error is a refusal: its status and Retry-After, as a SCIM Error."""

    def busy(*args: Any, **kwargs: Any) -> Any:
        raise TooManyRequests(retry_after=7)

    monkeypatch.setattr(scim, "list_groups", busy)
    answer = reader.get("/Groups")
    scim_error(answer, 429)
    assert answer.headers["Retry-After"] == "7"
    refusal = last_refusal(reader.app)
    assert refusal is not None and '"status": 429' in (refusal.detail or "")


# --- not ( ) and absent attributes ---------------------------------------------------------


def test_not_is_the_complement_for_people_without_a_department(
    reader: Reader, make_user: MakeUser
) -> None:
    """Someone with no department (or no verified email) is outside ``X``, so inside
    ``not (X)`` and ``ne``; SQL's NOT(NULL) must not drop them."""
    placed = make_user("2024100001", verified_email="a@lut.edu.cn")
    unplaced = make_user("2024100002")
    with reader.app.app_context():
        school = ensure_department("CS", "计算机学院")
        db.session.execute(
            db.update(User).where(User.id == placed.id).values(department_id=school.id)
        )
        db.session.commit()
        school_id = school.id
    both = [str(placed.id), str(unplaced.id)]
    outside = [str(unplaced.id)]
    for inner in (
        f'{ENTERPRISE}:department eq "计算机学院"',
        f'groups.value eq "dept-{school_id}"',
        f'{CAMPUS_USER}:departmentCode eq "CS"',
        'emails.value eq "a@lut.edu.cn"',
    ):
        assert reader.ids("/Users", inner) == [str(placed.id)], inner
        assert reader.ids("/Users", f"not ({inner})") == outside, inner
        assert reader.ids("/Users", f"not (not ({inner}))") == [str(placed.id)], inner
        assert sorted(reader.ids("/Users", f"{inner} or not ({inner})")) == both, inner
        if " eq " in inner and not inner.startswith("groups"):
            assert reader.ids("/Users", inner.replace(" eq ", " ne ")) == outside, inner
    assert reader.ids("/Users", f'{ENTERPRISE}:department ne "数学学院"') == both


def test_groups_filtered_on_meta_created_find_positions(
    reader: Reader, make_user: MakeUser
) -> None:
    """meta.created is not recorded for departments: it matches no department, and the filter
    still answers with the positions (README: ``meta.created`` (positions))."""
    head = make_user("T7001", kind="staff")
    with reader.app.app_context():
        school = ensure_department("CS", "计算机学院")
        position = appoint(db.session.get(User, head.id), school, PositionKind.HEAD)
        db.session.commit()
        department_id, position_id = f"dept-{school.id}", f"pos-{position.id}"
    since = 'meta.created gt "2000-01-01T00:00:00Z"'
    assert reader.ids("/Groups", since) == [position_id]
    assert reader.ids("/Groups", f'{CAMPUS_GROUP}:kind eq "position" and {since}') == [position_id]
    assert reader.ids("/Groups", f"not ({since})") == [department_id]
    assert reader.ids("/Groups", "meta.created pr") == [position_id]
    bad = reader.get("/Groups", filter='meta.created gt "yesterday"')
    scim_error(bad, 400, "invalidFilter")


# --- The registration as it is now ---------------------------------------------------------


def edit_registration(app: Flask, rp: RelyingParty, **fields: Any) -> None:
    """Change a client's registration, as an administrator would."""
    with app.app_context():
        client = db.session.scalar(db.select(OidcClient).filter_by(client_id=rp.client_id))
        assert client is not None
        for name, value in fields.items():
            setattr(client, name, value)
        db.session.commit()


def test_removing_directory_read_from_the_registration_ends_existing_tokens(
    idp_app: Flask,
) -> None:
    """The token still names the scope; the client no longer has it: 403 insufficient_scope."""
    client = idp_app.test_client()
    rp = service_client(idp_app, scopes=("directory.read", "reports.read"))
    token = token_request(client, rp, {"grant_type": "client_credentials"}).get_json()
    assert "directory.read" in token["scope"].split()
    edit_registration(idp_app, rp, scopes=["reports.read"])
    answer = client.get("/scim/v2/Users", headers=bearer(token["access_token"]))
    scim_error(answer, 403)
    assert 'error="insufficient_scope"' in answer.headers["WWW-Authenticate"]


def test_removing_the_client_credentials_grant_ends_existing_tokens(reader: Reader) -> None:
    """A client no longer registered for the grant holds no valid directory token: 401."""
    assert reader.get("/Users").status_code == 200
    edit_registration(reader.app, reader.rp, grant_types=["authorization_code"])
    answer = reader.get("/Users")
    scim_error(answer, 401)
    assert 'error="invalid_token"' in answer.headers["WWW-Authenticate"]
    refusal = last_refusal(reader.app)
    assert refusal is not None and refusal.outcome == "denied"
