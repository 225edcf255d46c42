"""CAS tickets in the ephemeral store: issuing, redeeming and proxying (CAS Protocol 3.0).

* ST / PT — single use (``take``: one validation attempt burns them, whatever its outcome),
  bound to one service URL, alive ``CAS_TICKET_TTL`` seconds.
* PGT — reusable until its SSO session ends; the PGTIOU is an unrelated random value.
* TGT — the SSO session itself (``idp.auth.sessions``); CAS clients never see it.

Tickets name the session's lineage, not its id: signing in again in the same browser (say for
a service asking for ``renew``) replaces the session by one with a new id but the same lineage,
and the PGTs and not yet validated STs issued before must go on working (CAS ends a PGT when
the user signs out, not when they re-authenticate).

Every ticket is ``PREFIX-`` followed by 43 characters of ``[A-Za-z0-9]`` (≈ 256 random bits):
the protocol allows only ``[A-Za-z0-9-]``, which ``secrets.token_urlsafe`` does not respect.
"""

from __future__ import annotations

import json
import re
import secrets
import string
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import requests
from flask import current_app
from sqlalchemy import bindparam
from sqlalchemy.orm import joinedload

from idp.auth.models import SsoSession
from idp.auth.sessions import session_is_live
from idp.clients.models import CasService, SessionParticipant
from idp.clients.operations import find_cas_service, policy_admits
from idp.clients.rules import has_blank_or_control, pattern_matches, web_url_parts
from idp.directory.models import User, utcnow
from idp.extensions import db
from shared.factory import get_store

TICKET_ALPHABET = string.ascii_letters + string.digits
#: 43 × log2(62) ≈ 256 bits, the length the specification recommends aiming for.
TICKET_RANDOM_LENGTH = 43
#: Upper bound on what is even looked up, so a hostile value never reaches the store.
_MAX_RANDOM_LENGTH = 200
#: Seconds the IdP waits for a proxy callback (pgtUrl) to answer.
PROXY_CALLBACK_TIMEOUT = 5
#: Longest service URL accepted anywhere.
MAX_SERVICE_LENGTH = 2048
#: Released attributes read from the user's department.
DEPARTMENT_ATTRIBUTES = frozenset({"department", "department_name", "departmentName"})

# Failure codes named by the specification.
INVALID_REQUEST = "INVALID_REQUEST"
INVALID_TICKET_SPEC = "INVALID_TICKET_SPEC"
UNAUTHORIZED_SERVICE_PROXY = "UNAUTHORIZED_SERVICE_PROXY"
INVALID_PROXY_CALLBACK = "INVALID_PROXY_CALLBACK"
INVALID_TICKET = "INVALID_TICKET"
INVALID_SERVICE = "INVALID_SERVICE"
INTERNAL_ERROR = "INTERNAL_ERROR"
#: Only ``/proxy`` uses this one.
UNAUTHORIZED_SERVICE = "UNAUTHORIZED_SERVICE"


class CasError(Exception):
    """A protocol failure: the code clients act on, and a description for people."""

    def __init__(self, code: str, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


@dataclass(frozen=True)
class Grant:
    """What a redeemed ST or PT stands for."""

    kind: str
    service: str
    service_id: int
    user: User
    session: SsoSession
    new_login: bool
    auth_time: datetime
    remember: bool
    #: Proxy callback URLs authentication flowed through, most recent first (PT only).
    proxies: tuple[str, ...] = field(default=())
    #: The registered service itself, held so that the session does not read it again.
    registered: CasService | None = field(default=None, compare=False, repr=False)


def new_ticket_id(prefix: str) -> str:
    """``PREFIX-`` and 43 random characters of ``[A-Za-z0-9]``."""
    body = "".join(secrets.choice(TICKET_ALPHABET) for _ in range(TICKET_RANDOM_LENGTH))
    return f"{prefix}-{body}"


def looks_like(ticket: str | None, *prefixes: str) -> bool:
    """True when ``ticket`` has one of the prefixes and only the allowed characters."""
    if not ticket:
        return False
    pattern = rf"(?:{'|'.join(prefixes)})-[A-Za-z0-9]{{32,{_MAX_RANDOM_LENGTH}}}"
    return re.fullmatch(pattern, ticket) is not None


def is_web_url(url: str | None) -> bool:
    """An absolute http(s) URL of sane length: the only kind of service a browser is sent to."""
    # No spaces or control characters (an escape sequence would reach the logs that quote a
    # refused address), nothing Werkzeug cannot put in the Location header: see web_url_parts.
    if not url or len(url) > MAX_SERVICE_LENGTH:
        return False
    parts = web_url_parts(url)
    return (
        parts is not None
        and parts.scheme in ("http", "https")
        and bool(parts.netloc)
        # No user name: a pattern written loosely (``https://app\.example\.edu.*``) matches
        # ``https://app.example.edu@evil.example/`` too, whose host is evil.example. Nor a
        # backslash: Werkzeug percent-encodes it in the Location header, and the browser then
        # reads everything before the ``@`` that follows as a user name.
        and "@" not in parts.netloc
        and "\\" not in parts.netloc
    )


def is_service_identifier(identifier: str | None) -> bool:
    """A back-end service as ``/proxy`` may name it: a web URL (:func:`is_web_url`), or, since
    not every back-end service is on the web (CAS 3.0 §2.7.1), another identifier such as
    ``imaps://mail.example.edu``, of sane length and without spaces or control characters."""
    if not identifier or len(identifier) > MAX_SERVICE_LENGTH:
        return False
    if identifier.partition(":")[0].lower() in ("http", "https"):
        return is_web_url(identifier)
    return not has_blank_or_control(identifier)


def _key(ticket: str) -> str:
    return f"cas:ticket:{ticket}"


def _pgt_index(lineage: str) -> str:
    return f"cas:session-pgts:{lineage}"


def _lineage_of(record: dict[str, Any]) -> str:
    # Records written before sessions had lineages name the session, whose lineage is its id.
    return str(record.get("lineage") or record["session_id"])


def as_utc(moment: datetime) -> datetime:
    """An aware datetime: SQLite hands back naive ones for aware columns (stored as UTC)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _save_ticket(
    kind: str, url: str, service: CasService, sso: SsoSession, new_login: bool, proxies: list[str]
) -> str:
    ticket = new_ticket_id(kind)
    record = {
        "service": url,
        "service_id": service.id,
        "user_id": sso.user_id,
        "lineage": sso.lineage,
        "new_login": new_login,
        "auth_time": as_utc(sso.auth_time).isoformat(),
        "remember": bool(sso.remember),
        "proxies": proxies,
    }
    get_store().set(_key(ticket), json.dumps(record), current_app.config["CAS_TICKET_TTL"])
    return ticket


def issue_service_ticket(service: CasService, url: str, sso: SsoSession, new_login: bool) -> str:
    """An ST for ``url`` from session ``sso``; the service joins the session for single logout.

    The caller commits (the participant row is added to the ORM session).
    """
    ticket = _save_ticket("ST", url, service, sso, new_login, [])
    db.session.add(
        SessionParticipant(
            session_id=sso.id,
            protocol="cas",
            cas_service_id=service.id,
            service_url=url,
            session_index=ticket,
        )
    )
    return ticket


def _comparable(url: str) -> str:
    """A service URL as two clients of one service may write it differently: the fragment
    never reaches a server, and characters browsers leave bare (``|``, ``{``, ``^``) arrive
    percent-encoded after a redirect. Apereo CAS compares services the same way."""
    return unquote(url.partition("#")[0])


def same_service(issued_for: str, presented: str) -> bool:
    """Whether ``presented`` names the service a ticket was issued for (CAS 3.0 §2.5)."""
    return issued_for == presented or _comparable(issued_for) == _comparable(presented)


def redeem_ticket(ticket: str, service_url: str, *, allow_proxy: bool, renew: bool) -> Grant:
    """Burn ``ticket`` and return what it grants, or raise :class:`CasError`.

    The ticket is consumed before any check, so a failed attempt cannot be retried either.
    """
    prefixes = ("ST", "PT") if allow_proxy else ("ST",)
    if not looks_like(ticket, "ST", "PT"):
        raise CasError(INVALID_TICKET, f"Ticket '{ticket[:60]}' not recognized")
    raw = get_store().take(_key(ticket))
    if raw is None:
        raise CasError(INVALID_TICKET, f"Ticket '{ticket}' not recognized, expired or used")
    record: dict[str, Any] = json.loads(raw)
    if not ticket.startswith(prefixes):
        raise CasError(
            INVALID_TICKET_SPEC,
            "A proxy ticket was presented where only service tickets are accepted; "
            "use /proxyValidate",
        )
    if not same_service(record["service"], service_url):
        raise CasError(
            INVALID_SERVICE, f"Ticket '{ticket}' was not issued for this service; it is now void"
        )
    if renew and not record["new_login"]:
        raise CasError(
            INVALID_TICKET, "renew was requested but the ticket came from single sign-on"
        )
    registered = find_cas_service(service_url)
    if registered is None or registered.id != record["service_id"]:
        raise CasError(INVALID_SERVICE, "The service is no longer registered with this server")
    with_department = bool(registered.allowed_departments) or bool(
        DEPARTMENT_ATTRIBUTES.intersection(registered.attributes or ())
    )
    query = _SESSION_WITH_USER[with_department]
    sso = db.session.scalar(query, {"lineage": _lineage_of(record)})
    if sso is None or not session_is_live(sso):
        raise CasError(INVALID_TICKET, "The single sign-on session of this ticket has ended")
    # The service's access policy may have changed since the ticket was issued, as OIDC's
    # refresh grant checks it again too.
    if not policy_admits(registered, sso.user):
        raise CasError(INVALID_TICKET, "The user is no longer allowed to use this service")
    return Grant(
        kind=ticket.split("-", 1)[0],
        service=service_url,
        service_id=registered.id,
        user=sso.user,
        session=sso,
        new_login=bool(record["new_login"]),
        auth_time=datetime.fromisoformat(record["auth_time"]),
        remember=bool(record["remember"]),
        proxies=tuple(record.get("proxies") or ()),
        registered=registered,
    )


# One query: the lineage's session and its user, with the user's department only when the
# service is released department attributes (a join and an entity less on every other
# validation). Built once, with a bound parameter: building a statement costs more than running
# it. A lineage has one session at a time (start_session deletes the one it continues).
_SESSION_WITH_USER = {
    False: db.select(SsoSession)
    .where(SsoSession.lineage == bindparam("lineage"))
    .options(joinedload(SsoSession.user)),
    True: db.select(SsoSession)
    .where(SsoSession.lineage == bindparam("lineage"))
    .options(joinedload(SsoSession.user).joinedload(User.department)),
}


def check_proxy_callback(service: CasService, pgt_url: str) -> None:
    """Raise unless ``service`` may proxy and ``pgt_url`` is an acceptable callback for it.

    The callback must be https (unless CAS_PROXY_HTTPS_ONLY is off, for tests) and belong to
    the service itself: it must match the service's registered pattern.
    """
    if not service.proxy_allowed:
        raise CasError(UNAUTHORIZED_SERVICE_PROXY, "This service is not allowed to proxy")
    schemes = ("https",) if current_app.config["CAS_PROXY_HTTPS_ONLY"] else ("https", "http")
    if not is_web_url(pgt_url) or urlsplit(pgt_url).scheme not in schemes:
        raise CasError(INVALID_PROXY_CALLBACK, "The proxy callback must be an absolute https URL")
    if not pattern_matches(service.service_pattern, pgt_url):
        raise CasError(INVALID_PROXY_CALLBACK, "The proxy callback does not belong to the service")


def issue_proxy_granting_ticket(grant: Grant, pgt_url: str) -> str | None:
    """Hand a new PGT to ``pgt_url``; returns its PGTIOU, or None when the callback failed.

    The PGT is kept only when the callback answered 200, and lives as long as the session's
    lineage, at most until the end the session has now.
    """
    pgt, iou = new_ticket_id("PGT"), new_ticket_id("PGTIOU")
    try:
        answer = requests.get(
            pgt_url,
            params={"pgtId": pgt, "pgtIou": iou},
            timeout=PROXY_CALLBACK_TIMEOUT,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        current_app.logger.warning("CAS proxy callback %s failed: %s", pgt_url, type(exc).__name__)
        return None
    if answer.status_code != 200:
        current_app.logger.warning("CAS proxy callback %s answered %s", pgt_url, answer.status_code)
        return None
    remaining = (as_utc(grant.session.expires_at) - utcnow()).total_seconds()
    record = {
        "user_id": grant.user.id,
        "lineage": grant.session.lineage,
        "service_id": grant.service_id,
        "proxies": [pgt_url, *grant.proxies],
    }
    store = get_store()
    store.set(_key(pgt), json.dumps(record), max(remaining, 1))
    # Remember the lineage's PGTs so that ending its session can delete them.
    index = _pgt_index(grant.session.lineage)
    known = json.loads(store.get(index) or "[]")
    store.set(index, json.dumps([*known, pgt]), max(remaining, 1))
    return iou


def issue_proxy_ticket(pgt: str, target_url: str) -> tuple[str, User, CasService]:
    """A PT for ``target_url`` from a PGT; raises :class:`CasError` (``/proxy``'s codes)."""
    raw = get_store().get(_key(pgt)) if looks_like(pgt, "PGT") else None
    if raw is None:
        raise CasError(INVALID_TICKET, "Proxy-granting ticket not recognized or expired")
    record: dict[str, Any] = json.loads(raw)
    sso = db.session.scalar(_SESSION_WITH_USER[False], {"lineage": _lineage_of(record)})
    if sso is None or not session_is_live(sso):
        get_store().delete(_key(pgt))
        raise CasError(INVALID_TICKET, "The single sign-on session of this ticket has ended")
    owner = db.session.get(CasService, record["service_id"])
    if owner is None or not owner.enabled or not owner.proxy_allowed:
        raise CasError(UNAUTHORIZED_SERVICE, "The service holding this ticket may no longer proxy")
    target = find_cas_service(target_url) if is_service_identifier(target_url) else None
    if target is None:
        raise CasError(UNAUTHORIZED_SERVICE, "The target service is not registered")
    if not policy_admits(target, sso.user):
        raise CasError(UNAUTHORIZED_SERVICE, "The user may not use the target service")
    ticket = _save_ticket("PT", target_url, target, sso, False, list(record["proxies"]))
    return ticket, sso.user, target


def forget_session_tickets(lineages: list[str]) -> None:
    """Delete the PGTs of the lineages of sessions that are ending (STs and PTs simply expire)."""
    store = get_store()
    for lineage in lineages:
        raw = store.take(_pgt_index(lineage))
        for pgt in json.loads(raw) if raw else []:
            store.delete(_key(pgt))
