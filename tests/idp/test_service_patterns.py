"""CAS service patterns at registration: one whose host can run on into another host
(``https://app\\.example\\.edu.*`` matches ``https://app.example.edu.evil.example/``) is refused
on the command line and in the console, with a corrected example; RE2's ``\\z`` end of text, which
the console's own advice names, is accepted."""

from __future__ import annotations

import html

import pytest
from flask import Flask

from idp.clients.models import CasService
from idp.clients.rules import ClientError, LoosePattern, check_service_pattern, pattern_matches
from idp.extensions import db
from tests.idp.admin_support import (  # noqa: F401 - fixtures
    Signed,
    admin_fixture,
    desk_fixture,
)
from tests.idp.conftest import post_form

LOOSE = [
    r"https://app\.example\.edu.*",
    r"^https://app\.example\.edu.*$",
    r"https://app\.example\.edu.+",
    r"https://app\.example\.edu[^?]*",
]
TIGHT = [
    r"https://app\.example\.edu/.*",
    r"^https://app\.example\.edu(:\d+)?/.*",
    r"https://app\.example\.edu[/?].*",
    r"https?://app\.example\.edu/.*",
    r"https://(jw|lib)\.example\.edu/.*",
    r"http://127\.0\.0\.1:5002.*",
    r"https://app\.example\.edu/\z",
    r".*",
]


@pytest.mark.parametrize("pattern", LOOSE)
def test_a_pattern_whose_host_runs_on_is_refused(pattern: str) -> None:
    """The refusal names a URL on another host that the pattern would have accepted."""
    with pytest.raises(LoosePattern) as refused:
        check_service_pattern(pattern)
    probe = refused.value.probe
    assert probe.startswith("https://app.example.edu.") and pattern_matches(pattern, probe)


@pytest.mark.parametrize("pattern", TIGHT)
def test_patterns_that_end_their_host_or_do_not_name_one_are_accepted(pattern: str) -> None:
    """A host ended by /, a port or a character class, alternatives and catch-alls pass."""
    assert check_service_pattern(pattern) == pattern


def test_re2_end_of_text_is_accepted_and_anchors() -> None:
    """``\\z`` (what the console tells people to write) parses; ``\\Z`` is still refused."""
    pattern = r"https://app\.example\.edu/x\z"
    assert check_service_pattern(pattern) == pattern
    assert pattern_matches(pattern, "https://app.example.edu/x")
    assert not pattern_matches(pattern, "https://app.example.edu/xy")
    assert check_service_pattern(r"https://app\.example\.edu/x\\z")  # a backslash, then z
    with pytest.raises(ClientError):
        check_service_pattern(r"https://app\.example\.edu/x\Z")


def test_command_line_refuses_a_loose_pattern(idp_app: Flask) -> None:
    """``clients add-cas`` exits 1 with the reason; nothing is registered."""
    result = idp_app.test_cli_runner().invoke(
        args=["clients", "add-cas", "教务", "--service", r"https://jw\.example\.edu.*"]
    )
    assert result.exit_code == 1
    assert "also matches https://jw.example.edu.attacker.invalid/" in result.output
    with idp_app.app_context():
        assert db.session.query(CasService).count() == 0


def test_console_refuses_a_loose_pattern_in_chinese_keeping_it(
    idp_app: Flask, admin: Signed
) -> None:
    """应用接入: 400, the reason with an example under the field, the pattern kept."""
    pattern = r"https://jw\.example\.edu.*"
    response = post_form(
        admin.client, "/admin/clients/cas/new", {"name": "教务", "service_pattern": pattern}
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "服务地址规则过宽" in page and "https://jw.example.edu.attacker.invalid/" in page
    assert html.escape(pattern) in page
    with idp_app.app_context():
        assert db.session.query(CasService).count() == 0
