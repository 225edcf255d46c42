"""The provider's rules that are not Authlib's: consent, token revocation, who took part in a
session, and forced re-authentication. Callers commit."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from flask import request, session
from flask_wtf.csrf import validate_csrf
from sqlalchemy import bindparam
from sqlalchemy.exc import IntegrityError
from wtforms import ValidationError

from idp.audit.operations import DENIED, record
from idp.auth.models import SsoSession
from idp.auth.sessions import session_is_live
from idp.clients.models import OidcClient, SessionParticipant
from idp.clients.operations import hash_secret
from idp.directory.models import User, aware, utcnow
from idp.extensions import db
from idp.oidc.models import Consent, OAuthToken

#: Flask-session key of the moment the browser was sent to /login to re-authenticate.
REAUTH_MARKER = "oidc_reauth_since"
#: A re-authentication must finish within this many seconds to count.
REAUTH_WINDOW = 900


def consent_covers(user: User, client: OidcClient, scopes: Iterable[str]) -> bool:
    """True when ``user`` already agreed to share ``scopes`` with ``client``."""
    consent = db.session.scalar(
        db.select(Consent).where(Consent.user_id == user.id, Consent.client_id == client.id)
    )
    return consent is not None and set(scopes) <= set(consent.scopes)


def remember_consent(user: User, client: OidcClient, scopes: Iterable[str]) -> None:
    """Record that ``user`` agreed to ``scopes`` (added to what they agreed to before)."""
    query = (
        db.select(Consent)
        .where(Consent.user_id == user.id, Consent.client_id == client.id)
        .with_for_update()
    )
    consent = db.session.scalar(query)
    if consent is None:
        # Two tabs agreeing at once: the second insert meets the unique constraint; its
        # savepoint is rolled back and the scopes are merged into the row the first one made.
        try:
            with db.session.begin_nested():
                consent = Consent(user_id=user.id, client_id=client.id, scopes=[])
                db.session.add(consent)
        except IntegrityError:
            consent = db.session.scalars(query.execution_options(populate_existing=True)).one()
    consent.scopes = sorted(set(consent.scopes) | set(scopes))
    record("oidc.consent", target=user, subject=client.client_id, detail={"scopes": consent.scopes})


def remember_participant(sso: SsoSession, client: OidcClient, sid: str) -> None:
    """Note that ``client`` signed in through ``sso``, for back-channel logout."""
    exists = db.session.scalar(
        db.select(SessionParticipant.id).where(
            SessionParticipant.session_id == sso.id,
            SessionParticipant.protocol == "oidc",
            SessionParticipant.oidc_client_id == client.id,
            SessionParticipant.session_index == sid,
        )
    )
    if exists is None:
        db.session.add(
            SessionParticipant(
                session_id=sso.id, protocol="oidc", oidc_client_id=client.id, session_index=sid
            )
        )


def logout_confirmed() -> bool:
    """Whether this request is the person's own 确认退出: the confirmation form, POSTed with
    its CSRF token."""
    if request.method != "POST" or not request.form.get("confirm"):
        return False
    try:
        validate_csrf(request.form.get("csrf_token"))
    except ValidationError:
        return False
    return True


def session_of_sid(sid: Any, sub: str, client: OidcClient) -> SsoSession | None:
    """The live SSO session of user ``sub`` whose sign-in gave ``client`` the ``sid``, or None.

    Found through the participant record rather than by recomputing the sid from session ids:
    re-authentication (same user, ``prompt=login``, CAS ``renew``) gives the session a new id,
    and its participants, old sids included, move to it.
    """
    if not isinstance(sid, str) or not sub.isascii() or not sub.isdigit():
        return None
    sso = db.session.scalar(
        db.select(SsoSession)
        .join(SessionParticipant, SessionParticipant.session_id == SsoSession.id)
        .where(
            SsoSession.user_id == int(sub),
            SessionParticipant.protocol == "oidc",
            SessionParticipant.oidc_client_id == client.id,
            SessionParticipant.session_index == sid,
        )
        .limit(1)
    )
    return sso if sso is not None and session_is_live(sso) else None


def revoke_families(family_ids: Iterable[str]) -> int:
    """Revoke every token of the given families; returns how many rows changed."""
    ids = sorted(set(family_ids))
    if not ids:
        return 0
    result = db.session.execute(
        db.update(OAuthToken)
        .where(OAuthToken.family_id.in_(ids), OAuthToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session="fetch")
    )
    return int(getattr(result, "rowcount", 0) or 0)


def revoke_replayed_code(code: str, client_id: str) -> bool:
    """A code came back after it was exchanged: revoke what it issued (RFC 6749 §4.1.2)."""
    families = list(
        db.session.scalars(
            db.select(OAuthToken.family_id).where(
                OAuthToken.authorization_code_hash == hash_secret(code)
            )
        )
    )
    if not families:
        return False
    revoke_families(families)
    record("oidc.code_replay", DENIED, subject=client_id)
    return True


def claim_refresh_token(token: OAuthToken) -> bool:
    """Mark ``token``'s refresh token used; False when another request already had.

    One conditional UPDATE: a concurrent request holding the same token waits for the row
    lock, then finds it used and matches nothing, so a token is never exchanged twice.
    """
    result = db.session.connection().execute(_CLAIM, {"row": token.id, "now": utcnow()})
    return int(getattr(result, "rowcount", 0) or 0) == 1


_TOKENS = OAuthToken.__table__
# A plain statement on the session's connection: the row object is not read again before the
# commit, and the ORM's bookkeeping would cost more than the UPDATE on every refresh.
_CLAIM = (
    _TOKENS.update()
    .where(
        _TOKENS.c.id == bindparam("row"),
        _TOKENS.c.refresh_used_at.is_(None),
        _TOKENS.c.revoked_at.is_(None),
    )
    .values(refresh_used_at=bindparam("now"))
)


def revoke_reused_refresh_token(token: OAuthToken) -> None:
    """A rotated refresh token came back: someone holds a copy, so the family dies."""
    revoke_families([token.family_id])
    record("oidc.refresh_replay", DENIED, target=token.user, subject=token.client.client_id)


def revoke_session_tokens(sids: Iterable[str]) -> int:
    """Revoke the tokens issued to sign-ins of sessions that are ending."""
    families = db.session.scalars(
        db.select(OAuthToken.family_id).where(OAuthToken.sid.in_(sorted(set(sids))))
    )
    return revoke_families(families)


def start_reauthentication(request_id: str) -> None:
    """Remember when this browser was sent to sign in again for one authorization request."""
    session[REAUTH_MARKER] = {"request": request_id, "since": time.time()}


def reauthenticated(sso: SsoSession, request_id: str) -> bool:
    """True when ``sso`` signed in after the browser was sent to sign in for this request.

    The marker stays until the request is answered (the consent page posts the same request
    again) and only counts for the request it was set for, within ``REAUTH_WINDOW``.
    """
    marker = session.get(REAUTH_MARKER)
    if not isinstance(marker, dict) or marker.get("request") != request_id:
        return False
    since = marker.get("since")
    if not isinstance(since, int | float) or time.time() - since > REAUTH_WINDOW:
        return False
    return aware(sso.auth_time).timestamp() >= since


def finish_reauthentication() -> None:
    """Forget the marker once the request it was for has been answered."""
    session.pop(REAUTH_MARKER, None)


def signed_in_before(sso: SsoSession, max_age: int) -> bool:
    """Whether ``sso``'s sign-in is ``max_age`` seconds old or more, to the microsecond.

    Not in whole seconds: max_age=0 must ask again even within the second of the sign-in, as
    prompt=login does (OIDC Core §3.1.2.1).
    """
    return (utcnow() - aware(sso.auth_time)).total_seconds() >= max_age
