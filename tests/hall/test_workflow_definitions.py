"""Flow definitions: validation when saved (clear Chinese messages) and safe conditions."""

from __future__ import annotations

from typing import Any

import pytest

from hall.forms.schema import field_names
from hall.workflow.definitions import (
    Condition,
    FlowInvalid,
    choose_branch,
    evaluate_condition,
    parse_flow,
    validate_flow,
)
from hall.workflow.demo import DEMOS


def messages(defn: Any, fields: list[str] | None = None) -> list[str]:
    """The validation messages of a definition."""
    return [str(e) for e in validate_flow(defn, fields)]


def wrap(*nodes: dict[str, Any]) -> dict[str, Any]:
    """A flow with start and end around the nodes."""
    return {"nodes": [{"id": "s", "kind": "start"}, *nodes, {"id": "e", "kind": "end"}]}


def person(node_id: str, **extra: Any) -> dict[str, Any]:
    """An approver node naming one person."""
    return {
        "id": node_id,
        "kind": "approver",
        "approver": {"type": "person", "users": ["bob"]},
        **extra,
    }


@pytest.mark.parametrize("slug", sorted(DEMOS))
def test_demo_flows_from_the_manual_are_valid(slug: str) -> None:
    """教职工因公出国(境)、入校手续、入会申请、学生请假、在读证明 all validate."""
    demo = DEMOS[slug]
    assert validate_flow(demo["flow"], field_names(demo["form"]["ui"])) == []


def test_a_valid_flow_parses_into_positions() -> None:
    """Parsing records where each node sits in the tree."""
    flow = parse_flow(DEMOS["onboarding"]["flow"])
    assert flow.path("staffing") == (
        (None, None, 2),
        ("sign-offs", "branch-organisation", 1),
    )
    assert flow.node("finance").mode == "any"


def test_unknown_kinds_empty_approvers_and_duplicate_ids_are_named() -> None:
    """Each problem names its node, in Chinese."""
    defn = wrap(
        {"id": "x", "kind": "robot"},
        {"id": "a", "kind": "approver", "approver": {"type": "person", "users": []}},
        {"id": "b", "kind": "approver", "approver": {"type": "role", "role": " "}},
        person("a"),
        {"id": "c", "kind": "cc"},
    )
    assert messages(defn) == [
        "节点 x 的类型 robot 未知",
        "节点 a 未设置审批人",
        "节点 b 未设置审批人",
        "节点编号 a 重复",
        "节点 c 未设置抄送人",
    ]


def test_condition_nodes_need_exactly_one_default_branch_and_distinct_priorities() -> None:
    """条件分支: a default branch, priorities, operators from the safe set only."""
    defn = wrap(
        {
            "id": "cond",
            "kind": "condition",
            "branches": [
                {
                    "id": "b1",
                    "priority": 1,
                    "conditions": [{"field": "days", "op": "gt", "value": 3}],
                },
                {
                    "id": "b2",
                    "priority": 1,
                    "conditions": [{"field": "days", "op": "__import__", "value": 1}],
                },
                {
                    "id": "b3",
                    "priority": 2,
                    "conditions": [{"field": "days", "op": "gt", "value": 3}],
                },
            ],
        }
    )
    assert messages(defn, ["days"]) == [
        "条件分支 b2 的优先级与其他分支重复",
        "条件分支 b2 使用了不支持的运算符 __import__",
        "条件分支 b3 与另一分支条件相同，永远不会执行",
        "条件节点 cond 必须有且只有一个默认分支",
    ]


def test_nodes_after_the_end_are_unreachable_and_a_reused_node_is_a_cycle() -> None:
    """Unreachable nodes and cycles (a node object reached twice) are refused."""
    after_end = {
        "nodes": [{"id": "s", "kind": "start"}, {"id": "e", "kind": "end"}, person("late")]
    }
    assert "节点 late 位于结束节点 e 之后，永远不会执行" in messages(after_end)
    assert "流程必须以结束节点结束" in messages(after_end)
    shared = person("loop")
    branch: dict[str, Any] = {"id": "br", "nodes": [shared]}
    looped = wrap(
        {"id": "p", "kind": "parallel", "branches": [branch, {"id": "br2", "nodes": [shared]}]}
    )
    assert "节点 loop 在流程中重复出现，形成环路" in messages(looped)
    assert messages({"nodes": []}) == ["流程至少需要发起人节点和结束节点"]
    assert messages("nodes") == ["流程定义必须是一个对象"]


def test_field_permissions_and_field_references_must_be_valid() -> None:
    """字段权限 must be edit / read / hidden on fields the form has."""
    defn = wrap(
        person("a", permissions={"reason": "write", "ghost": "read"}),
        {"id": "f", "kind": "approver", "approver": {"type": "form_field", "field": "tutor"}},
        person("m", mode="everyone", when_empty="fallback"),
    )
    assert messages(defn, ["reason"]) == [
        "节点 a 的字段 reason 权限 write 无效（可编辑、只读或隐藏）",
        "节点 a 的字段权限引用了表单中不存在的字段 ghost",
        "节点 f 的审批人引用了表单中不存在的字段 tutor",
        "节点 m 的审批方式无效（会签、或签或依次审批）",
        "节点 m 审批人为空时转交备用审批人，但未设置备用审批人",
    ]


def test_start_and_parallel_rules() -> None:
    """The start node comes first; parallel branches are at least two and not empty."""
    defn = wrap(
        {"id": "s2", "kind": "start"},
        {"id": "p", "kind": "parallel", "branches": [{"id": "only", "nodes": []}]},
        {
            "id": "q",
            "kind": "parallel",
            "branches": [{"id": "q1", "nodes": [person("q1a")]}, {"id": "q2", "nodes": []}],
        },
    )
    assert messages(defn) == [
        "发起人节点 s2 只能位于流程开头",
        "节点 p 至少需要两个分支",
        "并行分支 q2 没有任何节点",
    ]
    with pytest.raises(FlowInvalid) as raised:
        parse_flow(defn)
    assert len(raised.value.errors) == 3


@pytest.mark.parametrize(
    ("op", "value", "actual", "holds"),
    [
        ("eq", "病假", "病假", True),
        ("ne", "病假", "事假", True),
        ("gt", 3, 4, True),
        ("gt", 3, 3, False),
        ("ge", 3, 3, True),
        ("lt", 3, 2.5, True),
        ("le", "2024-05-01", "2024-05-01", True),
        ("gt", 3, "4", False),  # mismatched types never hold, never raise
        ("gt", 3, True, False),
        ("in", ["病假", "事假"], "事假", True),
        ("in", ["病假"], "其他", False),
        ("contains", "英文", ["中文", "英文"], True),
        ("contains", "北京", "北京市海淀区", True),
        ("contains", 1, 5, False),
    ],
)
def test_conditions_compare_form_values_safely(
    op: str, value: Any, actual: Any, holds: bool
) -> None:
    """The safe operator set: eq, ne, gt, ge, lt, le, in, contains — no eval."""
    assert evaluate_condition(Condition("x", op, value), {"x": actual}) is holds


def test_missing_value_only_satisfies_not_equal() -> None:
    """An unanswered field matches ``ne`` and nothing else."""
    assert evaluate_condition(Condition("x", "ne", 1), {}) is True
    assert evaluate_condition(Condition("x", "eq", None), {}) is False


def test_branches_are_tried_by_priority_then_the_default() -> None:
    """The first branch by priority whose conditions hold wins; otherwise the default."""
    flow = parse_flow(
        wrap(
            {
                "id": "c",
                "kind": "condition",
                "branches": [
                    {"id": "default", "default": True, "nodes": []},
                    {
                        "id": "over7",
                        "priority": 2,
                        "conditions": [{"field": "days", "op": "gt", "value": 7}],
                        "nodes": [],
                    },
                    {
                        "id": "over3",
                        "priority": 1,
                        "conditions": [{"field": "days", "op": "gt", "value": 3}],
                        "nodes": [],
                    },
                ],
            }
        )
    )
    node = flow.node("c")
    assert choose_branch(node, {"days": 10}).id == "over3"
    assert choose_branch(node, {"days": 2}).id == "default"
