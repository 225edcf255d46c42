"""The form crawler of the fuzz tests (``tests/form_fuzz.py``) finds what it is there to find: a
crawler that reports nothing would pass silently."""

from __future__ import annotations

from flask import redirect, render_template_string, request
from flask.typing import ResponseReturnValue

from tests.conftest import AppFactory
from tests.form_fuzz import Visitor, form_key, fuzz_forms, pattern, read_page, summary

PAGE = """<!doctype html><html lang="zh-CN"><body>
<p>{{ message }}</p>
<form method="post" action="/_fuzz/form">
  <input type="hidden" name="csrf_token" value="{{ csrf_token() }}">
  <input name="title" value="{{ title }}">
  <select name="kind"><option value="a">甲</option><option value="b" selected>乙</option></select>
  <textarea name="body"></textarea>
  <button name="submit" value="save">保存</button>
</form></body></html>"""


def _form_page() -> ResponseReturnValue:
    """A form with three planted defects: a 500, an English page, a value lost on refusal."""
    if request.method == "GET":
        return render_template_string(PAGE, title="", message="表单")
    title = request.form.get("title", "")
    if len(title) > 1000:
        raise RuntimeError("title too long for its column")
    if title != title.strip():
        return render_template_string(PAGE, title="", message="标题前后有空格"), 422
    if request.form.get("kind") not in ("a", "b"):
        return "Bad kind", 400
    return redirect("/_fuzz/form")


def test_crawler_reports_a_500_an_english_page_and_a_lost_value(make_hall: AppFactory) -> None:
    """Planted defects are each reported once, with the app's traceback for the 500."""
    app = make_hall()
    app.add_url_rule("/_fuzz/form", view_func=_form_page, methods=["GET", "POST"])
    findings, covered = fuzz_forms(app, [Visitor("anonymous", ["/_fuzz/form"])])
    report = summary(findings)
    assert list(covered["anonymous"]["forms"]) == [
        "POST /_fuzz/form [body,csrf_token,kind,submit,title]"
    ]
    assert "status 500" in report and "RuntimeError: title too long for its column" in report
    assert "status 400: page lang=None" in report  # "Bad kind": no page, no language
    assert "the typed value of 'title' is gone" in report
    # The refusals the app words itself are not findings: a missing CSRF token, a NUL.
    assert not any(f.mutation in ("no CSRF token", "title: nul") for f in findings)


def test_page_reader_sees_fields_as_a_browser_sends_them() -> None:
    """Selected options, checked boxes, radio groups, textareas and named buttons."""
    page = read_page(
        "/applications/12?tab=1",
        """<html lang="zh-CN"><body><a href="/inbox?tab=done">已办</a>
        <form method="post" action="">
          <select name="who"><option>张三</option><option value="li" selected>李四</option></select>
          <input type="checkbox" name="days" value="mon" checked>
          <input type="checkbox" name="days" value="tue">
          <input type="radio" name="mode" value="all"><input type="radio" name="mode" value="any">
          <textarea name="note">第一行</textarea>
          <input name="off" disabled value="x">
          <button name="action" value="approve">通过</button>
          <button name="action" value="return">退回</button>
        </form></body></html>""",
    )
    assert page.links == ["/inbox?tab=done"] and page.lang == "zh-CN"
    (form,) = page.forms
    fields = {f.name: (f.kind, f.value, f.options) for f in form.fields}
    assert fields == {
        "who": ("select", "li", ["张三", "li"]),
        "days": ("checkbox", "mon", ["mon", "tue"]),
        "mode": ("radio", None, ["all", "any"]),
        "note": ("textarea", "第一行", []),
        "action": ("submit", "approve", ["approve", "return"]),
    }
    assert form.action == "/applications/12?tab=1"
    assert pattern(form.action) == "/applications/{id}"
    assert form_key(form) == "POST /applications/{id} [action,days,mode,note,who]"
