"""The utterance gate: before an agent tells a patient an appointment is booked, the event stream
must hold it. Every utterance is stored on its call with the verdict, allowed or not.

A claim (booked, confirmed, scheduled, set, rescheduled — see booking/claims.py) is allowed only
when the call holds a booking or reschedule whose appointment is still booked, read from the event
store at this moment; or when every confirmation code in the text verifies in the caller's scope.
A code that does not verify refuses the utterance even if the call has a booking: reading a wrong
code to a patient is the same failure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from booking.access import Scope
from booking.appointments import ACTIVE, Appointment
from booking.calls import Call
from booking.claims import Claim, find_claim, find_codes
from booking.commands import Decision, IdempotencyKey, Plan
from booking.errors import ConfirmationNotFound
from booking.ledger import CallLedger
from booking.scheduling import Scheduling

NO_CLAIM = "no-claim"
BACKED_BY_BOOKING = "backed-by-booking"
BACKED_BY_CODE = "backed-by-code"
NO_ACTIVE_BOOKING = "no-active-booking-on-call"
CODE_NOT_VERIFIED = "code-not-verified"


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str
    claim: Claim | None
    codes: list[str]
    backing: list[dict[str, Any]] = field(default_factory=list)


class UtteranceGate:
    def __init__(self, ledger: CallLedger, scheduling: Scheduling) -> None:
        self.ledger = ledger
        self.scheduling = scheduling
        self.store = ledger.store

    def judge(self, scope: Scope, call: Call, text: str) -> Verdict:
        claim, codes = find_claim(text), find_codes(text)
        if codes:
            # a code read to a patient says "you have this appointment": it must verify
            checked = [self._code(scope, code) for code in codes]
            verified = all(c["status"] == ACTIVE for c in checked)
            return Verdict(
                verified, BACKED_BY_CODE if verified else CODE_NOT_VERIFIED, claim, codes, checked
            )
        if claim is None:
            return Verdict(True, NO_CLAIM, None, [])
        backing = [self._appointment(UUID(a)) for a in call.appointments_of(scope.patient_ref)]
        active = [b for b in backing if b["status"] == ACTIVE]
        if active:
            return Verdict(True, BACKED_BY_BOOKING, claim, [], active)
        return Verdict(False, NO_ACTIVE_BOOKING, claim, [], backing)

    def _appointment(self, appointment_id: UUID) -> dict[str, Any]:
        try:
            a: Appointment = self.store.repository.get(appointment_id)
        except AggregateNotFoundError:  # linked in the same save: cannot happen, refuse if it does
            return {"appointment_id": str(appointment_id), "status": "missing"}
        return self._evidence(a)

    def _evidence(self, a: Appointment) -> dict[str, Any]:
        return {
            "appointment_id": str(a.id),
            "status": a.status,
            "version": a.version,
            "position": self.store.position_of(a.id, a.version),
        }

    def _code(self, scope: Scope, code: str) -> dict[str, Any]:
        try:
            appointment, _ = self.scheduling.verify(scope, code)
        except ConfirmationNotFound:
            return {"code": code, "status": "unknown"}
        return {"code": code, **self._evidence(appointment)}

    def utter(
        self, scope: Scope, call_id: str, text: str, idem: IdempotencyKey | None = None
    ) -> Decision:
        def command() -> Plan:
            call = self.ledger.on_call(scope, call_id, self.ledger.clock.now())
            call.require_active("speak on it")
            verdict = self.judge(scope, call, text)
            call.uttered(
                token_id=scope.token_id,
                text=text,
                allowed=verdict.allowed,
                reason=verdict.reason,
                claim=verdict.claim.kind if verdict.claim else None,
                phrase=verdict.claim.phrase if verdict.claim else None,
                codes=verdict.codes,
                backing=verdict.backing,
            )
            # the verdict stands only if no appointment it read changes before it is stored
            unchanged = {
                UUID(b["appointment_id"]): b["version"] for b in verdict.backing if "version" in b
            }
            return Plan(
                call, 200, "utterance", ref=str(len(call.utterances) - 1), unchanged=unchanged
            )

        return self.ledger.executor.run(command, idem)
