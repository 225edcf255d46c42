"""Hongliu identity provider: CAS and OpenID Connect single sign-on for the whole campus."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask

from idp.extensions import extensions
from idp.settings import SETTINGS
from shared.factory import create_flask_app


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
    from idp.portal.views import bp as portal

    app.register_blueprint(portal)
    cli.register(app)
