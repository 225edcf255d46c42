"""Demo forms and flows from the user manual (2.2–2.4), used by tests and demo data.

Each entry of ``DEMOS`` is ``{"title", "form": {"schema", "ui"}, "flow"}``; role names are
the hall's role codes, resolved by the directory at run time. Approver nodes that find nobody
go to the demo hall administrator (``DEMO_FALLBACK``), so a demo application never stalls.
"""

from __future__ import annotations

from typing import Any

DATE = {"type": "string", "format": "date"}
DATE_RANGE = {
    "type": "object",
    "properties": {"start": DATE, "end": DATE},
    "required": ["start", "end"],
    "additionalProperties": False,
}
#: The demo hall administrator (see ``hall.catalog.demo.DEMO_ROLES``).
DEMO_FALLBACK = "T2001"
FALLBACK = {"when_empty": "fallback", "fallback": [DEMO_FALLBACK]}
PHONE = {"type": "string", "pattern": r"^1\d{10}$", "title": "手机号"}


def _text(title: str, max_length: int) -> dict[str, Any]:
    return {"type": "string", "title": title, "maxLength": max_length}


def _enum(title: str, values: list[str]) -> dict[str, Any]:
    return {"type": "string", "title": title, "enum": values}


def _approver(
    node_id: str, name: str, approver: dict[str, Any], mode: str = "all", **extra: Any
) -> dict[str, Any]:
    return {
        "id": node_id,
        "kind": "approver",
        "name": name,
        "approver": approver,
        "mode": mode,
        **extra,
    }


def _role(role: str) -> dict[str, Any]:
    return {"type": "role", "role": role}


# --- 教职工因公出国(境)审批表

OVERSEAS_TRIP: dict[str, Any] = {
    "title": "教职工因公出国(境)审批表",
    "form": {
        "schema": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "title": "姓名"},
                "gender": _enum("性别", ["男", "女"]),
                "ethnicity": _text("民族", 20),
                "birth_date": {**DATE, "title": "出生日期"},
                "birthplace": _text("出生地", 50),
                "id_number": {
                    "type": "string",
                    "title": "身份证号",
                    "pattern": r"^\d{17}[\dXx]$",
                },
                "title_post": _text("职称职务", 50),
                "phone": {**PHONE},
                "email": {"type": "string", "format": "email", "title": "电子邮箱"},
                "document_type": _enum(
                    "出国(境)所持证件类型", ["因公护照", "因私护照", "港澳通行证", "台湾通行证"]
                ),
                "host_intro": _text("来源单位(个人)简介", 150),
                "task": _text("出国(境)任务", 50),
                "funding": _text("出国(境)费用来源", 50),
                "trip_dates": {**DATE_RANGE, "title": "出访日期"},
                "itinerary": {
                    "type": "array",
                    "title": "行程安排",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "properties": {
                            "date": {**DATE, "title": "日期"},
                            "country": _text("国家（地区）", 30),
                            "city": _text("城市", 30),
                            "business": _text("事项", 50),
                        },
                        "required": ["date", "country", "city"],
                    },
                },
                "attachments": {"type": "array", "title": "附件", "items": {"type": "string"}},
                "department_opinion": _text("所在单位意见", 150),
                "international_opinion": _text("国际交流与合作处意见", 150),
            },
            "required": [
                "name",
                "ethnicity",
                "birth_date",
                "id_number",
                "title_post",
                "phone",
                "document_type",
                "host_intro",
                "task",
                "funding",
                "trip_dates",
                "itinerary",
            ],
        },
        "ui": {
            "order": [
                "name",
                "gender",
                "ethnicity",
                "birth_date",
                "birthplace",
                "id_number",
                "title_post",
                "phone",
                "email",
                "document_type",
                "host_intro",
                "task",
                "funding",
                "trip_dates",
                "itinerary",
                "attachments",
                "department_opinion",
                "international_opinion",
            ],
            "fields": {
                "name": {"widget": "input", "profile": "name"},
                "gender": {"widget": "radio"},  # the IdP releases no gender: chosen, not filled
                "ethnicity": {"widget": "input"},
                "birth_date": {"widget": "date"},
                "birthplace": {"widget": "input"},
                "id_number": {"widget": "input", "pattern_message": "请输入18位身份证号"},
                "title_post": {"widget": "input"},
                "phone": {"widget": "input", "profile": "phone"},
                "email": {"widget": "input"},
                "document_type": {"widget": "select"},
                "host_intro": {"widget": "textarea"},
                "task": {"widget": "textarea", "rows": 2},
                "funding": {"widget": "textarea", "rows": 2},
                "trip_dates": {"widget": "daterange"},
                "itinerary": {
                    "widget": "table",
                    "columns": {
                        "date": {"widget": "date"},
                        "country": {"widget": "input"},
                        "city": {"widget": "input"},
                        "business": {"widget": "input"},
                    },
                },
                "attachments": {"widget": "attachment"},
                "department_opinion": {"widget": "textarea", "rows": 2},
                "international_opinion": {"widget": "textarea", "rows": 2},
            },
        },
    },
    "flow": {
        "settings": FALLBACK,
        "nodes": [
            {
                "id": "start",
                "kind": "start",
                "name": "申请人",
                "permissions": {"department_opinion": "hidden", "international_opinion": "hidden"},
            },
            _approver(
                "department",
                "所在单位负责人审批",
                {"type": "department_head"},
                permissions={"department_opinion": "edit", "id_number": "hidden"},
            ),
            _approver(
                "international",
                "国际交流与合作处审批",
                _role("international-office"),
                mode="any",
                permissions={"international_opinion": "edit"},
            ),
            _approver("leader", "分管校领导审批", _role("vice-president-international")),
            {"id": "cc-hr", "kind": "cc", "name": "抄送人事处", "recipients": _role("hr-office")},
            {"id": "end", "kind": "end", "name": "结束"},
        ],
    },
}

# --- 教职工入校办理手续通知单

SIGN_OFFS = [
    ("organisation", "组织处"),
    ("finance", "财务处"),
    ("union", "工会"),
    ("security", "保卫处"),
    ("medical", "医政处"),
    ("oa_account", "OA账号申请"),
    ("campus_card", "一卡通"),
]

_onboarding_properties: dict[str, Any] = {
    "transfer_no": _text("人调字号", 30),
    "name": {"type": "string", "title": "姓名"},
    "post_category": _enum("岗位类别", ["专任教师", "管理", "其他专业技术", "工勤技能"]),
    "reason": _text("入校原因", 150),
    "previous_employer": _text("原工作单位", 100),
    "staffing": _text("机构编制管理科", 150),
    **{key: _text(label, 150) for key, label in SIGN_OFFS},
}
_sign_off_fields = ["staffing", *(key for key, _ in SIGN_OFFS)]


def _sign_off_node(node_id: str, name: str, field: str) -> dict[str, Any]:
    return _approver(
        node_id,
        f"{name}办理",
        _role(f"onboarding-{node_id}"),
        mode="any",
        permissions={field: "edit"},
    )


ONBOARDING: dict[str, Any] = {
    "title": "教职工入校办理手续通知单",
    "form": {
        "schema": {
            "type": "object",
            "properties": _onboarding_properties,
            "required": ["transfer_no", "name", "post_category", "reason"],
        },
        "ui": {
            "order": list(_onboarding_properties),
            "fields": {
                "transfer_no": {"widget": "input"},
                "name": {"widget": "input", "profile": "name"},
                "post_category": {"widget": "radio"},
                "reason": {"widget": "textarea"},
                "previous_employer": {"widget": "input"},
                **{f: {"widget": "textarea", "rows": 2} for f in _sign_off_fields},
            },
        },
    },
    "flow": {
        "settings": FALLBACK,
        "nodes": [
            {
                "id": "start",
                "kind": "start",
                "name": "申请人",
                "permissions": {f: "read" for f in _sign_off_fields},
            },
            _approver("hr", "人事处审核", _role("hr-office"), mode="any"),
            {
                "id": "sign-offs",
                "kind": "parallel",
                "name": "各部门办理",
                "branches": [
                    {
                        "id": f"branch-{key}",
                        "name": label,
                        "nodes": [_sign_off_node(key, label, key)]
                        + (
                            [_sign_off_node("staffing", "机构编制管理科", "staffing")]
                            if key == "organisation"
                            else []
                        ),
                    }
                    for key, label in SIGN_OFFS
                ],
            },
            {
                "id": "cc-applicant-head",
                "kind": "cc",
                "name": "抄送部门负责人",
                "recipients": {"type": "department_head"},
            },
            {"id": "end", "kind": "end", "name": "结束"},
        ],
    },
}

# --- 新教职工入会申请

UNION_MEMBERSHIP: dict[str, Any] = {
    "title": "新教职工入会申请",
    "form": {
        "schema": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "title": "姓名"},
                "gender": _enum("性别", ["男", "女"]),
                "department": {"type": "string", "title": "所在部门"},
                "phone": {**PHONE},
                "birth_date": {**DATE, "title": "出生日期"},
                "political_status": _enum(
                    "政治面貌", ["中共党员", "中共预备党员", "共青团员", "民主党派", "群众"]
                ),
                "education": _enum(
                    "学历", ["博士研究生", "硕士研究生", "大学本科", "大学专科", "其他"]
                ),
                "join_date": {**DATE, "title": "入职时间"},
                "statement": _text("入会申请", 150),
                "union_opinion": _text("校工会意见", 150),
            },
            "required": [
                "name",
                "department",
                "birth_date",
                "political_status",
                "education",
                "join_date",
                "statement",
            ],
        },
        "ui": {
            "order": [
                "name",
                "gender",
                "department",
                "phone",
                "birth_date",
                "political_status",
                "education",
                "join_date",
                "statement",
                "union_opinion",
            ],
            "fields": {
                "name": {"widget": "input", "profile": "name"},
                "gender": {"widget": "radio"},  # the IdP releases no gender: chosen, not filled
                "department": {"widget": "department", "profile": "department"},
                "phone": {"widget": "input", "profile": "phone"},
                "birth_date": {"widget": "date"},
                "political_status": {"widget": "select"},
                "education": {"widget": "select"},
                "join_date": {"widget": "date"},
                "statement": {"widget": "textarea", "help": "本人自愿加入工会，遵守工会章程"},
                "union_opinion": {"widget": "textarea", "rows": 2},
            },
        },
    },
    "flow": {
        "settings": FALLBACK,
        "nodes": [
            {
                "id": "start",
                "kind": "start",
                "name": "申请人",
                "permissions": {"union_opinion": "hidden"},
            },
            _approver("group", "部门工会小组审核", {"type": "department_head"}, auto_skip=True),
            _approver(
                "union",
                "校工会审批",
                _role("union-office"),
                mode="any",
                permissions={"union_opinion": "edit"},
            ),
            {"id": "end", "kind": "end", "name": "结束"},
        ],
    },
}

# --- 学生请假

STUDENT_LEAVE: dict[str, Any] = {
    "title": "学生请假",
    "form": {
        "schema": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "title": "姓名"},
                "student_no": {"type": "string", "title": "学号"},
                "department": {"type": "string", "title": "学院"},
                "phone": {**PHONE},
                "leave_type": _enum("请假类型", ["病假", "事假", "其他"]),
                "period": {**DATE_RANGE, "title": "请假时间"},
                "days": {"type": "integer", "title": "请假天数", "minimum": 1, "maximum": 60},
                "leaves_campus": _enum("是否离校", ["是", "否"]),
                "destination": _text("目的地", 50),
                "reason": _text("请假事由", 150),
                "attachments": {"type": "array", "title": "证明材料", "items": {"type": "string"}},
            },
            "required": [
                "name",
                "student_no",
                "leave_type",
                "period",
                "days",
                "leaves_campus",
                "reason",
            ],
            "if": {"properties": {"leaves_campus": {"const": "是"}}, "required": ["leaves_campus"]},
            "then": {"required": ["destination"]},
        },
        "ui": {
            "order": [
                "name",
                "student_no",
                "department",
                "phone",
                "leave_type",
                "period",
                "days",
                "leaves_campus",
                "destination",
                "reason",
                "attachments",
            ],
            "fields": {
                "name": {"widget": "input", "profile": "name"},
                "student_no": {"widget": "input", "profile": "staff_no"},
                "department": {"widget": "department", "profile": "department"},
                "phone": {"widget": "input", "profile": "phone"},
                "leave_type": {"widget": "radio"},
                "period": {"widget": "daterange"},
                # Counted from 请假时间, never typed: a flow that asks the dean past 3 days
                # must not be skipped by a smaller number beside longer dates.
                "days": {"widget": "number", "days_of": "period"},
                "leaves_campus": {"widget": "radio"},
                "destination": {"widget": "input", "help": "离校时必填"},
                "reason": {"widget": "textarea"},
                "attachments": {"widget": "attachment", "help": "病假请附医院证明"},
            },
        },
    },
    "flow": {
        "settings": FALLBACK,
        "nodes": [
            {"id": "start", "kind": "start", "name": "申请人"},
            _approver("counsellor", "辅导员审批", {"type": "supervisor", "level": 1}),
            {
                "id": "length",
                "kind": "condition",
                "name": "请假天数",
                "branches": [
                    {
                        "id": "long-leave",
                        "name": "超过3天",
                        "priority": 1,
                        "conditions": [{"field": "days", "op": "gt", "value": 3}],
                        "nodes": [_approver("dean", "学院院长审批", _role("dean"))],
                    },
                    {"id": "short-leave", "name": "其他情况", "default": True, "nodes": []},
                ],
            },
            {
                "id": "cc-student-affairs",
                "kind": "cc",
                "name": "抄送学生工作处",
                "recipients": _role("student-affairs"),
            },
            {"id": "end", "kind": "end", "name": "结束"},
        ],
    },
}

# --- 在读证明

ENROLMENT_CERTIFICATE: dict[str, Any] = {
    "title": "在读证明",
    "form": {
        "schema": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "title": "姓名"},
                "student_no": {"type": "string", "title": "学号"},
                "department": {"type": "string", "title": "学院"},
                "purpose": _enum("用途", ["出国留学", "签证办理", "实习就业", "其他"]),
                "copies": {"type": "integer", "title": "份数", "minimum": 1, "maximum": 10},
                "languages": {
                    "type": "array",
                    "title": "语言",
                    "items": {"enum": ["中文", "英文"]},
                    "minItems": 1,
                    "uniqueItems": True,
                },
                "remarks": _text("备注", 150),
            },
            "required": ["name", "student_no", "purpose", "copies", "languages"],
        },
        "ui": {
            "order": [
                "name",
                "student_no",
                "department",
                "purpose",
                "copies",
                "languages",
                "remarks",
            ],
            "fields": {
                "name": {"widget": "input", "profile": "name"},
                "student_no": {"widget": "input", "profile": "staff_no"},
                "department": {"widget": "department", "profile": "department"},
                "purpose": {"widget": "select"},
                "copies": {"widget": "number"},
                "languages": {"widget": "checkbox"},
                "remarks": {"widget": "textarea", "rows": 2},
            },
        },
    },
    "flow": {
        "settings": FALLBACK,
        "nodes": [
            {"id": "start", "kind": "start", "name": "申请人"},
            _approver("secretary", "学院教务秘书审核", _role("college-secretary"), mode="any"),
            _approver("registrar", "教务处盖章", _role("registrar"), mode="any"),
            {"id": "end", "kind": "end", "name": "结束"},
        ],
    },
}

DEMOS: dict[str, dict[str, Any]] = {
    "overseas-trip": OVERSEAS_TRIP,
    "onboarding": ONBOARDING,
    "union-membership": UNION_MEMBERSHIP,
    "student-leave": STUDENT_LEAVE,
    "enrolment-certificate": ENROLMENT_CERTIFICATE,
}


def load_demo_workflows() -> int:
    """Give each demo service without a form its demo form and flow; returns how many exist."""
    from sqlalchemy import select

    from hall.catalog.models import Service
    from hall.extensions import db
    from hall.workflow.operations import latest_form, save_flow_definition, save_form_definition

    count = 0
    for demo in DEMOS.values():
        service = db.session.scalars(select(Service).where(Service.title == demo["title"])).first()
        if service is None:
            continue
        if latest_form(service.id) is None:
            form = demo["form"]
            save_form_definition(service.id, form["schema"], form["ui"], actor="demo")
            save_flow_definition(service.id, demo["flow"], actor="demo")
        if not service.entry_url:
            # 在线办理 on the guide opens the hall's own form page.
            service.entry_url = f"/services/{service.id}/apply"
            db.session.commit()
        count += 1
    return count
