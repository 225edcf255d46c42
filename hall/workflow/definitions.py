"""Flow definitions (审批流程): the node tree format, parsing and condition evaluation.

A flow is a JSON object ``{"nodes": [...], "settings": {...}}`` in the DingTalk / Feishu style:
the top-level ``nodes`` run in order from a ``start`` node to an ``end`` node; ``condition`` and
``parallel`` nodes hold ``branches``, each with its own ``nodes``. Nodes never refer to each
other by id, so a tree cannot jump backwards; ``validate_flow`` (in ``validation``) still rejects
a node object that appears twice (a cycle when built in code) and nodes that can never run.

Node kinds (``kind``):

* ``start`` — the applicant; ``permissions`` are the applicant's field permissions.
* ``approver`` — ``approver`` spec (see ``APPROVER_TYPES``), ``mode`` ``all`` (会签) /
  ``any`` (或签) / ``sequential`` (依次), ``permissions``, optional ``when_empty``
  (``skip`` | ``fallback``) with ``fallback`` user ids, optional ``auto_skip``.
* ``cc`` — ``recipients`` spec, notified without a task (抄送).
* ``condition`` — ``branches`` with ``priority`` (smaller first), ``conditions``
  (``[{"field", "op", "value"}]``, all must hold) and exactly one ``default`` branch.
* ``parallel`` — ``branches`` that all run; the flow continues when every branch is done.
* ``end``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hall.workflow.validation import (
    APPROVER_TYPES,
    EMPTY_ACTIONS,
    MODES,
    N_,
    NODE_KINDS,
    OPERATORS,
    PERMISSIONS,
    FlowError,
    validate_flow,
)

__all__ = [
    "APPROVER_TYPES",
    "EMPTY_ACTIONS",
    "MODES",
    "NODE_KINDS",
    "N_",
    "OPERATORS",
    "PERMISSIONS",
    "ApproverSpec",
    "Branch",
    "Condition",
    "Flow",
    "FlowError",
    "FlowInvalid",
    "FlowSettings",
    "Node",
    "Position",
    "choose_branch",
    "evaluate_condition",
    "field_permissions",
    "parse_flow",
    "validate_flow",
]


class FlowInvalid(ValueError):
    """Raised by ``parse_flow`` when a definition does not validate."""

    def __init__(self, errors: Sequence[FlowError]) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = list(errors)


@dataclass(frozen=True)
class ApproverSpec:
    """Who an approver or CC node addresses, before resolution to user ids."""

    type: str
    users: tuple[str, ...] = ()
    role: str = ""
    level: int = 1
    field: str = ""


@dataclass(frozen=True)
class Condition:
    """One comparison of a form value with a constant."""

    field: str
    op: str
    value: Any


@dataclass(frozen=True)
class Branch:
    """A branch of a condition or parallel node."""

    id: str
    name: str
    nodes: tuple[Node, ...]
    priority: int = 0
    default: bool = False
    conditions: tuple[Condition, ...] = ()


@dataclass(frozen=True)
class Node:
    """A node of the flow tree."""

    id: str
    kind: str
    name: str = ""
    approver: ApproverSpec | None = None
    mode: str = "all"
    permissions: Mapping[str, str] = field(default_factory=dict)
    when_empty: str = ""
    fallback: tuple[str, ...] = ()
    auto_skip: bool | None = None
    branches: tuple[Branch, ...] = ()


@dataclass(frozen=True)
class FlowSettings:
    """Flow-wide defaults."""

    #: What an approver node that resolves to nobody does: skip it, or go to ``fallback``.
    when_empty: str = "skip"
    fallback: tuple[str, ...] = ()
    #: Approve automatically for someone who approved the previous approver node (去重).
    auto_skip_same_approver: bool = False


#: Where a node sits: its sequence (container node id and branch id, None at the top) and index.
@dataclass(frozen=True)
class Position:
    """The sequence holding a node and the node's index in it."""

    container: str | None
    branch: str | None
    index: int


@dataclass(frozen=True)
class Flow:
    """A parsed, valid flow definition with lookup tables."""

    nodes: tuple[Node, ...]
    settings: FlowSettings
    by_id: Mapping[str, Node]
    positions: Mapping[str, Position]
    sequences: Mapping[tuple[str | None, str | None], tuple[Node, ...]]

    def node(self, node_id: str) -> Node:
        """The node with this id."""
        return self.by_id[node_id]

    def sequence(self, container: str | None, branch: str | None) -> tuple[Node, ...]:
        """The nodes of the top level (None, None) or of one branch."""
        return self.sequences[(container, branch)]

    def path(self, node_id: str) -> tuple[tuple[str | None, str | None, int], ...]:
        """Steps from the top to the node: (container, branch, index) at each level."""
        steps: list[tuple[str | None, str | None, int]] = []
        current: str | None = node_id
        while current is not None:
            pos = self.positions[current]
            steps.append((pos.container, pos.branch, pos.index))
            current = pos.container
        return tuple(reversed(steps))

    def approver_nodes(self) -> list[Node]:
        """Every approver node, in tree order."""
        return [n for n in self.by_id.values() if n.kind == "approver"]


# --------------------------------------------------------------------------- parsing


def parse_flow(defn: Any, form_fields: Collection[str] | None = None) -> Flow:
    """A validated, typed ``Flow`` from its JSON form; raises ``FlowInvalid``."""
    # Storage limits are checked when a flow is saved; a copy already stored is read as is.
    errors = validate_flow(defn, form_fields, storable=False)
    if errors:
        raise FlowInvalid(errors)
    by_id: dict[str, Node] = {}
    positions: dict[str, Position] = {}
    sequences: dict[tuple[str | None, str | None], tuple[Node, ...]] = {}
    nodes = _parse_sequence(defn["nodes"], None, None, by_id, positions, sequences)
    raw = defn.get("settings", {})
    settings = FlowSettings(
        when_empty=raw.get("when_empty", "skip"),
        fallback=tuple(raw.get("fallback", [])),
        auto_skip_same_approver=raw.get("auto_skip_same_approver", False),
    )
    return Flow(nodes, settings, by_id, positions, sequences)


def _parse_sequence(
    raw_nodes: list[Mapping[str, Any]],
    container: str | None,
    branch: str | None,
    by_id: dict[str, Node],
    positions: dict[str, Position],
    sequences: dict[tuple[str | None, str | None], tuple[Node, ...]],
) -> tuple[Node, ...]:
    nodes: list[Node] = []
    for index, raw in enumerate(raw_nodes):
        node_id = raw["id"]
        branches = tuple(
            Branch(
                id=b["id"],
                name=b.get("name", ""),
                nodes=_parse_sequence(
                    b.get("nodes", []), node_id, b["id"], by_id, positions, sequences
                ),
                priority=b.get("priority", 0),
                default=b.get("default", False) is True,
                conditions=tuple(
                    Condition(c["field"], c["op"], c["value"]) for c in b.get("conditions", [])
                ),
            )
            for b in raw.get("branches", [])
        )
        spec_raw = raw.get("approver") if raw["kind"] == "approver" else raw.get("recipients")
        spec = (
            ApproverSpec(
                type=spec_raw["type"],
                users=tuple(spec_raw.get("users", [])),
                role=spec_raw.get("role", ""),
                level=spec_raw.get("level", 1),
                field=spec_raw.get("field", ""),
            )
            if isinstance(spec_raw, Mapping)
            else None
        )
        node = Node(
            id=node_id,
            kind=raw["kind"],
            name=raw.get("name", ""),
            approver=spec,
            mode=raw.get("mode", "all"),
            permissions=dict(raw.get("permissions", {})),
            when_empty=raw.get("when_empty", ""),
            fallback=tuple(raw.get("fallback", [])),
            auto_skip=raw.get("auto_skip"),
            branches=branches,
        )
        by_id[node_id] = node
        positions[node_id] = Position(container, branch, index)
        nodes.append(node)
    result = tuple(nodes)
    sequences[(container, branch)] = result
    return result


def field_permissions(
    flow: Flow, node_id: str, fields: Collection[str], default: str = "read"
) -> dict[str, str]:
    """Each field's permission at a node; unlisted fields get ``default`` (the start: edit)."""
    node = flow.node(node_id)
    fallback = "edit" if node.kind == "start" and default == "read" else default
    return {name: node.permissions.get(name, fallback) for name in fields}


# --------------------------------------------------------------------------- conditions


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _comparable(left: Any, right: Any) -> bool:
    return (_is_number(left) and _is_number(right)) or (
        isinstance(left, str) and isinstance(right, str)
    )


def evaluate_condition(condition: Condition, data: Mapping[str, Any]) -> bool:
    """Whether one condition holds for the form values; mismatched types never hold."""
    if condition.field not in data:
        return condition.op == "ne"
    actual = data[condition.field]
    expected = condition.value
    op = condition.op
    if op == "eq":
        return bool(actual == expected)
    if op == "ne":
        return bool(actual != expected)
    if op in ("gt", "ge", "lt", "le"):
        if not _comparable(actual, expected):
            return False
        if op == "gt":
            return bool(actual > expected)
        if op == "ge":
            return bool(actual >= expected)
        if op == "lt":
            return bool(actual < expected)
        return bool(actual <= expected)
    if op == "in":
        return isinstance(expected, list) and actual in expected
    if op == "contains":
        if isinstance(actual, str) and isinstance(expected, str):
            return expected in actual
        if isinstance(actual, list):
            return expected in actual
    return False


def choose_branch(node: Node, data: Mapping[str, Any]) -> Branch:
    """The branch a condition node takes: the first by priority whose conditions all hold."""
    for branch in sorted((b for b in node.branches if not b.default), key=lambda b: b.priority):
        if all(evaluate_condition(c, data) for c in branch.conditions):
            return branch
    return next(b for b in node.branches if b.default)
