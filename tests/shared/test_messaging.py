"""shared.messaging: texts, the outbox, Tencent and Aliyun SMS against local fakes, real SMTP."""

from __future__ import annotations

import asyncio
import base64
import email
import email.message
import email.policy
import hashlib
import hmac
import json
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest
import requests
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shared.config import ConfigError
from shared.messaging import (
    PURPOSES,
    AliyunSmsSender,
    MailError,
    MailMessage,
    MailSender,
    OutboxSmsSender,
    SmsError,
    SmsMessage,
    TencentSmsSender,
    build_sms_sender,
    read_records,
    security_change_subject,
    security_change_text,
    to_e164,
    verification_code_subject,
    verification_code_text,
)
from shared.messaging.sms import aliyun_rpc_signature
from tests.fakes.sms_gateways import (
    FakeAliyunSms,
    FakeTencentSms,
    ReceivedSms,
    aliyun_percent_encode,
    aliyun_string_to_sign,
)

SITE = "红柳易办"
PHONE = "13800138000"
CODE = "483920"


def _message(code: str = CODE, to: str = PHONE) -> SmsMessage:
    text = verification_code_text(code, "login", 5, "zh_CN", SITE)
    return SmsMessage(to=to, text=text, code=code, template_params=(code, "5"))


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Talk to the local fakes directly even where the environment sets an HTTP proxy."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def _closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, read, released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- texts ----------------------------------------------------------------------------------


@pytest.mark.parametrize("locale", ["zh_CN", "en"])
@pytest.mark.parametrize("purpose", PURPOSES)
def test_every_purpose_and_locale_names_the_code_minutes_and_site(
    purpose: str, locale: str
) -> None:
    """Each wording carries the code, the validity in minutes and the site name."""
    text = verification_code_text("902113", purpose, 7, locale, SITE)
    assert "902113" in text
    assert "7" in text
    assert SITE in text


def test_purposes_have_distinct_wordings() -> None:
    """No two purposes share a wording, in either language."""
    for locale in ("zh_CN", "en"):
        texts = {verification_code_text("1", p, 5, locale, SITE) for p in PURPOSES}
        assert len(texts) == len(PURPOSES)


def test_chinese_login_text_reads_as_specified() -> None:
    """The Chinese sign-in text is word for word the one in the design."""
    assert verification_code_text("123456", "login", 5, "zh_CN", SITE) == (
        "【红柳易办】您的登录验证码为 123456，5 分钟内有效。"
        "请勿泄露给他人；如非本人操作，请忽略本消息。"
    )


def test_english_login_text_reads_as_specified() -> None:
    """The English sign-in text is word for word the one in the design."""
    assert verification_code_text("123456", "login", 5, "en", SITE) == (
        "[红柳易办] Your sign-in verification code is 123456. It is valid for 5 minutes. "
        "Never share it; if you did not ask for it, ignore this message."
    )


@pytest.mark.parametrize("locale", ["fr", "", "xx_YY", "zh_TW", "zh-CN"])
def test_unknown_locale_falls_back_to_chinese(locale: str) -> None:
    """Locales without a wording of their own get the Chinese one."""
    expected = verification_code_text("123456", "recovery", 10, "zh_CN", SITE)
    assert verification_code_text("123456", "recovery", 10, locale, SITE) == expected
    assert "找回密码" in expected


@pytest.mark.parametrize("locale", ["en", "en_US", "en-GB", "EN"])
def test_english_variants_get_english(locale: str) -> None:
    """Regional English locales are English, not the Chinese fallback."""
    assert "password recovery" in verification_code_text("1", "recovery", 10, locale, SITE)


def test_subject_names_site_and_purpose_in_both_languages() -> None:
    """Mail subjects name the site and what the code is for."""
    assert (
        verification_code_subject("bind_email", "zh_CN", SITE) == "【红柳易办】绑定安全邮箱验证码"
    )
    assert verification_code_subject("login", "en", SITE) == "[红柳易办] Sign-in verification code"


def test_security_change_notice_reads_as_specified_in_both_languages() -> None:
    """The notice of a changed security phone says what, to what (masked), when, and whom to
    call; its subject says what changed."""
    when, desk = "2025-05-01 16:30", "0931-2973386"
    assert security_change_text("phone", "139****9000", when, desk, "zh_CN", SITE) == (
        "【红柳易办】您账号的安全手机已于 2025-05-01 16:30（北京时间）更改为 139****9000，"
        "其他设备上的登录已退出。如非本人操作，请立即联系服务台：0931-2973386。"
    )
    assert security_change_text("email", "z***n@lut.edu.cn", when, desk, "en_US", SITE) == (
        "[红柳易办] The security email of your account was changed to z***n@lut.edu.cn at "
        "2025-05-01 16:30 (Beijing time), and other devices were signed out. If this was not "
        "you, call the help desk at once: 0931-2973386."
    )
    assert security_change_subject("phone", "zh_CN", SITE) == "【红柳易办】安全手机已更改"
    subject = security_change_subject("email", "en", SITE)
    assert subject == "[红柳易办] Your security email was changed"


def test_unknown_purpose_is_a_programming_error() -> None:
    """An unknown purpose raises instead of sending a vague message."""
    with pytest.raises(ValueError, match="purpose"):
        verification_code_text("1", "launch", 5, "zh_CN", SITE)


# -- outbox -----------------------------------------------------------------------------------


def _assert_recent_utc(stamp: str) -> None:
    moment = datetime.fromisoformat(stamp)
    assert moment.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - moment) < timedelta(seconds=30)


def test_outbox_sms_appends_one_documented_json_line_per_message(tmp_path: Path) -> None:
    """The SMS outbox holds {"to", "text", "code", "at"} per line, Chinese unescaped."""
    sender = OutboxSmsSender(tmp_path / "outbox")
    sender.send(_message("111111"))
    sender.send(_message("222222", to="13900139000"))

    raw = (tmp_path / "outbox" / "sms.jsonl").read_text(encoding="utf-8")
    lines = raw.splitlines()
    assert len(lines) == 2 and raw.endswith("\n")
    assert "验证码" in raw  # ensure_ascii=False: readable by a developer
    first, second = (json.loads(line) for line in lines)
    assert set(first) == {"to", "text", "code", "at"}
    assert first["to"] == PHONE and first["code"] == "111111"
    assert first["text"] == verification_code_text("111111", "login", 5, "zh_CN", SITE)
    assert second["to"] == "13900139000" and second["code"] == "222222"
    _assert_recent_utc(first["at"])


def test_outbox_mail_appends_documented_json_line(tmp_path: Path) -> None:
    """The mail outbox holds {"to", "subject", "text", "code", "at"} and needs no server."""
    sender = MailSender(server=None, sender="noreply@hongliu.test", outbox_dir=tmp_path)
    sender.send(
        MailMessage(to="li@example.edu.cn", subject="主题", text="正文 123456", code="123456")
    )

    (record,) = read_records(tmp_path, "mail.jsonl")
    assert set(record) == {"to", "subject", "text", "code", "at"}
    assert record["to"] == "li@example.edu.cn"
    assert record["subject"] == "主题"
    assert record["text"] == "正文 123456"
    assert record["code"] == "123456"
    _assert_recent_utc(record["at"])


def test_concurrent_outbox_appends_produce_whole_lines(tmp_path: Path) -> None:
    """Threads appending long messages at once never interleave inside a line."""
    sender = OutboxSmsSender(tmp_path)
    padding = "长" * 6000  # lines longer than the 8 KiB buffer, the ones most likely to tear

    def burst(worker: int) -> None:
        for index in range(25):
            code = f"{worker:02d}{index:04d}"
            sender.send(SmsMessage(to=PHONE, text=padding + code, code=code))

    threads = [threading.Thread(target=burst, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    lines = (tmp_path / "sms.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]  # a torn line would not parse
    assert len(records) == 200
    assert {r["code"] for r in records} == {f"{w:02d}{i:04d}" for w in range(8) for i in range(25)}
    assert all(r["text"] == padding + r["code"] for r in records)


def test_outbox_appends_from_several_processes_produce_whole_lines(tmp_path: Path) -> None:
    """Worker processes (as under gunicorn) writing at once leave only whole lines."""
    script = (
        "import sys\n"
        "from shared.messaging import OutboxSmsSender, SmsMessage\n"
        "sender = OutboxSmsSender(sys.argv[1])\n"
        "for index in range(40):\n"
        "    code = sys.argv[2] + str(index)\n"
        "    sender.send(SmsMessage(to='13800138000', text='长' * 6000 + code, code=code))\n"
    )
    workers = [
        subprocess.Popen([sys.executable, "-c", script, str(tmp_path), f"p{worker}-"])
        for worker in range(4)
    ]
    assert [worker.wait(timeout=30) for worker in workers] == [0, 0, 0, 0]
    records = read_records(tmp_path, "sms.jsonl")
    assert len(records) == 160
    assert len({r["code"] for r in records}) == 160
    assert all(r["text"].endswith(r["code"]) for r in records)


def test_reading_a_missing_outbox_gives_no_records(tmp_path: Path) -> None:
    """Before the first message there is nothing to read, and no error."""
    assert read_records(tmp_path, "sms.jsonl") == []


# -- build_sms_sender -------------------------------------------------------------------------


def test_outbox_is_the_default_sms_provider(tmp_path: Path) -> None:
    """An empty provider means the development outbox."""
    sender = build_sms_sender("", {"OUTBOX_DIR": str(tmp_path)})
    assert isinstance(sender, OutboxSmsSender)
    sender.send(_message())
    assert read_records(tmp_path, "sms.jsonl")[0]["code"] == CODE


def test_outbox_provider_without_a_folder_is_a_config_error() -> None:
    """The outbox needs IDP_OUTBOX_DIR."""
    with pytest.raises(ConfigError, match="IDP_OUTBOX_DIR"):
        build_sms_sender("outbox", {})


def test_unknown_sms_provider_is_a_config_error() -> None:
    """A typo in IDP_SMS_PROVIDER is reported with the accepted values."""
    with pytest.raises(ConfigError, match=r"IDP_SMS_PROVIDER.*outbox, aliyun, tencent"):
        build_sms_sender("twilio", {})


@pytest.mark.parametrize(
    ("provider", "key"),
    [
        ("aliyun", "SMS_ACCESS_KEY_ID"),
        ("aliyun", "SMS_ACCESS_KEY_SECRET"),
        ("aliyun", "SMS_SIGN_NAME"),
        ("aliyun", "SMS_TEMPLATE_ID"),
        ("tencent", "SMS_ACCESS_KEY_ID"),
        ("tencent", "SMS_SDK_APP_ID"),
        ("tencent", "SMS_TEMPLATE_ID"),
    ],
)
def test_vendor_with_a_missing_key_names_the_variable(provider: str, key: str) -> None:
    """A vendor chosen without one of its keys fails at start-up naming IDP_<KEY>."""
    settings = {
        "SMS_ACCESS_KEY_ID": "id",
        "SMS_ACCESS_KEY_SECRET": "secret",
        "SMS_SIGN_NAME": SITE,
        "SMS_TEMPLATE_ID": "1",
        "SMS_SDK_APP_ID": "1400000001",
    }
    settings[key] = ""
    with pytest.raises(ConfigError, match=f"IDP_{key}"):
        build_sms_sender(provider, settings)


def test_vendor_with_no_keys_names_every_missing_variable() -> None:
    """All missing variables are named at once, not one per restart."""
    with pytest.raises(ConfigError) as caught:
        build_sms_sender("aliyun", {"SMS_ACCESS_KEY_ID": None})
    for key in ("ACCESS_KEY_ID", "ACCESS_KEY_SECRET", "SIGN_NAME", "TEMPLATE_ID"):
        assert f"IDP_SMS_{key}" in str(caught.value)


def test_unknown_sms_scheme_is_a_config_error() -> None:
    """Only https and http are accepted as IDP_SMS_SCHEME."""
    with pytest.raises(ConfigError, match="IDP_SMS_SCHEME"):
        build_sms_sender(
            "aliyun",
            {
                "SMS_ACCESS_KEY_ID": "id",
                "SMS_ACCESS_KEY_SECRET": "secret",
                "SMS_SIGN_NAME": SITE,
                "SMS_TEMPLATE_ID": "1",
                "SMS_SCHEME": "ftp",
            },
        )


# -- Tencent Cloud SMS ------------------------------------------------------------------------


@pytest.fixture
def tencent_gateway() -> Iterator[FakeTencentSms]:
    """A fake Tencent Cloud SMS API on 127.0.0.1."""
    with FakeTencentSms() as gateway:
        yield gateway


def _tencent_sender(gateway: FakeTencentSms, **overrides: Any) -> TencentSmsSender:
    options: dict[str, Any] = {
        "secret_id": gateway.secret_id,
        "secret_key": gateway.secret_key,
        "sdk_app_id": gateway.sdk_app_id,
        "sign_name": gateway.sign_name,
        "template_id": gateway.template_id,
        # Only a running fake has an endpoint; tests of unreachable hosts pass their own.
        "endpoint": overrides.pop("endpoint", None) or gateway.endpoint,
        "scheme": "http",
        "timeout": 5,
    }
    options.update(overrides)
    return TencentSmsSender(**options)


# The SDK calls datetime.utcfromtimestamp(), which Python 3.12+ deprecates; the warning is the
# SDK's to fix, and turning it into an error would only hide what these tests check.
tencent_sdk_warnings = pytest.mark.filterwarnings(
    "ignore:datetime.datetime.utcfromtimestamp:DeprecationWarning"
)


@tencent_sdk_warnings
def test_tencent_sender_delivers_through_the_official_sdk(tencent_gateway: FakeTencentSms) -> None:
    """The SDK's signed SendSms is accepted; the fake saw +86 number, template and params."""
    _tencent_sender(tencent_gateway).send(_message())
    assert tencent_gateway.received == [
        ReceivedSms(
            phone="+8613800138000",
            template_id=tencent_gateway.template_id,
            params=(CODE, "5"),
            sign_name=SITE,
            app_id=tencent_gateway.sdk_app_id,
        )
    ]
    assert tencent_gateway.errors == []


@tencent_sdk_warnings
def test_tencent_sender_built_from_settings_reaches_the_configured_endpoint(
    tencent_gateway: FakeTencentSms,
) -> None:
    """build_sms_sender("tencent") honours IDP_SMS_ENDPOINT and IDP_SMS_SCHEME."""
    sender = build_sms_sender("tencent", tencent_gateway.settings())
    assert isinstance(sender, TencentSmsSender)
    sender.send(_message())
    assert [sms.phone for sms in tencent_gateway.received] == ["+8613800138000"]


@tencent_sdk_warnings
def test_tencent_wrong_secret_key_fails_the_signature_check(
    tencent_gateway: FakeTencentSms,
) -> None:
    """A wrong SecretKey is refused with AuthFailure.SignatureFailure, raised as SmsError."""
    sender = _tencent_sender(tencent_gateway, secret_key="not-the-secret-key")
    with pytest.raises(SmsError) as caught:
        sender.send(_message())
    assert caught.value.vendor_code == "AuthFailure.SignatureFailure"
    assert tencent_gateway.received == []
    assert CODE not in str(caught.value)
    assert "not-the-secret-key" not in str(caught.value)


@tencent_sdk_warnings
def test_tencent_unknown_secret_id_is_refused(tencent_gateway: FakeTencentSms) -> None:
    """An unknown SecretId is refused before the signature is even looked at."""
    with pytest.raises(SmsError) as caught:
        _tencent_sender(tencent_gateway, secret_id="AKIDunknown").send(_message())
    assert caught.value.vendor_code == "AuthFailure.SecretIdNotFound"


@tencent_sdk_warnings
def test_tencent_per_number_limit_raises_sms_error(tencent_gateway: FakeTencentSms) -> None:
    """A per-number frequency limit, reported in SendStatusSet, raises SmsError."""
    tencent_gateway.fail_next_number("LimitExceeded.PhoneNumberThirtySecondLimit")
    with pytest.raises(SmsError) as caught:
        _tencent_sender(tencent_gateway).send(_message())
    assert caught.value.vendor_code == "LimitExceeded.PhoneNumberThirtySecondLimit"
    assert "30 seconds" in str(caught.value)
    assert PHONE not in str(caught.value) and CODE not in str(caught.value)
    assert tencent_gateway.received == []


@tencent_sdk_warnings
def test_tencent_request_level_error_raises_sms_error(tencent_gateway: FakeTencentSms) -> None:
    """An API error (here an empty SMS package) raises SmsError with the vendor's code."""
    tencent_gateway.fail_next("FailedOperation.InsufficientBalanceInSmsPackage")
    sender = _tencent_sender(tencent_gateway)
    with pytest.raises(SmsError) as caught:
        sender.send(_message())
    assert caught.value.vendor_code == "FailedOperation.InsufficientBalanceInSmsPackage"
    sender.send(_message())  # only the next request was told to fail
    assert len(tencent_gateway.received) == 1


@tencent_sdk_warnings
def test_tencent_unreachable_endpoint_raises_sms_error() -> None:
    """A connection failure surfaces as SmsError, not as an SDK or requests exception."""
    sender = _tencent_sender(FakeTencentSms(), endpoint=f"127.0.0.1:{_closed_port()}", timeout=2)
    with pytest.raises(SmsError) as caught:
        sender.send(_message())
    assert caught.value.vendor_code == "ClientNetworkError"


@tencent_sdk_warnings
def test_tencent_fake_rejects_a_replayed_request_with_a_changed_parameter(
    tencent_gateway: FakeTencentSms,
) -> None:
    """Changing the phone in a genuinely signed request breaks its signature at the fake."""
    _tencent_sender(tencent_gateway).send(_message())
    captured = tencent_gateway.last_request
    assert captured is not None
    headers = {k: v for k, v in captured.headers.items() if k != "content-length"}

    tampered = captured.body.replace(b"+8613800138000", b"+8613900139000")
    assert tampered != captured.body
    answer = requests.post(tencent_gateway.url, data=tampered, headers=headers, timeout=5).json()
    assert answer["Response"]["Error"]["Code"] == "AuthFailure.SignatureFailure"

    # The same request untouched is still good: the rejection is about the change.
    answer = requests.post(tencent_gateway.url, data=captured.body, headers=headers, timeout=5)
    assert answer.json()["Response"]["SendStatusSet"][0]["Code"] == "Ok"
    assert [sms.phone for sms in tencent_gateway.received] == ["+8613800138000"] * 2


def test_tencent_fake_rejects_a_stale_timestamp(tencent_gateway: FakeTencentSms) -> None:
    """A request signed more than five minutes ago is refused as expired."""
    headers = {
        "Authorization": "TC3-HMAC-SHA256 Credential="
        f"{tencent_gateway.secret_id}/2020-01-01/sms/tc3_request, "
        "SignedHeaders=content-type;host, Signature=" + "0" * 64,
        "Content-Type": "application/json",
        "X-TC-Action": "SendSms",
        "X-TC-Timestamp": "1577836800",
        "X-TC-Version": "2021-01-11",
    }
    answer = requests.post(tencent_gateway.url, data=b"{}", headers=headers, timeout=5).json()
    assert answer["Response"]["Error"]["Code"] == "AuthFailure.SignatureExpire"


def test_tencent_sender_without_the_sdk_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without tencentcloud-sdk-python-sms the error says which extra to install."""
    # Submodules already imported by earlier tests would be found in sys.modules directly.
    for name in [n for n in sys.modules if n.split(".")[0] == "tencentcloud"] + ["tencentcloud"]:
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError, match=r"pip install 'hongliu\[tencent\]'"):
        _tencent_sender(FakeTencentSms(), endpoint="127.0.0.1:9")


def test_messaging_imports_without_the_tencent_sdk() -> None:
    """The package, outbox and Aliyun senders load on an install without the extra."""
    script = (
        "import sys; sys.modules['tencentcloud'] = None; "
        "import shared.messaging as m; print(m.AliyunSmsSender.__name__)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "AliyunSmsSender"


@pytest.mark.parametrize(
    ("phone", "e164"),
    [
        ("13800138000", "+8613800138000"),
        ("+8613800138000", "+8613800138000"),
        ("8613800138000", "+8613800138000"),
        ("008613800138000", "+8613800138000"),
        ("138 0013 8000", "+8613800138000"),
        ("+85291234567", "+85291234567"),
    ],
)
def test_phone_numbers_are_converted_to_e164(phone: str, e164: str) -> None:
    """Mainland numbers gain +86; numbers with a country code keep theirs."""
    assert to_e164(phone) == e164


# -- Aliyun SMS -------------------------------------------------------------------------------


@pytest.fixture
def aliyun_gateway() -> Iterator[FakeAliyunSms]:
    """A fake Aliyun Dysmsapi on 127.0.0.1."""
    with FakeAliyunSms() as gateway:
        yield gateway


def _aliyun_sender(gateway: FakeAliyunSms, **overrides: Any) -> AliyunSmsSender:
    options: dict[str, Any] = {
        "access_key_id": gateway.access_key_id,
        "access_key_secret": gateway.access_key_secret,
        "sign_name": gateway.sign_name,
        "template_code": gateway.template_code,
        # Only a running fake has an endpoint; tests of unreachable hosts pass their own.
        "endpoint": overrides.pop("endpoint", None) or gateway.endpoint,
        "scheme": "http",
        "timeout": 5,
    }
    options.update(overrides)
    return AliyunSmsSender(**options)


# Aliyun's documented SendSms signing example (API reference, "签名机制").
_ALIYUN_EXAMPLE = {
    "AccessKeyId": "testId",
    "Action": "SendSms",
    "Format": "XML",
    "OutId": "123",
    "PhoneNumbers": "15300000001",
    "RegionId": "cn-hangzhou",
    "SignName": "阿里云短信测试专用",
    "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466",
    "SignatureVersion": "1.0",
    "TemplateCode": "SMS_71390007",
    "TemplateParam": '{"customer":"test"}',
    "Timestamp": "2017-07-12T02:42:19Z",
    "Version": "2017-05-25",
}


def test_aliyun_signature_matches_the_vendors_documented_example() -> None:
    """The sender's signer and the fake's both reproduce Aliyun's published signature."""
    published = "zJDF+Lrzhj/ThnlvIToysFRq6t4="
    assert aliyun_rpc_signature("GET", _ALIYUN_EXAMPLE, "testSecret") == published
    digest = hmac.new(
        b"testSecret&", aliyun_string_to_sign("GET", _ALIYUN_EXAMPLE).encode(), hashlib.sha1
    ).digest()
    assert base64.b64encode(digest).decode() == published
    assert aliyun_percent_encode("a b*~/") == "a%20b%2A~%2F"


def test_aliyun_sender_delivers_a_signed_request(aliyun_gateway: FakeAliyunSms) -> None:
    """A signed SendSms is accepted; the fake saw the number, template and {"code": …}."""
    sender = _aliyun_sender(aliyun_gateway)
    sender.send(_message())
    sender.close()
    assert aliyun_gateway.received == [
        ReceivedSms(
            phone=PHONE, template_id=aliyun_gateway.template_code, params=(CODE,), sign_name=SITE
        )
    ]
    assert aliyun_gateway.errors == []


def test_aliyun_sender_built_from_settings_reaches_the_configured_endpoint(
    aliyun_gateway: FakeAliyunSms,
) -> None:
    """build_sms_sender("aliyun") honours IDP_SMS_ENDPOINT and IDP_SMS_SCHEME."""
    sender = build_sms_sender("aliyun", aliyun_gateway.settings())
    assert isinstance(sender, AliyunSmsSender)
    sender.send(_message())
    sender.close()
    assert [sms.params for sms in aliyun_gateway.received] == [(CODE,)]


def test_aliyun_wrong_secret_is_refused_as_signature_mismatch(
    aliyun_gateway: FakeAliyunSms,
) -> None:
    """A wrong AccessKey secret gives SignatureDoesNotMatch; the log text leaks nothing."""
    sender = _aliyun_sender(aliyun_gateway, access_key_secret="wrong-secret")
    with pytest.raises(SmsError) as caught:
        sender.send(_message())
    sender.close()
    assert caught.value.vendor_code == "SignatureDoesNotMatch"
    text = str(caught.value)
    # Aliyun echoes the string to sign, code and number included: none of it may be logged.
    assert CODE not in text and PHONE not in text and "wrong-secret" not in text
    assert "SignatureDoesNotMatch" in text
    assert aliyun_gateway.received == []


def test_aliyun_business_limit_raises_sms_error(aliyun_gateway: FakeAliyunSms) -> None:
    """isv.BUSINESS_LIMIT_CONTROL (the per-number flow control) raises SmsError."""
    aliyun_gateway.fail_next("isv.BUSINESS_LIMIT_CONTROL")
    sender = _aliyun_sender(aliyun_gateway)
    with pytest.raises(SmsError) as caught:
        sender.send(_message())
    assert caught.value.vendor_code == "isv.BUSINESS_LIMIT_CONTROL"
    assert "流控" in str(caught.value)
    sender.send(_message())  # only the next request was told to fail
    sender.close()
    assert len(aliyun_gateway.received) == 1


def test_aliyun_unreachable_endpoint_raises_sms_error() -> None:
    """A refused connection surfaces as SmsError, not as a requests exception."""
    sender = _aliyun_sender(FakeAliyunSms(), endpoint=f"127.0.0.1:{_closed_port()}")
    with pytest.raises(SmsError, match="unreachable") as caught:
        sender.send(_message())
    sender.close()
    assert caught.value.vendor_code is None


def test_aliyun_timeout_raises_sms_error() -> None:
    """A gateway that accepts the connection but never answers times out as SmsError."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # the kernel completes the handshake; nobody ever answers
        port = silent.getsockname()[1]
        sender = _aliyun_sender(FakeAliyunSms(), endpoint=f"127.0.0.1:{port}", timeout=0.2)
        with pytest.raises(SmsError, match="did not answer"):
            sender.send(_message())
        sender.close()


def test_aliyun_fake_rejects_a_replayed_request_with_a_changed_parameter(
    aliyun_gateway: FakeAliyunSms,
) -> None:
    """Changing the phone in a genuinely signed request breaks its signature at the fake."""
    sender = _aliyun_sender(aliyun_gateway)
    sender.send(_message())
    sender.close()
    captured = aliyun_gateway.last_request
    assert captured is not None
    headers = {"Content-Type": captured.headers["content-type"]}

    tampered = captured.body.replace(b"PhoneNumbers=13800138000", b"PhoneNumbers=13900139000")
    assert tampered != captured.body
    answer = requests.post(aliyun_gateway.url, data=tampered, headers=headers, timeout=5)
    assert (answer.status_code, answer.json()["Code"]) == (400, "SignatureDoesNotMatch")

    # Untouched, it is a replay: the nonce is spent.
    answer = requests.post(aliyun_gateway.url, data=captured.body, headers=headers, timeout=5)
    assert answer.json()["Code"] == "SignatureNonceUsed"
    assert len(aliyun_gateway.received) == 1


def test_aliyun_fake_checks_sign_name_and_template(aliyun_gateway: FakeAliyunSms) -> None:
    """A sign name or template the account does not own is refused like Aliyun does."""
    with pytest.raises(SmsError) as caught:
        _aliyun_sender(aliyun_gateway, sign_name="别人的签名").send(_message())
    assert caught.value.vendor_code == "isv.SMS_SIGNATURE_ILLEGAL"
    with pytest.raises(SmsError) as caught:
        _aliyun_sender(aliyun_gateway, template_code="SMS_0").send(_message())
    assert caught.value.vendor_code == "isv.SMS_TEMPLATE_ILLEGAL"


# -- mail over real SMTP ----------------------------------------------------------------------

MAIL_USER = "mailer@hongliu.test"
MAIL_PASSWORD = "correct horse battery staple"
MAIL_SENDER = "红柳易办 <noreply@hongliu.test>"


@dataclass(frozen=True)
class TlsFiles:
    """A private CA, and a server certificate for 127.0.0.1 it issued."""

    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        """The TLS context the SMTP server presents."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """Certificates made for this run (EC keys: quick to generate)."""
    directory = tmp_path_factory.mktemp("tls")
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Hongliu test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    files.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files


@dataclass(frozen=True)
class Delivered:
    """A message as the SMTP server received it."""

    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    authenticated: bool
    login: bytes | None
    starttls: bool

    def parsed(self) -> email.message.EmailMessage:
        """The message decoded by the email package."""
        message = email.message_from_bytes(self.content, policy=email.policy.default)
        assert isinstance(message, email.message.EmailMessage)
        return message


@dataclass
class RecordingHandler:
    """aiosmtpd handler keeping every message it accepts."""

    delivered: list[Delivered] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Record the envelope and accept it."""
        auth_data = session.auth_data
        self.delivered.append(
            Delivered(
                mail_from=str(envelope.mail_from),
                rcpt_tos=list(envelope.rcpt_tos),
                content=bytes(envelope.original_content or b""),
                authenticated=bool(session.authenticated),
                login=auth_data.login if isinstance(auth_data, LoginPassword) else None,
                starttls=session.ssl is not None,
            )
        )
        return "250 2.0.0 Message accepted for delivery"


def _authenticator(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == MAIL_USER.encode()
        and auth_data.password == MAIL_PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


class _EphemeralPortController(Controller):
    """An aiosmtpd Controller on port 0: learns the port the OS chose before poking it."""

    def _trigger_server(self) -> None:
        assert isinstance(self.server, asyncio.Server)
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


@dataclass(frozen=True)
class SmtpServer:
    """A running aiosmtpd server and what it received."""

    port: int
    handler: RecordingHandler

    @property
    def delivered(self) -> list[Delivered]:
        """Messages accepted so far."""
        return self.handler.delivered


StartSmtp = Callable[..., SmtpServer]


@pytest.fixture
def start_smtp() -> Iterator[StartSmtp]:
    """Start aiosmtpd servers on 127.0.0.1 with the given SMTP options; stopped afterwards."""
    controllers: list[Controller] = []

    def start(**options: Any) -> SmtpServer:
        handler = RecordingHandler()
        # server_hostname spares a getfqdn() DNS lookup per connection.
        controller = _EphemeralPortController(
            handler, hostname="127.0.0.1", port=0, server_hostname="mx.hongliu.test", **options
        )
        controller.start()
        controllers.append(controller)
        return SmtpServer(port=controller.port, handler=handler)

    yield start
    for controller in controllers:
        controller.stop()


def _mail(subject: str = "登录验证码", text: str = "您的验证码为 123456。") -> MailMessage:
    return MailMessage(to="student@example.edu.cn", subject=subject, text=text, code="123456")


def test_mail_over_plain_smtp_arrives_with_proper_headers(start_smtp: StartSmtp) -> None:
    """security="none" delivers to a local relay with From, To, Subject, Date and Message-ID."""
    server = start_smtp()
    MailSender(server="127.0.0.1", port=server.port, security="none", sender=MAIL_SENDER).send(
        _mail()
    )
    (delivered,) = server.delivered
    assert delivered.mail_from == "noreply@hongliu.test"
    assert delivered.rcpt_tos == ["student@example.edu.cn"]
    assert not delivered.starttls
    message = delivered.parsed()
    assert message["From"] == MAIL_SENDER
    assert message["To"] == "student@example.edu.cn"
    assert message["Date"].datetime.tzinfo is not None
    assert message["Message-ID"].endswith("@hongliu.test>")


@pytest.mark.parametrize("mechanism", ["LOGIN", "PLAIN"])
def test_mail_over_starttls_logs_in_and_delivers(
    start_smtp: StartSmtp, tls_files: TlsFiles, mechanism: str
) -> None:
    """STARTTLS with a verified private-CA certificate, then AUTH LOGIN or PLAIN."""
    other = {"LOGIN": "PLAIN", "PLAIN": "LOGIN"}[mechanism]
    server = start_smtp(
        tls_context=tls_files.server_context(),
        require_starttls=True,
        authenticator=_authenticator,
        auth_required=True,
        auth_exclude_mechanism=[other],
    )
    sender = MailSender(
        server="127.0.0.1",
        port=server.port,
        security="starttls",
        username=MAIL_USER,
        password=MAIL_PASSWORD,
        sender=MAIL_SENDER,
        ca_file=str(tls_files.ca_file),
    )
    sender.send(_mail())
    (delivered,) = server.delivered
    assert delivered.starttls
    assert delivered.authenticated and delivered.login == MAIL_USER.encode()


def test_mail_over_starttls_refuses_an_untrusted_certificate(
    start_smtp: StartSmtp, tls_files: TlsFiles
) -> None:
    """Without the private CA the certificate does not verify and nothing is sent."""
    server = start_smtp(tls_context=tls_files.server_context(), require_starttls=True)
    sender = MailSender(
        server="127.0.0.1", port=server.port, security="starttls", sender=MAIL_SENDER
    )
    with pytest.raises(MailError, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        sender.send(_mail())
    assert server.delivered == []


def test_mail_over_implicit_tls_logs_in_and_delivers(
    start_smtp: StartSmtp, tls_files: TlsFiles
) -> None:
    """security="ssl" speaks TLS from the first byte (SMTPS) and logs in."""
    server = start_smtp(
        ssl_context=tls_files.server_context(),
        authenticator=_authenticator,
        # The whole connection is TLS; aiosmtpd only counts STARTTLS as "TLS" for AUTH.
        auth_require_tls=False,
    )
    sender = MailSender(
        server="127.0.0.1",
        port=server.port,
        security="ssl",
        username=MAIL_USER,
        password=MAIL_PASSWORD,
        sender=MAIL_SENDER,
        ca_file=str(tls_files.ca_file),
    )
    sender.send(_mail())
    (delivered,) = server.delivered
    assert delivered.authenticated


def test_mail_refuses_to_fall_back_to_plain_text_without_starttls(start_smtp: StartSmtp) -> None:
    """If STARTTLS is required but not offered, nothing is sent in the clear."""
    server = start_smtp()
    sender = MailSender(
        server="127.0.0.1",
        port=server.port,
        security="starttls",
        username=MAIL_USER,
        password=MAIL_PASSWORD,
        sender=MAIL_SENDER,
    )
    with pytest.raises(MailError, match="STARTTLS"):
        sender.send(_mail())
    assert server.delivered == []


def test_mail_wrong_password_raises_mail_error_without_the_password(
    start_smtp: StartSmtp, tls_files: TlsFiles
) -> None:
    """A refused login is a MailError whose message does not contain the password."""
    server = start_smtp(
        tls_context=tls_files.server_context(),
        require_starttls=True,
        authenticator=_authenticator,
        auth_required=True,
    )
    sender = MailSender(
        server="127.0.0.1",
        port=server.port,
        security="starttls",
        username=MAIL_USER,
        password="guessed-password",
        sender=MAIL_SENDER,
        ca_file=str(tls_files.ca_file),
    )
    with pytest.raises(MailError, match="535") as caught:
        sender.send(_mail())
    assert "guessed-password" not in str(caught.value)
    assert server.delivered == []


def test_mail_non_ascii_password_raises_mail_error(start_smtp: StartSmtp) -> None:
    """smtplib cannot send a non-ASCII password; that is a MailError, not a UnicodeError."""
    server = start_smtp(authenticator=_authenticator, auth_require_tls=False)
    sender = MailSender(
        server="127.0.0.1",
        port=server.port,
        security="none",
        username=MAIL_USER,
        password="密码123",
        sender=MAIL_SENDER,
    )
    with pytest.raises(MailError, match="ASCII") as caught:
        sender.send(_mail())
    assert "密码123" not in str(caught.value)


def test_mail_chinese_subject_and_body_arrive_intact(start_smtp: StartSmtp) -> None:
    """UTF-8 subject and body survive encoding and decode back to the same text."""
    server = start_smtp()
    subject = verification_code_subject("activation", "zh_CN", SITE)
    text = verification_code_text("654321", "activation", 15, "zh_CN", SITE) + "\n\n西北工业学院 ✓"
    MailSender(server="127.0.0.1", port=server.port, security="none", sender=MAIL_SENDER).send(
        MailMessage(to="张三 <zhangsan@example.edu.cn>", subject=subject, text=text, code="654321")
    )
    (delivered,) = server.delivered
    assert delivered.rcpt_tos == ["zhangsan@example.edu.cn"]
    message = delivered.parsed()
    assert message["Subject"] == subject
    assert message["To"] == "张三 <zhangsan@example.edu.cn>"
    body = message.get_body(("plain",))
    assert body is not None
    assert body.get_content_charset() == "utf-8"
    assert body.get_content().rstrip("\n") == text


def test_mail_goes_to_both_outbox_and_server_when_both_are_set(
    start_smtp: StartSmtp, tmp_path: Path
) -> None:
    """With a server and an outbox, the message is delivered and recorded."""
    server = start_smtp()
    MailSender(
        server="127.0.0.1",
        port=server.port,
        security="none",
        sender=MAIL_SENDER,
        outbox_dir=tmp_path,
    ).send(_mail())
    assert len(server.delivered) == 1
    assert [r["code"] for r in read_records(tmp_path, "mail.jsonl")] == ["123456"]


def test_mail_unreachable_server_raises_mail_error() -> None:
    """A refused connection is a MailError naming the server."""
    port = _closed_port()
    sender = MailSender(server="127.0.0.1", port=port, security="none", sender=MAIL_SENDER)
    with pytest.raises(MailError, match=f"127.0.0.1:{port}"):
        sender.send(_mail())


def test_mail_without_server_or_outbox_is_refused() -> None:
    """Nowhere to send to is an error, not a silent drop."""
    with pytest.raises(MailError, match="no mail server configured"):
        MailSender(server=None, sender=MAIL_SENDER).send(_mail())


def test_mail_header_injection_is_refused(tmp_path: Path) -> None:
    """A line break in a header cannot smuggle in extra headers."""
    sender = MailSender(server=None, sender=MAIL_SENDER, outbox_dir=tmp_path)
    with pytest.raises(MailError, match="header"):
        sender.send(_mail(subject="hi\r\nBcc: victim@example.com"))
    assert read_records(tmp_path, "mail.jsonl") == []


@pytest.mark.parametrize(("security", "port"), [("ssl", 465), ("starttls", 587), ("none", 25)])
def test_mail_default_port_follows_security(security: str, port: int) -> None:
    """465 for implicit TLS, 587 for STARTTLS, 25 for a plain relay."""
    assert MailSender(server="mail.example", security=security, sender=MAIL_SENDER).port == port


def test_unknown_mail_security_is_refused() -> None:
    """A misspelt security mode is an error rather than a guess."""
    with pytest.raises(ValueError, match="security"):
        MailSender(server="mail.example", security="tls", sender=MAIL_SENDER)
