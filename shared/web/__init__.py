"""Web basics both apps share: layout, languages, security headers, logging, errors, health.

Each ``setup_*`` function binds one concern to an app; the app factories call them in order.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

from flask import Blueprint, Flask, g, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import Babel, gettext
from flask_wtf.csrf import CSRFError, CSRFProtect
from redis import exceptions as redis_errors
from sqlalchemy import exc as sql_errors
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

LOCALES = ("zh_CN", "en")
DEFAULT_LOCALE = "zh_CN"
LANGUAGE_COOKIE = "lang"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
#: Control characters and backslashes: browsers drop tabs and newlines from URLs and read
#: ``/\evil.example`` as another host, so ``/\t/evil.example`` would leave the site.
_UNSAFE_IN_PATH = re.compile(r"[\x00-\x1f\x7f\\]")
#: Control characters no keyboard types: NUL, and the rest of C0 and C1 but TAB, LF and CR (a
#: textarea's) and VT and FF, which PowerPoint and Word put in copied text for line and page
#: breaks (refusing them would throw away a whole form pasted from a document; the hall's forms
#: read them as line breaks). Stored, the others would reach every page, CSV export and XML
#: answer (CAS) showing the value, and XML 1.0 cannot hold them at all.
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")


def content_security_policy(image_origins: Collection[str] = ()) -> str:
    """No inline script or style anywhere: every script and stylesheet is a static file.
    Images come from the site itself, plus ``image_origins`` (a school logo hosted elsewhere)."""
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            " ".join(["img-src 'self' data:", *image_origins]),
            "font-src 'self'",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'self'",
            "frame-ancestors 'none'",
        ]
    )


def default_headers(csp: str) -> tuple[tuple[str, str, str], ...]:
    """Headers every response carries unless its view set them: (lower-cased name, name,
    value)."""
    return tuple(
        (name.lower(), name, value)
        for name, value in (
            ("Content-Security-Policy", csp),
            ("X-Content-Type-Options", "nosniff"),
            ("X-Frame-Options", "DENY"),
            ("Referrer-Policy", "same-origin"),
            ("Cross-Origin-Opener-Policy", "same-origin"),
        )
    )


def logo_origin(logo_url: str | None) -> str | None:
    """The origin of a logo configured on another site (``*_LOGO_URL``), for the CSP."""
    parts = urlsplit(logo_url or "")
    if parts.scheme in ("http", "https") and parts.netloc:
        return f"{parts.scheme}://{parts.netloc}"
    return None


shared_blueprint = Blueprint(
    "hongliu",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/_hongliu/static",
)


def is_local_path(target: str | None) -> bool:
    """True when ``target`` is a path on this site (``/services?q=1``), never anything a
    browser could read as another site: the one rule for every ``next`` (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return False
    if _UNSAFE_IN_PATH.search(target):
        return False
    parts = urlsplit(target)
    return not (parts.scheme or parts.netloc)


def setup_templates(app: Flask) -> None:
    """Register the shared layout and static files, and expose site settings to templates."""
    app.register_blueprint(shared_blueprint)

    @app.context_processor
    def site_context() -> dict[str, Any]:
        return {
            "site_name": app.config["SITE_NAME"],
            "school_name": app.config["SCHOOL_NAME"],
            "logo_url": app.config["LOGO_URL"],
            "help_phone": app.config["HELP_PHONE"],
            "current_locale": current_locale(),
            "locales": LOCALES,
        }


def current_locale() -> str:
    """The locale of this request: ``?lang=``, then the cookie, then Accept-Language."""
    cached: str | None = g.get("locale")
    if cached:
        return cached
    asked = request.args.get("lang")
    if asked in LOCALES:
        g.set_language_cookie = asked
        locale: str = asked
    elif request.cookies.get(LANGUAGE_COOKIE) in LOCALES:
        locale = request.cookies[LANGUAGE_COOKIE]
    else:
        best = request.accept_languages.best_match(["zh-CN", "zh", "en"], default="zh-CN")
        locale = "en" if best == "en" else DEFAULT_LOCALE
    g.locale = locale
    return locale


def setup_i18n(app: Flask, babel: Babel, translation_dirs: list[str]) -> None:
    """Simplified Chinese first, English second; the choice sticks in a cookie."""
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT_LOCALE)
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = ";".join(translation_dirs)
    babel.init_app(app, locale_selector=current_locale)

    @app.template_global()
    def language_url(locale: str) -> str:
        """This page in ``locale``: the query kept (a sign-in's ``next``, a CAS ``service``),
        only ``lang`` replaced."""
        kept = [(k, v) for k, v in request.args.items(multi=True) if k != "lang"]
        return "?" + urlencode([*kept, ("lang", locale)])

    @app.after_request
    def remember_language(response: Response) -> Response:
        chosen = g.get("set_language_cookie")
        if chosen:
            response.set_cookie(
                LANGUAGE_COOKIE,
                chosen,
                max_age=365 * 24 * 3600,
                secure=app.config["SESSION_COOKIE_SECURE"],
                httponly=True,
                samesite="Lax",
            )
        return response


def setup_security_headers(app: Flask) -> None:
    """Headers every response carries; HSTS only when the request came over HTTPS."""

    origin = logo_origin(app.config.get("LOGO_URL"))
    defaults = default_headers(content_security_policy([origin] if origin else []))

    @app.after_request
    def add_headers(response: Response) -> Response:
        headers = response.headers
        # One pass over what the view set, instead of a lookup per header (each a scan that
        # ends in a KeyError): this runs for every response of both apps.
        present = {name.lower() for name, _ in headers.items()}
        for lowered, name, value in defaults:
            if lowered not in present:
                headers.add(name, value)
        if request.is_secure:
            headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        return response


def setup_csrf(app: Flask, csrf: CSRFProtect) -> None:
    """CSRF on every state-changing request, with an explanation the user can act on."""
    csrf.init_app(app)

    @app.errorhandler(CSRFError)
    def csrf_failed(error: CSRFError) -> ResponseReturnValue:
        return error_response(
            400,
            gettext("页面已过期"),
            gettext("页面已过期或表单被重复提交，请返回刷新页面后重试。"),
        )


class RequestIdFilter(logging.Filter):
    """Adds the current request id (or ``-``) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            record.request_id = g.get("request_id", "-")
        except RuntimeError:  # outside a request or app context
            record.request_id = "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers in production."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "at": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(app: Flask) -> None:
    """Log lines carry a request id; JSON in production, plain text elsewhere."""

    @app.before_request
    def assign_request_id() -> None:
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if _REQUEST_ID.match(incoming) else secrets.token_hex(8)
        g.request_started = time.perf_counter()

    @app.after_request
    def echo_request_id(response: Response) -> Response:
        request_id = g.get("request_id")
        if request_id:
            response.headers["X-Request-ID"] = request_id
        return response

    if app.config["ENV"] == "testing":
        return  # pytest's own capture handles test logs
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    if app.config["LOG_FORMAT"] == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s")
        )
    for name in (app.import_name, "shared"):
        logger = logging.getLogger(name)
        logger.handlers = [h for h in logger.handlers if not getattr(h, "_hongliu", False)]
        handler._hongliu = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def _error_texts() -> dict[int, tuple[str, str]]:
    return {
        400: (gettext("请求有误"), gettext("请求内容不完整或格式不正确，请返回检查后重试。")),
        401: (gettext("需要登录"), gettext("请先登录后再访问此页面。")),
        403: (gettext("没有权限"), gettext("您没有访问此页面的权限。如有疑问请联系管理员。")),
        404: (gettext("页面不存在"), gettext("您访问的页面不存在或已被移除，请检查网址。")),
        405: (gettext("请求方式不支持"), gettext("此页面不支持这种访问方式。")),
        413: (
            gettext("提交的内容太大"),
            gettext("提交的内容超过了允许的大小，未被接收。请返回上一页，删减后重试。"),
        ),
        429: (gettext("操作过于频繁"), gettext("您的操作过于频繁，请稍后再试。")),
        500: (gettext("系统繁忙"), gettext("系统出现了问题，我们已记录下来。请稍后再试。")),
        503: (gettext("服务暂不可用"), gettext("服务暂时不可用，请稍后再试。")),
    }


def wants_json() -> bool:
    """True for API clients: JSON preferred over HTML."""
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return (
        best == "application/json"
        and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]
    )


def error_response(status: int, title: str, message: str) -> ResponseReturnValue:
    """An error page (or JSON for API clients) in the user's language."""
    if wants_json():
        return jsonify(error=title, message=message, request_id=g.get("request_id")), status
    return (
        render_template(
            "shared/error.html",
            status=status,
            title=title,
            message=message,
            request_id=g.get("request_id"),
        ),
        status,
    )


#: A dependency that did not answer (the database or the store down, unreachable, timing out,
#: or its connection pool exhausted): nothing is wrong with the request, it may be sent again
#: in a moment, so the answer is 503 with Retry-After rather than 500.
OUTAGES: tuple[type[Exception], ...] = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    sql_errors.OperationalError,
    sql_errors.InterfaceError,
    sql_errors.DisconnectionError,
    sql_errors.TimeoutError,
)
#: Seconds a client is asked to wait after an outage (``Retry-After``).
RETRY_AFTER_OUTAGE = 30


def is_outage(error: BaseException) -> bool:
    """Whether ``error`` is a dependency outage (see :data:`OUTAGES`)."""
    return isinstance(error, OUTAGES)


def setup_error_pages(app: Flask, reset: Callable[[], None] | None = None) -> None:
    """Errors render in the user's language with the right status; 500s are logged with context.

    ``reset`` (the app's database session rollback) runs before an unexpected error's page is
    rendered: the page's own lookups (who is signed in) must not meet the failed transaction.
    A dependency outage (:data:`OUTAGES`) answers 503 服务暂不可用 with ``Retry-After``.
    """

    def failure_page(error: Exception) -> ResponseReturnValue:
        if reset is not None:
            try:
                reset()
            except Exception:  # a dead connection may refuse even the rollback
                app.logger.warning("could not roll back after an error", exc_info=True)
        status = 503 if is_outage(error) else 500
        # The page's own lookups (who is signed in) would only wait on the dependency again.
        g.dependency_down = status == 503
        title, message = _error_texts()[status]
        response = app.make_response(error_response(status, title, message))
        if status == 503:
            response.headers["Retry-After"] = str(RETRY_AFTER_OUTAGE)
        return response

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> ResponseReturnValue:
        status = error.code or 500
        texts = _error_texts()
        # A status without words of its own (416 for a range past a file's end, 431…) takes its
        # class's, so no page falls back to werkzeug's English.
        title, message = texts.get(status) or texts[500 if status >= 500 else 400]
        response = error_response(status, title, message)
        if status == 405 and isinstance(error, HTTPException):
            # Keep the Allow header werkzeug computed.
            resp = app.make_response(response)
            allow = error.get_response().headers.get("Allow")
            if allow:
                resp.headers["Allow"] = allow
            return resp
        return response

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception) -> ResponseReturnValue:
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        return failure_page(error)

    app.extensions["hongliu.failure_page"] = failure_page


def failure_page(app: Flask, error: Exception) -> ResponseReturnValue:
    """The app's page for an unexpected ``error`` (503 for an outage, else 500), rolled back;
    for blueprints that answer their own protocol's errors but fall back to a page."""
    page: Callable[[Exception], ResponseReturnValue] = app.extensions["hongliu.failure_page"]
    return page(error)


def setup_input_guard(app: Flask, *, exempt: Collection[str] = ()) -> None:
    """Refuse a control character (:data:`_CONTROL_CHARACTERS`) in the query or a submitted
    form with a 400 page.

    No keyboard types one. PostgreSQL cannot store a NUL in text (the query would fail with a
    500) and SQLite would keep it silently; the others would be stored as typed, in a service
    or department name, and shown to everyone. Protocol blueprints answering in their own
    formats (``exempt``) check their parameters themselves.
    """

    @app.before_request
    def refuse_control_characters() -> ResponseReturnValue | None:
        if request.blueprint in exempt:
            return None
        fields = [*request.args.items(multi=True), *request.form.items(multi=True)]
        if any(_CONTROL_CHARACTERS.search(value) for _, value in fields):
            return error_response(
                400,
                gettext("请求有误"),
                gettext("提交的内容含有无法识别的字符，请检查后重新输入。"),
            )
        return None


def setup_health(app: Flask, checks: Mapping[str, Callable[[], None]]) -> None:
    """``/healthz``: the process is up; ``/readyz``: dependencies answer, else 503 naming them."""

    @app.get("/healthz")
    def healthz() -> ResponseReturnValue:
        return jsonify(status="ok")

    @app.get("/readyz")
    def readyz() -> ResponseReturnValue:
        failing: dict[str, str] = {}
        for name, check in checks.items():
            try:
                check()
            except Exception as exc:  # any failure means not ready
                app.logger.warning("readiness check %s failed: %s", name, exc)
                failing[name] = type(exc).__name__
        if failing:
            return jsonify(status="unavailable", failing=failing), 503
        return jsonify(status="ok", checked=sorted(checks))
