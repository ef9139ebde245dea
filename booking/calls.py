"""Call: what happened on one phone call, as events beside the bookings.

A call records every tool call the agent made on it (by Idempotency-Key and outcome) and every
utterance the agent was about to say together with the gate's verdict: the record of what the AI
told a patient. Bookings and reschedules made on a call are linked to it in the same save that
stores them, so "the stream holds a booking for this call" is a read of this aggregate.

A call comes into being when it is started (POST /v1/agent/calls) or, when an agent acts on a call
nobody started, with the first thing that happens on it (``implicit``): nothing on a call goes
unrecorded because the platform skipped a step.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from booking.copying import PlainCopy
from booking.errors import AlreadyExists, InvalidState
from booking.ids import aggregate_id
from booking.tenancy import TenantScoped
from booking.topics import pinned

# tool calls whose success links an appointment to the call
LINKING = ("book", "reschedule")


@pinned("Call")
class Call(PlainCopy, TenantScoped, Aggregate):
    class Started(Aggregate.Created):
        tenant_id: str
        call_id: str
        patient_ref: str | None
        language: str | None
        implicit: bool
        started_at: datetime  # the service's clock: what call economics counts by

    class Described(Aggregate.Event):
        """An implicitly started call is started explicitly later: patient and language."""

        tenant_id: str
        patient_ref: str | None
        language: str | None

    class ToolCalled(Aggregate.Event):
        tenant_id: str
        tool: str
        token_id: str
        idempotency_key: str | None
        status: int
        outcome: str  # what it did (booked, held, ...) or the problem name (slot-unavailable, ...)
        replayed: bool
        appointment_id: str | None
        patient_ref: str | None  # whose appointment or hold it was
        hold_id: str | None
        day_id: str | None

    class Uttered(Aggregate.Event):
        tenant_id: str
        token_id: str
        text: str
        allowed: bool
        reason: str
        claim: str | None  # the claim's kind, None when the text claims nothing
        phrase: str | None
        codes: list[str]
        # what backed an allowed claim, or what was checked for a refused one:
        # [{appointment_id, status, version, position}]
        backing: list[dict[str, Any]]

    class Ended(Aggregate.Event):
        tenant_id: str
        duration_seconds: int
        outcome: str | None
        cost_cents: int | None
        ended_at: datetime

    @staticmethod
    def create_id(tenant_id: str, call_id: str) -> UUID:
        return aggregate_id(tenant_id, "call", call_id)

    @event(Started)
    def __init__(
        self,
        tenant_id: str,
        call_id: str,
        patient_ref: str | None,
        language: str | None,
        implicit: bool,
        started_at: datetime,
    ) -> None:
        self.tenant_id = tenant_id
        self.started_at = started_at
        self.call_id = call_id
        self.patient_ref = patient_ref
        self.language = language
        self.implicit = implicit
        # appointments booked or rescheduled on this call -> their patient
        self.appointments: dict[str, str | None] = {}
        self.tool_calls = 0
        self.utterances: list[dict[str, Any]] = []
        self.ended_at: datetime | None = None
        self.duration_seconds: int | None = None
        self.outcome: str | None = None
        self.cost_cents: int | None = None

    @property
    def status(self) -> str:
        return "ended" if self.ended_at is not None else "active"

    def require_active(self, what: str) -> None:
        if self.ended_at is not None:
            raise InvalidState(f"call {self.call_id!r} has ended; cannot {what}")

    def describe(self, patient_ref: str | None, language: str | None) -> None:
        """Start an implicitly started call explicitly; its patient, once known, never changes."""
        if not self.implicit:
            raise AlreadyExists(f"call {self.call_id!r} was already started")
        if patient_ref and self.patient_ref and patient_ref != self.patient_ref:
            raise InvalidState(f"call {self.call_id!r} is with another patient")
        self._describe(patient_ref=patient_ref, language=language)

    @event(Described)
    def _describe(self, patient_ref: str | None, language: str | None) -> None:
        self.implicit = False
        self.patient_ref = self.patient_ref or patient_ref
        self.language = language or self.language

    def appointments_of(self, patient_ref: str | None) -> list[str]:
        """Appointments linked to the call; only one patient's when ``patient_ref`` is given."""
        return [a for a, p in self.appointments.items() if patient_ref in (None, p)]

    @event(ToolCalled)
    def tool_called(
        self,
        tool: str,
        token_id: str,
        idempotency_key: str | None,
        status: int,
        outcome: str,
        replayed: bool,
        appointment_id: str | None,
        patient_ref: str | None,
        hold_id: str | None,
        day_id: str | None,
    ) -> None:
        self.tool_calls += 1
        if tool in LINKING and status < 400 and appointment_id is not None:
            self.appointments.setdefault(appointment_id, patient_ref)

    @event(Uttered)
    def uttered(
        self,
        token_id: str,
        text: str,
        allowed: bool,
        reason: str,
        claim: str | None,
        phrase: str | None,
        codes: list[str],
        backing: list[dict[str, Any]],
    ) -> None:
        self.utterances.append(
            {"allowed": allowed, "reason": reason, "claim": claim, "codes": list(codes)}
        )

    def end(
        self, duration_seconds: int, outcome: str | None, cost_cents: int | None, at: datetime
    ) -> None:
        self.require_active("end it again")
        self._end(
            duration_seconds=duration_seconds, outcome=outcome, cost_cents=cost_cents, ended_at=at
        )

    @event(Ended)
    def _end(
        self, duration_seconds: int, outcome: str | None, cost_cents: int | None, ended_at: datetime
    ) -> None:
        self.ended_at = ended_at
        self.duration_seconds = duration_seconds
        self.outcome = outcome
        self.cost_cents = cost_cents
