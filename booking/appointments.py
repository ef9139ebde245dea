"""Appointment: one id and one confirmation code for its whole life, reschedules included."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from booking.copying import PlainCopy
from booking.errors import InvalidState
from booking.tenancy import TenantScoped
from booking.topics import pinned

ACTIVE = "booked"
# How early a patient may be marked as arrived; "arrived days ahead" is refused.
EARLY_ARRIVAL = timedelta(hours=2)


@pinned("Appointment")
class Appointment(PlainCopy, TenantScoped, Aggregate):
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
        tenant_id: str
        provider_id: str
        start: datetime
        end: datetime
        timezone: str
        day_id: UUID
        previous_start: datetime
        previous_day_id: UUID
        call_id: str | None
        hold_id: str | None

    class Arrived(Aggregate.Event):
        tenant_id: str
        by_role: str

    class NoShow(Aggregate.Event):
        tenant_id: str
        by_role: str

    class Completed(Aggregate.Event):
        tenant_id: str
        by_role: str

    class Cancelled(Aggregate.Event):
        tenant_id: str
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

    # -- staff marks: what happened at the appointment ---------------------------------------

    def mark_arrived(self, now: datetime, by_role: str) -> None:
        self._require_active("mark as arrived")
        if now < self.start - EARLY_ARRIVAL:
            raise InvalidState("too early to mark as arrived: the appointment starts later")
        if now >= self.end:
            raise InvalidState("the appointment is over; mark it completed or no-show")
        self._arrived(by_role=by_role)

    def mark_no_show(self, now: datetime, by_role: str) -> None:
        self._require_active("mark as no-show")
        if now < self.start:
            raise InvalidState("cannot mark a no-show before the appointment starts")
        self._no_show(by_role=by_role)

    def mark_completed(self, now: datetime, by_role: str) -> None:
        if self.status not in (ACTIVE, "arrived"):
            raise InvalidState(f"cannot complete an appointment whose status is {self.status}")
        if now < self.start:
            raise InvalidState("cannot complete an appointment before it starts")
        self._completed(by_role=by_role)

    @event(Arrived)
    def _arrived(self, by_role: str) -> None:
        self.status = "arrived"

    @event(NoShow)
    def _no_show(self, by_role: str) -> None:
        self.status = "no-show"

    @event(Completed)
    def _completed(self, by_role: str) -> None:
        self.status = "completed"
