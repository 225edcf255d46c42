"""IdP test helpers: a user factory, signing in through the real pages, reading the outbox."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp.account.codes import DELIVERIES
from idp.directory.models import User, utcnow
from idp.directory.operations import create_user
from idp.extensions import db
from shared.messaging import MAIL_FILE, SMS_FILE, read_records
from tests.fakes.recorder import Recorder, recording_server

PASSWORD = "Hongliu2024xy"
ID_NUMBER = "620102199901011239"

MakeUser = Callable[..., User]


@pytest.fixture
def make_user(idp_app: Flask) -> MakeUser:
    """Create an account: active with a verified security phone unless told otherwise."""
    counter = iter(range(1, 10_000))

    def make(
        account: str | None = None,
        *,
        verified_phone: str | None = "13800138000",
        verified_email: str | None = None,
        **overrides: Any,
    ) -> User:
        n = next(counter)
        values: dict[str, Any] = {
            "name": "张三",
            "password": PASSWORD,
            "id_number": ID_NUMBER,
        }
        values.update(overrides)
        with idp_app.app_context():
            user = create_user(account or f"2024{n:06d}", **values)
            if verified_phone:
                user.phone, user.phone_verified_at = verified_phone, utcnow()
            if verified_email:
                user.email, user.email_verified_at = verified_email, utcnow()
            db.session.commit()
            db.session.refresh(user)
            db.session.expunge(user)
        return user

    return make


def form_tokens(client: FlaskClient, url: str) -> dict[str, str]:
    """The CSRF token of the form on ``url``, and its single-use form token (``once``) if any."""
    page = client.get(url).get_data(as_text=True)
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert match, f"no CSRF token on {url}"
    tokens = {"csrf_token": match.group(1)}
    once = re.search(r'name="once"[^>]*value="([^"]+)"', page)
    if once:
        tokens["once"] = once.group(1)
    return tokens


def csrf_token(client: FlaskClient, url: str) -> str:
    """The CSRF token of the form on ``url``."""
    return form_tokens(client, url)["csrf_token"]


def post_form(client: FlaskClient, url: str, data: dict[str, Any], **kwargs: Any) -> Any:
    """POST ``data`` to ``url`` with the tokens its page carries (:func:`form_tokens`)."""
    return client.post(url, data={**form_tokens(client, url), **data}, **kwargs)


def sign_in(client: FlaskClient, identifier: str, password: str = PASSWORD, **extra: Any) -> Any:
    """Sign in through /login; returns the response."""
    return post_form(client, "/login", {"identifier": identifier, "password": password, **extra})


def settle_deliveries(app: Flask) -> None:
    """Wait for the codes and notices sent in the background so far."""
    for delivery in filter(None, map(app.extensions.get, DELIVERIES)):
        assert delivery.wait_idle(10), "a code or notice is still being sent after 10 s"


def last_code(app: Flask, kind: str = "sms", to: str | None = None) -> str:
    """The newest code sent by SMS (or mail) to ``to``, read from the outbox.

    Codes sent in the background (SMS sign-in) are waited for first.
    """
    settle_deliveries(app)
    records = read_records(app.config["OUTBOX_DIR"], SMS_FILE if kind == "sms" else MAIL_FILE)
    if to is not None:
        records = [r for r in records if r["to"] == to]
    assert records, f"no {kind} sent to {to}"
    return str(records[-1]["code"])


def outbox_count(app: Flask, kind: str = "sms") -> int:
    """How many messages of ``kind`` the outbox holds (once background sends are done)."""
    settle_deliveries(app)
    return len(read_records(app.config["OUTBOX_DIR"], SMS_FILE if kind == "sms" else MAIL_FILE))


def session_count(app: Flask, user: User) -> int:
    """How many SSO sessions ``user`` has."""
    from idp.auth.models import SsoSession

    with app.app_context():
        return db.session.query(SsoSession).filter_by(user_id=user.id).count()


def solve_captcha(app: Flask, client: FlaskClient) -> str:
    """Fetch a CAPTCHA image and read its answer from the store (as a person reads the image)."""
    from shared.factory import get_store

    with client.get("/captcha.png") as image:
        assert image.status_code == 200 and image.mimetype == "image/png"
    with client.session_transaction() as session:
        challenge = session["captcha_id"]
    with app.app_context():
        answer = get_store().get(f"captcha:{challenge}")
    assert answer
    return str(answer)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    """A recording HTTP server on 127.0.0.1 (CAS proxy callbacks, single logout)."""
    with recording_server() as rec:
        yield rec
