"""Integration snippets the registry shows beside each client: the URLs a campus system needs
and a configuration for the client libraries people actually use."""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlsplit

from idp.clients.models import CasService, OidcClient

#: Shown where a secret belongs: the registry never keeps a secret it could show again.
SECRET_PLACEHOLDER = "<client_secret>"  # noqa: S105 - a placeholder, not a secret


@dataclass(frozen=True)
class Snippet:
    """One block on the page: a title and text to copy."""

    title: str
    text: str


def _q(value: str) -> str:
    """A string literal that is valid in both Python and JavaScript."""
    return json.dumps(value, ensure_ascii=False)


def cas_endpoints(issuer: str) -> dict[str, str]:
    """The CAS URLs of this IdP."""
    base = issuer.rstrip("/") + "/cas/"
    return {
        "server": base,
        "login": base + "login",
        "logout": base + "logout",
        "serviceValidate": base + "serviceValidate",
        "p3/serviceValidate": base + "p3/serviceValidate",
    }


def example_service_url(service: CasService) -> str:
    """A plausible service URL for the snippets (the pattern, if it is a plain URL prefix)."""
    pattern = service.service_pattern.removeprefix("^").removesuffix("$")
    for suffix in (".*", "/.*", ".+"):
        if pattern.endswith(suffix):
            pattern = pattern[: -len(suffix)]
            break
    plain = pattern.replace("\\.", ".").replace("\\/", "/").lstrip("^").rstrip("$")
    if plain.startswith(("https://", "http://")) and not any(c in plain for c in "()[]{}*+?|\\"):
        return plain.rstrip("/") + "/login"
    return "https://app.example.edu.cn/login"


def cas_snippets(issuer: str, service: CasService) -> list[Snippet]:
    """python-cas and Apereo Java client configurations for a CAS service."""
    urls = cas_endpoints(issuer)
    service_url = example_service_url(service)
    python = "\n".join(
        [
            "from cas import CASClient  # pip install python-cas",
            "",
            "cas_client = CASClient(",
            "    version=3,",
            f"    server_url={_q(urls['server'])},",
            f"    service_url={_q(service_url)},",
            ")",
            "# redirect to cas_client.get_login_url(); then, with the ?ticket= it returns:",
            "user, attributes, pgtiou = cas_client.verify_ticket(ticket)",
        ]
    )
    java = "\n".join(
        [
            "# Apereo CAS Java client (cas-client-support-springboot), application.properties",
            f"cas.server-url-prefix={urls['server'].rstrip('/')}",
            f"cas.server-login-url={urls['login']}",
            f"cas.client-host-url={service_url.rsplit('/', 1)[0]}",
            "cas.validation-type=CAS3",
        ]
    )
    apache = _mod_auth_cas(urls, service, service_url)
    validate = (
        f"GET {urls['p3/serviceValidate']}?service=<URL-encoded service URL>&ticket=ST-…\n"
        f"GET {urls['serviceValidate']}?service=…&ticket=ST-…&format=JSON"
    )
    return [
        Snippet("CAS", "\n".join(f"{name}: {url}" for name, url in urls.items())),
        Snippet("serviceValidate", validate),
        Snippet("python-cas", python),
        Snippet("Apereo Java CAS client", java),
        Snippet("Apache httpd mod_auth_cas", apache),
    ]


#: Where mod_auth_cas keeps its sessions on Debian (a directory only the workers may write).
MOD_AUTH_CAS_CACHE = "/var/cache/apache2/mod_auth_cas/"


def _mod_auth_cas(urls: dict[str, str], service: CasService, service_url: str) -> str:
    """Apache's mod_auth_cas protecting the service's path: CAS 3.0 validation (the CAS 2
    answer with ``cas:attributes``, as the module reads it), single logout as registered, and
    the released attributes as ``CAS-*`` request headers
    (``tests/interop/test_apache_modules.py`` runs it as shown)."""
    path = urlsplit(service_url).path.rsplit("/", 1)[0] + "/"
    return "\n".join(
        [
            "# Apache httpd + mod_auth_cas (Debian: apt install libapache2-mod-auth-cas)",
            "LoadModule auth_cas_module /usr/lib/apache2/modules/mod_auth_cas.so",
            "CASVersion 2",
            f"CASLoginURL {urls['login']}",
            f"CASValidateURL {urls['p3/serviceValidate']}",
            f"CASCookiePath {MOD_AUTH_CAS_CACHE}",
            f"CASSSOEnabled {'On' if service.single_logout else 'Off'}",
            "CASAttributePrefix CAS-",
            f"<Location {path}>",
            "  AuthType CAS",
            "  CASAuthNHeader CAS-User",
            "  Require valid-user",
            "</Location>",
        ]
    )


#: openid-client v6's client authentication for each ``token_endpoint_auth_method``. Spelled
#: out because a bare secret string makes it send client_secret_post, which the token endpoint
#: refuses from a client registered with client_secret_basic.
OPENID_CLIENT_AUTH = {
    "client_secret_basic": "ClientSecretBasic",
    "client_secret_post": "ClientSecretPost",
    "none": "None",
}


def oidc_snippets(issuer: str, client: OidcClient) -> list[Snippet]:
    """Discovery, an Authlib Flask registration and an openid-client (Node) configuration, each
    presenting the secret the way the client is registered to (token_endpoint_auth_method)."""
    discovery = issuer.rstrip("/") + "/.well-known/openid-configuration"
    scope = " ".join(s for s in client.scopes if s in ("openid", "profile", "email")) or "openid"
    redirect_uri = client.redirect_uris[0] if client.redirect_uris else "https://app/callback"
    method = client.token_endpoint_auth_method
    secret_line = (
        "" if client.public else f"    client_secret={_q(SECRET_PLACEHOLDER)},  # shown once\n"
    )
    authlib = (
        "from authlib.integrations.flask_client import OAuth\n"
        "\n"
        "oauth = OAuth(app)\n"
        "oauth.register(\n"
        '    "hongliu",\n'
        f"    client_id={_q(client.client_id)},\n"
        f"{secret_line}"
        f"    server_metadata_url={_q(discovery)},\n"
        "    client_kwargs={\n"
        f'        "scope": {_q(scope)},\n'
        '        "code_challenge_method": "S256",\n'
        f'        "token_endpoint_auth_method": {_q(method)},\n'
        "    },\n"
        ")\n"
        "# login:    return oauth.hongliu.authorize_redirect(" + _q(redirect_uri) + ")\n"
        "# callback: token = oauth.hongliu.authorize_access_token(); token['userinfo']"
    )
    secret_arg = "" if client.public else _q(SECRET_PLACEHOLDER)
    # openid-client refuses a plain-http issuer unless told: a developer's local IdP.
    insecure = (
        "  { execute: [client.allowInsecureRequests] }, // http issuer: development only\n"
        if issuer.startswith("http://")
        else ""
    )
    node = (
        'import * as client from "openid-client";\n'
        "\n"
        "const config = await client.discovery(\n"
        f"  new URL({_q(issuer)}),\n"
        f"  {_q(client.client_id)},\n"
        "  undefined,\n"
        f"  client.{OPENID_CLIENT_AUTH.get(method, method)}({secret_arg}), // {method}\n"
        f"{insecure}"
        ");\n"
        "const code_verifier = client.randomPKCECodeVerifier();\n"
        "const code_challenge = await client.calculatePKCECodeChallenge(code_verifier);\n"
        "const url = client.buildAuthorizationUrl(config, {\n"
        f"  redirect_uri: {_q(redirect_uri)},\n"
        f"  scope: {_q(scope)},\n"
        "  code_challenge,\n"
        '  code_challenge_method: "S256",\n'
        "});"
    )
    return [
        Snippet(
            "OpenID Connect",
            f"issuer: {issuer}\ndiscovery: {discovery}\nclient_id: {client.client_id}",
        ),
        Snippet("Authlib (Flask)", authlib),
        Snippet("openid-client (Node)", node),
        Snippet("Apache httpd mod_auth_openidc", _mod_auth_openidc(discovery, client, scope)),
    ]


#: Where the administrator puts a passphrase of their own (mod_auth_openidc encrypts its state
#: and session cookies with it).
PASSPHRASE_PLACEHOLDER = "<a long random passphrase>"  # noqa: S105 - a placeholder


def _mod_auth_openidc(discovery: str, client: OidcClient, scope: str) -> str:
    """Apache's mod_auth_openidc for the client's first redirect URI: discovery, PKCE S256, the
    registered token endpoint authentication and the 学工号 as REMOTE_USER
    (``tests/interop/test_apache_modules.py`` runs it as shown)."""
    redirect_uri = client.redirect_uris[0] if client.redirect_uris else "https://app/redirect_uri"
    path = urlsplit(redirect_uri).path.rsplit("/", 1)[0] + "/"
    lines = [
        "# Apache httpd + mod_auth_openidc (Debian: apt install libapache2-mod-auth-openidc)",
        "LoadModule auth_openidc_module /usr/lib/apache2/modules/mod_auth_openidc.so",
        f"OIDCProviderMetadataURL {discovery}",
        f"OIDCClientID {client.client_id}",
        *([] if client.public else [f"OIDCClientSecret {SECRET_PLACEHOLDER}"]),
        f"OIDCProviderTokenEndpointAuth {client.token_endpoint_auth_method}",
        f"OIDCRedirectURI {redirect_uri}",
        f"OIDCCryptoPassphrase {PASSPHRASE_PLACEHOLDER}",
        f'OIDCScope "{scope} campus"' if "campus" in client.scopes else f'OIDCScope "{scope}"',
        "OIDCPKCEMethod S256",
        # The 学工号 (preferred_username) comes with the profile scope; else the subject.
        f"OIDCRemoteUserClaim {'preferred_username' if 'profile' in scope.split() else 'sub'}",
        f"<Location {path}>",
        "  AuthType openid-connect",
        "  Require valid-user",
        "</Location>",
    ]
    return "\n".join(lines)
