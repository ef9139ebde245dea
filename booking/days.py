"""ProviderDay: every hold and booking of one provider on one local date.

Double booking is prevented here: two commands deciding on the same day collide on this
aggregate's version; the loser reloads, re-runs and then sees the slot taken. An expired hold is
simply ignored when deciding, so no timer has to release it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from booking.copying import PlainCopy
from booking.ids import aggregate_id
from booking.tenancy import TenantScoped
from booking.topics import pinned


def hold_status(hold: dict[str, Any], now: datetime) -> str:
    if hold["status"] == "held" and hold["expires_at"] <= now:
        return "expired"
    return str(hold["status"])


@pinned("ProviderDay")
class ProviderDay(PlainCopy, TenantScoped, Aggregate):
    class Opened(Aggregate.Created):
        tenant_id: str
        provider_id: str
        date: str
        timezone: str

    class Held(Aggregate.Event):
        tenant_id: str
        hold_id: str
        type_id: str
        start: datetime
        end: datetime
        patient_ref: str
        call_id: str | None
        expires_at: datetime

    class HoldReleased(Aggregate.Event):
        tenant_id: str
        hold_id: str

    class Booked(Aggregate.Event):
        tenant_id: str
        appointment_id: str
        start: datetime
        end: datetime
        hold_id: str | None

    class BookingReleased(Aggregate.Event):
        tenant_id: str
        appointment_id: str
        reason: str  # cancelled | rescheduled

    @staticmethod
    def create_id(tenant_id: str, provider_id: str, date: str) -> UUID:
        return aggregate_id(tenant_id, "provider-day", provider_id, date)

    @event(Opened)
    def __init__(self, tenant_id: str, provider_id: str, date: str, timezone: str) -> None:
        self.tenant_id = tenant_id
        self.provider_id = provider_id
        self.date = date
        self.timezone = timezone
        self.holds: dict[str, dict[str, Any]] = {}
        self.bookings: dict[str, dict[str, Any]] = {}

    def blocker(
        self,
        start: datetime,
        end: datetime,
        now: datetime,
        *,
        patient_ref: str | None = None,
        ignore_appointment: str | None = None,
    ) -> str | None:
        """What keeps [start, end) from being taken, or None when it is open.

        Active holds of ``patient_ref`` do not block that patient.
        """
        for appointment_id, b in self.bookings.items():
            if appointment_id != ignore_appointment and b["start"] < end and start < b["end"]:
                return "booked"
        for h in self.holds.values():
            overlaps = h["start"] < end and start < h["end"]
            if overlaps and hold_status(h, now) == "held" and h["patient_ref"] != patient_ref:
                return "held"
        return None

    def own_hold_on(
        self,
        slot_start: datetime,
        slot_end: datetime,
        type_id: str,
        patient_ref: str,
        now: datetime,
    ) -> str | None:
        """The patient's active hold on exactly this slot (same time and type), if any."""
        for hold_id, h in self.holds.items():
            same = (h["start"], h["end"], h["type_id"]) == (slot_start, slot_end, type_id)
            if same and h["patient_ref"] == patient_ref and hold_status(h, now) == "held":
                return hold_id
        return None

    @event(Held)
    def hold(
        self,
        hold_id: str,
        type_id: str,
        start: datetime,
        end: datetime,
        patient_ref: str,
        call_id: str | None,
        expires_at: datetime,
    ) -> None:
        self.holds[hold_id] = {
            "type_id": type_id,
            "start": start,
            "end": end,
            "patient_ref": patient_ref,
            "call_id": call_id,
            "expires_at": expires_at,
            "status": "held",
        }

    @event(HoldReleased)
    def release_hold(self, hold_id: str) -> None:
        self.holds[hold_id]["status"] = "released"

    @event(Booked)
    def book(
        self, appointment_id: str, start: datetime, end: datetime, hold_id: str | None
    ) -> None:
        self.bookings[appointment_id] = {"start": start, "end": end}
        if hold_id is not None and hold_id in self.holds:
            self.holds[hold_id]["status"] = "converted"

    @event(BookingReleased)
    def release_booking(self, appointment_id: str, reason: str) -> None:
        self.bookings.pop(appointment_id, None)
