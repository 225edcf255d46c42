"""Online forms (2.3 填写表单): server-side validation, coercion, permissions and rendering."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from jinja2 import Environment, FileSystemLoader
from werkzeug.datastructures import MultiDict

from hall.forms.rendering import field_views
from hall.forms.schema import (
    apply_profile,
    coerce_form,
    field_names,
    merge_edit,
    tampered_fields,
    validate_definition,
    validate_submission,
    visible_data,
)
from hall.workflow.definitions import field_permissions, parse_flow
from hall.workflow.demo import DEMOS

OVERSEAS = DEMOS["overseas-trip"]["form"]
LEAVE = DEMOS["student-leave"]["form"]
CERTIFICATE = DEMOS["enrolment-certificate"]["form"]
#: The leave form with 请假天数 typed rather than counted from 请假时间 (the demo counts it):
#: the checks of a number someone types.
TYPED_DAYS_UI = {**LEAVE["ui"], "fields": {**LEAVE["ui"]["fields"], "days": {"widget": "number"}}}
TEMPLATES = Path(__file__).resolve().parents[2] / "hall" / "forms" / "templates"

PROFILE = {
    "name": "学校管理员",
    "gender": "男",
    "phone": "18888888888",
    "department": "网络与信息中心",
}


def overseas_data(**changes: Any) -> dict[str, Any]:
    """A complete, valid 教职工因公出国(境)审批表."""
    data: dict[str, Any] = {
        "name": "学校管理员",
        "gender": "男",
        "ethnicity": "汉族",
        "birth_date": "1980-01-02",
        "id_number": "62010219800102123X",
        "title_post": "教授",
        "phone": "18888888888",
        "email": "admin@example.edu.cn",
        "document_type": "因公护照",
        "host_intro": "某大学计算机学院",
        "task": "参加学术会议",
        "funding": "科研经费",
        "trip_dates": {"start": "2024-06-01", "end": "2024-06-08"},
        "itinerary": [
            {"date": "2024-06-02", "country": "新加坡", "city": "新加坡", "business": "会议"}
        ],
    }
    data.update(changes)
    return data


@pytest.mark.parametrize("slug", sorted(DEMOS))
def test_demo_forms_are_valid_definitions(slug: str) -> None:
    """Every demo form definition passes its own checks and its flow names only its fields."""
    form = DEMOS[slug]["form"]
    assert validate_definition(form["schema"], form["ui"]) == []
    parse_flow(DEMOS[slug]["flow"], field_names(form["ui"]))


def test_a_complete_overseas_trip_form_has_no_errors() -> None:
    """A properly filled 教职工因公出国(境)审批表 validates."""
    assert validate_submission(OVERSEAS["schema"], OVERSEAS["ui"], overseas_data()) == {}


def test_every_error_is_reported_at_once_next_to_its_field() -> None:
    """An incomplete, too long form: all problems at once, in Chinese, keyed by field."""
    data = overseas_data(
        host_intro="字" * 151,
        task="任" * 51,
        email="not-an-email",
        id_number="12345",
        birth_date="1980-13-40",
    )
    del data["funding"], data["document_type"]
    errors = validate_submission(OVERSEAS["schema"], OVERSEAS["ui"], data)
    assert errors == {
        "host_intro": ["字数控制在150字以内"],
        "task": ["字数控制在50字以内"],
        "email": ["请输入有效的电子邮箱"],
        "id_number": ["请输入18位身份证号"],
        "birth_date": ["请输入有效日期，例如 2024-05-16"],
        "funding": ["此项为必填项"],
        "document_type": ["请选择此项"],
    }


def test_table_rows_report_the_row_and_column() -> None:
    """行程安排: a missing city in row 1 and a bad date in row 2 are named precisely."""
    data = overseas_data(
        itinerary=[
            {"date": "2024-06-02", "country": "新加坡"},
            {"date": "06/03/2024", "country": "马来西亚", "city": "吉隆坡"},
        ]
    )
    errors = validate_submission(OVERSEAS["schema"], OVERSEAS["ui"], data)
    assert errors == {
        "itinerary": [
            "第1行“城市”：此项为必填项",
            "第2行“日期”：请输入有效日期，例如 2024-05-16",
        ]
    }
    errors = validate_submission(OVERSEAS["schema"], OVERSEAS["ui"], overseas_data(itinerary=[]))
    assert errors == {"itinerary": ["请至少选择或填写1项"]}


def test_numbers_choices_and_date_ranges_are_checked() -> None:
    """学生请假: wrong type, out of range, unknown option, end before start, conditional field."""
    data = {
        "name": "张三",
        "student_no": "2024001",
        "leave_type": "旷课",
        "period": {"start": "2024-05-10", "end": "2024-05-08"},
        "days": 0,
        "leaves_campus": "是",
        "reason": "回家",
    }
    errors = validate_submission(LEAVE["schema"], TYPED_DAYS_UI, data)
    assert errors == {
        "leave_type": ["请从给定的选项中选择"],
        "period": ["结束日期不能早于开始日期"],
        "days": ["不能小于1"],
        "destination": ["此项为必填项"],
    }
    assert validate_submission(LEAVE["schema"], TYPED_DAYS_UI, {**data, "days": "三"})["days"] == [
        "请输入整数"
    ]
    assert validate_submission(LEAVE["schema"], TYPED_DAYS_UI, {**data, "days": 61})["days"] == [
        "不能大于60"
    ]
    half = {**data, "period": {"start": "2024-05-10"}}
    assert validate_submission(LEAVE["schema"], TYPED_DAYS_UI, half)["period"] == [
        "结束日期：此项为必填项"
    ]


def test_checkbox_needs_a_choice_from_the_options() -> None:
    """在读证明 语言: at least one, only from the options, no repeats."""
    base = {"name": "张三", "student_no": "2024001", "purpose": "签证办理", "copies": 2}
    check = lambda languages: validate_submission(  # noqa: E731 - a local shorthand
        CERTIFICATE["schema"], CERTIFICATE["ui"], {**base, "languages": languages}
    ).get("languages")
    assert check(["中文", "英文"]) is None
    assert check([]) == ["请至少选择或填写1项"]
    assert check(["法文"]) == ["请从给定的选项中选择"]
    assert check(["中文", "中文"]) == ["不能重复选择"]


def test_posted_strings_become_typed_data_per_widget() -> None:
    """Numbers, checkboxes, date ranges and table rows are parsed; blanks are left out."""
    form = MultiDict(
        [
            ("name", "Mallory"),
            ("student_no", "9999"),
            ("leave_type", "病假"),
            ("period-start", "2024-05-01"),
            ("period-end", " 2024-05-03 "),
            ("days", "3"),
            ("leaves_campus", "否"),
            ("destination", "   "),
            ("reason", "发烧\r\n就医"),
            ("attachments", "a1"),
            ("attachments", ""),
        ]
    )
    assert coerce_form(TYPED_DAYS_UI, form) == {
        "leave_type": "病假",
        "period": {"start": "2024-05-01", "end": "2024-05-03"},
        "days": 3,
        "leaves_campus": "否",
        "reason": "发烧\n就医",
        "attachments": ["a1"],
    }
    assert coerce_form(TYPED_DAYS_UI, MultiDict([("days", "2.5")]))["days"] == 2.5
    assert coerce_form(TYPED_DAYS_UI, MultiDict([("days", "abc")]))["days"] == "abc"
    # The demo counts 请假天数 from 请假时间: a posted count is not taken.
    assert "days" not in coerce_form(LEAVE["ui"], form)
    rows = MultiDict(
        [
            ("itinerary-0-date", "2024-06-02"),
            ("itinerary-0-country", "新加坡"),
            ("itinerary-1-country", ""),
            ("itinerary-2-city", "吉隆坡"),
        ]
    )
    assert coerce_form(OVERSEAS["ui"], rows)["itinerary"] == [
        {"date": "2024-06-02", "country": "新加坡"},
        {"city": "吉隆坡"},
    ]


def test_profile_fields_come_from_the_profile_not_from_the_post() -> None:
    """姓名、手机号 are filled by the server; a tampered posted name is ignored. 性别 is chosen
    by the applicant: the IdP releases no gender, so a profile field would always stay empty."""
    posted = coerce_form(
        OVERSEAS["ui"],
        MultiDict([("name", "Mallory"), ("phone", "13000000000"), ("gender", "女")]),
    )
    data = apply_profile(OVERSEAS["ui"], posted, PROFILE)
    assert data["name"] == "学校管理员" and data["phone"] == "18888888888"
    assert data["gender"] == "女"
    assert "name" not in posted


def test_an_approver_edits_only_the_fields_their_node_allows() -> None:
    """所在单位负责人 may write 所在单位意见 only; other posted changes are kept out and named."""
    flow = parse_flow(DEMOS["overseas-trip"]["flow"])
    permissions = field_permissions(flow, "department", field_names(OVERSEAS["ui"]))
    assert permissions["department_opinion"] == "edit"
    assert permissions["task"] == "read" and permissions["id_number"] == "hidden"
    old = overseas_data()
    posted = {"department_opinion": "同意出访", "task": "旅游"}
    assert tampered_fields(old, posted, permissions) == {"task": ["您没有修改此项的权限"]}
    merged = merge_edit(old, posted, permissions)
    assert merged["task"] == "参加学术会议" and merged["department_opinion"] == "同意出访"
    assert "id_number" not in visible_data(merged, permissions)
    start = field_permissions(flow, "start", field_names(OVERSEAS["ui"]))
    assert start["task"] == "edit" and start["department_opinion"] == "hidden"


def test_a_definition_naming_unknown_fields_or_widgets_is_rejected() -> None:
    """A UI schema must match the data schema."""
    problems = validate_definition(
        {"type": "object", "properties": {"a": {"type": "string"}}},
        {"order": ["a", "b"], "fields": {"a": {"widget": "slider"}}},
    )
    assert problems == ["字段 a 的控件 slider 未知", "界面中的字段 b 在数据定义中不存在"]
    assert validate_definition({"type": "nonsense"}, {})[0].startswith("表单数据定义无效")


# --------------------------------------------------------------------------- rendering


def render(views: Any) -> str:
    """The HTML of ``render_fields`` for some field views."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES), extensions=["jinja2.ext.i18n"], autoescape=True
    )
    env.install_null_translations(newstyle=True)  # type: ignore[attr-defined]
    template = env.from_string(
        '{% from "forms/_fields.html" import render_fields %}{{ render_fields(views) }}'
    )
    return template.render(views=views)


def test_form_renders_each_widget_with_labels_and_errors_beside_it() -> None:
    """Server-side rendering: labelled inputs, the 150-character hint, errors tied to fields."""
    data = apply_profile(OVERSEAS["ui"], overseas_data(host_intro="字" * 151), PROFILE)
    errors = validate_submission(OVERSEAS["schema"], OVERSEAS["ui"], data)
    flow = parse_flow(DEMOS["overseas-trip"]["flow"])
    permissions = field_permissions(flow, "start", field_names(OVERSEAS["ui"]))
    html = render(field_views(OVERSEAS["schema"], OVERSEAS["ui"], data, errors, permissions))
    assert '<label for="field-host_intro">来源单位(个人)简介' in html
    assert 'maxlength="150"' in html and "字数控制在150字以内" in html
    assert 'aria-describedby="field-host_intro-help field-host_intro-error"' in html
    assert re.search(
        r'id="field-host_intro-error" role="alert">\s*<p class="field-error">字数控制在150字以内',
        html,
    )
    # Profile fields are text, not inputs: nothing to tamper with in the page.
    assert 'name="name"' not in html and "学校管理员" in html and "来自个人信息，不可修改" in html
    # Fields hidden from the applicant are absent; widgets are the right ones.
    assert "department_opinion" not in html
    assert (
        'type="date" id="field-trip_dates-start" name="trip_dates-start" value="2024-06-01"' in html
    )
    assert '<option value="因公护照" selected>因公护照</option>' in html
    assert 'name="itinerary-0-country" value="新加坡" aria-label="第1行 国家（地区）"' in html
    assert 'name="itinerary-2-city"' in html  # blank rows to add more without script
    assert "<script" not in html and "style=" not in html and not re.search(r"\son\w+=", html)


def test_read_only_fields_show_values_and_choices_are_checked() -> None:
    """An approver sees read-only values; radios and checkboxes keep their choices."""
    data = {"name": "张三", "purpose": "签证办理", "copies": 2, "languages": ["中文", "英文"]}
    read = render(field_views(CERTIFICATE["schema"], CERTIFICATE["ui"], data, permissions={}))
    assert "<input" not in read and "<select" not in read
    assert "中文、英文" in read and "（未填写）" in read
    edit = render(field_views(CERTIFICATE["schema"], CERTIFICATE["ui"], data))
    assert 'type="checkbox" name="languages" value="英文" checked' in edit
    assert (
        '<input type="number" id="field-copies" name="copies" value="2" step="1" min="1" max="10"'
        in edit
    )
    leave = render(field_views(LEAVE["schema"], LEAVE["ui"], {"leave_type": "事假"}))
    assert 'type="radio" name="leave_type" value="事假" checked' in leave
    assert 'type="radio" name="leave_type" value="病假">' in leave
