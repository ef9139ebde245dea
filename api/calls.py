"""Call routes for the agent: start a call, check each utterance against the event stream before
it is spoken, end the call. Every utterance is stored with its verdict, allowed or not."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody

from api import render
from api import schemas as s
from api.auditing import note
from api.auth import provide_scope, role_guard
from api.idempotency import key_for, respond
from api.openapi_docs import problems
from api.services import Services
from booking.access import Scope
from booking.errors import NotFound
from booking.ids import is_client_id


def call_ref(raw: str) -> str:
    """A call id from the path; one that cannot exist is simply not found."""
    if not is_client_id(raw):
        raise NotFound(f"call {raw!r} not found")
    return raw.lower()


def note_patient_of(
    request: Request[Any, Any, Any], services: Services, caller: Scope, call_id: str
) -> None:
    """The call's patient goes into the request's audit entry, whatever the answer."""
    call = services.calls.find(caller, call_id)  # NotFound outside the caller's scope
    if call is not None and call.patient_ref:
        note(request, patient_ref=call.patient_ref)


class CallsController(Controller):
    path = "/v1/agent/calls"
    guards = [role_guard("agent")]
    dependencies = {"caller": Provide(provide_scope, sync_to_thread=False)}
    tags = ["agent"]

    @post("/", status_code=201, sync_to_thread=True, responses=problems(404, 409, 503))
    def start(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[s.CallIn],
        caller: NamedDependency[Scope],
        services: NamedDependency[Services],
    ) -> Response[s.CallOut]:
        """Start recording a call (patient and language when known)."""
        if data.patient_ref:
            note(request, patient_ref=data.patient_ref.lower())
        decision = services.calls.start(
            caller,
            data.call_id.lower(),
            data.patient_ref.lower() if data.patient_ref else None,
            data.language.lower() if data.language else None,
            key_for(request, caller.tenant_id, caller.token_id, data),
        )
        return respond(request, decision, render.call(decision, caller.patient_ref))

    @post(
        "/{call_id:str}/utterances",
        status_code=200,
        sync_to_thread=True,
        responses=problems(404, 409, 503),
    )
    def utterance(
        self,
        request: Request[Any, Any, Any],
        call_id: FromPath[str],
        data: JSONBody[s.UtteranceIn],
        caller: NamedDependency[Scope],
        services: NamedDependency[Services],
    ) -> Response[s.UtteranceOut]:
        """Check what the agent is about to say: a claim that an appointment is booked, confirmed,
        scheduled or rescheduled is allowed only if the event stream holds it for this call (or a
        confirmation code in the text verifies). Say nothing the answer does not allow."""
        ref = call_ref(call_id)
        note_patient_of(request, services, caller, ref)
        decision = services.gate.utter(
            caller, ref, data.text, key_for(request, caller.tenant_id, caller.token_id, data)
        )
        return respond(request, decision, render.utterance(decision))

    @post(
        "/{call_id:str}/end",
        status_code=200,
        sync_to_thread=True,
        responses=problems(404, 409, 503),
    )
    def end(
        self,
        request: Request[Any, Any, Any],
        call_id: FromPath[str],
        data: JSONBody[s.CallEndIn],
        caller: NamedDependency[Scope],
        services: NamedDependency[Services],
    ) -> Response[s.CallOut]:
        """The call is over: its duration, outcome and cost (priced per minute when not given)."""
        ref = call_ref(call_id)
        note_patient_of(request, services, caller, ref)
        decision = services.calls.end(
            caller,
            ref,
            data.duration_seconds,
            data.outcome,
            data.cost_cents,
            key_for(request, caller.tenant_id, caller.token_id, data),
        )
        return respond(request, decision, render.call(decision, caller.patient_ref))
