"""Appointment: one id and one confirmation code for its whole life, reschedules included."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from booking.errors import InvalidState
from booking.topics import pinned

ACTIVE = "booked"


@pinned("Appointment")
class Appointment(Aggregate):
    class Booked(Aggregate.Created):
        tenant_id: str
        patient_ref: str
        provider_id: str
        type_id: str
        start: datetime
        end: datetime
        timezone: str
        day_id: UUID
        confirmation_code: str
        call_id: str | None
        hold_id: str | None

    class Rescheduled(Aggregate.Event):
        provider_id: str
        start: datetime
        end: datetime
        timezone: str
        day_id: UUID
        previous_start: datetime
        previous_day_id: UUID
        call_id: str | None
        hold_id: str | None

    class Cancelled(Aggregate.Event):
        reason: str | None
        by_role: str
        call_id: str | None

    @event(Booked)
    def __init__(
        self,
        tenant_id: str,
        patient_ref: str,
        provider_id: str,
        type_id: str,
        start: datetime,
        end: datetime,
        timezone: str,
        day_id: UUID,
        confirmation_code: str,
        call_id: str | None,
        hold_id: str | None,
    ) -> None:
        self.tenant_id = tenant_id
        self.patient_ref = patient_ref
        self.provider_id = provider_id
        self.type_id = type_id
        self.start = start
        self.end = end
        self.timezone = timezone
        self.day_id = day_id
        self.confirmation_code = confirmation_code
        self.call_id = call_id
        self.status = ACTIVE

    def _require_active(self, action: str) -> None:
        if self.status != ACTIVE:
            raise InvalidState(f"cannot {action} an appointment whose status is {self.status}")

    def reschedule(
        self,
        provider_id: str,
        start: datetime,
        end: datetime,
        timezone: str,
        day_id: UUID,
        call_id: str | None,
        hold_id: str | None,
    ) -> None:
        self._require_active("reschedule")
        self._rescheduled(
            provider_id=provider_id,
            start=start,
            end=end,
            timezone=timezone,
            day_id=day_id,
            previous_start=self.start,
            previous_day_id=self.day_id,
            call_id=call_id,
            hold_id=hold_id,
        )

    @event(Rescheduled)
    def _rescheduled(
        self,
        provider_id: str,
        start: datetime,
        end: datetime,
        timezone: str,
        day_id: UUID,
        previous_start: datetime,
        previous_day_id: UUID,
        call_id: str | None,
        hold_id: str | None,
    ) -> None:
        self.provider_id = provider_id
        self.start = start
        self.end = end
        self.timezone = timezone
        self.day_id = day_id

    def cancel(self, reason: str | None, by_role: str, call_id: str | None) -> None:
        self._require_active("cancel")
        self._cancelled(reason=reason, by_role=by_role, call_id=call_id)

    @event(Cancelled)
    def _cancelled(self, reason: str | None, by_role: str, call_id: str | None) -> None:
        self.status = "cancelled"
