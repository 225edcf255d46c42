"""What a relying party learns about a person, scope by scope, and the identifiers it sees.

======== =======================================================================================
scope    claims (in the ID token and from ``/oauth2/userinfo``)
======== =======================================================================================
openid   ``sub``: the account's internal number as a string. It never changes and is never
         given to anyone else, unlike a 学工号, which the registry may hand out again.
profile  ``name`` (姓名), ``preferred_username`` (学工号, the account number)
email    ``email``, ``email_verified`` (true once the owner proved the address with a code);
         only when an address is on record
phone    ``phone_number`` (E.164, ``+8613800138000``), ``phone_number_verified``; only when a
         number is on record
campus   ``account`` (学工号), ``kind`` (``student``, ``staff`` or ``visitor``), ``department``
         (the department's code) and ``department_name``; these two only for someone in one
======== =======================================================================================

ID tokens also carry ``iss``, ``aud`` (the client_id, a single string), ``exp``, ``iat``,
``auth_time``, ``nonce`` (when the request had one), ``sid``, ``amr`` (``pwd``, ``sms``,
``otp``, ``wechat``, ``wecom``) and ``at_hash``. Scopes a client did not register are dropped
from a request, not refused; the ``client_credentials`` grant gets only the client's other
registered scopes (such as ``directory.read``), never these.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app
from flask_babel import lazy_gettext as _l

from idp.auth.models import SsoSession
from idp.directory.identifiers import data_key
from idp.directory.models import User, UserKind, aware

#: The scopes about a person, each with the claims it releases.
SCOPE_CLAIMS: dict[str, tuple[str, ...]] = {
    "openid": ("sub",),
    "profile": ("name", "preferred_username"),
    "email": ("email", "email_verified"),
    "phone": ("phone_number", "phone_number_verified"),
    "campus": ("account", "kind", "department", "department_name"),
}
USER_SCOPES = frozenset(SCOPE_CLAIMS)

#: How the consent page (同意授权) names each scope.
SCOPE_LABELS = {
    "openid": _l("确认您的身份（统一身份认证账号）"),
    "profile": _l("姓名和学工号"),
    "email": _l("安全邮箱地址"),
    "phone": _l("安全手机号码"),
    "campus": _l("学工号、人员类别和所在单位"),
}

#: RFC 8176 names of the sign-in methods SSO sessions record.
AMR_VALUES = {"password": "pwd", "sms": "sms", "totp": "otp"}

#: HKDF ``info`` for the key of ``sid`` values; changing it changes every sid.
SID_INFO = b"hongliu oidc sid"


def issuer() -> str:
    """The issuer identifier: ``IDP_ISSUER`` without a trailing slash."""
    return str(current_app.config["ISSUER"]).rstrip("/")


def subject(user: User) -> str:
    """The ``sub`` of ``user``."""
    return str(user.id)


def timestamp(moment: datetime) -> int:
    """Whole seconds since the epoch, as JWT claims count them."""
    return int(aware(moment).timestamp())


def amr(methods: str) -> list[str]:
    """The ``amr`` claim for an SSO session's comma-separated methods."""
    return [AMR_VALUES.get(m, m) for m in methods.split(",") if m]


@lru_cache(maxsize=8)
def _sid_key(key: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=SID_INFO).derive(key)


def session_sid(sso: SsoSession) -> str:
    """The ``sid`` of an SSO session: stable while it lives, and not its cookie's digest.

    A keyed hash of the session id, so a relying party that sees it learns nothing that
    would let it find or resume the session.
    """
    key = _sid_key(data_key(current_app))
    return hmac.new(key, sso.id.encode(), hashlib.sha256).hexdigest()[:32]


def _phone_number(phone: str) -> str:
    # Mainland numbers are stored as 11 digits; E.164 adds the country code.
    return "+86" + phone if len(phone) == 11 and phone.isdigit() else phone


def user_claims(user: User, scope: str | None) -> dict[str, Any]:
    """The claims ``scope`` releases about ``user`` (``sub`` always)."""
    scopes = set((scope or "").split())
    claims: dict[str, Any] = {"sub": subject(user)}
    if "profile" in scopes:
        claims["name"] = user.name
        claims["preferred_username"] = user.account
    if "email" in scopes and user.email:
        claims["email"] = user.email
        claims["email_verified"] = user.email_verified_at is not None
    if "phone" in scopes and user.phone:
        claims["phone_number"] = _phone_number(user.phone)
        claims["phone_number_verified"] = user.phone_verified_at is not None
    if "campus" in scopes:
        kind = user.kind.value if isinstance(user.kind, UserKind) else str(user.kind)
        claims["account"] = user.account
        claims["kind"] = kind
        if user.department is not None:  # a claim without a value is left out (Core §5.3.2)
            claims["department"] = user.department.code
            claims["department_name"] = user.department.name
    return claims


def supported_claims() -> list[str]:
    """Every claim the provider can release, for discovery."""
    registered = ["iss", "aud", "exp", "iat", "auth_time", "nonce", "sid", "amr", "at_hash"]
    return registered + [c for claims in SCOPE_CLAIMS.values() for c in claims]
