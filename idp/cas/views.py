"""CAS Protocol 3.0 endpoints under ``/cas/``: login, logout, the validation family and proxy.

Views parse, call :mod:`idp.cas.tickets` and answer; nothing a client sends ends in a 500 —
an unexpected problem becomes the protocol's ``INTERNAL_ERROR``.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable
from datetime import datetime
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from idp.audit.operations import DENIED, FAILURE, SUCCESS, record, write
from idp.auth.models import SsoSession
from idp.auth.sessions import current_session, end_session
from idp.cas import responses
from idp.cas.tickets import (
    INTERNAL_ERROR,
    INVALID_REQUEST,
    CasError,
    Grant,
    as_utc,
    check_proxy_callback,
    is_web_url,
    issue_proxy_granting_ticket,
    issue_proxy_ticket,
    issue_service_ticket,
    redeem_ticket,
)
from idp.clients.operations import find_cas_service, policy_admits
from idp.directory.models import utcnow
from idp.extensions import db
from shared.factory import autocommit, get_store

bp = Blueprint(
    "cas",
    __name__,
    url_prefix="/cas",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)

#: Query parameter marking the return from the sign-in page (see :func:`_ask_credentials`).
FRESH_PARAM = "fresh"
#: How long a sign-in started by /cas/login may take and still count as "fresh".
FRESH_TTL = 1800
_FRESH = re.compile(r"[0-9a-f]{32}")
#: Where this browser's markers are kept (the signed Flask session cookie), and how many.
_FRESH_SESSION_KEY = "cas_fresh"
_FRESH_PER_BROWSER = 5


#: Endpoints that spend a ticket or use a PGT: Flask answers HEAD with the GET view, which would.
_SPENDING = frozenset(
    {
        "validate",
        "serviceValidate",
        "proxyValidate",
        "p3/serviceValidate",
        "p3/proxyValidate",
        "proxy",
    }
)


@bp.before_request
def refuse_head() -> ResponseReturnValue | None:
    """Validation is a GET (CAS 3.0 §2.4–2.7). A HEAD — a link checker, a monitoring probe —
    gets 405 and leaves the single-use ticket (or PGT) for the GET the service will send."""
    endpoint = request.path.removeprefix("/cas/")
    if request.method == "HEAD" and endpoint in _SPENDING:
        return Response(status=405, headers={"Allow": "GET"})
    return None


@bp.after_request
def no_cache(response: Response) -> Response:
    """Every CAS answer is personal and one-off: never cached (the specification asks for it)."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def _flag(name: str) -> bool:
    """CAS flags count as set when present, whatever the value, unless it is ``false``."""
    value = request.values.get(name)
    return value is not None and value.strip().lower() != "false"


def _with_ticket(service: str, ticket: str) -> str:
    """``service`` with ``ticket=`` added to its query, before any fragment."""
    base, hash_, fragment = service.partition("#")
    joiner = "" if base.endswith(("?", "&")) else ("&" if "?" in base else "?")
    return f"{base}{joiner}ticket={ticket}{hash_}{fragment}"


def _refuse(message: str, status: int = 403) -> ResponseReturnValue:
    return render_template("cas/refused.html", message=message), status


def _ask_credentials(sso: SsoSession | None) -> ResponseReturnValue:
    """Send the browser to /login, coming back here with a one-time marker.

    The marker remembers when credentials were asked for and which session existed then; on
    return, a newer session with a later ``auth_time`` proves a fresh sign-in, which satisfies
    ``renew`` (no loop) and makes the ticket ``isFromNewLogin``.
    """
    marker = secrets.token_hex(16)
    state = {"at": utcnow().isoformat(), "session_id": sso.id if sso else None}
    get_store().set(f"cas:fresh:{marker}", json.dumps(state), FRESH_TTL)
    # The marker counts only in the browser it was made for (a link carrying it proves nothing
    # elsewhere); a few are kept, for sign-ins started in several tabs.
    mine = [m for m in session.get(_FRESH_SESSION_KEY, []) if isinstance(m, str)]
    session[_FRESH_SESSION_KEY] = [*mine[-(_FRESH_PER_BROWSER - 1) :], marker]
    keep = ("service", "renew", "warn", "method")
    params: dict[str, Any] = {name: request.values[name] for name in keep if name in request.values}
    params[FRESH_PARAM] = marker
    back = url_for("cas.login", **params)
    return redirect(url_for("auth.login", next=back))


def _is_fresh(sso: SsoSession | None) -> bool:
    """True when this request returns from a sign-in that :func:`_ask_credentials` asked for."""
    marker = request.values.get(FRESH_PARAM) or ""
    if sso is None or not _FRESH.fullmatch(marker):
        return False
    mine = session.get(_FRESH_SESSION_KEY)
    if not isinstance(mine, list) or marker not in mine:
        return False  # made in another browser
    session[_FRESH_SESSION_KEY] = [m for m in mine if m != marker]
    raw = get_store().take(f"cas:fresh:{marker}")
    if raw is None:
        return False
    state = json.loads(raw)
    started = datetime.fromisoformat(state["at"])
    return state["session_id"] != sso.id and as_utc(sso.auth_time) >= started


def _deliver(service: str, ticket: str) -> ResponseReturnValue:
    """Send the browser to the service with its ticket: a 303 redirect, or a POSTed form."""
    if request.values.get("method") == "POST":
        return render_template("cas/post.html", service=service, ticket=ticket)
    return redirect(_with_ticket(service, ticket), 303)


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    """统一身份认证 for a CAS service: SSO, renew, gateway, warn and method=POST."""
    service = request.values.get("service") or None
    renew = _flag("renew")
    gateway = _flag("gateway") and not renew  # with both, gateway is ignored
    sso = current_session()
    fresh = _is_fresh(sso)
    if service is None:
        if sso is None or (renew and not fresh):
            return _ask_credentials(sso)
        return render_template("cas/signed_in.html", user=sso.user)
    if not is_web_url(service):
        return _refuse(_("应用地址不正确，无法继续登录。请从应用的登录入口重新进入。"), 400)
    registered = find_cas_service(service)
    if registered is None:
        record("cas.ticket", DENIED, subject=service[:255], detail={"reason": "unregistered"})
        db.session.commit()
        return _refuse(_("该应用未在统一身份认证注册，不能使用统一身份认证登录。"))
    if sso is None or (renew and not fresh):
        if gateway:
            return redirect(service, 303)
        return _ask_credentials(sso)
    user = sso.user
    if not policy_admits(registered, user):
        record("cas.ticket", DENIED, target=user, subject=f"cas:{registered.id}")
        db.session.commit()
        if gateway:
            return redirect(service, 303)
        return _refuse(
            _("您的账号无权访问“%(name)s”。如有疑问，请联系该系统的管理员。", name=registered.name)
        )
    if _flag("warn") and not fresh and request.method != "POST":
        # Single sign-on must not be silent: ask first (the form posts back with its CSRF token).
        return render_template("cas/warn.html", service=service, registered=registered, user=user)
    ticket = issue_service_ticket(registered, service, sso, new_login=fresh)
    record(
        "cas.ticket",
        target=user,
        subject=f"cas:{registered.id}",
        detail={"kind": "ST", "new_login": fresh},
    )
    db.session.commit()
    return _deliver(service, ticket)


@bp.get("/logout")
def logout() -> ResponseReturnValue:
    """退出: end the SSO session everywhere; go back only to a registered ``service``.

    CAS 2's ``url`` parameter is ignored, as the specification requires.
    """
    sso = current_session()
    if sso is not None:
        record("logout", target=sso.user, detail={"via": "cas"})
        end_session(sso)
        db.session.commit()
    service = request.args.get("service")
    if is_web_url(service) and find_cas_service(service) is not None:
        return redirect(service or "", 303)
    return render_template("cas/logged_out.html")


def _format() -> str | None:
    fmt = (request.args.get("format") or responses.XML).upper()
    return fmt if fmt in responses.FORMATS else None


def _audit(outcome: str, grant: Grant | None, code: str | None) -> None:
    detail: dict[str, Any] = {"endpoint": request.path.removeprefix("/cas/")}
    if code:
        detail["code"] = code
    service = request.args.get("service") or request.args.get("targetService")
    if service:
        detail["service"] = service[:300]
    # Written with one plain INSERT rather than a flush: validations are the IdP's most
    # frequent request, and this row is never read back here.
    write(
        "cas.validate",
        outcome,
        target=grant.user if grant else None,
        subject=f"cas:{grant.service_id}" if grant else None,
        detail=detail,
    )
    db.session.commit()


def _guarded(handler: Callable[[str], Response], failure: Callable[..., Response]) -> Response:
    """Run ``handler`` in the requested format; turn any surprise into INTERNAL_ERROR."""
    fmt = _format()
    if fmt is None:
        return failure(INVALID_REQUEST, "format must be XML or JSON", responses.XML)
    try:
        return handler(fmt)
    except Exception:
        db.session.rollback()
        current_app.logger.exception("CAS %s failed", request.path)
        return failure(INTERNAL_ERROR, "The server could not complete the request", fmt)


def _validate(*, allow_proxy: bool, with_attributes: bool) -> Response:
    def handle(fmt: str) -> Response:
        autocommit(db.session)  # reads, then one audit row: no transaction needed
        ticket, service = request.args.get("ticket"), request.args.get("service")
        if not ticket or not service:
            _audit(FAILURE, None, INVALID_REQUEST)
            return responses.validation_failure(
                INVALID_REQUEST, "'ticket' and 'service' are both required", fmt
            )
        grant: Grant | None = None
        try:
            grant = redeem_ticket(ticket, service, allow_proxy=allow_proxy, renew=_flag("renew"))
            pgt_iou = None
            pgt_url = request.args.get("pgtUrl")
            if pgt_url:
                registered = grant.registered
                assert registered is not None  # redeem_ticket just found it
                check_proxy_callback(registered, pgt_url)
                pgt_iou = issue_proxy_granting_ticket(grant, pgt_url)
        except CasError as error:
            _audit(FAILURE, grant, error.code)
            return responses.validation_failure(error.code, error.description, fmt)
        attributes = None
        if with_attributes:
            registered = grant.registered
            released = responses.released_attributes(registered, grant.user) if registered else {}
            attributes = {**released, **responses.protocol_attributes(grant)}
        account = grant.user.account  # read before the commit expires it
        _audit(SUCCESS, grant, None)
        return responses.validation_success(
            account,
            attributes=attributes,
            pgt_iou=pgt_iou,
            proxies=grant.proxies,
            fmt=fmt,
        )

    return _guarded(handle, responses.validation_failure)


@bp.get("/validate")
def validate() -> ResponseReturnValue:
    """CAS 1.0 validation: ``yes`` and the account, or ``no``; proxy tickets always fail."""
    autocommit(db.session)  # reads, then one audit row: no transaction needed
    ticket, service = request.args.get("ticket"), request.args.get("service")
    try:
        if not ticket or not service:
            raise CasError(INVALID_REQUEST, "missing parameters")
        grant = redeem_ticket(ticket, service, allow_proxy=False, renew=_flag("renew"))
    except CasError as error:
        _audit(FAILURE, None, error.code)
        return responses.cas1_answer(None)
    except Exception:
        db.session.rollback()
        current_app.logger.exception("CAS /validate failed")
        return responses.cas1_answer(None)
    account = grant.user.account  # read before the commit expires it
    _audit(SUCCESS, grant, None)
    return responses.cas1_answer(account)


@bp.get("/serviceValidate")
def service_validate() -> ResponseReturnValue:
    """CAS 2.0 service ticket validation (proxy tickets are refused)."""
    return _validate(allow_proxy=False, with_attributes=False)


@bp.get("/proxyValidate")
def proxy_validate() -> ResponseReturnValue:
    """CAS 2.0 validation of service and proxy tickets, listing the proxies."""
    return _validate(allow_proxy=True, with_attributes=False)


@bp.get("/p3/serviceValidate")
def p3_service_validate() -> ResponseReturnValue:
    """CAS 3.0 service ticket validation with attributes."""
    return _validate(allow_proxy=False, with_attributes=True)


@bp.get("/p3/proxyValidate")
def p3_proxy_validate() -> ResponseReturnValue:
    """CAS 3.0 validation of service and proxy tickets with attributes."""
    return _validate(allow_proxy=True, with_attributes=True)


@bp.get("/proxy")
def proxy() -> ResponseReturnValue:
    """A proxy ticket for ``targetService`` in exchange for a proxy-granting ticket."""

    def handle(fmt: str) -> Response:
        pgt, target = request.args.get("pgt"), request.args.get("targetService")
        if not pgt or not target:
            return responses.proxy_failure(
                INVALID_REQUEST, "'pgt' and 'targetService' parameters are both required", fmt
            )
        try:
            ticket, user, service = issue_proxy_ticket(pgt, target)
        except CasError as error:
            record("cas.ticket", FAILURE, detail={"kind": "PT", "code": error.code})
            db.session.commit()
            return responses.proxy_failure(error.code, error.description, fmt)
        record("cas.ticket", target=user, subject=f"cas:{service.id}", detail={"kind": "PT"})
        db.session.commit()
        return responses.proxy_success(ticket, fmt)

    return _guarded(handle, responses.proxy_failure)
