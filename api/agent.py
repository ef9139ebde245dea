"""Agent tool routes. Every hold, booking, reschedule and cancel is decided against the event
store; confirmations are answered from the event stream only."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal
from uuid import UUID

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, JSONBody

from api import render
from api import schemas as s
from api.auditing import note
from api.auth import provide_scope, role_guard
from api.idempotency import key_for, respond
from api.openapi_docs import problems
from api.services import Services
from api.tools import tool_definitions
from booking.access import Scope
from booking.errors import FieldError, NotFound, ValidationFailed
from booking.ids import is_client_id

MAX_WINDOW = timedelta(days=31)
HORIZON = timedelta(days=2 * 366)


def appointment_uuid(raw: str) -> UUID:
    try:
        return UUID(raw)
    except ValueError:
        raise NotFound(f"appointment {raw!r} not found") from None


def one_of(hold_id: UUID | None, slot_id: str | None) -> None:
    if (hold_id is None) == (slot_id is None):
        raise ValidationFailed(
            [
                FieldError("hold_id", "send exactly one of hold_id and slot_id"),
                FieldError("slot_id", "send exactly one of hold_id and slot_id"),
            ]
        )


def cancel_appointment(
    request: Request[Any, Any, Any],
    appointment_id: str,
    caller: Scope,
    services: Services,
    data: s.CancelIn | None,
) -> Response[s.CancelOut]:
    """The cancel both the agent and the portal route run; the caller's scope tells them apart."""
    body = data or s.CancelIn()
    call_id = getattr(body, "call_id", None)
    decision = services.scheduling.cancel(
        caller,
        appointment_uuid(appointment_id),
        body.reason,
        key_for(request, caller.tenant_id, caller.token_id, body),
        call_id.lower() if call_id else None,
    )
    return respond(request, decision, render.cancellation(decision))


class AgentController(Controller):
    path = "/v1/agent"
    guards = [role_guard("agent")]
    dependencies = {"caller": Provide(provide_scope, sync_to_thread=False)}
    tags = ["agent"]

    @get("/tools", sync_to_thread=False, responses=problems())
    def tools(
        self, format: FromQuery[Literal["openai", "anthropic"]] = "openai"
    ) -> list[dict[str, Any]]:
        """Tool definitions for every agent route, for an LLM's tool-calling API."""
        return tool_definitions(format)

    @post("/availability", status_code=200, sync_to_thread=True, responses=problems(404))
    def availability(
        self,
        data: JSONBody[s.AvailabilityIn],
        caller: NamedDependency[Scope],
        services: NamedDependency[Services],
    ) -> s.AvailabilityOut:
        """Open slots of one type, earliest first."""
        errors = []
        if data.start_to < data.start_from:
            errors.append(FieldError("start_to", "must not be before start_from"))
        elif data.start_to - data.start_from > MAX_WINDOW:
            errors.append(FieldError("start_to", "the window may span at most 31 days"))
        if data.start_to > services.clock.now() + HORIZON:
            errors.append(FieldError("start_to", "must be within 2 years from now"))
        if errors:
            raise ValidationFailed(errors)
        slots = services.scheduling.availability(
            caller,
            data.type_id.lower(),
            data.provider_id.lower() if data.provider_id else None,
            data.start_from,
            data.start_to,
            data.limit,
        )
        return s.AvailabilityOut(
            slots=[
                render.slot(sl, tz) for sl, tz in services.scheduling.with_timezones(caller, slots)
            ]
        )

    @post("/holds", status_code=201, sync_to_thread=True, responses=problems(404, 409, 503))
    def hold(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[s.HoldIn],
        caller: NamedDependency[Scope],
        services: NamedDependency[Services],
    ) -> Response[s.HoldOut]:
        """Hold a slot for a patient; it expires by itself."""
        note(request, patient_ref=data.patient_ref.lower())
        decision = services.scheduling.hold(
            caller,
            data.slot_id,
            data.patient_ref.lower(),
            data.call_id.lower() if data.call_id else None,
            key_for(request, caller.tenant_id, caller.token_id, data),
        )
        return respond(request, decision, render.hold(decision))

    @post("/bookings", status_code=201, sync_to_thread=True, responses=problems(404, 409, 503))
    def book(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[s.BookingIn],
        caller: NamedDependency[Scope],
        services: NamedDependency[Services],
    ) -> Response[s.AppointmentOut]:
        """Book from a hold or an open slot; the answer carries the stored event as evidence."""
        note(request, patient_ref=data.patient_ref.lower())
        one_of(data.hold_id, data.slot_id)
        decision = services.scheduling.book(
            caller,
            data.patient_ref.lower(),
            str(data.hold_id) if data.hold_id else None,
            data.slot_id,
            data.call_id.lower() if data.call_id else None,
            key_for(request, caller.tenant_id, caller.token_id, data),
        )
        return respond(request, decision, render.appointment(decision))

    @get("/confirmations/{confirmation_code:str}", sync_to_thread=True, responses=problems(404))
    def confirmation(
        self,
        request: Request[Any, Any, Any],
        confirmation_code: FromPath[str],
        caller: NamedDependency[Scope],
        services: NamedDependency[Services],
    ) -> s.ConfirmationOut:
        """Whether a confirmation code names a booked appointment, read from the event stream."""
        appointment, position = services.scheduling.confirmation(caller, confirmation_code)
        note(request, patient_ref=appointment.patient_ref)
        if appointment.status != "booked":
            return s.ConfirmationOut(
                confirmed=False, appointment_id=appointment.id, status=appointment.status
            )
        return s.ConfirmationOut(
            confirmed=True,
            appointment_id=appointment.id,
            status=appointment.status,
            start=render.local(appointment.start, appointment.timezone),
            end=render.local(appointment.end, appointment.timezone),
            provider_id=appointment.provider_id,
            type_id=appointment.type_id,
            confirmation_code=appointment.confirmation_code,
            evidence=render.evidence_of(appointment, position),
        )

    @post(
        "/appointments/{appointment_id:str}/reschedule",
        status_code=200,
        sync_to_thread=True,
        responses=problems(404, 409, 503),
    )
    def reschedule(
        self,
        request: Request[Any, Any, Any],
        appointment_id: FromPath[str],
        data: JSONBody[s.RescheduleIn],
        caller: NamedDependency[Scope],
        services: NamedDependency[Services],
    ) -> Response[s.AppointmentOut]:
        """Move an appointment to another slot, keeping its id and confirmation code."""
        one_of(data.hold_id, data.slot_id)
        decision = services.scheduling.reschedule(
            caller,
            appointment_uuid(appointment_id),
            str(data.hold_id) if data.hold_id else None,
            data.slot_id,
            key_for(request, caller.tenant_id, caller.token_id, data),
            data.call_id.lower() if data.call_id else None,
        )
        return respond(request, decision, render.appointment(decision))

    @post(
        "/appointments/{appointment_id:str}/cancel",
        status_code=200,
        sync_to_thread=True,
        responses=problems(404, 409, 503),
    )
    def cancel(
        self,
        request: Request[Any, Any, Any],
        appointment_id: FromPath[str],
        caller: NamedDependency[Scope],
        services: NamedDependency[Services],
        data: JSONBody[s.AgentCancelIn | None] = None,
    ) -> Response[s.CancelOut]:
        """Cancel an appointment and free its slot."""
        return cancel_appointment(request, appointment_id, caller, services, data)

    @get("/patients/{patient_ref:str}/appointments", sync_to_thread=True, responses=problems(404))
    def patient_appointments(
        self,
        request: Request[Any, Any, Any],
        patient_ref: FromPath[str],
        caller: NamedDependency[Scope],
        services: NamedDependency[Services],
    ) -> s.PatientAppointmentsOut:
        """A patient's appointments, from the event store."""
        if not is_client_id(patient_ref):
            raise NotFound(f"patient {patient_ref!r} not found")
        note(request, patient_ref=patient_ref.lower())
        appointments = services.scheduling.patient_appointments(caller, patient_ref.lower())
        return s.PatientAppointmentsOut(
            appointments=[
                s.PatientAppointment(
                    appointment_id=a.id,
                    status=a.status,
                    start=render.local(a.start, a.timezone),
                    end=render.local(a.end, a.timezone),
                    provider_id=a.provider_id,
                    type_id=a.type_id,
                    confirmation_code=a.confirmation_code,
                )
                for a in appointments
            ]
        )
