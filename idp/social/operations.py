"""Binding rules for WeChat and WeCom identities. No ``request`` here; callers commit.

One identity opens at most one account, and an account has at most one identity per provider;
both are unique constraints, so two browsers binding at the same moment leave exactly one
binding and a clear message for the other.
"""

from __future__ import annotations

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy.exc import IntegrityError

from idp.audit.operations import DENIED, FAILURE, record
from idp.directory.models import User
from idp.extensions import db
from idp.social.clients import WECHAT, WECOM, SocialProfile
from idp.social.models import SocialIdentity

#: How each provider is named on pages.
PROVIDER_NAMES = {WECHAT: _l("微信"), WECOM: _l("企业微信")}


class BindingError(ValueError):
    """A binding cannot be made or removed; the message is for the user."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        #: A short code for the audit log: ``taken``, ``has-one``, ``none``.
        self.reason = reason


def provider_name(provider: str) -> str:
    """微信 or 企业微信 (in the page's language)."""
    return str(PROVIDER_NAMES.get(provider, provider))


def identities_of(user: User) -> list[SocialIdentity]:
    """The WeChat / WeCom identities bound to ``user``, WeChat first."""
    rows = db.session.scalars(
        db.select(SocialIdentity).where(SocialIdentity.user_id == user.id)
    ).all()
    order = {WECHAT: 0, WECOM: 1}
    return sorted(rows, key=lambda row: order.get(row.provider, 9))


def identity_of(user: User, provider: str) -> SocialIdentity | None:
    """``user``'s identity at ``provider``, if bound."""
    return db.session.scalar(
        db.select(SocialIdentity).where(
            SocialIdentity.user_id == user.id, SocialIdentity.provider == provider
        )
    )


def find_identity(profile: SocialProfile) -> SocialIdentity | None:
    """The binding of whoever scanned, or None.

    A WeChat binding made while the app had no unionid is keyed on the openid; once WeChat
    sends a unionid for that openid, the binding moves to it (the openid is per app, the
    unionid is the same across the university's apps). An answer without a unionid still finds
    a binding made with one through its openid: else the same WeChat would look unbound, and
    could be bound to a second account.
    """
    found: SocialIdentity | None = db.session.scalar(
        db.select(SocialIdentity).where(
            SocialIdentity.provider == profile.provider, SocialIdentity.subject == profile.subject
        )
    )
    if found is None and profile.provider == WECHAT and profile.openid:
        same_openid = db.select(SocialIdentity).where(
            SocialIdentity.provider == WECHAT, SocialIdentity.openid == profile.openid
        )
        if profile.unionid:
            # A unionid names the person: only a binding that had none may move to it.
            same_openid = same_openid.where(SocialIdentity.unionid.is_(None))
        found = db.session.scalars(same_openid.order_by(SocialIdentity.id).limit(1)).first()
        if found is not None and profile.unionid:
            found.subject, found.unionid = profile.unionid, profile.unionid
    return found


def bind_identity(user: User, profile: SocialProfile, *, via: str) -> SocialIdentity:
    """Bind the scanned identity to ``user`` (``via``: ``security``, ``complete``, ``login``).

    Raises :class:`BindingError` (and audits the refusal) when the identity belongs to another
    account or ``user`` already has one at this provider; nothing is half-saved.
    """
    existing = find_identity(profile)
    if existing is not None and existing.user_id == user.id:
        return existing  # scanned twice: already done
    if existing is not None:
        raise _refused(
            user,
            profile.provider,
            "taken",
            via,
            _(
                "该%(provider)s已绑定其他账号。一个%(provider)s只能绑定一个账号；"
                "如需改绑，请先登录原账号解除绑定，或联系管理员。",
                provider=provider_name(profile.provider),
            ),
        )
    if identity_of(user, profile.provider) is not None:
        raise _refused(
            user,
            profile.provider,
            "has-one",
            via,
            _(
                "您的账号已绑定%(provider)s。如需更换，请先在安全中心解除绑定。",
                provider=provider_name(profile.provider),
            ),
        )
    identity = SocialIdentity(
        user_id=user.id,
        provider=profile.provider,
        subject=profile.subject,
        openid=profile.openid,
        unionid=profile.unionid,
        nickname=profile.nickname,
    )
    try:
        with db.session.begin_nested():
            db.session.add(identity)
    except IntegrityError:
        # Bound elsewhere a moment ago (the unique constraints decide the race).
        raise _refused(
            user,
            profile.provider,
            "taken",
            via,
            _(
                "该%(provider)s刚刚已被绑定，请刷新后查看。",
                provider=provider_name(profile.provider),
            ),
        ) from None
    record("social.bind", actor=user, method=profile.provider, detail={"via": via})
    return identity


def decline_identity(user: User, provider: str, *, via: str) -> None:
    """``user`` chose 暂不绑定 for a scanned identity: nothing is bound; audited, as a WeChat
    left waiting for whoever signs in next is how an account would be taken over."""
    record(
        "social.bind",
        DENIED,
        actor=user,
        method=provider,
        detail={"reason": "declined", "via": via},
    )


def unbind_identity(user: User, provider: str, *, actor: User | None, reason: str) -> bool:
    """Remove ``user``'s binding at ``provider`` (by the user, or by the help desk as ``actor``);
    returns False when there was none. Audited with ``reason``."""
    identity = identity_of(user, provider)
    if identity is None:
        return False
    db.session.delete(identity)
    record(
        "social.unbind",
        actor=actor,
        target=user,
        method=provider,
        detail={"reason": reason[:200]},
    )
    return True


def _refused(user: User, provider: str, reason: str, via: str, message: str) -> BindingError:
    record(
        "social.bind", FAILURE, actor=user, method=provider, detail={"reason": reason, "via": via}
    )
    return BindingError(message, reason)
