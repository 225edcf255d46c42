"""Property-based tests of the engine: any allowed actions on any valid flow stay consistent."""

from __future__ import annotations

import itertools
from datetime import date
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hall.workflow import engine as wf
from hall.workflow.definitions import parse_flow, validate_flow
from tests.hall.workflow_support import Directory, context

USERS = ["u1", "u2", "u3", "u4", "u5"]
DIRECTORY = Directory(roles={"staff": ["u3", "u4"], "nobody": []}, heads={"alice": ["u5"]})
# No example database: runs stay independent of earlier ones and write nothing to the tree.
SETTINGS = settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


def approver_nodes() -> st.SearchStrategy[dict[str, Any]]:
    """Approver nodes over named people, a role, the department head or nobody at all."""
    spec = st.one_of(
        st.lists(st.sampled_from(USERS), min_size=1, max_size=3, unique=True).map(
            lambda users: {"type": "person", "users": users}
        ),
        st.just({"type": "role", "role": "staff"}),
        st.just({"type": "role", "role": "nobody"}),
        st.just({"type": "department_head"}),
    )
    return st.builds(
        lambda spec, mode, auto: {
            "kind": "approver",
            "approver": spec,
            "mode": mode,
            "auto_skip": auto,
        },
        spec,
        st.sampled_from(["all", "any", "sequential"]),
        st.booleans(),
    )


def cc_nodes() -> st.SearchStrategy[dict[str, Any]]:
    """CC nodes."""
    return st.just({"kind": "cc", "recipients": {"type": "person", "users": ["u1"]}})


def sequences(
    children: st.SearchStrategy[dict[str, Any]], min_size: int
) -> st.SearchStrategy[list[dict[str, Any]]]:
    """A short list of nodes."""
    return st.lists(children, min_size=min_size, max_size=3)


def node_trees() -> st.SearchStrategy[dict[str, Any]]:
    """Approver, CC, condition and parallel nodes nested a few levels deep."""
    leaves = st.one_of(approver_nodes(), approver_nodes(), cc_nodes())

    def extend(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
        condition = st.builds(
            lambda branches, default, op, value: {
                "kind": "condition",
                "branches": [
                    {
                        "priority": i,
                        "conditions": [{"field": "n", "op": op, "value": value + i}],
                        "nodes": nodes,
                    }
                    for i, nodes in enumerate(branches)
                ]
                + [{"default": True, "nodes": default}],
            },
            st.lists(sequences(children, 0), min_size=1, max_size=2),
            sequences(children, 0),
            st.sampled_from(["eq", "ne", "gt", "ge", "lt", "le"]),
            st.integers(0, 4),
        )
        parallel = st.builds(
            lambda branches: {
                "kind": "parallel",
                "branches": [{"nodes": nodes} for nodes in branches],
            },
            st.lists(sequences(children, 1), min_size=2, max_size=3),
        )
        return st.one_of(children, condition, parallel)

    return st.recursive(leaves, extend, max_leaves=8)


def number(tree: Any, counter: itertools.count[int]) -> Any:
    """Give every node and branch a unique id."""
    if isinstance(tree, list):
        return [number(t, counter) for t in tree]
    if isinstance(tree, dict):
        result = {k: number(v, counter) for k, v in tree.items()}
        if "kind" in tree or "nodes" in tree:
            result["id"] = f"n{next(counter)}"
        return result
    return tree


@st.composite
def flows(draw: st.DrawFn) -> dict[str, Any]:
    """A valid flow definition."""
    body = draw(st.lists(node_trees(), min_size=1, max_size=4))
    settings_ = draw(
        st.fixed_dictionaries(
            {
                "when_empty": st.sampled_from(["skip", "fallback"]),
                "auto_skip_same_approver": st.booleans(),
            }
        )
    )
    settings_["fallback"] = ["u9"]
    defn = number(
        {
            "nodes": [{"kind": "start"}, *body, {"kind": "end"}],
            "settings": settings_,
        },
        itertools.count(),
    )
    assert validate_flow(defn) == []
    return defn


CTX = context(
    DIRECTORY, delegations={"u2": [wf.Delegation("u6", date(2026, 1, 1), date(2026, 12, 31))]}
)


def allowed_actions(flow: Any, state: wf.ApplicationState) -> list[wf.Action]:
    """Every action some user may take now (a representative of each kind)."""
    actions: list[wf.Action] = []
    if state.status is wf.ApplicationStatus.RETURNED:
        actions.append(wf.Resubmit("alice", {"n": 2}))
    if state.status is wf.ApplicationStatus.RETURNED or (
        state.status is wf.ApplicationStatus.RUNNING and not state.acted
    ):
        actions.append(wf.Withdraw("alice"))
    if state.status is wf.ApplicationStatus.RUNNING:
        actions.append(wf.Urge("alice"))
    for task in state.tasks:
        who = task.assignee
        actions += [
            wf.Approve(who, task.id, "同意"),
            wf.Approve(who, task.id, "同意"),
            wf.Approve(who, task.id, "同意"),
            wf.Return(who, task.id, "退回"),
            wf.Terminate(who, task.id, "中止"),
            wf.Transfer(who, task.id, "u7"),
            wf.AddSigner(who, task.id, "u8", "before"),
            wf.AddSigner(who, task.id, "u8", "after", "同意"),
        ]
        actions += [
            wf.Return(who, task.id, "退回", to=target)
            for target in wf.return_targets(flow, state, task.node_id)
        ]
    return actions


def check_step(flow: Any, before: wf.ApplicationState, outcome: wf.Outcome) -> None:
    """Invariants of one accepted action."""
    after = outcome.state
    assert wf.inconsistencies(flow, after) == []
    # History only grows: what happened stays, in order.
    assert after.history[: len(before.history)] == before.history
    # Tasks do not vanish or appear unannounced: old - closed == new - created.
    closed = {c.task for c in outcome.closed}
    created = set(outcome.created)
    assert closed <= set(before.tasks)
    assert created <= set(after.tasks)
    assert set(before.tasks) - closed == set(after.tasks) - created
    if after.status is not wf.ApplicationStatus.RUNNING:
        assert after.tasks == () and after.active == ()
    if after.status is wf.ApplicationStatus.APPROVED:
        assert after.history[-1].kind is wf.EventKind.FINISHED


@SETTINGS
@given(defn=flows(), n=st.integers(0, 6), data=st.data())
def test_any_sequence_of_allowed_actions_keeps_the_application_consistent(
    defn: dict[str, Any], n: int, data: st.DataObject
) -> None:
    """Random flows and random allowed actions: no orphaned task, never finished and pending."""
    flow = parse_flow(defn)
    first = wf.submit(flow, "alice", {"n": n}, CTX)
    assert isinstance(first, wf.Outcome)
    state = first.state
    assert wf.inconsistencies(flow, state) == []
    for _ in range(25):
        actions = allowed_actions(flow, state)
        if not actions:
            assert state.status in wf.FINISHED
            break
        action = data.draw(st.sampled_from(actions))
        result = wf.apply(flow, state, action, CTX)
        if isinstance(result, wf.Refusal):
            # Only signer/transfer targets already busy at the node may be refused here.
            assert result.code is wf.RefusalCode.INVALID_SIGNER, (action, result)
            continue
        check_step(flow, state, result)
        state = result.state


@SETTINGS
@given(defn=flows(), n=st.integers(0, 6))
def test_approving_every_task_always_finishes_the_application(defn: dict[str, Any], n: int) -> None:
    """No stall: if everyone approves, every valid flow ends approved."""
    flow = parse_flow(defn)
    first = wf.submit(flow, "alice", {"n": n}, CTX)
    assert isinstance(first, wf.Outcome)
    state = first.state
    for _ in range(200):
        if state.status is not wf.ApplicationStatus.RUNNING:
            break
        task = state.tasks[0]
        outcome = wf.apply(flow, state, wf.Approve(task.assignee, task.id, "同意"), CTX)
        assert isinstance(outcome, wf.Outcome)
        check_step(flow, state, outcome)
        state = outcome.state
    assert state.status is wf.ApplicationStatus.APPROVED


@SETTINGS
@given(defn=flows(), data=st.data())
def test_actions_by_the_wrong_person_are_refused_and_change_nothing(
    defn: dict[str, Any], data: st.DataObject
) -> None:
    """Someone without the task, or the applicant withdrawing too late, is refused."""
    flow = parse_flow(defn)
    first = wf.submit(flow, "alice", {"n": 1}, CTX)
    assert isinstance(first, wf.Outcome)
    state = first.state
    for task in state.tasks:
        intruder = data.draw(st.sampled_from(["mallory", "alice"]))
        result = wf.apply(flow, state, wf.Approve(intruder, task.id, "同意"), CTX)
        if intruder != task.assignee:
            assert isinstance(result, wf.Refusal)
            assert result.code is wf.RefusalCode.NOT_YOUR_TURN
