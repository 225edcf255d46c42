"""``flask --app idp purge``: dead sessions and long-expired tokens go, live ones stay."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask

from idp import housekeeping
from idp.auth.models import SsoSession
from idp.auth.sessions import session_ending
from idp.clients.models import OidcClient
from idp.directory.models import utcnow
from idp.extensions import db
from idp.housekeeping import TOKEN_RETENTION, purge_expired
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


def test_purge_ends_expired_sessions_like_a_sign_out_in_batches_once(
    idp_app: Flask, make_user: MakeUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Expired sessions end through ``session_ending``, each batch committed; a rerun sends none."""
    monkeypatch.setattr(housekeeping, "SESSION_BATCH", 2)
    user = make_user("2024000778")
    now = utcnow()
    expired = {f"expired{n}".ljust(64, "0") for n in range(5)}
    ends = {sid: now - timedelta(seconds=1) for sid in expired}
    ends["live".ljust(64, "0")] = now + timedelta(hours=1)
    with idp_app.app_context():
        for sid, end in ends.items():
            db.session.add(
                SsoSession(
                    id=sid, user_id=user.id, expires_at=end, last_seen_at=now, methods="password"
                )
            )
        db.session.commit()

    announced: list[set[str]] = []
    left_in_database: list[int] = []

    def listener(sender: Flask, sessions: list[SsoSession], **_: Any) -> None:
        announced.append({s.id for s in sessions})
        with db.engine.connect() as other:  # what earlier batches committed
            left_in_database.append(len(other.execute(SsoSession.__table__.select()).all()))

    with idp_app.app_context(), session_ending.connected_to(listener):
        first, second = purge_expired(), purge_expired()
    assert [len(batch) for batch in announced] == [2, 2, 1]
    assert set().union(*announced) == expired
    assert left_in_database == [6, 4, 2]
    assert (first.sessions, second.sessions) == (5, 0)
