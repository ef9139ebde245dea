"""Who is asking: the tenant, role and bindings a token carries, and the checks that follow."""

from __future__ import annotations

from dataclasses import dataclass

from booking.errors import NotFound


@dataclass(frozen=True)
class Scope:
    tenant_id: str
    role: str  # staff | agent | patient | auditor
    token_id: str
    patient_ref: str | None = None  # bound: acts for this patient only
    call_id: str | None = None  # bound: every request belongs to this call

    def require_patient(self, patient_ref: str) -> None:
        """Another patient than the bound one does not exist for this caller (404, never 403)."""
        if self.patient_ref is not None and self.patient_ref != patient_ref:
            raise NotFound(f"patient {patient_ref!r} not found")

    def resolve_call(self, call_id: str | None) -> str | None:
        if self.call_id is None:
            return call_id
        if call_id is not None and call_id != self.call_id:
            raise NotFound(f"call {call_id!r} not found")
        return self.call_id
