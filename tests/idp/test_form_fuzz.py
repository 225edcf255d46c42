"""Every form of the IdP, submitted with hostile values by each kind of visitor (anonymous, a
student, the help desk and an admin in the console): no 500, and every refusal a page in
Chinese; a student whose browser asks for English gets every page in English, with no
catalogue text left in Chinese. The crawler and the values are in ``tests/form_fuzz.py``."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from flask import Flask
from flask.testing import FlaskClient

from idp.directory.models import User
from idp.directory.roles import Role
from tests.form_fuzz import Visitor, coverage, fuzz_forms, summary
from tests.idp.cas_support import SERVICE, add_service
from tests.idp.conftest import MakeUser, last_code, post_form, sign_in
from tests.idp.console_support import (
    confirm_action,
    console_sign_in,
    enable_totp,
    make_console_user,
)
from tests.idp.oidc_support import authorize_url, register
from tests.idp.wizard_support import identify

#: 安全中心's 退出 of one device: its list offers this browser's own session too, and the
#: form sent as the page has it would sign the visitor out.
ENDS_OWN_SESSION = re.compile(r"/security/sessions/end$")


def _signed_in_at(path: str) -> Callable[[FlaskClient], bool]:
    def check(client: FlaskClient) -> bool:
        return client.get(path).status_code == 200

    return check


def _password_signed_in(user: User) -> Callable[[FlaskClient], None]:
    def enter(client: FlaskClient) -> None:
        response = sign_in(client, user.account)
        assert response.status_code in (302, 303), response.get_data(as_text=True)[:500]

    return enter


def _not_on(user: User) -> Callable[[str], bool]:
    """Skip the console's actions on the visitor's own account (disabling it, ending its
    sessions, revoking its role) and the pages that end the visitor's own access."""
    own = re.compile(rf"/admin/users/{user.id}/(?:actions|roles)/")

    def skip(url: str) -> bool:
        return bool(own.search(url) or ENDS_OWN_SESSION.search(url))

    return skip


def _visitors(idp_app: Flask, make_user: MakeUser) -> list[Visitor]:
    """Everyone who fills in the IdP's forms, each with an account of their own: strangers, a
    person half-way through each wizard or sign-in step, a student, the help desk, an admin."""
    student = make_user("2024000001", verified_email="student@example.edu.cn")
    # An account of its own: the Chinese student's crawl may have changed the first one's.
    english_student = make_user("2024000008", verified_email="english@example.edu.cn")
    target = make_user("2024000002", name="李四")
    helpdesk, helpdesk_secret = make_console_user(idp_app, make_user, Role.HELPDESK)
    admin, admin_secret = make_console_user(idp_app, make_user, Role.ADMIN)
    pending = make_user("2025000003", pending=True, verified_phone=None)
    recovering = make_user("2025000004", verified_phone="13900002222")
    incomplete = make_user("2025000005", verified_phone=None)
    two_step = make_user("2025000006")
    enable_totp(idp_app, two_step)
    add_service(idp_app)
    third_party = register(idp_app, first_party=False, name="第三方应用")

    def activating(client: FlaskClient) -> None:
        assert identify(client, "/activate", pending.account).location == "/activate/phone"

    def recovering_by_sms(client: FlaskClient) -> None:
        assert identify(client, "/recover", recovering.account).location == "/recover/verify"
        post_form(client, "/recover/verify", {"method": "sms", "send": "1"})
        code = last_code(idp_app, to="13900002222")
        done = post_form(client, "/recover/verify", {"method": "sms", "code": code})
        assert done.location == "/recover/password", done.get_data(as_text=True)[:500]

    # A reset link the help desk sent (its token is the SMS outbox record's code), by a desk of
    # its own: a TOTP code works once, and the visitors sign in with theirs.
    linked = make_user("2025000007", verified_phone="13900003333")
    desk = idp_app.test_client()
    console_sign_in(desk, *make_console_user(idp_app, make_user, Role.HELPDESK))
    sent = confirm_action(desk, f"/admin/users/{linked.id}/actions/reset-link")
    assert sent.status_code == 302, sent.get_data(as_text=True)[:500]
    reset_link = f"/recover/link/{last_code(idp_app, to='13900003333')}"

    console_start = ["/admin", f"/admin/users?q={target.account}", f"/admin/users/{target.id}"]
    return [
        Visitor(
            "anonymous",
            [
                "/",
                "/login",
                "/login?tab=sms",
                "/activate",
                "/recover",
                f"/cas/login?service={SERVICE}",
            ],
        ),
        Visitor(
            "activating (security phone step)",
            ["/activate/phone"],
            enter=activating,
            follow_links=False,  # other pages would restart the wizard
        ),
        Visitor(
            "recovering (new password step)",
            ["/recover/password"],
            enter=recovering_by_sms,
            follow_links=False,
        ),
        Visitor("holding a help-desk reset link", [reset_link], follow_links=False),
        Visitor(
            "signing in without a security phone (信息完善)",
            ["/complete", "/complete?start=1"],
            enter=_password_signed_in(incomplete),
            follow_links=False,
        ),
        Visitor(
            "signing in with two-step verification",
            ["/login/verify", "/login/verify?mode=recovery"],
            enter=_password_signed_in(two_step),
            follow_links=False,
        ),
        Visitor(
            "student",
            [
                "/",
                "/security",
                "/security/phone",
                "/security/email",
                "/security/totp",
                authorize_url(third_party),  # the consent page of a third-party client
            ],
            enter=_password_signed_in(student),
            signed_in=_signed_in_at("/security"),
            skip=_not_on(student),
        ),
        Visitor(
            "student reading English",
            [
                "/",
                "/security",
                "/security/phone",
                "/security/email",
                "/security/totp",
                authorize_url(third_party),
            ],
            enter=_password_signed_in(english_student),
            signed_in=_signed_in_at("/security"),
            skip=_not_on(english_student),
            language="en",
        ),
        Visitor(
            "help desk",
            [
                *console_start,
                "/mfa/verify?next=/security",
                "/mfa/verify?mode=recovery&next=/security",
            ],
            enter=lambda client: console_sign_in(client, helpdesk, helpdesk_secret),
            signed_in=_signed_in_at("/admin"),
            skip=_not_on(helpdesk),
        ),
        Visitor(
            "admin",
            [
                *console_start,
                "/admin/clients",
                "/admin/clients/cas/new",
                "/admin/clients/oidc/new",
                "/admin/departments",
                "/admin/roles",
                "/admin/policy",
                "/admin/import",
                "/admin/audit",
            ],
            enter=lambda client: console_sign_in(client, admin, admin_secret),
            signed_in=_signed_in_at("/admin"),
            skip=_not_on(admin),
        ),
    ]


def test_every_idp_form_survives_hostile_values(idp_app: Flask, make_user: MakeUser) -> None:
    """Crawl from each visitor's start pages, submit each distinct form with empty, huge,
    control-character, full-width, out-of-range and duplicated values: no answer is a 5xx, an
    English error, an empty page or a control character shown back."""
    started = time.perf_counter()
    visitors = _visitors(idp_app, make_user)
    findings, covered = fuzz_forms(idp_app, visitors)
    elapsed = time.perf_counter() - started
    print(f"form fuzz of the IdP: {elapsed:.1f} s\n{coverage(covered)}")
    # The crawl must reach the forms that matter, or a broken start page would pass silently.
    forms = {key for seen in covered.values() for key in seen["forms"]}
    assert any(key.startswith("POST /login [") for key in forms), forms
    assert any("/admin/users/{id}/actions/" in key for key in forms), forms
    assert not findings, summary(findings)
