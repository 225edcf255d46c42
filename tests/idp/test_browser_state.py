"""What a browser holds besides the SSO cookie: the Flask session (CSRF secret, wizard flows).

It has the IdP's own ``__Host-`` name over HTTPS, so that a sibling subdomain cannot plant one;
its CSRF secret is new at every sign-in and at a step-up, and it is emptied at sign-out.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pyotp
from flask import Flask

from idp.auth.sessions import cookie_name
from idp.directory.roles import Role
from tests.conftest import AppFactory
from tests.idp.conftest import PASSWORD, MakeUser, csrf_token, post_form, sign_in
from tests.idp.console_support import enable_totp, give_role

HTTPS = "https://idp.example.edu"


def set_cookie_names(response: Any) -> set[str]:
    return {header.split("=", 1)[0] for header in response.headers.getlist("Set-Cookie")}


def test_every_cookie_is_host_only_over_https(make_idp: AppFactory) -> None:
    """Over HTTPS the Flask session is ``__Host-`` like the SSO cookie: a page on another
    subdomain of the school cannot set it in a visitor's browser."""
    app = make_idp(SESSION_COOKIE_SECURE=True)
    names = set_cookie_names(app.test_client().get("/login", base_url=HTTPS))
    assert names == {"__Host-hongliu_idp"}


def test_a_planted_session_is_worthless_after_signing_in(
    idp_app: Flask, make_user: MakeUser
) -> None:
    """A Flask session someone else made (and so its CSRF token) does not carry over into the
    victim's signed-in browser: the sign-in gives it a new CSRF secret."""
    make_user("2024000501")
    attacker = idp_app.test_client()
    known_token = csrf_token(attacker, "/login")
    planted = attacker.get_cookie(idp_app.config["SESSION_COOKIE_NAME"])
    assert planted is not None
    victim = idp_app.test_client()
    victim.set_cookie(idp_app.config["SESSION_COOKIE_NAME"], planted.value)
    assert sign_in(victim, "2024000501").status_code == 302
    forged = victim.post("/security/sessions/end-others", data={"csrf_token": known_token})
    assert forged.status_code == 400
    own_token = csrf_token(victim, "/security")
    ended = victim.post("/security/sessions/end-others", data={"csrf_token": own_token})
    assert ended.status_code == 302


def test_signing_out_empties_the_browser_state(idp_app: Flask, make_user: MakeUser) -> None:
    """After 退出登录 a form token of the signed-in person is refused, and the goodbye message
    still shows."""
    make_user("2024000503")
    browser = idp_app.test_client()
    sign_in(browser, "2024000503")
    token = csrf_token(browser, "/security")
    bye = browser.post("/logout", data={"csrf_token": token}, follow_redirects=True)
    assert "您已安全退出" in bye.get_data(as_text=True)
    stale = browser.post("/login", data={"csrf_token": token, "identifier": "x", "password": "y"})
    assert stale.status_code == 400


def test_step_up_gives_the_session_a_new_id(idp_app: Flask, make_user: MakeUser) -> None:
    """A second factor verified later (the console asks for it) raises what the session may
    do: a copy of the cookie taken before does not get the raised rights."""
    user = make_user("9000000801", name="服务台")
    give_role(idp_app, user, Role.HELPDESK)
    browser = idp_app.test_client()
    assert sign_in(browser, user.account).status_code == 302
    with idp_app.app_context():
        name = cookie_name()
    before = browser.get_cookie(name)
    assert before is not None
    secret = enable_totp(idp_app, user)
    asked = browser.get("/admin")
    assert asked.status_code == 302 and "/mfa/verify" in asked.location
    verified = post_form(
        browser, asked.location, {"code": pyotp.TOTP(secret).now(), "next": "/admin"}
    )
    assert verified.status_code == 302
    assert browser.get("/admin").status_code == 200
    after = browser.get_cookie(name)
    assert after is not None and after.value != before.value
    copy = idp_app.test_client()
    copy.set_cookie(name, before.value)
    assert copy.get("/admin").status_code != 200


def test_forgetting_trusted_devices_clears_the_host_only_cookie(
    make_idp: AppFactory, make_user: MakeUser
) -> None:
    """Turning 两步验证 off deletes the ``__Host-`` trusted-device cookie in a way browsers
    obey: with ``Secure``, as it was set."""
    app = make_idp(SESSION_COOKIE_SECURE=True)
    user = make_user("2024000502")
    secret = enable_totp(app, user)
    browser = app.test_client()

    def post(path: str, data: dict[str, str]) -> Any:
        page = browser.get(path, base_url=HTTPS).get_data(as_text=True)
        match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
        assert match
        headers = {"Referer": HTTPS + "/"}
        return browser.post(
            path, base_url=HTTPS, headers=headers, data={"csrf_token": match.group(1), **data}
        )

    totp = pyotp.TOTP(secret)
    signed = post("/login", {"identifier": user.account, "password": PASSWORD})
    assert signed.status_code == 302 and "/login/verify" in signed.location
    trusted = post("/login/verify", {"code": totp.now(), "trust": "y"})
    assert "__Host-hongliu_trusted" in set_cookie_names(trusted)
    # The next 30-second step's code: the one just used is refused as a replay.
    off = post("/security/totp/disable", {"password": PASSWORD, "code": totp.at(time.time() + 30)})
    cleared = [h for h in off.headers.getlist("Set-Cookie") if h.startswith("__Host-hongliu_t")]
    assert cleared and "Secure" in cleared[0] and "Max-Age=0" in cleared[0]
