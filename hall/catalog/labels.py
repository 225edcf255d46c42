"""Names of catalogue values as users read them (in the request's language)."""

from __future__ import annotations

from flask_babel import gettext as _

from hall.catalog.models import Audience


def audience_names() -> dict[str, str]:
    """服务对象 names by value."""
    return {
        Audience.STUDENT.value: _("学生"),
        Audience.STAFF.value: _("教职工"),
        Audience.VISITOR.value: _("访客"),
    }
