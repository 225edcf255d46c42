"""Hall sessions: started after a sign-in, found from an opaque token, ended on demand.

The Flask session carries only a random token; the table holds its SHA-256 with the IdP's
``sid``, so that back-channel logout can end sessions and a database leak starts none.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Concatenate, ParamSpec

from flask import Flask, g, redirect, request, session, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import SQLAlchemyError

from hall.auth.kept_forms import KEEPS_FORM_ATTR, KEPT_FORM_KEY, FormPage, keep_posted_form
from hall.auth.models import HallSession, HallUser, aware, utcnow
from hall.extensions import db

log = logging.getLogger(__name__)

#: Key of the opaque token in the Flask session.
SESSION_KEY = "hall_session"
#: Prefix of the keys Authlib keeps in the Flask session for sign-ins in progress.
PENDING_PREFIX = "_state_"
#: A hall session ends this long after sign-in, whatever the activity.
ABSOLUTE_LIFETIME = timedelta(hours=12)
#: …or after this long without a request.
IDLE_TIMEOUT = timedelta(hours=2)
#: Only refresh ``last_seen_at`` this often, so that browsing does not write on every request.
TOUCH_INTERVAL = timedelta(seconds=60)
#: Sign-ins sweep sessions expired longer ago than this: until then an expired session still
#: tells whose form a late post is (see ``hall.auth.kept_forms``).
SWEEP_AFTER = timedelta(days=1)

P = ParamSpec("P")


def digest(token: str) -> str:
    """The stored id of a session token."""
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(user: HallUser, idp_sid: str | None, id_token: str | None) -> HallSession:
    """Start a session for ``user`` in this browser with a NEW id (the caller commits).

    Whatever the browser held before (a previous session, CSRF token, flashes) is dropped, so
    nothing planted before sign-in survives it (no session fixation). Sign-ins pending in other
    tabs keep their keys: their data is server-side and each works once. So does the key of a
    form kept when the previous session expired: it is only a random store key, and the form
    page gives the form back to its owner alone.
    """
    previous = current_session()
    if previous is not None:
        db.session.delete(previous)
    pending = {
        k: v for k, v in session.items() if k.startswith(PENDING_PREFIX) or k == KEPT_FORM_KEY
    }
    session.clear()
    session.update(pending)
    token = secrets.token_hex(32)
    now = utcnow()
    hall_session = HallSession(
        id=digest(token),
        user=user,
        idp_sid=idp_sid,
        id_token=id_token,
        created_at=now,
        last_seen_at=now,
        expires_at=now + ABSOLUTE_LIFETIME,
        ip=(request.remote_addr or "")[:64] or None,
    )
    db.session.add(hall_session)
    # Sessions nobody came back to would otherwise pile up: sign-ins sweep the expired ones.
    db.session.execute(
        db.delete(HallSession).where(
            HallSession.expires_at < now - SWEEP_AFTER, HallSession.id != hall_session.id
        )
    )
    session[SESSION_KEY] = token
    g.hall_session = hall_session
    return hall_session


def find_session(token: object) -> HallSession | None:
    """The live session for ``token``, or None (unknown, ended, expired or idle too long).

    An expired session is deleted; whose it was stays in ``g.expired_user_id`` for this
    request, so that a form posted just after can be kept for its owner.
    """
    if not isinstance(token, str) or len(token) != 64:
        return None
    hall_session = db.session.get(HallSession, digest(token))
    if hall_session is None:
        return None
    now = utcnow()
    if (
        aware(hall_session.expires_at) <= now
        or aware(hall_session.last_seen_at) + IDLE_TIMEOUT <= now
    ):
        g.expired_user_id = hall_session.user_id
        db.session.delete(hall_session)
        db.session.commit()
        return None
    if aware(hall_session.last_seen_at) + TOUCH_INTERVAL <= now:
        hall_session.last_seen_at = now
        db.session.commit()
    return hall_session


def current_session() -> HallSession | None:
    """This request's hall session (looked up once per request)."""
    if "hall_session" not in g:
        found = find_session(session.get(SESSION_KEY))
        if found is None and SESSION_KEY in session:
            session.pop(SESSION_KEY)  # ended elsewhere (back-channel logout, expiry)
        g.hall_session = found
    hall_session: HallSession | None = g.hall_session
    return hall_session


def current_user() -> HallUser | None:
    """The signed-in user, or None."""
    hall_session = current_session()
    return hall_session.user if hall_session else None


def end_current_session() -> HallSession | None:
    """End this browser's session (the caller commits); returns the ended session, if any."""
    hall_session = current_session()
    if hall_session is not None:
        db.session.delete(hall_session)
    session.clear()
    g.hall_session = None
    return hall_session


def end_sessions(sub: str | None, sid: str | None) -> int:
    """End the sessions a logout token names (the caller commits); returns how many ended.

    With ``sid``, only the sessions of that IdP session (of that user when ``sub`` is given
    too); with ``sub`` alone, every session of that user.
    """
    query = db.delete(HallSession)
    if sid:
        query = query.where(HallSession.idp_sid == sid)
    if sub:
        owner = db.select(HallUser.id).where(HallUser.sub == sub).scalar_subquery()
        query = query.where(HallSession.user_id == owner)
    if not sid and not sub:
        return 0
    result = db.session.execute(query)
    return int(getattr(result, "rowcount", 0) or 0)


def sign_in_path() -> str:
    """Where to send a signed-out visitor of this request, coming back here afterwards."""
    if request.method in ("GET", "HEAD"):
        target = request.full_path if request.query_string else request.path
    else:
        target = "/"  # a form posted after the session ended cannot be replayed by a redirect
    return url_for("auth.login", next=target)


def login_required(
    view: Callable[Concatenate[HallUser, P], ResponseReturnValue],
) -> Callable[P, ResponseReturnValue]:
    """Decorate ``def view(user, …)``: signed-out visitors go to sign in first.

    A form posted to a view marked with ``keeps_form`` just after the session expired is kept
    and given back by its page after sign-in.
    """
    form_page: FormPage | None = getattr(view, KEEPS_FORM_ATTR, None)

    @wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> ResponseReturnValue:
        user = current_user()
        if user is None:
            owner = g.get("expired_user_id")
            if form_page is not None and request.method == "POST" and owner is not None:
                page = form_page(**kwargs)
                if keep_posted_form(owner, page):
                    return redirect(url_for("auth.login", next=page))
            return redirect(sign_in_path())
        return view(user, *args, **kwargs)

    return wrapper


def setup_sessions(app: Flask) -> None:
    """Expose ``current_user`` to templates."""

    @app.context_processor
    def signed_in_user() -> dict[str, HallUser | None]:
        if not g.get("request_id") or g.get("dependency_down"):
            return {"current_user": None}
        try:
            return {"current_user": current_user()}
        except SQLAlchemyError:
            # The error page of a failing database must still render: as signed out.
            log.warning("could not look up the hall session", exc_info=True)
            db.session.rollback()
            return {"current_user": None}
