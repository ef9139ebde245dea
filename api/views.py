"""Read-model routes: the patient portal and the staff views (board, timeline), plus the staff's
marks on appointments (arrived, no-show, completed), which are commands on the event store."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any, Literal

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from api import render
from api import schemas as s
from api.agent import appointment_uuid, cancel_appointment
from api.auditing import note
from api.auth import provide_scope, role_guard
from api.idempotency import key_for, respond
from api.openapi_docs import problems
from api.services import Services
from booking.access import Scope
from booking.errors import NotFound, ValidationFailed
from booking.ids import is_client_id

MinPosition = Annotated[
    int | None,
    QueryParameter(ge=0, description="wait (up to 2 s) until the view has applied this position"),
]
Status = Literal["booked", "cancelled", "arrived", "completed", "no-show"]
MAX_BOARD_DAYS = 92
MAX_ECONOMICS_DAYS = 366


class PortalController(Controller):
    path = "/v1/portal"
    guards = [role_guard("patient")]
    dependencies = {"caller": Provide(provide_scope, sync_to_thread=False)}
    tags = ["portal"]

    @get("/appointments", sync_to_thread=True, responses=problems(503))
    def appointments(
        self,
        caller: NamedDependency[Scope],
        services: NamedDependency[Services],
        min_position: MinPosition = None,
    ) -> s.ViewAppointmentsOut:
        """The patient's own appointments, from the portal read model."""
        rows, position = services.views.portal(caller, min_position)
        return s.ViewAppointmentsOut([render.view_appointment(r) for r in rows], position)

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
        data: JSONBody[s.CancelIn | None] = None,
    ) -> Response[s.CancelOut]:
        """Cancel one of the patient's own appointments."""
        return cancel_appointment(request, appointment_id, caller, services, data)


class StaffViewsController(Controller):
    path = "/v1/staff"
    guards = [role_guard("staff")]
    dependencies = {"caller": Provide(provide_scope, sync_to_thread=False)}
    tags = ["staff"]

    @get("/appointments", sync_to_thread=True, responses=problems(404, 503))
    def board(
        self,
        caller: NamedDependency[Scope],
        services: NamedDependency[Services],
        date_from: FromQuery[date],
        date_to: FromQuery[date],
        provider_id: FromQuery[str | None] = None,
        status: FromQuery[Status | None] = None,
        min_position: MinPosition = None,
    ) -> s.ViewAppointmentsOut:
        """Appointments by date (the clinic's time zone, both ends included), provider, status."""
        if date_to < date_from:
            raise ValidationFailed.field("date_to", "must not be before date_from")
        if date_to - date_from > timedelta(days=MAX_BOARD_DAYS):
            raise ValidationFailed.field(
                "date_to", f"the range may span at most {MAX_BOARD_DAYS} days"
            )
        if provider_id is not None and not is_client_id(provider_id):
            raise ValidationFailed.field("provider_id", "not a provider id")
        rows, position = services.views.board(
            caller,
            date_from,
            date_to,
            provider_id.lower() if provider_id else None,
            status,
            min_position,
        )
        return s.ViewAppointmentsOut([render.view_appointment(r) for r in rows], position)

    @get("/call-economics", sync_to_thread=True, responses=problems(404, 503))
    def call_economics(
        self,
        caller: NamedDependency[Scope],
        services: NamedDependency[Services],
        date_from: FromQuery[date],
        date_to: FromQuery[date],
        min_position: MinPosition = None,
    ) -> s.CallEconomicsOut:
        """Calls, minutes, cost and bookings of the calls started in a date range (the clinic's
        time zone, both ends included), by language and by day. Calls that report no cost are
        priced at BOOKING_VOICE_CENTS_PER_MINUTE."""
        if date_to < date_from:
            raise ValidationFailed.field("date_to", "must not be before date_from")
        if date_to - date_from >= timedelta(days=MAX_ECONOMICS_DAYS):
            raise ValidationFailed.field(
                "date_to", f"the range may span at most {MAX_ECONOMICS_DAYS} days"
            )
        rate = services.settings.voice_cents_per_minute
        found, position = services.views.economics(caller, date_from, date_to, rate, min_position)
        return render.call_economics(date_from, date_to, found, rate, position)

    @get("/patients/{patient_ref:str}/timeline", sync_to_thread=True, responses=problems(404, 503))
    def timeline(
        self,
        request: Request[Any, Any, Any],
        patient_ref: FromPath[str],
        caller: NamedDependency[Scope],
        services: NamedDependency[Services],
        min_position: MinPosition = None,
    ) -> s.TimelineOut:
        """Every event about a patient, in order."""
        if not is_client_id(patient_ref):
            raise NotFound(f"patient {patient_ref!r} not found")
        note(request, patient_ref=patient_ref.lower())
        rows, position = services.views.timeline(caller, patient_ref.lower(), min_position)
        return s.TimelineOut(
            patient_ref.lower(), [render.timeline_entry(r) for r in rows], position
        )

    @post(
        "/appointments/{appointment_id:str}/{mark:str}",
        status_code=200,
        sync_to_thread=True,
        responses=problems(404, 409, 503),
    )
    def mark(
        self,
        request: Request[Any, Any, Any],
        appointment_id: FromPath[str],
        mark: FromPath[str],
        caller: NamedDependency[Scope],
        services: NamedDependency[Services],
    ) -> Response[s.MarkOut]:
        """Mark an appointment arrived, no-show or completed."""
        if mark not in ("arrived", "no-show", "completed"):
            raise NotFound("no such route")
        decision = services.scheduling.mark(
            caller,
            appointment_uuid(appointment_id),
            mark,
            key_for(request, caller.tenant_id, caller.token_id, None),
        )
        return respond(request, decision, render.cancellation(decision))
