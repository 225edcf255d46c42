"""Fixtures of the hall's tests: a real IdP as a live server, the hall registered at it, and
halls (test-client apps or a live server) configured to sign in through it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from tests.conftest import AppFactory, MakeDatabaseUrl
from tests.e2e.conftest import LiveServer, free_port
from tests.hall.catalog_support import load_demo
from tests.hall.sso_support import (
    TEST_CLIENT_BASE,
    register_hall,
    start_live_hall,
    start_oidc_idp,
)


@pytest.fixture(scope="session")
def sso_idp(
    make_database_url: MakeDatabaseUrl, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """The IdP as a live server, issuer = its own address."""
    yield from start_oidc_idp(make_database_url, tmp_path_factory, "hall_sso_idp")


@pytest.fixture(scope="session")
def live_hall_port() -> int:
    """The port the live hall will listen on (known before it starts, to register it)."""
    return free_port()


@pytest.fixture(scope="session")
def hall_registration(sso_idp: LiveServer, live_hall_port: int) -> dict[str, Any]:
    """The hall's client registration, valid for the test client and the live hall."""
    live = f"http://127.0.0.1:{live_hall_port}"
    return register_hall(
        sso_idp, TEST_CLIENT_BASE, live, backchannel=f"{live}/auth/backchannel-logout"
    )


@pytest.fixture
def sso_hall(
    make_hall: AppFactory, sso_idp: LiveServer, hall_registration: dict[str, Any]
) -> Flask:
    """A test-client hall that signs in through the live IdP."""
    return make_hall(
        OIDC_ISSUER=sso_idp.url,
        OIDC_CLIENT_ID=hall_registration["client_id"],
        OIDC_CLIENT_SECRET=hall_registration["client_secret"],
    )


@pytest.fixture(scope="session")
def live_sso_hall(
    make_database_url: MakeDatabaseUrl,
    tmp_path_factory: pytest.TempPathFactory,
    sso_idp: LiveServer,
    hall_registration: dict[str, Any],
    live_hall_port: int,
) -> Iterator[LiveServer]:
    """The hall as a live server (the IdP must be able to POST logout tokens to it)."""
    yield from start_live_hall(
        make_database_url,
        tmp_path_factory,
        "hall_sso_hall",
        sso_idp,
        hall_registration,
        live_hall_port,
    )


@pytest.fixture
def demo_hall(hall_app: Flask) -> Flask:
    """A hall with the demo catalogue."""
    load_demo(hall_app)
    return hall_app
