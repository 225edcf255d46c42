"""SSO sessions: created at each sign-in, found from an opaque cookie, ended on demand.

The cookie holds 64 hex characters (CAS needs ``[A-Za-z0-9-]``); the table holds only their
SHA-256, so reading the database does not let anyone sign in as anyone.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from blinker import Namespace
from flask import Flask, current_app, g, request, session
from sqlalchemy.orm import make_transient_to_detached
from werkzeug.wrappers import Response

from idp.audit.operations import client_ip
from idp.auth.models import SsoSession
from idp.clients.models import SessionParticipant
from idp.directory.models import User, UserStatus, aware, utcnow
from idp.extensions import db
from shared.factory import insert_plain

_signals = Namespace()
#: Sent just before SSO sessions end (``sessions=[SsoSession, …]``), while their participants
#: are still on record: CAS single logout and OIDC back-channel logout listen to it.
session_ending = _signals.signal("session-ending")

#: Only refresh ``last_seen_at`` this often, so that browsing does not write on every request.
TOUCH_INTERVAL = timedelta(seconds=60)


def cookie_name() -> str:
    """``__Host-`` prefixed over HTTPS: the browser then refuses it from subdomains or HTTP."""
    return "__Host-hongliu_sso" if current_app.config["SESSION_COOKIE_SECURE"] else "hongliu_sso"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(
    user: User,
    methods: list[str],
    remember: bool = False,
    auth_time: datetime | None = None,
    *,
    keep_times: bool = False,
) -> str:
    """Create a session for ``user`` and arrange for its cookie; returns the cookie value.

    Always a new id (no fixation): any session the browser held before is replaced. When it
    was the same user's, the new session continues its lineage (see ``SsoSession.lineage``),
    and with ``keep_times`` (a new id for a reason other than signing in, such as a password
    change) its start and absolute end too, so that renewing the id never extends a session.
    """
    config = current_app.config
    previous = current_session()
    renew_csrf_secret()
    token = secrets.token_hex(32)
    sso_id = _digest(token)
    now = utcnow()
    lifetime = (
        config["SESSION_REMEMBER_TIMEOUT"] if remember else config["SESSION_ABSOLUTE_TIMEOUT"]
    )
    sso = SsoSession(
        id=sso_id,
        lineage=sso_id,  # its own, unless it continues the previous session's (below)
        user_id=user.id,
        user=user,
        created_at=now,
        auth_time=auth_time or now,
        last_seen_at=now,
        expires_at=now + timedelta(seconds=lifetime),
        methods=",".join(methods),
        remember=remember,
        ip=client_ip(),
        user_agent=(request.user_agent.string or "")[:512] or None,
    )
    if previous is None:
        # The common case, once per sign-in: one plain INSERT now, then the row joins the
        # session as if it had been loaded (no unit of work to flush it at commit).
        insert_plain(db.session, sso)
        make_transient_to_detached(sso)
        db.session.add(sso)
    elif previous.user_id == user.id:
        # Re-authentication (CAS renew, OIDC prompt=login): a new id, but the systems the
        # user already signed in to stay signed in, and the CAS tickets issued stay valid.
        sso.lineage = previous.lineage
        if keep_times:
            sso.created_at, sso.expires_at = previous.created_at, previous.expires_at
        db.session.add(sso)
        db.session.flush()
        db.session.execute(
            db.update(SessionParticipant)
            .where(SessionParticipant.session_id == previous.id)
            .values(session_id=sso.id)
        )
        db.session.delete(previous)
    else:
        # Another person signing in in this browser: the old session ends everywhere.
        db.session.add(sso)
        end_session(previous)
    g.sso_session = sso
    g.sso_cookie = (token, lifetime if remember else None)
    return token


#: Where Flask-WTF keeps the browser's CSRF secret (in the Flask session) and its signed
#: token for this request (on ``g``).
CSRF_KEY = "csrf_token"
#: Where Flask keeps the messages to show on the next page.
FLASHES_KEY = "_flashes"


def renew_csrf_secret() -> None:
    """A new CSRF secret for this browser: at every sign-in and change of session, so that a
    token learnt before (or a secret planted in the browser's cookie) is worthless after."""
    session.pop(CSRF_KEY, None)
    g.pop(CSRF_KEY, None)


def forget_browser_state() -> None:
    """The browser's own SSO session ended: its Flask session goes too (CSRF secret, flows
    half done, anything planted in it), keeping only the messages for the next page."""
    flashes = session.get(FLASHES_KEY)
    session.clear()
    g.pop(CSRF_KEY, None)
    if flashes:
        session[FLASHES_KEY] = flashes


def find_session(token: str | None) -> SsoSession | None:
    """The live session for a cookie value, or None (expired, idle too long, user disabled)."""
    if not token or len(token) != 64:
        return None
    sso = db.session.get(SsoSession, _digest(token))
    if sso is None or not session_is_live(sso):
        return None
    now = utcnow()
    if aware(sso.last_seen_at) + TOUCH_INTERVAL <= now:
        sso.last_seen_at = now
        db.session.commit()
    return sso


def session_is_live(sso: SsoSession) -> bool:
    """Whether ``sso`` still signs its user in: not past its end, not idle too long, and the
    account active (a purge has not necessarily removed it yet). The one rule for the cookie,
    CAS tickets and PGTs, and OIDC logout hints alike."""
    now = utcnow()
    idle = timedelta(seconds=current_app.config["SESSION_IDLE_TIMEOUT"])
    if aware(sso.expires_at) <= now:
        return False
    if not sso.remember and aware(sso.last_seen_at) + idle <= now:
        return False
    return sso.user.status == UserStatus.ACTIVE


def current_session() -> SsoSession | None:
    """This request's SSO session (looked up once per request)."""
    if "sso_session" not in g:
        g.sso_session = find_session(request.cookies.get(cookie_name()))
    sso: SsoSession | None = g.sso_session
    return sso


def current_user() -> User | None:
    """The signed-in user, or None."""
    sso = current_session()
    return sso.user if sso else None


def end_sessions(sessions: list[SsoSession]) -> None:
    """End ``sessions`` (the caller commits); their clients are told (single logout)."""
    if not sessions:
        return
    session_ending.send(current_app._get_current_object(), sessions=sessions)
    for sso in sessions:
        db.session.delete(sso)


def end_session(sso: SsoSession) -> None:
    """End one session (the caller commits); its clients are told (single logout)."""
    end_sessions([sso])
    if g.get("sso_session") is sso:
        g.sso_session = None
        g.sso_cookie = ("", 0)


def end_all_sessions(user: User, keep: SsoSession | None = None) -> int:
    """End every session of ``user`` except ``keep``; returns how many ended (caller commits)."""
    query = db.select(SsoSession).where(SsoSession.user_id == user.id)
    if keep is not None:
        query = query.where(SsoSession.id != keep.id)
    ending = list(db.session.scalars(query))
    end_sessions(ending)
    if keep is None and g.get("sso_session") is not None and g.sso_session.user_id == user.id:
        g.sso_session = None
        g.sso_cookie = ("", 0)
    return len(ending)


def sessions_of(user: User) -> list[SsoSession]:
    """The user's live sessions (:func:`session_is_live`: idle ones are over too), most recent
    first."""
    rows = db.session.scalars(
        db.select(SsoSession)
        .where(SsoSession.user_id == user.id)
        .order_by(SsoSession.last_seen_at.desc())
    )
    return [s for s in rows if session_is_live(s)]


def setup_session_cookie(app: Flask) -> None:
    """Write or clear the SSO cookie when a view started or ended a session."""

    @app.after_request
    def write_cookie(response: Response) -> Response:
        pending = g.get("sso_cookie")
        if pending is None:
            return response
        token, max_age = pending
        name = cookie_name()
        if not token:
            response.delete_cookie(name, path="/", secure=app.config["SESSION_COOKIE_SECURE"])
            forget_browser_state()
        else:
            response.set_cookie(
                name,
                token,
                max_age=max_age,
                path="/",
                secure=app.config["SESSION_COOKIE_SECURE"],
                httponly=True,
                samesite="Lax",
            )
        return response
