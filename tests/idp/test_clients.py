"""The client registry: registering OIDC clients and CAS services, matching, access policies."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from flask import Flask

from idp.clients.models import CasService, OidcClient
from idp.clients.operations import (
    find_cas_service,
    policy_admits,
    register_cas_service,
    register_oidc_client,
    secret_matches,
)
from idp.clients.rules import ClientError
from idp.directory.models import User, UserKind
from idp.directory.operations import ensure_department
from idp.extensions import db


def test_add_oidc_prints_secret_once_as_protocols_name_it(idp_app: Flask) -> None:
    """``clients add-oidc --json`` prints client_id, client_secret and redirect_uris."""
    result = idp_app.test_cli_runner().invoke(
        args=[
            "clients",
            "add-oidc",
            "教务系统",
            "--redirect-uri",
            "https://jw.example.edu/cb",
            "--first-party",
            "--json",
        ]
    )
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["redirect_uris"] == ["https://jw.example.edu/cb"]
    assert len(shown["client_secret"]) >= 43 and shown["require_pkce"] is True
    listed = idp_app.test_cli_runner().invoke(args=["clients", "list", "--json"])
    assert '"client_secret":' not in listed.output and shown["client_id"] in listed.output
    with idp_app.app_context():
        client = db.session.scalar(db.select(OidcClient))
        assert client.client_secret_hash != shown["client_secret"]
        assert secret_matches(client, shown["client_secret"])
        assert not secret_matches(client, shown["client_secret"] + "x")


def test_clients_list_shows_the_id_token_algorithm(idp_app: Flask) -> None:
    """``clients list --json`` names each client's ``id_token_signed_response_alg``: RS256
    unless it registered ES256 (which needs an ES256 key first)."""
    runner = idp_app.test_cli_runner()
    assert runner.invoke(args=["keys", "rotate", "--alg", "ES256"]).exit_code == 0
    for name, alg in (("教务系统", []), ("一卡通", ["--id-token-alg", "ES256"])):
        added = runner.invoke(
            args=["clients", "add-oidc", name, "--redirect-uri", "https://jw.example.edu/cb", *alg]
        )
        assert added.exit_code == 0, added.output
    listed = json.loads(runner.invoke(args=["clients", "list", "--json"]).output)
    assert [(c["client_name"], c["id_token_signed_response_alg"]) for c in listed] == [
        ("教务系统", "RS256"),
        ("一卡通", "ES256"),
    ]


def test_unknown_id_token_algorithm_is_refused(idp_app: Flask) -> None:
    """Only RS256 and ES256 can be registered (``none`` and HS256 never)."""
    with idp_app.app_context(), pytest.raises(ClientError, match="RS256, ES256"):
        register_oidc_client("网盘", ["https://pan.example.edu/cb"], id_token_alg="HS256")


def test_public_client_has_no_secret_and_always_needs_pkce(idp_app: Flask) -> None:
    """A public client gets no secret; --no-require-pkce cannot switch PKCE off for it."""
    with idp_app.app_context():
        client, secret = register_oidc_client(
            "app", ["https://app.example.edu/cb"], public=True, require_pkce=False
        )
        assert secret is None and client.require_pkce is True
        assert client.token_endpoint_auth_method == "none"


def test_directory_client_uses_client_credentials_without_redirect(idp_app: Flask) -> None:
    """A directory reader registers with client_credentials and a scope, no redirect URI."""
    result = idp_app.test_cli_runner().invoke(
        args=[
            "clients",
            "add-oidc",
            "hall-directory",
            "--grant-type",
            "client_credentials",
            "--scope",
            "directory.read",
            "--json",
        ]
    )
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["grant_types"] == ["client_credentials"] and shown["scope"] == "directory.read"


@pytest.mark.parametrize(
    "args",
    [
        ["--redirect-uri", "not-a-url"],
        ["--redirect-uri", "https://x.example.edu/cb#frag"],
        [],
    ],
)
def test_bad_oidc_registration_is_refused(idp_app: Flask, args: list[str]) -> None:
    """Malformed redirect URIs or none at all are refused with a one-line error."""
    result = idp_app.test_cli_runner().invoke(args=["clients", "add-oidc", "x", *args])
    assert result.exit_code == 1 and "error:" in result.output


def _add_oidc(app: Flask, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=["clients", "add-oidc", "x", *args, "--json"])


@pytest.mark.parametrize(
    "option", ["--redirect-uri", "--post-logout-uri", "--backchannel-logout-uri"]
)
@pytest.mark.parametrize("uri", ["http://127.evil.com/cb", "http://127.0.0.1.nip.io/cb"])
def test_plain_http_only_for_loopback_addresses_not_lookalike_names(
    idp_app: Flask, option: str, uri: str
) -> None:
    """http is for 127.0.0.1, ::1 or localhost: a host *named* 127.… may be anyone's."""
    extra = [] if option == "--redirect-uri" else ["--redirect-uri", "https://jw.example.edu/cb"]
    result = _add_oidc(idp_app, *extra, option, uri)
    assert result.exit_code == 1 and "error:" in result.output
    with idp_app.app_context():
        assert db.session.query(OidcClient).count() == 0


@pytest.mark.parametrize(
    "uri",
    ["http://127.0.0.1:8000/cb", "http://127.8.0.1/cb", "http://[::1]/cb", "http://localhost/cb"],
)
def test_plain_http_on_a_loopback_address_is_accepted(idp_app: Flask, uri: str) -> None:
    """A developer's own machine may use http."""
    result = _add_oidc(idp_app, "--redirect-uri", uri)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["redirect_uris"] == [uri]


@pytest.mark.parametrize(
    "uri",
    [
        "https://jw.example.edu@evil.example/cb",  # user name: the browser goes to evil.example
        "https://jw.example.edu/cb#",  # a fragment, even empty (RFC 6749 §3.1.2)
        "https://*.example.edu/cb",  # a wildcard host
        "\thttps://jw.example.edu/cb",
        "https://jw.example.edu/cb ",
        "https://jw.example.edu/c b",
        "https://jw.example.edu/c\u3000b",
        "https://jw.example.edu:99999/cb",  # Werkzeug cannot build the Location header
        "https://" + "a" * 64 + ".example.edu/cb",  # a label IDNA refuses
        "https://jw.example.edu/" + "a" * 1000,  # longer than the column
    ],
)
def test_malformed_client_uris_are_refused(idp_app: Flask, uri: str) -> None:
    """User names, fragments, wildcards, whitespace, bad ports or labels, overlong URIs."""
    for option in ("--redirect-uri", "--backchannel-logout-uri"):
        extra = [] if option == "--redirect-uri" else ["--redirect-uri", "https://a.edu/cb"]
        result = _add_oidc(idp_app, *extra, option, uri)
        assert result.exit_code == 1 and "error:" in result.output, (option, result.output)


def test_a_uri_given_twice_is_stored_once(idp_app: Flask) -> None:
    """Repeated --redirect-uri / --post-logout-uri are kept once each, in their order."""
    a, b = "https://jw.example.edu/a", "https://jw.example.edu/b"
    result = _add_oidc(
        idp_app,
        *("--redirect-uri", a, "--redirect-uri", b, "--redirect-uri", a),
        *("--post-logout-uri", b, "--post-logout-uri", b),
    )
    shown = json.loads(result.output)
    assert shown["redirect_uris"] == [a, b] and shown["post_logout_redirect_uris"] == [b]


@pytest.mark.parametrize(
    "scopes", [["profile"], ["openid", "open id"], ["openid", "openid\n"], ["openid", ""]]
)
def test_cli_refuses_the_scopes_the_console_refuses(idp_app: Flask, scopes: list[str]) -> None:
    """A code-flow client needs openid; a scope holds no whitespace (the console's rule)."""
    args = [arg for scope in scopes for arg in ("--scope", scope)]
    result = _add_oidc(idp_app, "--redirect-uri", "https://jw.example.edu/cb", *args)
    assert result.exit_code == 1 and "scope" in result.output


def test_cli_refuses_what_the_columns_cannot_hold(idp_app: Flask) -> None:
    """A name over 200 characters is refused with a message, not a database error."""
    long_name = idp_app.test_cli_runner().invoke(
        args=["clients", "add-oidc", "名" * 201, "--redirect-uri", "https://jw.example.edu/cb"]
    )
    assert long_name.exit_code == 1 and "error:" in long_name.output
    cas = idp_app.test_cli_runner().invoke(
        args=["clients", "add-cas", "名" * 201, "--service", r"https://jw\.example\.edu/.*"]
    )
    assert cas.exit_code == 1 and "error:" in cas.output


@pytest.mark.parametrize(
    ("pattern", "says"),
    [
        ("(" * 600 + ")" * 600, "regular expression"),  # RecursionError in Python's parser
        (r"https://a\.edu/x{4294967296}", "regular expression"),  # OverflowError
        (r"https://(a)\1\.edu/.*", "RE2"),  # a backreference
        (r"https://(?!evil)\w+\.edu/.*", "RE2"),  # a lookaround
    ],
)
def test_cli_refuses_patterns_that_break_the_parser_or_need_backtracking(
    idp_app: Flask, pattern: str, says: str
) -> None:
    """An error line and exit 1, never a traceback; RE2's limits are named."""
    result = idp_app.test_cli_runner().invoke(
        args=["clients", "add-cas", "x", "--service", pattern]
    )
    assert isinstance(result.exception, SystemExit) and result.exit_code == 1
    assert "error:" in result.output and says in result.output


def test_cas_patterns_registered_so_far_still_match(idp_app: Flask) -> None:
    """What the demo and the docs register (an escaped URL and ``/.*``, classes, groups,
    ``(?i)``, ``^…$``) matches as before under RE2."""
    cases = {
        re.escape("https://jw.example.edu.cn/a-b~c") + "/.*": "https://jw.example.edu.cn/a-b~c/x",
        r"https://(jw|lib)\.example\.edu/[\w-]+\?next=\d+": "https://lib.example.edu/a-b?next=12",
        r"(?i)^HTTPS://JW\.EXAMPLE\.EDU/.*$": "https://jw.example.edu/教务?q=1",
        r"https?://app\.example\.edu(:\d+)?/.+": "http://app.example.edu:8443/login",
    }
    with idp_app.app_context():
        for pattern, url in cases.items():
            service = register_cas_service("x", pattern)
            db.session.commit()
            found = find_cas_service(url)
            assert found is not None and found.id == service.id, pattern
            db.session.delete(service)
            db.session.commit()


def test_cas_service_pattern_matches_whole_url_only(idp_app: Flask) -> None:
    """A CAS pattern must match the entire service URL: prefixes and suffixes do not count."""
    with idp_app.app_context():
        register_cas_service("教务", r"https://jw\.example\.edu/.*")
        assert find_cas_service("https://jw.example.edu/login?x=1") is not None
        assert find_cas_service("https://evil.example/?https://jw.example.edu/") is None
        assert find_cas_service("https://jw.example.edu.evil.example/") is None
        assert find_cas_service(None) is None


def test_add_cas_cli_and_invalid_pattern(idp_app: Flask) -> None:
    """``clients add-cas`` registers attributes and proxying; a broken regex is refused."""
    runner = idp_app.test_cli_runner()
    ok = runner.invoke(
        args=[
            "clients",
            "add-cas",
            "图书馆",
            "--service",
            r"https://lib\.example\.edu/.*",
            "--attribute",
            "name",
            "--attribute",
            "kind",
            "--proxy",
            "--json",
        ]
    )
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["attributes"] == ["name", "kind"]
    bad = runner.invoke(args=["clients", "add-cas", "x", "--service", "https://(unclosed"])
    assert bad.exit_code == 1 and "regular expression" in bad.output
    with idp_app.app_context():
        with pytest.raises(ClientError):
            register_cas_service("x", ".*", attributes=["password"])
        assert db.session.query(CasService).count() == 1


def test_access_policy_by_kind_and_department_tree(idp_app: Flask) -> None:
    """A client for staff of one department admits its sub-departments and nobody else."""
    with idp_app.app_context():
        ensure_department("LUT", "红柳大学")
        ensure_department("CS", "计算机学院", "LUT")
        ensure_department("AI", "人工智能系", "CS")
        ensure_department("HR", "人事处", "LUT")
        client, _ = register_oidc_client("staff-only", ["https://s.example.edu/cb"])
        client.allowed_kinds = ["staff"]
        client.allowed_departments = ["CS"]
        staff_ai = User(
            account="t1",
            name="a",
            kind=UserKind.STAFF,
            department=db.session.scalar(
                db.select(User.department.property.mapper.class_).filter_by(code="AI")
            ),
        )
        staff_hr = User(
            account="t2",
            name="b",
            kind=UserKind.STAFF,
            department=db.session.scalar(
                db.select(User.department.property.mapper.class_).filter_by(code="HR")
            ),
        )
        student = User(
            account="s1", name="c", kind=UserKind.STUDENT, department=staff_ai.department
        )
        assert policy_admits(client, staff_ai)
        assert not policy_admits(client, staff_hr)
        assert not policy_admits(client, student)
        client.enabled = False
        assert not policy_admits(client, staff_ai)
