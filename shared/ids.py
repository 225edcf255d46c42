"""Row ids as browsers send them, in posted fields and URLs: one rule for both apps."""

from __future__ import annotations

import re

#: The largest id an ``INTEGER`` primary key holds (PostgreSQL): a larger one in a query is an
#: "integer out of range" error, so past it no row can be named.
MAX_ROW_ID = 2**31 - 1
#: ASCII digits, no leading zero (``"²".isdigit()`` is true; ``012`` is not how ids are written).
_ROW_ID = re.compile(r"[1-9][0-9]{0,9}")


def row_id(raw: object) -> int | None:
    """The row id in ``raw`` (text, surrounding spaces allowed); None for anything no row can
    have — never an error."""
    text = str(raw if raw is not None else "").strip()
    if not _ROW_ID.fullmatch(text):
        return None
    number = int(text)
    return number if number <= MAX_ROW_ID else None
