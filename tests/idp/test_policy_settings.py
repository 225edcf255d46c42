"""安全策略 (/admin/policy): password, lockout and code limits changed without a restart."""

from __future__ import annotations

import pytest
from flask import Flask

from idp import policy_settings
from idp.auth import throttle
from idp.auth.policy import PasswordPolicy, PersonalInfo, check_password
from idp.extensions import db
from idp.policy_settings import PolicySetting, effective_config
from tests.conftest import AppFactory
from tests.idp.admin_support import Signed, admin_fixture, desk_fixture  # noqa: F401
from tests.idp.conftest import PASSWORD, MakeUser, post_form, sign_in
from tests.idp.console_support import events

POLICY = "/admin/policy"


def _min_length(app: Flask) -> int:
    with app.test_request_context():
        return PasswordPolicy.from_config(effective_config()).min_length


def test_min_length_change_reaches_a_second_app_without_restart(
    make_idp: AppFactory,
    idp_app: Flask,
    admin: Signed,
    make_user: MakeUser,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another server process on the same database applies a new minimum within seconds."""
    other = make_idp()  # a second process: its own copy of the overrides
    assert _min_length(other) == 8  # read once, so it holds a cached copy
    response = post_form(
        admin.client, POLICY, {"PASSWORD_MIN_LENGTH": "12", "reason": "等保测评要求"}
    )
    assert response.status_code == 302
    assert _min_length(idp_app) == 12  # the process that saved it sees it at once

    later = policy_settings._clock() + policy_settings.POLICY_CACHE_TTL + 1
    monkeypatch.setattr(policy_settings, "_clock", lambda: later)
    assert _min_length(other) == 12

    user = make_user("2024100001")
    browser = other.test_client()
    sign_in(browser, user.account)
    refused = post_form(
        browser,
        "/password/change",
        {"current": PASSWORD, "password": "Qz7mWx2Lp9", "confirm": "Qz7mWx2Lp9"},
    )
    assert refused.status_code == 400
    assert "密码长度须为 12–64 个字符" in refused.get_data(as_text=True)
    change = events(idp_app, "policy.update")[-1]
    assert change["actor_id"] == admin.user.id
    assert change["detail"]["changes"]["PASSWORD_MIN_LENGTH"] == {"from": None, "to": 12}
    assert change["detail"]["reason"] == "等保测评要求"


def test_out_of_range_values_are_refused_and_nothing_is_saved(
    idp_app: Flask, admin: Signed
) -> None:
    """One bad value refuses the whole form, with a message beside each bad box."""
    response = post_form(
        admin.client,
        POLICY,
        {"PASSWORD_MIN_LENGTH": "3", "CODE_TTL": "abc", "LOCKOUT_EVERY": "4"},
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "须在 6 到 64 之间" in page and "请输入整数" in page
    with idp_app.app_context():
        assert db.session.query(PolicySetting).count() == 0
    assert events(idp_app, "policy.update") == []


def test_min_length_above_max_length_is_refused(idp_app: Flask, admin: Signed) -> None:
    """The minimum may not pass the maximum (the default one included)."""
    response = post_form(
        admin.client, POLICY, {"PASSWORD_MIN_LENGTH": "40", "PASSWORD_MAX_LENGTH": "30"}
    )
    assert response.status_code == 400
    assert "最短长度不能大于最长长度" in response.get_data(as_text=True)
    assert _min_length(idp_app) == 8


def test_policy_page_shows_defaults_and_an_empty_box_restores_them(
    idp_app: Flask, admin: Signed
) -> None:
    """Defaults appear beside each box; clearing an override returns to the server setting."""
    page = admin.client.get(POLICY).get_data(as_text=True)
    assert "默认 8" in page and "默认 300,900,3600" in page
    post_form(admin.client, POLICY, {"LOCKOUT_DURATIONS": "60, 600", "CODE_DAILY_LIMIT": "3"})
    with idp_app.test_request_context():
        config = effective_config()
        assert config["LOCKOUT_DURATIONS"] == (60, 600)
        assert config["CODE_DAILY_LIMIT"] == 3
        assert config["CODE_TTL"] == 300  # untouched settings come from app.config
    post_form(admin.client, POLICY, {"LOCKOUT_DURATIONS": ""})  # other boxes not sent: kept
    with idp_app.test_request_context():
        assert effective_config()["LOCKOUT_DURATIONS"] == (300, 900, 3600)
    with idp_app.app_context():
        assert {row.name for row in db.session.scalars(db.select(PolicySetting))} == {
            "CODE_DAILY_LIMIT"
        }


def test_lockout_threshold_override_applies_to_sign_in(idp_app: Flask, admin: Signed) -> None:
    """With 每失败几次暂停 set to 2, the second wrong password already pauses sign-in."""
    post_form(admin.client, POLICY, {"LOCKOUT_EVERY": "2"})
    with idp_app.test_request_context():
        assert throttle.reserve_attempt("2024999999").allowed
        assert throttle.reserve_attempt("2024999999").allowed
        assert throttle.is_locked("2024999999")


def test_character_classes_rule() -> None:
    """With three classes required, letters+digits alone are refused; adding a capital passes."""
    strict = PasswordPolicy(min_classes=3, min_score=0)
    assert any("3 类" in e for e in check_password("kxqvzt4829", strict, PersonalInfo()))
    assert check_password("Kxqvzt4829", strict, PersonalInfo()) == []
    assert check_password("kxqvzt4829", PasswordPolicy(min_score=0), PersonalInfo()) == []


def test_help_desk_cannot_change_policy(idp_app: Flask, desk: Signed) -> None:
    """Help desk gets 403 and the policy stays as it was."""
    assert desk.client.get(POLICY).status_code == 403
    with idp_app.app_context():
        assert db.session.query(PolicySetting).count() == 0
