"""Recording hall audit events; callers commit together with the change they describe."""

from __future__ import annotations

import json
from typing import Any

from flask import g, has_request_context, request

from hall.audit.models import HallAuditEvent
from hall.extensions import db

#: The actor name of changes made from the command line.
CLI_ACTOR = "cli"


def record(action: str, actor: str, obj: str, detail: dict[str, Any] | None = None) -> None:
    """Add one audit event to the session (``obj`` is ``type:id``)."""
    event = HallAuditEvent(
        action=action,
        actor=actor[:64],
        object=obj[:128],
        detail=json.dumps(detail, ensure_ascii=False, default=str) if detail else None,
    )
    if has_request_context():
        event.ip = (request.remote_addr or "")[:64] or None
        event.request_id = g.get("request_id")
    db.session.add(event)


def recent_events(limit: int = 200) -> list[HallAuditEvent]:
    """The latest audit events, newest first."""
    return list(
        db.session.scalars(
            db.select(HallAuditEvent)
            .order_by(HallAuditEvent.at.desc(), HallAuditEvent.id.desc())
            .limit(limit)
        )
    )
