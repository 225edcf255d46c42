"""CAS Protocol 3.0 (Apereo): service tickets, proxying and single logout on the shared SSO
session, so that signing in or out through CAS or OpenID Connect is one and the same."""

from __future__ import annotations

from flask import Flask


def setup_cas(app: Flask) -> None:
    """Serve ``/cas/…`` and send single-logout requests when SSO sessions end."""
    from idp.cas.slo import setup_single_logout
    from idp.cas.views import bp

    app.register_blueprint(bp)
    setup_single_logout(app)
