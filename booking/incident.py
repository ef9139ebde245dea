"""What `booking replay` shows: which streams belong to a call, a patient, an appointment or a
provider's day, their timeline, and the state of an appointment or a day at a given moment
(time travel: the aggregate rebuilt from its events up to that time or log position)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from booking.appointments import Appointment
from booking.calendar import zone
from booking.calls import Call
from booking.days import ProviderDay, hold_status
from booking.errors import NotFound
from booking.patients import Patient
from booking.replay import Describer, Line, first_position_at, log_events, plain, stream_events
from booking.store import SchedulingApp

# timestamps are taken before the log's table lock, so a later position can carry an earlier
# time by a little; a window starts this far back and filters by time
JITTER = 1000


def _get(store: SchedulingApp, stream_id: UUID, what: str) -> Any:
    try:
        return store.repository.get(stream_id)
    except AggregateNotFoundError:
        raise NotFound(f"{what} not found") from None


def _timeline(describer: Describer, events: list[tuple[int, str, Any]]) -> list[Line]:
    """Lines in log order; a hold's expiry goes where it happened, before the first later event."""
    lines: list[Line] = []
    for position, topic, e in sorted(events, key=lambda item: item[0]):
        lines += describer.expired(e.timestamp)
        line = describer.line(position, topic, e)
        if line is not None:
            lines.append(line)
    return lines + describer.expired(datetime.now(UTC))


def _calls_of(events: list[tuple[int, str, Any]], tenant_id: str) -> set[UUID]:
    return {
        Call.create_id(tenant_id, e.call_id)
        for _, _, e in events
        if getattr(e, "call_id", None) and hasattr(e, "tenant_id")
    }


def calls_with(store: SchedulingApp, tenant: str, patient_ref: str) -> set[UUID]:
    """Calls started (or later described) with this patient, including those that booked nothing.

    Read from the calls' Started and Described events across the log (their topics are stored in
    the clear, their contents are not); a per-patient index would spare the scan.
    """
    topics = [Call.Started.TOPIC, Call.Described.TOPIC]  # type: ignore[attr-defined]
    return {
        e.originator_id
        for _, _, e in log_events(store, topics=topics)
        if e.tenant_id == tenant and e.patient_ref == patient_ref
    }


def call_timeline(
    store: SchedulingApp, describer: Describer, tenant: str, call_id: str
) -> list[Line]:
    """The call's own events, every event of the appointments it booked, rescheduled or cancelled,
    and the holds it took with their days' bookings of them."""
    call: Call = _get(store, Call.create_id(tenant, call_id), f"call {call_id!r}")
    own = stream_events(store, [call.id])
    appointments = {UUID(e.appointment_id) for _, _, e in own if getattr(e, "appointment_id", None)}
    days = {UUID(e.day_id) for _, _, e in own if getattr(e, "day_id", None)}
    related = stream_events(store, [*appointments, *days])
    holds = {e.hold_id for _, _, e in own if getattr(e, "hold_id", None)}
    keep = [
        (p, t, e)
        for p, t, e in related
        if not t.startswith("booking:ProviderDay")
        or getattr(e, "hold_id", None) in holds
        or getattr(e, "appointment_id", None) in {str(a) for a in appointments}
    ]
    return _timeline(describer, sorted([*own, *keep], key=lambda x: x[0]))


def patient_timeline(
    store: SchedulingApp, describer: Describer, tenant: str, patient_ref: str
) -> list[Line]:
    """The patient's events, their appointments' events and the calls those happened on."""
    patient: Patient = _get(
        store, Patient.create_id(tenant, patient_ref), f"patient {patient_ref!r}"
    )
    appointments = stream_events(store, [UUID(a) for a in patient.appointment_ids])
    calls = stream_events(
        store, _calls_of(appointments, tenant) | calls_with(store, tenant, patient_ref)
    )
    own = stream_events(store, [patient.id])
    return _timeline(describer, sorted([*own, *appointments, *calls], key=lambda x: x[0]))


def appointment_timeline(
    store: SchedulingApp, describer: Describer, appointment_id: UUID
) -> list[Line]:
    appointment: Appointment = _get(store, appointment_id, f"appointment {appointment_id}")
    own = stream_events(store, [appointment.id])
    calls = stream_events(store, _calls_of(own, appointment.tenant_id))
    return _timeline(describer, sorted([*own, *calls], key=lambda x: x[0]))


def day_timeline(
    store: SchedulingApp, describer: Describer, tenant: str, provider_id: str, date: str
) -> list[Line]:
    day_id = ProviderDay.create_id(tenant, provider_id, date)
    _get(store, day_id, f"day {date} of provider {provider_id!r}")
    return _timeline(describer, stream_events(store, [day_id]))


def window_timeline(
    store: SchedulingApp,
    describer: Describer,
    start: datetime,
    end: datetime,
    tenant: str | None,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[Line]:
    """Every event recorded in [start, end), streamed in log order; expired holds at the end."""
    first = max(0, first_position_at(store, start) - JITTER)
    log_end = int(store.recorder.max_notification_id() or 0)
    last = min(log_end, first_position_at(store, end) + JITTER)  # what the bar counts to
    after_end = 0
    for position, topic, e in log_events(store, first, log_end):
        if progress is not None:
            progress(min(position, last) - first, last - first)
        if e.timestamp >= end:
            after_end += 1
            if after_end > JITTER:
                break
            continue
        if e.timestamp < start or (tenant and getattr(e, "tenant_id", None) != tenant):
            continue
        yield from describer.expired(e.timestamp)
        line = describer.line(position, topic, e)
        if line is not None:
            yield line
    if progress is not None:
        progress(last - first, last - first)
    yield from describer.expired(end)


# -- time travel ---------------------------------------------------------------------------------


def version_at(
    events: list[tuple[int, str, Any]], at_time: datetime | None, at_position: int | None
) -> int | None:
    """The stream's version as of a time or a log position (None: it did not exist yet)."""
    version = None
    for position, _, e in events:
        if (at_position is not None and position > at_position) or (
            at_time is not None and e.timestamp > at_time
        ):
            break
        version = int(e.originator_version)
    return version


def state_at(
    store: SchedulingApp, stream_id: UUID, at_time: datetime | None, at_position: int | None
) -> dict[str, Any]:
    """An appointment or a provider day as it was then, summarised for an analyst."""
    events = stream_events(store, [stream_id])
    version = version_at(events, at_time, at_position)
    if version is None:
        return {"exists": False}
    a: Any = store.repository.get(stream_id, version=version)
    position = next(p for p, _, e in events if e.originator_version == version)
    summary: dict[str, Any] = {"exists": True, "version": version, "position": position}
    if isinstance(a, Appointment):
        summary |= {
            "appointment_id": str(a.id),
            "status": a.status,
            "start": a.start.astimezone(zone(a.timezone)),
            "end": a.end.astimezone(zone(a.timezone)),
            "provider_id": a.provider_id,
            "type_id": a.type_id,
            "confirmation_code": a.confirmation_code,
            "patient_ref": a.patient_ref,
        }
    elif isinstance(a, ProviderDay):
        now = at_time or next(e.timestamp for _, _, e in events if e.originator_version == version)
        summary |= {
            "provider_id": a.provider_id,
            "date": a.date,
            "holds": {
                hold_id: {
                    "start": h["start"],
                    "status": hold_status(h, now),
                    "patient_ref": h["patient_ref"],
                }
                for hold_id, h in a.holds.items()
            },
            "bookings": {k: dict(v) for k, v in a.bookings.items()},
        }
    return {k: plain(v) for k, v in summary.items()}


def parse_at(raw: str) -> tuple[datetime | None, int | None]:
    """``--at`` takes an RFC 3339 time with an offset, or a log position."""
    if raw.isdigit():
        return None, int(raw)
    moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("give --at a time with an offset (…Z or …-05:00) or a log position")
    return moment, None
