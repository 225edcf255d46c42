"""Helpers of the catalogue tests: hall users signed in without an IdP round trip (the sign-in
itself is covered by test_auth.py and the browser tests), and demo data."""

from __future__ import annotations

import re
import secrets
from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient

from hall.auth.models import HallSession, HallUser, utcnow
from hall.auth.sessions import SESSION_KEY, digest
from hall.catalog.demo import load_demo_catalog
from hall.extensions import db


def make_hall_user(
    app: Flask,
    account: str = "2024000001",
    kind: str = "student",
    department: str | None = "CS",
    name: str = "张三",
) -> int:
    """A hall user as the IdP would have described them; returns the user's id."""
    with app.app_context():
        user = HallUser(
            sub=f"sub-{account}", account=account, name=name, kind=kind, department_code=department
        )
        db.session.add(user)
        db.session.commit()
        return user.id


def sign_in_as(app: Flask, client: FlaskClient, user_id: int) -> None:
    """Give ``client`` a live hall session of ``user_id``."""
    token = secrets.token_hex(32)
    now = utcnow()
    with app.app_context():
        db.session.add(
            HallSession(
                id=digest(token),
                user_id=user_id,
                created_at=now,
                last_seen_at=now,
                expires_at=now + timedelta(hours=1),
            )
        )
        db.session.commit()
    with client.session_transaction() as flask_session:
        flask_session[SESSION_KEY] = token


def load_demo(app: Flask) -> dict[str, int]:
    """The demo catalogue."""
    with app.app_context():
        return load_demo_catalog()


def csrf_token(client: FlaskClient, path: str = "/services") -> str:
    """A CSRF token valid for ``client``'s session (read from a page with a form)."""
    html = client.get(path).text
    found = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html)
    assert found, f"no CSRF token on {path}"
    return found.group(1)
