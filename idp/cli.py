"""``flask --app idp`` commands beyond Flask-Migrate's ``db``."""

import json

import click
from flask import Flask

from idp.clients.cli import register as register_clients
from idp.directory.cli import register as register_users
from idp.oidc.cli import register as register_keys


def register(app: Flask) -> None:
    """Attach the IdP's commands to ``app.cli``."""
    register_users(app)
    register_clients(app)
    register_keys(app)

    @app.cli.command("purge")
    @click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
    def purge(as_json: bool) -> None:
        """End dead SSO sessions (their clients are told) and delete long-expired OAuth tokens.

        Run it hourly (deploy/systemd/hongliu-idp-purge.timer). The process exits once the
        logout messages are delivered or given up.
        """
        from idp.housekeeping import purge_expired

        report = purge_expired()
        if as_json:
            click.echo(json.dumps({"sessions": report.sessions, "tokens": report.tokens}))
        else:
            click.echo(f"purged {report.sessions} sessions, {report.tokens} tokens")

    @app.cli.command("demo")
    @click.option("--json", "as_json", is_flag=True, help="Print the demo accounts as JSON.")
    def demo(as_json: bool) -> None:
        """Load idempotent demo data (run ``flask --app idp db upgrade`` first)."""
        from idp.directory.demo import load_demo

        accounts = [
            {"account": a.account, "password": a.password or "(激活时设置)", "role": a.role}
            for a in load_demo()
        ]
        if as_json:
            click.echo(json.dumps({"accounts": accounts}, ensure_ascii=False))
        else:
            click.echo(f"IdP demo data loaded: {len(accounts)} demo accounts.")
