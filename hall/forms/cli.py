"""``flask --app hall attachments purge``: remove uploads nobody submitted or kept in a draft."""

from __future__ import annotations

import json
from datetime import timedelta

import click
from flask.cli import AppGroup

from hall.auth.models import utcnow
from hall.forms.attachments import purge_unsubmitted

attachments = AppGroup("attachments", help="Uploaded attachments of online forms.")


@attachments.command("purge")
@click.option(
    "--days",
    type=click.IntRange(min=1),
    default=7,
    show_default=True,
    help="Keep unsubmitted uploads younger than this many days.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def purge(days: int, as_json: bool) -> None:
    """Delete uploads older than --days that belong to no application and no draft."""
    removed = purge_unsubmitted(utcnow() - timedelta(days=days))
    if as_json:
        click.echo(json.dumps({"removed": removed}))
    else:
        click.echo(f"removed {removed} unsubmitted attachments older than {days} days")
