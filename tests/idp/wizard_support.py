"""Steps of the 激活账号 / 信息完善 / 找回密码 wizards as a browser takes them."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from idp.directory.models import User
from idp.extensions import db
from tests.idp.conftest import ID_NUMBER, last_code, post_form

NEW_PASSWORD = "Willow-Creek-2025"


def fresh_user(app: Flask, user: User) -> User:
    """``user`` as stored now, detached."""
    with app.app_context():
        fresh = db.session.get(User, user.id)
        assert fresh is not None
        db.session.expunge(fresh)
        return fresh


def identify(client: FlaskClient, url: str, account: str, **overrides: str) -> Any:
    """基础信息验证 with 张三's registered name and ID number unless overridden."""
    return post_form(
        client, url, {"account": account, "name": "张三", "id_number": ID_NUMBER, **overrides}
    )


def send_phone_code(client: FlaskClient, url: str, phone: str) -> None:
    """Ask for an SMS code to ``phone`` on ``url``."""
    sent = post_form(client, url, {"phone": phone, "send": "1"})
    assert sent.status_code == 200, sent.get_data(as_text=True)


def bind_phone(app: Flask, client: FlaskClient, url: str, phone: str) -> Any:
    """Ask for an SMS code to ``phone`` on ``url``, then submit it."""
    send_phone_code(client, url, phone)
    return post_form(client, url, {"phone": phone, "code": last_code(app, to=phone)})


def new_password(client: FlaskClient, url: str, password: str = NEW_PASSWORD) -> Any:
    return post_form(client, url, {"password": password, "confirm": password})
