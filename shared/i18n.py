"""Messages raised by code that runs both in requests and outside them (CLI, jobs, unit tests)."""

from __future__ import annotations

from typing import Any

from flask import has_request_context
from flask_babel import gettext


def translate(message: str, **variables: Any) -> str:
    """``message`` in the request's language; outside a request the Chinese msgid, formatted.

    Import it as ``_`` so that ``make messages`` extracts the calls. Flask-Babel's own gettext
    needs a request here (the locale comes from it), and the CLI speaks Chinese anyway.
    """
    if has_request_context():
        return str(gettext(message, **variables))
    return message % variables if variables else message
