"""一事联办 (/services), 办事指南, 收藏, 常用系统入口, 个人中心 (/me) and 通知公告 (/notices)."""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, Flask, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.routing import IntegerConverter, Map

from hall.auth.models import CAMPUS_TZ, HallUser, aware
from hall.auth.operations import safe_next
from hall.auth.sessions import current_user, login_required
from hall.catalog.labels import audience_names
from hall.catalog.models import EntrySection
from hall.catalog.operations import (
    CatalogQuery,
    all_categories,
    all_departments,
    count_visible_notices,
    favourite_ids,
    favourite_services,
    favourite_systems,
    find_published_service,
    find_usable_system,
    find_visible_notice,
    frequently_used,
    record_use,
    search_catalog,
    toggle_favourite,
    visible_notices,
    visible_systems,
)
from hall.catalog.roles import is_hall_admin, may_manage
from hall.catalog.search import MAX_QUERY_LENGTH, MAX_TERMS
from hall.extensions import db
from shared.ids import MAX_ROW_ID
from shared.web import error_response

bp = Blueprint("catalog", __name__, template_folder="templates")

#: Notices per page of /notices.
NOTICES_PER_PAGE = 20


def _int_arg(name: str) -> int | None:
    """A positive integer query parameter, or None for anything else (never an error)."""
    value = request.args.get(name, "")
    return int(value) if value.isdigit() and 0 < len(value) < 10 else None


def _wanted_favourite() -> bool | None:
    """What a 收藏 / 取消收藏 button asked for: True, False, or None (an old page: flip)."""
    return {"1": True, "0": False}.get(request.form.get("favourite", ""))


def service_missing() -> ResponseReturnValue:
    """The 404 of a service that does not exist or is not published."""
    return error_response(
        404, _("服务不存在"), _("您要找的服务不存在或尚未发布。请返回一事联办重新查找。")
    )


@bp.get("/services")
def services() -> ResponseReturnValue:
    """一事联办: search by keyword (Chinese, pinyin, initials) and filter."""
    user = current_user()
    online_arg = request.args.get("online", "")
    audience = request.args.get("audience", "")
    query = CatalogQuery(
        text=request.args.get("q", "")[:1000],
        department_id=_int_arg("department"),
        audience=audience if audience in audience_names() else None,
        category_id=_int_arg("category"),
        online={"online": True, "offline": False}.get(online_arg),
        page=_int_arg("page") or 1,
    )
    result = search_catalog(query)
    # The filters again, for the pagination links.
    args = {
        key: value
        for key, value in {
            "q": query.text,
            "department": query.department_id,
            "audience": query.audience,
            "category": query.category_id,
            "online": online_arg if query.online is not None else None,
        }.items()
        if value
    }
    favourite_service_ids, favourite_system_ids = favourite_ids(user)
    return render_template(
        "catalog/services.html",
        query=query,
        args=args,
        result=result,
        departments=all_departments(),
        categories=all_categories(),
        audiences=audience_names(),
        systems=visible_systems(user, EntrySection.SYSTEM),
        favourite_service_ids=favourite_service_ids,
        favourite_system_ids=favourite_system_ids,
        max_query_length=MAX_QUERY_LENGTH,
        max_terms=MAX_TERMS,
    )


@bp.get("/services/<row_id:service_id>")
def guide(service_id: int) -> ResponseReturnValue:
    """办事指南 of one published service; each open counts towards 我常用的."""
    service = find_published_service(service_id)
    if service is None:
        return service_missing()
    user = current_user()
    record_use(user, service=service)
    db.session.commit()
    favourites, _systems = favourite_ids(user)
    return render_template(
        "catalog/guide.html",
        service=service,
        audiences=audience_names(),
        is_favourite=service.id in favourites,
        preview=False,
    )


@bp.post("/services/<row_id:service_id>/favourite")
@login_required
def favourite_service(user: HallUser, service_id: int) -> ResponseReturnValue:
    """收藏 / 取消收藏 a service."""
    service = find_published_service(service_id)
    if service is None:
        return service_missing()
    now = toggle_favourite(user, service=service, wanted=_wanted_favourite())
    db.session.commit()
    message = (
        _("已收藏“%(title)s”。", title=service.title)
        if now
        else _("已取消收藏“%(title)s”。", title=service.title)
    )
    flash(message, "success")
    return redirect(safe_next(request.form.get("next"), url_for(".guide", service_id=service.id)))


@bp.get("/systems/<row_id:system_id>/go")
def open_system(system_id: int) -> ResponseReturnValue:
    """Open a campus system (counted for 我常用的)."""
    user = current_user()
    entry = find_usable_system(system_id, user)
    if entry is None:
        return error_response(
            404, _("系统入口不存在"), _("该系统入口不存在，或您所在的人员类别不能使用它。")
        )
    record_use(user, system=entry)
    db.session.commit()
    return redirect(entry.url)


@bp.post("/systems/<row_id:system_id>/favourite")
@login_required
def favourite_system(user: HallUser, system_id: int) -> ResponseReturnValue:
    """收藏 / 取消收藏 a system entry (shown in 个人中心 · 常用系统收藏)."""
    entry = find_usable_system(system_id, user)
    if entry is None:
        return error_response(
            404, _("系统入口不存在"), _("该系统入口不存在，或您所在的人员类别不能使用它。")
        )
    now = toggle_favourite(user, system=entry, wanted=_wanted_favourite())
    db.session.commit()
    flash(
        _("已收藏“%(title)s”。", title=entry.name)
        if now
        else _("已取消收藏“%(title)s”。", title=entry.name),
        "success",
    )
    return redirect(safe_next(request.form.get("next"), url_for(".services")))


@bp.get("/me")
@login_required
def me(user: HallUser) -> ResponseReturnValue:
    """个人中心: 我常用的, 我收藏的服务, 常用系统收藏."""
    return render_template(
        "catalog/me.html",
        frequent=frequently_used(user),
        services=favourite_services(user),
        systems=favourite_systems(user),
        audiences=audience_names(),
    )


@bp.get("/notices")
def notices() -> ResponseReturnValue:
    """通知公告 list."""
    page = _int_arg("page") or 1
    total = count_visible_notices()
    pages = max(1, -(-total // NOTICES_PER_PAGE))
    page = min(page, pages)
    return render_template(
        "catalog/notices.html",
        notices=visible_notices(NOTICES_PER_PAGE, (page - 1) * NOTICES_PER_PAGE),
        page=page,
        pages=pages,
        total=total,
    )


@bp.get("/notices/<row_id:notice_id>")
def notice(notice_id: int) -> ResponseReturnValue:
    """One notice."""
    found = find_visible_notice(notice_id)
    if found is None:
        return error_response(404, _("公告不存在"), _("该公告不存在、尚未发布或已撤回。"))
    return render_template("catalog/notice.html", notice=found)


def campus_time(moment: datetime | None, pattern: str = "%Y-%m-%d %H:%M") -> str:
    """A stored (UTC) time as the campus reads it (China Standard Time)."""
    if moment is None:
        return ""
    return aware(moment).astimezone(CAMPUS_TZ).strftime(pattern)


class RowIdConverter(IntegerConverter):
    """A row id in a URL: out of the database's integer range is simply not found (404)."""

    def __init__(self, map: Map) -> None:
        super().__init__(map, min=1, max=MAX_ROW_ID)


def setup_catalog(app: Flask) -> None:
    """Register the catalogue pages and what the layout needs to know (服务管理 link).

    Also the ``row_id`` URL converter, which service management's routes use too.
    """
    app.url_map.converters["row_id"] = RowIdConverter
    app.register_blueprint(bp)
    app.add_template_filter(campus_time)

    @app.context_processor
    def catalogue_nav() -> dict[str, object]:
        def can_manage() -> bool:
            try:
                return may_manage(current_user())
            except SQLAlchemyError:  # an error page of a failing database must still render
                db.session.rollback()
                return False

        def is_admin() -> bool:
            try:
                return is_hall_admin(current_user())
            except SQLAlchemyError:
                db.session.rollback()
                return False

        return {"hall_can_manage": can_manage, "hall_is_admin": is_admin}
