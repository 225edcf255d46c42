"""A fake WeChat Open Platform and WeCom on 127.0.0.1, speaking their real HTTP protocols.

WeChat website login (网站应用微信登录, scope ``snsapi_login``):
  ``GET /connect/qrconnect`` — the QR page; a form on it plays the phone: 允许 sends the browser
  back to ``redirect_uri?code=…&state=…``, 拒绝 sends it back with ``state`` only;
  ``GET /sns/oauth2/access_token`` — code → access_token, openid, unionid;
  ``GET /sns/userinfo`` — openid, unionid, nickname.
WeCom web login (企业微信扫码登录):
  ``GET /wwlogin/sso/login`` — the QR page (same phone form);
  ``GET /cgi-bin/gettoken`` — corpid + corpsecret → access_token;
  ``GET /cgi-bin/user/getuserinfo`` and ``/cgi-bin/auth/getuserinfo`` — code → UserId.

Codes live five minutes and work once; the answers carry WeChat's own error codes (40029
invalid code — also for an expired one —, 40163 code been used, 40013 invalid appid, 40125
invalid appsecret, 40001 invalid credential, 40014 invalid access_token, 42001 access_token
expired, 41008 missing code, 40003 invalid openid). ``fail_next(errcode)`` makes the next API
call fail, ``delay_next(seconds)`` makes it slow (timeouts), ``expire_codes()`` ages every
outstanding code, ``expire_wecom_tokens()`` makes WeCom refuse the tokens it handed out.

In tests::

    with FakeWeChat() as fake:
        app = make_idp(**fake.settings())
        callback_url = fake.scan(qr_page_url, wechat_user=WeChatUser("o-1", "u-1", "小明"))

For development: ``python -m tests.fakes.wechat --port 5099`` prints the ``IDP_*`` variables
that point an IdP at it.
"""

from __future__ import annotations

import argparse
import html
import json
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests

from tests.fakes import LoopbackServer

JsonObject = dict[str, Any]

#: WeChat's messages for the codes this fake answers.
MESSAGES = {
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40003: "invalid openid",
    40013: "invalid appid",
    40014: "invalid access_token",
    40029: "invalid code",
    40125: "invalid appsecret",
    40163: "code been used",
    41001: "access_token missing",
    41008: "missing code",
    42001: "access_token expired",
}


@dataclass(frozen=True)
class WeChatUser:
    """A WeChat user as the Open Platform app sees them."""

    openid: str
    unionid: str | None = None
    nickname: str = "微信用户"


@dataclass(frozen=True)
class WeComMember:
    """A member of the corporation (企业微信成员)."""

    userid: str


@dataclass
class _Code:
    provider: str
    identity: WeChatUser | WeComMember
    issued_at: float
    used: bool = False


@dataclass
class _Fault:
    errcode: int | None = None
    delay: float = 0.0
    #: Only for requests whose path starts with this (None: the next API request).
    path: str | None = None


@dataclass
class Sent:
    """One request the fake answered: method, path and query (for assertions)."""

    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)


class _Handler(BaseHTTPRequestHandler):
    fake: ClassVar[FakeWeChat]

    def do_GET(self) -> None:
        self.fake._handle(self, "GET")

    def do_POST(self) -> None:
        self.fake._handle(self, "POST")

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests look at ``fake.requests`` instead


class FakeWeChat(LoopbackServer):
    """WeChat Open Platform + WeCom in one threaded HTTP server on 127.0.0.1."""

    handler_class = _Handler

    def __init__(
        self,
        *,
        app_id: str = "wxfakeopenapp0001",
        app_secret: str = "fake-wechat-app-secret-0001",
        corp_id: str = "wwfakecorp0000001",
        agent_id: str = "1000002",
        corp_secret: str = "fake-wecom-agent-secret-0001",
        code_ttl: float = 300,
        port: int = 0,
    ) -> None:
        super().__init__(port)
        self.app_id, self.app_secret = app_id, app_secret
        self.corp_id, self.agent_id, self.corp_secret = corp_id, agent_id, corp_secret
        self.code_ttl = code_ttl
        #: Who the simulated phone is signed in as (the QR pages pre-fill these).
        self.wechat_user = WeChatUser("o-dev-openid-0001", "u-dev-unionid-0001", "红柳同学")
        self.wecom_member = WeComMember("zhangsan")
        self.requests: list[Sent] = []
        self._codes: dict[str, _Code] = {}
        self._wechat_tokens: dict[str, str] = {}  # access_token → openid
        self._people: dict[str, WeChatUser] = {}  # openid → who authorised
        self._wecom_tokens: set[str] = set()
        self._faults: deque[_Fault] = deque()
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def settings(self, timeout: float = 2.0) -> dict[str, Any]:
        """The IdP configuration (keys without ``IDP_``) that points it at this fake."""
        return {
            "WECHAT_APP_ID": self.app_id,
            "WECHAT_APP_SECRET": self.app_secret,
            "WECHAT_OAUTH_BASE_URL": f"{self.url}/connect/",
            "WECHAT_API_BASE_URL": f"{self.url}/",
            "WECOM_CORP_ID": self.corp_id,
            "WECOM_AGENT_ID": self.agent_id,
            "WECOM_SECRET": self.corp_secret,
            "WECOM_LOGIN_BASE_URL": f"{self.url}/",
            "WECOM_API_BASE_URL": f"{self.url}/cgi-bin/",
            "SOCIAL_TIMEOUT": timeout,
        }

    def env(self, timeout: float = 2.0) -> dict[str, str]:
        """The same as ``IDP_*`` environment variables (live servers, development)."""
        return {f"IDP_{key}": str(value) for key, value in self.settings(timeout).items()}

    # -- test controls ----------------------------------------------------------------------

    def fail_next(self, errcode: int, path: str | None = None) -> None:
        """The next API call (or the next whose path starts with ``path``) answers ``errcode``."""
        with self._lock:
            self._faults.append(_Fault(errcode=errcode, path=path))

    def delay_next(self, seconds: float, path: str | None = None) -> None:
        """The next API call (or the next to ``path``) answers only after ``seconds``."""
        with self._lock:
            self._faults.append(_Fault(delay=seconds, path=path))

    def expire_codes(self) -> None:
        """Age every outstanding code past its five minutes."""
        with self._lock:
            for code in self._codes.values():
                code.issued_at -= self.code_ttl + 1

    def expire_wecom_tokens(self) -> None:
        """WeCom forgets the access tokens it handed out (42001 until a new one is fetched)."""
        with self._lock:
            self._wecom_tokens.clear()

    def scan(
        self,
        qr_page_url: str,
        *,
        allow: bool = True,
        wechat_user: WeChatUser | None = None,
        wecom_member: WeComMember | None = None,
    ) -> str:
        """Open the QR page and answer on the "phone" as a person would; returns the URL the
        provider sends the browser back to (``redirect_uri?code=…&state=…``)."""
        page = requests.get(qr_page_url, timeout=5)
        assert page.status_code == 200, page.text
        assert 'name="decision"' in page.text, page.text  # a QR page, not an error page
        query = dict(parse_qsl(urlsplit(qr_page_url).query))
        provider = "wecom" if "/wwlogin/" in qr_page_url else "wechat"
        form = {
            "redirect_uri": query["redirect_uri"],
            "state": query.get("state", ""),
            "decision": "allow" if allow else "deny",
        }
        if provider == "wechat":
            person = wechat_user or self.wechat_user
            form.update(
                openid=person.openid, unionid=person.unionid or "", nickname=person.nickname
            )
            confirm = f"{self.url}/connect/qrconnect/confirm"
        else:
            form["userid"] = (wecom_member or self.wecom_member).userid
            confirm = f"{self.url}/wwlogin/sso/confirm"
        answer = requests.post(confirm, data=form, allow_redirects=False, timeout=5)
        assert answer.status_code == 302, answer.text
        return str(answer.headers["Location"])

    # -- HTTP -------------------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        body: dict[str, str] = {}
        if method == "POST":
            length = int(handler.headers.get("Content-Length") or 0)
            raw = handler.rfile.read(length).decode() if length else ""
            body = dict(parse_qsl(raw, keep_blank_values=True))
        with self._lock:
            self.requests.append(Sent(method, parts.path, query))
        routes = {
            ("GET", "/connect/qrconnect"): self._wechat_qr_page,
            ("POST", "/connect/qrconnect/confirm"): self._wechat_confirm,
            ("GET", "/sns/oauth2/access_token"): self._wechat_access_token,
            ("GET", "/sns/userinfo"): self._wechat_userinfo,
            ("GET", "/wwlogin/sso/login"): self._wecom_qr_page,
            ("POST", "/wwlogin/sso/confirm"): self._wecom_confirm,
            ("GET", "/cgi-bin/gettoken"): self._wecom_gettoken,
            ("GET", "/cgi-bin/user/getuserinfo"): self._wecom_userinfo,
            ("GET", "/cgi-bin/auth/getuserinfo"): self._wecom_userinfo,
        }
        route = routes.get((method, parts.path))
        if route is None:
            self._send(handler, 404, "text/plain; charset=utf-8", b"not found")
            return
        if parts.path.startswith(("/sns/", "/cgi-bin/")):
            fault = self._take_fault(parts.path)
            if fault is not None:
                if fault.delay:
                    time.sleep(fault.delay)
                if fault.errcode is not None:
                    self._json(handler, _error(fault.errcode))
                    return
        route(handler, query, body)

    def _take_fault(self, path: str) -> _Fault | None:
        with self._lock:
            for fault in list(self._faults):
                if fault.path is None or path.startswith(fault.path):
                    self._faults.remove(fault)
                    return fault
        return None

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, kind: str, data: bytes) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", kind)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _json(self, handler: BaseHTTPRequestHandler, payload: JsonObject) -> None:
        # WeChat answers errors with HTTP 200 and an errcode in the body.
        data = json.dumps(payload, ensure_ascii=False).encode()
        self._send(handler, 200, "application/json; encoding=utf-8", data)

    def _html(self, handler: BaseHTTPRequestHandler, title: str, inner: str) -> None:
        page = (
            '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title></head><body>"
            f"<h1>{html.escape(title)}</h1>{inner}</body></html>"
        )
        self._send(handler, 200, "text/html; charset=utf-8", page.encode())

    def _redirect(self, handler: BaseHTTPRequestHandler, location: str) -> None:
        handler.send_response(302)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    # -- QR pages (the phone's 允许 / 拒绝 is a form here) ------------------------------------

    def _phone_form(self, action: str, query: dict[str, str], fields: list[tuple[str, str]]) -> str:
        hidden = "".join(
            f'<input type="hidden" name="{name}" value="{html.escape(query.get(name, ""))}">'
            for name in ("redirect_uri", "state")
        )
        inputs = "".join(
            f'<p><label>{name} <input name="{name}" value="{html.escape(value)}"></label></p>'
            for name, value in fields
        )
        return (
            '<div class="qr" aria-label="二维码">▣ ▣ ▣<br>▣ ▢ ▣<br>▣ ▣ ▣</div>'
            "<p>请使用手机扫描二维码。（模拟手机：以下身份扫码后点击“允许”）</p>"
            f'<form method="post" action="{action}">{hidden}{inputs}'
            '<button type="submit" name="decision" value="allow">允许</button> '
            '<button type="submit" name="decision" value="deny">拒绝</button></form>'
        )

    def _wechat_qr_page(
        self, handler: BaseHTTPRequestHandler, query: dict[str, str], _: Any
    ) -> None:
        problem = None
        if query.get("appid") != self.app_id:
            problem = "AppID 参数错误"
        elif query.get("scope") != "snsapi_login":
            problem = "Scope 参数错误或没有 Scope 权限"
        elif query.get("response_type") != "code":
            problem = "response_type 参数错误"
        elif not query.get("redirect_uri", "").startswith(("http://", "https://")):
            problem = "redirect_uri 参数错误"
        if problem:
            self._html(handler, "请求参数错误", f"<p>{html.escape(problem)}</p>")
            return
        person = self.wechat_user
        fields = [
            ("openid", person.openid),
            ("unionid", person.unionid or ""),
            ("nickname", person.nickname),
        ]
        self._html(
            handler, "微信登录", self._phone_form("/connect/qrconnect/confirm", query, fields)
        )

    def _wecom_qr_page(
        self, handler: BaseHTTPRequestHandler, query: dict[str, str], _: Any
    ) -> None:
        problem = None
        if query.get("appid") != self.corp_id:
            problem = "appid 参数错误"
        elif query.get("agentid") != self.agent_id:
            problem = "agentid 参数错误"
        elif query.get("login_type") != "CorpApp":
            problem = "login_type 参数错误"
        elif not query.get("redirect_uri", "").startswith(("http://", "https://")):
            problem = "redirect_uri 参数错误"
        if problem:
            self._html(handler, "请求参数错误", f"<p>{html.escape(problem)}</p>")
            return
        fields = [("userid", self.wecom_member.userid)]
        self._html(handler, "企业微信登录", self._phone_form("/wwlogin/sso/confirm", query, fields))

    def _back(
        self,
        handler: BaseHTTPRequestHandler,
        body: dict[str, str],
        provider: str,
        identity: WeChatUser | WeComMember,
    ) -> None:
        redirect_uri = body.get("redirect_uri", "")
        params: list[tuple[str, str]] = []
        if body.get("decision") == "allow":
            code = secrets.token_hex(16)
            with self._lock:
                self._codes[code] = _Code(provider, identity, time.time())
            params.append(("code", code))
        params.append(("state", body.get("state", "")))
        parts = urlsplit(redirect_uri)
        query = f"{parts.query}&{urlencode(params)}" if parts.query else urlencode(params)
        self._redirect(handler, urlunsplit(parts._replace(query=query)))

    def _wechat_confirm(
        self, handler: BaseHTTPRequestHandler, _: Any, body: dict[str, str]
    ) -> None:
        person = WeChatUser(
            body.get("openid", ""), body.get("unionid") or None, body.get("nickname", "")
        )
        self._back(handler, body, "wechat", person)

    def _wecom_confirm(self, handler: BaseHTTPRequestHandler, _: Any, body: dict[str, str]) -> None:
        self._back(handler, body, "wecom", WeComMember(body.get("userid", "")))

    # -- APIs -------------------------------------------------------------------------------

    def _redeem(self, code: str, provider: str) -> _Code | int:
        """The code's record, or the error code WeChat answers."""
        if not code:
            return 41008
        with self._lock:
            record = self._codes.get(code)
            if record is None or record.provider != provider:
                return 40029
            if time.time() - record.issued_at > self.code_ttl:
                return 40029  # an expired code is simply invalid
            if record.used:
                return 40163
            record.used = True
            return record

    def _wechat_access_token(
        self, handler: BaseHTTPRequestHandler, query: dict[str, str], _: Any
    ) -> None:
        if query.get("appid") != self.app_id:
            self._json(handler, _error(40013))
            return
        if query.get("secret") != self.app_secret:
            self._json(handler, _error(40125))
            return
        if query.get("grant_type") != "authorization_code":
            self._json(handler, _error(40002))
            return
        record = self._redeem(query.get("code", ""), "wechat")
        if isinstance(record, int):
            self._json(handler, _error(record))
            return
        person = record.identity
        assert isinstance(person, WeChatUser)
        token = secrets.token_hex(24)
        with self._lock:
            self._wechat_tokens[token] = person.openid
            self._people[person.openid] = person
        payload: JsonObject = {
            "access_token": token,
            "expires_in": 7200,
            "refresh_token": secrets.token_hex(24),
            "openid": person.openid,
            "scope": "snsapi_login",
        }
        if person.unionid:
            payload["unionid"] = person.unionid
        self._json(handler, payload)

    def _wechat_userinfo(
        self, handler: BaseHTTPRequestHandler, query: dict[str, str], _: Any
    ) -> None:
        with self._lock:
            openid = self._wechat_tokens.get(query.get("access_token", ""))
            person = self._people.get(openid or "")
        if openid is None or person is None:
            self._json(handler, _error(40001))
            return
        if query.get("openid") != openid:
            self._json(handler, _error(40003))
            return
        payload: JsonObject = {
            "openid": person.openid,
            "nickname": person.nickname,
            "sex": 0,
            "province": "",
            "city": "",
            "country": "",
            "headimgurl": "",
            "privilege": [],
        }
        if person.unionid:
            payload["unionid"] = person.unionid
        self._json(handler, payload)

    def _wecom_gettoken(
        self, handler: BaseHTTPRequestHandler, query: dict[str, str], _: Any
    ) -> None:
        if query.get("corpid") != self.corp_id:
            self._json(handler, _error(40013))
            return
        if query.get("corpsecret") != self.corp_secret:
            self._json(handler, _error(40001))
            return
        token = secrets.token_hex(32)
        with self._lock:
            self._wecom_tokens.add(token)
        self._json(
            handler, {"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": 7200}
        )

    def _wecom_userinfo(
        self, handler: BaseHTTPRequestHandler, query: dict[str, str], _: Any
    ) -> None:
        token = query.get("access_token", "")
        if not token:
            self._json(handler, _error(41001))
            return
        with self._lock:
            known = token in self._wecom_tokens
        if not known:
            self._json(handler, _error(42001))
            return
        record = self._redeem(query.get("code", ""), "wecom")
        if isinstance(record, int):
            # WeCom has no "code been used": a spent code is just invalid.
            self._json(handler, _error(40029 if record == 40163 else record))
            return
        member = record.identity
        assert isinstance(member, WeComMember)
        path = handler.path.split("?", 1)[0]
        key = "userid" if path.endswith("/auth/getuserinfo") else "UserId"
        self._json(handler, {"errcode": 0, "errmsg": "ok", key: member.userid, "DeviceId": ""})


def _error(errcode: int) -> JsonObject:
    return {"errcode": errcode, "errmsg": MESSAGES.get(errcode, "error")}


def main() -> None:
    """Serve the fake until Ctrl-C, printing the settings that point an IdP at it."""
    parser = argparse.ArgumentParser(description="Fake WeChat / WeCom for development")
    parser.add_argument("--port", type=int, default=5099)
    args = parser.parse_args()
    fake = FakeWeChat(port=args.port).start()
    print(f"Fake WeChat / WeCom on {fake.url}; start the IdP with:")
    for key, value in fake.env(timeout=5).items():
        print(f"export {key}={value}")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
