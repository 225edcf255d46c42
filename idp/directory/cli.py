"""``flask --app idp users add|import|show``: accounts from the command line.

Output never carries a password hash or a full ID number; phones, emails and ID numbers are
masked as the help desk sees them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NoReturn

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from idp.audit.operations import record
from idp.auth.passwords import is_legacy_hash
from idp.directory.identifiers import (
    data_key,
    decrypt_identifier,
    mask_email,
    mask_id_number,
    mask_phone,
)
from idp.directory.importing import import_users
from idp.directory.models import User, UserKind
from idp.directory.operations import (
    DirectoryError,
    create_user,
    find_user_by_account,
)
from idp.directory.roles import Role, grant_role, revoke_role, user_roles
from idp.extensions import db

users = AppGroup("users", help="Create, import and look up accounts.")


def register(app: Flask) -> None:
    """Attach the ``users`` command group to ``app.cli``."""
    app.cli.add_command(users)


def _fail(message: str) -> NoReturn:
    # One line on stderr and exit 1: operators script these commands and read their logs.
    click.echo(f"error: {message}", err=True)
    raise SystemExit(1)


def _echo_json(value: dict[str, Any]) -> None:
    click.echo(json.dumps(value, ensure_ascii=False))


def describe_user(user: User) -> dict[str, Any]:
    """The fields ``users add --json`` prints: nothing secret, contacts masked."""
    return {
        "account": user.account,
        "name": user.name,
        "kind": user.kind.value,
        "status": user.status.value,
        "department": user.department.code if user.department else None,
        "phone": mask_phone(user.phone) if user.phone else None,
        "email": mask_email(user.email) if user.email else None,
    }


def _password_state(user: User) -> str:
    if not user.password_hash:
        return "unset"
    return "legacy" if is_legacy_hash(user.password_hash) else "set"


def _masked_id_number(user: User) -> str | None:
    if not user.id_number_encrypted:
        return None
    try:
        return mask_id_number(decrypt_identifier(user.id_number_encrypted, data_key(current_app)))
    except ValueError:
        # Shown rather than fatal: the rest of the record is still what the help desk needs.
        return "(cannot decrypt: IDP_DATA_KEY changed?)"


@users.command("add")
@click.argument("account")
@click.option("--name", required=True, help="Full name (姓名).")
@click.option(
    "--kind",
    type=click.Choice([kind.value for kind in UserKind]),
    default=UserKind.STUDENT.value,
    show_default=True,
)
@click.option("--password", help="Initial password; makes the account active unless --pending.")
@click.option("--phone", help="Mobile number from HR records (stored unverified).")
@click.option("--email", help="Email address from HR records (stored unverified).")
@click.option("--id-number", help="National ID or passport number (stored hashed and encrypted).")
@click.option("--department", help="Department code.")
@click.option("--pending", is_flag=True, help="Leave the account to be activated by its owner.")
@click.option("--json", "as_json", is_flag=True, help="Print the account as one JSON object.")
def add_user(
    account: str,
    name: str,
    kind: str,
    password: str | None,
    phone: str | None,
    email: str | None,
    id_number: str | None,
    department: str | None,
    pending: bool,
    as_json: bool,
) -> None:
    """Create one account."""
    try:
        user = create_user(
            account,
            name,
            kind=kind,
            password=password,
            phone=phone,
            email=email,
            id_number=id_number,
            department_code=department,
            pending=pending,
        )
    except DirectoryError as exc:
        db.session.rollback()
        _fail(str(exc))
    record("user.create", target=user, detail={"via": "cli", "status": user.status.value})
    db.session.commit()
    if as_json:
        _echo_json(describe_user(user))
    else:
        click.echo(f"created {user.account} ({user.name}), {user.kind.value}, {user.status.value}")


@users.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
def import_command(file: Path, as_json: bool) -> None:
    """Create or update accounts from an HR CSV export (UTF-8 or GBK).

    Columns: account,name,kind,department,id_number,phone,email,legacy_hash (header required;
    only account and name must be present; add department_name to create unknown departments).
    """
    try:
        report = import_users(file)
    except DirectoryError as exc:
        db.session.rollback()
        _fail(str(exc))
    summary = report.as_dict()
    record(
        "user.import",
        detail={
            "via": "cli",
            "file": file.name,
            "created": report.created,
            "updated": report.updated,
            "failed": len(report.failed),
        },
    )
    db.session.commit()
    if as_json:
        _echo_json(summary)
        return
    click.echo(
        f"created {report.created}, updated {report.updated}, "
        f"unchanged {report.unchanged}, failed {len(report.failed)}"
    )
    for failure in report.failed:
        click.echo(f"line {failure.line}: {failure.reason}")


@users.command("show")
@click.argument("account")
@click.option("--json", "as_json", is_flag=True, help="Print the account as one JSON object.")
def show_user(account: str, as_json: bool) -> None:
    """Show one account, masked as the help desk sees it."""
    user = find_user_by_account(account)
    if user is None:
        _fail(f"no account {account.strip()!r}")
    masked = describe_user(user)
    view = {
        "account": user.account,
        "name": user.name,
        "kind": user.kind.value,
        "status": user.status.value,
        "department": masked["department"],
        "department_name": user.department.name if user.department else None,
        "phone": masked["phone"],
        "phone_verified": user.phone_verified_at is not None,
        "email": masked["email"],
        "email_verified": user.email_verified_at is not None,
        "id_number": _masked_id_number(user),
        "password": _password_state(user),
        "must_change_password": user.must_change_password,
        "roles": sorted(role.value for role in user_roles(user)),
    }
    if as_json:
        _echo_json(view)
        return
    width = max(len(key) for key in view)
    for key, value in view.items():
        if isinstance(value, list):
            value = ", ".join(value) or None
        shown = "-" if value is None else str(value).lower() if isinstance(value, bool) else value
        click.echo(f"{key.ljust(width)}  {shown}")


_ROLE = click.Choice([role.value for role in Role])


@users.command("grant")
@click.argument("account")
@click.argument("role", type=_ROLE)
def grant_command(account: str, role: str) -> None:
    """Give ACCOUNT a console role (helpdesk or admin); audited."""
    user = find_user_by_account(account)
    if user is None:
        _fail(f"no account {account.strip()!r}")
    changed = grant_role(user, Role(role), reason="flask users grant")
    db.session.commit()
    click.echo(f"{user.account} {'now holds' if changed else 'already holds'} {role}")


@users.command("revoke")
@click.argument("account")
@click.argument("role", type=_ROLE)
def revoke_command(account: str, role: str) -> None:
    """Take a console role away from ACCOUNT; audited."""
    user = find_user_by_account(account)
    if user is None:
        _fail(f"no account {account.strip()!r}")
    changed = revoke_role(user, Role(role), reason="flask users revoke")
    db.session.commit()
    click.echo(f"{user.account} {'no longer holds' if changed else 'did not hold'} {role}")
