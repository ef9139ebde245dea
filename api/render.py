"""Replies as pure functions of stored events: an idempotent replay renders the same bytes."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgspec

from api import schemas as s
from booking.calendar import Slot, zone
from booking.commands import Decision
from booking.ids import event_id
from projections.economics import Economics, Tally


def local(instant: datetime, timezone: str) -> datetime:
    return instant.astimezone(zone(timezone))


def evidence(d: Decision) -> s.Evidence:
    return s.Evidence(
        event_id=event_id(d.stream_id, d.version),
        stream_id=d.stream_id,
        version=d.version,
        position=d.position,
        recorded_at=d.subject.modified_on.astimezone(UTC),
    )


def evidence_of(aggregate: Any, position: int) -> s.Evidence:
    return s.Evidence(
        event_id=event_id(aggregate.id, aggregate.version),
        stream_id=aggregate.id,
        version=aggregate.version,
        position=position,
        recorded_at=aggregate.modified_on.astimezone(UTC),
    )


def slot(sl: Slot, timezone: str) -> s.SlotOut:
    return s.SlotOut(
        slot_id=sl.slot_id,
        provider_id=sl.provider_id,
        type_id=sl.type_id,
        start=local(sl.start, timezone),
        end=local(sl.end, timezone),
    )


def appointment(d: Decision) -> s.AppointmentOut:
    a = d.subject
    return s.AppointmentOut(
        appointment_id=a.id,
        confirmation_code=a.confirmation_code,
        status=a.status,
        start=local(a.start, a.timezone),
        end=local(a.end, a.timezone),
        provider_id=a.provider_id,
        type_id=a.type_id,
        evidence=evidence(d),
    )


def cancellation(d: Decision) -> s.CancelOut:
    return s.CancelOut(appointment_id=d.subject.id, status=d.subject.status, evidence=evidence(d))


def hold(d: Decision) -> s.HoldOut:
    day = d.subject
    h = day.holds[d.ref]
    return s.HoldOut(
        hold_id=UUID(d.ref),
        slot_id=Slot(day.provider_id, h["type_id"], h["start"], h["end"]).slot_id,
        status="held",
        provider_id=day.provider_id,
        type_id=h["type_id"],
        start=local(h["start"], day.timezone),
        end=local(h["end"], day.timezone),
        expires_at=local(h["expires_at"], day.timezone),
        evidence=evidence(d),
    )


def tenant(d: Decision) -> s.TenantOut:
    t = d.subject
    return s.TenantOut(tenant_id=t.tenant_id, name=t.name, timezone=t.timezone)


def provider(d: Decision) -> s.ProviderOut:
    p = d.subject
    return s.ProviderOut(
        provider_id=p.provider_id, name=p.name, timezone=p.timezone, evidence=evidence(d)
    )


def appointment_type(d: Decision) -> s.AppointmentTypeOut:
    t = d.subject
    return s.AppointmentTypeOut(
        type_id=t.type_id, name=t.name, duration_minutes=t.duration_minutes, evidence=evidence(d)
    )


def weekly_hours(d: Decision) -> s.WeeklyHoursOut:
    w = d.subject
    return s.WeeklyHoursOut(
        provider_id=w.provider_id,
        hours=msgspec.convert(w.hours, list[s.HoursIn]),
        evidence=evidence(d),
    )


def patient(d: Decision) -> s.PatientOut:
    p = d.subject
    return s.PatientOut(
        patient_ref=p.patient_ref,
        name=p.name,
        phone=p.phone,
        birth_date=p.birth_date,
        language=p.language,
        evidence=evidence(d),
    )


RENDERERS = {
    "appointment": appointment,
    "cancellation": cancellation,
    "mark": cancellation,
    "hold": hold,
    "tenant": tenant,
    "provider": provider,
    "appointment-type": appointment_type,
    "weekly-hours": weekly_hours,
    "patient": patient,
}


def decision(d: Decision) -> Any:
    return RENDERERS[d.kind](d)


def view_appointment(row: dict[str, Any]) -> s.ViewAppointment:
    return s.ViewAppointment(
        appointment_id=row["appointment_id"],
        patient_ref=row["patient_ref"],
        status=row["status"],
        start=local(row["start_at"], row["timezone"]),
        end=local(row["end_at"], row["timezone"]),
        provider_id=row["provider_id"],
        type_id=row["type_id"],
        confirmation_code=row["confirmation_code"],
    )


def timeline_entry(row: dict[str, Any]) -> s.TimelineEntry:
    return s.TimelineEntry(
        at=row["at"].astimezone(UTC),
        kind=row["kind"],
        position=row["position"],
        appointment_id=row["appointment_id"],
        details=row["details"],
    )


def call(d: Decision, patient_ref: str | None) -> s.CallOut:
    """The call; a patient-bound caller sees only its own patient's appointments on it."""
    c = d.subject
    return s.CallOut(
        call_id=c.call_id,
        status=c.status,
        patient_ref=c.patient_ref,
        language=c.language,
        started_at=c.started_at.astimezone(UTC),
        appointment_ids=[UUID(a) for a in c.appointments_of(patient_ref)],
        tool_calls=c.tool_calls,
        utterances=len(c.utterances),
        ended_at=c.ended_at.astimezone(UTC) if c.ended_at else None,
        duration_seconds=c.duration_seconds,
        outcome=c.outcome,
        cost_cents=c.cost_cents,
        evidence=evidence(d),
    )


def utterance(d: Decision) -> s.UtteranceOut:
    assert d.ref is not None
    said = d.subject.utterances[int(d.ref)]
    return s.UtteranceOut(
        allowed=said["allowed"],
        reason=said["reason"],
        confirmation_codes=said["codes"],
        claim=said["claim"],
        evidence=evidence(d),
    )


def _economics(t: Tally) -> s.Economics:
    return s.Economics(
        calls=t.calls,
        minutes=t.minutes,
        cost_cents=t.cost_cents,
        bookings=t.bookings,
        cost_per_booking_cents=t.cost_per_booking_cents,
    )


def call_economics(
    date_from: date, date_to: date, e: Economics, rate: Decimal, position: int
) -> s.CallEconomicsOut:
    return s.CallEconomicsOut(
        date_from=date_from,
        date_to=date_to,
        calls=e.total.calls,
        minutes=e.total.minutes,
        cost_cents=e.total.cost_cents,
        bookings=e.total.bookings,
        cost_per_booking_cents=e.total.cost_per_booking_cents,
        voice_cents_per_minute=float(rate),
        by_language={k: _economics(v) for k, v in e.by_language.items()},
        by_day={k: _economics(v) for k, v in e.by_day.items()},
        position=position,
    )
