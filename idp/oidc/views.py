"""The provider's endpoints: discovery, JWKS, authorization, token, userinfo, introspection,
revocation and RP-initiated logout. Protocol work is Authlib's (``idp.oidc.provider``); these
views add what a person sees: sign-in, re-authentication, access policy and consent."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

from flask import (
    Blueprint,
    Response,
    current_app,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_wtf.csrf import validate_csrf
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse
from wtforms import ValidationError

from idp.audit.operations import record
from idp.auth.models import SsoSession
from idp.auth.sessions import current_session
from idp.clients.operations import policy_admits
from idp.extensions import db
from idp.oidc import operations
from idp.oidc.claims import SCOPE_LABELS, issuer, subject
from idp.oidc.cors import cross_origin, public_json
from idp.oidc.discovery import provider_metadata
from idp.oidc.keys import ensure_signing_key, jwks
from idp.oidc.provider import (
    RESPONSE_MODES,
    AccessDeniedError,
    ConsentRequiredError,
    InvalidRequestError,
    LoginRequiredError,
    OAuth2Error,
    RelyingParty,
    RequestNotSupportedError,
    RequestURINotSupportedError,
    authorization,
    authorization_error,
    find_client,
    in_response_mode,
    verify_id_token_hint,
)
from shared.web import RETRY_AFTER_OUTAGE, is_outage

bp = Blueprint(
    "oidc",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/_oidc/static",
)
#: A Flask or a plain Werkzeug response (``redirect`` makes the latter).
R = TypeVar("R", bound=BaseResponse)

#: Fields of the consent form that are not part of the authorization request.
FORM_FIELDS = ("csrf_token", "decision", "confirm")
#: Authorization request parameters, each at most once (RFC 6749 §3.1). Authlib and
#: ``_verified_client`` check client_id, redirect_uri, response_type, scope and state.
AUTHORIZATION_PARAMETERS = frozenset(
    {
        "nonce",
        "prompt",
        "max_age",
        "id_token_hint",
        "login_hint",
        "code_challenge",
        "code_challenge_method",
        "response_mode",
        "acr_values",
        "claims",
        "display",
        "ui_locales",
        "claims_locales",
        "request",
        "request_uri",
    }
)


class ServerError(OAuth2Error):  # type: ignore[misc]
    """The provider failed; nothing was wrong with the request (RFC 6749 §4.1.2.1)."""

    error = "server_error"
    status_code = 500


class TemporarilyUnavailableError(OAuth2Error):  # type: ignore[misc]
    """The database or the store did not answer: the client may try again shortly."""

    error = "temporarily_unavailable"
    status_code = 503


def _failure(error: Exception) -> OAuth2Error:
    """Log an unexpected ``error``, roll back, and name it the OAuth way."""
    current_app.logger.exception("OIDC %s %s failed", request.method, request.path)
    try:
        db.session.rollback()
    except Exception:  # a dead connection may refuse even the rollback
        current_app.logger.warning("could not roll back after an error", exc_info=True)
    return TemporarilyUnavailableError() if is_outage(error) else ServerError()


def _with_retry_after(response: R, error: OAuth2Error) -> R:
    if error.status_code == 503:
        response.headers["Retry-After"] = str(RETRY_AFTER_OUTAGE)
    return response


def answers_in_json(view: Callable[[], ResponseReturnValue]) -> Callable[[], ResponseReturnValue]:
    """Clients' back ends and scripts call ``view``: a failure inside it is an RFC 6749 error
    object (``server_error``, or ``temporarily_unavailable`` in an outage), never a page."""

    @functools.wraps(view)
    def json_view() -> ResponseReturnValue:
        try:
            return view()
        except HTTPException:
            raise
        except Exception as error:
            failure = _failure(error)
            response: Response = authorization.handle_error_response(None, failure)
            return _with_retry_after(response, failure)

    return json_view


@bp.before_request
def first_key() -> None:
    """Discovery, tokens and logout all need a key: make the first one on first use."""
    try:
        ensure_signing_key()
    except Exception:
        # The view meets the same failure and answers it in its own protocol's format.
        current_app.logger.warning("could not check the signing key", exc_info=True)
        db.session.rollback()


def _no_store(response: R) -> R:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


@bp.get("/.well-known/openid-configuration")
@answers_in_json
def discovery() -> Response:
    """OpenID Provider Metadata."""
    return public_json(provider_metadata())


@bp.get("/oauth2/jwks")
@answers_in_json
def jwks_document() -> Response:
    """The public signing keys, retired ones included until their tokens expire."""
    return public_json(jwks())


def _request_params() -> list[tuple[str, str]]:
    """The request's own parameters, from the query or the posted form (not the page's)."""
    return [(k, v) for k, vs in request.values.lists() if k not in FORM_FIELDS for v in vs]


def _request_id(params: list[tuple[str, str]]) -> str:
    return hashlib.sha256(urlencode(sorted(params)).encode()).hexdigest()[:32]


def _page(template: str, status: int, **context: Any) -> Response:
    response = Response(render_template(template, **context), status=status)
    return _no_store(response)


def _bad_client_page() -> Response:
    return _page(
        "oidc/error.html",
        400,
        title=_("无法完成登录"),
        message=_(
            "发起登录的应用未在统一身份认证注册，或它提供的回调地址与注册信息不符。"
            "为保护您的账号，本次登录已停止。请联系该应用的管理员。"
        ),
    )


def _max_age() -> int | None:
    raw = request.values.get("max_age")
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise InvalidRequestError("max_age must be a non-negative integer.")
    return int(raw)


def _hinted_subject() -> str | None:
    hint = request.values.get("id_token_hint")
    if not hint:
        return None
    claims = verify_id_token_hint(hint)
    if claims is None:
        raise InvalidRequestError("The id_token_hint is not an ID token of this provider.")
    return str(claims["sub"])


def _verified_client() -> RelyingParty | None:
    """The client, if it exists and the redirect_uri is exactly one it registered."""
    values = request.values
    client = find_client(values.get("client_id"))
    redirect_uri = values.get("redirect_uri")
    if (
        client is None
        or not redirect_uri
        or not client.check_redirect_uri(redirect_uri)
        or len(values.getlist("client_id")) > 1
        or len(values.getlist("redirect_uri")) > 1
    ):
        return None
    return client


def _must_sign_in(
    sso: SsoSession | None,
    prompts: set[str],
    max_age: int | None,
    hinted: str | None,
    request_id: str,
) -> bool:
    """Whether the browser must (again) prove who it is before a code is issued."""
    if sso is None:
        return True
    stale = max_age is not None and operations.signed_in_before(sso, max_age)
    other_person = hinted is not None and hinted != subject(sso.user)
    if "login" in prompts or stale or other_person:
        # Satisfied once the browser signed in after being sent to do so for this request.
        return not operations.reauthenticated(sso, request_id)
    return False


def _send_to_login(params: list[tuple[str, str]], request_id: str) -> BaseResponse:
    # Remembered even for a signed-out browser: prompt=login is still in the request when it
    # comes back from /login, and must then count as satisfied rather than loop.
    operations.start_reauthentication(request_id)
    next_path = url_for("oidc.authorize") + "?" + urlencode(params)
    return _no_store(redirect(url_for("auth.login", next=next_path)))


def _response_mode(redirect_uri: str) -> str | None:
    """The response mode the request asks for (``query`` when none), or None when it asks for
    one we do not serve, or for two. form_post only to a web address: a ``javascript:`` action
    would run in our origin (registration admits only http(s), but older rows may not)."""
    asked = [mode for mode in request.values.getlist("response_mode") if mode]
    if not asked:
        return "query"
    mode = asked[0]
    if len(asked) > 1 or mode not in RESPONSE_MODES:
        return None
    if mode == "form_post" and urlsplit(redirect_uri).scheme not in ("http", "https"):
        return None
    return mode


@bp.route("/oauth2/authorize", methods=["GET", "POST"])
def authorize() -> ResponseReturnValue:
    """The authorization endpoint: sign in, re-authenticate, policy, consent, then a code."""
    client = _verified_client()
    if client is None:
        # Never redirect to an address the client did not register (RFC 6749 §4.1.2.1).
        return _bad_client_page()
    redirect_uri, state = request.values["redirect_uri"], request.values.get("state")
    response_mode = _response_mode(redirect_uri)
    try:
        return _authorize(client, redirect_uri, state, response_mode)
    except HTTPException:
        raise
    except Exception as error:
        # The client and its redirect URI are verified: tell it, as RFC 6749 §4.1.2.1 says.
        failure = _failure(error)
        return _no_store(
            authorization_error(redirect_uri, failure, state, response_mode or "query")
        )


def _authorize(
    client: RelyingParty, redirect_uri: str, state: str | None, response_mode: str | None
) -> ResponseReturnValue:
    # A mode we do not serve (or two) is refused in the code flow's default, the query: the
    # specifications name no other, and a fragment would keep the error from the client's server.
    delivery = response_mode or "query"

    def refuse(error: OAuth2Error) -> BaseResponse:
        return _no_store(authorization_error(redirect_uri, error, state, delivery))

    def deliver(response: Response) -> BaseResponse:
        return _no_store(in_response_mode(response, redirect_uri, delivery))

    repeated = _repeated_parameter(AUTHORIZATION_PARAMETERS)
    if repeated is not None:
        return refuse(InvalidRequestError(f"Repeated parameter: {repeated}."))
    # Sent without a value, they count as omitted (RFC 6749 §3.1).
    if any(request.values.getlist("request")):
        return refuse(RequestNotSupportedError())
    if any(request.values.getlist("request_uri")):
        return refuse(RequestURINotSupportedError())
    if response_mode is None:
        return refuse(
            InvalidRequestError(
                "Unsupported response_mode: use query or form_post (form_post to an http(s) "
                "redirect URI only)."
            )
        )
    if not request.values.get("response_type"):
        # Authlib would call a missing response type unsupported; RFC 6749 §4.1.2.1 says invalid.
        return refuse(InvalidRequestError("Missing 'response_type'."))
    sso = current_session()
    try:
        grant = authorization.get_consent_grant(end_user=sso.user if sso else None)
        max_age = _max_age()
        hinted = _hinted_subject()
    except OAuth2Error as error:
        return refuse(error)
    except ValueError:  # Authlib refuses to build some error texts from odd input
        return refuse(InvalidRequestError())

    prompts = set((request.values.get("prompt") or "").split())
    params = _request_params()
    request_id = _request_id(params)
    if _must_sign_in(sso, prompts, max_age, hinted, request_id):
        if "none" in prompts:
            return refuse(LoginRequiredError())
        return _send_to_login(params, request_id)
    assert sso is not None
    user = sso.user

    if not policy_admits(client.model, user):
        record("oidc.authorize", "denied", target=user, subject=client.client_id)
        db.session.commit()
        if "none" in prompts:
            return refuse(AccessDeniedError())
        return _page("oidc/refused.html", 403, client=client.model)

    scopes = (grant.request.scope or "").split()
    if not client.model.first_party and (
        "consent" in prompts or not operations.consent_covers(user, client.model, scopes)
    ):
        if "none" in prompts:
            return refuse(ConsentRequiredError())
        decision = request.form.get("decision") if request.method == "POST" else None
        if decision is None:
            return _consent_page(client.model, scopes, params)
        try:
            validate_csrf(request.form.get("csrf_token"))
        except ValidationError:
            return _consent_page(client.model, scopes, params, status=400)
        if decision != "allow":
            record("oidc.consent", "denied", target=user, subject=client.client_id)
            operations.finish_reauthentication()
            db.session.commit()
            return deliver(authorization.create_authorization_response(grant=grant))
        operations.remember_consent(user, client.model, scopes)

    response: Response = authorization.create_authorization_response(grant=grant, grant_user=user)
    operations.finish_reauthentication()
    record("oidc.authorize", target=user, subject=client.client_id, detail={"scope": scopes})
    db.session.commit()
    return deliver(response)


def _consent_page(
    client: Any, scopes: list[str], params: list[tuple[str, str]], status: int = 200
) -> Response:
    items = [(scope, SCOPE_LABELS.get(scope, scope)) for scope in scopes]
    # Shown again after a stale token (the browser signed in anew since): say why nothing
    # happened, so that the second click, with this page's token, is not a puzzle.
    return _page(
        "oidc/consent.html", status, client=client, scopes=items, params=params, stale=status == 400
    )


#: The parameters of the token, introspection and revocation requests: each at most once.
TOKEN_PARAMETERS = frozenset(
    {
        "grant_type",
        "code",
        "redirect_uri",
        "code_verifier",
        "refresh_token",
        "scope",
        "client_id",
        "client_secret",
        "token",
        "token_type_hint",
    }
)


def _repeated_parameter(names: frozenset[str]) -> str | None:
    """One of ``names`` the request sends more than once, which RFC 6749 §3.1 forbids: with
    two codes, or two nonces, nobody can say which one was meant. Empty values count as
    omitted and parameters we do not know are ignored (§3.1)."""
    for key in sorted(names.intersection(request.values)):
        if sum(1 for value in request.values.getlist(key) if value) > 1:
            return key
    return None


def _endpoint(name: str) -> Response:
    """Authlib's response for an endpoint; errors raised before its own handling included."""
    try:
        repeated = _repeated_parameter(TOKEN_PARAMETERS) if name != "userinfo" else None
        if repeated is not None:
            raise InvalidRequestError(f"Repeated parameter: {repeated}.")
        if name == "token":
            response: Response = authorization.create_token_response()
        else:
            response = authorization.create_endpoint_response(name)
    except OAuth2Error as error:  # e.g. plain HTTP on a public address
        response = authorization.handle_error_response(None, error)
    return response


@bp.route("/oauth2/token", methods=["POST", "OPTIONS"])
@cross_origin
@answers_in_json
def token() -> ResponseReturnValue:
    """The token endpoint (codes, refresh tokens, client credentials)."""
    response = _endpoint("token")
    # Commit even an error: a replayed code or refresh token has just revoked a token family.
    db.session.commit()
    return response


@bp.route("/oauth2/userinfo", methods=["GET", "POST", "OPTIONS"])
@cross_origin
@answers_in_json
def userinfo() -> ResponseReturnValue:
    """Claims about the token's user (Bearer token in the Authorization header)."""
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        # RFC 6750 §3.1: a request without a bearer token gets the challenge, no error code.
        response = Response(status=401)
        response.headers["WWW-Authenticate"] = f'Bearer realm="{issuer()}"'
        return _no_store(response)
    answer = _endpoint("userinfo")
    if answer.status_code == 403 and "WWW-Authenticate" not in answer.headers:
        # RFC 6750 §3: a token without the scope still gets the challenge, naming what it
        # lacks (Authlib's insufficient_scope error carries none).
        answer.headers["WWW-Authenticate"] = (
            f'Bearer realm="{issuer()}", error="insufficient_scope", scope="openid"'
        )
    return answer


@bp.post("/oauth2/introspect")
@answers_in_json
def introspect() -> ResponseReturnValue:
    """RFC 7662 token introspection."""
    return _endpoint("introspection")


@bp.route("/oauth2/revoke", methods=["POST", "OPTIONS"])
@cross_origin
@answers_in_json
def revoke() -> ResponseReturnValue:
    """RFC 7009 token revocation."""
    response = _endpoint("revocation")
    db.session.commit()
    return response


@bp.route("/oauth2/logout", methods=["GET", "POST"])
def logout() -> ResponseReturnValue:
    """RP-initiated logout: end the SSO session, then return to the client if it asked."""
    try:
        end_request = authorization.validate_endpoint_request("end_session")
    except OAuth2Error:
        return _page(
            "oidc/error.html",
            400,
            title=_("退出请求无效"),
            message=_("退出链接无效或已过期。您可以在统一身份认证首页直接退出登录。"),
        )
    sso = current_session()
    claims = end_request.id_token_claims
    same_person = claims is not None and sso is not None and claims["sub"] == subject(sso.user)
    if sso is not None and not same_person and not operations.logout_confirmed():
        # Without a matching id_token_hint anyone could log people out: ask first.
        params = _request_params()
        return _page(
            "oidc/logout.html", 200, confirming=True, params=params, client=end_request.client
        )
    response: Response | None = authorization.create_endpoint_response("end_session", end_request)
    db.session.commit()
    if response is not None:
        return _no_store(response)
    return _page("oidc/logout.html", 200, confirming=False, params=[], client=None)
