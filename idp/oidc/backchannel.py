"""OpenID Connect Back-Channel Logout 1.0 (Authlib has none): when an SSO session ends, every
client that signed in through it and registered a ``backchannel_logout_uri`` receives a
signed logout token, POSTed from a background thread so a slow client delays nobody.

Tokens the ending sessions' sign-ins obtained are revoked at the same time (§2.7: refresh
tokens issued to a logged-out session should be revoked).
"""

from __future__ import annotations

import logging
import secrets
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

import requests
from flask import Flask
from joserfc import jwt

from idp.auth.models import SsoSession
from idp.clients.models import OidcClient, SessionParticipant
from idp.directory.models import utcnow
from idp.extensions import db
from idp.oidc.claims import issuer, session_sid, subject, timestamp
from idp.oidc.keys import active_keys, client_algorithm, current_key, private_key
from idp.oidc.operations import revoke_session_tokens

log = logging.getLogger(__name__)

EVENT = "http://schemas.openid.net/event/backchannel-logout"
#: The ``typ`` header of logout tokens (Back-Channel Logout §2.4): never taken for an ID token.
LOGOUT_JWT_TYPE = "logout+jwt"
#: Seconds a logout token is valid: it is delivered at once or not at all.
TOKEN_LIFETIME = 120
TIMEOUT = 5
#: Attempts per client, with a doubling pause between them (0.5 s, 1 s…).
ATTEMPTS = 3
FIRST_PAUSE = 0.5

_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="oidc-backchannel")
#: Deliveries not finished yet (for a graceful stop, and for tests).
_pending: set[Future[bool]] = set()


@dataclass(frozen=True)
class LogoutDelivery:
    """One logout token for one client: all the thread needs, captured in the request."""

    client_id: str
    uri: str
    logout_token: str


def logout_token(client: OidcClient, sub: str, sid: str) -> str:
    """A signed logout token for ``client`` about session ``sid`` of user ``sub``.

    Signed like the client's ID tokens: it verifies them with the algorithm it registered.
    """
    key = current_key(client_algorithm(client))
    now = timestamp(utcnow())
    claims = {
        "iss": issuer(),
        "aud": client.client_id,
        "iat": now,
        "exp": now + TOKEN_LIFETIME,
        "jti": secrets.token_urlsafe(16),
        "sub": sub,
        "sid": sid,
        "events": {EVENT: {}},
    }
    header = {"alg": key.alg, "kid": key.kid, "typ": LOGOUT_JWT_TYPE}
    return jwt.encode(header, claims, private_key(key), algorithms=[key.alg])


def deliveries_for(sessions: list[SsoSession]) -> list[LogoutDelivery]:
    """The logout tokens to send for ``sessions``, one per client and sid."""
    if not sessions or not active_keys():
        return []  # no key was ever made: no OIDC sign-in happened, nobody to tell
    rows = db.session.execute(
        db.select(SessionParticipant, OidcClient)
        .join(OidcClient, SessionParticipant.oidc_client_id == OidcClient.id)
        .where(
            SessionParticipant.session_id.in_([s.id for s in sessions]),
            SessionParticipant.protocol == "oidc",
        )
        .order_by(SessionParticipant.id)
    ).all()
    users = {s.id: subject(s.user) for s in sessions}
    seen: set[tuple[int, str]] = set()
    deliveries = []
    for participant, client in rows:
        sid = participant.session_index or ""
        if not client.backchannel_logout_uri or not client.enabled or (client.id, sid) in seen:
            continue
        seen.add((client.id, sid))
        token = logout_token(client, users[participant.session_id], sid)
        deliveries.append(LogoutDelivery(client.client_id, client.backchannel_logout_uri, token))
    return deliveries


def deliver(delivery: LogoutDelivery) -> bool:
    """POST one logout token, retrying on errors; True when the client answered 200 or 204."""
    pause = FIRST_PAUSE
    for attempt in range(1, ATTEMPTS + 1):
        try:
            response = requests.post(
                delivery.uri,
                data={"logout_token": delivery.logout_token},
                timeout=TIMEOUT,
                allow_redirects=False,
                headers={"Cache-Control": "no-store"},
            )
            if response.status_code in (200, 204):
                return True
            reason = f"HTTP {response.status_code}"
        except requests.RequestException as exc:
            reason = type(exc).__name__
        log.warning(
            "back-channel logout to client %s failed (attempt %d/%d): %s",
            delivery.client_id,
            attempt,
            ATTEMPTS,
            reason,
        )
        if attempt < ATTEMPTS:
            time.sleep(pause)
            pause *= 2
    return False


def send_logout_tokens(sender: Flask, sessions: list[SsoSession], **_: Any) -> list[Future[bool]]:
    """Receiver of ``session_ending``: revoke the sessions' tokens, queue the logout tokens."""
    sids = {session_sid(s) for s in sessions}
    sids |= set(
        db.session.scalars(
            db.select(SessionParticipant.session_index).where(
                SessionParticipant.session_id.in_([s.id for s in sessions]),
                SessionParticipant.protocol == "oidc",
                SessionParticipant.session_index.is_not(None),
            )
        )
    )
    revoke_session_tokens(sids)
    futures = [_pool.submit(deliver, d) for d in deliveries_for(sessions)]
    for future in futures:
        _pending.add(future)
        future.add_done_callback(_pending.discard)
    return futures


def wait_for_deliveries(timeout: float) -> bool:
    """Wait until every queued logout token was delivered or given up; False on timeout."""
    _done, not_done = wait(list(_pending), timeout=timeout)
    return not not_done
