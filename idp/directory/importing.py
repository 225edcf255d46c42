"""Importing people from the HR and student systems' CSV exports (``flask --app idp users import``).

:func:`import_users` commits per batch, so a 50,000-row file neither holds one huge transaction
nor loses the batches before a failure. Re-importing updates and never duplicates.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any, cast

from flask import current_app
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from idp.auth.passwords import is_argon2_hash, is_valid_argon2_hash, is_valid_legacy_hash
from idp.directory.identifiers import (
    data_key,
    encrypt_identifier,
    hash_identifier,
)
from idp.directory.models import Department, User, UserKind, UserStatus, utcnow
from idp.directory.operations import (
    IMPORT_COLUMNS,
    REQUIRED_COLUMNS,
    DirectoryError,
    _clean_account,
    _clean_department_name,
    _clean_email,
    _clean_id_number,
    _clean_kind,
    _clean_name,
    _clean_phone,
    ensure_department,
)
from idp.directory.positions import Holding, parse_holdings, set_holdings
from idp.extensions import db
from shared.i18n import translate as _
from shared.text import has_unseen_character


@dataclass(frozen=True)
class ImportFailure:
    """A row that was not imported: its line in the file (header = line 1) and why."""

    line: int
    reason: str


@dataclass
class ImportReport:
    """What an import did, row by row counted."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: list[ImportFailure] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The report as the ``--json`` output shows it."""
        return {
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "failed": [{"line": f.line, "reason": f.reason} for f in self.failed],
        }


@dataclass(slots=True)
class _ImportRow:
    line: int
    account: str
    name: str
    kind: UserKind | None
    department_code: str | None
    department_name: str | None
    id_number: str | None
    id_number_hash: str | None
    phone: str | None
    email: str | None
    legacy_hash: str | None
    #: None when the file has no ``positions`` column (posts are left as they are).
    positions: list[Holding] | None


ImportSource = str | os.PathLike[str] | bytes | IO[bytes] | Iterable[Mapping[str, Any]]


def read_import_file(
    source: str | os.PathLike[str] | bytes | IO[bytes],
) -> Iterator[tuple[int, dict[str, str]]]:
    """Decode an HR export and check its header; yields ``(line, row)`` for each data row.

    UTF-8 (with or without BOM), UTF-16 with BOM ("Unicode text" from Excel) and GBK/GB18030
    (what Excel saves as CSV on Chinese Windows) are accepted. A blank row is skipped but keeps
    its line number, so lines match what HR sees in Excel. No column holds a line break, so a
    quoted cell spanning lines (an unclosed quote, mostly) is a bad row on its first line, and
    the next line is read as the next row.
    """
    if isinstance(source, bytes):
        data = source
    elif isinstance(source, str | os.PathLike):
        try:
            with open(source, "rb") as handle:
                data = handle.read()
        except OSError as exc:
            raise DirectoryError(
                _(
                    "无法读取文件 %(path)s：%(error)s",
                    path=os.fspath(source),
                    error=exc.strerror,
                )
            ) from None
    else:
        data = source.read()
    text = _decode(data)
    # Each physical line is parsed on its own: no column can hold a line break, and a stray
    # quote must not swallow the lines after it nor shift their numbers.
    lines = io.StringIO(text, newline="")
    first_line = next(lines, "")
    delimiter = "\t" if "\t" in first_line and "," not in first_line else ","
    try:
        header = [cell.strip().lower() for cell in _split_line(first_line, delimiter)]
    except csv.Error:
        header = []
    missing = [column for column in REQUIRED_COLUMNS if column not in header]
    if missing:
        raise DirectoryError(
            _(
                "第一行须为表头，缺少列：%(missing)s（可用列：%(columns)s）",
                missing=", ".join(missing),
                columns=", ".join(IMPORT_COLUMNS),
            )
        )
    return _numbered_rows(lines, header, delimiter)


def _decode(data: bytes) -> str:
    # NUL characters are padding from broken exports, and PostgreSQL refuses them in text.
    return _decode_text(data).replace("\x00", "")


def _decode_text(data: bytes) -> str:
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:  # cut off mid-character, or a lone surrogate
            raise DirectoryError(_("文件编码无法识别：请另存为 UTF-8 或 GBK 编码的 CSV")) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError:
        raise DirectoryError(_("文件编码无法识别：请另存为 UTF-8 或 GBK 编码的 CSV")) from None


#: Key of a row the CSV reader could not parse (it cannot clash with a header cell).
_UNPARSABLE = "\x00unparsable"


def _split_line(line: str, delimiter: str) -> list[str]:
    """The cells of one physical line; an unclosed quote leaves the line break in the last."""
    if not line.endswith(("\n", "\r")):
        line += "\n"  # the file's last line: so that an unclosed quote shows there too
    # skipinitialspace: in ``a, "b,c"`` (a space after the comma) the quotes still enclose a cell.
    return next(csv.reader((line,), delimiter=delimiter, skipinitialspace=True), [])


def _numbered_rows(
    lines: Iterator[str], header: list[str], delimiter: str
) -> Iterator[tuple[int, dict[str, str]]]:
    for line, text in enumerate(lines, start=2):
        try:
            cells = _split_line(text, delimiter)
        except csv.Error as exc:
            # One malformed record (a runaway field) is a bad row, not a bad file.
            yield line, {_UNPARSABLE: _("该行无法解析：%(error)s", error=exc)}
            continue
        if cells and cells[-1].endswith(("\n", "\r")):
            reason = _("引号不成对：该行有未闭合的双引号（单元格内不能换行）")
            yield line, {_UNPARSABLE: reason}
            continue
        if any(cell.strip() for cell in cells):
            yield line, dict(zip(header, cells, strict=False))


def _clean_import_row(line: int, raw: Mapping[str, Any], key: bytes) -> _ImportRow:
    def cell(column: str) -> str:
        value = raw.get(column)
        return str(value).strip() if value is not None else ""

    if _UNPARSABLE in raw:
        raise DirectoryError(raw[_UNPARSABLE])
    account = _clean_account(cell("account"))
    name = _clean_name(cell("name"))
    kind = _clean_kind(cell("kind")) if cell("kind") else None
    department_code = cell("department") or None
    if department_code and len(department_code) > 64:
        raise DirectoryError(_("部门代码不能超过 %(max)d 个字符", max=64))
    if department_code and has_unseen_character(department_code):
        raise DirectoryError(_("部门代码含有不可见的控制字符"))
    # Checked here, not when the department is created, so that the row fails on its own.
    department_name = cell("department_name") or None
    if department_code and department_name:
        department_name = _clean_department_name(department_name)
    id_number = _clean_id_number(cell("id_number")) if cell("id_number") else None
    legacy_hash = cell("legacy_hash") or None
    positions = None
    if "positions" in raw:
        # The column, when present, is the whole truth about the person's posts.
        try:
            positions = parse_holdings(cell("positions"))
        except ValueError as exc:
            raise DirectoryError(str(exc)) from None
    # argon2id strings are accepted too: the hasher verifies them natively. Either must parse
    # completely, or the account would be active with a password nobody can ever type.
    if legacy_hash and not (
        is_valid_legacy_hash(legacy_hash)
        or (legacy_hash.startswith("$argon2id$") and is_valid_argon2_hash(legacy_hash))
    ):
        raise DirectoryError(_("无法识别的旧密码哈希格式"))
    return _ImportRow(
        line=line,
        account=account,
        name=name,
        kind=kind,
        department_code=department_code,
        department_name=department_name,
        id_number=id_number,
        id_number_hash=hash_identifier(id_number, key) if id_number else None,
        phone=_clean_phone(cell("phone")) if cell("phone") else None,
        email=_clean_email(cell("email")) if cell("email") else None,
        legacy_hash=legacy_hash,
        positions=positions,
    )


def import_users(source: ImportSource, *, batch_size: int = 1000) -> ImportReport:
    """Create or update accounts from an HR export (a CSV file, its bytes, or row mappings).

    Re-importing updates and never duplicates. HR data never overwrites what the owner made
    their own: a verified security phone or email, or a password they set. A row with a legacy
    password hash makes the account active (staff sign in with the old unified-auth password);
    other new accounts wait for activation. A bad row is reported with its line and the rest
    still lands. Raises :class:`DirectoryError` only when the file itself cannot be read.
    """
    numbered: Iterable[tuple[int, Mapping[str, Any]]]
    if isinstance(source, str | bytes | os.PathLike) or hasattr(source, "read"):
        numbered = read_import_file(cast("str | os.PathLike[str] | bytes | IO[bytes]", source))
    else:
        numbered = enumerate(source, start=2)
    report = ImportReport()
    importer = _Importer(report, data_key(current_app))
    first_line: dict[str, int] = {}
    batch: list[_ImportRow] = []
    for line, raw in numbered:
        try:
            row = _clean_import_row(line, raw, importer.key)
            if row.account in first_line:
                raise DirectoryError(
                    _(
                        "账号 %(account)s 与第 %(line)d 行重复",
                        account=row.account,
                        line=first_line[row.account],
                    )
                )
            # Checked now, so that a copy refused for its department does not make the
            # corrected copy below it a duplicate.
            importer.check_departments(row)
        except DirectoryError as exc:
            report.failed.append(ImportFailure(line, str(exc)))
            continue
        first_line[row.account] = line
        batch.append(row)
        if len(batch) >= batch_size:
            importer.apply(batch)
            batch = []
    if batch:
        importer.apply(batch)
    report.failed.sort(key=lambda failure: failure.line)
    current_app.logger.info(
        "directory import: %d created, %d updated, %d unchanged, %d failed",
        report.created,
        report.updated,
        report.unchanged,
        len(report.failed),
    )
    return report


#: What an import compares against, loaded as plain rows (no ORM objects) for speed.
_EXISTING_COLUMNS = (
    User.id,
    User.account,
    User.name,
    User.kind,
    User.department_id,
    User.id_number_hash,
    User.phone,
    User.phone_verified_at,
    User.email,
    User.email_verified_at,
    User.status,
    User.password_hash,
    User.password_changed_at,
)


class _Importer:
    """Writes batches of clean rows: one SELECT, one bulk INSERT, one bulk UPDATE, one commit."""

    def __init__(self, report: ImportReport, key: bytes) -> None:
        self.report = report
        self.key = key
        self.departments = self._load_departments()
        #: Codes that rows read so far create (with ``department_name``) when written.
        self.named: set[str] = set()

    @staticmethod
    def _load_departments() -> dict[str, int]:
        return {
            code: id_ for code, id_ in db.session.execute(select(Department.code, Department.id))
        }

    def _department_names(self, ids: set[int]) -> dict[int, str]:
        query = select(Department.id, Department.name).where(Department.id.in_(ids))
        return {department_id: name for department_id, name in db.session.execute(query)}

    def apply(self, rows: list[_ImportRow]) -> None:
        """Write ``rows`` and commit; on a conflict (someone else wrote meanwhile), row by row."""
        try:
            created, updated, unchanged, failed = self._write(rows)
            db.session.commit()
        except IntegrityError:
            db.session.rollback()
            self.departments = self._load_departments()
            if len(rows) == 1:
                reason = _("保存失败：数据与他人同时写入的记录冲突，请重新导入")
                self.report.failed.append(ImportFailure(rows[0].line, reason))
                return
            for row in rows:
                self.apply([row])
            return
        self.report.created += created
        self.report.updated += updated
        self.report.unchanged += unchanged
        self.report.failed.extend(failed)

    def _write(self, rows: list[_ImportRow]) -> tuple[int, int, int, list[ImportFailure]]:
        failed: list[ImportFailure] = []
        placed: list[tuple[_ImportRow, int | None]] = []
        for row in rows:
            try:
                placed.append((row, self.place(row)))
            except DirectoryError as exc:
                # A rule refusing one row (a new department's name, say) fails that row only.
                failed.append(ImportFailure(row.line, str(exc)))
        accounts = [row.account for row, _ in placed]
        existing = {
            found.account: found
            for found in db.session.execute(
                select(*_EXISTING_COLUMNS).where(User.account.in_(accounts))
            )
        }
        now = utcnow()
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        unchanged = 0
        for row, department_id in placed:
            current = existing.get(row.account)
            if current is None:
                inserts.append(self._new_user(row, department_id, now))
                continue
            changes = self._changes(row, department_id, current)
            if changes:
                updates.append({"id": current.id, "updated_at": now, **changes})
            else:
                unchanged += 1
        if inserts:
            db.session.execute(insert(User), inserts)
        if updates:
            db.session.execute(update(User), updates)
        moved = self._apply_positions([row for row, _ in placed], existing, updates)
        return len(inserts), len(updates) + moved, unchanged - moved, failed

    def check_departments(self, row: _ImportRow) -> None:
        """Refuse, while the file is read, a row whose department or posts nobody creates.

        Nothing is written yet: a code named with ``department_name`` here or on an earlier
        row counts as known, since :meth:`place` creates it when the batch is written.
        """
        own = row.department_code if row.department_name else None
        self._check_codes(
            row, lambda code: code == own or code in self.departments or code in self.named
        )
        if own:
            self.named.add(own)

    def place(self, row: _ImportRow) -> int | None:
        """The row's department id, creating a department the file names; checks its posts."""
        code = row.department_code
        if code and row.department_name and code not in self.departments:
            department = ensure_department(code, row.department_name)
            self.departments[department.code] = department.id
        self._check_codes(row, self.departments.__contains__)
        return self.departments[code] if code else None

    @staticmethod
    def _check_codes(row: _ImportRow, known: Callable[[str], bool]) -> None:
        if row.department_code and not known(row.department_code):
            raise DirectoryError(_("未知部门代码 %(code)s", code=row.department_code))
        unknown = [code for code, _, _ in row.positions or [] if not known(code)]
        if unknown:
            raise DirectoryError(_("职务中的未知部门代码 %(code)s", code=unknown[0]))

    def _apply_positions(
        self, rows: list[_ImportRow], existing: dict[str, Any], updates: list[dict[str, Any]]
    ) -> int:
        """Set the posts of rows that name them; returns how many otherwise unchanged people
        changed posts (they count as updated)."""
        named = [row for row in rows if row.positions is not None]
        if not named:
            return 0
        accounts = [row.account for row in named]
        ids = {
            account: user_id
            for account, user_id in db.session.execute(
                select(User.account, User.id).where(User.account.in_(accounts))
            )
        }
        wanted = {
            ids[row.account]: [
                (self.departments[code], kind, title) for code, kind, title in row.positions or []
            ]
            for row in named
        }
        departments = {dept for items in wanted.values() for dept, _, _ in items}
        changed = set_holdings(wanted, self._department_names(departments))
        counted = {update["id"] for update in updates}
        return sum(
            1
            for row in named
            if row.account in existing
            and ids[row.account] in changed
            and ids[row.account] not in counted
        )

    def _new_user(
        self, row: _ImportRow, department_id: int | None, now: datetime
    ) -> dict[str, Any]:
        return {
            "account": row.account,
            "name": row.name,
            "kind": row.kind or UserKind.STUDENT,
            "department_id": department_id,
            "id_number_hash": row.id_number_hash,
            "id_number_encrypted": (
                encrypt_identifier(row.id_number, self.key) if row.id_number else None
            ),
            "phone": row.phone,
            "email": row.email,
            "status": UserStatus.ACTIVE if row.legacy_hash else UserStatus.PENDING,
            "password_hash": row.legacy_hash,
            "must_change_password": False,
            "created_at": now,
            "updated_at": now,
        }

    def _changes(self, row: _ImportRow, department_id: int | None, current: Any) -> dict[str, Any]:
        """The columns this row changes; an empty cell never clears what is recorded."""
        changes: dict[str, Any] = {}
        if row.name != current.name:
            changes["name"] = row.name
        if row.kind and row.kind != current.kind:
            changes["kind"] = row.kind
        if department_id is not None and department_id != current.department_id:
            changes["department_id"] = department_id
        if row.id_number and row.id_number_hash != current.id_number_hash:
            changes["id_number_hash"] = row.id_number_hash
            changes["id_number_encrypted"] = encrypt_identifier(row.id_number, self.key)
        # A verified phone or email is the owner's security binding, no longer HR's to change.
        if row.phone and current.phone_verified_at is None and row.phone != current.phone:
            changes["phone"] = row.phone
        if row.email and current.email_verified_at is None and row.email != current.email:
            changes["email"] = row.email
        if row.legacy_hash and current.password_changed_at is None:
            # An argon2 hash is the upgrade of the legacy one at the owner's first sign-in (which
            # leaves password_changed_at unset): putting the old hash back would undo it.
            stored = current.password_hash
            if row.legacy_hash != stored and not (stored and is_argon2_hash(stored)):
                changes["password_hash"] = row.legacy_hash
            if current.status == UserStatus.PENDING:
                changes["status"] = UserStatus.ACTIVE
        return changes
