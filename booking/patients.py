"""The patient: identity and contact details (PHI, encrypted with every event), active holds and
appointments. Holds live here too so that "at most 3 holds" holds under concurrency: two holds for
one patient collide on this aggregate's version."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from booking.copying import PlainCopy
from booking.ids import aggregate_id
from booking.tenancy import TenantScoped
from booking.topics import pinned

MAX_ACTIVE_HOLDS = 3
KEEP_ENDED = timedelta(days=1)


@pinned("Patient")
class Patient(PlainCopy, TenantScoped, Aggregate):
    class Registered(Aggregate.Created):
        tenant_id: str
        patient_ref: str
        name: str
        phone: str | None
        birth_date: str | None
        language: str | None

    class HoldTaken(Aggregate.Event):
        tenant_id: str
        hold_id: str
        day_id: str
        expires_at: datetime

    class HoldEnded(Aggregate.Event):
        tenant_id: str
        hold_id: str
        outcome: str  # converted | released

    class AppointmentAdded(Aggregate.Event):
        tenant_id: str
        appointment_id: str

    @staticmethod
    def create_id(tenant_id: str, patient_ref: str) -> UUID:
        return aggregate_id(tenant_id, "patient", patient_ref)

    @event(Registered)
    def __init__(
        self,
        tenant_id: str,
        patient_ref: str,
        name: str,
        phone: str | None,
        birth_date: str | None,
        language: str | None,
    ) -> None:
        self.tenant_id = tenant_id
        self.patient_ref = patient_ref
        self.name = name
        self.phone = phone
        self.birth_date = birth_date
        self.language = language
        self.holds: dict[str, dict[str, Any]] = {}
        self.appointment_ids: list[str] = []

    def active_holds(self, now: datetime) -> list[str]:
        return [
            hold_id
            for hold_id, h in self.holds.items()
            if h["status"] == "held" and h["expires_at"] > now
        ]

    @event(HoldTaken)
    def take_hold(self, hold_id: str, day_id: str, expires_at: datetime) -> None:
        # Holds long over no longer matter to any decision; keep the state small. A hold that
        # ended recently is kept, so using it again is refused as not active (409) rather than
        # not found, whatever else the patient did meanwhile.
        self.holds = {
            k: h for k, h in self.holds.items() if h["expires_at"] + KEEP_ENDED > self.modified_on
        }
        self.holds[hold_id] = {"day_id": day_id, "expires_at": expires_at, "status": "held"}

    @event(HoldEnded)
    def end_hold(self, hold_id: str, outcome: str) -> None:
        if hold_id in self.holds:
            self.holds[hold_id]["status"] = outcome

    @event(AppointmentAdded)
    def add_appointment(self, appointment_id: str) -> None:
        self.appointment_ids.append(appointment_id)
