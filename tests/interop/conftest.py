"""Interoperability tests: third-party protocol clients against the IdP as a live server.

The live-server machinery is the browser tests' own (``tests.e2e.conftest``); only the database
name differs, so that running both suites together never makes them share or drop each other's
database.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import MakeDatabaseUrl
from tests.e2e.conftest import LiveServer, _live


@pytest.fixture(scope="session")
def live_idp(
    make_database_url: MakeDatabaseUrl, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """The IdP as a live server on its own database."""
    yield from _live("idp", lambda name: make_database_url(f"interop_{name}"), tmp_path_factory)
