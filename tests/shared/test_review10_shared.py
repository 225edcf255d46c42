"""Review of the shared code and the deployment: store keys, configuration, nginx, docs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shared.config import ConfigError, load_settings
from shared.factory import common_settings
from tests.conftest import AppFactory

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
NGINX_CONF = DEPLOY / "nginx" / "hongliu.conf"

# --- The store: keys longer than the SQL column ----------------------------------------------


def test_hall_callback_with_an_overlong_state_is_refused_not_a_500(
    make_hall: AppFactory,
) -> None:
    """/auth/callback with a made-up 300-character state answers the 登录请求已失效 page."""
    app = make_hall(OIDC_CLIENT_ID="hall", OIDC_CLIENT_SECRET="secret")
    response = app.test_client().get("/auth/callback?code=abc&state=" + "a" * 300)
    assert response.status_code == 400
    assert "登录请求已失效" in response.get_data(as_text=True)


# --- Configuration --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["unix:///run/redis/redis.sock", "unix:///run/redis/redis.sock?db=2"]
)
def test_redis_over_a_unix_socket_is_accepted(url: str) -> None:
    """IDP_REDIS_URL=unix:///path (redis-py's documented form) is a valid setting."""
    values = load_settings("IDP", common_settings("x"), environ={"IDP_REDIS_URL": url})
    assert values["REDIS_URL"] == url


def test_redis_unix_url_without_a_path_is_refused() -> None:
    """unix:// with no socket path names the variable."""
    with pytest.raises(ConfigError, match="IDP_REDIS_URL"):
        load_settings("IDP", common_settings("x"), environ={"IDP_REDIS_URL": "unix://"})


# --- nginx ----------------------------------------------------------------------------------


def _nginx_body_limit(host: str) -> int:
    """client_max_body_size of the server block for ``host``, in bytes."""
    text = NGINX_CONF.read_text(encoding="utf-8")
    block = text.split(f"server_name {host};", 1)[1].split("\nserver {", 1)[0]
    size = re.search(r"^\s*client_max_body_size (\d+)([km]?);", block, re.M)
    assert size is not None, host
    return int(size.group(1)) * {"": 1, "k": 1024, "m": 1024 * 1024}[size.group(2)]


def test_nginx_lets_through_every_request_the_apps_accept(
    make_idp: AppFactory, make_hall: AppFactory
) -> None:
    """Five full-size attachments (the hall's own limit) reach the hall instead of nginx's bare
    413 page; so does the IdP's largest CSV import."""
    hall_limit = make_hall().config["MAX_CONTENT_LENGTH"]
    idp_limit = make_idp().config["MAX_CONTENT_LENGTH"]
    assert _nginx_body_limit("hall.example.edu.cn") > hall_limit
    assert _nginx_body_limit("sso.example.edu.cn") > idp_limit


# --- deploy/README.md -----------------------------------------------------------------------


def test_deploy_readme_installs_and_enables_every_systemd_unit() -> None:
    """Following deploy/README.md copies every unit and timer and starts every timer, so the
    hourly IdP purge (timed-out sessions end, their clients hear of it), the hall's directory
    sync and its attachment purge actually run; the table lists each unit."""
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    units = sorted(path.name for path in (DEPLOY / "systemd").iterdir())
    copied = {
        unit
        for command in re.findall(r"^\s*cp (deploy/systemd/.+) /etc/systemd/system/", readme, re.M)
        for pattern in command.split()
        for unit in units
        if Path(unit).match(Path(pattern).name)
    }
    assert sorted(copied) == units
    enabled = {
        name
        for names in re.findall(
            r"systemctl (?:daemon-reload && systemctl )?enable --now (.+)", readme
        )
        for name in names.split()
    }
    timers = [unit for unit in units if unit.endswith(".timer")]
    assert timers and sorted(set(timers) - enabled) == []
    assert {"hongliu-idp", "hongliu-hall"} <= enabled
    for unit in units:
        base = unit.removesuffix(".service").removesuffix(".timer")
        assert f"`systemd/{base}.service`" in readme, unit


# --- compose --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("job", "env_file"),
    [
        ("flask --app hall directory sync", "hall.env"),
        ("flask --app idp purge", "idp.env"),
        ("flask --app hall attachments purge", "hall.env"),
    ],
)
def test_compose_runs_the_housekeeping_jobs(job: str, env_file: str) -> None:
    """What the systemd timers run on machines runs under compose too, repeatedly, with the
    app's settings, after the migrations: otherwise the hall never learns the directory and
    timed-out sessions are never ended."""
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed in this environment")
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    found = []
    for service in compose["services"].values():
        words = [*service.get("entrypoint", []), *service.get("command", [])]
        if job in " ".join(words):
            found.append((service, " ".join(words)))
    assert len(found) == 1, job
    service, command = found[0]
    assert "--every" in command or re.search(r"while .*sleep \d+", command), command
    assert service["env_file"] == [env_file]
    prefix = env_file.split(".")[0].upper()
    assert service["environment"][f"{prefix}_DATABASE_URL"].startswith("postgresql://")
    assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert service.get("restart") == "unless-stopped"


# --- Error pages ----------------------------------------------------------------------------


def test_too_large_request_page_is_in_the_users_language(make_idp: AppFactory) -> None:
    """A sign-in form posted with a body over the IdP's limit gets a Chinese 413 page, not
    werkzeug's English 'Request Entity Too Large'."""
    app = make_idp()
    limit = app.config["MAX_CONTENT_LENGTH"]
    response = app.test_client().post("/login", data={"account": "a" * (limit + 1)})
    assert response.status_code == 413
    page = response.get_data(as_text=True)
    assert "提交的内容太大" in page
    assert "Request Entity Too Large" not in page


@pytest.mark.parametrize("app_name", ["idp", "hall"])
def test_statuses_without_own_words_fall_back_to_chinese(
    app_name: str, request: pytest.FixtureRequest
) -> None:
    """A range request past the end of a static file (416) explains itself in Chinese."""
    app = request.getfixturevalue(f"make_{app_name}")()
    with app.test_client().get(
        "/_hongliu/static/hongliu.css", headers={"Range": "bytes=99999999-"}
    ) as response:
        assert response.status_code == 416
        page = response.get_data(as_text=True)
    assert "请求有误" in page
    assert "Requested Range Not Satisfiable" not in page


# --- The logo and the Content-Security-Policy ------------------------------------------------


@pytest.mark.parametrize(
    "logo", ["www.lut.edu.cn/images/logo.png", "//www.lut.edu.cn/logo.png", "logo.png", "ftp://x/y"]
)
def test_logo_url_the_pages_could_not_show_is_refused(logo: str) -> None:
    """A logo URL without its scheme would be a path on this site or blocked by the CSP on
    every page: refused at start, naming the variable."""
    with pytest.raises(ConfigError, match="HALL_LOGO_URL"):
        load_settings("HALL", common_settings("x"), environ={"HALL_LOGO_URL": logo})


@pytest.mark.parametrize(
    "logo",
    [
        "https://www.lut.edu.cn/images/logo.png",
        "/_hongliu/static/logo.svg",
        "data:image/png;base64,AA==",
    ],
)
def test_logo_url_is_shown_and_allowed_by_the_csp(make_hall: AppFactory, logo: str) -> None:
    """An accepted logo is the page's brand image, and the page's CSP lets it load."""
    app = make_hall(LOGO_URL=logo)
    response = app.test_client().get("/")
    assert f'src="{logo}"' in response.get_data(as_text=True)
    img_src = re.search(r"img-src ([^;]+)", response.headers["Content-Security-Policy"])
    assert img_src is not None
    sources = img_src.group(1).split()
    if logo.startswith("https://"):
        assert "https://www.lut.edu.cn" in sources
    elif logo.startswith("data:"):
        assert "data:" in sources
    else:
        assert "'self'" in sources


# --- Request ids ----------------------------------------------------------------------------


@pytest.mark.parametrize("app_name", ["idp", "hall"])
def test_expired_form_page_carries_the_request_id(
    app_name: str, request: pytest.FixtureRequest
) -> None:
    """The 页面已过期 page (a form without a valid CSRF token, the refusal people most often
    report) shows and answers with the request id, like every other page."""
    app = request.getfixturevalue(f"make_{app_name}")()
    app.add_url_rule("/_form", "form", lambda: "saved", methods=["POST"])
    response = app.test_client().post(
        "/_form", data={"x": "1"}, headers={"X-Request-ID": "req-csrf-0001"}
    )
    assert response.status_code == 400
    assert "页面已过期" in response.get_data(as_text=True)
    assert response.headers.get("X-Request-ID") == "req-csrf-0001"
    assert "req-csrf-0001" in response.get_data(as_text=True)
