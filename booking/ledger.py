"""The call ledger: starting and ending calls, and recording every tool call an agent makes on one.

A tool call that changes the schedule records itself on the call in the same save as its events
(see Scheduling), so a booking and its link to the call are stored together or not at all. What
cannot ride along — a refusal, an idempotent replay, a read — is recorded here right after, in a
save of its own: failing to record one never turns an answer the patient already got into an error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from eventsourcing.application import AggregateNotFoundError

from booking.access import Scope
from booking.appointments import Appointment
from booking.calls import Call
from booking.clock import Clock
from booking.commands import Decision, Executor, IdempotencyKey, Plan
from booking.errors import BookingError, Busy, NotFound, http_status
from booking.patients import Patient
from booking.setup import exists
from booking.store import SchedulingApp

log = logging.getLogger(__name__)

T = TypeVar("T")
RECORD_ATTEMPTS = 5


def _key(idem: IdempotencyKey | None) -> str | None:
    return idem.key if idem is not None else None


class CallLedger:
    def __init__(self, store: SchedulingApp, executor: Executor, clock: Clock) -> None:
        self.store = store
        self.executor = executor
        # recording a refusal or a replay after the fact gets a few tries, not a command's 30:
        # the answer is already decided and must not wait on a contended call
        self.recorder = Executor(store, max_attempts=RECORD_ATTEMPTS, audited=False)
        self.clock = clock

    def _load(self, tenant_id: str, call_id: str) -> Call | None:
        try:
            call: Call = self.store.repository.get(Call.create_id(tenant_id, call_id))
        except AggregateNotFoundError:
            return None
        return call

    @staticmethod
    def visible(scope: Scope, call: Call) -> bool:
        """A call-bound token sees its call only; a patient-bound one only calls with its patient."""
        if scope.call_id is not None and scope.call_id != call.call_id:
            return False
        return scope.patient_ref is None or call.patient_ref == scope.patient_ref

    def find(self, scope: Scope, call_id: str) -> Call | None:
        """The call, if it exists; NotFound when it exists outside the caller's scope."""
        scope.resolve_call(call_id)
        call = self._load(scope.tenant_id, call_id)
        if call is not None and not self.visible(scope, call):
            raise NotFound(f"call {call_id!r} not found")
        return call

    def require(self, scope: Scope, call_id: str) -> Call:
        call = self.find(scope, call_id)
        if call is None:
            raise NotFound(f"call {call_id!r} not found")
        return call

    def on_call(self, scope: Scope, call_id: str, now: datetime) -> Call:
        """The call, started implicitly when this is the first thing that happens on it."""
        return self.find(scope, call_id) or Call(
            tenant_id=scope.tenant_id,
            call_id=call_id,
            patient_ref=scope.patient_ref,
            language=None,
            implicit=True,
            started_at=now,
        )

    # -- commands ------------------------------------------------------------------------------

    def start(
        self,
        scope: Scope,
        call_id: str,
        patient_ref: str | None,
        language: str | None,
        idem: IdempotencyKey | None = None,
    ) -> Decision:
        call_id = scope.resolve_call(call_id) or call_id
        patient_ref = patient_ref or scope.patient_ref
        if patient_ref is not None:
            scope.require_patient(patient_ref)

        def command() -> Plan:
            if patient_ref is not None and not exists(
                self.store, Patient, scope.tenant_id, patient_ref
            ):
                raise NotFound(f"patient {patient_ref!r} not found")
            call = self.find(scope, call_id)
            if call is None:
                # should an implicit start commit first, this save conflicts and we decide again
                call = Call(
                    tenant_id=scope.tenant_id,
                    call_id=call_id,
                    patient_ref=patient_ref,
                    language=language,
                    implicit=False,
                    started_at=self.clock.now(),
                )
            else:
                call.describe(patient_ref, language)
            return Plan(call, 201, "call")

        return self.executor.run(command, idem)

    def end(
        self,
        scope: Scope,
        call_id: str,
        duration_seconds: int,
        outcome: str | None,
        cost_cents: int | None,
        idem: IdempotencyKey | None = None,
    ) -> Decision:
        def command() -> Plan:
            call = self.require(scope, call_id)
            call.end(duration_seconds, outcome, cost_cents, self.clock.now())
            return Plan(call, 200, "call")

        return self.executor.run(command, idem)

    # -- recording tool calls ------------------------------------------------------------------

    def record(
        self,
        scope: Scope,
        call_id: str,
        tool: str,
        idem: IdempotencyKey | None,
        status: int,
        outcome: str,
        replayed: bool = False,
        appointment_id: str | None = None,
        patient_ref: str | None = None,
        start_call: bool = True,
    ) -> None:
        """Record a tool call whose effect, if any, is already stored (or was refused).

        A read records itself only on a call that exists and has not ended (``start_call``
        false): looking something up starts nothing.
        """

        def command() -> Plan:
            existing = self.find(scope, call_id)
            if not start_call and (existing is None or existing.ended_at is not None):
                raise Skip()
            call = existing or self.on_call(scope, call_id, self.clock.now())
            call.tool_called(
                tool=tool,
                token_id=scope.token_id,
                idempotency_key=_key(idem),
                status=status,
                outcome=outcome,
                replayed=replayed,
                appointment_id=appointment_id,
                patient_ref=patient_ref,
                hold_id=None,
                day_id=None,
            )
            return Plan(call, 200, "call")

        try:
            self.recorder.run(command)
        except Skip:
            pass
        except BookingError as exc:
            # The answer stands; the ledger says so in the log (ids only, never PHI).
            log.warning("tool call %s on a call not recorded: %s", tool, exc.problem)

    def track(
        self,
        scope: Scope,
        call_id: str | None,
        tool: str,
        idem: IdempotencyKey | None,
        run: Callable[[], Decision],
    ) -> Decision:
        """Run a command for a call; record on the call what its own save could not."""
        if call_id is None:
            return run()
        try:
            decision = run()
        except (Busy, NotFound) as exc:
            # busy: nothing may be written; not found: possibly the call itself
            log.info("tool call %s on a call refused: %s", tool, exc.problem)
            raise
        except BookingError as exc:
            self.record(scope, call_id, tool, idem, http_status(exc), exc.problem)
            raise
        if decision.replayed:
            subject = decision.subject
            self.record(
                scope,
                call_id,
                tool,
                idem,
                decision.status_code,
                "replayed",
                replayed=True,
                appointment_id=_appointment_of(subject),
                patient_ref=getattr(subject, "patient_ref", None),
            )
        return decision

    def track_read(
        self, scope: Scope, tool: str, run: Callable[[], T], outcome: Callable[[T], str]
    ) -> T:
        """Run a read; a call-bound token's reads are tool calls on its call too."""
        if scope.call_id is None:
            return run()
        try:
            result = run()
        except BookingError as exc:
            self.record(
                scope, scope.call_id, tool, None, http_status(exc), exc.problem, start_call=False
            )
            raise
        self.record(scope, scope.call_id, tool, None, 200, outcome(result), start_call=False)
        return result


def _appointment_of(subject: Any) -> str | None:
    return str(subject.id) if isinstance(subject, Appointment) else None


class Skip(Exception):
    """Nothing to record."""
