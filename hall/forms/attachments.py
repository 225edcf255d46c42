"""Attachments (附件): storing an upload, who owns it, who may read it, linking it at submission.

Before submission a file belongs to its uploader alone. Submitting links it to the
application; from then on the applicant, everyone with a task or a carbon copy on the
application and hall administrators may download it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from flask import current_app, url_for
from flask_babel import gettext as _
from sqlalchemy import ColumnElement, delete, or_, select

from hall.audit.operations import record
from hall.auth.models import HallUser
from hall.catalog.roles import is_hall_admin
from hall.extensions import db
from hall.forms import files
from hall.forms.models import Attachment, Draft
from hall.forms.rendering import FieldView
from hall.forms.schema import field_names, widget_of
from hall.inbox.queries import may_see, reader_view
from hall.workflow.models import Application
from shared.factory import get_store
from shared.ids import row_id

#: Files one request may carry; the request size limit (MAX_CONTENT_LENGTH) follows from it.
UPLOADS_PER_REQUEST = 5
#: Files one attachment field may hold.
MAX_PER_FIELD = 20
MAX_NAME_LENGTH = 255
#: Uploads one person may make in an hour (disk space is shared by everyone).
UPLOADS_PER_HOUR = 100


class UploadRefused(ValueError):
    """A file the hall will not keep; the message says why, in the user's language."""


def storage_root() -> Path:
    """The folder attachments live in (HALL_STORAGE_DIR)."""
    return Path(current_app.config["STORAGE_DIR"])


def human_size(size: int) -> str:
    """``10 MB``, ``512 KB`` or ``300 B``."""
    if size >= 1024 * 1024:
        value = size / (1024 * 1024)
        return f"{value:.0f} MB" if value == int(value) else f"{value:.1f} MB"
    if size >= 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size} B"


def allowed_types() -> tuple[str, ...]:
    """The extensions uploads may have (HALL_ATTACHMENT_TYPES)."""
    return tuple(current_app.config["ATTACHMENT_TYPES"])


def max_bytes() -> int:
    """The largest upload (HALL_ATTACHMENT_MAX_BYTES)."""
    return int(current_app.config["ATTACHMENT_MAX_BYTES"])


def _clean_name(filename: str) -> str:
    """The last part of a browser-supplied name, without control characters, at most 255."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if c.isprintable()).strip()
    if len(name) > MAX_NAME_LENGTH:
        extension = files.extension_of(name)
        keep = MAX_NAME_LENGTH - len(extension) - 1
        name = f"{name[:keep]}.{extension}" if extension and keep > 0 else name[:MAX_NAME_LENGTH]
    return name or "attachment"


def store_upload(owner: str, filename: str, stream: IO[bytes]) -> Attachment:
    """Keep one uploaded file of ``owner``; raises ``UploadRefused`` with a message."""
    name = _clean_name(filename)
    if get_store().hit(f"attachment-uploads:{owner}", 3600) > UPLOADS_PER_HOUR:
        raise UploadRefused(_("“%(name)s”未上传：一小时内上传的文件过多，请稍后再试。", name=name))
    types = allowed_types()
    extension = files.extension_of(name)
    if extension not in types:
        raise UploadRefused(
            _(
                "“%(name)s”的文件类型不允许上传，只能上传 %(types)s 文件。",
                name=name,
                types=_("、").join(types),
            )
        )
    limit = max_bytes()
    content = files.read_limited(stream, limit)
    if content is None:
        raise UploadRefused(
            _(
                "“%(name)s”超过了 %(size)s 的大小上限，请压缩或拆分后再上传。",
                name=name,
                size=human_size(limit),
            )
        )
    if not content:
        raise UploadRefused(_("“%(name)s”是空文件，请重新选择。", name=name))
    if not files.content_matches(extension, content):
        raise UploadRefused(
            _(
                "“%(name)s”的内容不是 %(type)s 文件（可能改过扩展名），请上传原始文件。",
                name=name,
                type=extension.upper(),
            )
        )
    storage_name = files.new_storage_name()
    files.write_file(storage_root(), storage_name, content)
    attachment = Attachment(
        owner=owner,
        storage_name=storage_name,
        original_name=name,
        size=len(content),
        content_type=files.CONTENT_TYPES[extension],
        sha256=hashlib.sha256(content).hexdigest(),
    )
    db.session.add(attachment)
    db.session.flush()
    record(
        "attachment.upload",
        owner,
        f"attachment:{attachment.id}",
        {"size": attachment.size, "type": extension},
    )
    return attachment


def usable_attachments(
    owner: str, raw_ids: Iterable[str], application_id: int | None = None
) -> tuple[list[int], bool]:
    """Posted attachment ids ``owner`` may put in a form, and whether any was refused.

    Usable: uploaded by ``owner`` and not yet part of an application (or of
    ``application_id`` itself, for a resubmission).
    """
    wanted: list[int] = []
    refused = False
    for raw in raw_ids:
        found = row_id(raw)
        if found is not None:
            wanted.append(found)
        elif str(raw).strip():
            refused = True
    wanted = list(dict.fromkeys(wanted))
    if not wanted:
        return [], refused
    linked: list[ColumnElement[bool]] = [Attachment.application_id.is_(None)]
    if application_id is not None:
        linked.append(Attachment.application_id == application_id)
    usable_ids = set(
        db.session.scalars(
            select(Attachment.id).where(
                Attachment.id.in_(wanted), Attachment.owner == owner, or_(*linked)
            )
        )
    )
    usable = [i for i in wanted if i in usable_ids]
    return usable, refused or len(usable) < len(wanted)


def attachment_ids(ui: Mapping[str, Any], data: Mapping[str, Any]) -> list[int]:
    """Every attachment id in a form's data."""
    return [found for name in _attachment_fields(ui) for found in _ids_in(data, name)]


def _attachment_fields(ui: Mapping[str, Any]) -> list[str]:
    return [name for name in field_names(ui) if widget_of(ui, name) == "attachment"]


def _ids_in(data: Mapping[str, Any], name: str) -> list[int]:
    values = data.get(name)
    return [n for v in (values if isinstance(values, list) else []) if (n := row_id(v)) is not None]


def by_id(ids: Iterable[int]) -> dict[int, Attachment]:
    """Attachment rows by id (missing ids left out)."""
    wanted = list(ids)
    if not wanted:
        return {}
    return {
        a.id: a for a in db.session.scalars(select(Attachment).where(Attachment.id.in_(wanted)))
    }


def link_to_application(ids: Iterable[int], owner: str, application_id: int) -> None:
    """Make the owner's attachments part of an application (in the caller's transaction)."""
    wanted = list(ids)
    if not wanted:
        return
    db.session.execute(
        Attachment.__table__.update()
        .where(
            Attachment.id.in_(wanted),
            Attachment.owner == owner,
            or_(Attachment.application_id.is_(None), Attachment.application_id == application_id),
        )
        .values(application_id=application_id)
    )


def delete_unsubmitted(ids: Iterable[int], owner: str) -> int:
    """Remove the owner's files that never became part of an application; returns how many."""
    wanted = list(ids)
    if not wanted:
        return 0
    rows = list(
        db.session.scalars(
            select(Attachment).where(
                Attachment.id.in_(wanted),
                Attachment.owner == owner,
                Attachment.application_id.is_(None),
            )
        )
    )
    if rows:
        db.session.execute(delete(Attachment).where(Attachment.id.in_([r.id for r in rows])))
    # Files go once the rows are gone; a crash in between leaves a file no row names (harmless).
    root = storage_root()
    for row in rows:
        files.delete_file(root, row.storage_name)
    return len(rows)


def purge_unsubmitted(before: datetime) -> int:
    """Delete files uploaded before ``before`` that no application and no draft holds."""
    candidates = list(
        db.session.scalars(
            select(Attachment).where(
                Attachment.application_id.is_(None), Attachment.created_at < before
            )
        )
    )
    owners = {a.owner for a in candidates}
    kept: set[int] = set()
    for draft in db.session.scalars(select(Draft).where(Draft.owner.in_(owners))):
        kept.update(attachment_ids(draft.form_definition.ui, draft.data))
    removed = 0
    for owner in owners:
        ids = [a.id for a in candidates if a.owner == owner and a.id not in kept]
        removed += delete_unsubmitted(ids, owner)
    record("attachment.purge", "cli", "attachments", {"removed": removed, "before": before})
    db.session.commit()
    return removed


def may_read(attachment: Attachment, user: HallUser) -> bool:
    """Whether ``user`` may download the file (see the module's docstring)."""
    account = user.account
    if attachment.application_id is None:
        return attachment.owner == account
    if attachment.owner == account:
        return True
    application = db.session.get(Application, attachment.application_id)
    admin = is_hall_admin(user)
    if application is None or not may_see(application, account, admin=admin):
        return False
    if admin:
        return True
    # Not through a field the reader's node hides (the page shows no link; ids are guessable).
    _, permissions = reader_view(application, account)
    holding = [
        name
        for name in _attachment_fields(application.form_definition.ui)
        if attachment.id in _ids_in(application.data, name)
    ]
    return not holding or any(permissions.get(name) != "hidden" for name in holding)


def open_for(attachment_id: int, user: HallUser) -> tuple[Attachment, Path] | None:
    """The attachment and its file for a reader allowed to see it, else None."""
    attachment = db.session.get(Attachment, attachment_id)
    if attachment is None or not may_read(attachment, user):
        return None
    path = files.storage_path(storage_root(), attachment.storage_name)
    if not path.is_file():
        current_app.logger.error("attachment %s has no file in storage", attachment.id)
        return None
    if attachment.owner != user.account:
        # Someone else's file (an approver's or an administrator's read) leaves a trace.
        record(
            "attachment.download",
            user.account,
            f"attachment:{attachment.id}",
            {"application": attachment.application_id},
        )
        db.session.commit()
    return attachment, path


def with_links(views: list[FieldView], *, uploads: bool = True) -> list[FieldView]:
    """Attachment fields with each file's name, size and download link (for ``_fields.html``).

    Pages showing a form (the applicant's and the approvers') pass their field views through
    this; read-only attachment fields then list the files as download links. ``uploads`` False
    (the approval form, which takes no files) offers an editable field's files to keep or drop
    but no file input.
    """
    ids = [
        found
        for v in views
        if v.widget == "attachment" and isinstance(v.value, list)
        for found in (row_id(x) for x in v.value)
        if found is not None
    ]
    rows = by_id(ids)
    accept = ",".join("." + t for t in allowed_types())
    limits = _(
        "每个文件不超过 %(size)s，可上传 %(types)s。",
        size=human_size(max_bytes()),
        types=_("、").join(allowed_types()),
    )
    result: list[FieldView] = []
    for v in views:
        if v.widget != "attachment":
            result.append(v)
            continue
        own = [row_id(x) for x in v.value] if isinstance(v.value, list) else []
        details = {
            str(i): {
                "name": rows[i].original_name,
                "size": human_size(rows[i].size),
                "url": url_for("forms.download", attachment_id=i),
            }
            for i in own
            if i is not None and i in rows
        }
        display = "、".join(d["name"] for d in details.values()) or v.display
        offer_upload = v.editable and uploads
        help_text = _("；").join(t for t in (v.help, limits) if t) if offer_upload else v.help
        extra = {"attachments": details, "accept": accept, "uploads": uploads}
        result.append(replace(v, extra=extra, help=help_text, display=display))
    return result
