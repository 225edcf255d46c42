"""``flask --app hall directory sync`` against a live IdP over real HTTP: people, departments
and positions copied into the hall, incremental runs, people the IdP dropped marked inactive."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from hall.audit.models import HallAuditEvent
from hall.auth.models import HallUser, aware
from hall.directory.models import Department, DirectorySyncState, Position
from hall.extensions import db
from tests.conftest import AppFactory, MakeDatabaseUrl
from tests.e2e.conftest import ROOT, LiveServer, _server_env
from tests.hall.sso_support import start_oidc_idp

LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def directory_idp(
    make_database_url: MakeDatabaseUrl, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A live IdP with the demo directory (departments, a class, a head and a counsellor)."""
    yield from start_oidc_idp(make_database_url, tmp_path_factory, "hall_directory_idp")


def idp_cli(idp: LiveServer, *args: str) -> str:
    """Run ``flask --app idp …`` against the live IdP's database; its output."""
    return idp.flask(*args)


@pytest.fixture(scope="module")
def directory_client(directory_idp: LiveServer) -> dict[str, Any]:
    """The hall's directory registration, made with the real command line."""
    output = idp_cli(
        directory_idp,
        *("clients", "add-oidc", "红柳易办目录同步", "--grant-type", "client_credentials"),
        *("--scope", "directory.read", "--json"),
    )
    registration = dict(json.loads(output.strip().splitlines()[-1]))
    assert registration["redirect_uris"] == [] and registration["scope"] == "directory.read"
    return registration


def syncing_hall(
    make_hall: AppFactory, idp: LiveServer, registration: dict[str, Any], **overrides: Any
) -> Flask:
    """A hall configured to read the live IdP's directory."""
    settings = {
        "OIDC_ISSUER": idp.url,
        "DIRECTORY_CLIENT_ID": registration["client_id"],
        "DIRECTORY_CLIENT_SECRET": registration["client_secret"],
    }
    settings.update(overrides)
    return make_hall(**settings)


def run_sync(app: Flask, *args: str) -> dict[str, Any]:
    """``flask --app hall directory sync --json`` through the app's CLI runner."""
    result = app.test_cli_runner().invoke(args=["directory", "sync", "--json", *args])
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.output.strip().splitlines()[-1]))


def age_idp_directory(idp: LiveServer) -> None:
    """Date everything at the IdP long ago, so a later change is the only news."""
    for table in ("users", "departments", "positions"):
        idp.sql(f"UPDATE {table} SET updated_at = :moment", moment=LONG_AGO)  # noqa: S608


def test_first_sync_copies_people_departments_and_positions(
    make_hall: AppFactory, directory_idp: LiveServer, directory_client: dict[str, Any]
) -> None:
    """The first run is complete: every person by sub, the department tree, heads, counsellors."""
    hall = syncing_hall(make_hall, directory_idp, directory_client)
    report = run_sync(hall)
    assert report["full"] is True and report["users_created"] >= 3
    with hall.app_context():
        staff = db.session.scalar(db.select(HallUser).where(HallUser.account == "T2001"))
        assert staff is not None and staff.name == "王老师" and staff.kind == "staff"
        assert staff.sub.isdigit() and staff.department_code == "HR" and staff.active
        assert staff.department_name == "人事处" and staff.directory_synced_at is not None
        student = db.session.scalar(db.select(HallUser).where(HallUser.account == "2024000001"))
        # The demo student's phone is verified; the directory serves it in E.164.
        assert student is not None and student.phone == "+8613800000001"
        departments = {d.code: d for d in db.session.scalars(db.select(Department))}
        assert departments["CS-2024-1"].parent_id == departments["CS"].id
        assert departments["CS"].parent_id == departments["LUT"].id
        posts = {
            (p.department.code if p.department else None, p.kind): p
            for p in db.session.scalars(db.select(Position))
        }
        head = posts[("HR", "head")]
        assert head.title == "人事处 处长" and [u.account for u in head.holders] == ["T2001"]
        counsellor = posts[("CS-2024-1", "counsellor")]
        assert [u.account for u in counsellor.holders] == ["T2001"]
        state = db.session.get(DirectorySyncState, 1)
        assert state is not None and state.last_full_at is not None
        assert state.users_modified is not None
        event = db.session.scalar(
            db.select(HallAuditEvent).where(HallAuditEvent.action == "directory.sync")
        )
        assert event is not None


def test_later_runs_read_only_changes_and_mark_dropped_people_inactive(
    make_hall: AppFactory,
    directory_idp: LiveServer,
    directory_client: dict[str, Any],
    tmp_path: Path,
) -> None:
    """After the first run only changes come over; a complete run marks unlisted people
    inactive without deleting them, and a disabled account arrives inactive."""
    age_idp_directory(directory_idp)
    hall = syncing_hall(make_hall, directory_idp, directory_client)
    run_sync(hall)
    with hall.app_context():
        # As if the last run had seen changes up to a day after everything at the IdP.
        state = db.session.get(DirectorySyncState, 1)
        assert state is not None and aware(state.users_modified) == LONG_AGO
        state.users_modified = state.groups_modified = LONG_AGO + timedelta(days=1)
        known = db.session.scalar(db.select(db.func.count()).select_from(HallUser))
        # Someone who signed in once but whom the IdP no longer lists.
        db.session.add(
            HallUser(sub="987654321", account="X0001", name="已离校", created_at=LONG_AGO)
        )
        db.session.commit()

    export = tmp_path / "hr.csv"
    export.write_text(
        "account,name,kind,department,positions\n"
        "T7001,周院长,staff,CS,CS:head:计算机与通信学院 院长\n",
        encoding="utf-8",
    )
    idp_cli(directory_idp, "users", "import", str(export))
    directory_idp.sql(
        "UPDATE users SET status = 'disabled', updated_at = :now WHERE account = '2024000002'",
        now=datetime.now(UTC),
    )

    second = run_sync(hall)
    assert second["full"] is False
    assert second["users_created"] == 1 and second["users_updated"] == 1
    assert second["users_deactivated"] == 0 and second["positions"] == 1
    with hall.app_context():
        newcomer = db.session.scalar(db.select(HallUser).where(HallUser.account == "T7001"))
        assert newcomer is not None and newcomer.department_code == "CS"
        head = db.session.scalar(
            db.select(Position).where(Position.title == "计算机与通信学院 院长")
        )
        assert head is not None and [u.account for u in head.holders] == ["T7001"]
        disabled = db.session.scalar(db.select(HallUser).where(HallUser.account == "2024000002"))
        assert disabled is not None and disabled.active is False
        assert db.session.scalar(db.select(HallUser).where(HallUser.sub == "987654321")).active

    third = run_sync(hall, "--full")
    assert third["full"] is True and third["users_deactivated"] == 1
    with hall.app_context():
        gone = db.session.scalar(db.select(HallUser).where(HallUser.sub == "987654321"))
        assert gone is not None and gone.active is False
        total = db.session.scalar(db.select(db.func.count()).select_from(HallUser))
        assert total == known + 2  # nobody deleted: the dropped person and the newcomer


def test_sync_refuses_clearly_without_credentials_or_with_wrong_ones(
    make_hall: AppFactory, directory_idp: LiveServer, directory_client: dict[str, Any]
) -> None:
    """Missing settings, a wrong secret or an unreachable IdP: exit 1, a reason, nothing saved."""
    bare = make_hall(OIDC_ISSUER=directory_idp.url)
    missing = bare.test_cli_runner().invoke(args=["directory", "sync"])
    assert missing.exit_code == 1 and "HALL_DIRECTORY_CLIENT_ID" in missing.output

    wrong = syncing_hall(
        make_hall, directory_idp, {**directory_client, "client_secret": "not-the-secret"}
    )
    refused = wrong.test_cli_runner().invoke(args=["directory", "sync"])
    assert refused.exit_code == 1 and "refused a directory token" in refused.output
    assert "invalid_client" in refused.output

    away = syncing_hall(
        make_hall, directory_idp, directory_client, OIDC_ISSUER="http://127.0.0.1:9"
    )
    unreachable = away.test_cli_runner().invoke(args=["directory", "sync"])
    assert unreachable.exit_code == 1 and "discovery document" in unreachable.output
    with wrong.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(HallUser)) == 0


def test_periodic_sync_runs_until_stopped(
    make_database_url: MakeDatabaseUrl,
    tmp_path: Path,
    directory_idp: LiveServer,
    directory_client: dict[str, Any],
) -> None:
    """``--every`` syncs at once, then waits; SIGTERM (systemd stop) ends it cleanly."""
    env = _server_env("HALL", make_database_url("hall_directory_every"), tmp_path)
    env.update(
        {
            "HALL_OIDC_ISSUER": directory_idp.url,
            "HALL_DIRECTORY_CLIENT_ID": directory_client["client_id"],
            "HALL_DIRECTORY_CLIENT_SECRET": directory_client["client_secret"],
        }
    )
    hall = [sys.executable, "-m", "flask", "--app", "hall"]
    subprocess.run([*hall, "db", "upgrade"], env=env, cwd=ROOT, check=True, capture_output=True)
    process = subprocess.Popen(
        [*hall, "directory", "sync", "--every", "600", "--json"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = json.loads(process.stdout.readline())
        assert first["full"] is True and first["users_created"] >= 3
        process.terminate()
        _, errors = process.communicate(timeout=20)
        assert process.returncode == 0, errors
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_complete_run_asks_the_idp_before_removing_an_unlisted_position(
    make_hall: AppFactory,
    directory_idp: LiveServer,
    directory_client: dict[str, Any],
    tmp_path: Path,
) -> None:
    """A position the complete listing left out is asked for by id (``GET /Groups/<id>``) over
    the real API; the IdP's 404 is what removes it from the hall."""
    export = tmp_path / "secretary.csv"
    export.write_text(
        "account,name,kind,department,positions\nT7002,秘书甲,staff,CS,CS:secretary:学院秘书\n",
        encoding="utf-8",
    )
    idp_cli(directory_idp, "users", "import", str(export))
    hall = syncing_hall(make_hall, directory_idp, directory_client)
    run_sync(hall, "--full")
    with hall.app_context():
        secretary = db.session.scalar(db.select(Position).where(Position.kind == "secretary"))
        assert secretary is not None
        number = secretary.scim_id.removeprefix("pos-")
    directory_idp.sql(f"DELETE FROM positions WHERE id = {int(number)}")  # noqa: S608
    report = run_sync(hall, "--full")
    assert report["positions_removed"] == 1
    with hall.app_context():
        kinds = set(db.session.scalars(db.select(Position.kind)))
        assert "secretary" not in kinds and {"head", "counsellor"} <= kinds
