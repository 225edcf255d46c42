"""Hongliu service hall: catalogue, online forms, approvals and the unified to-do centre."""

from __future__ import annotations

from typing import Any

from flask import Flask

from hall.extensions import extensions
from hall.settings import SETTINGS
from shared import web
from shared.factory import create_flask_app


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the service hall; ``config`` overrides environment settings (tests pass a dict)."""
    return create_flask_app(
        __name__,
        prefix="HALL",
        settings=SETTINGS,
        config=config,
        extensions=extensions,
        setup=setup_hall,
    )


def setup_hall(app: Flask) -> None:
    """The hall's own steps after the common ones: features and commands."""
    from hall import cli, models  # noqa: F401 - models complete the metadata
    from hall.auth.views import setup_auth
    from hall.catalog.views import setup_catalog
    from hall.forms.views import setup_forms
    from hall.inbox.views import setup_inbox
    from hall.manage.definitions import bp as manage_definitions
    from hall.manage.views import bp as manage
    from hall.portal.views import bp as portal

    setup_auth(app)
    app.register_blueprint(portal)
    setup_catalog(app)
    setup_inbox(app)
    setup_forms(app)
    app.register_blueprint(manage)
    app.register_blueprint(manage_definitions)
    web.setup_input_guard(app)
    cli.register(app)
