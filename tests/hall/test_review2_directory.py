"""Second review of ``flask --app hall directory sync --every``: a database error (a restart, a
lost connection) is reported and the loop goes on at the next tick."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask
from sqlalchemy.exc import OperationalError

from hall.auth.models import HallUser
from hall.directory import cli
from hall.directory.sync import SyncError, SyncReport
from hall.extensions import db


def database_restarting() -> OperationalError:
    """What the driver raises while PostgreSQL restarts (the statement names people's data)."""
    return OperationalError(
        "UPDATE hall_users SET name=%(name)s", {"name": "张三"}, Exception("server closed")
    )


def test_one_tick_reports_a_database_error_and_leaves_the_session_usable(
    hall_app: Flask, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run that meets a database error says so on stderr (not the statement's parameters),
    rolls back and returns False; a SyncError likewise; a good run prints its report."""
    outcomes: list[Any] = [database_restarting(), SyncError("the IdP refused"), SyncReport()]

    def fake_sync(*, full: bool = False) -> SyncReport:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    monkeypatch.setattr(cli, "sync_directory", fake_sync)
    with hall_app.app_context():
        assert cli.sync_once(full=False, as_json=True) is False
        failed = capsys.readouterr()
        assert failed.out == "" and "error: database: server closed" in failed.err
        assert "张三" not in failed.err
        assert db.session.query(HallUser).count() == 0  # the session works again
        assert cli.sync_once(full=False, as_json=True) is False
        assert "error: the IdP refused" in capsys.readouterr().err
        assert cli.sync_once(full=False, as_json=True) is True
        assert '"users_created": 0' in capsys.readouterr().out


def test_the_periodic_loop_goes_on_after_a_database_error(
    hall_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--every``: the first tick meets OperationalError, the next one runs (still --full,
    since the full run failed), then SIGTERM's flag ends the loop with exit code 0."""
    events: list[threading.Event] = []
    calls: list[bool] = []

    class InstantEvent(threading.Event):
        """Waits no time, so the test needs no 10-second ticks."""

        def __init__(self) -> None:
            super().__init__()
            events.append(self)

        def wait(self, timeout: float | None = None) -> bool:
            return self.is_set()

    def fake_sync(*, full: bool = False) -> SyncReport:
        calls.append(full)
        if len(calls) == 1:
            raise database_restarting()
        events[0].set()  # as SIGTERM would
        return SyncReport(full=full)

    monkeypatch.setattr(cli, "sync_directory", fake_sync)
    monkeypatch.setattr(cli, "threading", SimpleNamespace(Event=InstantEvent))
    # The loop installs a SIGTERM handler: keep it away from the test process.
    monkeypatch.setattr(cli, "signal", SimpleNamespace(signal=lambda *_: None, SIGTERM=15))
    result = hall_app.test_cli_runner().invoke(
        args=["directory", "sync", "--every", "10", "--full", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert calls == [True, True]
    assert "error: database: server closed" in result.output
    assert '"full": true' in result.output
