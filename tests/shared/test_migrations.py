"""Each app's migration history: upgrade an empty database to head, match the models, go back."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect

from tests.conftest import AppFactory, MakeDatabaseUrl


@pytest.mark.parametrize("name", ["idp", "hall"])
def test_migrations_upgrade_to_head_match_models_and_downgrade_to_base(
    name: str, make_database_url: MakeDatabaseUrl, request: pytest.FixtureRequest
) -> None:
    """Upgrade creates every model table exactly as declared; downgrade removes them all."""
    factory: AppFactory = request.getfixturevalue(f"make_{name}")
    app = factory.create(factory.config(DATABASE_URL=make_database_url(f"migrations_{name}")))
    db = app.extensions["sqlalchemy"]
    with app.app_context():
        upgrade()
        tables = set(inspect(db.engine).get_table_names())
        assert {t.name for t in db.metadata.sorted_tables} <= tables
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), db.metadata)
        assert diff == [], f"models and migrations disagree: {diff}"
        downgrade(revision="base")
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
        db.engine.dispose()
