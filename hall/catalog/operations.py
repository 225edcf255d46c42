"""The catalogue's rules: finding, saving and publishing services, favourites, use counts,
system entries and notices. Plain functions on models (no ``request``); callers commit."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, func, literal, or_, select, update
from sqlalchemy.exc import IntegrityError

from hall.audit.operations import CLI_ACTOR, record
from hall.auth.models import HallUser, aware, utcnow
from hall.catalog.models import (
    Audience,
    Category,
    EntrySection,
    Favourite,
    Notice,
    Service,
    ServiceStatus,
    SystemEntry,
    UsageCount,
)
from hall.catalog.roles import may_manage_department
from hall.catalog.search import ParsedQuery, match_and_score, parse_query, refresh_search_columns
from hall.directory.models import Department
from hall.extensions import db
from shared.web import is_local_path

#: The campus's clock: notices are scheduled and shown in China Standard Time.
#: Results per catalogue page.
PAGE_SIZE = 20


class CatalogError(ValueError):
    """Input that cannot be saved; the message is for the person who sent it (400)."""


class NotAllowed(PermissionError):
    """The actor may not change this department's content (403)."""


def _actor_name(actor: HallUser | None) -> str:
    return actor.account if actor is not None else CLI_ACTOR


def _check_department(actor: HallUser | None, department_id: int | None) -> None:
    """``actor`` None is the command line (demo data, operators), which may do anything."""
    if actor is not None and not may_manage_department(actor, department_id):
        raise NotAllowed(department_id)


def _valid_entry_url(url: str) -> bool:
    return url.startswith(("https://", "http://")) or is_local_path(url)


# 部门 ------------------------------------------------------------------------------------


def department_by_code(code: str) -> Department | None:
    """The department with ``code``."""
    return db.session.scalar(select(Department).where(Department.code == code))


def ensure_department(
    code: str, name: str, parent: Department | None = None, sort: int = 100
) -> Department:
    """The department with ``code``, created if missing (its name is kept if it exists)."""
    department = department_by_code(code)
    if department is None:
        department = Department(
            code=code, name=name, parent_id=parent.id if parent else None, sort=sort
        )
        db.session.add(department)
        db.session.flush()
    return department


def all_departments() -> list[Department]:
    """Every department, in display order."""
    return list(db.session.scalars(select(Department).order_by(Department.sort, Department.name)))


def departments_with_service_counts() -> list[tuple[Department, int]]:
    """直通部门: departments offering published services, with how many each offers."""
    count = func.count(Service.id)
    rows = db.session.execute(
        select(Department, count)
        .join(Service, Service.department_id == Department.id)
        .where(Service.status == ServiceStatus.PUBLISHED.value)
        .group_by(Department.id)
        .order_by(Department.sort, Department.name)
    )
    return [(department, int(n)) for department, n in rows]


def all_categories() -> list[Category]:
    """Every category, in display order."""
    return list(db.session.scalars(select(Category).order_by(Category.sort, Category.name)))


def save_category(
    name: str, sort: int = 100, *, actor: HallUser | None, category: Category | None = None
) -> Category:
    """Create or rename a category (any service manager may: categories are shared)."""
    name = name.strip()
    if not name or len(name) > 64:
        raise CatalogError(_l("类别名称不能为空，且不超过 64 个字符。"))
    clash = db.session.scalar(select(Category).where(Category.name == name))
    if clash is not None and clash is not category:
        raise CatalogError(_l("已有同名的服务类别。"))
    created = category is None
    renamed = category is not None and category.name != name
    detail: dict[str, Any] = {"name": name, "sort": sort}
    if category is None:
        category = Category(name=name, sort=sort)
        db.session.add(category)
    else:
        # Any manager may rename a shared category: the log keeps what it was called before.
        detail["before"] = {"name": category.name, "sort": category.sort}
        category.name, category.sort = name, sort
    db.session.flush()
    if renamed:
        # The category's name is part of its services' search text: search the new one.
        for service in db.session.scalars(
            select(Service).where(Service.category_id == category.id)
        ):
            refresh_search_columns(service)
    record(
        "category.create" if created else "category.update",
        _actor_name(actor),
        f"category:{category.id}",
        detail,
    )
    return category


# 服务 ------------------------------------------------------------------------------------


@dataclass
class ServiceData:
    """Everything a manager edits about a service."""

    department_id: int
    title: str
    category_id: int | None = None
    summary: str = ""
    keywords: str = ""
    audiences: Sequence[str] = field(default_factory=tuple)
    online: bool = True
    entry_url: str = ""
    recommended: bool = False
    purpose: str = ""
    eligibility: str = ""
    materials: str = ""
    steps: str = ""
    approval_flow: str = ""
    time_limit: str = ""
    fee: str = ""
    contact_phone: str = ""
    place: str = ""
    offline_instructions: str = ""


_COPIED = [f.name for f in fields(ServiceData) if f.name not in {"audiences", "entry_url", "title"}]
#: What the audit's ``changed`` compares: the copied fields, and the name, 在线办理 address and
#: audiences, which are stored differently (a changed entry address is what an auditor looks for).
_AUDITED = [*_COPIED, "title", "entry_url", "for_student", "for_staff", "for_visitor"]


def _validate(data: ServiceData) -> None:
    if not data.title.strip() or len(data.title.strip()) > 120:
        raise CatalogError(_l("服务名称不能为空，且不超过 120 个字符。"))
    if db.session.get(Department, data.department_id) is None:
        raise CatalogError(_l("请选择所属部门。"))
    if data.category_id is not None and db.session.get(Category, data.category_id) is None:
        raise CatalogError(_l("所选服务类别不存在。"))
    if not set(data.audiences) <= {a.value for a in Audience} or not data.audiences:
        raise CatalogError(_l("请至少选择一类服务对象。"))
    entry = data.entry_url.strip()
    if entry and (len(entry) > 500 or not _valid_entry_url(entry)):
        raise CatalogError(_l("办理入口须为 http(s):// 开头的网址或本站路径。"))


def save_service(
    data: ServiceData, *, actor: HallUser | None, service: Service | None = None
) -> Service:
    """Create a draft service or update one; the search columns follow. Audited.

    A manager may only touch services of their departments, and may not move one into a
    department they do not manage.
    """
    if service is not None:
        _check_department(actor, service.department_id)
    _check_department(actor, data.department_id)
    _validate(data)
    created = service is None
    if service is None:
        service = Service(status=ServiceStatus.DRAFT.value, created_at=utcnow(), open_count=0)
        db.session.add(service)
    before = {name: getattr(service, name, None) for name in _AUDITED}
    for name in _COPIED:
        value = getattr(data, name)
        setattr(service, name, value.strip() if isinstance(value, str) else value)
    service.title = data.title.strip()
    service.entry_url = data.entry_url.strip() or None
    service.for_student = Audience.STUDENT.value in data.audiences
    service.for_staff = Audience.STAFF.value in data.audiences
    service.for_visitor = Audience.VISITOR.value in data.audiences
    service.updated_at = utcnow()
    db.session.flush()
    db.session.refresh(service, ["department", "category"])
    refresh_search_columns(service)
    changed = sorted(n for n in _AUDITED if before[n] != getattr(service, n))
    record(
        "service.create" if created else "service.update",
        _actor_name(actor),
        f"service:{service.id}",
        {"title": service.title, "changed": changed},
    )
    return service


def publish_service(service: Service, *, actor: HallUser | None) -> None:
    """Make the service visible in the catalogue (audited)."""
    _check_department(actor, service.department_id)
    if service.status != ServiceStatus.PUBLISHED.value:
        service.status = ServiceStatus.PUBLISHED.value
        service.published_at = utcnow()
        service.updated_at = utcnow()
        record(
            "service.publish", _actor_name(actor), f"service:{service.id}", {"title": service.title}
        )


def unpublish_service(service: Service, *, actor: HallUser | None) -> None:
    """Take the service out of the catalogue; favourites and counts are kept (audited)."""
    _check_department(actor, service.department_id)
    if service.status != ServiceStatus.DRAFT.value:
        service.status = ServiceStatus.DRAFT.value
        service.updated_at = utcnow()
        record(
            "service.unpublish",
            _actor_name(actor),
            f"service:{service.id}",
            {"title": service.title},
        )


def find_published_service(service_id: int) -> Service | None:
    """The published service with this id, or None (missing and unpublished look the same)."""
    service = db.session.get(Service, service_id)
    return service if service is not None and service.is_published else None


def managed_services(department_ids: set[int] | None) -> list[Service]:
    """Services of these departments (None: all), newest change first."""
    query = select(Service).order_by(Service.updated_at.desc(), Service.id.desc())
    if department_ids is not None:
        query = query.where(Service.department_id.in_(department_ids or {-1}))
    return list(db.session.scalars(query))


# 搜索 ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CatalogQuery:
    """A catalogue search: words and filters, as the /services form sends them."""

    text: str = ""
    department_id: int | None = None
    audience: str | None = None
    category_id: int | None = None
    online: bool | None = None
    page: int = 1


@dataclass
class CatalogResult:
    """One page of matching services with the counts the filters show."""

    parsed: ParsedQuery
    services: list[Service]
    total: int
    page: int
    pages: int
    by_department: dict[int, int]
    by_category: dict[int, int]


def search_catalog(query: CatalogQuery) -> CatalogResult:
    """Published services matching every word and filter, best match first.

    One scan finds the matching rows' ids, departments, categories and scores; the counts per
    department and per category (each ignoring its own filter, so the lists show what choosing
    another would give) and the order are worked out from those, then one query loads the page.
    """
    parsed = parse_query(query.text)
    condition, score = match_and_score(parsed.terms)
    statement = select(
        Service.id,
        Service.department_id,
        Service.category_id,
        Service.open_count,
        Service.title,
        (score if score is not None else literal(0)).label("score"),
    ).where(Service.status == ServiceStatus.PUBLISHED.value)
    if condition is not None:
        statement = statement.where(condition)
    audience_flag = {
        Audience.STUDENT.value: Service.for_student,
        Audience.STAFF.value: Service.for_staff,
        Audience.VISITOR.value: Service.for_visitor,
    }.get(query.audience or "")
    if audience_flag is not None:
        statement = statement.where(audience_flag.is_(True))
    if query.online is not None:
        statement = statement.where(Service.online.is_(query.online))
    rows = db.session.execute(statement).all()

    def in_department(row: Any) -> bool:
        return query.department_id is None or row.department_id == query.department_id

    def in_category(row: Any) -> bool:
        return query.category_id is None or row.category_id == query.category_id

    by_department = Counter(r.department_id for r in rows if in_category(r))
    by_category = Counter(r.category_id for r in rows if in_department(r) and r.category_id)
    matching = sorted(
        (r for r in rows if in_department(r) and in_category(r)),
        key=lambda r: (-int(r.score), -int(r.open_count), r.title, r.id),
    )
    total = len(matching)
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(1, query.page), pages)
    ids = [r.id for r in matching[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]]
    loaded = {s.id: s for s in db.session.scalars(select(Service).where(Service.id.in_(ids)))}
    return CatalogResult(
        parsed=parsed,
        services=[loaded[i] for i in ids if i in loaded],
        total=total,
        page=page,
        pages=pages,
        by_department=dict(by_department),
        by_category=dict(by_category),
    )


def recommended_services(kind: str, limit: int = 8) -> list[Service]:
    """推荐服务 for one role: recommended first, then the most opened."""
    flag = {
        Audience.STUDENT.value: Service.for_student,
        Audience.STAFF.value: Service.for_staff,
    }.get(kind, Service.for_visitor)
    return list(
        db.session.scalars(
            select(Service)
            .where(Service.status == ServiceStatus.PUBLISHED.value, flag.is_(True))
            .order_by(Service.recommended.desc(), Service.open_count.desc(), Service.id)
            .limit(limit)
        )
    )


# 收藏与常用 ------------------------------------------------------------------------------


def toggle_favourite(
    user: HallUser,
    *,
    service: Service | None = None,
    system: SystemEntry | None = None,
    wanted: bool | None = None,
) -> bool:
    """Collect (``wanted`` True) or un-collect (False) a service or system, or flip it (None);
    returns whether it is now a favourite.

    Pages say which they offered, so that the same 收藏 sent twice (a double click, a second
    tab showing the old state) collects once instead of undoing itself.
    """
    target = Favourite.service_id == service.id if service else Favourite.system_id == system.id  # type: ignore[union-attr]
    existing = db.session.scalar(select(Favourite).where(Favourite.user_id == user.id, target))
    if existing is not None:
        if wanted is not True:
            db.session.delete(existing)
            return False
        return True
    if wanted is False:
        return False
    try:
        with db.session.begin_nested():
            db.session.add(
                Favourite(
                    user_id=user.id,
                    service_id=service.id if service else None,
                    system_id=system.id if system else None,
                )
            )
    except IntegrityError:
        pass  # the same click from another tab got there first: it is a favourite either way
    return True


def favourite_services(user: HallUser) -> list[Service]:
    """The user's collected services that are still published, newest first."""
    return list(
        db.session.scalars(
            select(Service)
            .join(Favourite, Favourite.service_id == Service.id)
            .where(Favourite.user_id == user.id, Service.status == ServiceStatus.PUBLISHED.value)
            .order_by(Favourite.created_at.desc())
        )
    )


def favourite_systems(user: HallUser) -> list[SystemEntry]:
    """常用系统收藏: the user's collected systems they may still use."""
    entries = db.session.scalars(
        select(SystemEntry)
        .join(Favourite, Favourite.system_id == SystemEntry.id)
        .where(Favourite.user_id == user.id, SystemEntry.published.is_(True))
        .order_by(Favourite.created_at.desc())
    )
    return [entry for entry in entries if may_use_system(user, entry)]


def favourite_ids(user: HallUser | None) -> tuple[set[int], set[int]]:
    """(service ids, system ids) the user collected."""
    if user is None:
        return set(), set()
    rows = db.session.execute(
        select(Favourite.service_id, Favourite.system_id).where(Favourite.user_id == user.id)
    )
    services, systems = set(), set()
    for service_id, system_id in rows:
        if service_id is not None:
            services.add(service_id)
        if system_id is not None:
            systems.add(system_id)
    return services, systems


def record_use(
    user: HallUser | None, *, service: Service | None = None, system: SystemEntry | None = None
) -> None:
    """Count one open of a service guide or a system (per user, for 我常用的)."""
    if service is not None:
        # One UPDATE, so concurrent opens are all counted.
        db.session.execute(
            update(Service)
            .where(Service.id == service.id)
            .values(open_count=Service.open_count + 1)
            .execution_options(synchronize_session=False)
        )
    if user is None:
        return
    target = UsageCount.service_id == service.id if service else UsageCount.system_id == system.id  # type: ignore[union-attr]
    now = utcnow()
    bump = (
        update(UsageCount)
        .where(UsageCount.user_id == user.id, target)
        .values(count=UsageCount.count + 1, last_used_at=now)
        .execution_options(synchronize_session=False)
    )
    if db.session.execute(bump).rowcount:  # type: ignore[attr-defined]
        return
    try:
        with db.session.begin_nested():
            db.session.add(
                UsageCount(
                    user_id=user.id,
                    service_id=service.id if service else None,
                    system_id=system.id if system else None,
                    count=1,
                    last_used_at=now,
                )
            )
    except IntegrityError:
        db.session.execute(bump)  # a parallel first open inserted the row: count this one too


def frequently_used(user: HallUser, limit: int = 8) -> list[Service | SystemEntry]:
    """我常用的: the services and systems the user opened most, most used first.

    Only what they can still open counts, and what they cannot (a service taken out of the
    catalogue, a system not for their kind) takes no place in the list.
    """
    rows = db.session.execute(
        select(Service, SystemEntry)
        .select_from(UsageCount)
        .outerjoin(
            Service,
            and_(
                Service.id == UsageCount.service_id,
                Service.status == ServiceStatus.PUBLISHED.value,
            ),
        )
        .outerjoin(
            SystemEntry,
            and_(SystemEntry.id == UsageCount.system_id, SystemEntry.published.is_(True)),
        )
        .where(
            UsageCount.user_id == user.id, or_(Service.id.is_not(None), SystemEntry.id.is_not(None))
        )
        .order_by(UsageCount.count.desc(), UsageCount.last_used_at.desc(), UsageCount.id)
    )
    found: list[Service | SystemEntry] = []
    for service, system in rows:
        if service is None and not may_use_system(user, system):
            continue
        found.append(service if service is not None else system)
        if len(found) == limit:
            break
    return found


# 常用系统 / 便民服务 -----------------------------------------------------------------------


def may_use_system(user: HallUser | None, entry: SystemEntry) -> bool:
    """Whether the entry is for ``user``'s kind (anyone when it names no kinds)."""
    kinds = entry.kinds
    if not kinds:
        return True
    kind = (user.kind if user is not None else None) or Audience.VISITOR.value
    return user is not None and kind in kinds


def visible_systems(user: HallUser | None, section: EntrySection) -> list[SystemEntry]:
    """Published entries of ``section`` the user may use, in display order."""
    entries = db.session.scalars(
        select(SystemEntry)
        .where(SystemEntry.section == section.value, SystemEntry.published.is_(True))
        .order_by(SystemEntry.sort, SystemEntry.name)
    )
    return [entry for entry in entries if may_use_system(user, entry)]


def visible_entries_by_section(user: HallUser | None) -> dict[EntrySection, list[SystemEntry]]:
    """Every published entry the user may use, by section (one query for the home page)."""
    entries = db.session.scalars(
        select(SystemEntry)
        .where(SystemEntry.published.is_(True))
        .order_by(SystemEntry.sort, SystemEntry.name)
    )
    found: dict[EntrySection, list[SystemEntry]] = {section: [] for section in EntrySection}
    for entry in entries:
        if entry.section in EntrySection._value2member_map_ and may_use_system(user, entry):
            found[EntrySection(entry.section)].append(entry)
    return found


def find_usable_system(system_id: int, user: HallUser | None) -> SystemEntry | None:
    """The published entry ``user`` may use, or None."""
    entry = db.session.get(SystemEntry, system_id)
    if entry is None or not entry.published or not may_use_system(user, entry):
        return None
    return entry


@dataclass
class SystemData:
    """What a manager edits about a system entry."""

    name: str
    url: str
    department_id: int | None
    section: str = EntrySection.SYSTEM.value
    icon: str = ""
    description: str = ""
    allowed_kinds: Sequence[str] = field(default_factory=tuple)
    published: bool = True
    sort: int = 100


def save_system(
    data: SystemData, *, actor: HallUser | None, entry: SystemEntry | None = None
) -> SystemEntry:
    """Create or update a system entry or 便民服务 link (audited)."""
    if entry is not None:
        _check_department(actor, entry.department_id)
    _check_department(actor, data.department_id)
    name, url = data.name.strip(), data.url.strip()
    if not name or len(name) > 100:
        raise CatalogError(_l("名称不能为空，且不超过 100 个字符。"))
    if not url or len(url) > 500 or not _valid_entry_url(url):
        raise CatalogError(_l("地址须为 http(s):// 开头的网址或本站路径。"))
    if data.section not in {s.value for s in EntrySection}:
        raise CatalogError(_l("请选择入口类型。"))
    if data.department_id is not None and db.session.get(Department, data.department_id) is None:
        raise CatalogError(_l("请选择所属部门。"))
    if not set(data.allowed_kinds) <= {a.value for a in Audience}:
        raise CatalogError(_l("可用人员类别无效。"))
    created = entry is None
    if entry is None:
        entry = SystemEntry()
        db.session.add(entry)
    entry.name, entry.url, entry.department_id = name, url, data.department_id
    entry.section, entry.icon = data.section, data.icon.strip()[:16]
    entry.description = data.description.strip()[:300]
    entry.allowed_kinds = ",".join(sorted(set(data.allowed_kinds)))
    entry.published, entry.sort, entry.updated_at = data.published, data.sort, utcnow()
    db.session.flush()
    record(
        "system.create" if created else "system.update",
        _actor_name(actor),
        f"system:{entry.id}",
        {"name": name, "url": url, "kinds": entry.allowed_kinds, "published": entry.published},
    )
    return entry


def managed_systems(department_ids: set[int] | None) -> list[SystemEntry]:
    """Entries of these departments (None: all, including school-wide ones)."""
    query = select(SystemEntry).order_by(SystemEntry.section, SystemEntry.sort, SystemEntry.name)
    if department_ids is not None:
        query = query.where(SystemEntry.department_id.in_(department_ids or {-1}))
    return list(db.session.scalars(query))


# 通知公告 --------------------------------------------------------------------------------


def notice_state(notice: Notice, now: datetime | None = None) -> str:
    """``draft``, ``scheduled``, ``published`` or ``withdrawn``."""
    now = now or utcnow()
    if notice.withdrawn_at is not None:
        return "withdrawn"
    if notice.publish_at is None:
        return "draft"
    return "scheduled" if aware(notice.publish_at) > now else "published"


def _visible() -> Any:
    now = utcnow()
    return (
        Notice.publish_at.is_not(None),
        Notice.publish_at <= now,
        Notice.withdrawn_at.is_(None),
    )


def visible_notices(limit: int = 10, offset: int = 0) -> list[Notice]:
    """Published notices, newest first."""
    return list(
        db.session.scalars(
            select(Notice)
            .where(*_visible())
            .order_by(Notice.publish_at.desc(), Notice.id.desc())
            .offset(offset)
            .limit(limit)
        )
    )


def count_visible_notices() -> int:
    """How many notices are published now."""
    return int(db.session.scalar(select(func.count(Notice.id)).where(*_visible())) or 0)


def find_visible_notice(notice_id: int) -> Notice | None:
    """The published notice, or None (drafts, scheduled and withdrawn ones look missing)."""
    return db.session.scalar(select(Notice).where(Notice.id == notice_id, *_visible()))


@dataclass
class NoticeData:
    """What a department admin edits about a notice."""

    department_id: int
    title: str
    body: str
    #: None keeps it a draft; a future time schedules it. A naive time is UTC, as stored.
    publish_at: datetime | None


def save_notice(
    data: NoticeData, *, actor: HallUser | None, notice: Notice | None = None
) -> Notice:
    """Create or update a notice; publishing at once, later (scheduled) or not yet (audited)."""
    if notice is not None:
        _check_department(actor, notice.department_id)
    _check_department(actor, data.department_id)
    title = data.title.strip()
    if not title or len(title) > 200:
        raise CatalogError(_l("标题不能为空，且不超过 200 个字符。"))
    if not data.body.strip():
        raise CatalogError(_l("请填写公告正文。"))
    if db.session.get(Department, data.department_id) is None:
        raise CatalogError(_l("请选择所属部门。"))
    created = notice is None
    if notice is None:
        notice = Notice(created_by=_actor_name(actor), created_at=utcnow())
        db.session.add(notice)
    notice.department_id, notice.title, notice.body = data.department_id, title, data.body.strip()
    # Stored in UTC: SQLite drops the offset, and naive values are read back as UTC — so a
    # naive time handed back (a published notice's own, kept on edit) is UTC too, never the
    # server's local time.
    notice.publish_at = aware(data.publish_at).astimezone(UTC) if data.publish_at else None
    notice.withdrawn_at = None
    notice.updated_at = utcnow()
    db.session.flush()
    record(
        "notice.create" if created else "notice.update",
        _actor_name(actor),
        f"notice:{notice.id}",
        {"title": title, "publish_at": data.publish_at, "state": notice_state(notice)},
    )
    return notice


def withdraw_notice(notice: Notice, *, actor: HallUser | None) -> None:
    """Take a notice down (it stays on record; audited)."""
    _check_department(actor, notice.department_id)
    if notice.withdrawn_at is None:
        notice.withdrawn_at = utcnow()
        record(
            "notice.withdraw", _actor_name(actor), f"notice:{notice.id}", {"title": notice.title}
        )


def managed_notices(department_ids: set[int] | None) -> list[Notice]:
    """Notices of these departments (None: all), newest first."""
    query = select(Notice).order_by(Notice.created_at.desc(), Notice.id.desc())
    if department_ids is not None:
        query = query.where(Notice.department_id.in_(department_ids or {-1}))
    return list(db.session.scalars(query))
