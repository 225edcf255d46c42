"""SMS senders: the development outbox, Tencent Cloud SMS and Aliyun SMS.

Every sender has one method, ``send(SmsMessage)``, and raises :class:`SmsError` when the message
was not accepted. Error messages are meant for logs: they name the vendor's error code and
request id but never the verification code, the access key secret or the recipient's number.

Tencent Cloud is spoken through its official SDK (the optional extra ``hongliu[tencent]``).
Aliyun's own SDK pulls in a large dependency tree, so its RPC API is spoken by the small signed
client below (signature version 1, HMAC-SHA1), which is all ``SendSms`` needs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote

import requests

from shared.config import ConfigError
from shared.messaging.outbox import SMS_FILE, append_record, utc_timestamp

PROVIDERS = ("outbox", "aliyun", "tencent")
TENCENT_DEFAULT_ENDPOINT = "sms.tencentcloudapi.com"
ALIYUN_DEFAULT_ENDPOINT = "dysmsapi.aliyuncs.com"
ALIYUN_API_VERSION = "2017-05-25"

# Vendor messages are cut to this length so one odd answer cannot flood the log.
_MAX_DETAIL = 200


class SmsError(Exception):
    """A message was not sent; ``str()`` is safe to log and ``vendor_code`` is the vendor's code."""

    def __init__(self, message: str, *, vendor_code: str | None = None) -> None:
        super().__init__(message)
        self.vendor_code = vendor_code


@dataclass(frozen=True)
class SmsMessage:
    """One SMS to one phone: the rendered ``text`` and what a vendor template needs.

    ``template_id`` picks an approved template other than the sender's configured one (the
    help desk's reset link and activation notice have their own); the outbox ignores it and
    records ``text`` in full.
    """

    to: str
    text: str
    code: str | None
    template_params: tuple[str, ...] = ()
    template_id: str | None = None


class SmsSender(Protocol):
    """Anything that can send an :class:`SmsMessage` or raise :class:`SmsError`."""

    def send(self, message: SmsMessage) -> None:
        """Deliver ``message`` or raise :class:`SmsError`."""
        ...


def to_e164(phone: str) -> str:
    """``13800138000`` → ``+8613800138000``; numbers that already carry a country code keep it.

    Tencent Cloud wants E.164. A bare 11-digit number is taken as mainland China, which is what
    the identity provider stores for its users.
    """
    number = re.sub(r"[\s-]", "", phone)
    if number.startswith("+"):
        return number
    if number.startswith("00"):
        return "+" + number[2:]
    if len(number) == 13 and number.startswith("86"):
        return "+" + number
    return "+86" + number


def _safe_detail(text: object, *hidden: str | None) -> str:
    """Vendor text for a log line, with anything in ``hidden`` masked and the length capped."""
    detail = str(text or "")
    # Aliyun echoes its whole string-to-sign (every parameter, the code among them) when a
    # signature does not match; only the sentence before it is worth logging.
    detail = re.split(r"(?i)server string to sign", detail, maxsplit=1)[0].strip(" :")
    for value in hidden:
        if value:
            detail = detail.replace(value, "***")
    if len(detail) > _MAX_DETAIL:
        detail = detail[:_MAX_DETAIL] + "…"
    return detail


class OutboxSmsSender:
    """Appends each message to ``<outbox_dir>/sms.jsonl`` instead of sending it (development)."""

    def __init__(self, outbox_dir: str | os.PathLike[str]) -> None:
        self.outbox_dir = outbox_dir

    def send(self, message: SmsMessage) -> None:
        """Record ``{"to", "text", "code", "at"}`` as one JSON line."""
        record = {
            "to": message.to,
            "text": message.text,
            "code": message.code,
            "at": utc_timestamp(),
        }
        try:
            append_record(self.outbox_dir, SMS_FILE, record)
        except OSError as exc:
            raise SmsError(f"could not write the SMS outbox in {self.outbox_dir}: {exc}") from None


class TencentSmsSender:
    """Tencent Cloud SMS (API 2021-01-11) through the vendor's official Python SDK."""

    def __init__(
        self,
        *,
        secret_id: str,
        secret_key: str,
        sdk_app_id: str,
        sign_name: str,
        template_id: str,
        region: str = "ap-guangzhou",
        endpoint: str = TENCENT_DEFAULT_ENDPOINT,
        scheme: str = "https",
        timeout: float = 10,
    ) -> None:
        # Imported here so that the module, and the outbox and Aliyun senders, work without the
        # optional SDK installed.
        try:
            from tencentcloud.common import credential
            from tencentcloud.common.exception.tencent_cloud_sdk_exception import (
                TencentCloudSDKException,
            )
            from tencentcloud.common.profile.client_profile import ClientProfile
            from tencentcloud.common.profile.http_profile import HttpProfile
            from tencentcloud.sms.v20210111 import models, sms_client
        except ImportError as exc:
            raise ImportError(
                "the Tencent Cloud SMS sender needs the vendor SDK: pip install 'hongliu[tencent]'"
            ) from exc
        self._secret_key = secret_key
        self._sdk_app_id = sdk_app_id
        self._sign_name = sign_name
        self._template_id = template_id
        self._models: Any = models
        self._sdk_error: type[Exception] = TencentCloudSDKException
        http_profile = HttpProfile(endpoint=endpoint, protocol=scheme, reqTimeout=timeout)
        self._client: Any = sms_client.SmsClient(
            credential.Credential(secret_id, secret_key),
            region,
            ClientProfile(httpProfile=http_profile),
        )

    def send(self, message: SmsMessage) -> None:
        """Send through ``SendSms``; raise :class:`SmsError` unless the number's status is Ok."""
        request = self._models.SendSmsRequest()
        request.PhoneNumberSet = [to_e164(message.to)]
        request.SmsSdkAppId = self._sdk_app_id
        request.SignName = self._sign_name
        request.TemplateId = message.template_id or self._template_id
        request.TemplateParamSet = list(message.template_params)
        hidden = (message.code, self._secret_key, message.to)
        try:
            response = self._client.SendSms(request)
        except self._sdk_error as exc:
            code = getattr(exc, "code", None)
            detail = _safe_detail(getattr(exc, "message", ""), *hidden)
            request_id = getattr(exc, "requestId", None)
            raise SmsError(
                f"Tencent Cloud SMS refused the request: {code}: {detail} (request {request_id})",
                vendor_code=str(code) if code else None,
            ) from None
        statuses = response.SendStatusSet or []
        if not statuses:
            raise SmsError(
                f"Tencent Cloud SMS answered without a send status (request {response.RequestId})"
            )
        for status in statuses:
            if status.Code != "Ok":
                detail = _safe_detail(status.Message, *hidden)
                raise SmsError(
                    f"Tencent Cloud SMS did not send the message: {status.Code}: {detail} "
                    f"(request {response.RequestId})",
                    vendor_code=str(status.Code),
                )


def percent_encode(value: str) -> str:
    """Aliyun's RFC 3986 encoding: UTF-8, everything but ``A-Za-z0-9-_.~`` escaped."""
    return quote(value, safe="~")


def aliyun_rpc_signature(method: str, params: Mapping[str, str], access_key_secret: str) -> str:
    """Signature version 1 of an Aliyun RPC request (``SignatureMethod=HMAC-SHA1``).

    HMAC-SHA1, keyed with the secret plus ``&``, over ``METHOD&%2F&`` followed by the
    percent-encoded, name-sorted, percent-encoded query; base64 of the digest.
    """
    canonical = "&".join(
        f"{percent_encode(name)}={percent_encode(params[name])}" for name in sorted(params)
    )
    string_to_sign = f"{method.upper()}&{percent_encode('/')}&{percent_encode(canonical)}"
    digest = hmac.new(
        (access_key_secret + "&").encode(), string_to_sign.encode(), hashlib.sha1
    ).digest()
    return base64.b64encode(digest).decode()


class AliyunSmsSender:
    """Aliyun SMS ``SendSms`` (API 2017-05-25) through a small signed ``requests`` client."""

    def __init__(
        self,
        *,
        access_key_id: str,
        access_key_secret: str,
        sign_name: str,
        template_code: str,
        endpoint: str = ALIYUN_DEFAULT_ENDPOINT,
        scheme: str = "https",
        timeout: float = 10,
        session: requests.Session | None = None,
    ) -> None:
        self._access_key_id = access_key_id
        self._access_key_secret = access_key_secret
        self._sign_name = sign_name
        self._template_code = template_code
        self._endpoint = endpoint
        self._url = f"{scheme}://{endpoint}/"
        self._timeout = timeout
        self._owns_session = session is None
        self._session = session or requests.Session()

    def close(self) -> None:
        """Release pooled connections, if the session is this sender's own."""
        if self._owns_session:
            self._session.close()

    def signed_params(self, message: SmsMessage) -> dict[str, str]:
        """Every form field of the ``SendSms`` request for ``message``, ``Signature`` included."""
        params = {
            "AccessKeyId": self._access_key_id,
            "Action": "SendSms",
            "Format": "JSON",
            "SignatureMethod": "HMAC-SHA1",
            # A fresh nonce per request: Aliyun refuses a nonce it has seen in the last 15 min.
            "SignatureNonce": secrets.token_hex(16),
            "SignatureVersion": "1.0",
            "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Version": ALIYUN_API_VERSION,
            "PhoneNumbers": message.to,
            "SignName": self._sign_name,
            "TemplateCode": message.template_id or self._template_code,
        }
        # A template's one parameter is always named ``code`` (the verification code, a reset
        # token, or for a notice without a code its first template parameter).
        value = message.code
        if value is None and message.template_params:
            value = message.template_params[0]
        if value is not None:
            params["TemplateParam"] = json.dumps(
                {"code": value}, ensure_ascii=False, separators=(",", ":")
            )
        params["Signature"] = aliyun_rpc_signature("POST", params, self._access_key_secret)
        return params

    def send(self, message: SmsMessage) -> None:
        """POST a signed ``SendSms``; raise :class:`SmsError` unless Aliyun answers ``Code: OK``."""
        hidden = (message.code, self._access_key_secret, message.to)
        # POST rather than GET keeps the code out of URLs, which proxies and servers log.
        try:
            response = self._session.post(
                self._url, data=self.signed_params(message), timeout=self._timeout
            )
        except requests.Timeout:
            raise SmsError(
                f"Aliyun SMS at {self._endpoint} did not answer within {self._timeout} s"
            ) from None
        except requests.RequestException as exc:
            raise SmsError(
                f"Aliyun SMS at {self._endpoint} is unreachable: {type(exc).__name__}: "
                f"{_safe_detail(exc, *hidden)}"
            ) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise SmsError(f"Aliyun SMS answered HTTP {response.status_code} without a JSON object")
        code = body.get("Code")
        if code == "OK" and response.ok:
            return
        detail = _safe_detail(body.get("Message"), *hidden)
        raise SmsError(
            f"Aliyun SMS refused the message: {code}: {detail} "
            f"(HTTP {response.status_code}, request {body.get('RequestId')})",
            vendor_code=str(code) if code else None,
        )


def template_available(config: Mapping[str, Any], template_setting: str) -> bool:
    """Whether a non-code message (a reset link, a notice) can go out: always through the
    outbox, with a vendor only once its own approved template (``config[template_setting]``)
    is configured."""
    if (config.get("SMS_PROVIDER") or "outbox") == "outbox":
        return True
    return bool(str(config.get(template_setting) or "").strip())


def _setting(settings: Mapping[str, Any], key: str) -> str:
    value = settings.get(key)
    return "" if value is None else str(value).strip()


def build_sms_sender(
    provider: str, settings: Mapping[str, Any], *, prefix: str = "IDP"
) -> SmsSender:
    """The sender ``provider`` names (``outbox`` when empty), configured from ``settings``.

    ``settings`` holds the already-parsed values without the prefix (``SMS_SIGN_NAME``, …).
    Raises :class:`ConfigError` naming every missing variable, so a deployment learns at
    start-up rather than when the first user asks for a code.
    """
    choice = (provider or "outbox").strip().lower()
    if choice not in PROVIDERS:
        raise ConfigError(
            f"{prefix}_SMS_PROVIDER={provider!r} is invalid: expected one of {', '.join(PROVIDERS)}"
        )
    if choice == "outbox":
        outbox_dir = _setting(settings, "OUTBOX_DIR")
        if not outbox_dir:
            raise ConfigError(
                f"{prefix}_SMS_PROVIDER=outbox needs {prefix}_OUTBOX_DIR, the folder that "
                "receives sms.jsonl"
            )
        return OutboxSmsSender(outbox_dir)

    required = ["SMS_ACCESS_KEY_ID", "SMS_ACCESS_KEY_SECRET", "SMS_SIGN_NAME", "SMS_TEMPLATE_ID"]
    if choice == "tencent":
        required.append("SMS_SDK_APP_ID")
    missing = [f"{prefix}_{key}" for key in required if not _setting(settings, key)]
    if missing:
        raise ConfigError(f"{prefix}_SMS_PROVIDER={choice} needs {', '.join(missing)} to be set")
    scheme = (_setting(settings, "SMS_SCHEME") or "https").lower()
    if scheme not in ("https", "http"):
        raise ConfigError(f"{prefix}_SMS_SCHEME={scheme!r} is invalid: expected https or http")
    endpoint = _setting(settings, "SMS_ENDPOINT")

    if choice == "tencent":
        return TencentSmsSender(
            secret_id=_setting(settings, "SMS_ACCESS_KEY_ID"),
            secret_key=_setting(settings, "SMS_ACCESS_KEY_SECRET"),
            sdk_app_id=_setting(settings, "SMS_SDK_APP_ID"),
            sign_name=_setting(settings, "SMS_SIGN_NAME"),
            template_id=_setting(settings, "SMS_TEMPLATE_ID"),
            region=_setting(settings, "SMS_REGION") or "ap-guangzhou",
            endpoint=endpoint or TENCENT_DEFAULT_ENDPOINT,
            scheme=scheme,
        )
    return AliyunSmsSender(
        access_key_id=_setting(settings, "SMS_ACCESS_KEY_ID"),
        access_key_secret=_setting(settings, "SMS_ACCESS_KEY_SECRET"),
        sign_name=_setting(settings, "SMS_SIGN_NAME"),
        template_code=_setting(settings, "SMS_TEMPLATE_ID"),
        endpoint=endpoint or ALIYUN_DEFAULT_ENDPOINT,
        scheme=scheme,
    )
