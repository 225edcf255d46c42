"""一事联办: searching (Chinese, pinyin, initials), filters and counts, service guides, the home
page, favourites, 我常用的, 常用系统入口 by role, notices, and bad input."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from hall.catalog.models import Notice, Service, SystemEntry, UsageCount
from hall.catalog.operations import (
    CatalogQuery,
    department_by_code,
    search_catalog,
    unpublish_service,
)
from hall.extensions import db
from tests.hall.catalog_support import csrf_token, load_demo, make_hall_user, sign_in_as


def titles(html: str) -> list[str]:
    """The service titles listed on a catalogue page, in order."""
    return re.findall(r'class="service-title"><a [^>]*>([^<]+)</a>', html)


def search(app: Flask, text: str, **filters: object) -> list[str]:
    """Titles found by the catalogue search operation."""
    with app.test_request_context():
        result = search_catalog(CatalogQuery(text=text, **filters))  # type: ignore[arg-type]
        return [s.title for s in result.services]


def service_id(app: Flask, title: str) -> int:
    """The id of the demo service called ``title``."""
    with app.app_context():
        return int(db.session.scalar(db.select(Service.id).where(Service.title == title)))


def test_demo_catalogue_is_realistic_and_loads_idempotently(hall_app: Flask) -> None:
    """`flask --app hall demo` twice: ≥ 40 published services in ≥ 12 departments, no copies."""
    first = load_demo(hall_app)
    second = load_demo(hall_app)
    assert first == second
    assert first["services"] >= 40
    with hall_app.app_context():
        departments = db.session.scalar(
            db.select(db.func.count(db.distinct(Service.department_id)))
        )
        titles_ = set(db.session.scalars(db.select(Service.title)))
    assert departments >= 12
    for title in ("教职工因公出国(境)审批表", "教职工入校办理手续通知单", "新教职工入会申请"):
        assert title in titles_
    for title in ("学生请假", "在读证明", "成绩单打印", "校园卡挂失", "访客预约", "会议室预约"):
        assert title in titles_


def test_pinyin_initials_cgcj_find_the_trip_abroad_form(demo_hall: Flask) -> None:
    """Typing the initials cgcj (出国出境) finds the two services about going abroad first."""
    found = search(demo_hall, "cgcj")
    assert set(found[:2]) == {"教职工因公出国(境)审批表", "学生出国(境)交流项目申请"}
    assert "学生请假" not in found


def test_full_pinyin_and_chinese_find_the_same_service(demo_hall: Flask) -> None:
    """qingjia, 请假 and QINGJIA all find 学生请假; 在读 finds 在读证明 before the rest."""
    assert "学生请假" in search(demo_hall, "qingjia")
    assert "学生请假" in search(demo_hall, "请假")
    assert "学生请假" in search(demo_hall, "ＱＩＮＧＪＩＡ")  # full-width letters fold
    assert search(demo_hall, "在读")[0] == "在读证明"


def test_title_matches_rank_before_guide_text_matches(demo_hall: Flask) -> None:
    """A word in the title outranks the same word only in a guide's text."""
    found = search(demo_hall, "校园卡")
    assert set(found[:2]) == {"校园卡挂失", "校园卡补办"}
    assert "成绩单打印" in found  # its materials mention 校园卡
    assert found.index("成绩单打印") > 1


def test_every_word_of_a_query_must_match(demo_hall: Flask) -> None:
    """学生 出国 finds the students' exchange programme, not the staff form."""
    assert search(demo_hall, "学生 出国") == ["学生出国(境)交流项目申请"]


def test_filters_narrow_results_and_counts_follow(
    demo_hall: Flask, hall_client: FlaskClient
) -> None:
    """Department, audience, category and online/offline filters; counts per department."""
    with demo_hall.app_context():
        sec = department_by_code("SEC")
        assert sec is not None
        sec_id = sec.id
    offline = search(demo_hall, "", department_id=sec_id, online=False)
    assert offline == ["户籍证明与集体户口借用"]
    visitors = search(demo_hall, "", audience="visitor")
    assert "访客预约" in visitors and "学生请假" not in visitors
    page = hall_client.get(f"/services?department={sec_id}")
    assert page.status_code == 200
    assert "找到" not in page.text and "共 3 项服务" in page.text
    assert "保卫处 (3)" in page.text


def test_visitor_browses_the_home_page_without_signing_in(demo_hall: Flask) -> None:
    """首页: 推荐服务 for visitors, 推荐系统, 直通部门 with counts, 便民服务, 通知公告."""
    client = demo_hall.test_client()
    home = client.get("/")
    assert home.status_code == 200
    text = home.text
    for heading in ("推荐服务", "推荐系统", "直通部门", "便民服务", "通知公告"):
        assert heading in text
    assert "访客预约" in text and "学生请假" not in text  # visitors' recommendations
    assert "图书馆" in text and "人事管理系统" not in text  # systems open to everyone only
    assert re.search(r"保卫处</span> <span class=\"department-count\">3 项服务", text)
    assert "关于“红柳易办”网上办事大厅正式上线的通知" in text
    staff = client.get("/?role=staff").text
    assert "教职工因公出国(境)审批表" in staff


def test_signed_in_student_sees_student_recommendations(demo_hall: Flask) -> None:
    """A student's home opens on the 学生 tab; the staff-only systems stay hidden."""
    client = demo_hall.test_client()
    sign_in_as(demo_hall, client, make_hall_user(demo_hall))
    home = client.get("/").text
    assert "学生请假" in home and "教职工因公出国(境)审批表" not in home
    assert "教务管理系统" in home and "人事管理系统" not in home


def test_guide_shows_how_to_get_it_done(demo_hall: Flask, hall_client: FlaskClient) -> None:
    """办事指南: purpose, who, materials, steps, approval flow, time, fee, phone, place."""
    page = hall_client.get(f"/services/{service_id(demo_hall, '教职工因公出国(境)审批表')}")
    assert page.status_code == 200
    for label in ("事项说明", "办理对象与条件", "所需材料", "办理流程", "审批流程", "办理时限"):
        assert label in page.text
    assert "国际合作与交流处审核" in page.text and "0931-2973386" in page.text
    assert "登录后收藏" in page.text


def test_missing_or_unpublished_service_is_a_404(
    demo_hall: Flask, hall_client: FlaskClient
) -> None:
    """An id that does not exist, or a withdrawn service, answers 404 with a clear page."""
    assert hall_client.get("/services/999999").status_code == 404
    for huge in ("/services/99999999999999999999", "/notices/2147483648", "/systems/9999999999/go"):
        assert hall_client.get(huge).status_code == 404  # beyond the integer column: not a 500
    assert hall_client.get("/services/abc").status_code == 404
    sid = service_id(demo_hall, "会议室预约")
    with demo_hall.app_context():
        unpublish_service(db.session.get(Service, sid), actor=None)
        db.session.commit()
    page = hall_client.get(f"/services/{sid}")
    assert page.status_code == 404 and "服务不存在" in page.text
    assert "会议室预约" not in hall_client.get("/services?q=会议室").text


@pytest.mark.parametrize("junk", ["!!!。，、", "%%%", "___", "' OR 1=1 --"])
def test_punctuation_only_search_lists_everything_with_a_notice(
    demo_hall: Flask, hall_client: FlaskClient, junk: str
) -> None:
    """Only punctuation: a notice, and the whole catalogue rather than an error."""
    page = hall_client.get("/services", query_string={"q": junk})
    assert page.status_code == 200
    if junk.startswith("'"):
        assert "找到 0 项服务" in page.text  # words "or" and "1": searched, nothing matches
    else:
        assert "只有标点或符号" in page.text
        assert len(titles(page.text)) == 20


def test_very_long_search_is_cut_and_answered(hall_client: FlaskClient, demo_hall: Flask) -> None:
    """500 characters: searched by the first 50, with a notice; no error."""
    page = hall_client.get("/services", query_string={"q": "请假" * 250})
    assert page.status_code == 200
    assert "搜索词过长" in page.text


def test_malformed_filters_are_ignored(demo_hall: Flask, hall_client: FlaskClient) -> None:
    """Non-numeric ids, unknown audiences and pages past the end never break the page."""
    page = hall_client.get("/services?department=abc&category=-1&audience=alien&page=9999")
    assert page.status_code == 200 and "共 47 项服务" in page.text


def test_student_favourites_a_service_and_finds_it_in_personal_centre(demo_hall: Flask) -> None:
    """收藏 on a guide; 个人中心 lists it under 我收藏的服务; 取消收藏 removes it."""
    client = demo_hall.test_client()
    sign_in_as(demo_hall, client, make_hall_user(demo_hall))
    sid = service_id(demo_hall, "在读证明")
    token = csrf_token(client, f"/services/{sid}")
    done = client.post(f"/services/{sid}/favourite", data={"csrf_token": token})
    assert done.status_code == 302 and done.headers["Location"] == f"/services/{sid}"
    me = client.get("/me").text
    assert "我收藏的服务" in me and "在读证明" in me.split("我收藏的服务")[1]
    client.post(f"/services/{sid}/favourite", data={"csrf_token": token})
    assert (
        "在读证明" not in client.get("/me").text.split("我收藏的服务")[1].split("常用系统收藏")[0]
    )


def test_favourite_needs_sign_in_and_csrf(demo_hall: Flask, hall_client: FlaskClient) -> None:
    """Signed out: sent to sign in; without a CSRF token: refused, nothing saved."""
    sid = service_id(demo_hall, "在读证明")
    assert hall_client.post(f"/services/{sid}/favourite").status_code == 400  # CSRF first
    client = demo_hall.test_client()
    sign_in_as(demo_hall, client, make_hall_user(demo_hall))
    assert client.post(f"/services/{sid}/favourite").status_code == 400
    assert "★ 已收藏" not in client.get("/services?q=在读").text


def test_opening_guides_and_systems_builds_frequently_used(demo_hall: Flask) -> None:
    """我常用的 lists what the user really opened, most opened first."""
    client = demo_hall.test_client()
    user_id = make_hall_user(demo_hall)
    sign_in_as(demo_hall, client, user_id)
    leave, transcript = service_id(demo_hall, "学生请假"), service_id(demo_hall, "成绩单打印")
    for _ in range(3):
        client.get(f"/services/{leave}")
    client.get(f"/services/{transcript}")
    with demo_hall.app_context():
        library = db.session.scalar(db.select(SystemEntry.id).where(SystemEntry.name == "图书馆"))
    opened = client.get(f"/systems/{library}/go")
    assert opened.status_code == 302 and opened.headers["Location"].startswith("https://lib.")
    me = client.get("/me").text
    frequent = me.split("我常用的")[1].split("我收藏的服务")[0]
    assert frequent.index("学生请假") < frequent.index("成绩单打印")
    assert "图书馆" in frequent
    with demo_hall.app_context():
        counts = dict(
            db.session.execute(
                db.select(UsageCount.service_id, UsageCount.count).where(
                    UsageCount.user_id == user_id, UsageCount.service_id.is_not(None)
                )
            ).all()
        )
        assert counts == {leave: 3, transcript: 1}
        assert db.session.get(Service, leave).open_count == 3


def test_system_entries_follow_the_users_kind(demo_hall: Flask) -> None:
    """常用系统入口 shows only systems the user's kind may use; others cannot be opened."""
    with demo_hall.app_context():
        hr = db.session.scalar(db.select(SystemEntry.id).where(SystemEntry.name == "人事管理系统"))
    student = demo_hall.test_client()
    sign_in_as(demo_hall, student, make_hall_user(demo_hall))
    page = student.get("/services").text.split("常用系统入口")[1]
    assert "教务管理系统" in page and "人事管理系统" not in page
    assert student.get(f"/systems/{hr}/go").status_code == 404
    staff = demo_hall.test_client()
    sign_in_as(demo_hall, staff, make_hall_user(demo_hall, "T2001", "staff", "HR", "王老师"))
    assert "人事管理系统" in staff.get("/services").text
    token = csrf_token(staff)
    assert staff.post(f"/systems/{hr}/favourite", data={"csrf_token": token}).status_code == 302
    favourites = staff.get("/me").text.split("常用系统收藏")[1]
    assert "人事管理系统" in favourites


def test_notices_show_only_published_ones(demo_hall: Flask, hall_client: FlaskClient) -> None:
    """通知公告: list and detail; a withdrawn notice answers 404."""
    listing = hall_client.get("/notices")
    assert listing.status_code == 200
    assert "后勤报修服务时间调整的通知" in listing.text
    with demo_hall.app_context():
        notice = db.session.scalar(db.select(Notice).where(Notice.title.like("后勤报修%")))
        nid = notice.id
    assert "紧急报修" in hall_client.get(f"/notices/{nid}").text
    with demo_hall.app_context():
        from hall.catalog.operations import withdraw_notice

        withdraw_notice(db.session.get(Notice, nid), actor=None)
        db.session.commit()
    assert hall_client.get(f"/notices/{nid}").status_code == 404
    assert "后勤报修服务时间调整的通知" not in hall_client.get("/notices").text
    assert hall_client.get("/notices/99999").status_code == 404


def test_pages_read_in_english(demo_hall: Flask, hall_client: FlaskClient) -> None:
    """?lang=en renders the catalogue (texts fall back to Chinese until translated)."""
    assert hall_client.get("/services?lang=en").status_code == 200
    assert hall_client.get("/?lang=en").status_code == 200
