"""Staff setup routes: providers, appointment types, weekly hours, patients."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, post, put
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody

from api import render
from api import schemas as s
from api.admin import check_timezone
from api.auditing import note
from api.auth import provide_scope, role_guard
from api.idempotency import key_for, respond
from api.openapi_docs import problems
from api.services import Services
from booking.access import Scope
from booking.errors import FieldError, NotFound, ValidationFailed
from booking.ids import is_client_id


def check_hours(hours: list[s.HoursIn]) -> list[dict[str, Any]]:
    errors = []
    for i, h in enumerate(hours):
        if h.end <= h.start:
            errors.append(FieldError(f"hours[{i}].end", "must be after start"))
    for i, h in enumerate(hours):
        for j, other in enumerate(hours[:i]):
            if h.weekday == other.weekday and h.start < other.end and other.start < h.end:
                errors.append(FieldError(f"hours[{i}]", f"overlaps hours[{j}]"))
    if errors:
        raise ValidationFailed(errors)
    return [
        {"weekday": h.weekday, "start": h.start, "end": h.end}
        for h in sorted(hours, key=lambda h: (h.weekday, h.start))
    ]


class StaffSetupController(Controller):
    path = "/v1/staff"
    guards = [role_guard("staff")]
    dependencies = {"caller": Provide(provide_scope, sync_to_thread=False)}
    tags = ["staff"]

    @post("/providers", status_code=201, sync_to_thread=True, responses=problems(409, 503))
    def create_provider(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[s.ProviderIn],
        caller: NamedDependency[Scope],
        services: NamedDependency[Services],
    ) -> Response[s.ProviderOut]:
        """Add a provider; its time zone defaults to the clinic's."""
        if data.timezone is not None:
            check_timezone(data.timezone)
        decision = services.setup.create_provider(
            caller,
            data.provider_id.lower(),
            data.name,
            data.timezone,
            key_for(request, caller.tenant_id, caller.token_id, data),
        )
        return respond(request, decision, render.provider(decision))

    @post("/appointment-types", status_code=201, sync_to_thread=True, responses=problems(409, 503))
    def create_appointment_type(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[s.AppointmentTypeIn],
        caller: NamedDependency[Scope],
        services: NamedDependency[Services],
    ) -> Response[s.AppointmentTypeOut]:
        """Define an appointment type and its duration in minutes."""
        decision = services.setup.create_appointment_type(
            caller,
            data.type_id.lower(),
            data.name,
            data.duration_minutes,
            key_for(request, caller.tenant_id, caller.token_id, data),
        )
        return respond(request, decision, render.appointment_type(decision))

    @put(
        "/providers/{provider_id:str}/weekly-hours",
        status_code=200,
        sync_to_thread=True,
        responses=problems(404, 503),
    )
    def set_weekly_hours(
        self,
        request: Request[Any, Any, Any],
        provider_id: FromPath[str],
        data: JSONBody[s.WeeklyHoursIn],
        caller: NamedDependency[Scope],
        services: NamedDependency[Services],
    ) -> Response[s.WeeklyHoursOut]:
        """Replace a provider's weekly hours (local times in the provider's zone)."""
        if not is_client_id(provider_id):
            raise NotFound(f"provider {provider_id!r} not found")
        hours = check_hours(data.hours)
        decision = services.setup.set_weekly_hours(
            caller,
            provider_id.lower(),
            hours,
            key_for(request, caller.tenant_id, caller.token_id, data),
        )
        return respond(request, decision, render.weekly_hours(decision))

    @post("/patients", status_code=201, sync_to_thread=True, responses=problems(409, 503))
    def register_patient(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[s.PatientIn],
        caller: NamedDependency[Scope],
        services: NamedDependency[Services],
    ) -> Response[s.PatientOut]:
        """Register a patient. Name, phone and birth date are encrypted at rest."""
        if data.birth_date is not None and data.birth_date > services.clock.now().date():
            raise ValidationFailed.field("birth_date", "must not be in the future")
        note(request, patient_ref=data.patient_ref.lower())
        decision = services.setup.register_patient(
            caller,
            data.patient_ref.lower(),
            data.name,
            data.phone,
            data.birth_date.isoformat() if data.birth_date else None,
            data.language,
            key_for(request, caller.tenant_id, caller.token_id, data),
        )
        return respond(request, decision, render.patient(decision))
