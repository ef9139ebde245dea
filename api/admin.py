"""Platform admin routes: tenants and tokens. Guarded by BOOKING_ADMIN_TOKEN."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, Response, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody

from api import render
from api import schemas as s
from api.auditing import note
from api.auth import admin_guard
from api.idempotency import key_for, respond
from api.openapi_docs import problems
from api.services import Services
from booking.calendar import zone
from booking.errors import NotFound, ValidationFailed
from booking.ids import is_client_id
from booking.patients import Patient
from booking.setup import exists
from booking.tokens import IssuedToken


def check_timezone(name: str, field: str = "timezone") -> None:
    try:
        zone(name)
    except ValueError:
        raise ValidationFailed.field(field, f"{name!r} is not an IANA time zone") from None


class AdminController(Controller):
    path = "/v1/admin"
    guards = [admin_guard]
    tags = ["admin"]

    @post("/tenants", status_code=201, sync_to_thread=True, responses=problems(409, 503))
    def create_tenant(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[s.TenantIn],
        services: NamedDependency[Services],
    ) -> Response[s.TenantOut]:
        """Register a clinic (tenant) with its IANA time zone."""
        note(request, tenant_id=data.tenant_id.lower())
        check_timezone(data.timezone)
        idem = key_for(request, data.tenant_id.lower(), "admin", data)
        decision = services.setup.create_tenant(
            data.tenant_id.lower(), data.name, data.timezone, idem
        )
        return respond(request, decision, render.tenant(decision))

    @post(
        "/tenants/{tenant_id:str}/tokens",
        status_code=201,
        sync_to_thread=True,
        responses={
            **problems(404, 409),
            201: ResponseSpec(
                data_container=s.TokenOut,
                description="The token; its secret is shown only in this answer",
            ),
        },
    )
    def issue_token(
        self,
        request: Request[Any, Any, Any],
        tenant_id: FromPath[str],
        data: JSONBody[s.TokenIn],
        services: NamedDependency[Services],
    ) -> Response[bytes]:
        """Issue a bearer token for one tenant and role; the clear token is shown only here."""
        tenant_id = tenant_id.lower()
        if not is_client_id(tenant_id):
            raise NotFound(f"tenant {tenant_id!r} not found")
        if data.role == "patient" and data.patient_ref is None:
            raise ValidationFailed.field("patient_ref", "a patient token must name its patient")
        if data.role in ("staff", "auditor") and data.patient_ref is not None:
            raise ValidationFailed.field(
                "patient_ref", f"a {data.role} token is not bound to a patient"
            )
        if data.role != "agent" and data.call_id is not None:
            raise ValidationFailed.field("call_id", "only agent tokens are bound to a call")
        services.setup.tenant(tenant_id)
        # filed under the tenant only once it is known to exist (no chains for made-up ids)
        note(
            request,
            tenant_id=tenant_id,
            patient_ref=data.patient_ref.lower() if data.patient_ref else None,
        )
        patient_ref = data.patient_ref.lower() if data.patient_ref else None
        if patient_ref and not exists(services.store, Patient, tenant_id, patient_ref):
            raise NotFound(f"patient {patient_ref!r} not found")
        idem = key_for(request, tenant_id, "admin", data)

        def render(issued: IssuedToken) -> bytes:
            return msgspec.json.encode(
                s.TokenOut(
                    token=issued.token,
                    token_id=issued.token_id,
                    role=issued.role,
                    tenant_id=issued.tenant_id,
                    patient_ref=issued.patient_ref,
                    call_id=issued.call_id,
                    expires_at=issued.expires_at,
                )
            )

        body, replayed = services.tokens.issue_answer(
            tenant_id,
            data.role,
            patient_ref,
            data.call_id.lower() if data.call_id else None,
            data.ttl_seconds,
            idem,
            render,
        )
        return Response(
            content=body,
            status_code=201,
            media_type="application/json",
            headers={"Idempotent-Replayed": "true"} if replayed else {},
        )
