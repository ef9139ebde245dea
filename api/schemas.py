"""The typed bodies of the HTTP contract. Request structs double as the agent tools' parameters."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from msgspec import Meta

from booking.ids import CLIENT_ID_PATTERN

ClientId = Annotated[
    str, Meta(pattern=CLIENT_ID_PATTERN, description="lower-case letters, digits, _ and -")
]
Name = Annotated[str, Meta(min_length=1, max_length=200)]
Timezone = Annotated[
    str, Meta(min_length=1, max_length=64, description="IANA time zone, e.g. America/New_York")
]
Instant = Annotated[datetime, Meta(tz=True, description="RFC 3339 instant with an offset")]
HHMM = Annotated[
    str, Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", description="local time HH:MM")
]
SlotId = Annotated[str, Meta(min_length=1, max_length=200, description="slot_id from availability")]
Phone = Annotated[str, Meta(pattern=r"^\+?[0-9][0-9 ().-]{2,30}$")]
Language = Annotated[
    str, Meta(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$", description="e.g. en, es")
]


class Request(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=False):
    pass


# -- admin ----------------------------------------------------------------------------------------


class TenantIn(Request):
    tenant_id: ClientId
    name: Name
    timezone: Timezone


class TenantOut(msgspec.Struct):
    tenant_id: str
    name: str
    timezone: str


class TokenIn(Request):
    role: Literal["staff", "agent", "patient", "auditor"]
    patient_ref: ClientId | None = None
    call_id: ClientId | None = None
    ttl_seconds: Annotated[int, Meta(ge=60, le=365 * 86400)] | None = None


class TokenOut(msgspec.Struct):
    token: str
    token_id: UUID
    role: str
    tenant_id: str
    patient_ref: str | None
    call_id: str | None
    expires_at: datetime


# -- evidence ---------------------------------------------------------------------------------------


class Evidence(msgspec.Struct):
    event_id: UUID
    stream_id: UUID
    version: int
    position: int
    recorded_at: datetime


# -- staff setup ----------------------------------------------------------------------------------


class ProviderIn(Request):
    provider_id: ClientId
    name: Name
    timezone: Timezone | None = None


class ProviderOut(msgspec.Struct):
    provider_id: str
    name: str
    timezone: str
    evidence: Evidence


class AppointmentTypeIn(Request):
    type_id: ClientId
    name: Name
    duration_minutes: Annotated[int, Meta(ge=5, le=720)]


class AppointmentTypeOut(msgspec.Struct):
    type_id: str
    name: str
    duration_minutes: int
    evidence: Evidence


class HoursIn(Request):
    weekday: Annotated[int, Meta(ge=0, le=6, description="0 = Monday … 6 = Sunday")]
    start: HHMM
    end: HHMM


class WeeklyHoursIn(Request):
    hours: Annotated[list[HoursIn], Meta(max_length=100)]


class WeeklyHoursOut(msgspec.Struct):
    provider_id: str
    hours: list[HoursIn]
    evidence: Evidence


class PatientIn(Request):
    patient_ref: ClientId
    name: Name
    phone: Phone | None = None
    birth_date: date | None = None
    language: Language | None = None


class PatientOut(msgspec.Struct):
    patient_ref: str
    name: str
    phone: str | None
    birth_date: str | None
    language: str | None
    evidence: Evidence


# -- agent tools ----------------------------------------------------------------------------------


class AvailabilityIn(Request):
    """Find open appointment slots of one type, earliest first. Call this before holding a slot."""

    type_id: Annotated[ClientId, Meta(description="appointment type, e.g. checkup")]
    start_from: Annotated[Instant, Meta(description="earliest start, RFC 3339 with offset")]
    start_to: Annotated[
        Instant, Meta(description="latest start, RFC 3339 with offset; window at most 31 days")
    ]
    provider_id: Annotated[ClientId, Meta(description="only this provider")] | None = None
    limit: Annotated[int, Meta(ge=1, le=50, description="how many slots, 1-50")] = 10


class SlotOut(msgspec.Struct):
    slot_id: str
    provider_id: str
    type_id: str
    start: datetime
    end: datetime


class AvailabilityOut(msgspec.Struct):
    slots: list[SlotOut]


class HoldIn(Request):
    """Hold an open slot for a patient for a few minutes while the patient decides."""

    slot_id: SlotId
    patient_ref: Annotated[ClientId, Meta(description="the patient the slot is held for")]
    call_id: Annotated[ClientId, Meta(description="the call this happens on")] | None = None


class HoldOut(msgspec.Struct):
    hold_id: UUID
    slot_id: str
    status: str
    provider_id: str
    type_id: str
    start: datetime
    end: datetime
    expires_at: datetime
    evidence: Evidence


class BookingIn(Request):
    """Book an appointment from a hold (hold_id) or directly from an open slot (slot_id)."""

    patient_ref: Annotated[ClientId, Meta(description="the patient being booked")]
    hold_id: Annotated[UUID, Meta(description="a hold from hold_slot")] | None = None
    slot_id: SlotId | None = None
    call_id: Annotated[ClientId, Meta(description="the call this happens on")] | None = None


class AppointmentOut(msgspec.Struct):
    appointment_id: UUID
    confirmation_code: str
    status: str
    start: datetime
    end: datetime
    provider_id: str
    type_id: str
    evidence: Evidence


class RescheduleIn(Request):
    """Move a booked appointment to another slot; it keeps its id and confirmation code."""

    slot_id: SlotId | None = None
    hold_id: Annotated[UUID, Meta(description="a hold from hold_slot")] | None = None
    call_id: Annotated[ClientId, Meta(description="the call this happens on")] | None = None


class CancelIn(Request):
    """Cancel a booked appointment and free its slot."""

    reason: Annotated[str, Meta(max_length=500)] | None = None


class AgentCancelIn(CancelIn):
    """Cancel a booked appointment and free its slot."""

    call_id: Annotated[ClientId, Meta(description="the call this happens on")] | None = None


class CancelOut(msgspec.Struct):
    appointment_id: UUID
    status: str
    evidence: Evidence


class ConfirmationOut(msgspec.Struct, omit_defaults=True):
    confirmed: bool
    appointment_id: UUID
    status: str
    start: datetime | None = None
    end: datetime | None = None
    provider_id: str | None = None
    type_id: str | None = None
    confirmation_code: str | None = None
    evidence: Evidence | None = None


class PatientAppointment(msgspec.Struct):
    appointment_id: UUID
    status: str
    start: datetime
    end: datetime
    provider_id: str
    type_id: str
    confirmation_code: str


class PatientAppointmentsOut(msgspec.Struct):
    appointments: list[PatientAppointment]


# -- problems -------------------------------------------------------------------------------------


class FieldProblem(msgspec.Struct):
    field: str
    message: str


class Problem(msgspec.Struct, omit_defaults=True):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldProblem] | None = None
    alternatives: list[SlotOut] | None = None
    confirmed: bool | None = None
    error_id: str | None = None


# -- views (read models) ------------------------------------------------------------------------


class ViewAppointment(msgspec.Struct):
    appointment_id: UUID
    patient_ref: str
    status: str
    start: datetime
    end: datetime
    provider_id: str
    type_id: str
    confirmation_code: str


class ViewAppointmentsOut(msgspec.Struct):
    appointments: list[ViewAppointment]
    position: int


class TimelineEntry(msgspec.Struct):
    at: datetime
    kind: str
    position: int
    appointment_id: UUID | None
    details: dict[str, Any]


class TimelineOut(msgspec.Struct):
    patient_ref: str
    entries: list[TimelineEntry]
    position: int


class MarkOut(msgspec.Struct):
    appointment_id: UUID
    status: str
    evidence: Evidence


# -- calls ----------------------------------------------------------------------------------------


class CallIn(Request):
    """Start recording a phone call: its tool calls and everything the agent says on it."""

    call_id: Annotated[ClientId, Meta(description="the platform's id for this call")]
    patient_ref: Annotated[ClientId, Meta(description="the caller, when known")] | None = None
    language: Annotated[Language, Meta(description="the call's language, e.g. en, es")] | None = (
        None
    )


class UtteranceIn(Request):
    """Check what the agent is about to say; a claim of a booking needs a booking event."""

    text: Annotated[str, Meta(min_length=1, max_length=4000, description="the exact words")]


class UtteranceOut(msgspec.Struct):
    allowed: bool
    reason: str
    confirmation_codes: list[str]
    claim: str | None
    evidence: Evidence


class CallEndIn(Request):
    """The call is over: how long it took, how it ended, what it cost if the platform knows."""

    duration_seconds: Annotated[int, Meta(ge=0, le=86400, description="whole seconds")]
    outcome: Annotated[str, Meta(min_length=1, max_length=64)] | None = None
    cost_cents: Annotated[int, Meta(ge=0, le=10_000_000)] | None = None


class CallOut(msgspec.Struct):
    call_id: str
    status: str  # active | ended
    patient_ref: str | None
    language: str | None
    started_at: datetime
    appointment_ids: list[UUID]
    tool_calls: int
    utterances: int
    ended_at: datetime | None
    duration_seconds: int | None
    outcome: str | None
    cost_cents: int | None
    evidence: Evidence


class Economics(msgspec.Struct):
    calls: int
    minutes: float
    cost_cents: int
    bookings: int
    cost_per_booking_cents: int | None


class CallEconomicsOut(msgspec.Struct):
    date_from: date
    date_to: date
    calls: int
    minutes: float
    cost_cents: int
    bookings: int
    cost_per_booking_cents: int | None
    voice_cents_per_minute: float
    by_language: dict[str, Economics]
    by_day: dict[str, Economics]
    position: int
