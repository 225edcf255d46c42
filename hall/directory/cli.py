"""``flask --app hall directory sync``: copy people, departments and positions from the IdP."""

from __future__ import annotations

import json
import signal
import threading
from typing import Any

import click
from flask.cli import AppGroup
from sqlalchemy.exc import SQLAlchemyError

from hall.directory.sync import SyncError, sync_directory
from hall.extensions import db

directory = AppGroup("directory", help="The hall's copy of the IdP's directory.")


def _show(report: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False))
        return
    kind = "full" if report["full"] else "incremental"
    click.echo(
        f"directory sync ({kind}): {report['users_created']} people added, "
        f"{report['users_updated']} updated, {report['users_deactivated']} marked inactive; "
        f"{report['departments']} departments, {report['positions']} positions"
        f" ({report['positions_removed']} removed)"
    )


def sync_once(*, full: bool, as_json: bool) -> bool:
    """One run: its report printed, or its failure reported on stderr (False); never raises
    for a failed sync or a database error, so ``--every`` goes on at the next tick."""
    try:
        report = sync_directory(full=full)
    except SyncError as exc:
        click.echo(f"error: {exc}", err=True)
        return False
    except SQLAlchemyError as exc:  # the database restarting, a lost connection
        db.session.rollback()
        # The driver's words only: the statement's parameters carry people's data.
        click.echo(f"error: database: {getattr(exc, 'orig', None) or exc}", err=True)
        return False
    _show(report.as_dict(), as_json)
    return True


@directory.command("sync")
@click.option("--full", is_flag=True, help="Read everything, not only what changed.")
@click.option(
    "--every",
    type=click.IntRange(min=10),
    default=None,
    metavar="SECONDS",
    help="Keep running: one sync every SECONDS (a failed run is reported and retried).",
)
@click.option("--json", "as_json", is_flag=True, help="Print each run's report as JSON.")
def sync(full: bool, every: int | None, as_json: bool) -> None:
    """Read Users and Groups from the IdP's SCIM API into the hall."""
    if every is None:
        if not sync_once(full=full, as_json=as_json):
            raise SystemExit(1)
        return
    stopping = threading.Event()
    # systemd and docker stop with SIGTERM: finish the current run's commit, then leave.
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    while not stopping.is_set():
        try:
            if sync_once(full=full, as_json=as_json):
                full = False  # a failed --full run is retried as one
        finally:
            db.session.remove()
        stopping.wait(every)
