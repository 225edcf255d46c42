"""Attachment files: which types are allowed, what a file really is, and where it is kept.

A file's type is decided from its first bytes (and, for Office files, the ZIP entries that
make them Word or Excel), never from the name or the browser's Content-Type alone: a renamed
``.exe`` is refused. Files live under the storage folder, outside the web root, under random
names from :mod:`secrets`; only ``hall.forms.attachments`` hands them out, after checking who
asks.
"""

from __future__ import annotations

import io
import secrets
import zipfile
from pathlib import Path
from typing import IO

#: Extension → the content type files of that kind are served as.
CONTENT_TYPES = {
    "pdf": "application/pdf",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "doc": "application/msword",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xls": "application/vnd.ms-excel",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "zip": "application/zip",
}
DEFAULT_TYPES = ("pdf", "jpg", "jpeg", "png", "doc", "docx", "xls", "xlsx", "zip")
DEFAULT_MAX_BYTES = 10 * 1024 * 1024

_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # the compound-file header of .doc and .xls
_ZIP = (b"PK\x03\x04", b"PK\x05\x06")
#: How many bytes of a file are read to tell its kind.
_HEAD = 16


def parse_attachment_types(raw: str) -> tuple[str, ...]:
    """``pdf,jpg,png`` → the extensions, each one the hall can recognise by content."""
    types = tuple(dict.fromkeys(t.strip().lower().lstrip(".") for t in raw.split(",") if t.strip()))
    if not types:
        raise ValueError("name at least one file type")
    unknown = [t for t in types if t not in CONTENT_TYPES]
    if unknown:
        raise ValueError(f"unknown types {', '.join(unknown)}; known: {', '.join(CONTENT_TYPES)}")
    return types


def extension_of(filename: str) -> str:
    """The lower-case extension of a file name, without the dot ('' when it has none)."""
    name = filename.rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


def _office_kind(content: bytes) -> str | None:
    """``docx``, ``xlsx`` or ``zip`` for a ZIP archive, None when it is no readable ZIP."""
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, ValueError, OSError):
        return None
    if "[Content_Types].xml" in names:
        if "word/document.xml" in names:
            return "docx"
        if "xl/workbook.xml" in names:
            return "xlsx"
    return "zip"


def content_matches(extension: str, content: bytes) -> bool:
    """Whether the bytes are a file of the kind its extension claims."""
    head = content[:_HEAD]
    if extension == "pdf":
        return head.startswith(b"%PDF-")
    if extension in ("jpg", "jpeg"):
        return head.startswith(b"\xff\xd8\xff")
    if extension == "png":
        return head.startswith(b"\x89PNG\r\n\x1a\n")
    if extension in ("doc", "xls"):
        return head.startswith(_OLE2)
    if extension in ("docx", "xlsx", "zip"):
        if not head.startswith(_ZIP):
            return False
        kind = _office_kind(content)
        # A .zip may hold anything, Office files included; a .docx must really be Word.
        return kind is not None and (extension == "zip" or kind == extension)
    return False


def read_limited(stream: IO[bytes], limit: int) -> bytes | None:
    """The whole stream, or None as soon as it turns out longer than ``limit`` bytes."""
    content = stream.read(limit + 1)
    return None if len(content) > limit else content


def new_storage_name() -> str:
    """A random file name that says nothing about the file or its owner."""
    return secrets.token_hex(24)


def storage_path(root: str | Path, name: str) -> Path:
    """Where a stored file lives: two levels of folders keep directories small."""
    if len(name) != 48 or any(c not in "0123456789abcdef" for c in name):
        raise ValueError("not a storage name")  # never a path from outside
    return Path(root) / name[:2] / name[2:4] / name


def write_file(root: str | Path, name: str, content: bytes) -> None:
    """Store ``content`` under ``name`` (private to the hall's user)."""
    path = storage_path(root, name)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(path, "xb") as target:
        target.write(content)
    path.chmod(0o600)


def delete_file(root: str | Path, name: str) -> None:
    """Remove a stored file (already gone is fine)."""
    storage_path(root, name).unlink(missing_ok=True)
