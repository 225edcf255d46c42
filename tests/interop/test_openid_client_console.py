"""The console's openid-client snippet, run as shown, against the IdP as a live server.

An admin registers a confidential client in the console (/admin/clients, 登记 OIDC 客户端) with
each 令牌端点认证方式; the openid-client (Node) snippet of the page that shows the secret is run
by the certified openid-client v6 with only the secret filled in, and its code is exchanged at
the token endpoint, which accepts only the registered method. Skipped like
``test_openid_client.py`` when Node or ``node_modules`` is missing.
"""

from __future__ import annotations

import html
import json
import re
import selectors
import subprocess
import time
from typing import Any

import pytest
import requests

from idp.admin.snippets import SECRET_PLACEHOLDER
from tests.e2e.conftest import LiveServer, fresh_code
from tests.e2e.test_console import DESK_PASSWORD, console_account
from tests.interop.test_openid_client import (  # noqa: F401 - the autouse fixture
    NODE,
    NODE_DIR,
    REDIRECT_URI,
    TIMEOUT,
    _node_available,
    sign_in_through_browser,
)

ADMIN = "C2ESNIPPET"

#: Run after the snippet, in the same module: hand out the authorization URL, read the callback
#: URL back, exchange its code with the snippet's ``config`` and ``code_verifier``.
EXCHANGE = """
import { createInterface } from "node:readline";
process.stdout.write(JSON.stringify({ authorization_url: url.href }) + "\\n");
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const callback = new URL((await lines.next()).value.trim());
try {
  const tokens = await client.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: code_verifier,
    idTokenExpected: true,
  });
  const claims = tokens.claims();
  process.stdout.write(JSON.stringify({ sub: claims.sub, aud: claims.aud }) + "\\n");
} catch (error) {
  const cause = error.cause instanceof Error ? error.cause.message : error.cause;
  process.stdout.write(
    JSON.stringify({ error: error.name, message: error.message, code: error.code, cause }) + "\\n",
  );
  process.exitCode = 1;
}
process.stdin.destroy();
"""


@pytest.fixture(scope="module")
def console(live_idp: LiveServer) -> requests.Session:
    """An admin's browser signed in to the console with password and authenticator code."""
    secret = console_account(live_idp, ADMIN, "郑管理员", "13700008888", "admin", DESK_PASSWORD)
    browser = requests.Session()
    signed_in = _post_form(
        browser, live_idp.url + "/login", {"identifier": ADMIN, "password": DESK_PASSWORD}
    )
    verify = live_idp.url + signed_in.headers["Location"]
    assert "/login/verify" in verify, signed_in.headers["Location"]
    verified = _post_form(browser, verify, {"code": fresh_code(secret)})
    assert verified.status_code in (302, 303), verified.text[:500]
    return browser


def _post_form(browser: requests.Session, url: str, data: dict[str, Any]) -> requests.Response:
    """Post ``data`` as the form on ``url`` would: with its CSRF token and, where the page has
    one, its single-use form token."""
    page = browser.get(url, timeout=10).text
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert token, f"no CSRF token on {url}"
    tokens = {"csrf_token": token.group(1)}
    once = re.search(r'name="once"[^>]*value="([^"]+)"', page)
    if once:
        tokens["once"] = once.group(1)
    return browser.post(url, data={**tokens, **data}, allow_redirects=False, timeout=10)


def _register(console: requests.Session, server: LiveServer, method: str) -> tuple[str, str, str]:
    """登记 OIDC 客户端 with ``method``: its client id, its secret and the openid-client snippet
    of the page that shows them."""
    created = _post_form(
        console,
        server.url + "/admin/clients/oidc/new",
        {
            "name": f"openid-client 示例（{method}）",
            "token_endpoint_auth_method": method,
            "grant_types": ["authorization_code", "refresh_token"],
            "redirect_uris": REDIRECT_URI,
            "scopes": "openid profile",
            "first_party": "y",
        },
    )
    assert created.status_code == 200, created.text[:2000]
    client_id = re.search(r'id="client-id">([^<]+)<', created.text)
    secret = re.search(r'id="client-secret">([^<]+)<', created.text)
    snippet = re.search(
        r"<h3>openid-client \(Node\)</h3>\s*<pre class=\"snippet\"><code>(.*?)</code>",
        created.text,
        re.S,
    )
    assert client_id and secret and snippet
    return client_id.group(1), secret.group(1), html.unescape(snippet.group(1))


def _line(process: subprocess.Popen[str], deadline: float) -> dict[str, Any]:
    """The next JSON line the script prints, before ``deadline``."""
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout=max(0.0, deadline - time.monotonic())):
            raise AssertionError(f"the snippet printed nothing in {TIMEOUT} s")
    line = process.stdout.readline()
    assert line, "the snippet ended without output"
    return dict(json.loads(line))


def _run_snippet(snippet: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run the snippet (then :data:`EXCHANGE`) with Node's openid-client, signing in on the
    way like a browser; what it printed first and last."""
    assert NODE is not None
    process = subprocess.Popen(
        [NODE, "--input-type=module", "--eval", snippet + "\n" + EXCHANGE],
        cwd=NODE_DIR,  # where "openid-client" resolves
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + TIMEOUT
    try:
        started = _line(process, deadline)
        assert "authorization_url" in started, started
        callback = sign_in_through_browser(started["authorization_url"])
        assert process.stdin is not None
        process.stdin.write(callback + "\n")
        process.stdin.close()
        result = _line(process, deadline)
        process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
    return started, result


@pytest.mark.parametrize(
    ("method", "authentication"),
    [("client_secret_basic", "ClientSecretBasic"), ("client_secret_post", "ClientSecretPost")],
)
def test_console_snippet_exchanges_a_code_with_the_registered_method(
    live_idp: LiveServer, console: requests.Session, method: str, authentication: str
) -> None:
    """The snippet of a client registered with ``method`` presents its secret that way, and
    openid-client running it gets tokens for the signed-in student."""
    client_id, secret, snippet = _register(console, live_idp, method)
    assert f'client.{authentication}("{SECRET_PLACEHOLDER}")' in snippet
    filled = snippet.replace(json.dumps(SECRET_PLACEHOLDER), json.dumps(secret))
    started, result = _run_snippet(filled)
    assert started["authorization_url"].startswith(live_idp.url + "/oauth2/authorize?")
    assert "error" not in result, result
    assert result["sub"] and client_id in (
        result["aud"] if isinstance(result["aud"], list) else [result["aud"]]
    )
