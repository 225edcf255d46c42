"""``flask --app hall roles grant|revoke|list``: hall roles from the command line."""

from __future__ import annotations

import json

import click
from flask import current_app
from flask.cli import AppGroup

from hall.audit.operations import CLI_ACTOR
from hall.catalog.operations import department_by_code
from hall.catalog.roles import HallRole, RoleError, all_grants, grant_role, grants_of, revoke_grant
from hall.extensions import db

roles = AppGroup("roles", help="Grant hall roles (hall_admin, service_manager of a department).")


def _department(code: str | None) -> object:
    if not code:
        return None
    department = department_by_code(code)
    if department is None:
        raise click.ClickException(
            f"unknown department {code!r} (flask --app hall demo loads some)"
        )
    return department


@roles.command("grant")
@click.argument("account")
@click.argument("role", type=click.Choice([r.value for r in HallRole]))
@click.option("--department", "code", help="Department code (required for service_manager).")
@click.option("--json", "as_json", is_flag=True, help="Print the grant as JSON.")
def grant(account: str, role: str, code: str | None, as_json: bool) -> None:
    """Give ACCOUNT (学工号) a hall role; audited as done by ``cli``."""
    department = _department(code)
    if role == HallRole.SERVICE_MANAGER.value and department is None:
        raise click.ClickException("service_manager needs --department CODE")
    try:
        added = grant_role(account, HallRole(role), department, actor=CLI_ACTOR)  # type: ignore[arg-type]
    except RoleError as error:
        with current_app.test_request_context():  # the message is translated per request
            raise click.ClickException(str(error)) from None
    db.session.commit()
    if as_json:
        click.echo(
            json.dumps(
                {"account": account, "role": role, "department": code, "created": added},
                ensure_ascii=False,
            )
        )
    else:
        click.echo(
            f"{account}: {role}{' of ' + code if code else ''} "
            + ("granted" if added else "already held")
        )


@roles.command("revoke")
@click.argument("account")
@click.argument("role", type=click.Choice([r.value for r in HallRole]))
@click.option("--department", "code", help="Department code (service_manager).")
def revoke(account: str, role: str, code: str | None) -> None:
    """Take a hall role away from ACCOUNT."""
    department = _department(code)
    department_id = getattr(department, "id", None)
    matching = [
        g
        for g in grants_of(account)
        if g.role == role
        and (role == HallRole.HALL_ADMIN.value or g.department_id == department_id)
    ]
    if not matching:
        raise click.ClickException(f"{account} does not hold {role}{' of ' + code if code else ''}")
    for item in matching:
        revoke_grant(item, actor=CLI_ACTOR)
    db.session.commit()
    click.echo(f"{account}: {role} revoked")


@roles.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the grants as JSON.")
def list_roles(as_json: bool) -> None:
    """List every hall role grant."""
    rows = [
        {
            "account": g.account,
            "role": g.role,
            "department": g.department.code if g.department else None,
            "granted_by": g.granted_by,
        }
        for g in all_grants()
    ]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False))
    else:
        for row in rows:
            click.echo(f"{row['account']:<16} {row['role']:<16} {row['department'] or '-'}")
