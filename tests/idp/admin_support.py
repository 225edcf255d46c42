"""Fixtures of the admin-section tests: a signed-in admin and a signed-in help-desk user.

Import ``admin_fixture`` / ``desk_fixture`` into a test module to use ``admin`` / ``desk``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from idp.directory.models import User
from idp.directory.roles import Role
from tests.idp.conftest import MakeUser, csrf_token
from tests.idp.console_support import console_sign_in, make_console_user


@dataclass
class Signed:
    """A console user with a browser (test client) signed in with password and TOTP."""

    client: FlaskClient
    user: User


@pytest.fixture(name="admin")
def admin_fixture(idp_app: Flask, make_user: MakeUser) -> Signed:
    """An admin signed in to the console."""
    user, secret = make_console_user(idp_app, make_user, Role.ADMIN, account="A0001")
    client = idp_app.test_client()
    console_sign_in(client, user, secret)
    return Signed(client, user)


@pytest.fixture(name="desk")
def desk_fixture(idp_app: Flask, make_user: MakeUser) -> Signed:
    """A help-desk user signed in to the console (not an admin)."""
    user, secret = make_console_user(idp_app, make_user, Role.HELPDESK, account="H0001")
    client = idp_app.test_client()
    console_sign_in(client, user, secret)
    return Signed(client, user)


def post_from(client: FlaskClient, page: str, action: str, data: dict[str, Any]) -> Any:
    """POST ``data`` to ``action`` with the CSRF token of the page it is a button on."""
    return client.post(action, data={"csrf_token": csrf_token(client, page), **data})
