"""Fake Tencent Cloud SMS and Aliyun SMS gateways on 127.0.0.1.

Each fake checks a request the way the vendor does before accepting it: the signature (Tencent
TC3-HMAC-SHA256 over the canonical request; Aliyun RPC signature v1, HMAC-SHA1 over the sorted,
percent-encoded parameters), the clock skew, the action and API version, the account's app id,
sign name and template. It answers with the vendor's own JSON shapes and error codes, so a
sender that passes here speaks the real protocol. The signature checks are written from the
vendors' documentation, independently of the senders in ``shared.messaging``.

Accepted messages are kept in ``received``; the error codes answered in ``errors``; the last
raw request in ``last_request`` (tests replay it, tampered, to prove the checks are real).
``fail_next(code)`` makes the next request fail with a vendor error.

Usage::

    with FakeTencentSms() as gateway:
        sender = build_sms_sender("tencent", gateway.settings())
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
import uuid
from base64 import b64encode
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

from tests.fakes import LoopbackServer

JsonObject = dict[str, Any]


@dataclass(frozen=True)
class ReceivedSms:
    """One message a fake gateway accepted."""

    phone: str
    template_id: str
    params: tuple[str, ...]
    sign_name: str
    app_id: str | None = None


@dataclass(frozen=True)
class RawRequest:
    """A request as it reached the fake, for replaying."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class _Handler(BaseHTTPRequestHandler):
    gateway: ClassVar[_Gateway]

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        request = RawRequest(method, self.path, headers, body)
        status, payload = self.gateway.handle(request)
        data = json.dumps(payload, ensure_ascii=False).encode()
        self.send_response(status)
        # Exactly "application/json": the Tencent SDK only parses errors under that type.
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        # Keep test output clean; assertions look at `received` and `errors` instead.
        pass


class _Gateway(LoopbackServer):
    """An HTTP server in a thread, a record of what it saw, and queued failures."""

    handler_class = _Handler
    handler_attribute = "gateway"

    #: Messages the vendors really send for the codes tests most often simulate.
    KNOWN_MESSAGES: ClassVar[dict[str, str]] = {}

    def __init__(self) -> None:
        super().__init__()
        self.received: list[ReceivedSms] = []
        self.errors: list[str] = []
        self.last_request: RawRequest | None = None
        self._lock = threading.Lock()
        self._failures: deque[tuple[str, str, str]] = deque()

    @property
    def endpoint(self) -> str:
        """``127.0.0.1:PORT``, what the senders take as ``endpoint``."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT/``."""
        return f"http://{self.endpoint}/"

    # -- scripting --------------------------------------------------------------------------

    def fail_next(self, code: str, message: str | None = None) -> None:
        """Answer the next validly signed request with the vendor error ``code``."""
        with self._lock:
            self._failures.append(("request", code, self._message_for(code, message)))

    def _message_for(self, code: str, message: str | None) -> str:
        return message or self.KNOWN_MESSAGES.get(code, f"simulated failure {code}")

    def _take_failure(self, level: str) -> tuple[str, str] | None:
        with self._lock:
            if self._failures and self._failures[0][0] == level:
                _, code, message = self._failures.popleft()
                return code, message
        return None

    def _record(self, sms: ReceivedSms) -> None:
        with self._lock:
            self.received.append(sms)

    def _note_error(self, code: str) -> None:
        with self._lock:
            self.errors.append(code)

    def handle(self, request: RawRequest) -> tuple[int, JsonObject]:
        """Answer one request: HTTP status and JSON body."""
        with self._lock:
            self.last_request = request
        return self._handle(request)

    def _handle(self, request: RawRequest) -> tuple[int, JsonObject]:
        raise NotImplementedError


# ------------------------------------------------------------------------------------------
# Tencent Cloud SMS, API 3.0, version 2021-01-11
# ------------------------------------------------------------------------------------------

_TC3_AUTHORIZATION = re.compile(
    r"^TC3-HMAC-SHA256 Credential=(?P<secret_id>[^/\s]+)/(?P<date>\d{4}-\d{2}-\d{2})/"
    r"(?P<service>[a-z0-9]+)/tc3_request, SignedHeaders=(?P<signed>[a-z0-9;.-]+), "
    r"Signature=(?P<signature>[0-9a-f]{64})$"
)
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_MAINLAND_E164 = re.compile(r"^\+861[3-9]\d{9}$")


def tc3_signature(
    secret_key: str,
    *,
    method: str,
    path: str,
    query: str,
    headers: dict[str, str],
    signed_headers: list[str],
    payload_hash: str,
    timestamp: int,
    date: str,
    service: str,
) -> str:
    """TC3-HMAC-SHA256 as Tencent Cloud documents it ("签名方法 v3")."""
    canonical_headers = "".join(
        f"{name}:{headers[name].strip().lower()}\n" for name in signed_headers
    )
    canonical_request = "\n".join(
        [method, path, query, canonical_headers, ";".join(signed_headers), payload_hash]
    )
    scope = f"{date}/{service}/tc3_request"
    string_to_sign = "\n".join(
        [
            "TC3-HMAC-SHA256",
            str(timestamp),
            scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )

    def sign(key: bytes, text: str) -> bytes:
        return hmac.new(key, text.encode(), hashlib.sha256).digest()

    secret_date = sign(("TC3" + secret_key).encode(), date)
    secret_service = sign(secret_date, service)
    secret_signing = sign(secret_service, "tc3_request")
    return hmac.new(secret_signing, string_to_sign.encode(), hashlib.sha256).hexdigest()


class FakeTencentSms(_Gateway):
    """Tencent Cloud ``SendSms`` (2021-01-11) for one account, app, sign and template."""

    KNOWN_MESSAGES: ClassVar[dict[str, str]] = {
        "LimitExceeded.PhoneNumberThirtySecondLimit": (
            "the number of sms messages sent from a single mobile number within 30 seconds "
            "exceeds the upper limit"
        ),
        "LimitExceeded.PhoneNumberOneHourLimit": (
            "the number of sms messages sent from a single mobile number within 1 hour "
            "exceeds the upper limit"
        ),
        "LimitExceeded.PhoneNumberDailyLimit": (
            "the number of sms messages sent from a single mobile number every day exceeds "
            "the upper limit"
        ),
        "FailedOperation.InsufficientBalanceInSmsPackage": ("insufficient balance in SMS package"),
        "RequestLimitExceeded": "Your current request times exceeds limit, please try later.",
        "InternalError.Timeout": "request timeout",
    }

    def __init__(
        self,
        *,
        secret_id: str = "AKIDfakeTencentSecretId000000000000",
        secret_key: str = "fake-tencent-secret-key-0000000000",
        sdk_app_id: str = "1400000001",
        sign_name: str = "红柳易办",
        template_id: str = "2000001",
        template_param_count: int = 2,
        max_clock_skew: int = 300,
    ) -> None:
        super().__init__()
        self.secret_id = secret_id
        self.secret_key = secret_key
        self.sdk_app_id = sdk_app_id
        self.sign_name = sign_name
        self.template_id = template_id
        self.template_param_count = template_param_count
        self.max_clock_skew = max_clock_skew

    def settings(self) -> dict[str, str]:
        """Settings for ``build_sms_sender("tencent", …)`` that point at this fake."""
        return {
            "SMS_ACCESS_KEY_ID": self.secret_id,
            "SMS_ACCESS_KEY_SECRET": self.secret_key,
            "SMS_SDK_APP_ID": self.sdk_app_id,
            "SMS_SIGN_NAME": self.sign_name,
            "SMS_TEMPLATE_ID": self.template_id,
            "SMS_REGION": "ap-guangzhou",
            "SMS_ENDPOINT": self.endpoint,
            "SMS_SCHEME": "http",
        }

    def fail_next_number(self, code: str, message: str | None = None) -> None:
        """Give the next message a failed per-number ``SendStatus`` (how limits are reported)."""
        with self._lock:
            self._failures.append(("number", code, self._message_for(code, message)))

    def _error(self, request_id: str, code: str, message: str) -> tuple[int, JsonObject]:
        self._note_error(code)
        # API 3.0 reports errors with HTTP 200 and an Error object.
        return 200, {
            "Response": {"Error": {"Code": code, "Message": message}, "RequestId": request_id}
        }

    def _handle(self, request: RawRequest) -> tuple[int, JsonObject]:
        request_id = str(uuid.uuid4())
        headers = request.headers
        if request.method != "POST":
            return self._error(request_id, "UnsupportedProtocol", "the fake accepts POST only")
        match = _TC3_AUTHORIZATION.match(headers.get("authorization", ""))
        if match is None:
            return self._error(
                request_id,
                "AuthFailure.InvalidAuthorization",
                "Authorization header does not follow the TC3-HMAC-SHA256 format.",
            )
        try:
            timestamp = int(headers.get("x-tc-timestamp", ""))
        except ValueError:
            return self._error(
                request_id, "MissingParameter", "The request is missing X-TC-Timestamp."
            )
        now = int(time.time())
        if abs(now - timestamp) > self.max_clock_skew:
            return self._error(
                request_id,
                "AuthFailure.SignatureExpire",
                f"Signature expired. Timestamp is {timestamp}, and server time is {now}.",
            )
        if match["secret_id"] != self.secret_id:
            return self._error(
                request_id,
                "AuthFailure.SecretIdNotFound",
                "The SecretId is not found, please ensure that your SecretId is correct.",
            )
        signed_headers = match["signed"].split(";")
        expected_date = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
        if (
            match["date"] != expected_date
            or match["service"] != "sms"
            or not {"content-type", "host"} <= set(signed_headers)
            or any(name not in headers for name in signed_headers)
        ):
            return self._signature_failure(request_id)
        if headers.get("x-tc-content-sha256") == "UNSIGNED-PAYLOAD":
            payload_hash = hashlib.sha256(b"UNSIGNED-PAYLOAD").hexdigest()
        else:
            payload_hash = hashlib.sha256(request.body).hexdigest()
        parts = urlsplit(request.path)
        expected = tc3_signature(
            self.secret_key,
            method=request.method,
            path=parts.path or "/",
            query=parts.query,
            headers=headers,
            signed_headers=signed_headers,
            payload_hash=payload_hash,
            timestamp=timestamp,
            date=match["date"],
            service="sms",
        )
        if not hmac.compare_digest(expected, match["signature"]):
            return self._signature_failure(request_id)

        action = headers.get("x-tc-action", "")
        if action != "SendSms":
            return self._error(
                request_id, "InvalidAction", f"The requested action `{action}` does not exist."
            )
        if headers.get("x-tc-version") != "2021-01-11":
            return self._error(request_id, "NoSuchVersion", "The requested version does not exist.")
        if not headers.get("x-tc-region"):
            return self._error(
                request_id, "MissingParameter", "The request is missing a required `Region`."
            )
        if not headers.get("content-type", "").startswith("application/json"):
            return self._error(request_id, "InvalidParameter", "the fake accepts JSON bodies only")
        try:
            params = json.loads(request.body)
        except ValueError:
            return self._error(request_id, "FailedOperation.JsonParseFail", "bad JSON body")
        if not isinstance(params, dict):
            return self._error(request_id, "FailedOperation.JsonParseFail", "bad JSON body")

        failure = self._take_failure("request")
        if failure is not None:
            return self._error(request_id, *failure)
        return self._send_sms(request_id, params)

    def _signature_failure(self, request_id: str) -> tuple[int, JsonObject]:
        return self._error(
            request_id,
            "AuthFailure.SignatureFailure",
            "The provided credentials could not be validated. "
            "Please check your signature is correct.",
        )

    def _send_sms(self, request_id: str, params: JsonObject) -> tuple[int, JsonObject]:
        phones = params.get("PhoneNumberSet")
        if not isinstance(phones, list) or not phones:
            return self._error(
                request_id, "MissingParameter.EmptyPhoneNumberSet", "PhoneNumberSet is empty."
            )
        if str(params.get("SmsSdkAppId")) != self.sdk_app_id:
            return self._error(
                request_id, "InvalidParameterValue.SdkAppIdNotExist", "SdkAppId not exist."
            )
        if params.get("SignName") != self.sign_name:
            return self._error(
                request_id,
                "FailedOperation.SignatureIncorrectOrUnapproved",
                "signature format is incorrect or signature is not approved",
            )
        if str(params.get("TemplateId")) != self.template_id:
            return self._error(
                request_id,
                "FailedOperation.TemplateIncorrectOrUnapproved",
                "template format is incorrect or template is not approved",
            )
        template_params = params.get("TemplateParamSet") or []
        if (
            not isinstance(template_params, list)
            or len(template_params) != self.template_param_count
            or not all(isinstance(value, str) for value in template_params)
        ):
            return self._error(
                request_id,
                "FailedOperation.TemplateParamSetNotMatchApprovedTemplate",
                "the number of template parameters does not match the approved template",
            )

        statuses: list[JsonObject] = []
        for phone in phones:
            phone = str(phone)
            failure = self._take_failure("number")
            if failure is None and not (
                _E164.match(phone) and (not phone.startswith("+86") or _MAINLAND_E164.match(phone))
            ):
                failure = (
                    "InvalidParameterValue.IncorrectPhoneNumber",
                    "invalid mobile number format",
                )
            if failure is not None:
                self._note_error(failure[0])
                statuses.append(self._status(phone, *failure, fee=0, serial_no=""))
                continue
            self._record(
                ReceivedSms(
                    phone=phone,
                    template_id=self.template_id,
                    params=tuple(template_params),
                    sign_name=self.sign_name,
                    app_id=self.sdk_app_id,
                )
            )
            statuses.append(
                self._status(phone, "Ok", "send success", fee=1, serial_no=_serial_no())
            )
        return 200, {"Response": {"SendStatusSet": statuses, "RequestId": request_id}}

    @staticmethod
    def _status(phone: str, code: str, message: str, *, fee: int, serial_no: str) -> JsonObject:
        return {
            "SerialNo": serial_no,
            "PhoneNumber": phone,
            "Fee": fee,
            "SessionContext": "",
            "Code": code,
            "Message": message,
            "IsoCode": "CN" if phone.startswith("+86") else "",
        }


def _serial_no() -> str:
    return f"2433:{secrets.token_hex(16)}"


# ------------------------------------------------------------------------------------------
# Aliyun SMS (Dysmsapi), RPC style, version 2017-05-25
# ------------------------------------------------------------------------------------------

_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")
_ALIYUN_COMMON = (
    "AccessKeyId",
    "Action",
    "Format",
    "SignatureMethod",
    "SignatureNonce",
    "SignatureVersion",
    "Timestamp",
    "Version",
    "Signature",
)
_MAINLAND_MOBILE = re.compile(r"^(?:\+86|0086|86)?1[3-9]\d{9}$")


def aliyun_percent_encode(value: str) -> str:
    """RFC 3986 percent-encoding of the UTF-8 bytes, as Aliyun's signature v1 specifies."""
    return "".join(
        char if char in _UNRESERVED else "".join(f"%{byte:02X}" for byte in char.encode())
        for char in value
    )


def aliyun_string_to_sign(method: str, params: dict[str, str]) -> str:
    """``METHOD&%2F&`` + the encoded canonical query of every parameter but ``Signature``."""
    canonical = "&".join(
        f"{aliyun_percent_encode(name)}={aliyun_percent_encode(value)}"
        for name, value in sorted(params.items())
        if name != "Signature"
    )
    return f"{method}&{aliyun_percent_encode('/')}&{aliyun_percent_encode(canonical)}"


class FakeAliyunSms(_Gateway):
    """Aliyun Dysmsapi ``SendSms`` for one AccessKey, sign name and template."""

    KNOWN_MESSAGES: ClassVar[dict[str, str]] = {
        "isv.BUSINESS_LIMIT_CONTROL": "触发号码天级流控Permits:10",
        "isv.AMOUNT_NOT_ENOUGH": "账户余额不足",
        "isv.OUT_OF_SERVICE": "业务停机",
        "Throttling.User": "Request was denied due to user flow control.",
    }

    def __init__(
        self,
        *,
        access_key_id: str = "LTAIfakeAliyunAccessKey",
        access_key_secret: str = "fake-aliyun-access-key-secret",
        sign_name: str = "红柳易办",
        template_code: str = "SMS_200000001",
        template_params: tuple[str, ...] = ("code",),
        max_clock_skew: int = 900,
    ) -> None:
        super().__init__()
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self.sign_name = sign_name
        self.template_code = template_code
        self.template_params = template_params
        self.max_clock_skew = max_clock_skew
        self._nonces: set[str] = set()

    def settings(self) -> dict[str, str]:
        """Settings for ``build_sms_sender("aliyun", …)`` that point at this fake."""
        return {
            "SMS_ACCESS_KEY_ID": self.access_key_id,
            "SMS_ACCESS_KEY_SECRET": self.access_key_secret,
            "SMS_SIGN_NAME": self.sign_name,
            "SMS_TEMPLATE_ID": self.template_code,
            "SMS_ENDPOINT": self.endpoint,
            "SMS_SCHEME": "http",
        }

    def _error(
        self, request_id: str, code: str, message: str, status: int = 400
    ) -> tuple[int, JsonObject]:
        self._note_error(code)
        return status, {
            "RequestId": request_id,
            "HostId": "dysmsapi.aliyuncs.com",
            "Code": code,
            "Message": message,
            "Recommend": f"https://next.api.aliyun.com/troubleshoot?q={code}&product=Dysmsapi",
        }

    def _business_error(self, request_id: str, code: str, message: str) -> tuple[int, JsonObject]:
        # Errors about the message itself (isv.*) come with HTTP 200 and no HostId.
        self._note_error(code)
        return 200, {"Message": message, "RequestId": request_id, "Code": code}

    def _handle(self, request: RawRequest) -> tuple[int, JsonObject]:
        request_id = str(uuid.uuid4()).upper()
        pairs = parse_qsl(urlsplit(request.path).query, keep_blank_values=True)
        if request.method == "POST":
            content_type = request.headers.get("content-type", "")
            if not content_type.startswith("application/x-www-form-urlencoded"):
                return self._error(
                    request_id, "InvalidParameter", "expected a form-encoded POST body"
                )
            pairs += parse_qsl(request.body.decode(), keep_blank_values=True)
        params = dict(pairs)
        if len(params) != len(pairs):
            return self._error(request_id, "InvalidParameter", "a parameter is repeated")

        for name in _ALIYUN_COMMON:
            if not params.get(name):
                return self._error(
                    request_id, f"Missing{name}", f"{name} is mandatory for this action."
                )
        if params["SignatureMethod"] != "HMAC-SHA1" or params["SignatureVersion"] != "1.0":
            return self._error(
                request_id,
                "IncompleteSignature",
                "The request signature does not conform to Aliyun standards.",
            )
        try:
            stamp = datetime.strptime(params["Timestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            return self._error(
                request_id,
                "InvalidTimeStamp.Format",
                "Specified time stamp or date value is not well formatted.",
            )
        if abs(datetime.now(UTC) - stamp).total_seconds() > self.max_clock_skew:
            return self._error(
                request_id,
                "InvalidTimeStamp.Expired",
                "Specified time stamp or date value is expired.",
            )
        if params["AccessKeyId"] != self.access_key_id:
            return self._error(
                request_id,
                "InvalidAccessKeyId.NotFound",
                "Specified access key is not found.",
                status=404,
            )
        string_to_sign = aliyun_string_to_sign(request.method, params)
        digest = hmac.new(
            (self.access_key_secret + "&").encode(), string_to_sign.encode(), hashlib.sha1
        ).digest()
        if not hmac.compare_digest(b64encode(digest).decode(), params["Signature"]):
            return self._error(
                request_id,
                "SignatureDoesNotMatch",
                "Specified signature is not matched with our calculation. "
                f"server string to sign is:{string_to_sign}",
            )
        # Nonces are remembered only once the signature holds, so nobody can burn them.
        with self._lock:
            nonce_used = params["SignatureNonce"] in self._nonces
            self._nonces.add(params["SignatureNonce"])
        if nonce_used:
            return self._error(
                request_id, "SignatureNonceUsed", "Specified signature nonce was used already."
            )
        if params["Version"] != "2017-05-25":
            return self._error(
                request_id, "InvalidVersion", "Specified parameter Version is not valid."
            )
        if params["Action"] != "SendSms":
            return self._error(
                request_id,
                "InvalidAction.NotFound",
                "Specified api is not found, please check your url and method.",
                status=404,
            )
        if params["Format"] != "JSON":
            return self._error(request_id, "InvalidParameter", "the fake answers Format=JSON only")
        for name in ("PhoneNumbers", "SignName", "TemplateCode"):
            if not params.get(name):
                return self._error(
                    request_id, f"Missing{name}", f"{name} is mandatory for this action."
                )

        failure = self._take_failure("request")
        if failure is not None:
            return self._business_error(request_id, *failure)
        return self._send_sms(request_id, params)

    def _send_sms(self, request_id: str, params: dict[str, str]) -> tuple[int, JsonObject]:
        if params["SignName"] != self.sign_name:
            return self._business_error(
                request_id, "isv.SMS_SIGNATURE_ILLEGAL", "该账号下找不到对应签名"
            )
        if params["TemplateCode"] != self.template_code:
            return self._business_error(
                request_id, "isv.SMS_TEMPLATE_ILLEGAL", "该账号下找不到对应模板"
            )
        try:
            template_param = json.loads(params.get("TemplateParam") or "{}")
        except ValueError:
            template_param = None
        if not isinstance(template_param, dict) or not all(
            isinstance(value, str) for value in template_param.values()
        ):
            return self._business_error(
                request_id, "isv.INVALID_JSON_PARAM", "JSON参数不合法，只接受字符串值"
            )
        if any(name not in template_param for name in self.template_params):
            return self._business_error(
                request_id, "isv.TEMPLATE_MISSING_PARAMETERS", "模板变量缺少对应参数值"
            )
        phones = params["PhoneNumbers"].split(",")
        if not all(_MAINLAND_MOBILE.match(phone) for phone in phones):
            return self._business_error(request_id, "isv.MOBILE_NUMBER_ILLEGAL", "非法手机号")
        for phone in phones:
            self._record(
                ReceivedSms(
                    phone=phone,
                    template_id=self.template_code,
                    params=tuple(template_param[name] for name in self.template_params),
                    sign_name=self.sign_name,
                )
            )
        biz_id = f"{secrets.randbelow(10**18):018d}^0"
        return 200, {"Message": "OK", "RequestId": request_id, "Code": "OK", "BizId": biz_id}
