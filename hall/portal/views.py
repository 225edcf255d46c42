"""The hall's home page (首页): 推荐服务 per role, 推荐系统, 直通部门, 便民服务, 通知公告."""

from __future__ import annotations

from flask import Blueprint, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from hall.auth.sessions import current_user
from hall.catalog.models import Audience, EntrySection
from hall.catalog.operations import (
    departments_with_service_counts,
    recommended_services,
    visible_entries_by_section,
    visible_notices,
)

bp = Blueprint("portal", __name__, template_folder="templates")

#: Entries of each home-page list.
HOME_ITEMS = 8


@bp.get("/")
def home() -> ResponseReturnValue:
    """红柳易办 home page; 推荐服务 opens on the signed-in user's own role."""
    user = current_user()
    roles = [Audience.STAFF.value, Audience.STUDENT.value, Audience.VISITOR.value]
    wanted = request.args.get("role", "")
    own = user.kind if user is not None and user.kind in roles else Audience.VISITOR.value
    role = wanted if wanted in roles else own
    # The manual's 推荐服务 tabs: 教师、学生、访客.
    role_names = {
        Audience.STAFF.value: _("教师"),
        Audience.STUDENT.value: _("学生"),
        Audience.VISITOR.value: _("访客"),
    }
    entries = visible_entries_by_section(user)
    return render_template(
        "portal/home.html",
        role=role,
        roles=roles,
        role_names=role_names,
        recommended=recommended_services(role, HOME_ITEMS),
        systems=entries[EntrySection.SYSTEM][:HOME_ITEMS],
        departments=departments_with_service_counts(),
        conveniences=entries[EntrySection.CONVENIENCE],
        notices=visible_notices(6),
    )
