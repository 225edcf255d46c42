"""Sending verification codes and notices by SMS and mail.

* :mod:`~shared.messaging.texts` words the messages (Chinese by default, English on request).
* :mod:`~shared.messaging.sms` sends SMS through the development outbox, Tencent Cloud or
  Aliyun; :func:`build_sms_sender` picks one from ``IDP_SMS_PROVIDER`` and its settings.
* :mod:`~shared.messaging.mail` sends mail over SMTP (STARTTLS, implicit TLS or, for a local
  relay, plain) and/or into the outbox.
* :mod:`~shared.messaging.outbox` is the JSON-lines outbox both use in development:
  ``$IDP_OUTBOX_DIR/sms.jsonl`` and ``mail.jsonl``, one ``{"to", "text", "code", "at"}`` object
  per line.
"""

from shared.messaging.mail import MailError, MailMessage, MailSender
from shared.messaging.outbox import MAIL_FILE, SMS_FILE, append_record, read_records
from shared.messaging.sms import (
    PROVIDERS,
    AliyunSmsSender,
    OutboxSmsSender,
    SmsError,
    SmsMessage,
    SmsSender,
    TencentSmsSender,
    build_sms_sender,
    template_available,
    to_e164,
)
from shared.messaging.texts import (
    PURPOSES,
    SECURITY_CHANGES,
    activation_notice_subject,
    activation_notice_text,
    changed_item,
    normalize_locale,
    reset_link_text,
    security_change_subject,
    security_change_text,
    verification_code_subject,
    verification_code_text,
)

__all__ = [
    "MAIL_FILE",
    "PROVIDERS",
    "PURPOSES",
    "SECURITY_CHANGES",
    "SMS_FILE",
    "AliyunSmsSender",
    "MailError",
    "MailMessage",
    "MailSender",
    "OutboxSmsSender",
    "SmsError",
    "SmsMessage",
    "SmsSender",
    "TencentSmsSender",
    "activation_notice_subject",
    "activation_notice_text",
    "append_record",
    "build_sms_sender",
    "changed_item",
    "normalize_locale",
    "read_records",
    "reset_link_text",
    "security_change_subject",
    "security_change_text",
    "template_available",
    "to_e164",
    "verification_code_subject",
    "verification_code_text",
]
