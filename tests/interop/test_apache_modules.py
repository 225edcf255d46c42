"""Apache's mod_auth_cas and mod_auth_openidc — the SSO modules campus web servers use — against
the IdP as a live server.

Debian's own packages (``apache2-bin``, ``libapache2-mod-auth-cas`` 1.2,
``libapache2-mod-auth-openidc`` 2.4) run in real Apache processes with generated configurations
(``tests/interop/apache_support.py``); ``requests`` plays the browser, signing in on the IdP's
form with its CSRF token. A protected page is a CGI script that prints the environment the
application sees. Without the packages the tests are skipped locally; under CI (``CI`` set)
that is a failure (``deploy/system-deps.sh`` installs them).

mod_auth_cas speaks CAS 1 and 2 (``CASVersion``) and SAML 1.1 (``CASValidateSAML``, which needs
``/cas/samlValidate``, not offered here); CAS 3.0's ``p3/serviceValidate`` answers in the CAS 2
format with ``cas:attributes``, which the module reads as attributes. It validates over plain
http with a warning only, so no TLS is put in front of the IdP here.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import requests

from idp.admin.snippets import (
    MOD_AUTH_CAS_CACHE,
    PASSPHRASE_PLACEHOLDER,
    SECRET_PLACEHOLDER,
    cas_snippets,
    oidc_snippets,
)
from idp.clients.models import CasService, OidcClient
from tests.e2e.conftest import LiveServer, free_port
from tests.interop.apache_support import (
    LOGGED_OUT_PAGE,
    Apache,
    Servers,
    cgi_env,
    eventually,
    is_sign_in_form,
    missing,
    redirect_target,
    require_apache,
    sign_in,
    sign_out_at_idp,
    signed_in_on_the_form,
)
from tests.interop.test_python_cas import PASSWORD, add_user

#: Every CAS-protected page here lies under this path; /unregistered/ is never registered.
CAS_PATTERN = r"http://127\.0\.0\.1:\d+/cas-app/.*"
#: mod_auth_cas set-ups: ``CASVersion`` and the IdP endpoint it validates at.
CAS_SETUPS = {
    "cas1": (1, "validate"),  # CAS 1.0: "yes\n<user>\n"
    "cas2": (2, "serviceValidate"),  # CAS 2.0, as most campus servers are configured
    "cas3": (2, "p3/serviceValidate"),  # CAS 3.0: the CAS 2.0 answer with cas:attributes
}
OIDC_SCOPE = "openid profile campus"


#: Skipped before the live IdP starts when the packages are missing; under CI the fixture
#: below fails instead.
pytestmark = pytest.mark.skipif(
    missing() is not None and not os.environ.get("CI"), reason=str(missing())
)


@pytest.fixture(scope="module", autouse=True)
def _apache_available() -> None:
    require_apache()


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    group = Servers(tmp_path_factory)
    yield group
    group.stop()


@pytest.fixture(autouse=True)
def _logs_on_failure(
    request: pytest.FixtureRequest, servers: Servers, live_idp: LiveServer
) -> Iterator[None]:
    """A failed test prints what Apache and the IdP logged meanwhile."""
    failed_before = request.session.testsfailed
    marks = {apache.name: apache.log_sizes() for apache in servers.running}
    idp_mark = live_idp.log_path.stat().st_size
    yield
    if request.session.testsfailed == failed_before:
        return
    for apache in servers.running:
        print(apache.logs(marks.get(apache.name, (0, 0))))
    with live_idp.log_path.open("rb") as log:
        log.seek(idp_mark)
        print(f"--- {live_idp.log_path}\n{log.read().decode('utf-8', 'replace')}")


@pytest.fixture(scope="module")
def account(live_idp: LiveServer) -> str:
    """One active account (赵六) with a verified phone; each test signs it in afresh."""
    return add_user(live_idp)


def visit(browser: requests.Session, url: str, idp: LiveServer, account: str) -> requests.Response:
    """``browser`` opens ``url``, signing ``account`` in on the IdP's form if it comes up."""
    return sign_in(browser, url, idp_url=idp.url, account=account, password=PASSWORD)


# --- mod_auth_cas -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cas_service(live_idp: LiveServer) -> None:
    """The campus web server's CAS registration: name, 学工号, kind and department released
    (the department's name both as ``department_name`` and as ``departmentName``)."""
    released = ("name", "account", "kind", "department", "department_name", "departmentName")
    live_idp.add_cas_service(
        "Apache mod_auth_cas 互通测试",
        *("--service", CAS_PATTERN),
        *(option for name in released for option in ("--attribute", name)),
        probe="http://127.0.0.1:1/cas-app/",
    )


def cas_config(idp: LiveServer, setup: str) -> str:
    """mod_auth_cas for ``setup`` with single logout on. Its session cookies are named after the
    set-up, as browsers share cookies between the ports of one host (and the module takes any
    cookie whose name starts with its own: no name here starts with another)."""
    version, endpoint = CAS_SETUPS[setup]
    cookie = f"CasSession{setup.title()}"
    return f"""
CASDebug On
CASVersion {version}
CASLoginURL {idp.url}/cas/login
CASValidateURL {idp.url}/cas/{endpoint}
CASCookiePath {{www}}/cache/
CASSSOEnabled On
CASAttributePrefix CAS-
<Location /cas-app/>
  AuthType CAS
  CASAuthNHeader CAS-User
  CASScope /cas-app/
  CASCookie {cookie}
  Require valid-user
</Location>
<Location /cas-app/renew/>
  CASRenew /cas-app/renew/
</Location>
<Location /cas-app/students/>
  Require cas-attribute kind:student
</Location>
<Location /cas-app/staff/>
  Require cas-attribute kind:staff
</Location>
<Location /unregistered/>
  AuthType CAS
  CASCookie Unregistered{cookie}
  Require valid-user
</Location>
"""


@pytest.fixture(scope="module")
def cas_servers(
    servers: Servers, live_idp: LiveServer, cas_service: None
) -> Callable[[str], Apache]:
    """``cas_server(setup)``: the Apache running mod_auth_cas as ``setup`` says (started once)."""
    started: dict[str, Apache] = {}

    def cas_server(setup: str) -> Apache:
        if setup not in started:
            started[setup] = servers.start(
                setup,
                modules=("auth_cas",),
                body=cas_config(live_idp, setup),
                log_level="info auth_cas:debug",
            )
        return started[setup]

    return cas_server


@pytest.fixture(scope="module")
def cas2(cas_servers: Callable[[str], Apache]) -> Apache:
    return cas_servers("cas2")


@pytest.fixture(scope="module")
def cas3(cas_servers: Callable[[str], Apache]) -> Apache:
    return cas_servers("cas3")


def login_redirect(browser: requests.Session, url: str, idp: LiveServer) -> dict[str, list[str]]:
    """The module's redirect to the IdP's /cas/login for ``url``: its query."""
    target = redirect_target(browser.get(url, allow_redirects=False, timeout=10))
    assert target.startswith(f"{idp.url}/cas/login?"), target
    return parse_qs(urlsplit(target).query)


@pytest.mark.parametrize("setup", ["cas1", "cas2"])
def test_mod_auth_cas_signs_in_with_the_account_number(
    live_idp: LiveServer, account: str, cas_servers: Callable[[str], Apache], setup: str
) -> None:
    """CAS 1.0 and 2.0: redirect with the exact service URL, sign-in, the ticket validated by
    the module, the 学工号 as REMOTE_USER (these answers carry no attributes); the same ticket
    replayed in another browser is refused."""
    apache = cas_servers(setup)
    browser = requests.Session()
    page_url = f"{apache.url}/cas-app/whoami"
    assert login_redirect(browser, page_url, live_idp) == {"service": [page_url]}

    page = visit(browser, page_url, live_idp, account)
    assert page.url == page_url  # the module took the ticket off the URL again
    tickets = [
        parse_qs(urlsplit(hop.headers["Location"]).query).get("ticket", [""])[0]
        for hop in page.history
        if hop.headers.get("Location", "").startswith(page_url + "?ticket=")
    ]
    assert len(tickets) == 1 and re.fullmatch(r"ST-[A-Za-z0-9]{43}", tickets[0]), tickets
    env = cgi_env(page)
    assert env["REMOTE_USER"] == account and env["HTTP_CAS_USER"] == account
    assert not any(name.startswith("HTTP_CAS_") and name != "HTTP_CAS_USER" for name in env), env

    again = browser.get(page_url, allow_redirects=False, timeout=10)
    assert cgi_env(again)["REMOTE_USER"] == account  # the module's own session now
    replayed = requests.get(f"{page_url}?ticket={tickets[0]}", allow_redirects=False, timeout=10)
    assert replayed.status_code == 401, replayed.status_code


def test_mod_auth_cas_reads_cas3_attributes_and_authorizes_on_them(
    live_idp: LiveServer, account: str, cas3: Apache
) -> None:
    """p3/serviceValidate: the released attributes reach the application as CAS-* headers and
    ``Require cas-attribute`` decides on them; a query with Chinese in it survives the trip."""
    live_idp.sql(
        "INSERT INTO departments (code, name, updated_at) SELECT 'APX', '计算机与通信学院', "
        "CURRENT_TIMESTAMP WHERE NOT EXISTS (SELECT 1 FROM departments WHERE code = 'APX')"
    )
    live_idp.sql(
        "UPDATE users SET department_id = (SELECT id FROM departments WHERE code = 'APX') "
        "WHERE account = :a",
        a=account,
    )
    browser = requests.Session()
    page_url = f"{cas3.url}/cas-app/whoami?from=%E9%97%A8%E6%88%B7&page=2"
    assert login_redirect(browser, page_url, live_idp) == {"service": [page_url]}

    env = cgi_env(visit(browser, page_url, live_idp, account))
    assert env["REMOTE_USER"] == account and env["QUERY_STRING"] == "from=%E9%97%A8%E6%88%B7&page=2"
    assert env["HTTP_CAS_NAME"] == "赵六" and env["HTTP_CAS_ACCOUNT"] == account
    assert env["HTTP_CAS_KIND"] == "student" and env["HTTP_CAS_DEPARTMENT"] == "APX"
    # Apache 2.4 hands no header with an underscore to CGI or PHP: the department's name gets
    # through only as departmentName, which is why the IdP offers it.
    assert env["HTTP_CAS_DEPARTMENTNAME"] == "计算机与通信学院"
    assert not any("DEPARTMENT_NAME" in name for name in env)
    assert env["HTTP_CAS_ISFROMNEWLOGIN"] == "true"
    assert env["HTTP_CAS_AUTHENTICATIONMETHOD"] == "password"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", env["HTTP_CAS_AUTHENTICATIONDATE"])

    students = browser.get(f"{cas3.url}/cas-app/students/whoami", allow_redirects=False, timeout=10)
    assert cgi_env(students)["REMOTE_USER"] == account
    staff = browser.get(f"{cas3.url}/cas-app/staff/whoami", allow_redirects=False, timeout=10)
    assert staff.status_code == 401, staff.status_code


def test_mod_auth_cas_single_sign_on_and_renew(
    live_idp: LiveServer, account: str, cas2: Apache, cas3: Apache
) -> None:
    """Signed in on one server, the next one gets a ticket without the form; ``CASRenew``
    (``renew=true``) asks for the password again and the ticket passes ``renew`` validation."""
    browser = requests.Session()
    assert signed_in_on_the_form(visit(browser, f"{cas2.url}/cas-app/whoami", live_idp, account))

    silent = visit(browser, f"{cas3.url}/cas-app/whoami", live_idp, account)
    assert not signed_in_on_the_form(silent)
    env = cgi_env(silent)
    assert env["REMOTE_USER"] == account and env["HTTP_CAS_ISFROMNEWLOGIN"] == "false"

    renew_url = f"{cas3.url}/cas-app/renew/whoami"
    assert login_redirect(browser, renew_url, live_idp) == {
        "service": [renew_url],
        "renew": ["true"],
    }
    renewed = visit(browser, renew_url, live_idp, account)
    assert signed_in_on_the_form(renewed)
    env = cgi_env(renewed)
    assert env["REMOTE_USER"] == account and env["HTTP_CAS_ISFROMNEWLOGIN"] == "true"
    assert re.search(
        r"GET /cas/p3/serviceValidate\?service=\S+/cas-app/renew/whoami&ticket=ST-\w+&renew=true ",
        live_idp.log_path.read_text("utf-8", "replace"),
    )


def test_mod_auth_cas_unregistered_service_is_refused(
    live_idp: LiveServer, account: str, cas2: Apache
) -> None:
    """A protected path outside the registered pattern gets the IdP's refusal, never a ticket,
    even for a browser that is signed in."""
    browser = requests.Session()
    cgi_env(visit(browser, f"{cas2.url}/cas-app/whoami", live_idp, account))

    refused = browser.get(f"{cas2.url}/unregistered/whoami", timeout=10)
    assert refused.status_code == 403 and refused.url.startswith(f"{live_idp.url}/cas/login?")
    assert "该应用未在统一身份认证注册" in refused.text
    assert not any("ticket=" in line for line in cas2.access_lines() if "/unregistered/" in line)


def test_mod_auth_cas_single_logout_ends_the_module_session(
    live_idp: LiveServer, account: str, cas3: Apache
) -> None:
    """Signing out at the IdP posts a SAML logoutRequest to the service; mod_auth_cas
    (``CASSSOEnabled``) drops the session of that ticket and no other."""
    page_url = f"{cas3.url}/cas-app/whoami"
    leaving, staying = requests.Session(), requests.Session()
    for browser in (leaving, staying):
        cgi_env(visit(browser, page_url, live_idp, account))

    assert leaving.get(f"{live_idp.url}/cas/logout", timeout=10).status_code == 200

    def signed_out() -> bool:
        """the leaving browser's module session is gone"""
        answer = leaving.get(page_url, allow_redirects=False, timeout=10)
        return answer.status_code == 302

    eventually(signed_out)
    assert redirect_target(leaving.get(page_url, allow_redirects=False, timeout=10)).startswith(
        f"{live_idp.url}/cas/login?service="
    )
    assert any('"POST /cas-app/whoami ' in line for line in cas3.access_lines())
    assert "SAML Logout Request" in cas3.error_text()
    assert (
        cgi_env(staying.get(page_url, allow_redirects=False, timeout=10))["REMOTE_USER"] == account
    )


# --- mod_auth_openidc ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def oidc(servers: Servers, live_idp: LiveServer) -> tuple[Apache, dict[str, Any]]:
    """mod_auth_openidc with a confidential client registered for its redirect URI, its
    post-logout page and its back-channel logout endpoint; the server and the registration."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    redirect_uri = f"{base}/oidc-app/redirect_uri"
    client = live_idp.add_oidc_client(
        "Apache mod_auth_openidc 互通测试",
        "--first-party",
        *("--redirect-uri", redirect_uri),
        *("--post-logout-uri", base + LOGGED_OUT_PAGE),
        *("--backchannel-logout-uri", f"{redirect_uri}?logout=backchannel"),
    )
    assert client["token_endpoint_auth_method"] == "client_secret_basic" and client["require_pkce"]
    body = f"""
OIDCProviderMetadataURL {live_idp.url}/.well-known/openid-configuration
OIDCClientID {client["client_id"]}
OIDCClientSecret {client["client_secret"]}
OIDCRedirectURI {redirect_uri}
OIDCCryptoPassphrase {secrets.token_urlsafe(32)}
OIDCScope "{OIDC_SCOPE}"
OIDCPKCEMethod S256
OIDCSessionType server-cache
OIDCCacheType shm
OIDCPassClaimsAs environment
OIDCRemoteUserClaim preferred_username
<Location /oidc-app/>
  AuthType openid-connect
  Require valid-user
</Location>
"""
    apache = servers.start(
        "oidc", modules=("auth_openidc",), body=body, port=port, log_level="info auth_openidc:debug"
    )
    return apache, client


def test_mod_auth_openidc_code_flow_with_pkce_shows_the_claims(
    live_idp: LiveServer, account: str, oidc: tuple[Apache, dict[str, Any]]
) -> None:
    """Discovery, an S256 code flow with state and nonce, the ID token's signature checked by
    the module against our JWKS, and the claims (学工号 as REMOTE_USER) on the page."""
    apache, client = oidc
    browser = requests.Session()
    page_url = f"{apache.url}/oidc-app/whoami"
    target = redirect_target(browser.get(page_url, allow_redirects=False, timeout=10))
    assert target.startswith(f"{live_idp.url}/oauth2/authorize?"), target
    request = {key: values[0] for key, values in parse_qs(urlsplit(target).query).items()}
    assert request["response_type"] == "code" and request["client_id"] == client["client_id"]
    assert request["redirect_uri"] == client["redirect_uris"][0]
    assert request["scope"] == OIDC_SCOPE and request["state"] and request["nonce"]
    assert request["code_challenge_method"] == "S256"
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", request["code_challenge"])

    page = visit(browser, target, live_idp, account)  # this very request, signed in
    assert page.url == page_url
    env = cgi_env(page)
    assert env["AUTH_TYPE"] == "openid-connect" and env["REMOTE_USER"] == account
    assert env["OIDC_CLAIM_preferred_username"] == account and env["OIDC_CLAIM_account"] == account
    assert env["OIDC_CLAIM_name"] == "赵六" and env["OIDC_CLAIM_kind"] == "student"
    assert env["OIDC_CLAIM_iss"] == live_idp.url and env["OIDC_CLAIM_aud"] == client["client_id"]
    assert env["OIDC_CLAIM_nonce"] == request["nonce"]
    assert env["OIDC_CLAIM_sub"] and env["OIDC_CLAIM_sid"] and env["OIDC_access_token"]

    log = apache.error_text()
    assert 'JWT signature verification with algorithm "RS256" was successful' in log
    assert "token_endpoint_auth=client_secret_basic" in log
    assert re.search(r"grant_type=authorization_code&code=\S+&code_verifier=[\w-]{43}", log)


def test_mod_auth_openidc_refreshes_with_rotated_refresh_tokens(
    live_idp: LiveServer, account: str, oidc: tuple[Apache, dict[str, Any]]
) -> None:
    """The module's refresh hook, twice: each refresh uses the rotated refresh token the last
    one returned (a reused one would revoke the family) and brings a new access token."""
    apache, _client = oidc
    browser = requests.Session()
    page_url = f"{apache.url}/oidc-app/whoami"
    tokens = [cgi_env(visit(browser, page_url, live_idp, account))["OIDC_access_token"]]
    for _ in range(2):
        hook = (
            f"{apache.url}/oidc-app/redirect_uri?refresh={quote(page_url, safe='')}"
            f"&access_token={tokens[-1]}"
        )
        assert redirect_target(browser.get(hook, allow_redirects=False, timeout=10)) == page_url
        tokens.append(
            cgi_env(browser.get(page_url, allow_redirects=False, timeout=10))["OIDC_access_token"]
        )
    assert len(set(tokens)) == 3, tokens


def test_mod_auth_openidc_rp_initiated_logout(
    live_idp: LiveServer, account: str, oidc: tuple[Apache, dict[str, Any]]
) -> None:
    """``?logout=`` ends the module's session and sends the browser to our end_session endpoint
    with the ID token as hint: the SSO session ends, the browser comes back to the registered
    post-logout page, and the module's access token is dead (introspection: inactive)."""
    apache, client = oidc
    browser = requests.Session()
    page_url = f"{apache.url}/oidc-app/whoami"
    access_token = cgi_env(visit(browser, page_url, live_idp, account))["OIDC_access_token"]

    back = apache.url + LOGGED_OUT_PAGE
    logout = f"{apache.url}/oidc-app/redirect_uri?logout={quote(back, safe='')}"
    end_session = redirect_target(browser.get(logout, allow_redirects=False, timeout=10))
    assert end_session.startswith(f"{live_idp.url}/oauth2/logout?"), end_session
    hint = parse_qs(urlsplit(end_session).query)
    assert hint["post_logout_redirect_uri"] == [back] and hint["id_token_hint"]
    returned = browser.get(end_session, timeout=10)
    assert returned.status_code == 200 and returned.url == back

    introspection = requests.post(
        f"{live_idp.url}/oauth2/introspect",
        data={"token": access_token},
        auth=(client["client_id"], client["client_secret"]),
        timeout=10,
    )
    assert introspection.json() == {"active": False}
    assert redirect_target(browser.get(page_url, allow_redirects=False, timeout=10)).startswith(
        f"{live_idp.url}/oauth2/authorize?"
    )
    assert is_sign_in_form(browser.get(page_url, timeout=10), live_idp.url)  # no SSO left


def test_mod_auth_openidc_backchannel_logout(
    live_idp: LiveServer, account: str, oidc: tuple[Apache, dict[str, Any]]
) -> None:
    """Signing out on the IdP's own page sends a logout token to the module's back-channel
    endpoint; it ends that sign-in's module session (by ``sid``) and no other."""
    apache, _client = oidc
    page_url = f"{apache.url}/oidc-app/whoami"
    leaving, staying = requests.Session(), requests.Session()
    for browser in (leaving, staying):
        cgi_env(visit(browser, page_url, live_idp, account))

    sign_out_at_idp(leaving, live_idp.url)

    def signed_out() -> bool:
        """the leaving browser's module session is gone"""
        return leaving.get(page_url, allow_redirects=False, timeout=10).status_code == 302

    eventually(signed_out)
    assert any(
        '"POST /oidc-app/redirect_uri?logout=backchannel ' in line and line.endswith(" 200")
        for line in apache.access_lines()
    )
    assert (
        cgi_env(staying.get(page_url, allow_redirects=False, timeout=10))["REMOTE_USER"] == account
    )


def test_the_consoles_mod_auth_cas_snippet_works_as_shown(
    live_idp: LiveServer, account: str, servers: Servers
) -> None:
    """The registry's "Apache httpd mod_auth_cas" block for a service, pasted into Apache with
    only its session directory moved to the test's: it protects the service's path, signs the
    person in through the IdP and hands the application the 学工号 and the released name."""
    port = free_port()
    pattern = rf"^http://127\.0\.0\.1:{port}/snippet/.*$"
    live_idp.add_cas_service(
        "Apache 配置示例",
        "--service",
        pattern,
        "--attribute",
        "name",
        probe=f"http://127.0.0.1:{port}/snippet/",
    )
    service = CasService(service_pattern=pattern, single_logout=True, attributes=["name"])
    (snippet,) = [s for s in cas_snippets(live_idp.url, service) if "mod_auth_cas" in s.title]
    assert "<Location /snippet/>" in snippet.text and MOD_AUTH_CAS_CACHE in snippet.text
    body = snippet.text.replace(MOD_AUTH_CAS_CACHE, "{www}/cache/")
    apache = servers.start("snippet", modules=(), body=body, port=port)

    browser = requests.Session()
    page_url = f"{apache.url}/snippet/whoami"
    assert login_redirect(browser, page_url, live_idp) == {"service": [page_url]}
    env = cgi_env(visit(browser, page_url, live_idp, account))
    assert env["REMOTE_USER"] == account and env["HTTP_CAS_USER"] == account
    assert env["HTTP_CAS_NAME"] == "赵六"


def test_the_consoles_mod_auth_openidc_snippet_works_as_shown(
    live_idp: LiveServer, account: str, servers: Servers
) -> None:
    """The registry's "Apache httpd mod_auth_openidc" block for a client, with the secret shown
    once at registration and a passphrase of the administrator's own put in its placeholders:
    discovery, an S256 code flow with the registered client authentication, the 学工号 as
    REMOTE_USER."""
    port = free_port()
    redirect_uri = f"http://127.0.0.1:{port}/portal/redirect_uri"
    registered = live_idp.add_oidc_client(
        "Apache 示例", "--first-party", "--redirect-uri", redirect_uri
    )
    client = OidcClient(
        client_id=registered["client_id"],
        redirect_uris=[redirect_uri],
        scopes=registered["scope"].split(),
        public=False,
        token_endpoint_auth_method=registered["token_endpoint_auth_method"],
    )
    (snippet,) = [s for s in oidc_snippets(live_idp.url, client) if "mod_auth_openidc" in s.title]
    assert "<Location /portal/>" in snippet.text and SECRET_PLACEHOLDER in snippet.text
    body = snippet.text.replace(SECRET_PLACEHOLDER, registered["client_secret"]).replace(
        PASSPHRASE_PLACEHOLDER, secrets.token_urlsafe(32)
    )
    apache = servers.start("oidc-snippet", modules=(), body=body, port=port)

    browser = requests.Session()
    page_url = f"{apache.url}/portal/whoami"
    target = redirect_target(browser.get(page_url, allow_redirects=False, timeout=10))
    assert target.startswith(f"{live_idp.url}/oauth2/authorize?"), target
    env = cgi_env(visit(browser, target, live_idp, account))
    assert env["AUTH_TYPE"] == "openid-connect" and env["REMOTE_USER"] == account
