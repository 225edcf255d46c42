"""请假天数 is counted from 请假时间, never typed.

The demo 学生请假 flow asks the college's dean when the leave is longer than 3 days. When the
student typed the count beside the dates, "1 day" beside ten days of dates went round the dean.
A ``number`` field with ``days_of`` is now filled by the server from its date range (both days
counted) on every save, submission and approver edit; the page shows it read-only, counted
again by day-count.js as the dates change.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from hall.extensions import db
from hall.forms.schema import (
    apply_computed,
    computed_fields,
    range_days,
    validate_definition,
)
from hall.workflow import engine
from hall.workflow import operations as ops
from hall.workflow.demo import DEMOS
from hall.workflow.models import Task
from tests.hall.test_apply import (  # noqa: F401 - ``hall`` is a fixture
    ADMIN,
    COUNSELLOR,
    STUDENT,
    applications,
    apply_path,
    field_block,
    hall,
    leave,
    post_form,
    signed_in,
)

LEAVE = DEMOS["student-leave"]["form"]


@pytest.fixture
def app(hall: Flask) -> Flask:  # noqa: F811 - test_apply's fixture of the demo catalogue
    return hall


def test_the_count_includes_both_days_and_needs_two_real_dates_in_order() -> None:
    assert range_days({"start": "2026-12-01", "end": "2026-12-01"}) == 1
    assert range_days({"start": "2026-12-30", "end": "2027-01-02"}) == 4
    assert range_days({"start": "2028-02-28", "end": "2028-03-01"}) == 3  # a leap year
    for wrong in (
        {"start": "2026-12-05", "end": "2026-12-01"},
        {"start": "2026-12-01"},
        {"start": "2026-13-01", "end": "2026-13-02"},
        "2026-12-01",
        None,
    ):
        assert range_days(wrong) is None


def test_a_posted_count_is_ignored_and_the_dates_decide() -> None:
    assert computed_fields(LEAVE["ui"]) == {"days": "period"}
    posted = {"period": {"start": "2026-12-01", "end": "2026-12-10"}, "days": 1}
    assert apply_computed(LEAVE["ui"], posted)["days"] == 10
    assert "days" not in apply_computed(LEAVE["ui"], {"days": 1, "period": {"start": "x"}})


@pytest.mark.parametrize(
    "fields",
    [
        {"days": {"widget": "input", "days_of": "period"}},  # not a number
        {"days": {"widget": "number", "days_of": "reason"}},  # not a date range
        {"days": {"widget": "number", "days_of": "nowhere"}},
    ],
)
def test_a_definition_whose_count_cannot_be_made_is_refused(fields: dict[str, Any]) -> None:
    ui = {**LEAVE["ui"], "fields": {**LEAVE["ui"]["fields"], **fields}}
    assert any("days_of" in problem for problem in validate_definition(LEAVE["schema"], ui))
    assert validate_definition(LEAVE["schema"], LEAVE["ui"]) == []


def test_one_day_typed_beside_ten_days_of_dates_still_goes_to_the_dean(app: Flask) -> None:
    client = signed_in(app, STUDENT)
    posted = leave(days="1", **{"period-start": "2026-12-01", "period-end": "2026-12-10"})
    done = post_form(client, apply_path(app), posted)
    assert done.status_code == 302, done.text
    (application,) = applications(app)
    assert application.data["days"] == 10
    with app.app_context():
        task = db.session.scalars(select(Task).where(Task.status == "open")).one()
        assert task.assignee == COUNSELLOR
        approved = ops.act(application.id, engine.Approve(COUNSELLOR, task.engine_id, "同意"))
        assert isinstance(approved, engine.Outcome)
        # Past 3 days: 学院院长审批 (nobody holds 院长 here, so the flow's fallback has it).
        (dean,) = db.session.scalars(select(Task).where(Task.status == "open")).all()
        assert dean.node_id == "dean" and dean.assignee == ADMIN


def test_a_leave_longer_than_the_form_allows_is_refused_on_the_count(app: Flask) -> None:
    """70 days of dates: 请假天数 says it may not pass 60; the dates typed come back."""
    client = signed_in(app, STUDENT)
    refused = post_form(
        client,
        apply_path(app),
        leave(**{"period-start": "2026-12-01", "period-end": "2027-02-08"}),
    )
    assert refused.status_code == 422
    days = field_block(refused.text, "days")
    assert "不能大于60" in days and ">70<" in days
    assert 'value="2027-02-08"' in refused.text
    assert applications(app) == []


def test_the_form_shows_the_count_read_only_with_its_script(app: Flask) -> None:
    client = signed_in(app, STUDENT)
    page = client.get(apply_path(app)).text
    days = field_block(page, "days")
    assert 'name="days"' not in days and 'data-days-of="period"' in days
    assert "按“请假时间”自动计算" in days
    assert "/forms-static/day-count.js" in page
    with client.get("/forms-static/day-count.js") as script:
        assert script.status_code == 200 and "data-days-of" in script.get_data(as_text=True)
    english = client.get(apply_path(app), headers={"Accept-Language": "en"}).text
    assert "Counted from" in field_block(english, "days")
