"""Configuration: environment parsing, production refusals and one-line start-up errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.config import (
    ConfigError,
    Setting,
    load_settings,
    parse_bool,
    parse_database_url,
    parse_int,
)

ROOT = Path(__file__).resolve().parents[2]


def test_environment_values_are_parsed_by_prefix() -> None:
    """IDP_X is read for setting X and parsed with its parser."""
    settings = (Setting("PORT", 1, parse_int(1, 9)), Setting("DEBUG", False, parse_bool))
    values = load_settings("IDP", settings, environ={"IDP_PORT": "7", "HALL_PORT": "3"})
    assert values == {"PORT": 7, "DEBUG": False}


def test_invalid_value_names_the_variable() -> None:
    """A malformed value fails with the variable's name and what is expected."""
    settings = (Setting("PORT", 1, parse_int(1, 9), "a port"),)
    with pytest.raises(
        ConfigError, match=r"IDP_PORT='99' is invalid: must be at most 9 \(a port\)"
    ):
        load_settings("IDP", settings, environ={"IDP_PORT": "99"})


def test_overrides_win_over_environment() -> None:
    """Explicit overrides (tests) beat the environment; strings are parsed too."""
    settings = (Setting("DEBUG", False, parse_bool),)
    values = load_settings("IDP", settings, environ={"IDP_DEBUG": "no"}, overrides={"DEBUG": "yes"})
    assert values["DEBUG"] is True


def test_bare_postgresql_url_uses_psycopg3() -> None:
    """postgresql:// and postgres:// URLs are pinned to the psycopg 3 driver."""
    assert parse_database_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert parse_database_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    with pytest.raises(ValueError):
        parse_database_url("mysql://u@h/db")


@pytest.mark.parametrize("key", [None, "short", "x" * 31])
def test_production_refuses_missing_or_short_secret(make_idp, key: str | None) -> None:
    """Production will not start with no secret key or one under 32 characters."""
    with pytest.raises(ConfigError, match="IDP_SECRET_KEY"):
        make_idp.create(make_idp.config(ENV="production", SECRET_KEY=key))


def test_production_refuses_insecure_cookies(make_hall) -> None:
    """Production will not send session cookies over plain HTTP."""
    config = make_hall.config(ENV="production", SECRET_KEY="k" * 40, SESSION_COOKIE_SECURE="false")
    with pytest.raises(ConfigError, match="HALL_SESSION_COOKIE_SECURE"):
        make_hall.create(config)


def test_production_defaults_to_secure_cookies_and_json_logs(make_idp) -> None:
    """In production cookies are Secure and logs are JSON unless told otherwise."""
    app = make_idp.create(make_idp.config(ENV="production", SECRET_KEY="k" * 40, DATA_KEY="d" * 40))
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app.config["LOG_FORMAT"] == "json"


def test_development_secret_key_is_random_and_kept(make_idp, tmp_path: Path) -> None:
    """Without a key, development generates one in the instance folder and reuses it."""
    from shared.config import resolve_secret_key

    first = resolve_secret_key("IDP", {"ENV": "development", "SECRET_KEY": None}, str(tmp_path))
    again = resolve_secret_key("IDP", {"ENV": "development", "SECRET_KEY": None}, str(tmp_path))
    assert first == again and len(first) == 64
    assert (tmp_path / "idp-secret-key").stat().st_mode & 0o077 == 0


def _flask(app: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("IDP_", "HALL_"))}
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", app, *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_cli_reports_bad_setting_in_one_line() -> None:
    """A malformed setting ends the command with one line naming it, and a non-zero exit."""
    result = _flask("idp", {"IDP_SMS_PROVIDER": "carrier-pigeon"}, "routes")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "IDP_SMS_PROVIDER='carrier-pigeon' is invalid" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_reports_unreachable_database_in_one_line() -> None:
    """An unreachable database is named with a hint, not a traceback."""
    result = _flask("hall", {"HALL_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}, "routes")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "cannot reach the database HALL_DATABASE_URL=" in result.stderr
    assert "start the database server" in result.stderr


def test_cli_reports_unreachable_redis_in_one_line(tmp_path: Path) -> None:
    """An unreachable Redis is named with a hint, not a traceback."""
    result = _flask(
        "idp",
        {
            "IDP_DATABASE_URL": f"sqlite:///{tmp_path / 'idp.db'}",
            "IDP_REDIS_URL": "redis://127.0.0.1:1/0",
        },
        "routes",
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "cannot reach Redis IDP_REDIS_URL=redis://127.0.0.1:1/0" in result.stderr


def test_testing_environment_is_refused_outside_tests() -> None:
    """IDP_ENV=testing cannot be set from the environment (it relaxes nothing, but confuses)."""
    result = _flask("idp", {"IDP_ENV": "testing"}, "routes")
    assert result.returncode != 0
    assert "IDP_ENV=testing is only for the test suite" in result.stderr


def test_lockout_durations_parse_as_seconds_list() -> None:
    """IDP_LOCKOUT_DURATIONS is a comma-separated list of positive seconds."""
    from idp.settings import parse_seconds_list

    assert parse_seconds_list("300, 900,3600") == (300, 900, 3600)
    for bad in ("", "0,5", "five"):
        with pytest.raises(ValueError):
            parse_seconds_list(bad)
