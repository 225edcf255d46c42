"""Configuration from prefixed environment variables, validated once at start-up.

Each app declares its settings as a tuple of :class:`Setting`; :func:`load_settings` reads
``<PREFIX>_<NAME>`` from the environment, applies explicit overrides (tests pass a dict), parses
and validates every value, and raises :class:`ConfigError` naming the variable at fault.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ENVIRONMENTS = ("development", "testing", "production")

#: Secret keys a deployment must never run with, whatever their length.
KNOWN_WEAK_SECRETS = frozenset({"dev", "secret", "changeme", "change-me", "development"})
MIN_SECRET_LENGTH = 32


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable and how to fix it."""


Parser = Callable[[str], Any]


@dataclass(frozen=True)
class Setting:
    """One configurable value: ``<PREFIX>_<name>`` in the environment, ``name`` in app.config."""

    name: str
    default: Any = None
    parse: Parser = str
    help: str = ""


def parse_bool(raw: str) -> bool:
    """Accept the usual spellings of yes and no."""
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected true or false")


def parse_int(minimum: int | None = None, maximum: int | None = None) -> Parser:
    """A parser for integers within optional bounds."""

    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError("expected a whole number") from None
        if minimum is not None and value < minimum:
            raise ValueError(f"must be at least {minimum}")
        if maximum is not None and value > maximum:
            raise ValueError(f"must be at most {maximum}")
        return value

    return parse


def parse_choice(choices: Iterable[str]) -> Parser:
    """A parser accepting exactly one of ``choices`` (case-insensitive)."""
    allowed = tuple(choices)

    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}")
        return value

    return parse


def parse_url(*schemes: str) -> Parser:
    """A parser for absolute URLs whose scheme is one of ``schemes``."""

    def parse(raw: str) -> str:
        value = raw.strip()
        parts = urlsplit(value)
        scheme = parts.scheme.split("+", 1)[0]
        if scheme not in schemes:
            raise ValueError(
                f"expected a URL starting with {' or '.join(s + ':' for s in schemes)}"
            )
        if scheme == "unix":
            # A socket path instead of a host: unix:///run/redis/redis.sock?db=0 (redis-py).
            if not parts.path.strip("/"):
                raise ValueError("expected the socket's path, e.g. unix:///run/redis/redis.sock")
        elif scheme != "sqlite" and not parts.netloc:
            raise ValueError("expected a URL with a host")
        return value

    return parse


def parse_image_url(raw: str) -> str:
    """An image the pages may show under their Content-Security-Policy: an http(s) URL with a
    host (its origin is allowed), a path on this site, or a ``data:image/`` URL. A URL without
    its scheme (``www.example.edu.cn/logo.png``, ``//cdn…``) would be read as a path on this
    site or blocked by the policy: every page would show a broken image."""
    value = raw.strip()
    parts = urlsplit(value)
    if parts.scheme in ("http", "https") and parts.netloc:
        return value
    if value.startswith("/") and not value.startswith("//"):
        return value
    if value.lower().startswith("data:image/"):
        return value
    raise ValueError(
        "expected https://host/path/logo.png or a path on this site such as /static/logo.png"
    )


def parse_database_url(raw: str) -> str:
    """SQLite or PostgreSQL; a bare ``postgresql://`` is pinned to the psycopg 3 driver."""
    value: str = parse_url("sqlite", "postgresql", "postgres")(raw)
    for bare in ("postgres://", "postgresql://"):
        if value.startswith(bare):
            return "postgresql+psycopg://" + value[len(bare) :]
    return value


def load_settings(
    prefix: str,
    settings: Iterable[Setting],
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Read, parse and validate every setting; overrides win over the environment.

    Overrides are taken as already-typed values unless they are strings, which are parsed like
    environment values, so a test can say ``{"ENV": "production"}``.
    """
    environ = os.environ if environ is None else environ
    overrides = overrides or {}
    values: dict[str, Any] = {}
    for setting in settings:
        variable = f"{prefix}_{setting.name}"
        if setting.name in overrides:
            raw: Any = overrides[setting.name]
        elif variable in environ and environ[variable] != "":
            raw = environ[variable]
        else:
            values[setting.name] = setting.default
            continue
        if isinstance(raw, str):
            try:
                values[setting.name] = setting.parse(raw)
            except ValueError as exc:
                hint = f" ({setting.help})" if setting.help else ""
                raise ConfigError(f"{variable}={raw!r} is invalid: {exc}{hint}") from None
        else:
            values[setting.name] = raw
    for key, value in overrides.items():
        values.setdefault(key, value)
    return values


def resolve_secret_key(prefix: str, values: dict[str, Any], instance_path: str) -> str:
    """The configured secret key, or in development a random one kept in the instance folder.

    Production refuses a missing, short or well-known key: sessions, CSRF tokens and every
    signed value depend on it.
    """
    key = values.get("SECRET_KEY")
    variable = f"{prefix}_SECRET_KEY"
    if values["ENV"] == "production":
        if not key:
            raise ConfigError(
                f"{variable} is not set: production needs a random secret of at least "
                f"{MIN_SECRET_LENGTH} characters, e.g. python -c 'import secrets; "
                "print(secrets.token_hex(32))'"
            )
        if len(key) < MIN_SECRET_LENGTH or key.lower() in KNOWN_WEAK_SECRETS:
            raise ConfigError(
                f"{variable} is too short or a known default: production needs a random "
                f"secret of at least {MIN_SECRET_LENGTH} characters"
            )
        return str(key)
    if key:
        return str(key)
    path = Path(instance_path) / f"{prefix.lower()}-secret-key"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        # Created with O_EXCL so two processes starting together agree on one key.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32))
    return path.read_text().strip()


def check_production_cookies(prefix: str, values: Mapping[str, Any]) -> None:
    """Production must send cookies over HTTPS only."""
    if values["ENV"] == "production" and not values.get("SESSION_COOKIE_SECURE", True):
        raise ConfigError(
            f"{prefix}_SESSION_COOKIE_SECURE=false is refused in production: serve the app over "
            "HTTPS and keep cookies secure"
        )
