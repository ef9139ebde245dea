"""Liveness and readiness, without auth."""

from __future__ import annotations

import logging
from typing import Any

from litestar import get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.response import Response

from api.services import Services
from fanout.tracking import lag as relay_lag
from projections.catalog import PROJECTIONS
from projections.reads import lag

log = logging.getLogger("booking.api")


@get("/health", sync_to_thread=False, tags=["health"])
def health() -> dict[str, str]:
    """The process answers."""
    return {"status": "ok"}


@get(
    "/ready",
    sync_to_thread=True,
    tags=["health"],
    responses={503: ResponseSpec(dict[str, Any], description="Database down or a view lags")},
)
def ready(services: NamedDependency[Services]) -> Response[dict[str, Any]]:
    """The database answers, and each read model's and the relay's lag is within bounds."""
    try:
        position = services.store.recorder.max_notification_id() or 0
        projections = {p.name: lag(services.store, p) for p in PROJECTIONS}
        relays = {"nats": relay_lag(services.store)} if services.settings.nats_url else {}
    except Exception as exc:
        log.warning("readiness check failed: %s", type(exc).__name__)
        return Response(
            {"status": "unavailable", "database": "unreachable"},
            status_code=503,
            headers={"Retry-After": "5"},
        )
    limit = services.settings.ready_max_lag_seconds
    lagging = [name for name, p in {**projections, **relays}.items() if p["lag_seconds"] > limit]
    body = {
        "status": "lagging" if lagging else "ready",
        "database": "ok",
        "position": position,
        "projections": projections,
        "relays": relays,
        "max_lag_seconds": limit,
    }
    return Response(
        body, status_code=503 if lagging else 200, headers={"Retry-After": "5"} if lagging else None
    )
