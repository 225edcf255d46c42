"""Web basics both apps share: headers, languages, errors, CSRF, health and request ids."""

from __future__ import annotations

import logging

import pytest
from flask import Flask

from tests.conftest import AppFactory


@pytest.fixture(params=["idp", "hall"])
def factory(request: pytest.FixtureRequest) -> AppFactory:
    """Each test runs against both apps."""
    return request.getfixturevalue(f"make_{request.param}")


def test_home_page_renders_in_chinese_by_default(factory: AppFactory) -> None:
    """The home page is Simplified Chinese unless the browser or user asks otherwise."""
    response = factory().test_client().get("/")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert '<html lang="zh-CN">' in page
    assert "网络与信息中心" in page


def test_security_headers_on_every_response(factory: AppFactory) -> None:
    """CSP without inline script, no framing, nosniff, referrer policy."""
    response = factory().test_client().get("/")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert "Strict-Transport-Security" not in response.headers


def test_language_switch_keeps_where_the_page_was_going(make_idp: AppFactory) -> None:
    """Switching language on the sign-in page keeps its query: a person sent to sign in for a
    campus system, who switches to English, still returns to that system afterwards."""
    page = make_idp().test_client().get("/login?next=%2Fcas%2Flogin%3Fservice%3Dx&lang=zh_CN")
    text = page.get_data(as_text=True)
    assert 'href="?next=%2Fcas%2Flogin%3Fservice%3Dx&amp;lang=en"' in text


def test_sign_in_pages_let_a_popup_keep_its_opener(make_idp: AppFactory) -> None:
    """A single-page app may sign in through a popup: the pages on the way do not cut it
    from its opener (COOP), the security centre and the console still do."""
    client = make_idp().test_client()
    assert client.get("/login").headers["Cross-Origin-Opener-Policy"] == "unsafe-none"
    assert client.get("/oauth2/authorize").headers["Cross-Origin-Opener-Policy"] == "unsafe-none"
    assert client.get("/").headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert client.get("/admin").headers["Cross-Origin-Opener-Policy"] == "same-origin"


def test_idp_pages_are_never_cached(make_idp: AppFactory) -> None:
    """Every IdP page names who is signed in or carries a one-time form: no-store, unless it
    chose its own caching (the public discovery document)."""
    client = make_idp().test_client()
    for path in ("/", "/login", "/logout", "/admin", "/no-such-page"):
        assert client.get(path).headers["Cache-Control"] == "no-store", path
    discovery = client.get("/.well-known/openid-configuration")
    assert discovery.headers["Cache-Control"].startswith("public")


def test_a_logo_hosted_elsewhere_is_allowed_by_the_csp(factory: AppFactory) -> None:
    """``*_LOGO_URL`` on the school's web site: the CSP lets that one origin's images in."""
    logo = "https://www.example.edu.cn/images/logo.png"
    response = factory(LOGO_URL=logo).test_client().get("/")
    assert logo in response.get_data(as_text=True)
    img_src = next(
        part
        for part in response.headers["Content-Security-Policy"].split("; ")
        if part.startswith("img-src")
    )
    assert img_src == "img-src 'self' data: https://www.example.edu.cn"


def test_hsts_only_over_https(factory: AppFactory) -> None:
    """HSTS is sent when the request came over HTTPS."""
    response = factory().test_client().get("/", base_url="https://localhost")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")


def test_pages_contain_no_inline_script_or_style(factory: AppFactory) -> None:
    """The CSP forbids inline code, so templates must not contain any."""
    page = factory().test_client().get("/").get_data(as_text=True)
    assert "<script>" not in page and "style=" not in page and "<style" not in page


def test_language_switch_sticks_in_a_cookie(factory: AppFactory) -> None:
    """?lang=en switches to English and the choice is remembered."""
    client = factory().test_client()
    response = client.get("/?lang=en")
    assert '<html lang="en">' in response.get_data(as_text=True)
    assert "lang=en" in response.headers["Set-Cookie"]
    assert "HttpOnly" in response.headers["Set-Cookie"]
    again = client.get("/")
    assert '<html lang="en">' in again.get_data(as_text=True)
    assert "Network and Information" in again.get_data(as_text=True)


def test_accept_language_english_is_honoured(factory: AppFactory) -> None:
    """A browser preferring English gets English pages."""
    response = factory().test_client().get("/", headers={"Accept-Language": "en-US,en;q=0.9"})
    assert '<html lang="en">' in response.get_data(as_text=True)


@pytest.mark.parametrize(("lang", "text"), [("zh_CN", "页面不存在"), ("en", "Page not found")])
def test_404_page_in_users_language(factory: AppFactory, lang: str, text: str) -> None:
    """An unknown address gives a 404 page in the user's language."""
    response = factory().test_client().get(f"/no-such-page?lang={lang}")
    assert response.status_code == 404
    assert text in response.get_data(as_text=True)


def test_api_clients_get_json_errors(factory: AppFactory) -> None:
    """A client asking for JSON gets a JSON error with the request id."""
    response = factory().test_client().get("/nope", headers={"Accept": "application/json"})
    assert response.status_code == 404
    assert response.json is not None
    assert response.json["request_id"] == response.headers["X-Request-ID"]


def test_nul_character_in_query_or_form_is_a_400_page(factory: AppFactory) -> None:
    """PostgreSQL cannot store a NUL: a query or form carrying one is refused, never a 500."""
    client = factory().test_client()
    for response in (
        client.get("/?q=a%00b"),
        client.post("/", data={"x": "1", "name": "张\x00三"}),
    ):
        assert response.status_code == 400
        assert "含有无法识别的字符" in response.get_data(as_text=True)
    assert client.get("/?q=ab").status_code == 200


def test_405_keeps_allow_header(factory: AppFactory) -> None:
    """A wrong method gets 405 with the Allow header intact."""
    response = factory().test_client().delete("/healthz")
    assert response.status_code == 405
    assert "GET" in response.headers["Allow"]


def test_unexpected_error_gives_500_page_and_is_logged(
    factory: AppFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug shows a friendly 500 page with the request id and logs the traceback."""
    app = factory(PROPAGATE_EXCEPTIONS=False)

    def broken() -> str:
        raise RuntimeError("boom")

    app.add_url_rule("/_broken", view_func=broken)
    with caplog.at_level(logging.ERROR):
        response = app.test_client().get("/_broken", headers={"X-Request-ID": "req-12345678"})
    assert response.status_code == 500
    assert "系统繁忙" in response.get_data(as_text=True)
    assert "req-12345678" in response.get_data(as_text=True)
    assert any("boom" in (r.exc_text or "") for r in caplog.records)


def test_request_id_is_echoed_or_generated(factory: AppFactory) -> None:
    """A well-formed incoming request id is kept; a malformed one is replaced."""
    client = factory().test_client()
    assert (
        client.get("/healthz", headers={"X-Request-ID": "abc-12345"}).headers["X-Request-ID"]
        == "abc-12345"
    )
    generated = client.get("/healthz", headers={"X-Request-ID": "bad id!"}).headers["X-Request-ID"]
    assert generated != "bad id!" and len(generated) == 16


def test_post_without_csrf_token_is_refused(factory: AppFactory) -> None:
    """Every form needs a CSRF token; without one the user sees why, in Chinese."""
    app = factory()
    app.add_url_rule("/_form", "form", lambda: "saved", methods=["POST"])
    response = app.test_client().post("/_form", data={"x": "1"})
    assert response.status_code == 400
    assert "页面已过期" in response.get_data(as_text=True)


def test_healthz_and_readyz_when_dependencies_answer(factory: AppFactory) -> None:
    """Both probes answer 200 with the database and store reachable."""
    client = factory().test_client()
    assert client.get("/healthz").json == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json == {"status": "ok", "checked": ["database", "store"]}


def test_readyz_names_unreachable_database(factory: AppFactory) -> None:
    """/readyz answers 503 naming the database when it cannot be reached."""
    app = factory.create(factory.config(DATABASE_URL="postgresql://nobody@127.0.0.1:1/none"))
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert "database" in response.json["failing"]


def test_readyz_names_unreachable_redis(factory: AppFactory) -> None:
    """/readyz answers 503 naming the store when Redis cannot be reached."""
    app = factory(REDIS_URL="redis://127.0.0.1:1/0")
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert list(response.json["failing"]) == ["store"]


def test_static_files_are_served(factory: AppFactory) -> None:
    """The shared stylesheet and logo are served."""
    client = factory().test_client()
    for path in ("/_hongliu/static/hongliu.css", "/_hongliu/static/logo.svg"):
        with client.get(path) as response:
            assert response.status_code == 200


def test_site_name_is_configurable(factory: AppFactory) -> None:
    """The school's own name and site name replace the defaults."""
    app = factory(SITE_NAME="测试易办", SCHOOL_NAME="测试大学")
    page = app.test_client().get("/").get_data(as_text=True)
    assert "测试易办" in page and "测试大学" in page


def test_app_is_flask(factory: AppFactory) -> None:
    """The factory returns a Flask app with the test configuration."""
    app = factory()
    assert isinstance(app, Flask) and app.config["TESTING"] is True


@pytest.mark.parametrize(
    ("target", "local"),
    [
        ("/security", True),
        ("/cas/login?service=https%3A%2F%2Fjw.example.edu%2F", True),
        ("", False),
        (None, False),
        ("https://evil.example/", False),
        ("//evil.example/", False),
        ("/\\evil.example/", False),
        ("/\t/evil.example/", False),
        ("/\n/evil.example/", False),
        ("security", False),
    ],
)
def test_only_paths_on_this_site_count_as_local(target: str | None, local: bool) -> None:
    """The one open-redirect rule: tabs, newlines and backslashes can make a path another host."""
    from shared.web import is_local_path

    assert is_local_path(target) is local
