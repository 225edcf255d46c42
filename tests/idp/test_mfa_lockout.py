"""Guessing 两步验证 codes after a correct first factor: every block of five wrong codes pauses
verification twice as long as the one before (15 minutes, 30, an hour… up to a day), so a day
of guessing checks a few dozen codes and the 100th consecutive wrong code stops it for a month
(NIST SP 800-63B 5.2.2). Pauses are counted in the store, per user, for every process.

Tests end a pause by removing its key (what its expiry does) and read how long it was set
for, so they hold for the SQL store and Redis alike.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pyotp
import pytest
from flask import Flask

from idp.audit.models import AuditEvent
from idp.directory.models import User
from idp.extensions import db
from idp.mfa import operations as mfa
from shared.factory import get_store
from tests.idp.conftest import MakeUser, post_form, session_count, sign_in
from tests.idp.console_support import enable_totp

MINUTE = 60
HOUR = 3600
DAY = 86400


def _wrong(secret: str) -> str:
    """A well-formed code that the app does not show now (nor a step either side)."""
    valid = {pyotp.TOTP(secret).at(time.time() + d * 30) for d in (-2, -1, 0, 1, 2)}
    return next(f"{n:06d}" for n in range(10**6) if f"{n:06d}" not in valid)


def _pause_left(user: User) -> float | None:
    """Seconds left of the user's pause, None when not paused."""
    return get_store().ttl(mfa._limit_keys(user)[1])


def _end_pause(user: User) -> None:
    """As if the pause had run out."""
    get_store().delete(mfa._limit_keys(user)[1])


def _guess(user: User, code: str) -> int:
    """One wrong code through verify_totp, committed like a page does; returns the status."""
    with pytest.raises(mfa.MfaError) as refused:
        mfa.verify_totp(user, code)
    db.session.commit()
    return refused.value.status


def _events(app: Flask, user: User, outcome: str) -> list[dict[str, int]]:
    with app.app_context():
        rows = db.session.scalars(
            db.select(AuditEvent)
            .where(
                AuditEvent.actor_id == user.id,
                AuditEvent.action == "mfa.verify",
                AuditEvent.outcome == outcome,
            )
            .order_by(AuditEvent.id)
        )
        return [json.loads(row.detail) if row.detail else {} for row in rows]


@pytest.fixture
def student(idp_app: Flask, make_user: MakeUser) -> Iterator[tuple[User, str]]:
    """An account with 两步验证 on, loaded in a request context; yields (user, secret)."""
    user = make_user("2024000001")
    secret = enable_totp(idp_app, user)
    with idp_app.test_request_context():
        fresh = db.session.get(User, user.id)
        assert fresh is not None
        yield fresh, secret


def test_pauses_double_with_each_block_of_wrong_codes(student: tuple[User, str]) -> None:
    """15 minutes, then 30, then an hour, two…; the right code is refused during a pause."""
    user, secret = student
    wrong = _wrong(secret)
    for expected in (15 * MINUTE, 30 * MINUTE, HOUR, 2 * HOUR, 4 * HOUR):
        assert [_guess(user, wrong) for _ in range(5)] == [401, 401, 401, 401, 429]
        left = _pause_left(user)
        assert left is not None and expected - 5 < left <= expected
        with pytest.raises(mfa.MfaError) as paused:
            mfa.verify_totp(user, pyotp.TOTP(secret).now())
        assert paused.value.status == 429
        _end_pause(user)


def test_pause_message_says_how_long_is_left(student: tuple[User, str]) -> None:
    """Minutes up to an hour, hours beyond; past the last block, whom to ask."""
    user, secret = student
    wrong = _wrong(secret)
    messages = []
    for _ in range(5):
        for _ in range(5):
            with pytest.raises(mfa.MfaError) as refused:
                mfa.verify_totp(user, wrong)
        messages.append(refused.value.message)
        _end_pause(user)
    assert messages[0] == "验证码错误次数过多，请 15 分钟后再试。"
    assert messages[2] == "验证码错误次数过多，请 60 分钟后再试。"
    assert messages[4] == "验证码错误次数过多，请 4 小时后再试。"


def test_a_day_of_guessing_checks_a_few_dozen_codes_and_never_more_than_100(
    idp_app: Flask, student: tuple[User, str]
) -> None:
    """Guessing again the moment each pause ends: at most 35 codes are checked in the first
    day, and the 100th wrong code in a row pauses verification for the month they are kept."""
    user, secret = student
    wrong = _wrong(secret)
    clock = 0.0  # seconds of guessing, pauses included
    checked_by_day: dict[int, int] = {}
    longest = 0.0
    while longest < 2 * DAY and clock < 60 * DAY:
        before = mfa.failures(user)  # counts the codes checked, not those refused unchecked
        assert _guess(user, wrong) in (401, 429)
        day = int(clock // DAY)
        checked_by_day[day] = checked_by_day.get(day, 0) + mfa.failures(user) - before
        left = _pause_left(user)
        if left is not None:
            clock, longest = clock + left, max(longest, left)
            if left < 2 * DAY:
                _end_pause(user)
    assert checked_by_day[0] == 35 and max(checked_by_day.values()) == 35
    assert sum(checked_by_day.values()) == 100 == len(_events(idp_app, user, "failure"))
    assert longest > 29 * DAY
    with pytest.raises(mfa.MfaError) as stopped:
        mfa.verify_totp(user, pyotp.TOTP(secret).now())
    assert stopped.value.status == 429 and "联系网络与信息中心" in stopped.value.message
    assert _events(idp_app, user, "failure")[-1] == {"failures": 100, "paused": 30 * DAY}


def test_right_code_forgets_the_wrong_ones(student: tuple[User, str]) -> None:
    """After a right code, the next wrong ones start again from a 15-minute pause."""
    user, secret = student
    wrong = _wrong(secret)
    for _ in range(10):
        _guess(user, wrong)
        _end_pause(user)
    mfa.verify_totp(user, pyotp.TOTP(secret).now())
    db.session.commit()
    assert mfa.failures(user) == 0
    assert [_guess(user, wrong) for _ in range(5)] == [401, 401, 401, 401, 429]
    left = _pause_left(user)
    assert left is not None and left <= 15 * MINUTE


def test_changing_the_block_size_strands_no_account(
    idp_app: Flask, student: tuple[User, str]
) -> None:
    """Seven wrong codes, then TOTP_MAX_FAILURES lowered to 3: the owner's right code still
    works (counts under the old setting do not leave a month-long refusal behind)."""
    user, secret = student
    wrong = _wrong(secret)
    for _ in range(7):
        _guess(user, wrong)
    _end_pause(user)
    idp_app.config["TOTP_MAX_FAILURES"] = 3
    mfa.verify_totp(user, pyotp.TOTP(secret).now())


def test_guessing_at_the_code_page_is_paused_longer_each_time(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """The reviewer's attack over HTTP: the password known, five guesses whenever the pause
    ends. The second pause is 30 minutes, the answer says so, and each guess is audited."""
    user = make_user("2024000001")
    secret = enable_totp(idp_app, user)
    client = idp_app.test_client()
    wrong = _wrong(secret)
    for minutes in (15, 30):
        assert sign_in(client, "2024000001").location == "/login/verify"
        answers = [post_form(client, "/login/verify", {"code": wrong}) for _ in range(5)]
        assert [a.status_code for a in answers] == [401, 401, 401, 401, 429]
        assert f"请 {minutes} 分钟后再试" in answers[-1].get_data(as_text=True)
        refused = post_form(client, "/login/verify", {"code": pyotp.TOTP(secret).now()})
        assert refused.status_code == 429 and session_count(idp_app, user) == 0
        with idp_app.app_context():
            _end_pause(user)
    assert len(_events(idp_app, user, "failure")) == 10
    assert len(_events(idp_app, user, "denied")) == 2
