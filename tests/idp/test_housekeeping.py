"""``flask --app idp purge``: dead sessions and long-expired tokens go, live ones stay."""

from __future__ import annotations

import json
from datetime import timedelta

from flask import Flask

from idp.auth.models import SsoSession
from idp.clients.models import OidcClient
from idp.directory.models import utcnow
from idp.extensions import db
from idp.housekeeping import TOKEN_RETENTION
from idp.oidc.models import OAuthToken
from tests.idp.conftest import MakeUser
from tests.idp.oidc_support import register


def test_purge_removes_dead_sessions_and_old_tokens_only(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """Expired and idle sessions and tokens dead past the retention go; the rest stay."""
    user = make_user("2024000777")
    rp = register(idp_app)
    now = utcnow()
    idle = timedelta(seconds=idp_app.config["SESSION_IDLE_TIMEOUT"])
    long_ago = now - TOKEN_RETENTION - timedelta(hours=1)
    with idp_app.app_context():
        client = db.session.scalars(db.select(OidcClient).filter_by(client_id=rp.client_id)).one()

        def session(name: str, expires: timedelta, seen: timedelta, remember: bool) -> None:
            db.session.add(
                SsoSession(
                    id=name.ljust(64, "0"), user_id=user.id, expires_at=now + expires,
                    last_seen_at=now - seen, methods="password", remember=remember,
                )
            )  # fmt: skip

        session("live", timedelta(hours=1), timedelta(0), False)
        session("remembered", timedelta(days=5), idle * 3, True)
        session("expired", -timedelta(seconds=1), timedelta(0), True)
        session("idle", timedelta(hours=1), idle + timedelta(seconds=1), False)

        def token(name: str, access_end: object, refresh_end: object) -> None:
            db.session.add(
                OAuthToken(
                    access_token_hash=name.ljust(64, "a"), refresh_token_hash=None,
                    client_id=client.id, user_id=user.id, family_id=name,
                    access_expires_at=access_end, refresh_expires_at=refresh_end,
                )
            )  # fmt: skip

        token("fresh", now + timedelta(minutes=5), now + timedelta(days=30))
        token("refreshable", long_ago, now + timedelta(days=1))
        token("recent", now - timedelta(days=1), None)
        token("dead", long_ago, None)
        token("deadboth", long_ago, long_ago)
        db.session.commit()

    result = idp_app.test_cli_runner().invoke(args=["purge", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"sessions": 2, "tokens": 2}
    with idp_app.app_context():
        sessions = {s.id.rstrip("0") for s in db.session.scalars(db.select(SsoSession))}
        tokens = {t.family_id for t in db.session.scalars(db.select(OAuthToken))}
    assert sessions == {"live", "remembered"}
    assert tokens == {"fresh", "refreshable", "recent"}
