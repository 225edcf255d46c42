"""Recording audit events. Callers commit together with the change the event describes."""

from __future__ import annotations

import json
from typing import Any

from flask import g, has_request_context, request

from idp.audit.models import AuditEvent
from idp.directory.models import User
from idp.extensions import db

SUCCESS = "success"
FAILURE = "failure"
DENIED = "denied"


def client_ip() -> str | None:
    """The client's address (ProxyFix has already applied trusted X-Forwarded-For)."""
    return request.remote_addr if has_request_context() else None


def record(
    action: str,
    outcome: str = SUCCESS,
    *,
    actor: User | None = None,
    target: User | None = None,
    subject: str | None = None,
    method: str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add one audit event to the session; never pass secrets, codes or tokens in ``detail``."""
    event = AuditEvent(
        action=action,
        outcome=outcome,
        actor_id=actor.id if actor else None,
        target_id=target.id if target else (actor.id if actor else None),
        subject=subject,
        method=method,
        detail=json.dumps(detail, ensure_ascii=False) if detail else None,
    )
    if has_request_context():
        event.ip = client_ip()
        event.user_agent = (request.user_agent.string or "")[:512] or None
        event.request_id = g.get("request_id")
    db.session.add(event)
    return event


def recent_sign_ins(user: User, limit: int = 20) -> list[AuditEvent]:
    """The user's latest sign-in attempts, newest first (登录记录)."""
    return list(
        db.session.scalars(
            db.select(AuditEvent)
            .where(AuditEvent.target_id == user.id, AuditEvent.action == "login")
            .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
            .limit(limit)
        )
    )
