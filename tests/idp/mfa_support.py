"""Two-step verification set up the way a person does it, for the 两步验证 tests."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

import pyotp
from flask import Flask
from flask.testing import FlaskClient

from idp.directory.models import User
from idp.extensions import db
from idp.mfa import operations as mfa
from idp.social.clients import SocialProfile
from idp.social.operations import bind_identity
from tests.fakes.wechat import WeChatUser

#: Seconds of one TOTP step.
STEP = 30


def enable_totp_with_codes(app: Flask, user: User) -> tuple[str, list[str]]:
    """Turn TOTP on for ``user`` as the security centre does; returns (secret, recovery codes).

    The first code is from a minute ago, so codes of the current step are still unused.
    """
    with app.test_request_context():
        fresh = db.session.get(User, user.id)
        assert fresh is not None
        secret = mfa.enrolment_secret(fresh)
        earlier = time.time() - 2 * STEP
        codes = mfa.confirm_enrolment(fresh, pyotp.TOTP(secret).at(earlier), at=earlier)
        db.session.commit()
    return secret, codes


def park_with_wechat(app: Flask, fake: Any, user: User, person: WeChatUser) -> FlaskClient:
    """Bind ``person``'s WeChat to ``user`` and scan it on a fresh browser, which stops at the
    code page (/login/verify)."""
    with app.app_context():
        profile = SocialProfile("wechat", person.unionid or "", person.openid, person.unionid)
        bind_identity(db.session.get(User, user.id), profile, via="security")
        db.session.commit()
    client = app.test_client()
    provider_page = client.get("/login/wechat", query_string={"next": "/security"}).location
    callback = urlsplit(fake.scan(provider_page, wechat_user=person))
    back = client.get(f"{callback.path}?{callback.query}")
    assert back.status_code == 302 and back.location == "/login/verify"
    return client
