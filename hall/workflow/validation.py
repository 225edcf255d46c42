"""Checking a flow definition when it is saved: every problem, in Chinese, with its node id.

The format is described in ``hall.workflow.definitions``; nodes never refer to each other by
id, so a cycle can only be a node object reached twice (a definition built in code), and an
unreachable node is one after the end or a condition branch that can never be chosen.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any


def N_(message: str) -> str:
    """Mark a message for extraction; it is translated where it is shown."""
    return message


NODE_KINDS = ("start", "approver", "cc", "condition", "parallel", "end")
APPROVER_TYPES = (
    "person",  # named people: {"type": "person", "users": ["u1", ...]}
    "role",  # everyone holding a role: {"type": "role", "role": "finance-officer"}
    "department_head",  # the head of the applicant's department
    "supervisor",  # the applicant's N-level supervisor: {"type": "supervisor", "level": 2}
    "form_field",  # the person (or people) in a form field: {"type": "form_field", "field": "x"}
    "applicant_choice",  # chosen by the applicant when submitting (自选审批人)
)
MODES = ("all", "any", "sequential")
PERMISSIONS = ("edit", "read", "hidden")
OPERATORS = ("eq", "ne", "gt", "ge", "lt", "le", "in", "contains")
EMPTY_ACTIONS = ("skip", "fallback")
MAX_DEPTH = 16
MAX_SUPERVISOR_LEVEL = 10
#: Lengths of the columns node ids, node names and people are stored in (tasks, history).
MAX_ID = 64
MAX_NAME = 200


@dataclass(frozen=True)
class FlowError:
    """One problem in a flow definition: a Chinese message (msgid) with its parameters."""

    node_id: str | None
    message: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        """The message with its parameters filled in (untranslated)."""
        return self.message % dict(self.params) if self.params else self.message


def validate_flow(
    defn: Any, form_fields: Collection[str] | None = None, *, storable: bool = True
) -> list[FlowError]:
    """Every problem of a flow definition (empty when valid); ``form_fields`` checks names.

    ``storable`` also checks that ids, names and people fit their columns (a new definition;
    a flow already copied onto applications is read as it is).
    """
    errors: list[FlowError] = []
    if not isinstance(defn, Mapping):
        return [FlowError(None, N_("流程定义必须是一个对象"))]
    nodes = defn.get("nodes")
    if not isinstance(nodes, list) or not nodes:
        return [FlowError(None, N_("流程至少需要发起人节点和结束节点"))]
    _check_settings(defn.get("settings", {}), errors)
    seen_ids: set[str] = set()
    seen_objects: set[int] = set()
    _check_sequence(nodes, True, 0, form_fields, seen_ids, seen_objects, errors)
    if storable:
        settings = defn.get("settings")
        if isinstance(settings, Mapping):
            _check_people_lengths(None, settings.get("fallback"), errors)
        _check_lengths(nodes, 0, errors)
    return errors


def _check_lengths(nodes: Any, depth: int, errors: list[FlowError]) -> None:
    """Ids, names and people too long to be stored (a task or history row would fail)."""
    if not isinstance(nodes, list) or depth > MAX_DEPTH:
        return
    for raw in nodes:
        if not isinstance(raw, Mapping) or not isinstance(raw.get("id"), str):
            continue
        node_id = raw["id"]
        if len(node_id) > MAX_ID:
            errors.append(
                FlowError(
                    node_id[:MAX_ID],
                    N_("节点编号 %(id)s 过长（最多%(n)s个字符）"),
                    {"id": node_id[:MAX_ID] + "…", "n": MAX_ID},
                )
            )
        name = raw.get("name", "")
        if not isinstance(name, str) or len(name) > MAX_NAME:
            errors.append(
                FlowError(
                    node_id,
                    N_("节点 %(id)s 的名称必须是文字，最多%(n)s个字符"),
                    {"id": node_id[:MAX_ID], "n": MAX_NAME},
                )
            )
        _check_people_lengths(node_id, raw.get("fallback"), errors)
        for key in ("approver", "recipients"):
            spec = raw.get(key)
            if isinstance(spec, Mapping):
                _check_people_lengths(node_id, spec.get("users"), errors)
        branches = raw.get("branches")
        for branch in branches if isinstance(branches, list) else []:
            if not isinstance(branch, Mapping):
                continue
            branch_id = branch.get("id")
            if isinstance(branch_id, str) and len(branch_id) > MAX_ID:
                errors.append(
                    FlowError(
                        branch_id[:MAX_ID],
                        N_("节点编号 %(id)s 过长（最多%(n)s个字符）"),
                        {"id": branch_id[:MAX_ID] + "…", "n": MAX_ID},
                    )
                )
            _check_lengths(branch.get("nodes"), depth + 1, errors)


def _check_people_lengths(node_id: str | None, users: Any, errors: list[FlowError]) -> None:
    for user in users if isinstance(users, list) else []:
        if isinstance(user, str) and len(user) > MAX_ID:
            errors.append(
                FlowError(
                    node_id,
                    N_("学工号 %(user)s 过长（最多%(n)s个字符）"),
                    {"user": user[:MAX_ID] + "…", "n": MAX_ID},
                )
            )


def _check_settings(settings: Any, errors: list[FlowError]) -> None:
    if not isinstance(settings, Mapping):
        errors.append(FlowError(None, N_("流程设置必须是一个对象")))
        return
    when_empty = settings.get("when_empty", "skip")
    if when_empty not in EMPTY_ACTIONS:
        errors.append(FlowError(None, N_("审批人为空时的处理方式无效")))
    fallback = settings.get("fallback", [])
    if not _is_user_list(fallback, allow_empty=True):
        errors.append(FlowError(None, N_("备用审批人必须是用户列表")))
    elif when_empty == "fallback" and not fallback:
        errors.append(FlowError(None, N_("审批人为空时转交备用审批人，但未设置备用审批人")))
    if not isinstance(settings.get("auto_skip_same_approver", False), bool):
        errors.append(FlowError(None, N_("自动去重设置必须是是或否")))


def _is_user_list(value: Any, allow_empty: bool = False) -> bool:
    return (
        isinstance(value, list)
        and (allow_empty or bool(value))
        and all(isinstance(u, str) and u.strip() for u in value)
    )


def _check_sequence(
    nodes: Any,
    top: bool,
    depth: int,
    form_fields: Collection[str] | None,
    seen_ids: set[str],
    seen_objects: set[int],
    errors: list[FlowError],
) -> None:
    if not isinstance(nodes, list):
        errors.append(FlowError(None, N_("分支的节点必须是列表")))
        return
    if depth > MAX_DEPTH:
        errors.append(FlowError(None, N_("流程嵌套层级过深（最多%(n)s层）"), {"n": MAX_DEPTH}))
        return
    ended_at: str | None = None
    for index, raw in enumerate(nodes):
        if not isinstance(raw, Mapping):
            errors.append(FlowError(None, N_("第%(n)s个节点必须是一个对象"), {"n": index + 1}))
            continue
        node_id = raw.get("id")
        if not isinstance(node_id, str) or not node_id.strip():
            errors.append(FlowError(None, N_("第%(n)s个节点缺少编号"), {"n": index + 1}))
            continue
        if id(raw) in seen_objects:
            errors.append(
                FlowError(node_id, N_("节点 %(id)s 在流程中重复出现，形成环路"), {"id": node_id})
            )
            continue
        seen_objects.add(id(raw))
        if node_id in seen_ids:
            errors.append(FlowError(node_id, N_("节点编号 %(id)s 重复"), {"id": node_id}))
        seen_ids.add(node_id)
        if ended_at is not None:
            errors.append(
                FlowError(
                    node_id,
                    N_("节点 %(id)s 位于结束节点 %(end)s 之后，永远不会执行"),
                    {"id": node_id, "end": ended_at},
                )
            )
        kind = raw.get("kind")
        if kind not in NODE_KINDS:
            errors.append(
                FlowError(
                    node_id,
                    N_("节点 %(id)s 的类型 %(kind)s 未知"),
                    {"id": node_id, "kind": str(kind)},
                )
            )
            continue
        if kind == "start" and not (top and index == 0):
            errors.append(
                FlowError(node_id, N_("发起人节点 %(id)s 只能位于流程开头"), {"id": node_id})
            )
        if kind == "end":
            if not top:
                errors.append(
                    FlowError(node_id, N_("结束节点 %(id)s 只能位于流程末尾"), {"id": node_id})
                )
            ended_at = ended_at or node_id
        _check_permissions(node_id, raw.get("permissions", {}), form_fields, errors)
        if kind == "approver":
            _check_approver(node_id, raw, form_fields, errors)
        elif kind == "cc":
            _check_spec(node_id, raw.get("recipients"), form_fields, errors, cc=True)
        elif kind in ("condition", "parallel"):
            _check_branches(node_id, kind, raw, depth, form_fields, seen_ids, seen_objects, errors)
    if top:
        first, last = nodes[0], nodes[-1]
        if not (isinstance(first, Mapping) and first.get("kind") == "start"):
            errors.append(FlowError(None, N_("流程必须以发起人节点开始")))
        if not (isinstance(last, Mapping) and last.get("kind") == "end"):
            errors.append(FlowError(None, N_("流程必须以结束节点结束")))


def _check_permissions(
    node_id: str, permissions: Any, form_fields: Collection[str] | None, errors: list[FlowError]
) -> None:
    if not isinstance(permissions, Mapping):
        errors.append(
            FlowError(node_id, N_("节点 %(id)s 的字段权限必须是一个对象"), {"id": node_id})
        )
        return
    for name, permission in permissions.items():
        if permission not in PERMISSIONS:
            errors.append(
                FlowError(
                    node_id,
                    N_("节点 %(id)s 的字段 %(field)s 权限 %(value)s 无效（可编辑、只读或隐藏）"),
                    {"id": node_id, "field": str(name), "value": str(permission)},
                )
            )
        elif form_fields is not None and name not in form_fields:
            errors.append(
                FlowError(
                    node_id,
                    N_("节点 %(id)s 的字段权限引用了表单中不存在的字段 %(field)s"),
                    {"id": node_id, "field": str(name)},
                )
            )


def _check_approver(
    node_id: str,
    raw: Mapping[str, Any],
    form_fields: Collection[str] | None,
    errors: list[FlowError],
) -> None:
    _check_spec(node_id, raw.get("approver"), form_fields, errors)
    if raw.get("mode", "all") not in MODES:
        errors.append(
            FlowError(
                node_id, N_("节点 %(id)s 的审批方式无效（会签、或签或依次审批）"), {"id": node_id}
            )
        )
    when_empty = raw.get("when_empty", "")
    if when_empty not in ("", *EMPTY_ACTIONS):
        errors.append(
            FlowError(node_id, N_("节点 %(id)s 审批人为空时的处理方式无效"), {"id": node_id})
        )
    fallback = raw.get("fallback", [])
    if not _is_user_list(fallback, allow_empty=True):
        errors.append(
            FlowError(node_id, N_("节点 %(id)s 的备用审批人必须是用户列表"), {"id": node_id})
        )
    elif when_empty == "fallback" and not fallback:
        errors.append(
            FlowError(
                node_id,
                N_("节点 %(id)s 审批人为空时转交备用审批人，但未设置备用审批人"),
                {"id": node_id},
            )
        )
    if not isinstance(raw.get("auto_skip", False), bool):
        errors.append(
            FlowError(node_id, N_("节点 %(id)s 的自动去重设置必须是是或否"), {"id": node_id})
        )


def _check_spec(
    node_id: str,
    spec: Any,
    form_fields: Collection[str] | None,
    errors: list[FlowError],
    cc: bool = False,
) -> None:
    message = N_("节点 %(id)s 未设置抄送人") if cc else N_("节点 %(id)s 未设置审批人")
    empty = FlowError(node_id, message, {"id": node_id})
    if not isinstance(spec, Mapping) or spec.get("type") not in APPROVER_TYPES:
        errors.append(empty)
        return
    kind = spec["type"]
    no_users = kind == "person" and not _is_user_list(spec.get("users"))
    no_role = kind == "role" and not (isinstance(spec.get("role"), str) and spec["role"].strip())
    if no_users or no_role:
        errors.append(empty)
    if kind == "supervisor":
        level = spec.get("level", 1)
        if (
            not isinstance(level, int)
            or isinstance(level, bool)
            or not 1 <= level <= MAX_SUPERVISOR_LEVEL
        ):
            errors.append(
                FlowError(
                    node_id,
                    N_("节点 %(id)s 的上级层级必须是1到%(n)s之间的整数"),
                    {"id": node_id, "n": MAX_SUPERVISOR_LEVEL},
                )
            )
    elif kind == "form_field":
        name = spec.get("field")
        if not (isinstance(name, str) and name.strip()):
            errors.append(empty)
        elif form_fields is not None and name not in form_fields:
            errors.append(
                FlowError(
                    node_id,
                    N_("节点 %(id)s 的审批人引用了表单中不存在的字段 %(field)s"),
                    {"id": node_id, "field": name},
                )
            )


def _check_branches(
    node_id: str,
    kind: str,
    raw: Mapping[str, Any],
    depth: int,
    form_fields: Collection[str] | None,
    seen_ids: set[str],
    seen_objects: set[int],
    errors: list[FlowError],
) -> None:
    branches = raw.get("branches")
    if not isinstance(branches, list) or len(branches) < 2:
        errors.append(FlowError(node_id, N_("节点 %(id)s 至少需要两个分支"), {"id": node_id}))
        return
    defaults = 0
    priorities: set[int] = set()
    seen_conditions: list[Any] = []
    for index, branch in enumerate(branches):
        if not isinstance(branch, Mapping):
            errors.append(FlowError(node_id, N_("节点 %(id)s 的分支必须是对象"), {"id": node_id}))
            continue
        branch_id = branch.get("id")
        if not isinstance(branch_id, str) or not branch_id.strip():
            errors.append(
                FlowError(
                    node_id,
                    N_("节点 %(id)s 的第%(n)s个分支缺少编号"),
                    {"id": node_id, "n": index + 1},
                )
            )
            continue
        if branch_id in seen_ids:
            errors.append(FlowError(branch_id, N_("节点编号 %(id)s 重复"), {"id": branch_id}))
        seen_ids.add(branch_id)
        if kind == "condition":
            if branch.get("default", False) is True:
                defaults += 1
                if branch.get("conditions"):
                    errors.append(
                        FlowError(branch_id, N_("默认分支 %(id)s 不能设置条件"), {"id": branch_id})
                    )
            else:
                priority = branch.get("priority")
                if not isinstance(priority, int) or isinstance(priority, bool):
                    errors.append(
                        FlowError(branch_id, N_("条件分支 %(id)s 缺少优先级"), {"id": branch_id})
                    )
                elif priority in priorities:
                    errors.append(
                        FlowError(
                            branch_id,
                            N_("条件分支 %(id)s 的优先级与其他分支重复"),
                            {"id": branch_id},
                        )
                    )
                else:
                    priorities.add(priority)
                conditions = branch.get("conditions")
                if not isinstance(conditions, list) or not conditions:
                    errors.append(
                        FlowError(branch_id, N_("条件分支 %(id)s 未设置条件"), {"id": branch_id})
                    )
                else:
                    _check_conditions(branch_id, conditions, form_fields, errors)
                    key = sorted(repr(c) for c in conditions)
                    if key in seen_conditions:
                        errors.append(
                            FlowError(
                                branch_id,
                                N_("条件分支 %(id)s 与另一分支条件相同，永远不会执行"),
                                {"id": branch_id},
                            )
                        )
                    seen_conditions.append(key)
        elif not branch.get("nodes"):
            errors.append(
                FlowError(branch_id, N_("并行分支 %(id)s 没有任何节点"), {"id": branch_id})
            )
        _check_sequence(
            branch.get("nodes", []), False, depth + 1, form_fields, seen_ids, seen_objects, errors
        )
    if kind == "condition" and defaults != 1:
        errors.append(
            FlowError(node_id, N_("条件节点 %(id)s 必须有且只有一个默认分支"), {"id": node_id})
        )


def _check_conditions(
    branch_id: str,
    conditions: list[Any],
    form_fields: Collection[str] | None,
    errors: list[FlowError],
) -> None:
    for cond in conditions:
        if (
            not isinstance(cond, Mapping)
            or not isinstance(cond.get("field"), str)
            or "value" not in cond
        ):
            errors.append(
                FlowError(branch_id, N_("条件分支 %(id)s 的条件格式无效"), {"id": branch_id})
            )
            continue
        op = cond.get("op")
        if op not in OPERATORS:
            errors.append(
                FlowError(
                    branch_id,
                    N_("条件分支 %(id)s 使用了不支持的运算符 %(op)s"),
                    {"id": branch_id, "op": str(op)},
                )
            )
        elif op == "in" and not isinstance(cond["value"], list):
            errors.append(
                FlowError(
                    branch_id, N_("条件分支 %(id)s 的“属于”条件需要一个列表"), {"id": branch_id}
                )
            )
        if form_fields is not None and cond["field"] not in form_fields:
            errors.append(
                FlowError(
                    branch_id,
                    N_("条件分支 %(id)s 引用了表单中不存在的字段 %(field)s"),
                    {"id": branch_id, "field": cond["field"]},
                )
            )
