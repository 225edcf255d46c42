"""The discovery document (OpenID Connect Discovery 1.0, RFC 8414, RFC 9207)."""

from __future__ import annotations

from typing import Any

from idp.oidc.claims import SCOPE_CLAIMS, issuer, supported_claims
from idp.oidc.keys import signing_algorithms
from idp.oidc.provider import RESPONSE_MODES

#: Endpoint paths, relative to the issuer.
ENDPOINTS = {
    "authorization_endpoint": "/oauth2/authorize",
    "token_endpoint": "/oauth2/token",
    "userinfo_endpoint": "/oauth2/userinfo",
    "jwks_uri": "/oauth2/jwks",
    "revocation_endpoint": "/oauth2/revoke",
    "introspection_endpoint": "/oauth2/introspect",
    "end_session_endpoint": "/oauth2/logout",
}
CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


def provider_metadata() -> dict[str, Any]:
    """What relying parties need to know to use this provider."""
    base = issuer()
    return {
        "issuer": base,
        **{name: base + path for name, path in ENDPOINTS.items()},
        "scopes_supported": list(SCOPE_CLAIMS),
        "response_types_supported": ["code"],
        "response_modes_supported": list(RESPONSE_MODES),
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        # Only what a key exists for: a client registering another could not be served.
        "id_token_signing_alg_values_supported": signing_algorithms(),
        "token_endpoint_auth_methods_supported": [*CLIENT_AUTH_METHODS, "none"],
        "revocation_endpoint_auth_methods_supported": [*CLIENT_AUTH_METHODS, "none"],
        "introspection_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": supported_claims(),
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "require_request_uri_registration": False,
        "prompt_values_supported": ["none", "login", "consent"],
        "display_values_supported": ["page", "popup"],
        "ui_locales_supported": ["zh-CN", "en"],
        "authorization_response_iss_parameter_supported": True,
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "frontchannel_logout_supported": False,
    }
