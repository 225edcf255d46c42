"""两步验证 rules: enrolment, code checks (rate-limited, replay-proof), recovery codes and the
help desk's reset (trusted devices: :mod:`idp.mfa.devices`). No ``request`` here: views pass in
what they read.

A TOTP code is accepted at most once: the credential remembers the last accepted 30-second
time step and a code from that step or an earlier one is refused, with the check-and-set done
in one UPDATE so two parallel submissions of the same code cannot both pass. Wrong codes (TOTP
or recovery) count per user in the shared store: each block of them pauses verification twice
as long as the one before, and the 100th in a row stops it until the help desk resets it.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
from datetime import UTC, datetime, timedelta

import pyotp
import segno
from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import bindparam, or_

from idp.audit.operations import DENIED, FAILURE, record
from idp.auth.models import SsoSession
from idp.auth.operations import PasswordCheck, confirm_password
from idp.auth.throttle import Attempt, reserve_in_blocks
from idp.directory.identifiers import (
    data_key,
    decrypt_identifier,
    encrypt_identifier,
    typed_code,
)
from idp.directory.models import User, aware, utcnow
from idp.extensions import db
from idp.mfa.models import RecoveryCode, TotpCredential, TrustedDevice
from shared.factory import get_store

#: The method name SSO sessions record once the second factor is verified.
TOTP = "totp"
RECOVERY_CODE_COUNT = 10
#: Crockford's base32 alphabet (no i, l, o, u): easy to read off paper and to type.
_RECOVERY_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_RECOVERY_LENGTH = 10
#: Steps either side of now that are accepted (clock drift of phones).
VALID_WINDOW = 1
#: How long an unconfirmed secret may be confirmed (and is shown again on reload).
ENROLMENT_TTL = timedelta(minutes=30)


class MfaError(ValueError):
    """A two-step verification action cannot go ahead; ``message`` is for the user.

    ``field`` names the form field it belongs to (``code`` or ``password``); ``status`` is the
    HTTP status a view should answer with.
    """

    def __init__(self, message: str, *, field: str = "code", status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.status = status


WRONG_CODE = _l("验证码错误，请输入验证器应用中当前显示的 6 位数字。")
WRONG_RECOVERY_CODE = _l("恢复码错误或已使用过。")
LOCKED = _l("验证码错误次数过多，请 %(minutes)d 分钟后再试。")
ENROLMENT_EXPIRED = _l(
    "该密钥已超过 %(minutes)d 分钟，已失效。请在验证器应用中删除刚添加的条目，"
    "重新扫描下方的新二维码。"
)


# 状态 ---------------------------------------------------------------------------------------


def _credential(user: User) -> TotpCredential | None:
    credential: TotpCredential | None = db.session.scalar(
        db.select(TotpCredential).where(TotpCredential.user_id == user.id)
    )
    return credential


# One prebuilt statement reading the same EXISTS as the ``totp_confirmed`` column (one rule for
# "confirmed"), for the callers whose account lookup did not load that column.
_CONFIRMED_CREDENTIAL = db.select(User.totp_confirmed).where(User.id == bindparam("user_id"))


def totp_enabled(user: User) -> bool:
    """True when the user has a confirmed authenticator app (sign-in then asks for a code)."""
    return bool(db.session.scalar(_CONFIRMED_CREDENTIAL, {"user_id": user.id}))


def authenticator_stamp(user: User) -> str | None:
    """Names the user's confirmed authenticator, None without one: a reset and a new enrolment
    change it (a row id alone does not, as a database may reuse it)."""
    credential = _credential(user)
    if credential is None or credential.confirmed_at is None:
        return None
    return f"{credential.id}:{aware(credential.confirmed_at).isoformat()}"


def session_has_totp(sso: SsoSession) -> bool:
    """True when the second factor was verified in this SSO session."""
    return TOTP in sso.methods.split(",")


def methods_with_totp(sso: SsoSession) -> list[str]:
    """The session's sign-in methods with a verified second factor added (step-up)."""
    methods = [m for m in sso.methods.split(",") if m]
    return methods if TOTP in methods else [*methods, TOTP]


def recovery_codes_left(user: User) -> int:
    """How many unused recovery codes the user still has."""
    return int(
        db.session.scalar(
            db.select(db.func.count())
            .select_from(RecoveryCode)
            .where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
        )
        or 0
    )


# 密钥 ---------------------------------------------------------------------------------------


def _key() -> bytes:
    return data_key(current_app.config)


def _secret(credential: TotpCredential) -> str:
    return decrypt_identifier(credential.secret_encrypted, _key())


def enrolment_secret(user: User) -> str:
    """The secret to show while enabling: the pending one, or a new one (the caller commits)."""
    credential = _credential(user)
    if credential is not None and credential.confirmed_at is not None:
        raise MfaError(_l("两步验证已开启。"), status=409)
    if credential is not None:
        if aware(credential.created_at) + ENROLMENT_TTL > utcnow():
            return _secret(credential)
        # A secret shown long ago may have been seen by someone else: start afresh.
        db.session.delete(credential)
        db.session.flush()
    secret = pyotp.random_base32(32)
    db.session.add(
        TotpCredential(user_id=user.id, secret_encrypted=encrypt_identifier(secret, _key()))
    )
    return secret


def issuer_name() -> str:
    """The name authenticator apps show above the code."""
    return str(current_app.config.get("TOTP_ISSUER") or current_app.config["SITE_NAME"])


def provisioning_uri(user: User, secret: str) -> str:
    """The ``otpauth://`` URI the QR code carries."""
    return pyotp.TOTP(secret).provisioning_uri(name=user.account, issuer_name=issuer_name())


def qr_code_data_uri(uri: str) -> str:
    """An SVG QR code as a data URI: an <img> the CSP allows, no script needed."""
    return str(segno.make(uri, error="m").svg_data_uri(scale=5, border=2))


def format_secret(secret: str) -> str:
    """The secret in groups of four, as people type it into an app by hand."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


# 限流 ---------------------------------------------------------------------------------------

#: Wrong codes are remembered this long from the first one; a right code, or the help desk's
#: reset, forgets them at once.
FAILURE_MEMORY = 30 * 86400
#: Each block of ``TOTP_MAX_FAILURES`` wrong codes pauses verification twice as long as the one
#: before (from ``TOTP_LOCK_SECONDS``), up to a day: a few dozen guesses the first day, then a
#: handful a day.
LONGEST_PAUSE = 86400
#: NIST SP 800-63B 5.2.2: at most 100 consecutive wrong codes. The last of them pauses
#: verification for all of ``FAILURE_MEMORY``, unless the help desk resets 两步验证.
MOST_FAILURES = 100

LOCKED_HOURS = _l("验证码错误次数过多，请 %(hours)d 小时后再试。")
SUSPENDED = _l("验证码错误次数过多，两步验证已暂停。请携带有效证件联系网络与信息中心重置两步验证。")


def _limit_keys(user: User, every: int | None = None) -> tuple[str, str, str]:
    """The user's wrong-code count, pause and pause level.

    Count and level are kept per ``TOTP_MAX_FAILURES`` value, like password sign-in's: they
    only make sense in its blocks, and a changed setting must not strand an account between
    blocks (a pause due that is never set) for the month wrong codes are remembered.
    """
    if every is None:
        every = int(current_app.config["TOTP_MAX_FAILURES"])
    return f"mfa-fail:{every}:{user.id}", f"mfa-lock:{user.id}", f"mfa-level:{every}:{user.id}"


def _first_and_longest_pause() -> tuple[int, int]:
    first = int(current_app.config["TOTP_LOCK_SECONDS"])
    return first, max(first, LONGEST_PAUSE)


def _pause_seconds(block: int, number: int) -> int:
    """How long verification pauses after the ``block``-th block of wrong codes (from 1)."""
    if number >= MOST_FAILURES:
        return FAILURE_MEMORY
    first, longest = _first_and_longest_pause()
    return min(first << min(block - 1, 32), longest)  # doubling


def _locked_error(user: User) -> MfaError:
    """The refusal while paused, saying how long is left (or, past the last block, whom to ask)."""
    _, lock, _ = _limit_keys(user)
    first, longest = _first_and_longest_pause()
    left = get_store().ttl(lock) or float(first)
    if left > longest:
        message = str(SUSPENDED)
    elif left > 3600:
        message = str(LOCKED_HOURS % {"hours": math.ceil(left / 3600)})
    else:
        message = str(LOCKED % {"minutes": max(1, math.ceil(left / 60))})
    return MfaError(message, status=429)


def is_locked(user: User) -> bool:
    """True while too many wrong codes keep the user from trying again."""
    _, lock, _ = _limit_keys(user)
    return get_store().get(lock) is not None


def _reserve_attempt(user: User) -> Attempt:
    """Count the attempt before checking it (:func:`idp.auth.throttle.reserve_in_blocks`), so
    parallel guesses cannot pass the limit; raise while paused."""
    every = int(current_app.config["TOTP_MAX_FAILURES"])
    keys = _limit_keys(user, every)
    attempt = reserve_in_blocks(keys, every, FAILURE_MEMORY, _pause_seconds, MOST_FAILURES)
    if not attempt.allowed:
        record("mfa.verify", DENIED, actor=user, detail={"reason": "locked"})
        raise _locked_error(user)
    return attempt


def _attempt_failed(user: User, attempt: Attempt, method: str, message: str) -> MfaError:
    """Audit a wrong code (and the pause it starts); returns the error to raise."""
    detail: dict[str, int] = {"failures": attempt.number}
    if attempt.locks_for is not None:
        detail["paused"] = attempt.locks_for
    record("mfa.verify", FAILURE, actor=user, method=method, detail=detail)
    if attempt.locks_for is not None:
        return _locked_error(user)
    return MfaError(str(message), status=401)


def _attempt_succeeded(user: User) -> None:
    """A right code forgets the wrong ones, and lifts a pause set in advance for it."""
    get_store().delete(*_limit_keys(user))


def failures(user: User) -> int:
    """Wrong (or in-flight) codes counted for the user in the current window."""
    fail, _, _ = _limit_keys(user)
    return get_store().count(fail)


# 验证 ---------------------------------------------------------------------------------------


def _normalise_code(code: str) -> str | None:
    digits = typed_code(code)
    return digits if len(digits) == 6 and digits.isascii() and digits.isdigit() else None


def _matching_step(secret: str, code: str, at: float) -> int | None:
    """The time step within the window whose code is ``code`` (compared in constant time)."""
    totp = pyotp.TOTP(secret)
    now = totp.timecode(datetime.fromtimestamp(at, UTC))
    found = None
    for step in range(now - VALID_WINDOW, now + VALID_WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            found = step
    return found


def _accept_step(credential: TotpCredential, step: int) -> bool:
    """Remember ``step`` as used, unless it (or a later one) already was: one atomic UPDATE."""
    result = db.session.execute(
        db.update(TotpCredential)
        .where(
            TotpCredential.id == credential.id,
            or_(TotpCredential.last_used_step.is_(None), TotpCredential.last_used_step < step),
        )
        .values(last_used_step=step)
        .execution_options(synchronize_session=False)
    )
    accepted = bool(result.rowcount == 1)  # type: ignore[attr-defined]
    if accepted:
        credential.last_used_step = step
    return accepted


def _check_code(user: User, credential: TotpCredential, code: str, at: float | None) -> None:
    attempt = _reserve_attempt(user)
    normalised = _normalise_code(code)
    step = (
        _matching_step(_secret(credential), normalised, time.time() if at is None else at)
        if normalised
        else None
    )
    if step is None or not _accept_step(credential, step):
        raise _attempt_failed(user, attempt, TOTP, str(WRONG_CODE))
    _attempt_succeeded(user)


def verify_totp(user: User, code: str, *, at: float | None = None) -> None:
    """Accept a code from the user's app once; ``MfaError`` when wrong, reused or locked.

    The caller commits (the used step and any audit event are in the session).
    """
    credential = _credential(user)
    if credential is None or credential.confirmed_at is None:
        raise MfaError(_l("尚未开启两步验证。"), status=409)
    _check_code(user, credential, code, at)


def _normalise_recovery_code(code: str) -> str:
    # Crockford's rules: people read 0 as o and 1 as l or i off printed paper.
    cleaned = typed_code(code).replace("-", "").lower()
    return cleaned.translate(str.maketrans("oil", "011"))


def _hash_recovery_code(code: str) -> str:
    return hashlib.sha256(_normalise_recovery_code(code).encode()).hexdigest()


def use_recovery_code(user: User, code: str) -> int:
    """Spend one recovery code; returns how many are left. ``MfaError`` when wrong or used.

    The caller commits.
    """
    if not totp_enabled(user):
        raise MfaError(_l("尚未开启两步验证。"), status=409)
    attempt = _reserve_attempt(user)
    digest = _hash_recovery_code(code)
    match = None
    for candidate in db.session.scalars(
        db.select(RecoveryCode).where(
            RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None)
        )
    ):
        if hmac.compare_digest(candidate.code_hash, digest):
            match = candidate
    spent = False
    if match is not None:
        # Conditional UPDATE: of two tabs submitting the same code, only one spends it.
        result = db.session.execute(
            db.update(RecoveryCode)
            .where(RecoveryCode.id == match.id, RecoveryCode.used_at.is_(None))
            .values(used_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        spent = bool(result.rowcount == 1)  # type: ignore[attr-defined]
    if not spent:
        raise _attempt_failed(user, attempt, "recovery_code", str(WRONG_RECOVERY_CODE))
    _attempt_succeeded(user)
    db.session.expire_all()
    left = recovery_codes_left(user)
    record("mfa.recovery_code.use", actor=user, detail={"left": left})
    return left


# 开启与关闭 -----------------------------------------------------------------------------------


def _new_recovery_codes(user: User) -> list[str]:
    db.session.execute(db.delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_LENGTH))
        code = f"{raw[:5]}-{raw[5:]}"
        codes.append(code)
        db.session.add(RecoveryCode(user_id=user.id, code_hash=_hash_recovery_code(code)))
    return codes


def confirm_enrolment(user: User, code: str, *, at: float | None = None) -> list[str]:
    """Turn two-step verification on with a first code; returns the new recovery codes.

    The codes are shown once and only their hashes are kept. The caller commits.
    """
    credential = _credential(user)
    if credential is None:
        raise MfaError(_l("请重新扫描二维码后再输入验证码。"), status=409)
    if credential.confirmed_at is not None:
        raise MfaError(_l("两步验证已开启。"), status=409)
    if aware(credential.created_at) + ENROLMENT_TTL <= utcnow():
        # Shown too long ago (a page left open): someone else may have seen it. The next page
        # draws a new key.
        db.session.delete(credential)
        minutes = int(ENROLMENT_TTL.total_seconds() // 60)
        raise MfaError(str(ENROLMENT_EXPIRED % {"minutes": minutes}), status=409)
    _check_code(user, credential, code, at)
    credential.confirmed_at = utcnow()
    codes = _new_recovery_codes(user)
    record("mfa.enable", actor=user)
    return codes


def _looks_like_recovery_code(code: str) -> bool:
    return len(_normalise_recovery_code(code)) == _RECOVERY_LENGTH


def verify_code_or_recovery_code(user: User, code: str, *, at: float | None = None) -> None:
    """Accept a current code from the app or, for someone who lost it, an unused recovery code
    (spent). ``MfaError`` as :func:`verify_totp` or :func:`use_recovery_code`. The caller commits.
    """
    if _normalise_code(code) is None and _looks_like_recovery_code(code):
        use_recovery_code(user, code)
    else:
        verify_totp(user, code, at=at)


def regenerate_recovery_codes(user: User, code: str, *, at: float | None = None) -> list[str]:
    """Replace all recovery codes after a code from the app or an unused recovery code;
    returns the new ones. The caller commits."""
    verify_code_or_recovery_code(user, code, at=at)
    codes = _new_recovery_codes(user)
    record("mfa.recovery_codes.regenerate", actor=user)
    return codes


def _remove_everything(user: User) -> None:
    for model in (RecoveryCode, TrustedDevice, TotpCredential):
        db.session.execute(db.delete(model).where(model.user_id == user.id))
    get_store().delete(*_limit_keys(user))
    db.session.expire_all()


def confirm_login_password(user: User, password: str) -> None:
    """The signed-in user's login password, under the sign-in lock; ``MfaError`` (``password``
    field) when wrong or locked. Failures are audited; the caller commits."""
    check = confirm_password(user, password)
    if check is PasswordCheck.LOCKED:
        raise MfaError(
            _l("密码错误次数过多，请稍后再试，或通过“忘记密码”重置。"),
            field="password",
            status=429,
        )
    if check is PasswordCheck.WRONG:
        raise MfaError(_l("当前密码不正确"), field="password", status=401)


def disable_totp(user: User, password: str, code: str, *, at: float | None = None) -> None:
    """Turn two-step verification off; needs the login password and a current code (or, the
    app lost, an unused recovery code).

    Recovery codes and trusted devices go with it. The caller commits.
    """
    if not totp_enabled(user):
        raise MfaError(_l("尚未开启两步验证。"), status=409)
    confirm_login_password(user, password)
    verify_code_or_recovery_code(user, code, at=at)
    _remove_everything(user)
    record("mfa.disable", actor=user)


def reset_totp(user: User, *, actor: User, reason: str) -> bool:
    """Help desk: remove a user's two-step verification (lost phone). The caller commits.

    Returns False when the user had none turned on (a half-finished enrolment is dropped
    quietly, nothing is audited).
    """
    enabled = totp_enabled(user)
    _remove_everything(user)
    if not enabled:
        return False
    record("mfa.reset", actor=actor, target=user, detail={"reason": reason})
    return True
