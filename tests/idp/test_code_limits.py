"""Verification-code rations: per phone per day in separate rations, per address per hour, and
the CAPTCHA asked of heavy senders, none of which parallel requests can get past."""

from __future__ import annotations

import threading
from collections.abc import Callable

from flask import Flask

from idp.account.codes import SMS, Channel, CodeError, send_code, stored_code_key, verify_code
from idp.directory.models import User
from idp.extensions import db
from shared.factory import get_store
from tests.idp.conftest import MakeUser, last_code


def test_daily_ration_per_phone_and_strangers_cannot_use_up_recovery(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """At most CODE_DAILY_LIMIT codes a day to one phone in each ration. SMS sign-in codes
    (anyone who knows the number) and codes to a number being bound (anyone with an account,
    typing someone else's number) have rations of their own, so they cannot block recovery."""
    user = make_user("2024000001", verified_phone="13800138000")
    idp_app.config["CODE_DAILY_LIMIT"] = 3
    idp_app.config["CODE_IP_CAPTCHA_AFTER"] = 100
    channel = Channel(SMS, "13800138000")
    with idp_app.test_request_context("/login"):
        stored = db.session.get(User, user.id)

        def send(purpose: str) -> int:
            get_store().delete(
                f"code-wait:{stored_code_key(purpose, channel, stored.id)}"
            )  # waited
            try:
                send_code(purpose, channel, stored)
            except CodeError as exc:
                assert "今日获取验证码次数已达上限" in exc.message
                return exc.status
            return 200

        assert [send("login") for _ in range(4)] == [200, 200, 200, 429]
        assert [send("bind_phone") for _ in range(2)] + [send("activation") for _ in range(2)] == [
            200,
            200,
            200,
            429,
        ]
        assert [send("recovery") for _ in range(4)] == [200, 200, 200, 429]


def _send_at_once(app: Flask, requests: int) -> list[str]:
    """``requests`` SMS sign-in codes asked for at the same moment from one address, each for
    another number (no 60 s wait between them); what each got: "sent" or the refusal."""
    outcomes: list[str] = []
    barrier = threading.Barrier(requests)

    def ask(number: int) -> None:
        with app.test_request_context("/login", environ_base={"REMOTE_ADDR": "10.8.0.1"}):
            barrier.wait()
            try:
                send_code("login", Channel(SMS, f"1390000{number:04d}"), None, deliver=False)
                outcomes.append("sent")
            except CodeError as exc:
                outcomes.append(exc.message)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def _count(outcomes: list[str], matches: Callable[[str], bool]) -> int:
    return sum(1 for outcome in outcomes if matches(outcome))


def test_parallel_requests_cannot_pass_the_hourly_cap_of_an_address(idp_app: Flask) -> None:
    """20 code requests at once from one address, cap 5: exactly 5 codes, the rest refused."""
    idp_app.config["CODE_IP_HOURLY_LIMIT"] = 5
    idp_app.config["CODE_IP_CAPTCHA_AFTER"] = 100
    outcomes = _send_at_once(idp_app, 20)
    assert outcomes.count("sent") == 5
    assert _count(outcomes, lambda text: "获取验证码过于频繁" in text) == 15


def test_parallel_requests_cannot_skip_the_captcha_of_a_heavy_sender(idp_app: Flask) -> None:
    """A CAPTCHA after 3 codes an hour: 20 requests at once without one get exactly 3 codes;
    the others are asked for the CAPTCHA."""
    idp_app.config["CODE_IP_HOURLY_LIMIT"] = 100
    idp_app.config["CODE_IP_CAPTCHA_AFTER"] = 3
    outcomes = _send_at_once(idp_app, 20)
    assert outcomes.count("sent") == 3
    assert _count(outcomes, lambda text: "请输入图形验证码" in text) == 17


def test_two_accounts_binding_one_number_keep_their_own_codes(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """Anyone can type a number to bind: a second account asking for a code to it within the
    60 s neither sees a wait (which would show someone else is binding it) nor voids the first
    account's code."""
    first, second = make_user("2024000001"), make_user("2024000002")
    channel = Channel(SMS, "13800138000")
    with idp_app.test_request_context("/security/phone"):
        send_code("bind_phone", channel, db.session.get(User, first.id))
        first_code = last_code(idp_app, to="13800138000")
        send_code("bind_phone", channel, db.session.get(User, second.id))  # no wait refused it
        assert verify_code("bind_phone", channel, first_code, first.id) == first.id
