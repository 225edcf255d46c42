"""管理控制台 (/admin): the help-desk console, the audit viewer and the admin sections."""

from __future__ import annotations

from flask import Flask


def setup_console(app: Flask) -> None:
    """Register the console blueprint (help desk and audit viewer) and its nav helper."""
    from idp.admin import audit_views  # noqa: F401 - adds the audit viewer to the blueprint
    from idp.admin.access import console_sections
    from idp.admin.views import bp

    app.register_blueprint(bp)
    app.add_template_global(console_sections, "console_sections")
