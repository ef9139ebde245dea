"""What goes out on NATS for each stored event: an explicit allowlist per event type.

Every message is a :class:`Payload` (the envelope: which event, whose, where in the log) or one of
its subclasses, and carries exactly the fields its class declares: each is read from the decoded
event by name and nothing else is, so state that is not declared here, such as a patient's name,
phone or birth date, a cancel reason typed by a person, or a confirmation code, can never reach
the wire by accident. An event type that is not listed here (a new one, added later) publishes
the envelope only until someone decides what it may carry. docs/events.md is the public description of this module;
fanout/messages.py turns an event into one of these and then into a message.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal
from uuid import UUID

import msgspec

CATALOGUE_VERSION = 1


class Payload(msgspec.Struct, kw_only=True, frozen=True):
    """The envelope every message carries; alone, it is what unlisted event types publish."""

    VERSION: ClassVar[int] = 1
    # a field of the envelope that names another event field (e.g. the appointment's own id)
    ALIASES: ClassVar[dict[str, str]] = {}

    event: str  # "<Aggregate>.<Event>", e.g. "Appointment.Booked"
    schema_version: int
    event_id: UUID  # also the message's Nats-Msg-Id
    tenant_id: str
    stream_id: UUID
    version: int
    position: int
    recorded_at: datetime


ENVELOPE = frozenset(Payload.__struct_fields__)


# -- practice setup ----------------------------------------------------------------------------


class TenantRegistered(Payload, kw_only=True, frozen=True):
    timezone: str


class TenantProviderAdded(Payload, kw_only=True, frozen=True):
    provider_id: str


class ProviderRegistered(Payload, kw_only=True, frozen=True):
    provider_id: str
    timezone: str


class AppointmentTypeDefined(Payload, kw_only=True, frozen=True):
    type_id: str
    duration_minutes: int


class Hours(msgspec.Struct, frozen=True):
    weekday: int
    start: str
    end: str


class WeeklyHoursSet(Payload, kw_only=True, frozen=True):
    provider_id: str
    hours: list[Hours]


class WeeklyHoursChanged(Payload, kw_only=True, frozen=True):
    hours: list[Hours]


# -- appointments ------------------------------------------------------------------------------


class _AppointmentEvent(Payload, kw_only=True, frozen=True):
    ALIASES: ClassVar[dict[str, str]] = {"appointment_id": "originator_id"}
    appointment_id: UUID


class AppointmentBooked(_AppointmentEvent, kw_only=True, frozen=True):
    status: Literal["booked"] = "booked"
    patient_ref: str
    provider_id: str
    type_id: str
    start: datetime
    end: datetime
    timezone: str
    day_id: UUID
    call_id: str | None
    hold_id: str | None


class AppointmentRescheduled(_AppointmentEvent, kw_only=True, frozen=True):
    status: Literal["booked"] = "booked"
    provider_id: str
    start: datetime
    end: datetime
    timezone: str
    day_id: UUID
    previous_start: datetime
    previous_day_id: UUID
    call_id: str | None
    hold_id: str | None


class AppointmentCancelled(_AppointmentEvent, kw_only=True, frozen=True):
    status: Literal["cancelled"] = "cancelled"
    by_role: str
    call_id: str | None


class AppointmentArrived(_AppointmentEvent, kw_only=True, frozen=True):
    status: Literal["arrived"] = "arrived"
    by_role: str


class AppointmentNoShow(_AppointmentEvent, kw_only=True, frozen=True):
    status: Literal["no-show"] = "no-show"
    by_role: str


class AppointmentCompleted(_AppointmentEvent, kw_only=True, frozen=True):
    status: Literal["completed"] = "completed"
    by_role: str


class ConfirmationCodeIssued(Payload, kw_only=True, frozen=True):
    appointment_id: UUID


# -- a provider's day: holds and bookings ------------------------------------------------------


class ProviderDayOpened(Payload, kw_only=True, frozen=True):
    provider_id: str
    date: str
    timezone: str


class ProviderDayHeld(Payload, kw_only=True, frozen=True):
    status: Literal["held"] = "held"
    hold_id: str
    type_id: str
    start: datetime
    end: datetime
    expires_at: datetime
    patient_ref: str
    call_id: str | None


class ProviderDayHoldReleased(Payload, kw_only=True, frozen=True):
    status: Literal["released"] = "released"
    hold_id: str


class ProviderDayBooked(Payload, kw_only=True, frozen=True):
    appointment_id: str
    start: datetime
    end: datetime
    hold_id: str | None


class ProviderDayBookingReleased(Payload, kw_only=True, frozen=True):
    appointment_id: str
    reason: str  # "cancelled" or "rescheduled": set by the code, never typed by a person


# -- patients: ids only, never who they are ----------------------------------------------------


class PatientRegistered(Payload, kw_only=True, frozen=True):
    patient_ref: str


class PatientHoldTaken(Payload, kw_only=True, frozen=True):
    hold_id: str
    expires_at: datetime


class PatientHoldEnded(Payload, kw_only=True, frozen=True):
    hold_id: str
    outcome: str  # "converted" or "released"


class PatientAppointmentAdded(Payload, kw_only=True, frozen=True):
    appointment_id: str


# -- calls: what happened on a phone call, never what was said ------------------------------------


class CallStarted(Payload, kw_only=True, frozen=True):
    call_id: str
    patient_ref: str | None
    language: str | None
    implicit: bool
    started_at: datetime


class CallDescribed(Payload, kw_only=True, frozen=True):
    patient_ref: str | None
    language: str | None


class CallToolCalled(Payload, kw_only=True, frozen=True):
    tool: str
    status: int
    outcome: str  # what it did, or the refusal's problem name
    replayed: bool
    appointment_id: str | None
    hold_id: str | None


class CallUttered(Payload, kw_only=True, frozen=True):
    allowed: bool
    reason: str  # the gate's reason code
    claim: str | None  # the kind of claim the gate saw, never the words


class CallEnded(Payload, kw_only=True, frozen=True):
    duration_seconds: int
    outcome: str | None
    cost_cents: int | None
    ended_at: datetime


# Every stored topic, with the class that says what it publishes. IdempotentRequest.Recorded is
# listed with the bare envelope on purpose: its key and fingerprint are the caller's business.
CATALOGUE: dict[str, type[Payload]] = {
    "booking:Tenant.Registered": TenantRegistered,
    "booking:Tenant.ProviderAdded": TenantProviderAdded,
    "booking:Provider.Registered": ProviderRegistered,
    "booking:AppointmentType.Defined": AppointmentTypeDefined,
    "booking:WeeklyHours.Set": WeeklyHoursSet,
    "booking:WeeklyHours.Changed": WeeklyHoursChanged,
    "booking:Appointment.Booked": AppointmentBooked,
    "booking:Appointment.Rescheduled": AppointmentRescheduled,
    "booking:Appointment.Cancelled": AppointmentCancelled,
    "booking:Appointment.Arrived": AppointmentArrived,
    "booking:Appointment.NoShow": AppointmentNoShow,
    "booking:Appointment.Completed": AppointmentCompleted,
    "booking:ConfirmationCode.Issued": ConfirmationCodeIssued,
    "booking:ProviderDay.Opened": ProviderDayOpened,
    "booking:ProviderDay.Held": ProviderDayHeld,
    "booking:ProviderDay.HoldReleased": ProviderDayHoldReleased,
    "booking:ProviderDay.Booked": ProviderDayBooked,
    "booking:ProviderDay.BookingReleased": ProviderDayBookingReleased,
    "booking:Patient.Registered": PatientRegistered,
    "booking:Patient.HoldTaken": PatientHoldTaken,
    "booking:Patient.HoldEnded": PatientHoldEnded,
    "booking:Patient.AppointmentAdded": PatientAppointmentAdded,
    "booking:IdempotentRequest.Recorded": Payload,
    "booking:Call.Started": CallStarted,
    "booking:Call.Described": CallDescribed,
    "booking:Call.ToolCalled": CallToolCalled,
    "booking:Call.Uttered": CallUttered,
    "booking:Call.Ended": CallEnded,
}
