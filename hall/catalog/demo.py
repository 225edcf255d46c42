"""Idempotent demo catalogue for ``flask --app hall demo``: departments, categories, services
with guides (those of the manual and everyday ones), system entries, 便民服务, notices, roles."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from hall.audit.operations import CLI_ACTOR
from hall.auth.models import utcnow
from hall.catalog.models import Category, Notice, Service, SystemEntry
from hall.catalog.operations import (
    NoticeData,
    ServiceData,
    SystemData,
    ensure_department,
    publish_service,
    save_category,
    save_notice,
    save_service,
    save_system,
)
from hall.catalog.roles import HallRole, grant_role
from hall.directory.models import Department
from hall.extensions import db

#: (code, name, sort); codes match the IdP's demo departments where they exist.
DEPARTMENTS = (
    ("OFFICE", "党政办公室", 10),
    ("ORG", "组织部", 20),
    ("HR", "人事处", 30),
    ("JWC", "教务处", 40),
    ("SA", "学生工作处", 50),
    ("GS", "研究生院", 60),
    ("INTL", "国际合作与交流处", 70),
    ("FIN", "财务处", 80),
    ("SEC", "保卫处", 90),
    ("LOG", "后勤管理处", 100),
    ("NIC", "网络与信息中心", 110),
    ("LIB", "图书馆", 120),
    ("UNION", "工会", 130),
    ("HOSP", "校医院", 140),
    ("ASSET", "资产管理处", 150),
    ("CS", "计算机与通信学院", 200),
)

CATEGORIES = (
    "人事服务",
    "教学事务",
    "学生事务",
    "财务服务",
    "后勤保障",
    "安全保卫",
    "信息服务",
    "外事服务",
    "综合服务",
)

#: The demo services, one block each (see the file's header).
SERVICES_FILE = Path(__file__).parent / "data" / "demo_services.txt"


@dataclass(frozen=True)
class DemoService:
    """One demo service and the bits of its guide that differ from service to service."""

    title: str
    department: str
    category: str
    audiences: tuple[str, ...]
    online: bool
    recommended: bool
    fields: dict[str, str]


def demo_services() -> list[DemoService]:
    """The services of :data:`SERVICES_FILE`."""
    found: list[DemoService] = []
    text = SERVICES_FILE.read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    for block in "\n".join(lines).split("\n\n"):
        rows = [row for row in block.strip().splitlines() if row.strip()]
        if not rows:
            continue
        title, department, category, audiences, flags = (p.strip() for p in rows[0].split("|"))
        values = dict(row.split(": ", 1) for row in rows[1:])
        found.append(
            DemoService(
                title=title,
                department=department,
                category=category,
                audiences=tuple(audiences.split()),
                online="online" in flags.split(),
                recommended="recommended" in flags.split(),
                fields=values,
            )
        )
    return found


#: (section, name, url, icon, allowed kinds, department code, description)
SYSTEM_ENTRIES = (
    (
        "system",
        "教务管理系统",
        "https://jwc.example.edu.cn/",
        "教",
        ("student", "staff"),
        "JWC",
        "选课、课表、成绩",
    ),
    (
        "system",
        "人事管理系统",
        "https://hr.example.edu.cn/",
        "人",
        ("staff",),
        "HR",
        "个人档案、工资",
    ),
    (
        "system",
        "财务报销系统",
        "https://cw.example.edu.cn/",
        "财",
        ("staff",),
        "FIN",
        "网上报销、项目查询",
    ),
    (
        "system",
        "学工系统",
        "https://xg.example.edu.cn/",
        "学",
        ("student", "staff"),
        "SA",
        "奖助、请假、评优",
    ),
    (
        "system",
        "研究生管理系统",
        "https://yjs.example.edu.cn/",
        "研",
        ("student", "staff"),
        "GS",
        "培养、学位",
    ),
    (
        "system",
        "OA 办公系统",
        "https://oa.example.edu.cn/",
        "OA",
        ("staff",),
        "OFFICE",
        "公文、会议、通知",
    ),
    ("system", "图书馆", "https://lib.example.edu.cn/", "图", (), "LIB", "馆藏检索、电子资源"),
    (
        "system",
        "校园邮箱",
        "https://mail.example.edu.cn/",
        "邮",
        ("student", "staff"),
        "NIC",
        "学校电子邮箱",
    ),
    ("convenience", "校历", "https://www.example.edu.cn/xl/", "", (), "OFFICE", ""),
    ("convenience", "校车时刻表", "https://hq.example.edu.cn/bus/", "", (), "LOG", ""),
    ("convenience", "校园地图", "https://www.example.edu.cn/map/", "", (), "OFFICE", ""),
    ("convenience", "失物招领", "https://bwc.example.edu.cn/lost/", "", (), "SEC", ""),
    ("convenience", "网络故障报修", "https://nic.example.edu.cn/repair/", "", (), "NIC", ""),
)

#: (department code, title, body, days ago)
NOTICES = (
    (
        "NIC",
        "关于“红柳易办”网上办事大厅正式上线的通知",
        "全校师生：\n网上综合办事大厅“红柳易办”已正式上线。师生可通过统一身份认证登录，"
        "在“一事联办”中查找服务、阅读办事指南并在线办理。\n"
        "首次登录的学生和新入职教师请先激活账号。\n咨询电话：0931-2973386、0931-2757939。",
        3,
    ),
    (
        "INTL",
        "关于做好寒假期间因公出国(境)审批工作的通知",
        "各单位：\n寒假期间因公出国（境）任务请提前 15 个工作日"
        "通过“教职工因公出国(境)审批表”在线提交申请。",
        5,
    ),
    (
        "LOG",
        "后勤报修服务时间调整的通知",
        "即日起，宿舍报修受理时间调整为每天 8:00—20:00，紧急报修 24 小时受理。",
        8,
    ),
    (
        "JWC",
        "关于开具本学期在读证明的说明",
        "在读证明可在“一事联办”中在线申请，审核通过后下载带电子签章的证明，无需到现场办理。",
        12,
    ),
)

#: Demo roles: the demo staff member runs the hall and manages 人事处's services.
DEMO_ROLES = (("T2001", HallRole.HALL_ADMIN, None), ("T2001", HallRole.SERVICE_MANAGER, "HR"))


ONLINE_STEPS = (
    "1. 在“一事联办”中找到本服务，阅读办事指南；\n"
    "2. 点击“在线办理”，填写表单并上传材料；\n"
    "3. 提交后在“个人中心-待办中心-我发出的”查看进度。"
)
OFFLINE_STEPS = (
    "1. 阅读办事指南，准备材料；\n"
    "2. 工作日 8:30—12:00、14:30—17:30 携带材料到{place}办理；\n"
    "3. 办理结果当场或按时限告知。"
)
ELIGIBLE = {"student": "在校学生", "staff": "在职教职工", "visitor": "校外访客"}


def load_demo_catalog() -> dict[str, int]:
    """Create whatever demo catalogue data is missing; returns what exists afterwards."""
    root = ensure_department("LUT", "红柳大学", sort=0)
    departments: dict[str, Department] = {}
    for code, name, sort in DEPARTMENTS:
        departments[code] = ensure_department(code, name, root, sort)
    categories: dict[str, Category] = {c.name: c for c in db.session.scalars(select(Category))}
    for sort, name in enumerate(CATEGORIES, start=1):
        if name not in categories:
            categories[name] = save_category(name, sort * 10, actor=None)

    existing = set(db.session.scalars(select(Service.title)))
    for item in demo_services():
        if item.title in existing:
            continue
        department = departments[item.department]
        place = item.fields.get("place") or f"{department.name}办公室"
        data = ServiceData(
            department_id=department.id,
            title=item.title,
            category_id=categories[item.category].id,
            summary=item.fields["summary"],
            keywords=item.fields["keywords"],
            audiences=item.audiences,
            online=item.online,
            recommended=item.recommended,
            purpose=item.fields["summary"],
            eligibility="、".join(ELIGIBLE[a] for a in item.audiences),
            materials=item.fields["materials"],
            steps=ONLINE_STEPS if item.online else OFFLINE_STEPS.format(place=place),
            approval_flow=item.fields["flow"],
            time_limit=item.fields.get("time", "3 个工作日"),
            fee="不收费",
            contact_phone="0931-2973386",
            place=place,
            offline_instructions="" if item.online else f"请携带材料到{place}办理。",
        )
        service = save_service(data, actor=None)
        publish_service(service, actor=None)

    known_entries = set(db.session.scalars(select(SystemEntry.name)))
    for sort, (section, name, url, icon, kinds, code, description) in enumerate(SYSTEM_ENTRIES):
        if name not in known_entries:
            save_system(
                SystemData(
                    name=name,
                    url=url,
                    department_id=departments[code].id,
                    section=section,
                    icon=icon,
                    description=description,
                    allowed_kinds=kinds,
                    sort=sort * 10,
                ),
                actor=None,
            )

    known_notices = set(db.session.scalars(select(Notice.title)))
    for code, title, body, days in NOTICES:
        if title not in known_notices:
            save_notice(
                NoticeData(departments[code].id, title, body, utcnow() - timedelta(days=days)),
                actor=None,
            )

    for account, role, code in DEMO_ROLES:
        grant_role(account, role, departments[code] if code else None, actor=CLI_ACTOR)

    db.session.commit()
    return {
        "departments": len(departments) + 1,
        "services": db.session.query(Service).count(),
        "systems": db.session.query(SystemEntry).count(),
        "notices": db.session.query(Notice).count(),
    }
