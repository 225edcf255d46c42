"""``flask --app idp keys …``: rotate and list the OpenID Connect signing keys."""

from __future__ import annotations

import json
from typing import Any

import click
from flask import Flask
from flask.cli import AppGroup

from idp.audit.operations import record
from idp.extensions import db
from idp.oidc.keys import ALGORITHMS, DEFAULT_ALGORITHM, published_keys, rotate_keys
from idp.oidc.models import SigningKey

keys = AppGroup("keys", help="Rotate and list the signing keys of ID tokens.")


def describe(key: SigningKey) -> dict[str, Any]:
    """A key as an administrator needs to see it (never the private part)."""
    return {
        "kid": key.kid,
        "alg": key.alg,
        "created_at": key.created_at.isoformat(),
        "retired_at": key.retired_at.isoformat() if key.retired_at else None,
        "published_until": key.expires_at.isoformat() if key.expires_at else None,
    }


@keys.command("rotate")
@click.option("--alg", type=click.Choice(ALGORITHMS), default=DEFAULT_ALGORITHM, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the new and retired keys as JSON.")
def rotate(alg: str, as_json: bool) -> None:
    """Sign with a new key of ALG from now on (for the clients registered for ALG).

    Only older keys of ALG are retired, and they stay published until their tokens expire;
    the other algorithm's key goes on signing for its clients.
    """
    new, retired = rotate_keys(alg)
    record(
        "oidc.key_rotate", subject=new.kid, detail={"alg": alg, "retired": [k.kid for k in retired]}
    )
    db.session.commit()
    if as_json:
        click.echo(json.dumps({"key": describe(new), "retired": [describe(k) for k in retired]}))
        return
    click.echo(f"new signing key: {new.kid} ({new.alg})")
    for key in retired:
        click.echo(f"retired: {key.kid}, published until {key.expires_at:%Y-%m-%d %H:%M} UTC")


@keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the published keys as JSON.")
def list_keys(as_json: bool) -> None:
    """List the keys in the JWKS, the signing keys (one per algorithm) first."""
    keys = sorted(published_keys(), key=lambda k: k.retired_at is not None)  # stable: newest first
    rows = [describe(k) for k in keys]
    if as_json:
        click.echo(json.dumps(rows))
        return
    for row in rows:
        state = "retired" if row["retired_at"] else "signing"
        click.echo(f"{row['kid']}  {row['alg']}  {state}")


def register(app: Flask) -> None:
    """Attach the ``keys`` group."""
    app.cli.add_command(keys)
