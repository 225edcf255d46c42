"""Second review of 服务管理: re-ordering a category with a bad 排序 says what is wrong."""

from __future__ import annotations

from flask import Flask

from hall.catalog.models import Category
from hall.extensions import db
from tests.hall.catalog_support import csrf_token, load_demo
from tests.hall.test_manage import manager_client


def test_a_bad_order_when_re_ordering_a_category_names_the_order_not_the_name(
    hall_app: Flask,
) -> None:
    """排序 not a number or out of range: the message is about 排序, nothing changes; an empty
    name still gets the name's message."""
    load_demo(hall_app)
    with hall_app.app_context():
        category = db.session.scalars(db.select(Category).order_by(Category.id)).first()
        assert category is not None
        category_id, name, sort = category.id, category.name, category.sort
    client = manager_client(hall_app)
    token = csrf_token(client, "/manage/categories")
    path = f"/manage/categories/{category_id}"
    for bad, message in (("abc", "请输入整数"), ("-1", "请输入 0 到 100000 之间的整数")):
        posted = client.post(path, data={"csrf_token": token, "name": name, "sort": bad})
        assert posted.status_code == 302
        page = client.get("/manage/categories").text
        assert f"排序（小的在前）：{message}" in page
        assert "类别名称不能为空" not in page
    client.post(path, data={"csrf_token": token, "name": "", "sort": "3"})
    page = client.get("/manage/categories").text
    assert "类别名称不能为空，且不超过 64 个字符。" in page and "排序（小的在前）：" not in page
    with hall_app.app_context():
        stored = db.session.get_one(Category, category_id)
        assert (stored.name, stored.sort) == (name, sort)
