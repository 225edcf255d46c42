"""Single-use form tokens for console forms that must not act twice: the help desk's
confirmation pages and the registry's 登记 / 重置密钥.

A page that registers a client or resets its secret shows the result (the secret, once) in the
answer to its POST. Reloading that answer posts again, and so does a double click: without a
token that would register a second client, or reset the secret again and void the one just
shown. Each rendered form carries a fresh token bound to its actor and purpose; its first POST
acts, and any later POST of the same token is told what the first one did instead
(:class:`FormUse`).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass

from idp.directory.models import User
from shared.factory import get_store

#: How long a rendered form's token stays good, and how long its use is remembered.
FORM_TOKEN_TTL = 3600
_ISSUED = "console-form:"
_USED = "console-form-used:"


@dataclass(frozen=True)
class FormUse:
    """A token's use: the first (act now), or a repeat, with what the first one recorded
    (``done``; empty while it is still at work or when it failed)."""

    first: bool
    done: str = ""


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_form_token(actor: User, purpose: str, ttl: int = FORM_TOKEN_TTL) -> str:
    """A token for one form this actor is about to see (``purpose``: what it does, and to what),
    good for ``ttl`` seconds."""
    token = secrets.token_urlsafe(24)
    payload = json.dumps({"actor": actor.id, "purpose": purpose})
    get_store().set(_ISSUED + _digest(token), payload, ttl)
    return token


def use_form_token(token: str | None, actor: User, purpose: str) -> FormUse | None:
    """Count a POST of the form; None when the token is unknown, expired or another form's."""
    if not token or len(token) > 128:
        return None
    store = get_store()
    digest = _digest(token)
    raw = store.get(_ISSUED + digest)
    if raw is None:
        return None
    issued = json.loads(raw)
    if issued.get("actor") != actor.id or issued.get("purpose") != purpose:
        return None
    # Atomic: of two POSTs racing with one token, exactly one is first.
    if store.add(_USED + digest, "", FORM_TOKEN_TTL):
        return FormUse(True)
    return FormUse(False, store.get(_USED + digest) or "")


def finish_form_token(token: str, done: str) -> None:
    """Record what the first POST did, for the repeats to be told."""
    get_store().set(_USED + _digest(token), done, FORM_TOKEN_TTL)


def release_form_token(token: str) -> None:
    """The first POST was refused (its input was wrong): the same form may be posted again."""
    get_store().delete(_USED + _digest(token))
