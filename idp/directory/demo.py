"""Idempotent demo data for ``flask --app idp demo``: departments and one account per journey."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from flask import current_app

from idp.directory.identifiers import data_key, encrypt_identifier, hash_identifier
from idp.directory.models import User, UserKind, UserStatus, utcnow
from idp.directory.operations import (
    create_user,
    ensure_department,
    find_department,
    find_user_by_account,
)
from idp.directory.positions import PositionKind, appoint
from idp.directory.roles import Role, grant_role
from idp.extensions import db

DEPARTMENTS = (
    ("LUT", "红柳大学", None),
    ("NIC", "网络与信息中心", "LUT"),
    ("CS", "计算机与通信学院", "LUT"),
    ("HR", "人事处", "LUT"),
    ("SA", "学生工作处", "LUT"),
    ("CS-2024-1", "计算机2024级1班", "CS"),
)

#: Demo posts (account, department, kind, title): the directory API serves them as groups.
DEMO_POSITIONS = (
    ("T2001", "HR", PositionKind.HEAD, "人事处 处长"),
    ("T2001", "CS-2024-1", PositionKind.COUNSELLOR, "计算机2024级1班 辅导员"),
)


@dataclass(frozen=True)
class DemoAccount:
    """One demo account and what it shows off."""

    account: str
    name: str
    kind: UserKind
    department: str
    password: str
    id_number: str
    phone: str | None
    phone_verified: bool
    pending: bool
    legacy: bool
    role: str
    #: A console role (``helpdesk`` / ``admin``) granted with the account; TOTP they enable
    #: themselves at their first visit to /admin.
    console_role: str | None = None


DEMO_ACCOUNTS = (
    DemoAccount(
        "2024000001",
        "张三",
        UserKind.STUDENT,
        "CS",
        "Hongliu2024demo",
        "620102200201011233",
        "13800000001",
        True,
        False,
        False,
        "学生，已激活 (student, active)",
    ),
    DemoAccount(
        "2024000002",
        "李四",
        UserKind.STUDENT,
        "CS",
        "",
        "620102200302021238",
        None,
        False,
        True,
        False,
        "学生，待激活：激活账号 (student, pending activation — ID 620102200302021238)",
    ),
    DemoAccount(
        "T2001",
        "王老师",
        UserKind.STAFF,
        "HR",
        "OldPass1234",
        "620102198005051238",
        "13800000003",
        False,
        False,
        True,
        "教职工，旧版密码，需信息完善 (staff, legacy password, completes information)",
    ),
    DemoAccount(
        "N0001",
        "赵服务台",
        UserKind.STAFF,
        "NIC",
        "Hongliu2024desk",
        "620102198506061231",
        "13800000004",
        True,
        False,
        False,
        "服务台 (help desk: /admin, enables TOTP at first visit)",
        "helpdesk",
    ),
    DemoAccount(
        "N0002",
        "钱管理员",
        UserKind.STAFF,
        "NIC",
        "Hongliu2024admin",
        "620102198707071233",
        "13800000005",
        True,
        False,
        False,
        "管理员 (admin: /admin, enables TOTP at first visit)",
        "admin",
    ),
)


def _ssha(password: str) -> str:
    salt = b"demo-salt"
    digest = hashlib.sha1(password.encode() + salt).digest()  # noqa: S324 - the legacy scheme
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def load_demo() -> list[DemoAccount]:
    """Create whatever demo data is missing; existing rows are left alone."""
    for code, name, parent in DEPARTMENTS:
        ensure_department(code, name, parent)
    for demo in DEMO_ACCOUNTS:
        if find_user_by_account(demo.account) is not None:
            continue
        if demo.legacy or demo.pending:
            user = User(
                account=demo.account,
                name=demo.name,
                kind=demo.kind,
                status=UserStatus.PENDING if demo.pending else UserStatus.ACTIVE,
                phone=demo.phone,
                password_hash=_ssha(demo.password) if demo.legacy else None,
            )
            user.department = find_department(demo.department)
            key = data_key(current_app.config)
            user.id_number_hash = hash_identifier(demo.id_number, key)
            user.id_number_encrypted = encrypt_identifier(demo.id_number, key)
            db.session.add(user)
        else:
            user = create_user(
                demo.account,
                demo.name,
                kind=demo.kind,
                password=demo.password,
                id_number=demo.id_number,
                department_code=demo.department,
            )
            if demo.phone and demo.phone_verified:
                user.phone, user.phone_verified_at = demo.phone, utcnow()
    db.session.flush()
    for demo in DEMO_ACCOUNTS:
        holder = find_user_by_account(demo.account)
        if demo.console_role and holder is not None:
            grant_role(holder, Role(demo.console_role))  # False (no-op) when already held
    for account, code, kind, title in DEMO_POSITIONS:
        holder, department = find_user_by_account(account), find_department(code)
        if holder is not None and department is not None:
            appoint(holder, department, kind, title)
    db.session.commit()
    return list(DEMO_ACCOUNTS)
