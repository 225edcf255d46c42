"""Personal identifiers: normalising, keyed hashing, encryption and masked display.

National ID numbers are never stored in clear: a keyed hash (HMAC-SHA256) lets the IdP match a
number someone types, and a Fernet token lets the help desk see it masked. Both keys are derived
from ``IDP_DATA_KEY`` with HKDF, each for its own purpose, so one never stands in for the other.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import unicodedata
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import Flask

from shared.config import KNOWN_WEAK_SECRETS, MIN_SECRET_LENGTH, ConfigError
from shared.i18n import translate as _

#: HKDF ``info`` strings: one derived key per purpose. Changing one orphans stored data.
HASH_INFO = b"hongliu id-number hash"
ENCRYPTION_INFO = b"hongliu id-number encryption"
DEVELOPMENT_KEY_INFO = b"hongliu development data key"


#: Weights and check characters of GB 11643-1999 (18-digit resident identity numbers).
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK_CHARS = "10X98765432"

# re.ASCII throughout: \d would also match Arabic-Indic and other digits NFKC leaves alone,
# and a number must have one spelling to be matched, hashed and sent to.
_RESIDENT_ID = re.compile(r"\d{17}[\dX]", re.ASCII)
_OLD_RESIDENT_ID = re.compile(r"\d{15}", re.ASCII)
#: Passports and travel permits: letters and digits, at least one letter.
_DOCUMENT_NUMBER = re.compile(r"(?=.*[A-Z])[A-Z0-9]{5,20}")
_SCIENTIFIC = re.compile(r"\d(\.\d+)?E\+\d+", re.ASCII)
_MOBILE = re.compile(r"1[3-9]\d{9}", re.ASCII)
_PHONE_NOISE = re.compile(r"[\s\-()（）]")
_EMAIL = re.compile(r"[^@\s]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+")


def check_data_key(config: Mapping[str, Any]) -> None:
    """Refuse to run in production without a strong ``IDP_DATA_KEY``.

    Without it every stored ID number hash and token would depend on a key nobody backed up.
    """
    if config.get("ENV") != "production":
        return
    key = config.get("DATA_KEY")
    if not key:
        raise ConfigError(
            "IDP_DATA_KEY is not set: production needs a random key of at least "
            f"{MIN_SECRET_LENGTH} characters for personal identifiers, e.g. python -c "
            "'import secrets; print(secrets.token_hex(32))' — keep it safe and never change it"
        )
    if len(key) < MIN_SECRET_LENGTH or key.lower() in KNOWN_WEAK_SECRETS:
        raise ConfigError(
            "IDP_DATA_KEY is too short or a known default: production needs a random key of "
            f"at least {MIN_SECRET_LENGTH} characters"
        )


def data_key(app_or_config: Flask | Mapping[str, Any]) -> bytes:
    """The key material for personal identifiers of an app (or its config).

    Development and tests without ``IDP_DATA_KEY`` derive one from the secret key, which the
    development set-up keeps stable in the instance folder.
    """
    config = app_or_config.config if isinstance(app_or_config, Flask) else app_or_config
    check_data_key(config)
    key = config.get("DATA_KEY")
    if key:
        return str(key).encode()
    secret = config.get("SECRET_KEY")
    if not secret:
        raise ConfigError("IDP_DATA_KEY is not set and there is no secret key to derive one from")
    return _hkdf(str(secret).encode(), DEVELOPMENT_KEY_INFO)


def _hkdf(key: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(key)


# Cached because an import hashes and encrypts tens of thousands of identifiers with one key.
@lru_cache(maxsize=8)
def _hash_key(key: bytes) -> bytes:
    return _hkdf(key, HASH_INFO)


@lru_cache(maxsize=8)
def _fernet(key: bytes) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(_hkdf(key, ENCRYPTION_INFO)))


def hash_identifier(value: str, key: bytes) -> str:
    """Keyed hash (HMAC-SHA256, hex) of an already normalised identifier, for matching."""
    return hmac.new(_hash_key(key), value.encode(), hashlib.sha256).hexdigest()


def encrypt_identifier(value: str, key: bytes) -> str:
    """Encrypt an identifier for storage (Fernet: authenticated, a new token each time)."""
    return _fernet(key).encrypt(value.encode()).decode("ascii")


def decrypt_identifier(token: str, key: bytes) -> str:
    """Decrypt a stored identifier; ``ValueError`` when the token is corrupt or the key wrong."""
    try:
        return _fernet(key).decrypt(token.encode("ascii")).decode()
    except (InvalidToken, UnicodeError):
        raise ValueError("the identifier cannot be decrypted with this IDP_DATA_KEY") from None


def normalise_id_number(raw: str) -> str:
    """The canonical form of an ID or passport number: no spaces, upper case, ASCII digits.

    NFKC first, because numbers pasted from Chinese documents often carry full-width characters.
    """
    return "".join(unicodedata.normalize("NFKC", raw).split()).upper()


def typed_code(raw: str | None) -> str:
    """A typed verification, two-step or recovery code as compared: NFKC (a Chinese IME in
    full-width mode types １２３４５６), without spaces."""
    return "".join(unicodedata.normalize("NFKC", raw or "").split())


def id_number_check_char(first17: str) -> str:
    """The check character (0-9 or X) of an 18-digit ID number, from its first 17 digits."""
    total = sum(int(digit) * weight for digit, weight in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK_CHARS[total % 11]


def validate_id_number(raw: str) -> str:
    """Normalise an ID or passport number and check its form; ``ValueError`` says what is wrong."""
    value = normalise_id_number(raw)
    if _SCIENTIFIC.fullmatch(value):
        raise ValueError(_("证件号被 Excel 转成了科学计数法，请把该列设为文本后重新导出"))
    if _RESIDENT_ID.fullmatch(value):
        if id_number_check_char(value[:17]) != value[17]:
            raise ValueError(_("身份证号 %(number)s 的校验位不正确", number=mask_id_number(value)))
        return value
    if _OLD_RESIDENT_ID.fullmatch(value) or _DOCUMENT_NUMBER.fullmatch(value):
        return value
    if value.isdigit():
        raise ValueError(_("身份证号应为 18 位"))
    raise ValueError(_("证件号格式不正确"))


def normalise_phone(raw: str) -> str | None:
    """A mainland mobile number as 11 digits, or None when ``raw`` is not one.

    Accepts ``+86``/``86``/``0086`` prefixes, spaces, dashes and brackets, as people type them.
    """
    value = _PHONE_NOISE.sub("", unicodedata.normalize("NFKC", raw))
    for prefix in ("+86", "0086", "86"):
        if value.startswith(prefix) and len(value) == len(prefix) + 11:
            value = value[len(prefix) :]
            break
    return value if _MOBILE.fullmatch(value) else None


def normalise_email(raw: str) -> str | None:
    """An email address stripped and lower-cased, or None when ``raw`` does not look like one.

    Lower-cased whole: campus mail servers ignore case, and matching must not.
    """
    value = unicodedata.normalize("NFKC", raw).strip().lower()
    if len(value) > 254 or not _EMAIL.fullmatch(value):
        return None
    return value


def mask_id_number(value: str) -> str:
    """``620102199901011234`` → ``6201**********1234``; shorter numbers show less."""
    if len(value) >= 12:
        keep = 4
    elif len(value) >= 6:
        keep = 2
    else:
        return "*" * len(value)
    return value[:keep] + "*" * (len(value) - 2 * keep) + value[-keep:]


def mask_phone(value: str) -> str:
    """``19912341339`` → ``199****1339``, as the recovery page shows it."""
    if len(value) < 8:
        return "*" * len(value)
    return value[:3] + "*" * (len(value) - 7) + value[-4:]


def mask_email(value: str) -> str:
    """``zhang.san@lut.edu.cn`` → ``z***n@lut.edu.cn``."""
    local, at, domain = value.rpartition("@")
    if not at:
        return value[:1] + "***"
    shown = local[:1] + "***" + (local[-1:] if len(local) > 2 else "")
    return f"{shown}@{domain}"
