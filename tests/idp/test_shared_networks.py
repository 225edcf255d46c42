"""``IDP_SHARED_NETWORKS``: the campus NAT addresses many people sign in from get
``IDP_SHARED_NETWORK_SCALE`` times the per-address limits — the sign-in CAPTCHA and the
verification codes' CAPTCHA and hourly cap — so that one address's crowd does not put a CAPTCHA
before everyone, or stop activation-day codes, while any other address keeps the plain limits."""

from __future__ import annotations

import pytest
from flask import Flask

from idp.account.codes import SMS, Channel, CodeError, send_code
from idp.settings import parse_networks
from tests.idp.conftest import sign_in

CAMPUS_NAT, OUTSIDE = "10.20.0.5", "192.0.2.9"


@pytest.fixture
def campus(idp_app: Flask) -> Flask:
    """An IdP told that 10.20.0.0/16 is the campus NAT, with scale 4."""
    idp_app.config["SHARED_NETWORKS"] = parse_networks("10.20.0.0/16, 2001:db8::/32")
    idp_app.config["SHARED_NETWORK_SCALE"] = 4
    return idp_app


def failures_before_captcha(app: Flask, address: str) -> int:
    """Wrong passwords (each for another account number) from ``address`` until the sign-in
    page asks for a CAPTCHA."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    for n in range(1, 40):
        page = sign_in(client, f"20249{n:05d}", "Wrong-password-1")
        assert page.status_code == 401
        if "请输入正确的图形验证码" in page.get_data(as_text=True):
            return n - 1
    raise AssertionError("no CAPTCHA")


def test_sign_in_captcha_from_a_shared_address_comes_scale_times_later(campus: Flask) -> None:
    """LOGIN_IP_CAPTCHA_AFTER 3: an outside address meets the CAPTCHA after 3 failures, the
    campus NAT after 12; per-identifier CAPTCHAs are untouched."""
    campus.config["LOGIN_CAPTCHA_AFTER"] = 100
    campus.config["LOGIN_IP_CAPTCHA_AFTER"] = 3
    assert failures_before_captcha(campus, OUTSIDE) == 3
    assert failures_before_captcha(campus, CAMPUS_NAT) == 12


def codes_sent(app: Flask, address: str, wanted: int) -> int:
    """SMS sign-in codes asked for from ``address``, each to another number, until refused."""
    first = sum(address.encode()) * 100
    for n in range(first, first + wanted):
        with app.test_request_context("/login", environ_base={"REMOTE_ADDR": address}):
            try:
                send_code("login", Channel(SMS, f"139{n:08d}"), None, deliver=False)
            except CodeError as exc:
                assert "获取验证码过于频繁" in exc.message and exc.status == 429
                return n - first
    return wanted


def test_code_cap_of_a_shared_address_is_scale_times_higher(campus: Flask) -> None:
    """CODE_IP_HOURLY_LIMIT 5: 5 codes an hour from outside, 20 from the campus NAT."""
    campus.config["CODE_IP_HOURLY_LIMIT"] = 5
    campus.config["CODE_IP_CAPTCHA_AFTER"] = 100
    assert codes_sent(campus, OUTSIDE, 30) == 5
    assert codes_sent(campus, CAMPUS_NAT, 30) == 20
    assert codes_sent(campus, "2001:db8::7", 30) == 20


def test_code_captcha_of_a_shared_address_is_scale_times_later(campus: Flask) -> None:
    """CODE_IP_CAPTCHA_AFTER 2: the CAPTCHA is asked after 2 codes from outside, 8 from campus."""
    campus.config["CODE_IP_HOURLY_LIMIT"] = 1000
    campus.config["CODE_IP_CAPTCHA_AFTER"] = 2
    for address, expected in ((OUTSIDE, 2), (CAMPUS_NAT, 8)):
        sent = 0
        for n in range(20):
            with campus.test_request_context("/login", environ_base={"REMOTE_ADDR": address}):
                try:
                    send_code(
                        "login", Channel(SMS, f"1370{expected}01{n:04d}"), None, deliver=False
                    )
                except CodeError as exc:
                    assert "请输入图形验证码" in exc.message
                    break
                sent += 1
        assert sent == expected, address


@pytest.mark.parametrize("raw", ["10.0.0.0/33", "campus", "10.0.0.1,,fe80::/200"])
def test_a_bad_network_is_refused_at_start(raw: str) -> None:
    """A typo in IDP_SHARED_NETWORKS stops the IdP at start with a message naming it."""
    with pytest.raises(ValueError, match="is not a network"):
        parse_networks(raw)


def test_empty_setting_means_no_shared_network() -> None:
    """Unset or blank: every address is counted alone."""
    assert parse_networks("") == () and parse_networks(" , ") == ()
