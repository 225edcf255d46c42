"""The directory as SCIM 2.0 resources (RFC 7643): people as Users, departments and positions as
Groups, and the queries behind ``/scim/v2`` (filters, pagination). No ``request`` here.

Identifiers: a User's ``id`` is the ``sub`` the OpenID provider issues (stable for life, never
the 学工号, which may be handed out again); a department is ``dept-<n>`` with its HR code as
``externalId``; a position is ``pos-<n>`` with ``CODE:kind`` (``CS:head``) as ``externalId``.
Emails and phone numbers are served only once their owner verified them: HR's unverified
data may be stale or someone else's, and campus systems use these to reach the person.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flask import current_app
from sqlalchemy import ColumnElement, and_, false, func, not_, or_, select, true

from idp.directory.models import Department, User, UserStatus
from idp.directory.positions import Position, PositionKind, position_holders
from idp.directory.scim_filter import Comparison, FilterError, Logical, Negation, Node
from idp.directory.scim_filter import parse_datetime as _moment
from idp.extensions import db
from idp.oidc.claims import issuer, subject, user_claims
from shared.ids import row_id

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_SCHEMA = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CAMPUS_USER_SCHEMA = "urn:hongliu:params:scim:schemas:extension:campus:2.0:User"
CAMPUS_GROUP_SCHEMA = "urn:hongliu:params:scim:schemas:extension:campus:2.0:Group"
LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
EXTENSIONS = (ENTERPRISE_SCHEMA, CAMPUS_USER_SCHEMA, CAMPUS_GROUP_SCHEMA)

#: The scope a client-credentials token needs to read the directory.
DIRECTORY_SCOPE = "directory.read"
DEFAULT_COUNT = 100
MAX_COUNT = 500
DEPARTMENT_PREFIX = "dept-"
POSITION_PREFIX = "pos-"


def base_url() -> str:
    """Where the API lives, as clients reach it (from ``IDP_ISSUER``, not the request)."""
    return issuer() + "/scim/v2"


def scim_time(moment: datetime | None) -> str | None:
    """An xsd:dateTime in UTC with microseconds, so ``gt`` the last value seen skips it."""
    if moment is None:
        return None
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- Filters compiled to SQL ------------------------------------------------------------


def _number(text: str, prefix: str = "") -> int | None:
    """The key in ``<prefix><digits>``, or None when no row can have it (:func:`row_id`)."""
    if not text.startswith(prefix):
        return None
    digits = text[len(prefix) :]
    return row_id(digits) if digits == digits.strip() else None


def _complement(clause: Any) -> ColumnElement[bool]:
    """Every row ``clause`` does not match. SQL's ``NOT`` alone would drop the rows where it is
    NULL (a person without a department, for a comparison on its name), which it does not match
    either: NULL counts as false first."""
    complement: ColumnElement[bool] = not_(func.coalesce(clause, false()))
    return complement


def _lower(value: Any) -> str:
    if not isinstance(value, str):
        raise FilterError("this attribute is compared with a quoted string")
    return value.lower()


def _string(column: Any, operator: str, value: Any, *, case_exact: bool = False) -> Any:
    if operator == "pr":
        return and_(column.is_not(None), column != "")
    if not isinstance(value, str):
        raise FilterError("this attribute is compared with a quoted string")
    target = column if case_exact else func.lower(column)
    wanted = value if case_exact else value.lower()
    comparisons: dict[str, Callable[[], Any]] = {
        "eq": lambda: target == wanted,
        "ne": lambda: or_(column.is_(None), target != wanted),
        "co": lambda: target.contains(wanted, autoescape=True),
        "sw": lambda: target.startswith(wanted, autoescape=True),
        "ew": lambda: target.endswith(wanted, autoescape=True),
        "gt": lambda: target > wanted,
        "ge": lambda: target >= wanted,
        "lt": lambda: target < wanted,
        "le": lambda: target <= wanted,
    }
    return comparisons[operator]()


def _when(column: Any | None, operator: str, value: Any) -> Any:
    """A time compared with an xsd:dateTime; ``column`` None is a time the resource does not
    record, which only ``ne`` matches (as an absent string), once the value was checked."""
    if operator == "pr":
        return column.is_not(None) if column is not None else false()
    if operator in ("co", "sw", "ew"):
        raise FilterError(f"dates cannot be compared with {operator}")
    moment = _moment(value)
    if column is None:
        return true() if operator == "ne" else false()
    return {
        "eq": column == moment,
        "ne": column != moment,
        "gt": column > moment,
        "ge": column >= moment,
        "lt": column < moment,
        "le": column <= moment,
    }[operator]


def _number_id(prefix: str, column: Any, operator: str, value: Any) -> Any:
    """``id eq "dept-3"``: an equality on the numeric key; another prefix matches nothing."""
    if operator == "pr":
        return true()
    if operator not in ("eq", "ne") or not isinstance(value, str):
        raise FilterError("id is compared with eq or ne and a quoted string")
    number = _number(value, prefix)
    matches = column == number if number is not None else false()
    return matches if operator == "eq" else not_(matches)


def _boolean(expression: Any, operator: str, value: Any) -> Any:
    if operator not in ("eq", "ne") or not isinstance(value, bool):
        raise FilterError("a boolean is compared with eq or ne and true or false")
    return expression if (value if operator == "eq" else not value) else not_(expression)


def _kind_is(kind: str) -> Callable[[str, Any], Any]:
    def compare(operator: str, value: Any) -> Any:
        if operator != "eq":
            raise FilterError("the group kind is compared with eq")
        return true() if _lower(value) == kind else false()

    return compare


def _department_of_user(column: Any, operator: str, value: Any, *, case_exact: bool) -> Any:
    """A person's department compared on ``column``; without a department, only ``ne`` matches
    (as for any absent string attribute)."""
    if operator == "pr":
        return User.department_id.is_not(None)
    if operator == "ne":
        return _complement(_department_of_user(column, "eq", value, case_exact=case_exact))
    condition = _string(column, operator, value, case_exact=case_exact)
    return User.department_id.in_(select(Department.id).where(condition))


def _verified_email(operator: str, value: Any) -> Any:
    """Only verified emails are served, so only they are matched; ``ne`` matches the rest."""
    if operator == "ne":
        return _complement(_verified_email("eq", value))
    return and_(User.email_verified_at.is_not(None), _string(User.email, operator, value))


Compiler = dict[str, Callable[[str, Any], Any]]


def _user_attributes() -> Compiler:
    enterprise, campus = ENTERPRISE_SCHEMA.lower(), CAMPUS_USER_SCHEMA.lower()
    return {
        "id": lambda op, v: _number_id("", User.id, op, v),
        "username": lambda op, v: _string(User.account, op, v),
        "displayname": lambda op, v: _string(User.name, op, v),
        "name.formatted": lambda op, v: _string(User.name, op, v),
        "usertype": lambda op, v: _string(User.kind, op, v),
        "active": lambda op, v: _boolean(User.status != UserStatus.DISABLED, op, v),
        "meta.lastmodified": lambda op, v: _when(User.updated_at, op, v),
        "meta.created": lambda op, v: _when(User.created_at, op, v),
        "emails": _verified_email,
        "emails.value": _verified_email,
        f"{enterprise}:department": lambda op, v: _department_of_user(
            Department.name, op, v, case_exact=False
        ),
        f"{enterprise}:employeenumber": lambda op, v: _string(User.account, op, v),
        f"{campus}:departmentcode": lambda op, v: _department_of_user(
            Department.code, op, v, case_exact=True
        ),
        "groups.value": lambda op, v: _member_of(op, v),
        "groups": lambda op, v: _member_of(op, v),
    }


def _member_of(operator: str, value: Any) -> Any:
    if operator != "eq" or not isinstance(value, str):
        raise FilterError("groups.value is compared with eq and a group id")
    department_id = _number(value, DEPARTMENT_PREFIX)
    if department_id is not None:
        return User.department_id == department_id
    position_id = _number(value, POSITION_PREFIX)
    if position_id is not None:
        return User.id.in_(
            select(position_holders.c.user_id).where(position_holders.c.position_id == position_id)
        )
    return false()


def _user_id_value(value: Any) -> int | None:
    if not isinstance(value, str):
        raise FilterError("members.value is compared with a quoted user id")
    return _number(value)


def _department_attributes() -> Compiler:
    campus = CAMPUS_GROUP_SCHEMA.lower()

    def members(operator: str, value: Any) -> Any:
        if operator != "eq":
            raise FilterError("members.value is compared with eq")
        user_id = _user_id_value(value)
        if user_id is None:
            return false()
        return Department.id.in_(select(User.department_id).where(User.id == user_id))

    return {
        "id": lambda op, v: _number_id(DEPARTMENT_PREFIX, Department.id, op, v),
        "displayname": lambda op, v: _string(Department.name, op, v),
        "externalid": lambda op, v: _string(Department.code, op, v, case_exact=True),
        "meta.lastmodified": lambda op, v: _when(Department.updated_at, op, v),
        # Not recorded for departments: matches none, and the filter still finds positions.
        "meta.created": lambda op, v: _when(None, op, v),
        "members": members,
        "members.value": members,
        f"{campus}:kind": _kind_is("department"),
    }


def _position_attributes() -> Compiler:
    campus = CAMPUS_GROUP_SCHEMA.lower()
    code = select(Department.code).where(Department.id == Position.department_id).scalar_subquery()

    def members(operator: str, value: Any) -> Any:
        if operator != "eq":
            raise FilterError("members.value is compared with eq")
        user_id = _user_id_value(value)
        if user_id is None:
            return false()
        return Position.id.in_(
            select(position_holders.c.position_id).where(position_holders.c.user_id == user_id)
        )

    return {
        "id": lambda op, v: _number_id(POSITION_PREFIX, Position.id, op, v),
        "displayname": lambda op, v: _string(Position.title, op, v),
        # Case-exact, as a department's (RFC 7643 §3.1): codes "CS" and "cs" are two departments.
        "externalid": lambda op, v: _string(
            code.concat(":").concat(Position.kind), op, v, case_exact=True
        ),
        "meta.lastmodified": lambda op, v: _when(Position.updated_at, op, v),
        "meta.created": lambda op, v: _when(Position.created_at, op, v),
        "members": members,
        "members.value": members,
        f"{campus}:kind": _kind_is("position"),
    }


def _attribute_name(raw: str, core: str) -> str:
    name = raw.lower()
    prefix = core.lower() + ":"
    return name[len(prefix) :] if name.startswith(prefix) else name


def compile_filter(node: Node | None, attributes: Compiler, core: str) -> ColumnElement[bool]:
    """The WHERE clause of ``node`` for one table; FilterError names what is unsupported."""
    if node is None:
        return true()
    if isinstance(node, Logical):
        left = compile_filter(node.left, attributes, core)
        right = compile_filter(node.right, attributes, core)
        return and_(left, right) if node.operator == "and" else or_(left, right)
    if isinstance(node, Negation):
        return _complement(compile_filter(node.inner, attributes, core))
    assert isinstance(node, Comparison)
    handler = attributes.get(_attribute_name(node.attribute, core))
    if handler is None:
        raise FilterError(f"filtering on {node.attribute} is not supported")
    clause: ColumnElement[bool] = handler(node.operator, node.value)
    return clause


# --- What a page needs besides its rows ---------------------------------------------------


@dataclass(frozen=True)
class _Unit:
    id: int
    code: str
    name: str
    parent_id: int | None


@dataclass
class DirectoryView:
    """Departments and heads, loaded once per request to build many resources cheaply."""

    departments: dict[int, _Unit] = field(default_factory=dict)
    #: Department id → (user id, name) of its first head.
    heads: dict[int, tuple[int, str]] = field(default_factory=dict)

    @classmethod
    def load(cls) -> DirectoryView:
        """Every department and each department's head."""
        view = cls()
        for row in db.session.execute(
            select(Department.id, Department.code, Department.name, Department.parent_id)
        ):
            view.departments[row.id] = _Unit(row.id, row.code, row.name, row.parent_id)
        heads = (
            select(Position.department_id, User.id, User.name)
            .join(position_holders, position_holders.c.position_id == Position.id)
            .join(User, User.id == position_holders.c.user_id)
            .where(Position.kind == PositionKind.HEAD.value)
            .order_by(Position.department_id, User.id)
        )
        for department_id, user_id, name in db.session.execute(heads):
            view.heads.setdefault(department_id, (user_id, name))
        return view

    def manager(self, user_id: int, department_id: int | None) -> tuple[int, str] | None:
        """The head of the person's department, or of the nearest one above that has one."""
        seen: set[int] = set()
        while department_id is not None and department_id not in seen:
            seen.add(department_id)
            head = self.heads.get(department_id)
            if head is not None and head[0] != user_id:
                return head
            unit = self.departments.get(department_id)
            department_id = unit.parent_id if unit else None
        return None


def _ref(kind: str, resource_id: str) -> str:
    return f"{base_url()}/{kind}/{resource_id}"


def _department_ref(view: DirectoryView, department_id: int) -> dict[str, Any]:
    unit = view.departments[department_id]
    group_id = f"{DEPARTMENT_PREFIX}{unit.id}"
    return {
        "value": group_id,
        "$ref": _ref("Groups", group_id),
        "externalId": unit.code,
        "display": unit.name,
    }


def _positions_held(user_ids: list[int]) -> dict[int, list[tuple[int, str]]]:
    held: dict[int, list[tuple[int, str]]] = {user_id: [] for user_id in user_ids}
    if not user_ids:
        return held
    rows = db.session.execute(
        select(position_holders.c.user_id, Position.id, Position.title)
        .join(Position, Position.id == position_holders.c.position_id)
        .where(position_holders.c.user_id.in_(user_ids))
        .order_by(Position.id)
    )
    for user_id, position_id, title in rows:
        held[user_id].append((position_id, title))
    return held


def user_resource(
    user: User, view: DirectoryView, positions: Iterable[tuple[int, str]]
) -> dict[str, Any]:
    """One person as a SCIM User with the enterprise and campus extensions."""
    user_id = subject(user)
    kind = str(getattr(user.kind, "value", user.kind))
    resource: dict[str, Any] = {
        "schemas": [USER_SCHEMA, ENTERPRISE_SCHEMA, CAMPUS_USER_SCHEMA],
        "id": user_id,
        "userName": user.account,
        "name": {"formatted": user.name},
        "displayName": user.name,
        "userType": kind,
        "active": user.status != UserStatus.DISABLED,
    }
    if user.has_security_email:
        resource["emails"] = [{"value": user.email, "type": "other", "primary": True}]
    if user.has_security_phone:
        phone = user_claims(user, "phone")["phone_number"]
        resource["phoneNumbers"] = [{"value": phone, "type": "mobile", "primary": True}]
    groups: list[dict[str, Any]] = []
    enterprise: dict[str, Any] = {
        "employeeNumber": user.account,
        "organization": current_app.config["SCHOOL_NAME"],
    }
    campus: dict[str, Any] = {"accountStatus": str(getattr(user.status, "value", user.status))}
    if user.department_id is not None and user.department_id in view.departments:
        department = _department_ref(view, user.department_id)
        groups.append(
            {
                "value": department["value"],
                "$ref": department["$ref"],
                "display": department["display"],
                "type": "direct",
            }
        )
        enterprise["department"] = department["display"]
        campus["departmentCode"] = department["externalId"]
        campus["department"] = department
    for position_id, title in positions:
        group_id = f"{POSITION_PREFIX}{position_id}"
        groups.append(
            {
                "value": group_id,
                "$ref": _ref("Groups", group_id),
                "display": title,
                "type": "direct",
            }
        )
    manager = view.manager(user.id, user.department_id)
    if manager is not None:
        enterprise["manager"] = {
            "value": str(manager[0]),
            "$ref": _ref("Users", str(manager[0])),
            "displayName": manager[1],
        }
    if groups:
        resource["groups"] = groups
    resource[ENTERPRISE_SCHEMA] = enterprise
    resource[CAMPUS_USER_SCHEMA] = campus
    resource["meta"] = {
        "resourceType": "User",
        "created": scim_time(user.created_at),
        "lastModified": scim_time(user.updated_at),
        "location": _ref("Users", user_id),
    }
    return resource


def _member(user_id: int, name: str) -> dict[str, Any]:
    return {
        "value": str(user_id),
        "$ref": _ref("Users", str(user_id)),
        "display": name,
        "type": "User",
    }


def department_resource(
    department: Department, view: DirectoryView, members: list[tuple[int, str]] | None
) -> dict[str, Any]:
    """A department as a SCIM Group: its people are the members, its parent an extension."""
    group_id = f"{DEPARTMENT_PREFIX}{department.id}"
    campus: dict[str, Any] = {"kind": "department", "code": department.code}
    if department.parent_id is not None and department.parent_id in view.departments:
        campus["parent"] = _department_ref(view, department.parent_id)
    resource: dict[str, Any] = {
        "schemas": [GROUP_SCHEMA, CAMPUS_GROUP_SCHEMA],
        "id": group_id,
        "externalId": department.code,
        "displayName": department.name,
    }
    if members is not None:
        resource["members"] = [_member(user_id, name) for user_id, name in members]
    resource[CAMPUS_GROUP_SCHEMA] = campus
    resource["meta"] = {
        "resourceType": "Group",
        "lastModified": scim_time(department.updated_at),
        "location": _ref("Groups", group_id),
    }
    return resource


def position_resource(
    position: Position, view: DirectoryView, members: list[tuple[int, str]] | None
) -> dict[str, Any]:
    """A position as a SCIM Group: its holders are the members."""
    group_id = f"{POSITION_PREFIX}{position.id}"
    department = _department_ref(view, position.department_id)
    resource: dict[str, Any] = {
        "schemas": [GROUP_SCHEMA, CAMPUS_GROUP_SCHEMA],
        "id": group_id,
        "externalId": f"{department['externalId']}:{position.kind}",
        "displayName": position.title,
    }
    if members is not None:
        resource["members"] = [_member(user_id, name) for user_id, name in members]
    resource[CAMPUS_GROUP_SCHEMA] = {
        "kind": "position",
        "positionKind": position.kind,
        "department": department,
    }
    resource["meta"] = {
        "resourceType": "Group",
        "created": scim_time(position.created_at),
        "lastModified": scim_time(position.updated_at),
        "location": _ref("Groups", group_id),
    }
    return resource


# --- Queries ------------------------------------------------------------------------------


@dataclass
class Page:
    """One page of a list: how many match in all, and the resources of this page."""

    total: int
    resources: list[dict[str, Any]]


def list_users(node: Node | None, start_index: int, count: int) -> Page:
    """Users matching ``node``, in id order, from the 1-based ``start_index``."""
    where = compile_filter(node, _user_attributes(), USER_SCHEMA)
    total = db.session.scalar(select(func.count()).select_from(User).where(where)) or 0
    if count == 0:
        return Page(total, [])
    users = list(
        db.session.scalars(
            select(User).where(where).order_by(User.id).offset(start_index - 1).limit(count)
        )
    )
    return Page(total, _user_resources(users))


def _user_resources(users: list[User]) -> list[dict[str, Any]]:
    view = DirectoryView.load()
    held = _positions_held([user.id for user in users])
    return [user_resource(user, view, held[user.id]) for user in users]


def get_user(resource_id: str) -> dict[str, Any] | None:
    """The User ``resource_id``, or None."""
    number = _number(resource_id)
    if number is None:
        return None
    user = db.session.get(User, number)
    return _user_resources([user])[0] if user is not None else None


def _department_members(ids: list[int]) -> dict[int, list[tuple[int, str]]]:
    members: dict[int, list[tuple[int, str]]] = {department_id: [] for department_id in ids}
    if ids:
        rows = db.session.execute(
            select(User.department_id, User.id, User.name)
            .where(User.department_id.in_(ids))
            .order_by(User.id)
        )
        for department_id, user_id, name in rows:
            members[department_id].append((user_id, name))
    return members


def _position_members(ids: list[int]) -> dict[int, list[tuple[int, str]]]:
    members: dict[int, list[tuple[int, str]]] = {position_id: [] for position_id in ids}
    if ids:
        rows = db.session.execute(
            select(position_holders.c.position_id, User.id, User.name)
            .join(User, User.id == position_holders.c.user_id)
            .where(position_holders.c.position_id.in_(ids))
            .order_by(User.id)
        )
        for position_id, user_id, name in rows:
            members[position_id].append((user_id, name))
    return members


def _group_resources(
    departments: list[Department], positions: list[Position], with_members: bool
) -> list[dict[str, Any]]:
    view = DirectoryView.load()
    department_members = _department_members([d.id for d in departments]) if with_members else {}
    position_members = _position_members([p.id for p in positions]) if with_members else {}
    resources = [
        department_resource(d, view, department_members.get(d.id) if with_members else None)
        for d in departments
    ]
    resources += [
        position_resource(p, view, position_members.get(p.id) if with_members else None)
        for p in positions
    ]
    return resources


def list_groups(node: Node | None, start_index: int, count: int, with_members: bool) -> Page:
    """Departments then positions matching ``node``, each in id order, from ``start_index``."""
    department_where = compile_filter(node, _department_attributes(), GROUP_SCHEMA)
    position_where = compile_filter(node, _position_attributes(), GROUP_SCHEMA)
    department_total = (
        db.session.scalar(select(func.count()).select_from(Department).where(department_where)) or 0
    )
    position_total = (
        db.session.scalar(select(func.count()).select_from(Position).where(position_where)) or 0
    )
    total = department_total + position_total
    if count == 0:
        return Page(total, [])
    offset = start_index - 1
    departments: list[Department] = []
    if offset < department_total:
        departments = list(
            db.session.scalars(
                select(Department)
                .where(department_where)
                .order_by(Department.id)
                .offset(offset)
                .limit(count)
            )
        )
    remaining = count - len(departments)
    positions: list[Position] = []
    if remaining > 0:
        positions = list(
            db.session.scalars(
                select(Position)
                .where(position_where)
                .order_by(Position.id)
                .offset(max(0, offset - department_total))
                .limit(remaining)
            )
        )
    return Page(total, _group_resources(departments, positions, with_members))


def get_group(resource_id: str, with_members: bool) -> dict[str, Any] | None:
    """The Group ``resource_id`` (``dept-<n>`` or ``pos-<n>``), or None."""
    for prefix, model in ((DEPARTMENT_PREFIX, Department), (POSITION_PREFIX, Position)):
        number = _number(resource_id, prefix)
        if number is not None:
            row = db.session.get(model, number)
            if row is None:
                return None
            if isinstance(row, Department):
                return _group_resources([row], [], with_members)[0]
            return _group_resources([], [row], with_members)[0]
    return None


# --- attributes / excludedAttributes (RFC 7644 §3.4.2.5) ----------------------------------

_ALWAYS = ("schemas", "id")

#: Attribute paths as a tree of lower-cased names; ``None`` stands for the whole attribute.
_Tree = dict[str, "_Tree | None"]


def _attribute_path(raw: str, core: str) -> list[str]:
    """``urn:…:enterprise:2.0:User:manager.value`` → [the extension URN, "manager", "value"];
    ``name.formatted`` (or with the core schema's URN before it) → ["name", "formatted"]."""
    name = raw.strip()
    for urn in (*EXTENSIONS, core):
        if name.lower() == urn.lower():
            return [urn]
        if name.lower().startswith(urn.lower() + ":"):
            rest = name[len(urn) + 1 :].split(".", 1)
            return [urn, *rest] if urn != core else rest
    return name.split(".", 1)


def _path_tree(raw: str | None, core: str) -> _Tree:
    """The attribute paths of an ``attributes`` / ``excludedAttributes`` value, merged."""
    tree: _Tree = {}
    for part in (raw or "").split(","):
        if not part.strip():
            continue
        path = [step.lower() for step in _attribute_path(part, core)]
        node: _Tree | None = tree
        for depth, step in enumerate(path):
            assert node is not None
            last = depth == len(path) - 1
            if step in node and node[step] is None:
                break  # the whole attribute is already named
            if last:
                node[step] = None
            else:
                node = node.setdefault(step, {})
    return tree


def _keep(value: Any, tree: _Tree | None) -> Any:
    """What of ``value`` the paths in ``tree`` name (each element of a multi-valued one)."""
    if tree is None:
        return value
    if isinstance(value, list):
        kept = [_keep(item, tree) for item in value]
        return [item for item in kept if item]
    if isinstance(value, dict):
        return {
            key: _keep(item, tree[key.lower()])
            for key, item in value.items()
            if key.lower() in tree
        }
    return None


def _drop(value: Any, tree: _Tree) -> Any:
    """``value`` without the paths in ``tree`` (from each element of a multi-valued one)."""
    if isinstance(value, list):
        return [_drop(item, tree) for item in value]
    if not isinstance(value, dict):
        return value
    result: dict[str, Any] = {}
    for key, item in value.items():
        if key.lower() not in tree:
            result[key] = item
        elif (sub := tree[key.lower()]) is not None:
            result[key] = _drop(item, sub)
    return result


def project(
    resource: dict[str, Any], attributes: str | None, excluded: str | None, core: str
) -> dict[str, Any]:
    """``resource`` limited to ``attributes`` or without ``excluded`` (RFC 7644 §3.4.2.5):
    names are case-insensitive; a sub-attribute path (``members.value``, ``meta.location``,
    ``urn:…:User:manager.value``) keeps or removes that sub-attribute only."""
    wanted = _path_tree(attributes, core)
    if wanted:
        shown: dict[str, Any] = {key: resource[key] for key in _ALWAYS if key in resource}
        for key, value in resource.items():
            if key in _ALWAYS or key.lower() not in wanted:
                continue
            kept = _keep(value, wanted[key.lower()])
            if kept is not None and kept != {}:
                shown[key] = kept
        return shown
    dropped = _path_tree(excluded, core)
    for key in _ALWAYS:
        dropped.pop(key, None)
    return _drop(resource, dropped) if dropped else resource


def wants_members(attributes: str | None, excluded: str | None) -> bool:
    """Whether Group members must be loaded (they can be thousands for a large department)."""
    wanted = _path_tree(attributes, GROUP_SCHEMA)
    if wanted:
        return "members" in wanted
    dropped = _path_tree(excluded, GROUP_SCHEMA)
    return not ("members" in dropped and dropped["members"] is None)


def list_response(page: Page, start_index: int) -> dict[str, Any]:
    """A ListResponse message."""
    return {
        "schemas": [LIST_SCHEMA],
        "totalResults": page.total,
        "itemsPerPage": len(page.resources),
        "startIndex": start_index,
        "Resources": page.resources,
    }


def error_body(status: int, detail: str, scim_type: str | None = None) -> dict[str, Any]:
    """A SCIM Error message."""
    body: dict[str, Any] = {"schemas": [ERROR_SCHEMA], "status": str(status), "detail": detail}
    if scim_type:
        body["scimType"] = scim_type
    return body
