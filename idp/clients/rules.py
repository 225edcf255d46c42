"""What a registration may hold: client URIs, scopes and names, and CAS service patterns
(RE2, so that matching them against untrusted URLs takes linear time)."""

from __future__ import annotations

import functools
import ipaddress
import logging
import re
from typing import Protocol, cast
from urllib.parse import SplitResult, urlsplit

import re2
from werkzeug.urls import iri_to_uri

#: A scope name: no whitespace (scopes travel space-separated), nothing exotic.
SCOPE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
#: Longest name (the ``name`` columns are ``String(200)``).
MAX_NAME_LENGTH = 200
#: Longest client URI (``backchannel_logout_uri`` is ``String(1000)``; the lists keep to it too).
MAX_URI_LENGTH = 1000
#: Longest CAS service pattern (what the console's field allows).
MAX_PATTERN_LENGTH = 2000

log = logging.getLogger(__name__)


class ClientError(ValueError):
    """A registration was refused; the message says why."""


class ScopeError(ClientError):
    """The scopes were refused: ``invalid`` lists the malformed ones (empty: openid is missing)."""

    def __init__(self, message: str, invalid: list[str]) -> None:
        super().__init__(message)
        self.invalid = invalid


class UnsupportedPattern(ClientError):
    """A valid regular expression using what RE2 cannot run (backreferences, lookarounds…)."""


def has_blank_or_control(text: str) -> bool:
    """Whether ``text`` holds whitespace or a control character (no URL or service id may)."""
    return any(c <= " " or c == "\x7f" or c.isspace() for c in text)


def web_url_parts(url: str) -> SplitResult | None:
    """``url`` split into its parts, or None when it holds whitespace or control characters or
    when Werkzeug could not put it in a Location header (a port out of range, a host label IDNA
    refuses as over 63 characters…): such a URL fails only after a code or ticket is issued."""
    if has_blank_or_control(url):
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError when out of range
        iri_to_uri(url)
    except (ValueError, UnicodeError):
        return None
    return parts


#: A host name: letters (any script, for IDNs), digits, dots, hyphens, underscores — no ``*``.
_HOST_NAME = re.compile(r"[\w.-]+")


def _is_loopback(host: str) -> bool:
    """The developer's own machine: ``localhost`` or a loopback address (not a name like
    ``127.evil.com``, which anyone can point anywhere)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return _HOST_NAME.fullmatch(host) is not None
    return True


def check_uri(uri: str, what: str) -> str:
    """A client URI: absolute https (http only on loopback, for development), at most
    :data:`MAX_URI_LENGTH` characters, without user name, wildcard, whitespace or ``#``
    (a fragment, even empty, is forbidden by RFC 6749 §3.1.2)."""
    parts = web_url_parts(uri) if len(uri) <= MAX_URI_LENGTH and "#" not in uri else None
    host = parts.hostname if parts is not None else None
    if (
        parts is None
        or not host
        or "@" in parts.netloc
        or not _is_host(host)
        or not (parts.scheme == "https" or (parts.scheme == "http" and _is_loopback(host)))
    ):
        raise ClientError(
            f"{what} must be an absolute https URL of at most {MAX_URI_LENGTH} characters, "
            f"without user name, wildcard, whitespace or fragment "
            f"(http only on 127.0.0.1/localhost): {uri!r}"
        )
    return uri


def check_scopes(scopes: list[str], grants: list[str]) -> list[str]:
    """Scopes of a client: well-formed names, ``openid`` among them for the code flow."""
    invalid = [scope for scope in scopes if not SCOPE_PATTERN.fullmatch(scope)]
    if invalid:
        raise ScopeError(f"invalid scope(s): {', '.join(map(repr, invalid))}", invalid)
    if "authorization_code" in grants and "openid" not in scopes:
        raise ScopeError("a client of the authorization code grant needs the openid scope", [])
    return scopes


def check_name(name: str) -> str:
    """A client's or service's name, stripped: at most :data:`MAX_NAME_LENGTH` characters."""
    name = name.strip()
    if len(name) > MAX_NAME_LENGTH:
        raise ClientError(f"the name is longer than {MAX_NAME_LENGTH} characters")
    return name


class ServiceMatcher(Protocol):
    """A compiled CAS service pattern."""

    def fullmatch(self, text: str) -> object | None: ...


#: RE2 as Python's ``re`` reads URL patterns (its defaults), without its own log lines.
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


class LoosePattern(ClientError):
    """A pattern that also matches URLs on hosts its author did not mean: ``probe`` is one."""

    def __init__(self, probe: str) -> None:
        super().__init__(
            f"the service pattern also matches {probe}, another host: end the host name with / "
            "or a port (e.g. ^https://app\\.example\\.edu/.*)"
        )
        self.probe = probe


#: RE2's end of text ``\z`` (not after an escaped backslash), which Python's parser spells ``\Z``.
_RE2_END = re.compile(r"(?<!\\)((?:\\\\)*)\\z")
#: One character of a pattern's literal beginning: a letter, digit or ``-_:/``, or ``\.``.
_LITERAL_CHAR = re.compile(r"\\[./:-]|[A-Za-z0-9_:/-]")


def _literal_start(service_pattern: str) -> str:
    """What every URL the pattern matches begins with, as far as plain text goes: ``^https://
    app\\.example\\.edu.*`` → ``https://app.example.edu``."""
    text, at = [], 1 if service_pattern.startswith("^") else 0
    while match := _LITERAL_CHAR.match(service_pattern, at):
        text.append(match.group()[-1])
        at = match.end()
    # A literal followed by a quantifier is not literal (``s?``, ``x*``): leave it out.
    if at < len(service_pattern) and service_pattern[at] in "?*{" and text:
        text.pop()
    return "".join(text)


def _check_host_ends(service_pattern: str) -> None:
    """Refuse ``https://app\\.example\\.edu.*``: it matches ``https://app.example.edu.evil.
    example/`` too, and a ticket would be issued there. The common mistake only — a pattern whose
    plain-text start names a whole host and whose next part lets the host go on."""
    start = _literal_start(service_pattern)
    scheme, separator, rest = start.partition("://")
    if not separator or "/" in rest or ":" in rest or "." not in rest:
        return  # no host written out in full (or already ended by a path or port)
    probe = f"{scheme}://{rest}.attacker.invalid/"
    if pattern_matches(service_pattern, probe):
        raise LoosePattern(probe)


def check_service_pattern(service_pattern: str) -> str:
    """A CAS service pattern: a regular expression in RE2's syntax (matched in linear time, so
    no URL can make it backtrack for minutes) that does not let its host run on into another
    (:class:`LoosePattern`)."""
    if len(service_pattern) > MAX_PATTERN_LENGTH:
        raise ClientError(f"the service pattern is longer than {MAX_PATTERN_LENGTH} characters")
    # Python's parser too: RE2 quietly reads some of what it refuses as literal text
    # (``x{4294967296}``), or takes nesting no one meant (600 parentheses).
    try:
        re.compile(_RE2_END.sub(r"\1\\Z", service_pattern))
    except (re.error, RecursionError, OverflowError, ValueError) as exc:
        raise ClientError(f"the service pattern is not a valid regular expression: {exc}") from None
    try:
        re2.compile(service_pattern, _RE2_OPTIONS)
    except re2.error as exc:
        detail = exc.args[0] if exc.args else ""
        if isinstance(detail, bytes):
            detail = detail.decode(errors="replace")
        raise UnsupportedPattern(
            "the service pattern must use RE2 syntax (no backreferences or lookarounds; "
            f"\\z, not \\Z): {detail}"
        ) from None
    except (ValueError, RecursionError, OverflowError) as exc:
        raise ClientError(f"the service pattern is not a valid regular expression: {exc}") from None
    _check_host_ends(service_pattern)
    return service_pattern


@functools.lru_cache(maxsize=1024)
def service_matcher(service_pattern: str) -> ServiceMatcher | None:
    """The compiled pattern, or None when RE2 cannot compile it: a pattern registered before
    RE2 was required then matches nothing (logged once per process), never an error page."""
    try:
        return cast(ServiceMatcher, re2.compile(service_pattern, _RE2_OPTIONS))
    except (re2.error, ValueError, RecursionError, OverflowError) as exc:
        log.warning(
            "CAS service pattern %r does not compile with RE2 (%s); it matches nothing",
            service_pattern[:200],
            exc,
        )
        return None


def pattern_matches(service_pattern: str, url: str) -> bool:
    """True when ``service_pattern`` matches the whole of ``url`` (in linear time)."""
    matcher = service_matcher(service_pattern)
    return matcher is not None and matcher.fullmatch(url) is not None
