"""Server time of 我待办的 (the to-do centre) and of an approval on a large PostgreSQL database.

Issue 8: with 100,000 users, 1,000,000 applications and 5,000,000 tasks, 我待办的 with its
counts must answer in p95 < 50 ms and an approve action (通过) in p95 < 30 ms, server time.

The data is built inside PostgreSQL (``INSERT … SELECT generate_series``) from templates the
real approval engine produces: for every flow length and outcome (办结, 进行中 at each node,
退回, 中止, 撤回) the engine runs once with placeholder people and times, and every application
copies one template with its own applicant, approvers and dates substituted. So each row is
what ``hall.workflow.operations`` would have written: the state JSON, the task rows, the CC
rows and (for unfinished applications, the ones an action can still touch) the history rows;
an approval measured afterwards runs the real ``act`` on them.

* 50 services with the 学生请假 form and a flow of 5 or 6 person approver nodes and a CC node;
  popular services get most applications.
* 84 % of applications are approved, 5 % running (waiting at any node), 3 % returned,
  4 % terminated and 4 % withdrawn; about 5 tasks each.
* Approvers come from pools per node: thousands of 经办人 with a handful of open tasks each,
  down to 15 分管校领导 with hundreds. The busiest approver and a typical one (the median
  open-task count) are measured.

Measured inside the app (Flask's test client, or the functions themselves: routing, queries,
template rendering — everything but the network): ``GET /inbox`` (and page 2, and one
service's tab), ``hall.inbox.queries.todo_page`` / ``todo_counts`` when they exist, and
``hall.workflow.operations.act(Approve…)`` (one transaction with SELECT … FOR UPDATE) and the
real ``POST /applications/<id>/act`` (the form of the application page, 通过 pressed), each on
random open tasks and on the busiest approver's. Prints p50/p95/p99 (wall time) and this
process's CPU ms per call, PASS/FAIL against the targets, the row counts, the generation time
and the load average; when a target is missed (or with ``--explain``) the to-do queries are
shown with EXPLAIN ANALYZE.

The database (``hongliu_bench_inbox``; ``…_s<scale>`` for other scales) is kept for the next
run: it is reused when its recorded sizes, generator version and migrations match (approvals
made by earlier runs only move applications along). ``--rebuild`` forces a new one, ``--drop``
removes it afterwards.

Run: ``.venv/bin/python benchmarks/inbox.py [--scale 0.01]`` (PostgreSQL at
``BENCH_DATABASE_URL``, an admin URL of the server, default
``postgresql://postgres@127.0.0.1:5432``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import secrets
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._support import (  # noqa: E402
    Unreachable,
    _admin_connect,
    _libpq_url,
    bench_database_url,
    drop_database,
    percentile,
    recreate_database,
)

DB_NAME = "hongliu_bench_inbox"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432"
#: Bumped whenever the generated data changes shape, so an old database is rebuilt.
GENERATOR = "inbox-bench-3"
USERS = 100_000
APPLICATIONS = 1_000_000
SERVICES = 50
STAFF_SHARE = 0.2
TODO_TARGET_MS = 50.0
APPROVE_TARGET_MS = 30.0
WARMUP = 20
SAMPLES = 200

#: Approver levels: node id, node name, pool size at full scale (the staff accounts that can
#: hold a task at that node). A 5-node flow skips ``office-head``.
LEVELS = (
    ("handler", "经办人审核", 4000),
    ("section", "科室负责人审核", 1000),
    ("college", "学院领导审批", 300),
    ("office", "职能部门审核", 200),
    ("office-head", "职能部门负责人审批", 50),
    ("leader", "分管校领导审批", 15),
)
CC_POOL = 100
#: (status, share of applications); the rest of the outcomes are per node.
OUTCOMES = (
    ("approved", 0.84),
    ("running", 0.05),
    ("returned", 0.03),
    ("terminated", 0.04),
    ("withdrawn", 0.04),
)
#: Placeholder times: step k of an application is 2000-01-01T00:00:0k.
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
MAX_STEPS = 7
LEAVE_DATA = {
    "name": "@N@",
    "student_no": "@A@",
    "department": "计算机科学与技术学院",
    "phone": "13800000000",
    "leave_type": "事假",
    "period": {"start": "2026-11-20", "end": "2026-11-22"},
    "days": 3,
    "leaves_campus": "否",
    "reason": "家中有事，需请假处理。",
    "attachments": [],
}


# --------------------------------------------------------------------------- sizes


@dataclass(frozen=True)
class Sizes:
    """Row counts and pool sizes of one scale."""

    scale: float
    users: int
    staff: int
    applications: int
    pools: tuple[int, ...]
    cc_pool: int

    @classmethod
    def of(cls, scale: float) -> Sizes:
        """The sizes at ``scale`` (1 = the issue's 100k users, 1M applications)."""
        users = max(200, round(USERS * scale))
        staff = max(60, round(users * STAFF_SHARE))
        pools = tuple(max(2, round(size * scale)) for _id, _name, size in LEVELS)
        return cls(
            scale=scale,
            users=users,
            staff=staff,
            applications=max(1000, round(APPLICATIONS * scale)),
            pools=pools,
            cc_pool=max(2, round(CC_POOL * scale)),
        )

    def marker(self) -> str:
        """What the database comment records, compared before reusing a database."""
        return (
            f"{GENERATOR} users={self.users} applications={self.applications} "
            f"migrations={migrations_digest()}"
        )


def migrations_digest() -> str:
    """A digest of the hall's migration files: a changed schema means a new database."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "hall" / "migrations" / "versions").glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def database_name(scale: float) -> str:
    """One database per scale, so a quick run does not throw the full one away."""
    if scale == 1:
        return DB_NAME
    return f"{DB_NAME}_s{str(scale).replace('.', '_')}"


# --------------------------------------------------------------------------- templates


def flow_definition(levels: int) -> dict[str, Any]:
    """A flow of ``levels`` (5 or 6) person approver nodes and a CC node, with placeholders."""
    chosen = [lv for lv in range(1, len(LEVELS) + 1) if levels == 6 or lv != 5]
    nodes: list[dict[str, Any]] = [{"id": "start", "kind": "start", "name": "申请人"}]
    for level in chosen:
        node_id, name, _size = LEVELS[level - 1]
        nodes.append(
            {
                "id": node_id,
                "kind": "approver",
                "name": name,
                "approver": {"type": "person", "users": [f"@U{level}@"]},
                "mode": "all",
            }
        )
    nodes.append(
        {
            "id": "cc-office",
            "kind": "cc",
            "name": "抄送学生工作处",
            "recipients": {"type": "person", "users": ["@C@"]},
        }
    )
    nodes.append({"id": "end", "kind": "end", "name": "结束"})
    return {"settings": {}, "nodes": nodes}


class _Nobody:
    """The engine's directory for person-only flows: no role holders, and everyone named is
    still here."""

    def users_with_role(self, role: str, applicant: str) -> list[str]:
        """Nobody."""
        return []

    def department_head(self, applicant: str) -> list[str]:
        """Nobody."""
        return []

    def supervisor(self, applicant: str, level: int) -> list[str]:
        """Nobody."""
        return []

    def present(self, users: Sequence[str]) -> list[str]:
        """Everyone named: the generated people never leave."""
        return list(users)


def _slot(person: str | None) -> int | None:
    """Placeholder → slot: 0 the applicant, 1..6 an approver level, 9 the CC recipient."""
    if person is None:
        return None
    if person == "@A@":
        return 0
    if person == "@C@":
        return 9
    return int(person.strip("@U"))


def templates() -> list[dict[str, Any]]:
    """Every (flow length, outcome, node) run through the real engine with placeholders."""
    from hall.workflow import engine
    from hall.workflow.definitions import parse_flow

    result = []
    for levels in (5, 6):
        raw_flow = flow_definition(levels)
        flow = parse_flow(raw_flow)
        approvers = len(flow.approver_nodes())
        plans: list[tuple[str, int]] = [("approved", approvers), ("withdrawn", 0)]
        for stage in range(1, approvers + 1):
            plans += [("running", stage), ("returned", stage), ("terminated", stage)]
        for status, stage in plans:
            result.append(_run_template(engine, flow, raw_flow, levels, status, stage))
    return result


def _run_template(
    engine: Any, flow: Any, raw_flow: dict[str, Any], levels: int, status: str, stage: int
) -> dict[str, Any]:
    """One template: the state JSON, task rows, history rows and CC rows, by step."""
    tasks: dict[int, dict[str, Any]] = {}
    events: list[dict[str, Any]] = []
    copies: list[dict[str, Any]] = []

    def ctx(step: int) -> Any:
        return engine.Context(_Nobody(), EPOCH + timedelta(seconds=step), {})

    def keep(outcome: Any, step: int) -> Any:
        assert isinstance(outcome, engine.Outcome), outcome
        for task in outcome.created:
            tasks[task.id] = {
                "engine_id": task.id,
                "node_id": task.node_id,
                "node_name": flow.node(task.node_id).name,
                "slot": _slot(task.assignee),
                "status": "open",
                "opinion": None,
                "created_step": step,
                "acted_step": None,
            }
        for closed in outcome.closed:
            row = tasks[closed.task.id]
            row.update(status=closed.status.value, opinion=closed.opinion or None, acted_step=step)
        for event in outcome.events:
            events.append(
                {
                    "seq": event.seq,
                    "kind": event.kind.value,
                    "actor_slot": _slot(event.actor),
                    "on_behalf_slot": _slot(event.on_behalf_of),
                    "node_id": event.node_id,
                    "opinion": event.opinion or None,
                    "target": event.target,
                    "step": int((event.at - EPOCH).total_seconds()),
                }
            )
        for note in outcome.notifications:
            if note.kind is engine.EventKind.CC and note.node_id:
                copies.append(
                    {"slot": _slot(note.recipient), "node_id": note.node_id, "step": step}
                )
        return outcome.state

    state = keep(engine.submit(flow, "@A@", LEAVE_DATA, ctx(0)), 0)
    step = 0
    approvals = stage if status == "approved" else max(stage - 1, 0)
    for _ in range(approvals):
        step += 1
        task = state.tasks[0]
        action = engine.Approve(actor=task.assignee, task_id=task.id, opinion="同意")
        state = keep(engine.apply(flow, state, action, ctx(step)), step)
    if status in ("returned", "terminated", "withdrawn"):
        step += 1
        if status == "withdrawn":
            action = engine.Withdraw(actor="@A@", opinion="信息填写有误，撤回修改")
        else:
            task = state.tasks[0]
            kind = engine.Return if status == "returned" else engine.Terminate
            action = kind(actor=task.assignee, task_id=task.id, opinion="材料不全，请补充后再提交")
        state = keep(engine.apply(flow, state, action, ctx(step)), step)
    assert state.status.value == status, (status, state.status)
    assert step < MAX_STEPS  # bench_fill substitutes the times of steps 0..6
    return {
        "levels": levels,
        "status": status,
        "stage": stage,
        "steps": step,
        "finished": state.status in engine.FINISHED,
        "flow": json.dumps(raw_flow, ensure_ascii=False),
        "data": json.dumps(dict(state.data), ensure_ascii=False),
        "state": json.dumps(engine.state_to_json(state), ensure_ascii=False),
        "tasks": list(tasks.values()),
        "events": events,
        "copies": copies,
    }


# --------------------------------------------------------------------------- building


def make_app(database_url: str) -> Any:
    """The hall on the benchmark database (no preflight checks, development settings)."""
    from hall import create_app

    return create_app(
        {
            "DATABASE_URL": database_url,
            "SECRET_KEY": secrets.token_hex(32),
            "PREFLIGHT": False,
            "ENV": "development",
            "LOG_FORMAT": "text",
        }
    )


def prepare_services(app: Any, sizes: Sizes) -> None:
    """The demo catalogue plus generated services up to 50, each with a form and a flow."""
    from hall.auth.models import utcnow
    from hall.catalog.demo import load_demo_catalog
    from hall.catalog.models import Category, Service
    from hall.catalog.search import refresh_search_columns
    from hall.directory.models import Department
    from hall.extensions import db
    from hall.workflow.demo import STUDENT_LEAVE
    from hall.workflow.operations import save_flow_definition, save_form_definition

    with app.app_context():
        load_demo_catalog()
        departments = list(db.session.scalars(db.select(Department).order_by(Department.id)))
        categories = list(db.session.scalars(db.select(Category).order_by(Category.id)))
        services = list(
            db.session.scalars(
                db.select(Service).where(Service.status == "published").order_by(Service.id)
            )
        )[:SERVICES]
        now = utcnow()
        for number in range(SERVICES - len(services)):
            department = departments[number % len(departments)]
            service = Service(
                department_id=department.id,
                category_id=categories[number % len(categories)].id,
                title=f"学生事务在线申请（{number + 1}）",
                summary="在线提交，逐级审批。",
                keywords="申请 审批",
                for_student=True,
                for_staff=True,
                online=True,
                status="published",
                published_at=now,
                created_at=now,
                updated_at=now,
            )
            service.department = department
            refresh_search_columns(service)
            db.session.add(service)
            services.append(service)
        db.session.commit()
        for index, service in enumerate(services):
            form = STUDENT_LEAVE["form"]
            save_form_definition(service.id, form["schema"], form["ui"], actor="bench")
            # The service's own flow names the first person of each pool; applications carry
            # their own copy (with their own approvers), as after a later edit of the flow.
            raw = flow_definition(5 + index % 2)
            text = json.dumps(raw, ensure_ascii=False)
            for level in range(1, len(LEVELS) + 1):
                text = text.replace(f"@U{level}@", staff_account(pool_start(sizes, level)))
            text = text.replace("@C@", staff_account(sizes.staff - sizes.cc_pool + 1))
            save_flow_definition(service.id, json.loads(text), actor="bench")


def staff_account(number: int) -> str:
    """学工号 of staff member ``number`` (1-based)."""
    return f"T{number:06d}"


def pool_start(sizes: Sizes, level: int) -> int:
    """The first staff number of a level's pool (pools are consecutive, from T000001)."""
    return 1 + sum(sizes.pools[: level - 1])


FILL_FUNCTION = """
CREATE FUNCTION bench_fill(t text, a text, nm text, u text[], c text, ts text[])
RETURNS text LANGUAGE sql IMMUTABLE AS $$
SELECT replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(
       replace(replace(replace(replace(replace(t,
  '@A@', a), '@N@', nm), '@U1@', u[1]), '@U2@', u[2]), '@U3@', u[3]), '@U4@', u[4]),
  '@U5@', u[5]), '@U6@', u[6]), '@C@', c),
  '2000-01-01T00:00:00+00:00', ts[1]), '2000-01-01T00:00:01+00:00', ts[2]),
  '2000-01-01T00:00:02+00:00', ts[3]), '2000-01-01T00:00:03+00:00', ts[4]),
  '2000-01-01T00:00:04+00:00', ts[5]), '2000-01-01T00:00:05+00:00', ts[6]),
  '2000-01-01T00:00:06+00:00', ts[7])
$$;
CREATE FUNCTION bench_person(slot int, a text, u text[], c text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
SELECT CASE WHEN slot IS NULL THEN NULL WHEN slot = 0 THEN a WHEN slot = 9 THEN c ELSE u[slot] END
$$;
"""


def fill_database(url: str, sizes: Sizes, tpls: list[dict[str, Any]]) -> None:
    """Users, applications, tasks, history and CC rows, generated inside PostgreSQL."""
    import psycopg

    with psycopg.connect(_libpq_url(url)) as conn:
        run = conn.execute
        run("SET synchronous_commit = off")
        run("SET maintenance_work_mem = '256MB'")
        run("SET work_mem = '64MB'")
        # The rows are consistent by construction: skip the per-row foreign-key triggers.
        run("SET session_replication_role = replica")
        run("SELECT setseed(0.20261124)")
        run(FILL_FUNCTION)
        run(
            """
            INSERT INTO hall_users (sub, account, name, kind, department_code, department_name,
                                    email, created_at, updated_at, last_sign_in_at, active)
            SELECT 'bench-' || u,
                   CASE WHEN u <= %(staff)s THEN 'T' || lpad(u::text, 6, '0')
                        ELSE '2' || lpad(u::text, 9, '0') END,
                   '用户' || u,
                   CASE WHEN u <= %(staff)s THEN 'staff' ELSE 'student' END,
                   d.codes[1 + u %% cardinality(d.codes)],
                   d.names[1 + u %% cardinality(d.codes)],
                   'u' || u || '@hongliu.edu.cn', now(), now(),
                   now() - random() * interval '30 days', true
              FROM generate_series(1, %(users)s) u,
                   (SELECT array_agg(code ORDER BY id) AS codes,
                           array_agg(name ORDER BY id) AS names FROM departments) d
            """,
            {"users": sizes.users, "staff": sizes.staff},
        )
        # The templates, as tables the big INSERT … SELECTs join.
        run(
            """
            CREATE TEMP TABLE bench_tpl (tpl int PRIMARY KEY, levels int, status text, stage int,
                steps int, finished bool, flow text, data text, state text)
            """
        )
        run(
            """
            CREATE TEMP TABLE bench_tpl_task (tpl int, engine_id int, node_id text,
                node_name text, slot int, status text, opinion text, created_step int,
                acted_step int)
            """
        )
        run(
            """
            CREATE TEMP TABLE bench_tpl_event (tpl int, seq int, kind text, actor_slot int,
                on_behalf_slot int, node_id text, opinion text, target text, step int)
            """
        )
        run("CREATE TEMP TABLE bench_tpl_cc (tpl int, slot int, node_id text, step int)")
        with conn.cursor() as cur:
            for number, tpl in enumerate(tpls):
                cur.execute(
                    "INSERT INTO bench_tpl VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    (
                        number,
                        tpl["levels"],
                        tpl["status"],
                        tpl["stage"],
                        tpl["steps"],
                        tpl["finished"],
                        tpl["flow"],
                        tpl["data"],
                        tpl["state"],
                    ),
                )
                cur.executemany(
                    "INSERT INTO bench_tpl_task VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    [
                        (
                            number,
                            t["engine_id"],
                            t["node_id"],
                            t["node_name"],
                            t["slot"],
                            t["status"],
                            t["opinion"],
                            t["created_step"],
                            t["acted_step"],
                        )
                        for t in tpl["tasks"]
                    ],
                )
                cur.executemany(
                    "INSERT INTO bench_tpl_event VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    [
                        (
                            number,
                            e["seq"],
                            e["kind"],
                            e["actor_slot"],
                            e["on_behalf_slot"],
                            e["node_id"],
                            e["opinion"],
                            e["target"],
                            e["step"],
                        )
                        for e in tpl["events"]
                    ],
                )
                cur.executemany(
                    "INSERT INTO bench_tpl_cc VALUES (%s, %s, %s, %s)",
                    [(number, c["slot"], c["node_id"], c["step"]) for c in tpl["copies"]],
                )
        run(
            """
            CREATE TEMP TABLE bench_svc AS
            SELECT (row_number() OVER (ORDER BY s.id) - 1)::int AS idx, s.id AS service_id,
                   s.title, f.id AS form_id
              FROM services s JOIN form_definitions f ON f.service_id = s.id
            """
        )
        services = run("SELECT count(*) FROM bench_svc").fetchone()[0]
        # One row per application: its service, outcome, node, people and clock.
        thresholds = []
        total = 0.0
        for status, share in OUTCOMES:
            total += share
            thresholds.append((status, total))
        outcome_case = " ".join(f"WHEN r < {cut} THEN '{status}'" for status, cut in thresholds)
        pools = ", ".join(
            f"'T' || lpad(({pool_start(sizes, lv)} + floor(random() * {size}))::int::text, 6, '0')"
            for lv, size in enumerate(sizes.pools, start=1)
        )
        # Only numbers computed here are formatted into the statement.
        run(
            f"""
            CREATE TEMP TABLE bench_app AS
            SELECT id, svc, status, levels,
                   CASE WHEN status IN ('running', 'returned', 'terminated')
                        THEN 1 + floor(random() * (levels - 0.0001))::int
                        WHEN status = 'approved' THEN levels ELSE 0 END AS stage,
                   applicant_no, approvers, cc, gap,
                   date_trunc('second', now() - gap * 8 - random() *
                       CASE WHEN status = 'running' THEN interval '30 days'
                            ELSE interval '720 days' END) AS submitted_at
              FROM (
                SELECT id, svc, 5 + svc %% 2 AS levels,
                       CASE {outcome_case} ELSE 'withdrawn' END AS status,
                       %(staff)s + 1 + floor(random() * %(students)s)::int AS applicant_no,
                       ARRAY[{pools}] AS approvers,
                       'T' || lpad((%(cc_start)s + floor(random() * %(cc_pool)s))::int::text,
                                   6, '0') AS cc,
                       make_interval(mins => 10 + floor(random() * 2870)::int) AS gap
                  FROM (SELECT id, random() AS r,
                               least(%(services)s - 1,
                                     floor(%(services)s * power(random(), 2)))::int AS svc
                          FROM generate_series(1, %(apps)s) id) picked
              ) drawn
            """,  # noqa: S608
            {
                "staff": sizes.staff,
                "students": sizes.users - sizes.staff,
                "cc_start": sizes.staff - sizes.cc_pool + 1,
                "cc_pool": sizes.cc_pool,
                "services": services,
                "apps": sizes.applications,
            },
        )
        run(
            """
            CREATE TEMP TABLE bench_app_full AS
            SELECT b.id, s.service_id, s.form_id, s.title, t.tpl, t.steps, t.finished,
                   t.status, '2' || lpad(b.applicant_no::text, 9, '0') AS applicant,
                   '用户' || b.applicant_no AS applicant_name, b.approvers, b.cc, b.gap,
                   b.submitted_at,
                   ARRAY(SELECT to_char((b.submitted_at + b.gap * k) AT TIME ZONE 'UTC',
                                        'YYYY-MM-DD"T"HH24:MI:SS') || '+00:00'
                           FROM generate_series(0, 6) k) AS ts
              FROM bench_app b
              JOIN bench_svc s ON s.idx = b.svc
              JOIN bench_tpl t ON t.levels = b.levels AND t.status = b.status
                              AND t.stage = b.stage
            """
        )
        count = run("SELECT count(*) FROM bench_app_full").fetchone()[0]
        if count != sizes.applications:
            raise RuntimeError(f"{count} applications matched a template, not {sizes.applications}")
        # Indexes are built once after loading: far faster than 5M index insertions each.
        saved = run(
            """
            SELECT i.indexname, i.indexdef FROM pg_indexes i
             WHERE i.tablename IN ('applications', 'workflow_tasks', 'application_events',
                                   'carbon_copies')
               AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)
            """
        ).fetchall()
        for name, _definition in saved:
            run(f'DROP INDEX "{name}"')
        run(
            """
            INSERT INTO applications (id, service_id, form_definition_id, flow_snapshot,
                applicant, title, status, data, state, submitted_at, updated_at, finished_at,
                lock_version)
            SELECT f.id, f.service_id, f.form_id,
                   bench_fill(t.flow, f.applicant, f.applicant_name, f.approvers, f.cc, f.ts)::json,
                   f.applicant, f.title, f.status,
                   bench_fill(t.data, f.applicant, f.applicant_name, f.approvers, f.cc,
                              f.ts)::json,
                   bench_fill(t.state, f.applicant, f.applicant_name, f.approvers, f.cc,
                              f.ts)::json,
                   f.submitted_at, f.submitted_at + f.gap * f.steps,
                   CASE WHEN f.finished THEN f.submitted_at + f.gap * f.steps END,
                   f.steps + 1
              FROM bench_app_full f JOIN bench_tpl t ON t.tpl = f.tpl
            """
        )
        run("SELECT setval('applications_id_seq', (SELECT max(id) FROM applications))")
        # Tasks carry copies of their application's service and status (for the to-do
        # centre's counts) when the schema has them.
        copies = {"service_id": "f.service_id", "application_status": "f.status"}
        present = {
            r[0]
            for r in run(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'workflow_tasks'"
            ).fetchall()
        }
        copied = [(column, value) for column, value in copies.items() if column in present]
        run(
            f"""
            INSERT INTO workflow_tasks (application_id, engine_id, node_id, node_name, assignee,
                status, opinion, created_at, acted_at{"".join(", " + c for c, _v in copied)})
            SELECT f.id, k.engine_id, k.node_id, k.node_name,
                   bench_person(k.slot, f.applicant, f.approvers, f.cc), k.status, k.opinion,
                   f.submitted_at + f.gap * k.created_step, f.submitted_at + f.gap * k.acted_step
                   {"".join(", " + v for _c, v in copied)}
              FROM bench_app_full f JOIN bench_tpl_task k ON k.tpl = f.tpl
            """  # noqa: S608 - fixed column names
        )
        # History rows for what an action can still touch; finished applications keep theirs
        # in the state JSON (the to-do lists never read it).
        run(
            """
            INSERT INTO application_events (application_id, seq, kind, actor, on_behalf_of,
                node_id, opinion, target, at)
            SELECT f.id, e.seq, e.kind, bench_person(e.actor_slot, f.applicant, f.approvers, f.cc),
                   bench_person(e.on_behalf_slot, f.applicant, f.approvers, f.cc), e.node_id,
                   e.opinion, e.target, f.submitted_at + f.gap * e.step
              FROM bench_app_full f JOIN bench_tpl_event e ON e.tpl = f.tpl
             WHERE NOT f.finished
            """
        )
        run(
            """
            INSERT INTO carbon_copies (application_id, recipient, node_id, created_at, read_at)
            SELECT f.id, bench_person(c.slot, f.applicant, f.approvers, f.cc), c.node_id,
                   f.submitted_at + f.gap * c.step,
                   CASE WHEN random() < 0.7 THEN f.submitted_at + f.gap * (c.step + 1) END
              FROM bench_app_full f JOIN bench_tpl_cc c ON c.tpl = f.tpl
            """
        )
        for _name, definition in saved:
            run(definition)
        run("DROP FUNCTION bench_fill(text, text, text, text[], text, text[])")
        run("DROP FUNCTION bench_person(int, text, text[], text)")
        conn.commit()
    # VACUUM (not in a transaction) sets the visibility map, as autovacuum would have long
    # done on a live system: index-only scans of the counts depend on it.
    with psycopg.connect(_libpq_url(url), autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")


def ensure_database(admin_url: str, sizes: Sizes, rebuild: bool) -> tuple[str, float | None]:
    """The benchmark database, reused when its marker matches; (url, seconds spent building)."""
    name = database_name(sizes.scale)
    url = bench_database_url(admin_url, name)
    marker = sizes.marker()
    with _admin_connect(admin_url) as conn:
        row = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            (name,),
        ).fetchone()
    if row is not None and row[0] == marker and not rebuild:
        return url, None
    from flask_migrate import upgrade

    started = time.perf_counter()
    recreate_database(admin_url, name)
    app = make_app(url)
    with app.app_context():
        upgrade()
        from hall.extensions import db

        db.engine.dispose()
    prepare_services(app, sizes)
    with app.app_context():
        from hall.extensions import db

        db.engine.dispose()
    print(f"templates from the engine, then generating {name} in PostgreSQL…", flush=True)
    fill_database(url, sizes, templates())
    with _admin_connect(admin_url) as conn:
        conn.execute(f"COMMENT ON DATABASE {name} IS '{marker}'")
    return url, time.perf_counter() - started


def check_sample(app: Any) -> None:
    """Generated applications as the engine sees them: a consistent state whose open tasks
    are exactly the open task rows (else the data would measure something unreal)."""
    from sqlalchemy import select

    from hall.extensions import db
    from hall.workflow import engine
    from hall.workflow.definitions import parse_flow
    from hall.workflow.models import Application, Task

    with app.app_context():
        found = db.session.scalars(
            select(Application)
            .where(Application.status.in_(("running", "returned")))
            .order_by(Application.id.desc())
            .limit(40)
        )
        for application in found:
            state = engine.state_from_json(application.state)
            problems = engine.inconsistencies(parse_flow(application.flow_snapshot), state)
            rows = db.session.execute(
                select(Task.engine_id, Task.assignee).where(
                    Task.application_id == application.id, Task.status == "open"
                )
            ).all()
            if problems or set(rows) != {(t.id, t.assignee) for t in state.tasks}:
                raise SystemExit(f"application {application.id} is inconsistent: {problems}")
            if hasattr(Task, "application_status"):
                copies = db.session.execute(
                    select(Task.service_id, Task.application_status).where(
                        Task.application_id == application.id
                    )
                ).all()
                if set(copies) != {(application.service_id, application.status)}:
                    raise SystemExit(f"the tasks of application {application.id} disagree")
        db.session.rollback()


# --------------------------------------------------------------------------- measuring


def row_counts(app: Any) -> dict[str, int]:
    """Exact row counts of the tables the to-do centre reads."""
    from hall.extensions import db

    tables = (
        "hall_users",
        "services",
        "applications",
        "workflow_tasks",
        "application_events",
        "carbon_copies",
    )
    with app.app_context():
        counts = {
            t: db.session.scalar(db.text(f"SELECT count(*) FROM {t}"))  # noqa: S608 - fixed names
            for t in tables
        }
        counts["open tasks"] = db.session.scalar(
            db.text("SELECT count(*) FROM workflow_tasks WHERE status = 'open'")
        )
        db.session.rollback()
    return counts


def approvers(app: Any) -> tuple[tuple[str, int], tuple[str, int]]:
    """(account, open tasks) of the busiest approver and of a typical one (the median)."""
    from hall.extensions import db

    with app.app_context():
        # Twice what one series needs: the function and the view approve different tasks.
        rows = db.session.execute(
            db.text(
                "SELECT assignee, count(*) AS n FROM workflow_tasks WHERE status = 'open' "
                "GROUP BY assignee ORDER BY n DESC, assignee"
            )
        ).all()
        db.session.rollback()
    busiest = (rows[0][0], rows[0][1])
    typical = (rows[len(rows) // 2][0], rows[len(rows) // 2][1])
    return busiest, typical


def signed_in_client(app: Any, account: str) -> Any:
    """A test client with a hall session of ``account`` (as after an SSO sign-in)."""
    from hall.auth.models import HallSession, HallUser, utcnow
    from hall.auth.sessions import SESSION_KEY, digest
    from hall.extensions import db

    token = secrets.token_hex(32)
    with app.app_context():
        user = db.session.scalars(db.select(HallUser).where(HallUser.account == account)).one()
        now = utcnow()
        db.session.add(
            HallSession(
                id=digest(token),
                user_id=user.id,
                created_at=now,
                last_seen_at=now,
                expires_at=now + timedelta(hours=12),
            )
        )
        db.session.commit()
    client = app.test_client()
    with client.session_transaction() as flask_session:
        flask_session[SESSION_KEY] = token
    return client


@dataclass
class Result:
    """One measured series."""

    name: str
    times: list[float]
    cpu_ms: float
    target: float | None

    def line(self) -> str:
        """A row of the results table."""
        p50, p95, p99 = (percentile(self.times, q) for q in (50, 95, 99))
        verdict = ""
        if self.target is not None:
            verdict = "PASS" if p95 < self.target else "FAIL"
        target = f"< {self.target:.0f}" if self.target is not None else ""
        return (
            f"{self.name:<46}{p50:>8.1f}{p95:>8.1f}{p99:>8.1f}{self.cpu_ms:>9.1f}"
            f"{target:>7}  {verdict}"
        )

    @property
    def failed(self) -> bool:
        """Whether the p95 missed the target."""
        return self.target is not None and percentile(self.times, 95) >= self.target


def timed(name: str, run: Callable[[int], None], samples: int, target: float | None) -> Result:
    """Milliseconds of ``samples`` calls after a warm-up, and this process's CPU ms per call."""
    for i in range(WARMUP):
        run(-1 - i)
    times: list[float] = []
    cpu_start = time.process_time()
    for i in range(samples):
        start = time.perf_counter()
        run(i)
        times.append((time.perf_counter() - start) * 1000)
    return Result(name, times, (time.process_time() - cpu_start) * 1000 / samples, target)


def page_runner(client: Any, paths: list[str]) -> Callable[[int], None]:
    """GET the paths in turn; anything but 200 stops the benchmark."""

    def run(i: int) -> None:
        path = paths[i % len(paths)]
        response = client.get(path)
        if response.status_code != 200:
            raise SystemExit(f"GET {path} answered {response.status_code}")

    return run


@contextmanager
def captured_sql(app: Any) -> Iterator[list[tuple[str, Any]]]:
    """The statements (and parameters) the app sends while the block runs."""
    from sqlalchemy import event

    from hall.extensions import db

    seen: list[tuple[str, Any]] = []

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)


def explain(app: Any, statements: list[tuple[str, Any]]) -> None:
    """EXPLAIN ANALYZE of each read statement: the whole plan of those taking 1 ms or more,
    the time of the others."""
    from hall.extensions import db

    with app.app_context():
        conn = db.session.connection()
        raw = conn.connection.dbapi_connection
        for statement, parameters in statements:
            if not statement.lstrip().upper().startswith(("SELECT", "WITH")):
                continue
            with raw.cursor() as cur:
                cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
                plan = [r[0] for r in cur.fetchall()]
            took = next((p for p in plan if p.startswith("Execution Time")), "")
            print(f"  [{took}] " + " ".join(statement.split())[:300])
            if float(re.sub(r"[^0-9.]", "", took) or 0) >= 1:
                for line in plan:
                    print("    " + line)
        db.session.rollback()


def inbox_queries() -> Any | None:
    """``hall.inbox.queries`` when the to-do centre exists (another helper writes it)."""
    try:
        from hall.inbox import queries
    except ImportError:
        return None
    if not all(hasattr(queries, f) for f in ("todo_page", "todo_counts")):
        return None
    return queries


def measure_todo(
    app: Any, people: list[tuple[str, str, int]], samples: int
) -> tuple[list[Result], list[str]]:
    """我待办的: the functions and the page, for each (label, account, open tasks)."""
    from hall.extensions import db

    results: list[Result] = []
    notes: list[str] = []
    queries = inbox_queries()
    if queries is None:
        notes.append("hall.inbox.queries (todo_page, todo_counts) not there yet: skipped")
    for label, account, _open in people:
        if queries is not None:
            service_id = _busiest_service(app, account)

            def counts(_i: int, account: str = account) -> None:
                with app.test_request_context("/inbox"):
                    queries.todo_counts(account)
                    db.session.rollback()

            def page(i: int, account: str = account, service_id: int = service_id) -> None:
                with app.test_request_context("/inbox"):
                    queries.todo_page(account, page=1 + (i % 2 == 1))
                    queries.todo_page(account, service_id=service_id)
                    db.session.rollback()

            results.append(timed(f"todo_counts() {label}", counts, samples, TODO_TARGET_MS))
            results.append(
                timed(f"todo_page() p1/p2 + one service {label}", page, samples, TODO_TARGET_MS)
            )
        client = signed_in_client(app, account)
        probe = client.get("/inbox")
        if probe.status_code == 404:
            if not any("GET /inbox" in n for n in notes):
                notes.append(
                    "GET /inbox answers 404 (the 待办中心 views are not there yet): skipped"
                )
            continue
        if probe.status_code != 200:
            raise SystemExit(f"GET /inbox as {account} answered {probe.status_code}")
        service_id = _busiest_service(app, account)
        paths = ["/inbox", "/inbox?page=2", f"/inbox?service={service_id}"]
        results.append(
            timed(
                f"GET /inbox (+p2, +service) {label}",
                page_runner(client, paths),
                samples,
                TODO_TARGET_MS,
            )
        )
    return results, notes


def _busiest_service(app: Any, account: str) -> int:
    """The service with most of ``account``'s open tasks (for the per-service tab)."""
    from hall.extensions import db

    with app.app_context():
        service_id = db.session.scalar(
            db.text(
                "SELECT a.service_id FROM workflow_tasks t JOIN applications a "
                "ON a.id = t.application_id WHERE t.assignee = :who AND t.status = 'open' "
                "GROUP BY a.service_id ORDER BY count(*) DESC LIMIT 1"
            ),
            {"who": account},
        )
        db.session.rollback()
    return int(service_id or 0)


def measure_approve(app: Any, busiest: str, samples: int) -> list[Result]:
    """通过 through ``operations.act``: random open tasks, and the busiest approver's."""
    from werkzeug.datastructures import MultiDict

    from hall.extensions import db
    from hall.workflow import engine
    from hall.workflow.operations import act

    with app.app_context():
        # Twice what one series needs: the function and the view approve different tasks.
        rows = db.session.execute(
            db.text(
                "SELECT t.application_id, t.engine_id, t.assignee FROM workflow_tasks t "
                "JOIN applications a ON a.id = t.application_id "
                "WHERE t.status = 'open' AND a.status = 'running' AND t.assignee <> :busiest "
                "ORDER BY random() LIMIT :n"
            ),
            {"busiest": busiest, "n": 2 * (samples + WARMUP)},
        ).all()
        theirs = db.session.execute(
            db.text(
                "SELECT t.application_id, t.engine_id, t.assignee FROM workflow_tasks t "
                "JOIN applications a ON a.id = t.application_id "
                "WHERE t.status = 'open' AND a.status = 'running' AND t.assignee = :busiest "
                "ORDER BY random() LIMIT :n"
            ),
            {"busiest": busiest, "n": 2 * (samples + WARMUP)},
        ).all()
        db.session.rollback()

    def runner(tasks: list[Any], count: int) -> Callable[[int], None]:
        # Each task is approved once: the samples take the first ``count``, the warm-up the rest.
        def run(i: int) -> None:
            application_id, engine_id, assignee = tasks[i if i >= 0 else count - 1 - i]
            with app.app_context():
                outcome = act(
                    application_id,
                    engine.Approve(actor=assignee, task_id=engine_id, opinion="同意"),
                )
                db.session.remove()
            if not isinstance(outcome, engine.Outcome):
                raise SystemExit(f"approving task {engine_id} of {application_id}: {outcome}")

        return run

    def poster(tasks: list[Any], count: int) -> Callable[[int], None]:
        # The real view, posted as a browser would: the approver opens the application page
        # and presses 通过 in its form (fields, CSRF token and button taken from the page);
        # signing in and opening the page happen before the clock starts.
        clients: dict[str, Any] = {}
        posts: list[tuple[Any, str, list[tuple[str, str]]]] = []
        for application_id, _engine_id, assignee in tasks[: count + WARMUP]:
            if assignee not in clients:
                clients[assignee] = signed_in_client(app, assignee)
            client = clients[assignee]
            path = f"/applications/{application_id}"
            page = client.get(path)
            if page.status_code != 200:
                raise SystemExit(f"GET {path} answered {page.status_code}")
            posts.append((client, path + "/act", approve_form(page.get_data(as_text=True), path)))

        def run(i: int) -> None:
            client, path, fields = posts[i if i >= 0 else count - 1 - i]
            response = client.post(path, data=MultiDict(fields))
            if response.status_code != 302:
                raise SystemExit(f"POST {path} answered {response.status_code}")

        return run

    results = []
    half = len(rows) // 2
    series = [
        ("act(Approve) random open task", rows[:half], runner),
        ("act(Approve) busiest", theirs[: len(theirs) // 2], runner),
    ]
    if _has_route(app, "/applications/<row_id:application_id>/act"):
        series += [
            ("POST /applications/<id>/act random", rows[half:], poster),
            ("POST /applications/<id>/act busiest", theirs[len(theirs) // 2 :], poster),
        ]
    for name, tasks, make in series:
        count = min(samples, len(tasks) - WARMUP)
        if count < 10:
            continue
        results.append(timed(name, make(tasks, count), count, APPROVE_TARGET_MS))
    return results


class _Forms(HTMLParser):
    """The forms of a page: action, and the fields a browser would send (plus the buttons)."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Collect fields of the current form."""
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append({"action": a.get("action", ""), "fields": [], "buttons": []})
        if not self.forms:
            return
        form = self.forms[-1]
        if tag == "option" and self._select is not None:
            # A select sends its first option unless one is marked selected (good enough
            # here: the 退回到 list is not used by 通过).
            form["fields"].append((self._select, a.get("value", "")))
            self._select = None
        if not a.get("name"):
            return
        kind = a.get("type", "text").lower()
        if tag == "button" or (tag == "input" and kind == "submit"):
            form["buttons"].append((a["name"], a.get("value", "")))
        elif tag == "input" and (kind not in ("checkbox", "radio") or "checked" in a):
            form["fields"].append((a["name"], a.get("value", "")))
        elif tag == "textarea":
            form["fields"].append((a["name"], ""))
        elif tag == "select":
            self._select = a["name"]

    def handle_endtag(self, tag: str) -> None:
        """A select without options sends nothing."""
        if tag == "select":
            self._select = None


def approve_form(html: str, path: str) -> list[tuple[str, str]]:
    """What pressing 通过 on an application page posts: its fields, the opinion 同意 and the
    approve button."""
    parser = _Forms()
    parser.feed(html)
    for form in parser.forms:
        button = next((b for b in form["buttons"] if b[1] == "approve"), None)
        if form["action"] == path + "/act" and button is not None:
            fields = [(k, "同意" if "opinion" in k else v) for k, v in form["fields"]]
            return [*fields, button]
    raise SystemExit(f"no 通过 button on {path}")


def _has_route(app: Any, rule: str) -> bool:
    """Whether the app serves ``rule`` (the to-do centre's views may not be registered yet)."""
    return any(r.rule == rule for r in app.url_map.iter_rules())


def main() -> int:
    """Build or reuse the data, measure, report; exit 1 when a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="1 = 100k users, 1M applications")
    parser.add_argument("--samples", type=int, default=SAMPLES)
    parser.add_argument("--rebuild", action="store_true", help="generate the data again")
    parser.add_argument("--drop", action="store_true", help="drop the database afterwards")
    parser.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE the queries")
    args = parser.parse_args()
    admin_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    sizes = Sizes.of(args.scale)
    load_before = os.getloadavg()
    try:
        url, built = ensure_database(admin_url, sizes, args.rebuild)
    except Unreachable as exc:
        print(f"inbox benchmark: {exc}", file=sys.stderr)
        return 2
    app = make_app(url)
    try:
        if built is None:
            print(f"reusing {database_name(args.scale)} ({sizes.marker()})")
        else:
            print(f"generated {database_name(args.scale)} in {built:.1f} s")
        check_sample(app)
        counts = row_counts(app)
        print("rows: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
        (busy, busy_open), (typical, typical_open) = approvers(app)
        print(f"busiest approver {busy}: {busy_open} open tasks; typical {typical}: {typical_open}")
        people = [("busiest", busy, busy_open), ("typical", typical, typical_open)]
        print(f"{'server time, ms':<46}{'p50':>8}{'p95':>8}{'p99':>8}{'CPU ms':>9}{'target':>7}")
        todo, notes = measure_todo(app, people, args.samples)
        for result in todo:
            print(result.line(), flush=True)
        approve = measure_approve(app, busy, args.samples)
        for result in approve:
            print(result.line(), flush=True)
        for note in notes:
            print(note)
        results = todo + approve
        queries = inbox_queries()
        if queries is not None and (args.explain or any(r.failed for r in todo)):
            from hall.extensions import db

            print(f"EXPLAIN ANALYZE of the to-do queries for {busy}:")
            with captured_sql(app) as seen, app.test_request_context("/inbox"):
                queries.todo_counts(busy)
                queries.todo_page(busy)
                db.session.rollback()
            explain(app, seen)
        load_after = os.getloadavg()
        print(
            f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} "
            f"on {os.cpu_count()} cores (shared machine: wall times include waiting for a CPU; "
            "CPU ms is this process's own cost)"
        )
        return 1 if any(r.failed for r in results) else 0
    finally:
        from hall.extensions import db

        with app.app_context():
            db.engine.dispose()
        if args.drop:
            drop_database(admin_url, database_name(args.scale))


if __name__ == "__main__":
    raise SystemExit(main())
