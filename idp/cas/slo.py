"""CAS single logout: when an SSO session ends, every CAS service it signed in to is sent a
SAML 2 ``LogoutRequest`` naming the service ticket it received (the SessionIndex).

Delivery runs on a small thread pool so that signing out never waits for a slow or dead
service; failures are retried a few times, logged and otherwise ignored, as the protocol says.
The threads get plain strings only: everything is read from the database before they start.
"""

from __future__ import annotations

import logging
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape

import requests
from flask import Flask

from idp.auth.models import SsoSession
from idp.auth.sessions import session_ending
from idp.cas.tickets import forget_session_tickets
from idp.clients.models import CasService, SessionParticipant
from idp.extensions import db

EXECUTOR = "cas_slo_executor"
#: A handful of workers: logout requests are small and few; a flood must not spawn threads.
WORKERS = 4

_TEMPLATE = (
    '<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
    'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" '
    'IssueInstant="{instant}"><saml:NameID>@NOT_USED@</saml:NameID>'
    "<samlp:SessionIndex>{index}</samlp:SessionIndex></samlp:LogoutRequest>"
)


def logout_request(session_index: str) -> str:
    """The SAML 2 LogoutRequest for one service ticket."""
    return _TEMPLATE.format(
        id="LR-" + secrets.token_hex(16),
        instant=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        index=escape(session_index),
    )


def deliver_logout_request(
    url: str, session_index: str, *, timeout: float, retries: int, logger: logging.Logger
) -> bool:
    """POST the logoutRequest to ``url``; retry on network errors and 5xx. True if delivered."""
    body = {"logoutRequest": logout_request(session_index)}
    reason = ""
    for attempt in range(retries + 1):
        try:
            answer = requests.post(url, data=body, timeout=timeout, allow_redirects=False)
            answer.close()
            if answer.status_code < 500:
                # A 4xx will not improve by asking again; the service has had its chance.
                return True
            reason = f"HTTP {answer.status_code}"
        except requests.RequestException as exc:
            reason = type(exc).__name__
        if attempt < retries:
            time.sleep(min(0.5 * 2**attempt, 5.0))
    logger.warning("CAS single logout to %s failed after %d tries: %s", url, retries + 1, reason)
    return False


def _cas_participants(session_ids: list[str]) -> list[tuple[str, str]]:
    rows = db.session.execute(
        db.select(SessionParticipant.service_url, SessionParticipant.session_index)
        .join(CasService, CasService.id == SessionParticipant.cas_service_id)
        .where(
            SessionParticipant.session_id.in_(session_ids),
            SessionParticipant.protocol == "cas",
            CasService.single_logout.is_(True),
        )
        .order_by(SessionParticipant.id)
    )
    found: list[tuple[str, str]] = []
    for url, index in rows:
        if url and index and (url, index) not in found:
            found.append((url, index))
    return found


def on_session_ending(app: Flask, sessions: list[SsoSession], **_: Any) -> None:
    """Receiver of ``session_ending``: queue the logout requests, forget the sessions' PGTs.

    The two are independent: the logout requests need only the database, the PGTs live in
    the store, and a store outage must not leave every CAS service signed in. (A PGT that
    outlives its session is refused anyway: proxy tickets are issued only for live sessions.)
    """
    executor: ThreadPoolExecutor | None = app.extensions.get(EXECUTOR)
    if executor is None or not sessions:
        return
    try:
        targets = _cas_participants([sso.id for sso in sessions])
        options = {
            "timeout": app.config["CAS_SLO_TIMEOUT"],
            "retries": app.config["CAS_SLO_RETRIES"],
            "logger": app.logger,
        }
        for url, index in targets:
            executor.submit(deliver_logout_request, url, index, **options)
    except Exception:
        # Signing out must succeed even when single logout cannot be arranged.
        app.logger.exception("could not queue CAS single logout")
    try:
        forget_session_tickets([sso.lineage for sso in sessions])
    except Exception:
        app.logger.exception("could not forget the proxy-granting tickets of ending sessions")


def setup_single_logout(app: Flask) -> None:
    """Give the app its delivery pool and listen for ending sessions (once per process)."""
    app.extensions[EXECUTOR] = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="cas-slo")
    session_ending.connect(on_session_ending)
