"""The development outbox: messages appended as JSON lines instead of being delivered.

``$IDP_OUTBOX_DIR/sms.jsonl`` and ``mail.jsonl`` hold one JSON object per message,
``{"to": …, "text": …, "code": …, "at": …}``, so a developer, a demo or an end-to-end test can
read the code a user would have received. Several worker processes may write at once: every
record is a single line written under an exclusive ``flock``, and :func:`read_records` reads
under a shared one, so it only ever sees whole lines.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SMS_FILE = "sms.jsonl"
MAIL_FILE = "mail.jsonl"


def utc_timestamp() -> str:
    """Now as ISO-8601 UTC with milliseconds, e.g. ``2024-05-01T08:30:00.123Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def append_record(
    outbox_dir: str | os.PathLike[str], filename: str, record: Mapping[str, Any]
) -> Path:
    """Append ``record`` as one JSON line to ``<outbox_dir>/<filename>``; return the file's path.

    The directory is created if needed. ``ensure_ascii=False`` keeps Chinese text readable when
    a developer looks at the file.
    """
    directory = Path(outbox_dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / filename
    # json.dumps never emits a raw newline (they are escaped inside strings), so the record
    # is exactly one line.
    line = json.dumps(dict(record), ensure_ascii=False) + "\n"
    # O_APPEND puts each write() at the end of the file. The lock covers what O_APPEND does
    # not promise: a long line that reaches the file in more than one write() (a short write,
    # or a file system without atomic appends such as NFS) must not interleave with another
    # process's line.
    with path.open("a", encoding="utf-8") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            handle.write(line)
            handle.flush()
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return path


def read_records(outbox_dir: str | os.PathLike[str], filename: str) -> list[dict[str, Any]]:
    """Every record in ``<outbox_dir>/<filename>``, oldest first; empty if the file is absent."""
    path = Path(outbox_dir) / filename
    try:
        handle = path.open(encoding="utf-8")
    except FileNotFoundError:
        return []
    with handle:
        # A shared lock waits out a writer in the middle of a line.
        fcntl.flock(handle.fileno(), fcntl.LOCK_SH)
        try:
            text = handle.read()
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return [json.loads(line) for line in text.splitlines() if line.strip()]
