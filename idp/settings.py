"""Every setting of the IdP, read from ``IDP_*`` environment variables (see README)."""

from shared.config import Setting, parse_choice, parse_int, parse_url
from shared.factory import common_settings

SETTINGS = (
    *common_settings("统一身份认证"),
    Setting("ISSUER", "http://127.0.0.1:5000", parse_url("http", "https"), "the IdP's public URL"),
    Setting("SMS_PROVIDER", "outbox", parse_choice(("outbox", "aliyun", "tencent"))),
    Setting("OUTBOX_DIR", None, str, "folder for sms.jsonl and mail.jsonl"),
    Setting("SMS_ACCESS_KEY_ID", None, str),
    Setting("SMS_ACCESS_KEY_SECRET", None, str),
    Setting("SMS_SIGN_NAME", None, str),
    Setting("SMS_TEMPLATE_ID", None, str),
    Setting("SMS_SDK_APP_ID", None, str),
    Setting("SMS_REGION", "ap-guangzhou", str),
    Setting("SMS_ENDPOINT", None, str, "host[:port] of the vendor API"),
    Setting("SMS_SCHEME", "https", parse_choice(("https", "http"))),
    Setting("MAIL_SERVER", None, str),
    Setting("MAIL_PORT", None, parse_int(1, 65535)),
    Setting("MAIL_SECURITY", "starttls", parse_choice(("starttls", "ssl", "none"))),
    Setting("MAIL_USERNAME", None, str),
    Setting("MAIL_PASSWORD", None, str),
    Setting("MAIL_SENDER", "hongliu@localhost", str),
    Setting("MAIL_CA_FILE", None, str),
)
