"""Liveness and readiness, without auth."""

from __future__ import annotations

from typing import Any

from litestar import get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.response import Response

from api.services import Services


@get("/health", sync_to_thread=False, tags=["health"])
def health() -> dict[str, str]:
    """The process answers."""
    return {"status": "ok"}


@get(
    "/ready",
    sync_to_thread=True,
    tags=["health"],
    responses={503: ResponseSpec(dict[str, Any], description="The database does not answer")},
)
def ready(services: NamedDependency[Services]) -> Response[dict[str, Any]]:
    """The database answers; each read model's and relay's lag (none run yet in this build)."""
    try:
        position = services.store.recorder.max_notification_id() or 0
    except Exception:
        return Response(
            {"status": "unavailable", "database": "unreachable"},
            status_code=503,
            headers={"Retry-After": "5"},
        )
    return Response(
        {
            "status": "ready",
            "database": "ok",
            "position": position,
            "projections": {},
            "relays": {},
        },
        status_code=200,
    )
