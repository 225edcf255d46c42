"""审计日志 (/admin/audit): filter, page through and export the audit log (admins only)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from flask import Response, render_template, request, stream_with_context, url_for
from flask.typing import ResponseReturnValue
from flask_babel import lazy_gettext as _l
from sqlalchemy import Select
from sqlalchemy.orm import aliased

from idp.admin.access import console_required
from idp.admin.views import OUTCOME_LABELS, bp
from idp.audit.models import AuditEvent
from idp.audit.operations import record
from idp.directory.models import User
from idp.directory.roles import Role
from idp.extensions import db
from idp.security.operations import CAMPUS_TIME, campus_time

PAGE_SIZE = 50
Actor = aliased(User, name="actor")
Target = aliased(User, name="target")
CSV_HEADER = (
    "time",
    "actor_account",
    "actor_name",
    "target_account",
    "target_name",
    "action",
    "outcome",
    "subject",
    "method",
    "ip",
    "user_agent",
    "request_id",
    "detail",
)


@dataclass
class AuditFilter:
    """The viewer's filters, read from the query string (the same for the page and the CSV)."""

    actor: str = ""
    target: str = ""
    action: str = ""
    outcome: str = ""
    since: str = ""
    until: str = ""

    @classmethod
    def from_args(cls, args: Any) -> AuditFilter:
        """Read and trim the filters; unknown outcomes are dropped."""
        values = {name: (args.get(name) or "").strip()[:100] for name in cls.__annotations__}
        if values["outcome"] not in OUTCOME_LABELS:
            values["outcome"] = ""
        return cls(**values)

    def as_args(self) -> dict[str, str]:
        """The filters that are set, for links (pages, export)."""
        return {k: v for k, v in self.__dict__.items() if v}


def _day(value: str) -> datetime | None:
    """``2024-05-01`` as the start of that day, campus time, in UTC; None when malformed."""
    try:
        day = datetime.strptime(value, "%Y-%m-%d").date()
        # 0001-01-01 parses, but its campus midnight falls before the first day UTC can hold.
        return datetime.combine(day, time.min, tzinfo=CAMPUS_TIME).astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def filtered(filters: AuditFilter) -> tuple[Select[Any], list[Any]]:
    """The events (with actor and target) matching ``filters``, newest first; and input errors."""
    errors: list[Any] = []
    query = (
        db.select(AuditEvent, Actor, Target)
        .outerjoin(Actor, Actor.id == AuditEvent.actor_id)
        .outerjoin(Target, Target.id == AuditEvent.target_id)
    )
    if filters.actor:
        query = query.where(Actor.account == filters.actor)
    if filters.target:
        query = query.where(Target.account == filters.target)
    if filters.action:
        # ``console.`` finds every console action; a full name finds just that one.
        if filters.action.endswith("."):
            escaped = filters.action.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(AuditEvent.action.like(escaped + "%", escape="\\"))
        else:
            query = query.where(AuditEvent.action == filters.action)
    if filters.outcome:
        query = query.where(AuditEvent.outcome == filters.outcome)
    if filters.since:
        start = _day(filters.since)
        if start is None:
            errors.append(_l("开始日期格式应为 YYYY-MM-DD。"))
        else:
            query = query.where(AuditEvent.at >= start)
    if filters.until:
        end = _day(filters.until)
        if end is None:
            errors.append(_l("结束日期格式应为 YYYY-MM-DD。"))
        else:
            query = query.where(AuditEvent.at < end + timedelta(days=1))
    return query.order_by(AuditEvent.at.desc(), AuditEvent.id.desc()), errors


def _row(event: AuditEvent, actor: User | None, target: User | None) -> dict[str, Any]:
    return {
        "at": campus_time(event.at),
        "actor": actor,
        "target": target,
        "action": event.action,
        "outcome": event.outcome,
        "outcome_label": OUTCOME_LABELS.get(event.outcome, event.outcome),
        "subject": event.subject or "",
        "method": event.method or "",
        "ip": event.ip or "",
        "detail": event.detail or "",
    }


@bp.get("/audit")
@console_required(Role.ADMIN)
def audit(user: User) -> ResponseReturnValue:
    """The audit log with filters, 50 events a page."""
    filters = AuditFilter.from_args(request.args)
    page = request.args.get("page", "1")
    number = int(page) if page.isdigit() and 0 < int(page) < 100_000 else 1
    query, errors = filtered(filters)
    rows: list[dict[str, Any]] = []
    more = False
    if not errors:
        found = db.session.execute(query.offset((number - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1))
        items = list(found)
        more = len(items) > PAGE_SIZE
        rows = [_row(*item) for item in items[:PAGE_SIZE]]
    args: dict[str, Any] = dict(filters.as_args())
    return render_template(
        "admin/audit.html",
        filters=filters,
        outcomes=OUTCOME_LABELS,
        rows=rows,
        errors=errors,
        page=number,
        previous_url=url_for("admin.audit", page=number - 1, **args) if number > 1 else None,
        next_url=url_for("admin.audit", page=number + 1, **args) if more else None,
        export_url=url_for("admin.audit_export", **args),
    ), (400 if errors else 200)


#: A cell starting with one of these is a formula to Excel; user agents and typed identifiers
#: reach the log, so such cells are quoted as text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def _csv_line(values: tuple[str, ...]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow([_cell(value) for value in values])
    return buffer.getvalue()


def _iso(moment: datetime) -> str:
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(CAMPUS_TIME).isoformat(timespec="seconds")


@bp.get("/audit.csv")
@console_required(Role.ADMIN)
def audit_export(user: User) -> ResponseReturnValue:
    """The filtered log as CSV, streamed: UTF-8 with a BOM so that Excel reads Chinese."""
    filters = AuditFilter.from_args(request.args)
    query, errors = filtered(filters)
    if errors:
        return render_template("admin/refused.html", message="；".join(str(e) for e in errors)), 400
    record("audit.export", actor=user, target=None, detail=filters.as_args() or None)
    db.session.commit()

    def lines() -> Iterator[str]:
        yield "\ufeff" + _csv_line(CSV_HEADER)
        rows = db.session.execute(query.execution_options(yield_per=500))
        for event, actor, target in rows:
            yield _csv_line(
                (
                    _iso(event.at),
                    actor.account if actor else "",
                    actor.name if actor else "",
                    target.account if target else "",
                    target.name if target else "",
                    event.action,
                    event.outcome,
                    event.subject or "",
                    event.method or "",
                    event.ip or "",
                    event.user_agent or "",
                    event.request_id or "",
                    event.detail or "",
                )
            )

    stamp = datetime.now(CAMPUS_TIME).strftime("%Y%m%d-%H%M")
    return Response(
        stream_with_context(lines()),
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="audit-{stamp}.csv"',
            "Cache-Control": "no-store",
        },
    )
