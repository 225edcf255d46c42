"""Helpers of the workflow engine's tests: a directory stand-in and short ways to act."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from hall.workflow import engine as wf
from hall.workflow.definitions import Flow, parse_flow

NOW = datetime(2026, 11, 24, 9, 30)


class Directory:
    """A resolver over fixed tables: roles, department heads, supervisor chains."""

    def __init__(
        self,
        roles: Mapping[str, Sequence[str]] | None = None,
        heads: Mapping[str, Sequence[str]] | None = None,
        supervisors: Mapping[str, Sequence[str]] | None = None,
        left: Sequence[str] = (),
    ) -> None:
        self.roles = roles or {}
        self.heads = heads or {}
        self.supervisors = supervisors or {}
        self.left = set(left)

    def users_with_role(self, role: str, applicant: str) -> list[str]:
        """Holders of a role."""
        return list(self.roles.get(role, ()))

    def department_head(self, applicant: str) -> list[str]:
        """The applicant's department head."""
        return list(self.heads.get(applicant, ()))

    def supervisor(self, applicant: str, level: int) -> list[str]:
        """The supervisor ``level`` steps above the applicant."""
        chain = self.supervisors.get(applicant, ())
        return [chain[level - 1]] if len(chain) >= level else []

    def present(self, users: Sequence[str]) -> list[str]:
        """Those of ``users`` not among ``left``."""
        return [user for user in users if user not in self.left]


def context(directory: Directory | None = None, **kwargs: Any) -> wf.Context:
    """A context at a fixed time."""
    return wf.Context(directory or Directory(), kwargs.pop("at", NOW), **kwargs)


def approver(node_id: str, users: Sequence[str], mode: str = "all", **extra: Any) -> dict[str, Any]:
    """An approver node naming people."""
    return {
        "id": node_id,
        "kind": "approver",
        "name": node_id,
        "approver": {"type": "person", "users": list(users)},
        "mode": mode,
        **extra,
    }


def flow(*nodes: dict[str, Any], **settings: Any) -> Flow:
    """A parsed flow: start, the given nodes, end."""
    return parse_flow(
        {
            "nodes": [{"id": "start", "kind": "start"}, *nodes, {"id": "end", "kind": "end"}],
            "settings": settings,
        }
    )


def parallel(node_id: str, **branches: list[dict[str, Any]]) -> dict[str, Any]:
    """A parallel node with named branches."""
    return {
        "id": node_id,
        "kind": "parallel",
        "branches": [{"id": name, "nodes": nodes} for name, nodes in branches.items()],
    }


def ok(result: wf.Outcome | wf.Refusal) -> wf.Outcome:
    """The outcome of an action that must be accepted."""
    assert isinstance(result, wf.Outcome), result
    return result


def refused(result: wf.Outcome | wf.Refusal, code: wf.RefusalCode) -> wf.Refusal:
    """The refusal of an action that must be refused with ``code``."""
    assert isinstance(result, wf.Refusal), result
    assert result.code is code
    return result


def task_of(state: wf.ApplicationState, assignee: str, node_id: str | None = None) -> wf.Task:
    """The open task of one person (at one node)."""
    matches = [
        t
        for t in state.tasks
        if t.assignee == assignee and (node_id is None or t.node_id == node_id)
    ]
    assert len(matches) == 1, (assignee, node_id, state.tasks)
    return matches[0]


def holders(state: wf.ApplicationState) -> dict[str, list[str]]:
    """Open tasks as node id → assignees."""
    result: dict[str, list[str]] = {}
    for t in state.tasks:
        result.setdefault(t.node_id, []).append(t.assignee)
    return result
