"""Sign-in pages: /login, /auth/callback, /logout, and the IdP's /auth/backchannel-logout."""

from __future__ import annotations

import logging

from flask import (
    Blueprint,
    Flask,
    Response,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from werkzeug.wrappers import Response as BaseResponse

from hall.auth import oidc
from hall.auth.logout_tokens import LogoutTokenError, verify_logout_token
from hall.auth.operations import record_sign_in, safe_next
from hall.auth.sessions import (
    current_session,
    current_user,
    end_current_session,
    end_sessions,
    setup_sessions,
    start_session,
)
from hall.extensions import csrf, db
from shared.web import current_locale

bp = Blueprint("auth", __name__, template_folder="templates")
log = logging.getLogger(__name__)


def _no_store(response: BaseResponse) -> BaseResponse:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def _ui_locales() -> str:
    return "zh-CN" if current_locale() == "zh_CN" else "en"


def _problem(status: int, title: str, message: str, target: str = "/") -> BaseResponse:
    """A page that says what went wrong and offers to sign in again."""
    page = render_template(
        "auth/problem.html",
        status=status,
        title=title,
        message=message,
        retry=url_for("auth.login", next=target),
        request_id=g.get("request_id"),
    )
    return _no_store(Response(page, status=status))


def _idp_problem(error: oidc.IdpUnavailable, target: str = "/") -> BaseResponse:
    log.error("sign-in through the IdP failed: %s", error)
    if error.status == 503:
        return _problem(
            503,
            _("统一身份认证暂时无法访问"),
            _(
                "红柳易办暂时连接不上统一身份认证平台，无法完成登录。请稍后再试；"
                "如果问题持续，请联系网络与信息中心。"
            ),
            target,
        )
    return _problem(
        502,
        _("统一身份认证响应异常"),
        _(
            "统一身份认证平台返回了无法识别的信息，本次登录未能完成。请稍后再试；"
            "如果问题持续，请联系网络与信息中心。"
        ),
        target,
    )


def _sign_in_problem(error: oidc.SignInError) -> BaseResponse:
    log.warning("sign-in refused (%s): %s", error.kind, error)
    if error.kind == "denied":
        return _problem(
            403,
            _("未能登录"),
            _(
                "统一身份认证平台没有授权您登录红柳易办：您可能取消了授权，"
                "或没有使用本系统的权限。如有疑问，请联系网络与信息中心。"
            ),
        )
    if error.kind == "state":
        return _problem(
            400,
            _("登录请求已失效"),
            _(
                "这个登录链接已过期、已被使用，或不是从本站发起的。"
                "为保护您的账号，本次登录已停止，请重新登录。"
            ),
        )
    return _problem(400, _("登录未完成"), _("登录过程中出现了问题，本次登录未能完成。请重新登录。"))


@bp.get("/login")
def login() -> ResponseReturnValue:
    """登录: send the browser to the IdP, coming back to ``next`` (a path on this site)."""
    target = safe_next(request.args.get("next"))
    if current_user() is not None:
        return redirect(target)
    if not oidc.is_configured():
        log.error("HALL_OIDC_CLIENT_ID / HALL_OIDC_CLIENT_SECRET are not set: nobody can sign in")
        return _problem(
            503,
            _("登录功能尚未配置"),
            _("红柳易办尚未在统一身份认证平台完成注册，暂时无法登录。请联系系统管理员。"),
            target,
        )
    try:
        url = oidc.begin_sign_in(
            url_for("auth.callback", _external=True), target, ui_locales=_ui_locales()
        )
    except oidc.IdpUnavailable as error:
        return _idp_problem(error, target)
    return _no_store(redirect(url))


@bp.get("/auth/callback")
def callback() -> ResponseReturnValue:
    """The OIDC redirect URI: check the answer, record who signed in, start a hall session."""
    try:
        result = oidc.finish_sign_in(request.args)
    except oidc.SignInError as error:
        return _sign_in_problem(error)
    except oidc.IdpUnavailable as error:
        return _idp_problem(error)
    user = record_sign_in(result.claims)
    db.session.flush()
    hall_session = start_session(user, result.sid, result.id_token)
    db.session.commit()
    log.info(
        "sign-in: user %s (account %s, sub %s) from %s, session %s…",
        user.id,
        user.account,
        user.sub,
        request.remote_addr,
        hall_session.id[:8],
    )
    return _no_store(redirect(safe_next(result.target)))


@bp.route("/logout", methods=["GET", "POST"])
def logout() -> ResponseReturnValue:
    """退出: GET asks; POST (CSRF-checked) ends the hall session, then the IdP's."""
    if request.method == "GET":
        page = render_template("auth/logout.html", signed_in=current_session() is not None)
        return _no_store(Response(page))
    ended = end_current_session()
    db.session.commit()
    home = url_for("portal.home", _external=True)
    if ended is None:
        return redirect(home)
    log.info("sign-out: user %s, session %s…", ended.user_id, ended.id[:8])
    flash(_("您已退出红柳易办。"), "success")
    if not ended.id_token or not oidc.is_configured():
        return redirect(home)
    try:
        url = oidc.end_session_url(ended.id_token, home, _ui_locales())
    except oidc.IdpUnavailable as error:
        log.error("could not send the sign-out on to the IdP: %s", error)
        flash(
            _(
                "暂时无法连接统一身份认证平台，您在平台上的登录可能仍然有效。"
                "如在公共电脑上使用，请关闭浏览器。"
            ),
            "warning",
        )
        return redirect(home)
    return _no_store(redirect(url))


def _logout_refused(status: int, error: str, description: str) -> BaseResponse:
    response = jsonify(error=error, error_description=description)
    response.status_code = status
    return _no_store(response)


@bp.post("/auth/backchannel-logout")
@csrf.exempt  # server to server: the logout token's signature is the proof
def backchannel_logout() -> ResponseReturnValue:
    """OIDC Back-Channel Logout: the IdP says an SSO session ended; end its hall sessions."""
    token = request.form.get("logout_token")
    if not token:
        return _logout_refused(400, "invalid_request", "logout_token is missing")
    if not oidc.is_configured():
        return _logout_refused(400, "invalid_request", "this client is not configured")
    try:
        wanted = verify_logout_token(token)
    except LogoutTokenError as exc:
        log.warning("back-channel logout refused: %s", exc)
        return _logout_refused(400, "invalid_request", str(exc))
    except oidc.IdpUnavailable as exc:
        log.error("back-channel logout could not be checked: %s", exc)
        return _logout_refused(503, "temporarily_unavailable", "cannot verify the token now")
    ended = end_sessions(wanted.sub, wanted.sid)
    db.session.commit()
    log.info(
        "back-channel logout: sub %s, sid %s: %d hall session(s) ended",
        wanted.sub or "-",
        wanted.sid or "-",
        ended,
    )
    return _no_store(Response("", status=200))


def setup_auth(app: Flask) -> None:
    """Register the sign-in pages, the OIDC client and ``current_user`` in templates."""
    oidc.setup_oidc_client(app)
    setup_sessions(app)
    app.register_blueprint(bp)
