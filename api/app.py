"""The one wiring place: create_app(settings) builds the HTTP app and, in its lifespan, the
database, the event store and the services."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar
from litestar.concurrency import sync_to_thread
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig

from api.admin import AdminController
from api.agent import AgentController
from api.audit_routes import AuditController
from api.auditing import write_audit_entry
from api.calls import CallsController
from api.faults import Faults
from api.health import health, ready
from api.problems import HANDLERS
from api.ratelimit import RateLimiter
from api.services import Services, provide_services
from api.staff import StaffSetupController
from api.views import PortalController, StaffViewsController
from booking.audit import AuditLog
from booking.clock import Clock, SystemClock
from booking.commands import Executor
from booking.gate import UtteranceGate
from booking.ledger import CallLedger
from booking.runtime import Runtime, resolve
from booking.scheduling import Scheduling
from booking.schema import prepare_database
from booking.settings import Settings
from booking.setup import Setup
from booking.setupcache import SetupCache
from booking.store import open_store
from booking.tokens import TokenStore
from fanout.relay import Relay
from projections.catalog import PROJECTIONS
from projections.views import Views
from projections.worker import ProjectionWorker

log = logging.getLogger("booking.api")

MAX_BODY = 64 * 1024


def build_services(
    settings: Settings, runtime: Runtime, clock: Clock, pool_size: int | None = None
) -> Services:
    prepare_database(runtime.admin_database_url, runtime.database_url, runtime.cipher_key)
    if pool_size is None:
        store = open_store(runtime.database_url, runtime.cipher_key)
    else:
        store = open_store(
            runtime.database_url, runtime.cipher_key, pool_size=pool_size, max_overflow=0
        )
    executor = Executor(store)
    cache = SetupCache(store)
    calls = CallLedger(store, executor, clock)
    scheduling = Scheduling(store, executor, clock, settings.hold_ttl_seconds, cache, calls)
    return Services(
        settings=settings,
        clock=clock,
        store=store,
        setup=Setup(store, executor, cache),
        scheduling=scheduling,
        tokens=TokenStore(store, clock, runtime.admin_token),
        views=Views(store, cache),
        audit=AuditLog(store),
        calls=calls,
        gate=UtteranceGate(calls, scheduling),
    )


def _drop_400(app: Litestar) -> None:
    """litestar documents a 400 for every route with parameters; we answer 422 instead."""
    schema = app.openapi_schema
    for item in (schema.paths or {}).values():
        for op in (item.get, item.put, item.post, item.delete, item.patch):
            if op is not None and op.responses:
                op.responses.pop("400", None)


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    on_ready: Callable[[Services], None] | None = None,
    run_projections: bool = True,
    pool_size: int | None = None,
    faults: Faults | None = None,
) -> Litestar:
    """The app; ``on_ready`` runs once the services exist (``booking serve --demo`` seeds there)."""
    clock = clock or SystemClock()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        runtime = await sync_to_thread(resolve, settings)
        try:
            services = await sync_to_thread(build_services, settings, runtime, clock, pool_size)
            app.state.services = services
            app.state.rate_limiter = RateLimiter(settings.rate_limit_per_second)
            worker = None
            if run_projections and settings.run_projections:
                worker = ProjectionWorker(services.store, PROJECTIONS, runtime.database_url)
                worker.start()
            app.state.worker = worker
            relay = None
            if settings.nats_url:  # an unreachable NATS only delays the relay: it retries
                relay = Relay(services.store, runtime.database_url, settings.nats_url)
                relay.start()
            app.state.relay = relay
            app.state.runtime = runtime
            _drop_400(app)
            if on_ready is not None:
                await sync_to_thread(on_ready, services)
            try:
                yield
            finally:
                if relay is not None:
                    await sync_to_thread(relay.stop)
                if worker is not None:
                    await sync_to_thread(worker.stop)
                services.store.close()
        finally:
            runtime.close()

    return Litestar(
        route_handlers=[
            health,
            ready,
            AdminController,
            StaffSetupController,
            StaffViewsController,
            AgentController,
            CallsController,
            PortalController,
            AuditController,
        ],
        dependencies={"services": Provide(provide_services, sync_to_thread=False)},
        exception_handlers=HANDLERS,
        lifespan=[lifespan],
        request_max_body_size=MAX_BODY,
        before_send=[write_audit_entry],
        before_request=faults.before_request if faults else None,
        openapi_config=OpenAPIConfig(title="Booking API", version="1.0.0", path="/schema"),
        debug=False,
    )


def app_from_env() -> Any:
    """ASGI factory for ``uvicorn --factory api.app:app_from_env``."""
    return create_app(Settings.from_env())
