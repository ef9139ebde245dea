"""Screens read from the read models: the patient portal, the staff board, the patient timeline.
Each answer carries the position its read model has applied; ``min_position`` waits for it."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from booking.access import Scope
from booking.calendar import zone
from booking.errors import NotFound
from booking.patients import Patient
from booking.practice import Tenant
from booking.setupcache import SetupCache
from booking.store import SchedulingApp
from projections.appointments import BOARD, PORTAL, board_rows, portal_rows
from projections.economics import ECONOMICS, Economics, economics
from projections.reads import await_position, position_in, tenant_snapshot
from projections.timeline import TIMELINE, timeline_rows

BOARD_LIMIT = 2000
TIMELINE_LIMIT = 5000


class Views:
    def __init__(self, store: SchedulingApp, setup: SetupCache) -> None:
        self.store = store
        self.setup = setup

    def portal(self, scope: Scope, min_position: int | None) -> tuple[list[dict[str, Any]], int]:
        assert scope.patient_ref is not None
        await_position(self.store, PORTAL, min_position)
        with tenant_snapshot(self.store, scope.tenant_id, PORTAL) as curs:
            return portal_rows(curs, scope.patient_ref), position_in(curs, PORTAL)

    def _local_range(self, scope: Scope, date_from: date, date_to: date) -> tuple[Any, ...]:
        """[start of date_from, start of the day after date_to) in the tenant's time zone."""
        tenant = self.setup.get(Tenant.create_id(scope.tenant_id))
        if tenant is None:
            raise NotFound("tenant not found")
        tz = zone(tenant.timezone)
        start = datetime.combine(date_from, time(0), tz)
        end = datetime.combine(date_to + timedelta(days=1), time(0), tz)
        return start, end, tenant.timezone

    def economics(
        self,
        scope: Scope,
        date_from: date,
        date_to: date,
        cents_per_minute: Decimal,
        min_position: int | None,
    ) -> tuple[Economics, int]:
        start, end, timezone = self._local_range(scope, date_from, date_to)
        await_position(self.store, ECONOMICS, min_position)
        with tenant_snapshot(self.store, scope.tenant_id, ECONOMICS) as curs:
            found = economics(curs, start, end, timezone, cents_per_minute)
            return found, position_in(curs, ECONOMICS)

    def board(
        self,
        scope: Scope,
        date_from: date,
        date_to: date,
        provider_id: str | None,
        status: str | None,
        min_position: int | None,
    ) -> tuple[list[dict[str, Any]], int]:
        start, end, _ = self._local_range(scope, date_from, date_to)
        await_position(self.store, BOARD, min_position)
        with tenant_snapshot(self.store, scope.tenant_id, BOARD) as curs:
            rows = board_rows(curs, start, end, provider_id, status, BOARD_LIMIT)
            return rows, position_in(curs, BOARD)

    def timeline(
        self, scope: Scope, patient_ref: str, min_position: int | None
    ) -> tuple[list[dict[str, Any]], int]:
        if Patient.create_id(scope.tenant_id, patient_ref) not in self.store.repository:
            raise NotFound(f"patient {patient_ref!r} not found")
        await_position(self.store, TIMELINE, min_position)
        with tenant_snapshot(self.store, scope.tenant_id, TIMELINE) as curs:
            return timeline_rows(curs, patient_ref, TIMELINE_LIMIT), position_in(curs, TIMELINE)
