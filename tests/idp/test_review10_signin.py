"""Review of sign-in and two-step verification: a sign-in left half-way in a browser must not
outlive the next person's sign-in there, and odd form values never end in a 500."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from idp.auth.operations import hasher
from idp.auth.passwords import (
    Argon2Params,
    PasswordHasher,
    VerifyResult,
    is_valid_argon2_hash,
)
from idp.directory.models import User
from idp.extensions import db
from tests.idp.conftest import PASSWORD, MakeUser, csrf_token, post_form, sign_in
from tests.idp.mfa_support import enable_totp_with_codes

NEW_PASSWORD = "NewSecret-2025a"


def _password_is(app: Flask, user: User, password: str) -> bool:
    with app.app_context():
        stored = db.session.get(User, user.id)
        assert stored is not None
        return hasher().verify(stored.password_hash, password).ok


def _signed_in_account(app: Flask, client: object) -> str | None:
    page = client.get("/security")  # type: ignore[attr-defined]
    if page.status_code != 200:
        return None
    text = page.get_data(as_text=True)
    for account in ("2024000001", "2024000002"):
        if account in text:
            return account
    return None


def test_next_person_signing_in_does_not_inherit_a_parked_password_change(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """A leaves the forced 修改密码 page on a shared computer; B signs in there and changes
    their own password: it needs B's current password and never touches A's account."""
    first = make_user("2024000001", must_change_password=True)
    second = make_user("2024000002", verified_phone="13900139000")
    client = idp_app.test_client()
    assert sign_in(client, "2024000001").location == "/password/change"
    assert sign_in(client, "2024000002").location == "/"
    page = client.get("/password/change")
    assert page.status_code == 200 and 'name="current"' in page.get_data(as_text=True)
    refused = post_form(
        client, "/password/change", {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
    )
    assert refused.status_code == 400
    assert _password_is(idp_app, first, PASSWORD)
    assert _password_is(idp_app, second, PASSWORD)
    assert _signed_in_account(idp_app, client) == "2024000002"


def test_next_person_signing_in_does_not_inherit_a_parked_two_step_sign_in(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """A stops at the two-step code page; once B signs in in the same browser, the code page
    no longer offers to finish A's sign-in."""
    first = make_user("2024000001")
    make_user("2024000002", verified_phone="13900139000")
    enable_totp_with_codes(idp_app, first)
    client = idp_app.test_client()
    assert sign_in(client, "2024000001").location == "/login/verify"
    assert sign_in(client, "2024000002").location == "/"
    page = client.get("/login/verify")
    assert page.status_code == 302 and page.location == "/login"
    assert _signed_in_account(idp_app, client) == "2024000002"


def test_account_number_typed_in_full_width_signs_in_and_counts_towards_its_lock(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """２０２４０００００１ (a Chinese IME's full-width digits) names the account as a full-width
    phone or ID number does; wrong passwords typed so count towards the account's pause."""
    make_user("2024000001")
    assert sign_in(idp_app.test_client(), "２０２４０００００１").location == "/"
    idp_app.config["LOGIN_CAPTCHA_AFTER"] = 100  # the pause alone, without the CAPTCHA
    attacker = idp_app.test_client()
    for _ in range(5):
        assert sign_in(attacker, "２０２４０００００１", "Wrong-guess-1").status_code == 401
    # The pause follows the account: its ASCII spelling with the right password waits too.
    paused = sign_in(idp_app.test_client(), "2024000001")
    assert paused.status_code == 401 and "账号或密码错误" in paused.get_data(as_text=True)


@pytest.mark.parametrize("raw", ["²", "١", "99999999999999999999999", "-1", "1.5"])
def test_forgetting_a_device_with_an_odd_id_is_refused_not_a_500(
    idp_app: Flask, make_user: MakeUser, raw: str
) -> None:
    """取消信任 with a tampered device id (another script's digit, past any row id) says the
    device does not exist, as for any unknown id."""
    make_user("2024000001")
    client = idp_app.test_client()
    sign_in(client, "2024000001")
    token = csrf_token(client, "/security")
    done = client.post(
        "/security/totp/devices/forget", data={"csrf_token": token, "device_id": raw}
    )
    assert done.status_code == 303
    assert "该设备不存在或已取消信任" in client.get("/security").get_data(as_text=True)


# Legacy and imported hashes -------------------------------------------------------------------

#: An imported argon2id value (not this app's parameters) whose verify would allocate 4 GiB,
#: or run two million passes, or start 1,000 threads.
COSTLY = ["m=4194304,t=1,p=1", "m=8,t=2000000,p=1", "m=8000,t=1,p=1000"]


def _with_params(stored: str, params: str) -> str:
    head, _, rest = stored.partition("$m=")
    return f"{head}${params}${rest.split('$', 1)[1]}"


@pytest.mark.parametrize("params", COSTLY)
def test_argon2_value_with_runaway_cost_is_malformed_not_run(
    monkeypatch: pytest.MonkeyPatch, params: str
) -> None:
    """A corrupt imported argon2 value reads as a wrong password without being computed, as a
    bcrypt cost past 16 or 10 million PBKDF2 rounds do: anyone typing the account number must
    not be able to pin a worker or its memory with it."""
    hasher = PasswordHasher(Argon2Params(memory_kib=1024, time_cost=1))
    costly = _with_params(hasher.hash(PASSWORD), params)
    real = hasher._argon2

    class Watched:
        """argon2-cffi's hasher, failing the test instead of computing the costly value."""

        def verify(self, stored: str, password: Any) -> bool:
            assert stored != costly, "the costly value was computed"
            return real.verify(stored, password)

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

    monkeypatch.setattr(hasher, "_argon2", Watched())
    assert hasher.verify(costly, PASSWORD) == VerifyResult(ok=False, needs_rehash=False)
    assert hasher.verify("{ARGON2}" + costly, PASSWORD).ok is False
    assert not is_valid_argon2_hash(costly)


def test_own_argon2_parameters_verify_even_past_the_import_bounds() -> None:
    """The bounds are for foreign values: hashes made with the configured parameters verify
    whatever an operator configured (here 65 lanes)."""
    hasher = PasswordHasher(Argon2Params(memory_kib=520, time_cost=1, parallelism=65))
    stored = hasher.hash(PASSWORD)
    assert hasher.verify(stored, PASSWORD) == VerifyResult(ok=True, needs_rehash=False)
    other = PasswordHasher(Argon2Params(memory_kib=1024, time_cost=1))
    assert other.verify(stored, PASSWORD).ok is False


def test_common_foreign_argon2_parameters_still_verify() -> None:
    """argon2-cffi's default (64 MiB × 3, 4 lanes) from another system verifies and is
    rehashed with this app's parameters."""
    import argon2

    stored = argon2.PasswordHasher().hash(PASSWORD)
    hasher = PasswordHasher(Argon2Params(memory_kib=1024, time_cost=1))
    assert hasher.verify(stored, PASSWORD) == VerifyResult(ok=True, needs_rehash=True)
    assert is_valid_argon2_hash(stored)
