"""Account self-service rules: proving who you are, binding a security phone or email,
activating, and resetting a password. No ``request`` here; callers commit."""

from __future__ import annotations

import hmac

from flask import current_app
from flask_babel import gettext as _

from idp.audit.operations import record
from idp.auth.operations import clear_sign_in_counters, set_password
from idp.auth.sessions import end_all_sessions
from idp.directory.identifiers import data_key, hash_identifier, normalise_id_number
from idp.directory.models import User, UserStatus, utcnow
from idp.extensions import db


class AccountError(ValueError):
    """A self-service step cannot go ahead; the message is for the user."""


def match_identity(account: str, name: str, id_number: str) -> User | None:
    """The account whose number, name and ID number all match the imported record, else None.

    All three are compared every time (no early exit on a wrong account), so the answer and
    its timing say nothing about which part was wrong.
    """
    user = db.session.scalar(db.select(User).where(User.account == account.strip()))
    typed_hash = hash_identifier(normalise_id_number(id_number), data_key(current_app.config))
    stored_hash = user.id_number_hash if user and user.id_number_hash else "0" * 64
    id_ok = hmac.compare_digest(typed_hash, stored_hash)
    name_ok = bool(user) and hmac.compare_digest(
        name.strip().casefold().encode(), (user.name if user else "").strip().casefold().encode()
    )
    if user is None or not (id_ok and name_ok) or not user.id_number_hash:
        return None
    return user


def phone_taken_by_other(user: User, phone: str) -> bool:
    """True when another account already has ``phone`` as its verified security phone."""
    other = db.session.scalar(
        db.select(User.id).where(
            User.phone == phone, User.phone_verified_at.is_not(None), User.id != user.id
        )
    )
    return other is not None


def bind_security_phone(user: User, phone: str) -> None:
    """Make ``phone`` (already proven by an SMS code) the user's security phone."""
    if phone_taken_by_other(user, phone):
        raise AccountError(_("该手机号已是其他账号的安全手机，请更换手机号或联系管理员。"))
    old = user.phone if user.has_security_phone else None
    user.phone = phone
    user.phone_verified_at = utcnow()
    record("phone.bind", actor=user, detail={"replaced": bool(old and old != phone)})


def bind_security_email(user: User, email: str) -> None:
    """Make ``email`` (already proven by a mailed code) the user's security email."""
    user.email = email
    user.email_verified_at = utcnow()
    record("email.bind", actor=user)


def activate_account(user: User, password: str) -> None:
    """激活账号: a pending account with a proven phone gets its password and becomes active."""
    if user.status != UserStatus.PENDING:
        raise AccountError(_("该账号已激活，请直接登录。"))
    if not user.has_security_phone:
        raise AccountError(_("请先绑定安全手机。"))
    set_password(user, password)
    user.status = UserStatus.ACTIVE
    record("account.activate", actor=user)


def reset_password(user: User, password: str, method: str) -> None:
    """找回密码: set the new password, end every session and lift any sign-in lock."""
    clear_sign_in_counters(user)  # store first: see shared.store on SQLite writers
    set_password(user, password)
    end_all_sessions(user)
    record("password.reset", actor=user, method=method)


def complete_information(user: User, password: str) -> None:
    """信息完善, last step: set the new password and end every session of the account.

    A phone lost and unbound by the help desk may still be signed in somewhere; the new
    phone and password shut it out, as a password reset does. The sign-in this completion
    belongs to starts its own session afterwards.
    """
    set_password(user, password)
    end_all_sessions(user)
    record("account.complete", actor=user)
