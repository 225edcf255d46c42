"""Hongliu identity provider: CAS and OpenID Connect single sign-on for the whole campus."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask, Response, request

from idp.extensions import extensions
from idp.settings import SETTINGS
from shared import web
from shared.factory import create_flask_app

#: Blueprints whose pages a sign-in may pass through, in a popup as well as in a tab.
SIGN_IN_CHAIN = frozenset({"oidc", "cas", "auth", "mfa", "social", "account"})


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the IdP; ``config`` overrides environment settings (tests pass a dict)."""
    return create_flask_app(
        __name__,
        prefix="IDP",
        settings=SETTINGS,
        config=config,
        extensions=extensions,
        setup=setup_idp,
    )


def setup_idp(app: Flask) -> None:
    """The IdP's own steps after the common ones: defaults, features, commands."""
    if not app.config["OUTBOX_DIR"]:
        app.config["OUTBOX_DIR"] = str(Path(app.instance_path) / "outbox")

    from idp import cli, models  # noqa: F401 - models complete the metadata
    from idp.account.codes import setup_senders
    from idp.account.views import bp as account
    from idp.admin import setup_console
    from idp.admin.directory_admin import setup_admin_sections
    from idp.auth.sessions import setup_session_cookie
    from idp.auth.views import bp as auth
    from idp.auth.views import setup_auth
    from idp.cas import setup_cas
    from idp.directory.identifiers import check_data_key
    from idp.directory.scim_views import setup_scim
    from idp.mfa.views import bp as mfa
    from idp.oidc import setup_oidc
    from idp.portal.views import bp as portal
    from idp.security.views import bp as security
    from idp.social.views import setup_social

    check_data_key(app.config)
    setup_senders(app)
    for blueprint in (portal, auth, account, security, mfa):
        app.register_blueprint(blueprint)
    setup_console(app)
    setup_admin_sections(app)
    setup_social(app)
    setup_cas(app)
    setup_oidc(app)
    setup_scim(app)
    setup_session_cookie(app)
    setup_auth(app)
    # CAS, OIDC and SCIM answer bad parameters in their protocols' own error formats.
    web.setup_input_guard(app, exempt=("cas", "oidc", "scim"))
    cli.register(app)

    @app.after_request
    def popups_keep_their_opener(response: Response) -> Response:
        """Single-page apps may sign in through a popup (oidc-client-ts ``signinPopup``): the
        popup's page must keep ``window.opener`` to hand the result back, and a
        ``Cross-Origin-Opener-Policy: same-origin`` anywhere on the way cuts it. The pages a
        sign-in passes through allow it; the security centre and the console keep the policy."""
        if request.blueprint in SIGN_IN_CHAIN:
            response.headers["Cross-Origin-Opener-Policy"] = "unsafe-none"
        return response

    @app.after_request
    def pages_never_cached(response: Response) -> Response:
        """Every page of the IdP names who is signed in or carries a one-time form (a CSRF
        token, a wizard step): none may come from a shared or back-button cache. Responses
        that chose their own caching (public JSON documents, static files) keep it."""
        if response.mimetype == "text/html" and "Cache-Control" not in response.headers:
            response.headers["Cache-Control"] = "no-store"
            response.headers["Pragma"] = "no-cache"
        return response
