"""Forms posted after the hall session expired: kept across sign-in, given back once.

Someone who types a long form, leaves past the session's idle timeout and then presses 提交
must not lose what they typed. The posted text fields (never files, CSRF tokens or anything
password-like) wait in the shared store for 30 minutes under a random key; only that key rides
in the Flask session, which keeps it across sign-in. The page the form came from gives it back
once, to the same person only: whoever else signs in on a shared computer never sees it.
Nothing is submitted on the user's behalf.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import flash, request, session
from flask_babel import gettext as _
from werkzeug.datastructures import MultiDict

from hall.auth.models import HallUser
from shared.factory import get_store

log = logging.getLogger(__name__)

#: Key of the kept form's random store key in the Flask session (kept by ``start_session``).
KEPT_FORM_KEY = "kept_form"
#: How long a kept form waits for its owner to sign in again.
KEPT_FORM_TTL = 30 * 60
#: Larger posts are not kept (the store is for small values; drafts have the same limit).
MAX_KEPT_BYTES = 256 * 1024
#: Attribute of a view that opts in, holding how to find its form page (see ``keeps_form``).
KEEPS_FORM_ATTR = "_kept_form_page"
_STORE_PREFIX = "kept-form:"
# Never kept: the CSRF token (a new page carries a new one) and anything like a secret — as a
# word of the name, so that 秘书 (``secretary``) or 护照 (``passport``) fields are still kept.
_NOT_KEPT = re.compile(
    r"password|(?:^|[^a-z])(?:csrf|token|passwd|pwd|passphrase|secret)(?:$|[^a-z])",
    re.IGNORECASE,
)

F = TypeVar("F", bound=Callable[..., Any])
#: Where a form posted to a view is given back: the view's URL arguments → a path.
FormPage = Callable[..., str]


@dataclass(frozen=True)
class KeptForm:
    """The text fields of a post, and the view they were posted to."""

    fields: MultiDict[str, str]
    endpoint: str


def keeps_form(page: FormPage | None = None) -> Callable[[F], F]:
    """Mark a ``login_required`` view (put it below that decorator) whose posts are kept when
    the session has expired; ``page(**view_args)`` is the page that gives them back (default:
    the path posted to, for views that render their form on GET)."""

    def mark(view: F) -> F:
        setattr(view, KEEPS_FORM_ATTR, page or _posted_path)
        return view

    return mark


def _posted_path(**_view_args: object) -> str:
    return request.path


def keep_posted_form(owner_id: int, page: str) -> bool:
    """Keep this request's text fields for ``owner_id``, to be given back on ``page``.

    Returns False (nothing kept) for a post too large to keep.
    """
    pairs = [
        [name, value]
        for name, values in request.form.lists()
        if not _NOT_KEPT.search(name)
        for value in values
    ]
    text = json.dumps(
        {"owner": owner_id, "page": page, "endpoint": request.endpoint or "", "fields": pairs},
        ensure_ascii=False,
    )
    if len(text.encode()) > MAX_KEPT_BYTES:
        log.info("form posted after the session expired is too large to keep (user %s)", owner_id)
        return False
    key = secrets.token_urlsafe(24)
    get_store().set(_STORE_PREFIX + key, text, KEPT_FORM_TTL)
    session[KEPT_FORM_KEY] = key
    log.info(
        "kept a form posted after the session expired (user %s, %s fields, back on %s)",
        owner_id,
        len(pairs),
        page,
    )
    return True


def take_kept_form(user: HallUser) -> KeptForm | None:
    """The form kept for this page and this person, once; None otherwise.

    A form kept for someone else is dropped (another person signed in on the same browser);
    one kept for another page waits there until it expires.
    """
    key = session.get(KEPT_FORM_KEY)
    if not isinstance(key, str) or not key:
        return None
    store = get_store()
    raw = store.get(_STORE_PREFIX + key)
    kept: dict[str, Any] = {}
    try:
        kept = json.loads(raw) if raw else {}
    except ValueError:
        kept = {}
    if not isinstance(kept, dict) or kept.get("owner") != user.id:
        if kept:
            log.info("dropped a kept form: someone else signed in (user %s)", user.id)
        store.delete(_STORE_PREFIX + key)
        session.pop(KEPT_FORM_KEY, None)
        return None
    if kept.get("page") != request.path:
        return None
    session.pop(KEPT_FORM_KEY, None)
    if store.take(_STORE_PREFIX + key) is None:
        return None  # another tab took it first
    fields: MultiDict[str, str] = MultiDict(
        [(str(name), str(value)) for name, value in kept.get("fields", [])]
    )
    log.info("gave back a form kept after the session expired (user %s)", user.id)
    return KeptForm(fields, str(kept.get("endpoint", "")))


def announce_kept_form() -> None:
    """Tell the person their typed form came back and must be checked and sent again."""
    flash(
        _("登录已超时，已为您保留填写的内容，请检查后再提交（附件需要重新选择）。"),
        "notice",
    )


def given_back(user: HallUser) -> MultiDict[str, str] | None:
    """On a page's GET, the fields this person posted to it just before their session
    expired, once, with the notice; None otherwise (and on every POST)."""
    if request.method != "GET":
        return None
    kept = take_kept_form(user)
    if kept is None:
        return None
    announce_kept_form()
    return kept.fields
