"""Pooled database connections: tested before use only after sitting idle (no ping per request)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, exc, text
from sqlalchemy.orm import Session

from shared import factory
from tests.conftest import MakeDatabaseUrl


@pytest.fixture
def engine(make_database_url: MakeDatabaseUrl) -> Iterator[Engine]:
    """An engine configured like the apps' (no pool_pre_ping, idle connections tested)."""
    url = make_database_url("pool")
    engine = create_engine(url, pool_pre_ping=False, pool_recycle=factory.POOL_RECYCLE)
    factory.ping_idle_connections(engine)
    yield engine
    engine.dispose()


def _kill_pooled_connection(engine: Engine) -> object:
    """Use one connection, return it to the pool, then break it as a server restart would."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
        dbapi_connection = conn.connection.dbapi_connection
    assert dbapi_connection is not None
    dbapi_connection.close()
    return dbapi_connection


def test_idle_connection_that_died_is_replaced_before_use(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pooled connection idle past the threshold is tested; a dead one is swapped silently."""
    monkeypatch.setattr(factory, "POOL_PING_AFTER_IDLE", 0.0)
    dead = _kill_pooled_connection(engine)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar() == 1
        assert conn.connection.dbapi_connection is not dead


def test_connection_used_moments_ago_is_trusted_without_a_round_trip(engine: Engine) -> None:
    """Within the idle threshold no test query is sent: that is the round trip saved per request."""
    _kill_pooled_connection(engine)
    with pytest.raises(exc.DBAPIError), engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def test_autocommit_lasts_one_transaction_then_the_connection_is_transactional_again(
    engine: Engine,
) -> None:
    """``autocommit`` commits each statement alone; the pooled connection then comes back
    in its usual mode, so the next request on it can still roll back."""
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE notes (body VARCHAR(20))"))
    with Session(engine) as session:
        factory.autocommit(session)
        session.execute(text("INSERT INTO notes VALUES ('kept')"))
        used = session.connection().connection.dbapi_connection
        session.rollback()  # too late: the INSERT committed on its own
    with Session(engine) as session:
        session.execute(text("INSERT INTO notes VALUES ('undone')"))
        assert session.connection().connection.dbapi_connection is used  # the same connection
        session.rollback()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT body FROM notes")).scalars().all() == ["kept"]
