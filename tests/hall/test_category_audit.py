"""服务类别 are shared by every service manager, so the 操作记录 of a rename keeps what the
category was called before: otherwise nobody can tell which category a manager renamed."""

from __future__ import annotations

import json

from flask import Flask

from hall.audit.models import HallAuditEvent
from hall.catalog.models import Category
from hall.catalog.operations import save_category
from hall.extensions import db


def _last(app: Flask, action: str) -> dict[str, object]:
    with app.app_context():
        event = db.session.scalars(
            db.select(HallAuditEvent)
            .where(HallAuditEvent.action == action)
            .order_by(HallAuditEvent.id.desc())
        ).first()
        assert event is not None and event.detail
        return dict(json.loads(event.detail))


def test_rename_records_the_old_name_and_order(demo_hall: Flask) -> None:
    with demo_hall.app_context():
        category = db.session.scalar(db.select(Category).where(Category.name == "外事服务"))
        assert category is not None
        old_sort = category.sort
        save_category("国际交流", old_sort + 5, actor=None, category=category)
        db.session.commit()
    assert _last(demo_hall, "category.update") == {
        "name": "国际交流",
        "sort": old_sort + 5,
        "before": {"name": "外事服务", "sort": old_sort},
    }


def test_a_new_category_has_nothing_before(demo_hall: Flask) -> None:
    with demo_hall.app_context():
        save_category("新类别", 7, actor=None)
        db.session.commit()
    assert _last(demo_hall, "category.create") == {"name": "新类别", "sort": 7}
