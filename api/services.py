"""The services a request handler can use, built once per app in the lifespan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Request

from booking.audit import AuditLog
from booking.clock import Clock
from booking.gate import UtteranceGate
from booking.ledger import CallLedger
from booking.scheduling import Scheduling
from booking.settings import Settings
from booking.setup import Setup
from booking.store import SchedulingApp
from booking.tokens import TokenStore
from projections.views import Views


@dataclass
class Services:
    settings: Settings
    clock: Clock
    store: SchedulingApp
    setup: Setup
    scheduling: Scheduling
    tokens: TokenStore
    views: Views
    audit: AuditLog
    calls: CallLedger
    gate: UtteranceGate


def provide_services(request: Request[Any, Any, Any]) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]
