"""Talking to WeChat (Open Platform website login, ``snsapi_login``) and WeCom (web login).

Both go through wechatpy, with every base URL taken from settings so that a fake server on
127.0.0.1 can stand in (tests, development). Each HTTP call has a timeout, and whatever goes
wrong — a WeChat error code, a timeout, an unreadable answer — comes out as one
:class:`ProviderError` whose ``kind`` says what the user can do about it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import requests
from wechatpy.enterprise import WeChatClient as WeComClient
from wechatpy.exceptions import WeChatClientException
from wechatpy.oauth import WeChatOAuth
from wechatpy.session import SessionStorage

from shared.store import Store

WECHAT = "wechat"
WECOM = "wecom"
PROVIDERS = (WECHAT, WECOM)

#: WeChat / WeCom error codes meaning "this code is no good": scanning again fixes it.
#: 40029 invalid code, 40163 code been used, 42003 code expired, 41008 missing code.
CODE_ERRORS = frozenset({40029, 40163, 42003, 41008})
#: "System busy, try again later."
BUSY_ERRORS = frozenset({-1})
#: The access token (WeCom) was refused: fetch a new one once and try again.
TOKEN_ERRORS = frozenset({40014, 42001})
#: The longest openid, unionid or UserId a binding can store (``social_identities`` columns).
MAX_IDENTIFIER = 128


class ErrorKind(enum.StrEnum):
    """What went wrong, as far as the person at the browser is concerned."""

    #: The authorization code was invalid, expired or already used: scan again.
    CODE = "code"
    #: The provider could not be reached in time, or answered with a server error.
    UNAVAILABLE = "unavailable"
    #: Anything else (wrong app credentials, a member outside the corporation, …).
    REFUSED = "refused"


class ProviderError(Exception):
    """A failed exchange with WeChat or WeCom; ``errcode`` is the provider's, when it gave one."""

    def __init__(self, kind: ErrorKind, errcode: int | None = None, detail: str = "") -> None:
        super().__init__(f"{kind}: {errcode} {detail}".strip())
        self.kind = kind
        self.errcode = errcode
        self.detail = detail


@dataclass(frozen=True)
class SocialProfile:
    """Who scanned, as the provider told us."""

    provider: str
    #: The identifier bindings are keyed on: unionid when WeChat gives one, else openid;
    #: the WeCom member's UserId.
    subject: str
    openid: str | None = None
    unionid: str | None = None
    nickname: str | None = None


def provider_enabled(provider: str, config: Mapping[str, Any]) -> bool:
    """True when the provider's app id and secret are configured (else it is not offered)."""
    if provider == WECHAT:
        return bool(config.get("WECHAT_APP_ID") and config.get("WECHAT_APP_SECRET"))
    if provider == WECOM:
        return bool(
            config.get("WECOM_CORP_ID")
            and config.get("WECOM_AGENT_ID")
            and config.get("WECOM_SECRET")
        )
    return False


def enabled_providers(config: Mapping[str, Any]) -> list[str]:
    """The providers this deployment offers, in the order the login page shows them."""
    return [p for p in PROVIDERS if provider_enabled(p, config)]


def _base(url: str) -> str:
    # Base URLs are joined with endpoint names, so they must end in exactly one slash.
    return url.rstrip("/") + "/"


class _TimedSession(requests.Session):
    """A requests session that never waits forever (wechatpy passes no timeout for WeChat
    OAuth calls, nor for WeCom's token)."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.default_timeout = timeout

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.default_timeout
        return super().request(method, url, *args, **kwargs)


# WeChat -----------------------------------------------------------------------------------


def _wechat_oauth(config: Mapping[str, Any], redirect_uri: str = "", state: str = "") -> Any:
    oauth = WeChatOAuth(
        config["WECHAT_APP_ID"],
        config["WECHAT_APP_SECRET"],
        redirect_uri,
        scope="snsapi_login",
        state=state,
    )
    oauth.OAUTH_BASE_URL = _base(config["WECHAT_OAUTH_BASE_URL"])
    oauth.API_BASE_URL = _base(config["WECHAT_API_BASE_URL"])
    oauth._http = _TimedSession(float(config["SOCIAL_TIMEOUT"]))
    return oauth


def wechat_qrconnect_url(config: Mapping[str, Any], redirect_uri: str, state: str) -> str:
    """The WeChat QR page (网站应用微信登录); ``state`` must be URL-safe (wechatpy does not
    encode it)."""
    return str(_wechat_oauth(config, redirect_uri, state).qrconnect_url)


def wechat_profile(config: Mapping[str, Any], code: str) -> SocialProfile:
    """Exchange a code for an access token, then read the user's openid, unionid, nickname."""
    oauth = _wechat_oauth(config)
    try:
        token = oauth.fetch_access_token(code)
        info = oauth.get_user_info()
    except WeChatClientException as exc:
        raise _classify(exc) from exc
    except requests.RequestException as exc:
        raise ProviderError(ErrorKind.UNAVAILABLE, detail=type(exc).__name__) from exc
    except (ValueError, KeyError, TypeError) as exc:  # not JSON, or fields missing
        raise ProviderError(ErrorKind.UNAVAILABLE, detail="malformed answer") from exc
    if not isinstance(info, dict) or not isinstance(token, dict):  # JSON, but not an object
        raise ProviderError(ErrorKind.UNAVAILABLE, detail="malformed answer")
    openid = _identifier(info.get("openid")) or _identifier(token.get("openid"))
    unionid = _identifier(info.get("unionid")) or _identifier(token.get("unionid"))
    if not openid:
        raise ProviderError(ErrorKind.UNAVAILABLE, detail="no openid")
    nickname = _text(info.get("nickname"))
    return SocialProfile(
        WECHAT,
        subject=unionid or openid,
        openid=openid,
        unionid=unionid,
        nickname=nickname[:100] if nickname else None,
    )


# WeCom ------------------------------------------------------------------------------------


class _StoreTokenStorage(SessionStorage):  # type: ignore[misc]
    """wechatpy's token cache kept in the shared store, so every process shares one token."""

    #: Refresh a little before WeCom's own expiry (7200 s).
    MARGIN = 300

    def __init__(self, store: Store) -> None:
        self.store = store

    def get(self, key: str, default: Any = None) -> Any:
        return self.store.get(f"wecom:{key}") or default

    def set(self, key: str, value: Any, ttl: int | None = None) -> None:
        if value:
            self.store.set(f"wecom:{key}", str(value), max(60, (ttl or 7200) - self.MARGIN))

    def delete(self, key: str) -> None:
        self.store.delete(f"wecom:{key}")


class _ConfiguredWeComClient(WeComClient):  # type: ignore[misc]
    """wechatpy's WeCom client with its base URL from settings: its ``fetch_access_token``
    hard-codes ``https://qyapi.weixin.qq.com/cgi-bin/gettoken``."""

    def fetch_access_token(self) -> Any:
        return self._fetch_access_token(
            url=self.API_BASE_URL + "gettoken",
            params={"corpid": self.corp_id, "corpsecret": self.secret},
        )


def _wecom_client(config: Mapping[str, Any], store: Store) -> Any:
    timeout = float(config["SOCIAL_TIMEOUT"])
    client = _ConfiguredWeComClient(
        config["WECOM_CORP_ID"],
        config["WECOM_SECRET"],
        session=_StoreTokenStorage(store),
        timeout=timeout,
        # wechatpy retries refused tokens without end; we retry once ourselves.
        auto_retry=False,
    )
    client.API_BASE_URL = _base(config["WECOM_API_BASE_URL"])
    client._http = _TimedSession(timeout)
    return client


def wecom_login_url(config: Mapping[str, Any], redirect_uri: str, state: str) -> str:
    """WeCom's web-login QR page (wwlogin); wechatpy 1.8 has no builder for it."""
    query = urlencode(
        {
            "login_type": "CorpApp",
            "appid": config["WECOM_CORP_ID"],
            "agentid": config["WECOM_AGENT_ID"],
            "redirect_uri": redirect_uri,
            "state": state,
        },
        quote_via=quote,
    )
    return f"{_base(config['WECOM_LOGIN_BASE_URL'])}wwlogin/sso/login?{query}"


def wecom_profile(config: Mapping[str, Any], code: str, store: Store) -> SocialProfile:
    """The WeCom member (UserId) who scanned, from the code (getuserinfo)."""
    client = _wecom_client(config, store)
    try:
        try:
            info = client.oauth.get_user_info(code)
        except WeChatClientException as exc:
            if exc.errcode not in TOKEN_ERRORS:
                raise
            # A cached token WeCom no longer accepts (secret reset, revoked): fetch a new one.
            client.session.delete(client.access_token_key)
            info = client.oauth.get_user_info(code)
    except WeChatClientException as exc:
        raise _classify(exc) from exc
    except requests.RequestException as exc:
        raise ProviderError(ErrorKind.UNAVAILABLE, detail=type(exc).__name__) from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise ProviderError(ErrorKind.UNAVAILABLE, detail="malformed answer") from exc
    if not isinstance(info, dict):
        raise ProviderError(ErrorKind.UNAVAILABLE, detail="malformed answer")
    # ``user/getuserinfo`` says UserId, ``auth/getuserinfo`` says userid; a non-member only
    # has an OpenId, and the campus binds members only.
    user_id = _identifier(info.get("UserId")) or _identifier(info.get("userid"))
    if not user_id:
        raise ProviderError(ErrorKind.REFUSED, detail="not a member")
    return SocialProfile(WECOM, subject=user_id, nickname=user_id[:100])


# Both -------------------------------------------------------------------------------------


def authorize_url(provider: str, config: Mapping[str, Any], redirect_uri: str, state: str) -> str:
    """Where to send the browser to scan: the provider's QR page."""
    if provider == WECHAT:
        return wechat_qrconnect_url(config, redirect_uri, state)
    return wecom_login_url(config, redirect_uri, state)


def fetch_profile(
    provider: str, config: Mapping[str, Any], code: str, store: Store
) -> SocialProfile:
    """Who scanned, from the code the provider sent back; raises :class:`ProviderError`."""
    if provider == WECHAT:
        return wechat_profile(config, code)
    return wecom_profile(config, code, store)


def _classify(exc: WeChatClientException) -> ProviderError:
    errcode = exc.errcode
    if errcode is None:  # an HTTP error status from the provider
        return ProviderError(ErrorKind.UNAVAILABLE, detail="http error")
    try:
        number = int(errcode)
    except (TypeError, ValueError):
        return ProviderError(ErrorKind.REFUSED, detail=str(errcode)[:50])
    if number in CODE_ERRORS:
        return ProviderError(ErrorKind.CODE, number)
    if number in BUSY_ERRORS:
        return ProviderError(ErrorKind.UNAVAILABLE, number)
    return ProviderError(ErrorKind.REFUSED, number)


def _text(value: Any) -> str | None:
    return (value.strip() or None) if isinstance(value, str) else None


def _identifier(value: Any) -> str | None:
    """An openid, unionid or UserId; one longer than a binding stores is a malformed answer
    (WeChat's are 28 characters, WeCom's at most 64)."""
    text = _text(value)
    if text is not None and len(text) > MAX_IDENTIFIER:
        raise ProviderError(ErrorKind.UNAVAILABLE, detail="malformed answer")
    return text
