"""Server-side state for multi-step pages (activation, completion, recovery, pending sign-in).

The browser's session holds only a random flow id; the state lives in the store with a TTL.
Finishing a flow *takes* it, so a second tab or a replayed form cannot finish it again.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from flask import session

from shared.factory import get_store

TTL = 900


def _session_key(kind: str) -> str:
    return f"flow_{kind}"


def start_flow(kind: str, data: dict[str, Any], ttl: int = TTL) -> None:
    """Begin a flow of ``kind`` for this browser, replacing any unfinished one."""
    discard_flow(kind)
    flow_id = secrets.token_hex(16)
    session[_session_key(kind)] = flow_id
    get_store().set(f"flow:{kind}:{flow_id}", json.dumps(data), ttl)


def load_flow(kind: str) -> dict[str, Any] | None:
    """The flow's state, or None when there is none or it expired."""
    flow_id = session.get(_session_key(kind))
    if not flow_id:
        return None
    raw = get_store().get(f"flow:{kind}:{flow_id}")
    return json.loads(raw) if raw else None


def save_flow(kind: str, data: dict[str, Any], ttl: int = TTL) -> None:
    """Replace the flow's state (the flow must exist)."""
    flow_id = session.get(_session_key(kind))
    if flow_id:
        get_store().set(f"flow:{kind}:{flow_id}", json.dumps(data), ttl)


def finish_flow(kind: str) -> dict[str, Any] | None:
    """Take the flow's state (single use); None if another tab already finished it."""
    flow_id = session.pop(_session_key(kind), None)
    if not flow_id:
        return None
    raw = get_store().take(f"flow:{kind}:{flow_id}")
    return json.loads(raw) if raw else None


def discard_flow(kind: str) -> None:
    """Forget the flow, e.g. when the user starts over."""
    flow_id = session.pop(_session_key(kind), None)
    if flow_id:
        get_store().delete(f"flow:{kind}:{flow_id}")
