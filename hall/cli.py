"""``flask --app hall`` commands beyond Flask-Migrate's ``db``."""

import json

import click
from flask import Flask


def register(app: Flask) -> None:
    """Attach the hall's commands to ``app.cli``."""
    from hall.catalog.cli import roles
    from hall.directory.cli import directory
    from hall.forms.cli import attachments

    app.cli.add_command(roles)
    app.cli.add_command(directory)
    app.cli.add_command(attachments)

    @app.cli.command("demo")
    @click.option("--json", "as_json", is_flag=True, help="Print the demo accounts as JSON.")
    def demo(as_json: bool) -> None:
        """Load idempotent demo data (run ``flask --app hall db upgrade`` first)."""
        from hall.catalog.demo import load_demo_catalog
        from hall.workflow.demo import load_demo_workflows

        catalogue = load_demo_catalog()
        catalogue["workflows"] = load_demo_workflows()
        accounts: list[dict[str, str]] = []
        if as_json:
            click.echo(json.dumps({"accounts": accounts, "catalog": catalogue}, ensure_ascii=False))
        else:
            click.echo(
                f"hall demo data loaded: {catalogue['services']} services in "
                f"{catalogue['departments']} departments, {catalogue['systems']} system entries, "
                f"{catalogue['notices']} notices, {catalogue['workflows']} online forms; "
                f"{len(accounts)} demo accounts."
            )
