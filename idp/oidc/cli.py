"""``flask --app idp keys …``: rotate and list the OpenID Connect signing keys."""

from __future__ import annotations

import json
from typing import Any

import click
from flask import Flask
from flask.cli import AppGroup

from idp.audit.operations import record
from idp.directory.models import aware, utcnow
from idp.extensions import db
from idp.oidc.keys import (
    ALGORITHMS,
    DEFAULT_ALGORITHM,
    current_key,
    published_keys,
    rotate_keys,
    signs_from,
)
from idp.oidc.models import SigningKey

keys = AppGroup("keys", help="Rotate and list the signing keys of ID tokens.")


def state(key: SigningKey) -> str:
    """``signing``, ``next`` (published, signing later), ``retiring`` (signs no more after its
    retirement) or ``retired``."""
    if key.kid == current_key(key.alg).kid:
        return "signing"
    if key.retired_at is None:
        return "next"
    return "retiring" if aware(key.retired_at) > utcnow() else "retired"


def describe(key: SigningKey) -> dict[str, Any]:
    """A key as an administrator needs to see it (never the private part)."""
    return {
        "kid": key.kid,
        "alg": key.alg,
        "state": state(key),
        "created_at": key.created_at.isoformat(),
        "retired_at": key.retired_at.isoformat() if key.retired_at else None,
        "published_until": key.expires_at.isoformat() if key.expires_at else None,
    }


@keys.command("rotate")
@click.option("--alg", type=click.Choice(ALGORITHMS), default=DEFAULT_ALGORITHM, show_default=True)
@click.option(
    "--now",
    "at_once",
    is_flag=True,
    help="Sign with the new key at once (a key that leaked), not after IDP_OIDC_KEY_PREPUBLISH.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the new and retired keys as JSON.")
def rotate(alg: str, at_once: bool, as_json: bool) -> None:
    """Publish a new key of ALG; it signs for the clients registered for ALG once relying
    parties have had IDP_OIDC_KEY_PREPUBLISH seconds to fetch the JWKS (at once with --now).

    Only older keys of ALG are retired: they sign until then, and stay published until their
    tokens expire; the other algorithm's key goes on signing for its clients.
    """
    new, retired = rotate_keys(alg, now=at_once)
    record(
        "oidc.key_rotate",
        subject=new.kid,
        detail={"alg": alg, "retired": [k.kid for k in retired], "now": at_once},
    )
    db.session.commit()
    if as_json:
        click.echo(json.dumps({"key": describe(new), "retired": [describe(k) for k in retired]}))
        return
    if current_key(alg).kid == new.kid:
        click.echo(f"new signing key: {new.kid} ({new.alg}), signing now")
    else:
        click.echo(
            f"new key: {new.kid} ({new.alg}), published now, "
            f"signing from {signs_from(new):%Y-%m-%d %H:%M} UTC"
        )
    for key in retired:
        assert key.retired_at is not None and key.expires_at is not None
        click.echo(
            f"retiring: {key.kid}, signs until {aware(key.retired_at):%Y-%m-%d %H:%M} UTC, "
            f"published until {aware(key.expires_at):%Y-%m-%d %H:%M} UTC"
        )


@keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the published keys as JSON.")
def list_keys(as_json: bool) -> None:
    """List the keys in the JWKS, the signing keys (one per algorithm) first."""
    order = {"signing": 0, "next": 1, "retiring": 2, "retired": 3}
    rows = sorted((describe(k) for k in published_keys()), key=lambda row: order[row["state"]])
    if as_json:
        click.echo(json.dumps(rows))
        return
    for row in rows:
        click.echo(f"{row['kid']}  {row['alg']}  {row['state']}")


def register(app: Flask) -> None:
    """Attach the ``keys`` group."""
    app.cli.add_command(keys)
