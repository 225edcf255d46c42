"""Per-process caches on the protocol hot paths pick up registry and key changes promptly."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from idp.clients import operations, rules
from idp.clients.models import CasService
from idp.clients.operations import find_cas_service, register_cas_service
from idp.extensions import db
from idp.oidc.keys import current_key, ensure_signing_key, rotate_keys

URL = "https://jw.example.edu/login"
NEW_URL = "https://new.example.edu/login"


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(operations, "_clock", fake)
    return fake


def _outside_insert(pattern: str) -> None:
    """Register a service the way another process would: plain SQL, no ORM events here."""
    db.session.execute(
        text(
            "INSERT INTO cas_services (name, service_pattern, attributes, proxy_allowed,"
            " single_logout, enabled, created_at) VALUES ('new', :pattern, '[]', false, true,"
            " true, CURRENT_TIMESTAMP)"
        ),
        {"pattern": pattern},
    )
    db.session.commit()


def test_stored_pattern_re2_cannot_run_matches_nothing_and_is_logged(
    idp_app: Flask, idp_client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    """A pattern stored before RE2 was required (a lookahead) matches no URL — a warning in
    the log, never a 500 — and the services after it still match, cached or not."""
    rules.service_matcher.cache_clear()  # so that this process compiles it afresh
    with idp_app.app_context():
        _outside_insert(r"https://jw\.example\.edu/(?=login).*")
        register_cas_service("jw", r"https://jw\.example\.edu/.*")
        db.session.commit()
    with caplog.at_level("WARNING", logger="idp.clients.operations"):
        response = idp_client.get("/cas/login", query_string={"service": URL})
    assert response.status_code == 302 and response.location.startswith("/login")
    assert "does not compile with RE2" in caplog.text
    with idp_app.app_context():
        register_cas_service("other", r"https://other\.example\.edu/.*")
        found = find_cas_service(URL)  # a transaction changing the registry reads the table
        assert found is not None and found.name == "jw"


def test_service_registered_in_this_process_is_used_at_once(idp_app: Flask, clock: Clock) -> None:
    """Registering (or switching off) a service through the ORM drops the cached registry."""
    with idp_app.app_context():
        assert find_cas_service(NEW_URL) is None  # the registry is now cached (empty)
        service = register_cas_service("new", r"https://new\.example\.edu/.*")
        assert find_cas_service(NEW_URL) is service  # same transaction: read from the table
        db.session.commit()
    with idp_app.app_context():
        found = find_cas_service(NEW_URL)
        assert found is not None and found.name == "new"
        found.enabled = False
        db.session.commit()
    with idp_app.app_context():
        assert find_cas_service(NEW_URL) is None
        db.session.execute(db.update(CasService).values(enabled=True))
        db.session.commit()
    with idp_app.app_context():
        assert find_cas_service(NEW_URL) is not None


def test_service_registered_elsewhere_is_used_within_the_ttl(idp_app: Flask, clock: Clock) -> None:
    """A change this process did not make is seen once the cached copy is TTL seconds old."""
    with idp_app.app_context():
        register_cas_service("jw", r"https://jw\.example\.edu/.*")
        db.session.commit()
    with idp_app.app_context():
        assert find_cas_service(URL) is not None
        assert find_cas_service(NEW_URL) is None
        _outside_insert(r"https://new\.example\.edu/.*")
        clock.now += operations.CAS_SERVICE_CACHE_TTL - 1
        assert find_cas_service(NEW_URL) is None  # the documented bound, not sooner
        clock.now += 1
        found = find_cas_service(NEW_URL)
        assert found is not None and found.name == "new"
        db.session.execute(text("UPDATE cas_services SET enabled = false"))
        db.session.commit()
        clock.now += operations.CAS_SERVICE_CACHE_TTL
        assert find_cas_service(URL) is None and find_cas_service(NEW_URL) is None


def test_cached_service_is_a_session_object(idp_app: Flask, clock: Clock) -> None:
    """What the cache returns is the session's own object: later ``get`` calls find it."""
    with idp_app.app_context():
        register_cas_service("jw", r"https://jw\.example\.edu/.*", attributes=["name"])
        db.session.commit()
    with idp_app.app_context():
        find_cas_service(URL)  # fills the cache
    with idp_app.app_context():
        found = find_cas_service(URL)
        assert found is not None and found in db.session
        assert db.session.get(CasService, found.id) is found
        assert found.attributes == ["name"] and not db.session.dirty


def test_rotation_is_seen_after_the_first_key_exists(
    idp_app: Flask, idp_client: FlaskClient
) -> None:
    """The first-key check stops querying once a key exists; signing still uses the newest."""
    idp_client.get("/oauth2/jwks")
    with idp_app.app_context():
        first = current_key().kid
        new, retired = rotate_keys(now=True)
        db.session.commit()
        assert [k.kid for k in retired] == [first]
        ensure_signing_key()
        assert current_key().kid == new.kid
    kids = {k["kid"] for k in idp_client.get("/oauth2/jwks").get_json()["keys"]}
    assert kids == {first, new.kid}
