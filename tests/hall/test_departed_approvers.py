"""People named in a flow or a form who have since left get no new tasks.

A flow names its approvers and its fallback by 学工号, and a form's person field names whoever
the applicant chose; either may leave the university later (the directory sync marks them
inactive). A task of theirs would wait for someone who never signs in again: they are treated as
role holders who left already are — the others named keep the task, and with nobody left the
node goes to its fallback or is skipped, in the history for everyone to see.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from hall.auth.models import HallUser
from hall.extensions import db
from hall.workflow import engine as wf
from hall.workflow import operations as ops
from hall.workflow.resolver import DirectoryResolver
from tests.hall.workflow_support import Directory, approver, context, flow, holders, ok


@pytest.fixture
def people(hall_app: Flask) -> Iterator[Flask]:
    """alice applies; carol and erin work here; gone has left."""
    with hall_app.test_request_context():
        for account, active in [("alice", True), ("carol", True), ("erin", True), ("gone", False)]:
            db.session.add(
                HallUser(
                    sub=f"sub-{account}", account=account, name=account, kind="staff", active=active
                )
            )
        db.session.commit()
    yield hall_app


def _submit(f: Any, data: dict[str, Any] | None = None) -> wf.Outcome:
    return ok(wf.submit(f, "alice", data or {}, ops.engine_context()))


def test_the_resolver_drops_only_people_marked_as_gone(people: Flask) -> None:
    """Order kept; someone the hall has not seen yet (a new colleague) stays."""
    with people.test_request_context():
        resolver = DirectoryResolver()
        assert resolver.present(["erin", "gone", "newcomer", "carol"]) == [
            "erin",
            "newcomer",
            "carol",
        ]
        assert resolver.present([]) == []


def test_a_named_approver_who_left_gets_no_task_and_the_others_keep_theirs(
    people: Flask,
) -> None:
    f = flow(approver("office", ["gone", "carol"]))
    with people.test_request_context():
        assert holders(_submit(f).state) == {"office": ["carol"]}


def test_a_named_approver_who_left_alone_sends_the_node_to_its_fallback(people: Flask) -> None:
    f = flow(approver("office", ["gone"], when_empty="fallback", fallback=["erin"]))
    with people.test_request_context():
        result = _submit(f)
        assert holders(result.state) == {"office": ["erin"]}
        assert wf.EventKind.FALLBACK_USED in [e.kind for e in result.events]


def test_a_fallback_who_left_is_no_fallback(people: Flask) -> None:
    """Nobody left to ask at all: the node is skipped, and the history says so."""
    f = flow(
        approver("office", ["gone"], when_empty="fallback", fallback=["gone"]),
        approver("dean", ["carol"]),
    )
    with people.test_request_context():
        result = _submit(f)
        assert holders(result.state) == {"dean": ["carol"]}
        skipped = [e for e in result.events if e.kind is wf.EventKind.NODE_SKIPPED]
        assert [e.node_id for e in skipped] == ["office"]


def test_a_person_field_naming_someone_who_left_since_names_nobody() -> None:
    """The engine asks the directory at the moment the node is reached (a stand-in here): the
    form was valid when it was sent, the person left before the application got there."""
    f = flow(
        {
            "id": "tutor",
            "kind": "approver",
            "name": "导师",
            "approver": {"type": "form_field", "field": "tutor"},
            "when_empty": "fallback",
            "fallback": ["erin"],
        }
    )
    here = context(Directory())
    gone = context(Directory(left=["gone"]))
    assert holders(ok(wf.submit(f, "alice", {"tutor": "gone"}, here)).state) == {"tutor": ["gone"]}
    assert holders(ok(wf.submit(f, "alice", {"tutor": "gone"}, gone)).state) == {"tutor": ["erin"]}
