"""Shared fixtures: one PostgreSQL server per session, a fresh database per module, the real app.

Which server (first match wins): ``BOOKING_TEST_DATABASE_URL`` (a superuser URL of a server you
run), a ``postgres:16-alpine`` container when a Docker engine answers, else the embedded wheel.
The run's summary says which one was used.
"""

from __future__ import annotations

import base64
import dataclasses
import os
from collections.abc import Iterator

import pytest

from fanout.nats_server import NatsServer
from tests.support.nats import NATS_PORT
from tests.support.postgres import PgCluster, database_name, start_cluster
from tests.support.server import ADMIN_TOKEN, LiveServer, RunningServer, bearer

_CLUSTER_DESCRIPTION = pytest.StashKey[str]()


@pytest.fixture(scope="session")
def pg_cluster(request: pytest.FixtureRequest) -> Iterator[PgCluster]:
    cluster = start_cluster()
    request.config.stash[_CLUSTER_DESCRIPTION] = cluster.description
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """A nats-server from the wheel at ``tests.support.nats.NATS_URL``, JetStream on disk."""
    with NatsServer(tmp_path_factory.mktemp("nats"), NATS_PORT) as server:
        yield server


@pytest.fixture(scope="module")
def database(pg_cluster: PgCluster, request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """``(runtime_url, admin_url)`` of a database of this module's own, dropped afterwards."""
    name = database_name(request.module.__name__)
    urls = pg_cluster.create_database(name)
    try:
        yield urls
    finally:
        pg_cluster.drop_database(name)


@pytest.fixture(scope="module")
def live_server(
    database: tuple[str, str],
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[LiveServer]:
    """The real app (``api.app.create_app``) served over HTTP on a free local port.

    A module may set ``SERVER_SETTINGS = {...}`` to override Settings fields for its server,
    and ``APP_OPTIONS = {...}`` for create_app's other arguments (pool_size, faults,
    run_projections).
    """
    from api.app import create_app
    from booking.clock import ManualClock
    from booking.settings import Settings

    runtime_url, admin_url = database
    settings = Settings(
        database_url=runtime_url,
        admin_database_url=admin_url,
        home=tmp_path_factory.mktemp("home"),
        admin_token=ADMIN_TOKEN,
        cipher_key=base64.b64encode(os.urandom(32)).decode(),
        nats_url=None,
        hold_ttl_seconds=300,
        rate_limit_per_second=0,
        ready_max_lag_seconds=30,
    )
    settings = dataclasses.replace(settings, **getattr(request.module, "SERVER_SETTINGS", {}))
    clock = ManualClock()
    app = create_app(settings, clock=clock, **getattr(request.module, "APP_OPTIONS", {}))
    server = RunningServer(app)
    server.start()
    try:
        yield LiveServer(
            base_url=server.base_url,
            clock=clock,
            settings=settings,
            admin_headers=bearer(ADMIN_TOKEN),
            app=app,
        )
    finally:
        server.stop()


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    description = config.stash.get(_CLUSTER_DESCRIPTION, None)
    if description is not None:
        terminalreporter.write_line(f"PostgreSQL for tests: {description}")
