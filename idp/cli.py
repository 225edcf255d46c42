"""``flask --app idp`` commands beyond Flask-Migrate's ``db``."""

import json

import click
from flask import Flask


def register(app: Flask) -> None:
    """Attach the IdP's commands to ``app.cli``."""

    @app.cli.command("demo")
    @click.option("--json", "as_json", is_flag=True, help="Print the demo accounts as JSON.")
    def demo(as_json: bool) -> None:
        """Load idempotent demo data (run ``flask --app idp db upgrade`` first)."""
        accounts: list[dict[str, str]] = []
        if as_json:
            click.echo(json.dumps({"accounts": accounts}, ensure_ascii=False))
        else:
            click.echo(f"IdP demo data loaded: {len(accounts)} demo accounts.")
