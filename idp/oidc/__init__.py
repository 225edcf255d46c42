"""OpenID Connect provider: discovery, keys, the code flow with PKCE, tokens, logout.

``setup_oidc`` binds it to an app; :mod:`idp.oidc.provider` holds all Authlib wiring and
:mod:`idp.oidc.claims` documents what each scope releases.
"""

from __future__ import annotations

from flask import Flask


def setup_oidc(app: Flask) -> None:
    """Register the endpoints and the back-channel logout listener."""
    from idp.auth.sessions import session_ending
    from idp.extensions import csrf
    from idp.oidc.backchannel import send_logout_tokens
    from idp.oidc.views import bp

    # Relying parties post here without our CSRF token; the consent and logout forms check
    # theirs explicitly.
    csrf.exempt(bp)
    app.register_blueprint(bp)
    session_ending.connect(send_logout_tokens)
