"""Who may use the console (/admin), and on whom: the role, two-step and target checks.

Every console view is wrapped in :func:`console_required`; other console blueprints (client
registry, departments, policy…) use the same decorator and add their nav entries to
:data:`CONSOLE_SECTIONS` with :func:`add_console_section`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, overload

from flask import current_app, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import lazy_gettext as _l
from werkzeug.routing import BuildError
from werkzeug.wrappers import Response

from idp.audit.operations import DENIED, record
from idp.auth.sessions import current_session, current_user
from idp.directory.models import User
from idp.directory.roles import Role, has_role, user_roles
from idp.extensions import db
from idp.mfa.operations import totp_enabled

View = Callable[..., ResponseReturnValue]

#: Where a console user without an authenticator app is sent; the first endpoint that exists
#: wins (the mfa feature owns the page), the security centre otherwise.
TOTP_SETUP_ENDPOINTS = ("mfa.enable", "security.index")


@dataclass(frozen=True)
class ConsoleSection:
    """One entry of the console's nav: its label, the endpoint it opens, the role it needs."""

    label: Any  # a lazy string, translated when the nav renders
    endpoint: str
    role: Role = Role.ADMIN


#: The console nav, in order. Blueprints add their entries with :func:`add_console_section`.
CONSOLE_SECTIONS: list[ConsoleSection] = []


def add_console_section(label: Any, endpoint: str, role: Role = Role.ADMIN) -> None:
    """Add a nav entry once (apps are built many times in tests; the list is per process)."""
    if any(section.endpoint == endpoint for section in CONSOLE_SECTIONS):
        return
    CONSOLE_SECTIONS.append(ConsoleSection(label, endpoint, role))


add_console_section(_l("控制台首页"), "admin.dashboard", Role.HELPDESK)
add_console_section(_l("查找账号"), "admin.search", Role.HELPDESK)
add_console_section(_l("审计日志"), "admin.audit", Role.ADMIN)


def console_sections(user: User | None = None) -> list[ConsoleSection]:
    """The nav entries ``user`` (default: the console user of this request) may open."""
    user = user or g.get("console_user")
    if user is None:
        return []
    roles = g.get("console_roles")
    if roles is None or g.get("console_user") is not user:
        roles = user_roles(user)
    shown = []
    for section in CONSOLE_SECTIONS:
        allowed = section.role in roles or Role.ADMIN in roles
        if allowed and section.endpoint in current_app.view_functions:
            shown.append(section)
    return shown


def totp_setup_url() -> str:
    """The page where a user sets up their authenticator app, coming back to the console."""
    for endpoint in TOTP_SETUP_ENDPOINTS:
        if endpoint in current_app.view_functions:
            try:
                return url_for(endpoint, next=url_for("admin.dashboard"))
            except BuildError:
                continue
    return url_for("security.index")


def session_has_totp() -> bool:
    """Whether this SSO session was signed in (or stepped up) with a TOTP code."""
    sso = current_session()
    return sso is not None and "totp" in (sso.methods or "").split(",")


def forbidden_page(
    title: Any, message: Any, link: str | None = None, label: Any = None
) -> Response:
    """A 403 page in the console's words, never cached."""
    response = current_app.make_response(
        (
            render_template(
                "admin/forbidden.html", title=title, message=message, link=link, label=label
            ),
            403,
        )
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def deny(user: User, role: Role, why: str) -> Response:
    """Record a refused console request and answer 403 (nothing else happens)."""
    record(
        "console.denied",
        DENIED,
        actor=user,
        target=user,
        subject=request.path[:255],
        detail={"needs": role.value, "why": why, "method": request.method},
    )
    db.session.commit()
    return forbidden_page(
        _l("没有权限"),
        _l("您没有执行此操作的权限，本次尝试已记录。如需开通请联系管理员。"),
    )


@overload
def console_required(role: View) -> View: ...
@overload
def console_required(role: Role = Role.HELPDESK) -> Callable[[View], View]: ...
def console_required(role: Role | View = Role.HELPDESK) -> Any:
    """Hand the console user to the view once they hold ``role`` and signed in with TOTP.

    Not signed in → /login?next=…; without the role → 403, audited as ``console.denied``;
    without an authenticator app → 403 asking to set one up; a session not verified with a
    TOTP code → the mfa step-up page, then back here.
    """
    if callable(role):  # used bare: @console_required
        return console_required(Role.HELPDESK)(role)
    needed: Role = role

    def decorator(view: View) -> View:
        @functools.wraps(view)
        def wrapper(**kwargs: Any) -> ResponseReturnValue:
            user = current_user()
            back = (
                request.full_path.rstrip("?")
                if request.method == "GET"
                else url_for("admin.dashboard")
            )
            if user is None:
                return redirect(url_for("auth.login", next=back))
            if not has_role(user, needed):
                return deny(user, needed, "role")
            if not totp_enabled(user):
                return forbidden_page(
                    _l("请先启用两步验证"),
                    _l("请先在安全中心启用两步验证（验证器应用），再使用管理控制台。"),
                    link=totp_setup_url(),
                    label=_l("启用两步验证"),
                )
            if not session_has_totp():
                return redirect(url_for("mfa.step_up", next=back))
            g.console_user = user
            g.console_roles = user_roles(user)
            return view(user, **kwargs)

        #: Read by tests (and tools) that list which console pages need which role.
        wrapper.console_role = needed  # type: ignore[attr-defined]
        return wrapper

    return decorator


def is_console_user(user: User) -> bool:
    """Whether ``user`` holds any console role."""
    return bool(user_roles(user))


def can_act_on(actor: User, target: User) -> bool:
    """Whether ``actor`` may change ``target`` in the console.

    Nobody works on their own account here (the security centre is for that, with its own
    re-verification); help desk never touches another console user, so it cannot weaken an
    admin's account and take it over; admins may act on anyone else.
    """
    if actor.id == target.id:
        return False
    if has_role(actor, Role.ADMIN):
        return True
    return has_role(actor, Role.HELPDESK) and not is_console_user(target)
