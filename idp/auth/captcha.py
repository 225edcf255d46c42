"""Image CAPTCHAs (the ``captcha`` library) for sign-in after failures and for heavy code senders.

The answer lives in the store under an id kept in the Flask session; it is single use.
"""

from __future__ import annotations

import hmac
import secrets

from captcha.image import ImageCaptcha
from flask import g, session

from shared.factory import get_store

#: No 0/O, 1/I/L: people should not fail a CAPTCHA for reading it right.
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
LENGTH = 4
TTL = 300
_SESSION_KEY = "captcha_id"


def new_challenge() -> bytes:
    """A fresh PNG challenge for this browser; any previous one is replaced."""
    answer = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    challenge_id = secrets.token_hex(16)
    session[_SESSION_KEY] = challenge_id
    get_store().set(f"captcha:{challenge_id}", answer, TTL)
    return ImageCaptcha(width=160, height=60).generate(answer).getvalue()


def check_answer(answer: str | None) -> bool:
    """True when ``answer`` matches this browser's challenge, which is used up either way."""
    challenge_id = session.pop(_SESSION_KEY, None)
    if not challenge_id:
        return False
    expected = get_store().take(f"captcha:{challenge_id}")
    if expected is None or not answer:
        return False
    solved = hmac.compare_digest(answer.strip().upper().encode(), expected.encode())
    g.captcha_solved = g.get("captcha_solved", False) or solved
    return solved


def solved_in_this_request() -> bool:
    """Whether this request answered a CAPTCHA correctly (:func:`check_answer`)."""
    return bool(g.get("captcha_solved", False))
