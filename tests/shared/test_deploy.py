"""The production examples in deploy/: gunicorn settings, env files, nginx, systemd, compose."""

from __future__ import annotations

import os
import re
import runpy
import secrets
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import request
from gunicorn.config import Config

import hall.settings
import idp.settings
from shared.config import Setting, load_settings
from tests.conftest import AppFactory

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
GUNICORN_CONF = DEPLOY / "gunicorn.conf.py"
NGINX_CONF = DEPLOY / "nginx" / "hongliu.conf"
COMPOSE = DEPLOY / "compose.yaml"

APPS: dict[str, tuple[str, tuple[Setting, ...]]] = {
    "idp": ("IDP", idp.settings.SETTINGS),
    "hall": ("HALL", hall.settings.SETTINGS),
}
ASSIGNMENT = re.compile(r"^#?([A-Z][A-Z0-9_]*)=(.*)$")


def load_gunicorn_conf(monkeypatch: pytest.MonkeyPatch, cores: int, **env: str) -> dict[str, Any]:
    """Execute gunicorn.conf.py as gunicorn does, with only ``env`` among GUNICORN_* set."""
    for name in list(os.environ):
        if name.startswith("GUNICORN_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    return runpy.run_path(str(GUNICORN_CONF))


def gunicorn_config(namespace: dict[str, Any]) -> Config:
    """Feed the file's names through gunicorn's own validators, as its loader does."""
    config = Config()
    for name, value in namespace.items():
        if name in config.settings:
            config.set(name, value)
    return config


def read_env_example(app: str) -> tuple[dict[str, str], dict[str, str]]:
    """Active ``NAME=value`` lines and commented-out ``#NAME=value`` lines of an env example."""
    active: dict[str, str] = {}
    commented: dict[str, str] = {}
    text = (DEPLOY / "env" / f"{app}.env.example").read_text(encoding="utf-8")
    for line in text.splitlines():
        match = ASSIGNMENT.match(line.strip())
        if match:
            target = commented if line.startswith("#") else active
            target[match.group(1)] = match.group(2)
    return active, commented


def clean_environ() -> dict[str, str]:
    """This process's environment without any app, gunicorn or Flask settings."""
    prefixes = ("IDP_", "HALL_", "GUNICORN_", "FLASK_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def production_environ(app: str, tmp_path: Path) -> dict[str, str]:
    """The app's env example with its blanks filled in, on SQLite in ``tmp_path``."""
    prefix, _ = APPS[app]
    active, _ = read_env_example(app)
    env = clean_environ()
    for name, value in active.items():
        env[name] = value or secrets.token_hex(32)
    env[f"{prefix}_DATABASE_URL"] = f"sqlite:///{tmp_path / (app + '.db')}"
    env[f"{prefix}_PREFLIGHT"] = "false"
    if app == "idp":
        env["IDP_OUTBOX_DIR"] = str(tmp_path / "outbox")
    return env


def check_config(app: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``gunicorn --check-config`` with deploy/gunicorn.conf.py: loads the app, then exits."""
    return subprocess.run(
        [
            *(sys.executable, "-m", "gunicorn", "--check-config"),
            *("-c", str(GUNICORN_CONF), f"{app}:create_app()"),
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def nginx_upstreams() -> dict[str, list[tuple[str, int]]]:
    """Each upstream block of hongliu.conf with its (host, port) servers."""
    text = NGINX_CONF.read_text(encoding="utf-8")
    upstreams: dict[str, list[tuple[str, int]]] = {}
    for name, body in re.findall(r"^upstream (\w+) \{(.*?)^\}", text, re.M | re.S):
        servers = re.findall(r"^\s*server ([\w.-]+):(\d+)\b", body, re.M)
        upstreams[name] = [(host, int(port)) for host, port in servers]
    return upstreams


def systemd_unit(app: str) -> dict[str, list[str]]:
    """The assignments of deploy/systemd/hongliu-<app>.service; keys may repeat."""
    unit: dict[str, list[str]] = {}
    text = (DEPLOY / "systemd" / f"hongliu-{app}.service").read_text(encoding="utf-8")
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            unit.setdefault(key.strip(), []).append(value.strip())
    return unit


# --- gunicorn.conf.py ---------------------------------------------------------------------


def test_gunicorn_defaults_are_production_sensible(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without GUNICORN_* variables: loopback, 2 x cores + 1 sync workers, no preload."""
    conf = load_gunicorn_conf(monkeypatch, cores=4)
    config = gunicorn_config(conf)
    assert config.bind == ["127.0.0.1:8000"]
    assert config.worker_class_str == "sync"
    assert config.workers == 9
    assert config.timeout == 30
    assert config.graceful_timeout == 30
    assert config.forwarded_allow_ips == ["127.0.0.1"]
    assert config.preload_app is False
    assert config.max_requests > 0 and 0 < config.max_requests_jitter < config.max_requests
    assert "{x-request-id}" in config.access_log_format
    assert "%(U)s" in config.access_log_format and "%(r)s" not in config.access_log_format


def test_gunicorn_threads_mean_one_worker_per_core(monkeypatch: pytest.MonkeyPatch) -> None:
    """GUNICORN_THREADS=4 (the IdP's unit) selects gthread with a worker per core."""
    config = gunicorn_config(load_gunicorn_conf(monkeypatch, cores=6, GUNICORN_THREADS="4"))
    assert config.worker_class_str == "gthread"
    assert (config.workers, config.threads) == (6, 4)


@pytest.mark.parametrize(("threads", "expected"), [("1", 16), ("4", 16)])
def test_gunicorn_default_workers_are_capped(
    monkeypatch: pytest.MonkeyPatch, threads: str, expected: int
) -> None:
    """A 64-core machine does not get 129 processes per instance by default."""
    conf = load_gunicorn_conf(monkeypatch, cores=64, GUNICORN_THREADS=threads)
    assert gunicorn_config(conf).workers == expected


def test_gunicorn_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    """Explicit GUNICORN_* values win, including above the default cap."""
    conf = load_gunicorn_conf(
        monkeypatch,
        cores=2,
        GUNICORN_BIND="0.0.0.0:8001, unix:/run/hongliu/idp.sock",
        GUNICORN_WORKERS="24",
        GUNICORN_TIMEOUT="60",
        GUNICORN_MAX_REQUESTS="0",
        GUNICORN_FORWARDED_ALLOW_IPS="*",
    )
    config = gunicorn_config(conf)
    assert config.bind == ["0.0.0.0:8001", "unix:/run/hongliu/idp.sock"]
    assert (config.workers, config.timeout, config.max_requests) == (24, 60, 0)
    assert config.forwarded_allow_ips == ["*"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GUNICORN_WORKERS", "0"),
        ("GUNICORN_WORKERS", "two"),
        ("GUNICORN_THREADS", "-1"),
        ("GUNICORN_WORKER_CLASS", "gevent"),
    ],
)
def test_gunicorn_malformed_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    """A bad GUNICORN_* value stops gunicorn with the variable's name."""
    with pytest.raises(ValueError, match=name):
        load_gunicorn_conf(monkeypatch, cores=2, **{name: value})


@pytest.mark.parametrize("app", sorted(APPS))
def test_gunicorn_check_config_loads_app_in_production(app: str, tmp_path: Path) -> None:
    """`gunicorn --check-config` builds each app from its filled-in env example."""
    result = check_config(app, production_environ(app, tmp_path), tmp_path)
    assert result.returncode == 0, result.stderr


def test_gunicorn_check_config_fails_on_production_refusal(tmp_path: Path) -> None:
    """The same check fails, naming the variable, when production's secret is missing."""
    env = production_environ("idp", tmp_path)
    del env["IDP_SECRET_KEY"]
    result = check_config("idp", env, tmp_path)
    assert result.returncode != 0
    assert "IDP_SECRET_KEY is not set" in result.stderr


# --- env examples -------------------------------------------------------------------------


@pytest.mark.parametrize("app", sorted(APPS))
def test_env_example_names_every_setting(app: str) -> None:
    """Every <PREFIX>_<NAME> of the app's SETTINGS is in its example, and nothing stale."""
    prefix, settings = APPS[app]
    active, commented = read_env_example(app)
    listed = set(active) | set(commented)
    expected = {f"{prefix}_{setting.name}" for setting in settings}
    assert sorted(expected - listed) == [], "missing from the example"
    own = {name for name in listed if not name.startswith("GUNICORN_")}
    assert sorted(own - expected) == [], "in the example but not a setting"


@pytest.mark.parametrize("app", sorted(APPS))
def test_env_example_values_are_valid(app: str) -> None:
    """Filled values parse; commented-out values are the true defaults; secrets are blank."""
    prefix, settings = APPS[app]
    active, commented = read_env_example(app)
    assert active[f"{prefix}_ENV"] == "production"
    assert active[f"{prefix}_SECRET_KEY"] == ""
    if app == "idp":
        assert active["IDP_DATA_KEY"] == ""
    load_settings(prefix, settings, environ=active)
    parsed_defaults = load_settings(prefix, settings, environ=commented)
    for setting in settings:
        variable = f"{prefix}_{setting.name}"
        if setting.default is not None and commented.get(variable):
            assert parsed_defaults[setting.name] == setting.default, variable


def test_env_example_outbox_is_writable_under_the_unit() -> None:
    """IDP_OUTBOX_DIR of the example lies inside the IdP unit's writable state directory."""
    active, _ = read_env_example("idp")
    unit = systemd_unit("idp")
    writable = [Path(path) for path in unit["ReadWritePaths"]]
    assert writable == [Path("/var/lib") / state for state in unit["StateDirectory"]]
    assert any(Path(active["IDP_OUTBOX_DIR"]).is_relative_to(path) for path in writable)


# --- systemd ------------------------------------------------------------------------------


@pytest.mark.parametrize("app", sorted(APPS))
def test_systemd_unit_runs_gunicorn_hardened(app: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The unit runs this app under gunicorn.conf.py as a dedicated user, hardened."""
    unit = systemd_unit(app)
    (exec_start,) = unit["ExecStart"]
    assert exec_start.endswith(f"'{app}:create_app()'")
    assert "/etc/hongliu/gunicorn.conf.py" in exec_start
    assert unit["EnvironmentFile"] == [f"/etc/hongliu/{app}.env"]
    assert unit["User"] == ["hongliu"]
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "PrivateTmp": "yes",
        "Restart": "on-failure",
        "Type": "notify",
    }.items():
        assert unit[key] == [value], key
    graceful = gunicorn_config(load_gunicorn_conf(monkeypatch, cores=2)).graceful_timeout
    assert int(unit["TimeoutStopSec"][0]) > graceful


# --- nginx --------------------------------------------------------------------------------


def test_nginx_headers_match_proxy_count_one(make_idp: AppFactory) -> None:
    """With the headers hongliu.conf sets and IDP_PROXY_COUNT=1 the app sees the real client."""
    text = NGINX_CONF.read_text(encoding="utf-8")
    headers = dict(re.findall(r"^\s*proxy_set_header ([\w-]+) (\S+);", text, re.M))
    nginx_variables = {
        "$host": "sso.example.edu.cn",
        "$scheme": "https",
        "$server_port": "443",
        # A client-supplied (forged) entry, then the address nginx saw.
        "$proxy_add_x_forwarded_for": "6.6.6.6, 203.0.113.7",
        "$hongliu_request_id": "req-0123456789",
        '""': "",
    }
    sent = {name: nginx_variables[value] for name, value in headers.items()}
    assert {"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Request-ID"} <= set(sent)
    app = make_idp(PROXY_COUNT=1)
    app.add_url_rule("/_test/seen", "seen", lambda: f"{request.remote_addr} {request.url_root}")
    response = app.test_client().get(
        "/_test/seen", headers=sent, environ_base={"REMOTE_ADDR": "10.0.0.5"}
    )
    assert response.get_data(as_text=True) == "203.0.113.7 https://sso.example.edu.cn/"
    assert response.headers["X-Request-ID"] == "req-0123456789"
    assert response.headers.get_all("Strict-Transport-Security") == [
        "max-age=31536000; includeSubDomains"
    ]
    assert not re.search(r"^\s*add_header\s+Strict-Transport-Security", text, re.M | re.I)


def test_nginx_static_aliases_point_at_package_folders() -> None:
    """Each static location is a blueprint's static URL and aliases that blueprint's folder."""
    from idp.auth.views import bp as auth
    from shared.web import shared_blueprint

    blueprints = {f"{bp.static_url_path}/": bp for bp in (shared_blueprint, auth)}
    text = NGINX_CONF.read_text(encoding="utf-8")
    aliases = re.findall(r"location (\S+) \{\s*alias (\S+);", text)
    assert {location for location, _ in aliases} == set(blueprints)
    for location, alias in aliases:
        folder = Path(blueprints[location].root_path, blueprints[location].static_folder or "")
        package_path = alias.split("/site-packages/", 1)[1].rstrip("/")
        assert folder == ROOT / package_path, location


def test_nginx_body_limits_and_proxy_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hall accepts five 10 MB attachments at once; nginx waits longer than gunicorn."""
    text = NGINX_CONF.read_text(encoding="utf-8")
    hall_server = text.split("server_name hall.example.edu.cn;")[-1]
    assert "client_max_body_size 52m;" in hall_server
    timeout = gunicorn_config(load_gunicorn_conf(monkeypatch, cores=2)).timeout
    read_timeouts = [int(t) for t in re.findall(r"proxy_read_timeout (\d+)s;", text)]
    assert len(read_timeouts) == 2 and min(read_timeouts) > timeout
    assert nginx_upstreams().keys() == {"hongliu_idp", "hongliu_hall"}
    assert all(len(servers) >= 2 for servers in nginx_upstreams().values())


def _self_signed(folder: Path, host: str) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True)
    (folder / "fullchain.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "privkey.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def test_nginx_accepts_the_configuration(tmp_path: Path) -> None:
    """`nginx -t` passes on hongliu.conf (hosts, certificates and log paths made local)."""
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if nginx is None:
        pytest.skip("nginx is not installed")
    text = NGINX_CONF.read_text(encoding="utf-8")
    for host in ("sso.example.edu.cn", "hall.example.edu.cn"):
        _self_signed(tmp_path / "tls" / host, host)
    text = text.replace("/etc/nginx/tls/", f"{tmp_path}/tls/")
    text = text.replace("/var/log/nginx/", f"{tmp_path}/")
    for servers in nginx_upstreams().values():
        for index, (host, port) in enumerate(servers, start=1):
            text = text.replace(f"server {host}:{port}", f"server 127.0.0.{index}:{port}")
    (tmp_path / "hongliu.conf").write_text(text, encoding="utf-8")
    temp = " ".join(
        f"{kind}_temp_path {tmp_path / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\n{temp}\naccess_log off;\ninclude {tmp_path}/hongliu.conf;\n}}\n",
        encoding="utf-8",
    )
    result = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


# --- Docker -------------------------------------------------------------------------------


def compose_services_by_text() -> list[str]:
    """Service names in compose.yaml read by indentation, for machines without PyYAML."""
    names: list[str] = []
    inside = False
    for line in COMPOSE.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            continue
        if re.match(r"^\S", line):
            inside = line.startswith("services:")
        elif inside and (match := re.match(r"^  ([\w.-]+):", line)):
            names.append(match.group(1))
    return names


def test_compose_has_the_nginx_upstream_hosts() -> None:
    """Every upstream host in hongliu.conf is a compose service, so one config serves both."""
    services = compose_services_by_text()
    assert {"db", "redis", "migrate", "nginx"} <= set(services)
    for servers in nginx_upstreams().values():
        for host, _ in servers:
            assert host in services, host


def test_compose_parses_and_is_consistent() -> None:
    """compose.yaml parses; depends_on names services; apps wait for migrate; ports match."""
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed in this environment")
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    services: dict[str, dict[str, Any]] = compose["services"]
    assert list(services) == compose_services_by_text()
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"
    assert services["db"]["image"] == "postgres:15"
    assert services["redis"]["image"] == "redis:7"
    command = " ".join(services["migrate"]["command"])
    assert "flask --app idp db upgrade" in command and "flask --app hall db upgrade" in command
    for upstream, servers in nginx_upstreams().items():
        app = upstream.removeprefix("hongliu_")
        for host, port in servers:
            service = services[host]
            assert service["command"] == [f"{app}:create_app()"]
            assert service["environment"]["GUNICORN_BIND"].endswith(f":{port}")
            condition = service["depends_on"]["migrate"]["condition"]
            assert condition == "service_completed_successfully"


def test_dockerfile_builds_what_the_makefile_builds() -> None:
    """Catalogues compiled as in the Makefile, static paths exist, and the app is not root."""
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    catalogs = re.search(r"^CATALOGS := (.+)$", makefile, re.M)
    assert catalogs is not None
    assert f"for d in {catalogs.group(1).strip()}; do" in dockerfile
    assert "pybabel compile" in dockerfile
    for copied in re.findall(r"COPY --from=build \$\{SITE_PACKAGES\}/(\S+) ", dockerfile):
        assert (ROOT / copied).is_dir(), copied
    users = re.findall(r"^USER (\S+)$", dockerfile, re.M)
    assert users and users[-1].split(":")[0] not in {"root", "0"}
