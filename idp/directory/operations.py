"""Directory rules: creating accounts and departments, finding people.

Every function here flushes and leaves the commit to its caller (a command or a view). Bulk
imports from HR exports live in :mod:`idp.directory.importing`.
"""

from __future__ import annotations

import re

from flask import current_app
from sqlalchemy import select

from idp.auth.passwords import hasher_from_config
from idp.auth.policy import PasswordPolicy, PersonalInfo, check_password
from idp.directory.identifiers import (
    data_key,
    encrypt_identifier,
    hash_identifier,
    normalise_email,
    normalise_id_number,
    normalise_phone,
    validate_id_number,
)
from idp.directory.models import Department, User, UserKind, UserStatus, utcnow
from idp.extensions import db
from idp.policy_settings import effective_config
from shared.i18n import translate as _
from shared.text import has_unseen_character

_ACCOUNT = re.compile(r"[A-Za-z0-9_.-]{3,64}")

#: Spellings of a kind HR exports use besides our own values.
_KIND_ALIASES = {"学生": UserKind.STUDENT, "教职工": UserKind.STAFF, "教师": UserKind.STAFF}
_KIND_ALIASES.update({"访客": UserKind.VISITOR, "校外人员": UserKind.VISITOR})

#: Columns of the import file; only ``account`` and ``name`` must be present.
IMPORT_COLUMNS = (
    "account",
    "name",
    "kind",
    "department",
    "id_number",
    "phone",
    "email",
    "legacy_hash",
    "positions",
)
REQUIRED_COLUMNS = ("account", "name")


class DirectoryError(ValueError):
    """A directory rule refused the request; the message can be shown to whoever asked."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        #: Each problem on its own, e.g. every way a password falls short of the policy.
        self.problems = problems or [message]


def _clean_account(raw: str) -> str:
    account = raw.strip()
    if not _ACCOUNT.fullmatch(account):
        raise DirectoryError(
            _("账号 %(account)r 不合规：须为 3–64 位字母、数字或 _ . -", account=account)
        )
    return account


def _clean_name(raw: str) -> str:
    name = raw.strip()
    if not name:
        raise DirectoryError(_("姓名不能为空"))
    if len(name) > 100:
        raise DirectoryError(_("姓名不能超过 %(max)d 个字符", max=100))
    if has_unseen_character(name):
        raise DirectoryError(_("姓名含有不可见的控制字符"))
    return name


def _clean_kind(raw: UserKind | str) -> UserKind:
    value = raw.strip().lower() if isinstance(raw, str) else raw
    if value in _KIND_ALIASES:
        return _KIND_ALIASES[value]
    try:
        return UserKind(value)
    except ValueError:
        raise DirectoryError(
            _("未知人员类别 %(kind)r：应为 student、staff 或 visitor", kind=raw)
        ) from None


def _clean_phone(raw: str) -> str:
    phone = normalise_phone(raw)
    if phone is None:
        raise DirectoryError(_("手机号 %(phone)r 不是有效的大陆手机号", phone=raw.strip()))
    return phone


def _clean_email(raw: str) -> str:
    email = normalise_email(raw)
    if email is None:
        raise DirectoryError(_("邮箱 %(email)r 格式不正确", email=raw.strip()))
    return email


def _clean_id_number(raw: str) -> str:
    try:
        return validate_id_number(raw)
    except ValueError as exc:
        raise DirectoryError(str(exc)) from None


def _clean_department_name(raw: str) -> str:
    name = raw.strip()
    if not name or len(name) > 200:
        raise DirectoryError(_("部门名称须为 1–%(max)d 个字符", max=200))
    if has_unseen_character(name):
        raise DirectoryError(_("部门名称含有不可见的控制字符"))
    return name


def check_department_code(code: str) -> str:
    """A department code as given, trimmed: 1–64 characters, no control character."""
    code = code.strip()
    if not code or len(code) > 64:
        raise DirectoryError(_("部门代码须为 1–%(max)d 个字符", max=64))
    if has_unseen_character(code):
        raise DirectoryError(_("部门代码含有不可见的控制字符"))
    return code


def find_user_by_account(account: str) -> User | None:
    """The account with this student or staff number, if any."""
    return db.session.scalar(select(User).where(User.account == account.strip()))


def find_users_by_id_number(id_number: str) -> list[User]:
    """Accounts recorded with this ID number (one person may hold a student and a staff one)."""
    digest = hash_identifier(normalise_id_number(id_number), data_key(current_app))
    return list(
        db.session.scalars(select(User).where(User.id_number_hash == digest).order_by(User.account))
    )


def find_department(code: str) -> Department | None:
    """The department with this HR code, if any."""
    return db.session.scalar(select(Department).where(Department.code == code.strip()))


def ensure_department(code: str, name: str, parent_code: str | None = None) -> Department:
    """The department ``code``, created or brought up to date with ``name`` and parent."""
    code = check_department_code(code)
    name = _clean_department_name(name)
    parent = None
    if parent_code:
        parent = find_department(parent_code)
        if parent is None:
            raise DirectoryError(_("未知部门代码 %(code)s", code=parent_code.strip()))
        # Walk up from the new parent: reaching ``code`` would make the tree a loop.
        ancestor: Department | None = parent
        while ancestor is not None:
            if ancestor.code == code:
                raise DirectoryError(_("部门 %(code)s 不能成为自己的下级", code=code))
            ancestor = ancestor.parent
    department = find_department(code)
    if department is None:
        department = Department(code=code, name=name, parent=parent)
        db.session.add(department)
    else:
        department.name = name
        if parent_code is not None:
            department.parent = parent
    db.session.flush()
    return department


def create_user(
    account: str,
    name: str,
    kind: UserKind | str = UserKind.STUDENT,
    password: str | None = None,
    phone: str | None = None,
    email: str | None = None,
    id_number: str | None = None,
    department_code: str | None = None,
    pending: bool = False,
    must_change_password: bool = False,
) -> User:
    """Create one account; with a password (and not ``pending``) it is active at once.

    A phone or email given here is HR data, stored unverified: it becomes a security phone or
    email only when its owner proves it with a code.
    """
    account = _clean_account(account)
    name = _clean_name(name)
    user_kind = _clean_kind(kind)
    phone = _clean_phone(phone) if phone else None
    email = _clean_email(email) if email else None
    id_number = _clean_id_number(id_number) if id_number else None
    department = None
    if department_code:
        department = find_department(department_code)
        if department is None:
            raise DirectoryError(_("未知部门代码 %(code)s", code=department_code.strip()))
    if find_user_by_account(account) is not None:
        raise DirectoryError(_("账号 %(account)s 已存在", account=account))

    config = current_app.config
    user = User(
        account=account,
        name=name,
        kind=user_kind,
        department=department,
        phone=phone,
        email=email,
        status=UserStatus.ACTIVE if password is not None and not pending else UserStatus.PENDING,
        must_change_password=must_change_password,
    )
    if id_number:
        key = data_key(current_app)
        user.id_number_hash = hash_identifier(id_number, key)
        user.id_number_encrypted = encrypt_identifier(id_number, key)
    if password is not None:
        info = PersonalInfo(
            account=account, name=name, phone=phone, id_number=id_number, email=email
        )
        problems = check_password(password, PasswordPolicy.from_config(effective_config()), info)
        if problems:
            raise DirectoryError("；".join(problems), problems)
        user.password_hash = hasher_from_config(config).hash(password)
        # Set here so a later HR import never replaces this password with a legacy hash.
        user.password_changed_at = utcnow()
    db.session.add(user)
    db.session.flush()
    return user
