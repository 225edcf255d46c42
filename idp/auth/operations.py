"""Sign-in rules: who an identifier names, password checks under brute-force protection, and
what a user must do before their SSO session starts."""

from __future__ import annotations

import enum
import hashlib
import unicodedata
from dataclasses import dataclass
from typing import Any

from flask import current_app
from sqlalchemy import bindparam

from idp.audit.operations import DENIED, FAILURE, PENDING, SUCCESS, client_ip, record, write
from idp.auth import throttle
from idp.auth.passwords import PasswordHasher, dummy_verify, hasher_from_config
from idp.auth.policy import PersonalInfo
from idp.directory.identifiers import (
    data_key,
    decrypt_identifier,
    hash_identifier,
    normalise_id_number,
    normalise_phone,
)
from idp.directory.models import User, UserStatus, utcnow
from idp.extensions import db
from idp.mfa.models import WITH_TOTP_FLAG


class SignInOutcome(enum.Enum):
    """How a password sign-in ended."""

    OK = "ok"
    #: Wrong account, wrong password or a temporary lock: one message for all three.
    REFUSED = "refused"
    #: The right password for an account the help desk disabled or locked.
    DISABLED = "disabled"


@dataclass(frozen=True)
class SignInResult:
    """The outcome and, when the password was right, the user."""

    outcome: SignInOutcome
    user: User | None = None


def hasher() -> PasswordHasher:
    """The app's password hasher (built once per app)."""
    cached: PasswordHasher | None = current_app.extensions.get("idp_hasher")
    if cached is None:
        cached = hasher_from_config(current_app.config)
        current_app.extensions["idp_hasher"] = cached
    return cached


def find_user_by_identifier(identifier: str) -> User | None:
    """The account named by an account number, a verified security phone or an ID number.

    A phone or ID number shared by several accounts names none of them. Compared in NFKC, as
    phones and ID numbers are: a Chinese IME in full-width mode types ２０２４…, and account
    numbers are ASCII.
    """
    value = unicodedata.normalize("NFKC", identifier or "").strip()
    if not value or len(value) > 64:
        return None
    user: User | None = db.session.scalar(_USER_BY_ACCOUNT, {"account": value})
    if user is not None:
        return user
    phone = normalise_phone(value)
    if phone:
        return find_user_by_security_phone(phone)
    digest = hash_identifier(normalise_id_number(value), data_key(current_app.config))
    matches = db.session.scalars(
        db.select(User).where(User.id_number_hash == digest).options(WITH_TOTP_FLAG)
    ).all()
    return matches[0] if len(matches) == 1 else None


# Built once with a bound parameter: every sign-in runs it, and building a statement costs
# more than running it.
_USER_BY_ACCOUNT = (
    db.select(User).where(User.account == bindparam("account")).options(WITH_TOTP_FLAG)
)


def find_user_by_security_phone(phone: str) -> User | None:
    """The one account whose *verified* security phone is ``phone`` (a shared number: none)."""
    matches = db.session.scalars(
        db.select(User)
        .where(User.phone == phone, User.phone_verified_at.is_not(None))
        .options(WITH_TOTP_FLAG)
        .limit(2)
    ).all()
    return matches[0] if len(matches) == 1 else None


def throttle_subject(identifier: str, user: User | None) -> str:
    """Lock counters follow the account, whichever identifier was typed; unknown ones alike."""
    return f"user:{user.id}" if user else f"ident:{identifier.strip().lower()}"


def captcha_subject(identifier: str) -> str:
    """What the sign-in CAPTCHA counter follows: the identifier as typed, in canonical form.

    Never the account it names: a counter shared by an account's spellings (account number,
    phone, ID number, with or without +86 or spaces) would show whoever tries them which ones
    are on file and belong together. Locks, which nobody can see, still follow the account.
    """
    value = identifier.strip()
    return f"typed:{normalise_phone(value) or normalise_id_number(value)}"


def clear_sign_in_counters(user: User) -> None:
    """Lift ``user``'s sign-in lock and clear the failures counted against it (help desk,
    recovery), those of its own identifiers as typed too, so no CAPTCHA is left behind."""
    info = personal_info(user)
    typed = [captcha_subject(i) for i in (info.account, info.phone, info.id_number) if i]
    throttle.record_success(throttle_subject(user.account, user), *typed)


def _audit_sign_in(outcome: str = SUCCESS, **fields: Any) -> None:
    """The ``login`` audit event, written at once with a plain INSERT in this transaction.

    Not left pending in the session: the queries that follow in the sign-in would otherwise
    each flush it first, and every sign-in pays for the unit of work on top of argon2.
    """
    write("login", outcome, **fields)


def audit_sign_in(user: User, method: str, *, second_factor_due: bool) -> None:
    """The ``login`` event of a sign-in whose ``method`` checked out: ``pending`` while a
    两步验证 code is still due, so 登录记录 never calls a sign-in stopped there 成功."""
    _audit_sign_in(PENDING if second_factor_due else SUCCESS, target=user, method=method)


def sign_in_with_password(identifier: str, password: str, user: User | None) -> SignInResult:
    """Check a password sign-in for ``user`` (as :func:`find_user_by_identifier` resolved
    ``identifier``); audits a refusal (one that checks out is audited by :func:`audit_sign_in`,
    once a second factor is known to be due or not) and leaves the session to commit.

    The same work (one argon2 verification) is done whether or not the account exists or is
    locked, so neither the answer nor its timing tells them apart.
    """
    subject, typed = throttle_subject(identifier, user), captcha_subject(identifier)
    attempt = throttle.reserve_attempt(subject)
    if not attempt.allowed:
        dummy_verify(hasher())
        # Counted like any other failure: the address's CAPTCHA must not appear for some
        # identifiers and not others, or it would show which ones belong to a locked account.
        throttle.record_failure(typed)
        throttle.record_ip_failure(client_ip())
        _audit_sign_in(FAILURE, target=user, method="password", detail={"reason": "locked"})
        return SignInResult(SignInOutcome.REFUSED)
    if user is None:
        dummy_verify(hasher())
        throttle.record_failure(typed)
        throttle.record_ip_failure(client_ip())
        _audit_sign_in(FAILURE, method="password", detail={"reason": "unknown-account"})
        return SignInResult(SignInOutcome.REFUSED)
    result = hasher().verify(user.password_hash, password)
    if not result.ok:
        throttle.record_failure(typed)
        throttle.record_ip_failure(client_ip())
        _audit_sign_in(FAILURE, target=user, method="password", detail={"reason": "password"})
        return SignInResult(SignInOutcome.REFUSED)
    throttle.record_success(subject, typed)
    if user.status in (UserStatus.DISABLED, UserStatus.LOCKED):
        _audit_sign_in(DENIED, target=user, method="password", detail={"reason": user.status})
        return SignInResult(SignInOutcome.DISABLED, user)
    if result.needs_rehash:
        # Legacy unified-auth hashes and weaker argon2 parameters are replaced on first use.
        user.password_hash = hasher().hash(password)
    # Its ``login`` event comes from audit_sign_in once the caller knows whether a second
    # factor is still due.
    return SignInResult(SignInOutcome.OK, user)


def password_stamp(user: User) -> str:
    """Changes whenever the password does (recovery, a help-desk reset, another tab): a
    sign-in parked half-way under the old password is void once it differs."""
    return hashlib.sha256((user.password_hash or "-").encode()).hexdigest()


def credentials_stamp(user: User) -> str:
    """Changes whenever the verified security phone or email, or the password, does: a wizard
    that proved them once is void when they are no longer what it proved (another tab or
    browser, the help desk)."""
    phone = user.phone if user.has_security_phone else ""
    email = user.email if user.has_security_email else ""
    changed = user.password_changed_at.isoformat() if user.password_changed_at else ""
    return hashlib.sha256("\n".join((phone or "", email or "", changed)).encode()).hexdigest()


def set_password(user: User, password: str, *, must_change: bool = False) -> None:
    """Store a new password (already checked against the policy); the caller commits."""
    user.password_hash = hasher().hash(password)
    user.password_changed_at = utcnow()
    user.must_change_password = must_change


def required_step(user: User) -> str | None:
    """What the user must do before a session starts: ``activate``, ``complete``, ``password``."""
    if user.status == UserStatus.PENDING:
        return "activate"
    if not user.has_security_phone:
        return "complete"
    if user.must_change_password:
        return "password"
    return None


def personal_info(user: User) -> PersonalInfo:
    """What a new password of ``user`` must not contain."""
    id_number = None
    if user.id_number_encrypted:
        try:
            id_number = decrypt_identifier(user.id_number_encrypted, data_key(current_app.config))
        except ValueError:
            id_number = None
    return PersonalInfo(
        account=user.account,
        name=user.name,
        phone=user.phone,
        id_number=id_number,
        email=user.email,
    )


class PasswordCheck(enum.Enum):
    """How confirming the login password ended."""

    OK = "ok"
    WRONG = "wrong"
    #: Too many wrong passwords lately: the same lock as password sign-in.
    LOCKED = "locked"


def confirm_password(user: User, password: str) -> PasswordCheck:
    """Check the login password of a signed-in user, under the sign-in brute-force lock.

    Wrong guesses here count towards the same lock as at /login, so a stolen session cannot be
    used to guess the password faster than the sign-in page allows.
    """
    subject = throttle_subject(user.account, user)
    if not throttle.reserve_attempt(subject).allowed:
        dummy_verify(hasher())
        record(
            "security.verify", FAILURE, actor=user, method="password", detail={"reason": "locked"}
        )
        return PasswordCheck.LOCKED
    if not hasher().verify(user.password_hash, password).ok:
        record(
            "security.verify", FAILURE, actor=user, method="password", detail={"reason": "password"}
        )
        return PasswordCheck.WRONG
    throttle.record_success(subject)
    return PasswordCheck.OK
