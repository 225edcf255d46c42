"""Every setting of the IdP, read from ``IDP_*`` environment variables (see README)."""

from ipaddress import IPv4Network, IPv6Network, ip_network

from idp.auth.passwords import Argon2Params
from shared.config import Setting, parse_bool, parse_choice, parse_int, parse_url
from shared.factory import common_settings

_ARGON2 = Argon2Params()


def parse_seconds_list(raw: str) -> tuple[int, ...]:
    """A comma-separated list of positive durations in seconds, e.g. ``300,900,3600``."""
    try:
        values = tuple(int(part) for part in raw.split(",") if part.strip())
    except ValueError:
        raise ValueError("expected comma-separated whole numbers of seconds") from None
    if not values or min(values) <= 0:
        raise ValueError("expected at least one positive number of seconds")
    return values


def parse_timeout(raw: str) -> float:
    """A positive number of seconds, at most 60 (``5``, ``2.5``)."""
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("expected a number of seconds") from None
    if not 0 < value <= 60:
        raise ValueError("expected more than 0 and at most 60 seconds")
    return value


def parse_networks(raw: str) -> tuple[IPv4Network | IPv6Network, ...]:
    """Comma-separated networks in CIDR form (``10.0.0.0/8,2001:db8::/32``; a bare address is
    one host); empty for none."""
    networks = []
    for part in raw.split(","):
        if part.strip():
            try:
                networks.append(ip_network(part.strip(), strict=False))
            except ValueError:
                raise ValueError(f"{part.strip()!r} is not a network (e.g. 10.0.0.0/8)") from None
    return tuple(networks)


_web_url = parse_url("http", "https")

SETTINGS = (
    *common_settings("统一身份认证"),
    Setting("ISSUER", "http://127.0.0.1:5000", parse_url("http", "https"), "the IdP's public URL"),
    Setting(
        "DATA_KEY",
        None,
        str,
        "a random string of at least 32 characters that keys the hashes and encryption of "
        "personal identifiers; never change it once data exists",
    ),
    # Messaging
    Setting("SMS_PROVIDER", "outbox", parse_choice(("outbox", "aliyun", "tencent"))),
    Setting("OUTBOX_DIR", None, str, "folder for sms.jsonl and mail.jsonl"),
    Setting("SMS_ACCESS_KEY_ID", None, str),
    Setting("SMS_ACCESS_KEY_SECRET", None, str),
    Setting("SMS_SIGN_NAME", None, str),
    Setting("SMS_TEMPLATE_ID", None, str),
    Setting(
        "SMS_RESET_LINK_TEMPLATE_ID",
        None,
        str,
        "vendor template of the help desk's reset-link SMS (one parameter: the token)",
    ),
    Setting(
        "SMS_ACTIVATION_TEMPLATE_ID",
        None,
        str,
        "vendor template of the help desk's activation notice SMS (one parameter: the account)",
    ),
    Setting(
        "SMS_SECURITY_NOTICE_TEMPLATE_ID",
        None,
        str,
        "vendor template of the notice that the security phone or email changed "
        "(one parameter: what changed)",
    ),
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
    # Passwords
    Setting("PASSWORD_MIN_LENGTH", 8, parse_int(6, 64)),
    Setting("PASSWORD_MAX_LENGTH", 64, parse_int(8, 1024)),
    Setting("PASSWORD_MIN_SCORE", 1, parse_int(0, 4), "lowest zxcvbn score accepted, 0-4"),
    Setting(
        "PASSWORD_MIN_CLASSES",
        2,
        parse_int(2, 4),
        "character classes (upper, lower, digit, symbol) a password needs, 2-4",
    ),
    # The defaults are Argon2Params' own (OWASP's 7 MiB × 5 passes), kept in one place.
    Setting("ARGON2_MEMORY_KIB", _ARGON2.memory_kib, parse_int(1024), "memory per hash (KiB)"),
    Setting("ARGON2_TIME_COST", _ARGON2.time_cost, parse_int(1), "passes over that memory"),
    Setting("ARGON2_PARALLELISM", _ARGON2.parallelism, parse_int(1, 16)),
    # Brute-force protection
    Setting("LOGIN_CAPTCHA_AFTER", 3, parse_int(1), "failures before a CAPTCHA is required"),
    Setting("LOGIN_IP_CAPTCHA_AFTER", 20, parse_int(1), "failures per IP per hour before CAPTCHA"),
    Setting("LOCKOUT_EVERY", 5, parse_int(1), "failures between temporary locks"),
    Setting("LOCKOUT_DURATIONS", (300, 900, 3600), parse_seconds_list, "e.g. 300,900,3600"),
    Setting("LOCKOUT_WINDOW", 86400, parse_int(60), "seconds failures are remembered"),
    Setting(
        "SHARED_NETWORKS",
        (),
        parse_networks,
        "networks many people come from (campus NAT, e.g. 10.0.0.0/8,203.0.113.7): their "
        "per-address limits are SHARED_NETWORK_SCALE times higher",
    ),
    Setting("SHARED_NETWORK_SCALE", 50, parse_int(1, 100000), "see SHARED_NETWORKS"),
    # Verification codes (SMS and mail)
    Setting("CODE_TTL", 300, parse_int(30)),
    Setting("CODE_MAX_ATTEMPTS", 5, parse_int(1)),
    Setting("CODE_RESEND_INTERVAL", 60, parse_int(1)),
    Setting("CODE_DAILY_LIMIT", 10, parse_int(1), "codes per phone or address per day"),
    Setting("CODE_IP_CAPTCHA_AFTER", 5, parse_int(1), "codes per IP per hour before a CAPTCHA"),
    Setting("CODE_IP_HOURLY_LIMIT", 30, parse_int(1), "codes per IP per hour, hard cap"),
    # CAS
    Setting("CAS_TICKET_TTL", 300, parse_int(10, 3600), "seconds an unvalidated ticket lives"),
    Setting("CAS_PROXY_HTTPS_ONLY", True, parse_bool, "pgtUrl callbacks over https only"),
    Setting("CAS_SLO_TIMEOUT", 5, parse_int(1, 60), "seconds per single-logout request"),
    Setting("CAS_SLO_RETRIES", 3, parse_int(0, 10)),
    # OpenID Connect
    Setting("OIDC_CODE_TTL", 60, parse_int(10, 600), "authorization code lifetime"),
    Setting("OIDC_ACCESS_TOKEN_TTL", 3600, parse_int(60)),
    Setting("OIDC_ID_TOKEN_TTL", 3600, parse_int(60)),
    Setting("OIDC_REFRESH_TOKEN_TTL", 30 * 86400, parse_int(300)),
    Setting(
        "OIDC_KEY_PREPUBLISH",
        3600,
        parse_int(0, 7 * 86400),
        "seconds a rotated-in key is published before it signs",
    ),
    # WeChat (Open Platform website login) and WeCom (web login): unset app ids hide them
    Setting("WECHAT_APP_ID", None, str, "Open Platform website app's AppID"),
    Setting("WECHAT_APP_SECRET", None, str),
    Setting("WECHAT_OAUTH_BASE_URL", "https://open.weixin.qq.com/connect/", _web_url),
    Setting("WECHAT_API_BASE_URL", "https://api.weixin.qq.com/", _web_url),
    Setting("WECOM_CORP_ID", None, str, "WeCom CorpID"),
    Setting("WECOM_AGENT_ID", None, str, "AgentId of the self-built app used for web login"),
    Setting("WECOM_SECRET", None, str, "that app's Secret"),
    Setting("WECOM_LOGIN_BASE_URL", "https://login.work.weixin.qq.com/", _web_url),
    Setting("WECOM_API_BASE_URL", "https://qyapi.weixin.qq.com/cgi-bin/", _web_url),
    Setting("SOCIAL_TIMEOUT", 5.0, parse_timeout, "seconds to wait for WeChat / WeCom APIs"),
    # SSO sessions
    Setting("SESSION_IDLE_TIMEOUT", 7200, parse_int(60)),
    Setting("SESSION_ABSOLUTE_TIMEOUT", 43200, parse_int(300)),
    Setting("SESSION_REMEMBER_TIMEOUT", 30 * 86400, parse_int(300), "with 'remember me'"),
    # Two-step verification (TOTP)
    Setting("TOTP_ISSUER", None, str, "name shown in authenticator apps; default SITE_NAME"),
    Setting("TOTP_TRUST_DAYS", 30, parse_int(1, 365), "days a trusted device skips the code"),
    Setting("TOTP_MAX_FAILURES", 5, parse_int(1), "wrong codes before verification pauses"),
    Setting("TOTP_LOCK_SECONDS", 900, parse_int(60), "how long it pauses"),
)
