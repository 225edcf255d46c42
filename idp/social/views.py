"""方式三：微信、企业微信扫码登录, and binding WeChat / WeCom in 信息完善 and the 安全中心.

Every trip to the provider carries a random ``state`` kept server-side for this browser
(:mod:`idp.account.flows`) and taken on return, so a callback is accepted once, in the browser
that started it. A scan of an identity no account has yet waits, for this browser only, until
its owner signs in with password or SMS and confirms (确认绑定, a POST with the CSRF token):
only then is it bound, and the sign-in goes on. The callback address given to the provider is
under ``IDP_ISSUER``, never the request's Host header.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from datetime import datetime
from typing import Any

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    redirect,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from idp.account import flows
from idp.account.codes import ip_needs_captcha
from idp.audit.operations import DENIED, FAILURE, record
from idp.auth.sessions import current_session, current_user
from idp.auth.views import continue_sign_in, no_store, pending_sign_in_user
from idp.directory.models import User, UserStatus, aware, utcnow
from idp.extensions import db
from idp.oidc.claims import issuer
from idp.security.notices import notify_security_change
from idp.security.steps import expired, finish_flow, flow_state, render_page, reverify
from idp.security.views import user_needed
from idp.social.clients import (
    PROVIDERS,
    ErrorKind,
    ProviderError,
    SocialProfile,
    authorize_url,
    enabled_providers,
    fetch_profile,
    provider_enabled,
)
from idp.social.operations import (
    BindingError,
    bind_identity,
    decline_identity,
    find_identity,
    identities_of,
    identity_of,
    provider_name,
    unbind_identity,
)
from shared.factory import get_store
from shared.web import is_local_path

bp = Blueprint(
    "social",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/_social/static",
)

#: Seconds a trip to the QR page may take (WeChat's own QR code lasts about five minutes).
STATE_TTL = 600
#: A scanned identity waiting for its owner to sign in and bind it.
PENDING_FLOW = "social_pending"
PENDING_TTL = 900
#: Where a trip to the provider started: the sign-in page, the security centre, 信息完善.
LOGIN, SECURITY, COMPLETE = "login", "security", "complete"


def _state_flow(provider: str) -> str:
    return f"social_{provider}"


def _provider_or_404(provider: str) -> None:
    if not provider_enabled(provider, current_app.config):
        abort(404)


def _next_target() -> str:
    target = request.values.get("next")
    return target if target and is_local_path(target) else url_for("portal.home")


def _start(provider: str, data: dict[str, Any]) -> Response:
    """Send the browser to the provider's QR page with a fresh single-use state."""
    state = secrets.token_hex(16)
    flows.start_flow(_state_flow(provider), {**data, "state": state}, STATE_TTL)
    # Under the configured public address: the Host header is the client's to choose.
    callback = issuer() + url_for("social.callback", provider=provider)
    return no_store(redirect(authorize_url(provider, current_app.config, callback, state)))


def _problem(
    provider: str, title: str, message: str, status: int, *, purpose: str = LOGIN, nxt: str = ""
) -> ResponseReturnValue:
    """A page saying what happened, with the other ways in (or back to where the user was)."""
    return render_page(
        "social/problem.html",
        status,
        provider=provider,
        provider_label=provider_name(provider),
        title=title,
        message=message,
        purpose=purpose,
        next=nxt if is_local_path(nxt) else None,
    )


# Sign-in ----------------------------------------------------------------------------------


@bp.get("/login/<any(wechat, wecom):provider>")
def login(provider: str) -> ResponseReturnValue:
    """The WeChat / WeCom icon on the sign-in page: off to the provider's QR page."""
    _provider_or_404(provider)
    remember = request.args.get("remember") in ("y", "1", "on", "true")
    return _start(provider, {"purpose": LOGIN, "next": _next_target(), "remember": remember})


@bp.get("/login/<any(wechat, wecom):provider>/callback")
def callback(provider: str) -> ResponseReturnValue:
    """Where the provider sends the browser back, with ``code`` and ``state`` (or no code when
    the person tapped 拒绝 / closed the page)."""
    _provider_or_404(provider)
    flow = flows.finish_flow(_state_flow(provider))
    state = request.args.get("state", "")
    purpose = flow.get("purpose", LOGIN) if flow else LOGIN
    action = "login" if purpose == LOGIN else "social.bind"
    nxt = str(flow.get("next", "")) if flow else ""
    if flow is None or not state or not hmac.compare_digest(str(flow["state"]), state):
        record(action, FAILURE, method=provider, detail={"reason": "state"})
        db.session.commit()
        return _problem(
            provider,
            _("扫码请求已失效"),
            _("该扫码请求已过期、已使用过，或不是从本浏览器发起的。请重新扫码。"),
            400,
            purpose=purpose,
            nxt=nxt,
        )
    code = request.args.get("code", "")
    if not code:
        record(action, FAILURE, method=provider, detail={"reason": "cancelled"})
        db.session.commit()
        return _problem(
            provider,
            _("已取消扫码"),
            _(
                "您在手机上取消了授权，未能通过%(provider)s登录或绑定。",
                provider=provider_name(provider),
            ),
            401,
            purpose=purpose,
            nxt=nxt,
        )
    try:
        profile = fetch_profile(provider, current_app.config, code[:512], get_store())
    except ProviderError as exc:
        current_app.logger.warning("%s exchange failed: %s", provider, exc)
        record(
            action,
            FAILURE,
            method=provider,
            detail={"reason": str(exc.kind), "errcode": exc.errcode},
        )
        db.session.commit()
        return _provider_failed(provider, exc, purpose, nxt)
    if purpose == LOGIN:
        return _sign_in(provider, profile, flow)
    return _bind(provider, profile, flow)


def _provider_failed(
    provider: str, exc: ProviderError, purpose: str, nxt: str
) -> ResponseReturnValue:
    name = provider_name(provider)
    if exc.kind is ErrorKind.CODE:
        title, status = _("二维码已失效"), 400
        message = _("授权已过期或已被使用，请重新扫码。")
    elif exc.kind is ErrorKind.UNAVAILABLE:
        title, status = _("%(provider)s暂时无法访问", provider=name), 503
        message = _("%(provider)s服务暂时没有响应，请稍后重试，或改用其他方式登录。", provider=name)
    else:
        title, status = _("%(provider)s拒绝了请求", provider=name), 502
        message = _(
            "%(provider)s未能确认您的身份（错误码 %(code)s）。请改用其他方式登录，"
            "或联系网络与信息中心。",
            provider=name,
            code=exc.errcode if exc.errcode is not None else "—",
        )
    return _problem(provider, title, message, status, purpose=purpose, nxt=nxt)


def _sign_in(provider: str, profile: SocialProfile, flow: dict[str, Any]) -> ResponseReturnValue:
    identity = find_identity(profile)
    target = flow["next"] if is_local_path(flow.get("next")) else url_for("portal.home")
    if identity is None:
        record("login", FAILURE, method=provider, detail={"reason": "unbound"})
        flows.start_flow(
            PENDING_FLOW,
            {
                "provider": provider,
                "subject": profile.subject,
                "openid": profile.openid,
                "unionid": profile.unionid,
                "nickname": profile.nickname,
                "next": target,
                "remember": bool(flow.get("remember")),
                "at": utcnow().isoformat(),
                # Names this scan on the confirmation page, so 确认绑定 binds what it showed.
                "scan": secrets.token_urlsafe(16),
            },
            PENDING_TTL,
        )
        db.session.commit()
        return no_store(redirect(url_for("social.unbound", provider=provider)))
    user = identity.user
    if user.status in (UserStatus.DISABLED, UserStatus.LOCKED):
        record("login", DENIED, target=user, method=provider, detail={"reason": user.status})
        db.session.commit()
        return _problem(
            provider,
            _("无法登录"),
            _("该账号已被停用或锁定，请联系管理员处理。"),
            403,
        )
    return no_store(continue_sign_in(user, [provider], bool(flow.get("remember")), target))


@bp.get("/login/<any(wechat, wecom):provider>/unbound")
def unbound(provider: str) -> ResponseReturnValue:
    """该微信尚未绑定账号: sign in with account and password (or SMS) to bind it."""
    pending = flows.load_flow(PENDING_FLOW)
    if pending is None or pending.get("provider") != provider:
        flash(_("扫码信息已过期，请重新扫码。"), "error")
        return redirect(url_for("auth.login", tab="qr"))
    link = url_for("social.link", provider=provider)
    return render_page(
        "social/unbound.html",
        provider=provider,
        provider_label=provider_name(provider),
        nickname=pending.get("nickname"),
        link=link,
        original_next=pending.get("next"),
    )


@bp.route("/login/<any(wechat, wecom):provider>/link", methods=["GET", "POST"])
def link(provider: str) -> ResponseReturnValue:
    """After signing in from the 尚未绑定 page: name the waiting identity and the account, and
    bind it only on 确认绑定 (a POST); 暂不绑定 drops it. Either way the sign-in goes on."""
    pending = flows.load_flow(PENDING_FLOW)
    user, sso = current_user(), current_session()
    if pending is None or pending.get("provider") != provider:
        flash(_("扫码信息已过期，请在安全中心重新绑定。"), "error")
        return redirect(url_for("security.index") if user else url_for("auth.login"))
    if user is None or sso is None or aware(sso.auth_time) < datetime.fromisoformat(pending["at"]):
        # Signed out, or signed in before the scan (perhaps someone else's scan left waiting on
        # a shared computer): only the account's owner signing in now may bind it.
        return redirect(url_for("social.unbound", provider=provider))
    scan = str(pending.get("scan", ""))
    if request.method == "GET":
        return render_page(
            "social/link.html",
            provider=provider,
            provider_label=provider_name(provider),
            nickname=pending.get("nickname"),
            user=user,
            scan=scan,
        )
    decision = request.form.get("decision")
    if decision not in ("bind", "skip"):
        abort(400)
    if not hmac.compare_digest(request.form.get("scan", ""), scan):
        # Another scan replaced the one the page showed (another tab): show the new one.
        flash(_("扫码信息已变化，请重新确认。"), "error")
        return redirect(url_for("social.link", provider=provider))
    taken = flows.finish_flow(PENDING_FLOW)
    target = str(pending.get("next") or "")
    target = target if is_local_path(target) else url_for("portal.home")
    if taken is None:
        return redirect(target)  # confirmed or dropped in another tab a moment ago
    name = provider_name(provider)
    if decision == "skip":
        decline_identity(user, provider, via=LOGIN)
        db.session.commit()
        flash(_("未绑定%(provider)s。如需扫码登录，可随时在安全中心绑定。", provider=name))
        return redirect(target)
    profile = SocialProfile(
        provider,
        subject=taken["subject"],
        openid=taken.get("openid"),
        unionid=taken.get("unionid"),
        nickname=taken.get("nickname"),
    )
    try:
        bind_identity(user, profile, via=LOGIN)
    except BindingError as exc:
        db.session.commit()  # the refusal is audited
        flash(str(exc), "error")
        return redirect(target)
    db.session.commit()
    notify_security_change(user, f"{provider}.bind")
    flash(_("%(provider)s已绑定到您的账号，下次可直接扫码登录。", provider=name), "success")
    return redirect(target)


# Binding from the security centre and 信息完善 -----------------------------------------------


def _bind(provider: str, profile: SocialProfile, flow: dict[str, Any]) -> ResponseReturnValue:
    purpose = flow.get("purpose")
    user: User | None
    if purpose == SECURITY:
        user, back = current_user(), url_for("security.index")
    else:
        user, back = pending_sign_in_user(), url_for("account.complete")
    if user is None or user.id != flow.get("user_id"):
        flash(_("操作已超时或已在其他页面完成，请重新开始。"), "error")
        return redirect(back if user else url_for("auth.login"))
    try:
        bind_identity(user, profile, via=str(purpose))
    except BindingError as exc:
        db.session.commit()  # the refusal is audited
        return _problem(
            provider,
            _("无法绑定%(provider)s", provider=provider_name(provider)),
            str(exc),
            409,
            purpose=str(purpose),
        )
    db.session.commit()
    if purpose == SECURITY:
        # A new way in: the phone and email on file hear of it (信息完善 binds during the
        # owner's own first sign-in, and stays quiet).
        notify_security_change(user, f"{provider}.bind")
    flash(
        _("%(provider)s绑定成功，以后可以扫码登录。", provider=provider_name(provider)),
        "success",
    )
    return redirect(back)


def _verified_change(
    user: User,
    provider: str,
    change: str,
    extra: dict[str, Any],
    act: Callable[[], ResponseReturnValue],
) -> ResponseReturnValue:
    """安全中心's two steps for binding or unbinding (``change``) a WeChat / WeCom: 身份验证 by
    login password or SMS code, then a page whose POST does ``act``, once."""
    kind = f"social_{change}_{provider}"
    state = flow_state(kind, user)
    if state is None:
        return expired("security.index")
    context = {"user": user, "provider": provider, "provider_label": provider_name(provider)}
    context |= extra
    template = f"social/{change}.html"
    if state["step"] == "verify":
        outcome = reverify(user, state, kind, f"{change}_{provider}", allow_password=True)
        if isinstance(outcome, Response):
            return outcome
        form, status = outcome
        return render_page(
            template, status, form=form, step=1, need_captcha=ip_needs_captcha(), **context
        )
    if request.method == "POST":
        if finish_flow(kind, user, "new") is None:
            return expired("security.index")
        return act()
    return render_page(template, step=2, **context)


@bp.route("/security/social/<any(wechat, wecom):provider>/bind", methods=["GET", "POST"])
@user_needed
def security_bind(user: User, provider: str) -> ResponseReturnValue:
    """安全中心 → 去绑定: 身份验证 (password or SMS code) first, then the scan.

    A bound WeChat signs in without the password: someone at a computer left signed in must
    not be able to add their own as a way back in.
    """
    _provider_or_404(provider)
    if identity_of(user, provider) is not None:
        flash(
            _(
                "您的账号已绑定%(provider)s。如需更换，请先解除绑定。",
                provider=provider_name(provider),
            ),
            "error",
        )
        return redirect(url_for("security.index"))

    def scan() -> ResponseReturnValue:
        return _start(provider, {"purpose": SECURITY, "user_id": user.id})

    return _verified_change(user, provider, "bind", {}, scan)


@bp.post("/complete/social/<any(wechat, wecom):provider>/bind")
def complete_bind(provider: str) -> ResponseReturnValue:
    """信息完善 → 去绑定 (optional): bind WeChat / WeCom before the sign-in finishes."""
    _provider_or_404(provider)
    user = pending_sign_in_user()
    if user is None:
        flash(_("请先登录。"), "error")
        return redirect(url_for("auth.login"))
    if identity_of(user, provider) is not None:
        return redirect(url_for("account.complete"))
    return _start(provider, {"purpose": COMPLETE, "user_id": user.id})


@bp.route("/security/social/<any(wechat, wecom):provider>/unbind", methods=["GET", "POST"])
@user_needed
def security_unbind(user: User, provider: str) -> ResponseReturnValue:
    """解除绑定: 身份验证 (password or SMS code) first, then confirm."""
    identity = identity_of(user, provider)
    if identity is None:
        flash(_("您的账号未绑定%(provider)s。", provider=provider_name(provider)), "error")
        return redirect(url_for("security.index"))

    def unbind() -> ResponseReturnValue:
        unbind_identity(user, provider, actor=user, reason="self-service")
        db.session.commit()
        notify_security_change(user, f"{provider}.remove")
        flash(_("已解除%(provider)s绑定。", provider=provider_name(provider)), "success")
        return redirect(url_for("security.index"))

    return _verified_change(user, provider, "unbind", {"nickname": identity.nickname}, unbind)


# Template helpers -------------------------------------------------------------------------


def social_login_providers() -> list[dict[str, str]]:
    """The QR sign-in options this deployment offers."""
    return [
        {"provider": p, "name": provider_name(p)} for p in enabled_providers(current_app.config)
    ]


def social_rows(user: User | None) -> list[dict[str, Any]]:
    """A row per provider for the security centre and 信息完善: bound or not, and how."""
    if user is None:
        return []
    bound = {identity.provider: identity for identity in identities_of(user)}
    offered = enabled_providers(current_app.config)
    rows = []
    for provider in PROVIDERS:
        identity = bound.get(provider)
        if identity is None and provider not in offered:
            continue
        rows.append(
            {
                "provider": provider,
                "name": provider_name(provider),
                "bound": identity is not None,
                "nickname": identity.nickname if identity else None,
                "can_bind": provider in offered,
            }
        )
    return rows


def setup_social(app: Flask) -> None:
    """Register the pages and the helpers the login, 信息完善 and 安全中心 templates call."""
    app.register_blueprint(bp)
    app.add_template_global(social_login_providers)
    app.add_template_global(social_rows)
