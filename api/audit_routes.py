"""The audit trail for a clinic's auditors: who touched which patient's data, and the answer."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency, Provide
from litestar.params import QueryParameter

from api.auth import provide_scope, role_guard
from api.openapi_docs import problems
from api.services import Services
from booking.access import Scope
from booking.errors import ValidationFailed
from booking.ids import is_client_id

LIMIT = 5000


class AuditEntry(msgspec.Struct):
    seq: int
    at: datetime
    principal: str
    role: str
    action: str
    patient_ref: str | None
    outcome: str
    status: int
    request_id: UUID


class AuditOut(msgspec.Struct):
    entries: list[AuditEntry]
    next: int | None = None  # more entries match: pass it back as ``after`` for the next page


Instant = Annotated[datetime | None, QueryParameter(description="RFC 3339 with offset")]


class AuditController(Controller):
    path = "/v1/audit"
    guards = [role_guard("auditor")]
    dependencies = {"caller": Provide(provide_scope, sync_to_thread=False)}
    tags = ["audit"]

    @get("/", sync_to_thread=True, responses=problems())
    def entries(
        self,
        caller: NamedDependency[Scope],
        services: NamedDependency[Services],
        patient_ref: Annotated[str | None, QueryParameter()] = None,
        start: Annotated[datetime | None, QueryParameter(name="from")] = None,
        end: Annotated[datetime | None, QueryParameter(name="to")] = None,
        after: Annotated[
            int | None,
            QueryParameter(ge=0, description="only entries after this seq: a previous `next`"),
        ] = None,
        limit: Annotated[
            int, QueryParameter(ge=1, le=LIMIT, description=f"entries per page, at most {LIMIT}")
        ] = LIMIT,
    ) -> AuditOut:
        """This clinic's audit entries, oldest first, by patient and time, a page at a time:
        while more match, ``next`` is the seq to pass as ``after`` for the following page."""
        for field, value in (("from", start), ("to", end)):
            if value is not None and value.tzinfo is None:
                raise ValidationFailed.field(field, "must carry a UTC offset")
        if patient_ref is not None and not is_client_id(patient_ref):
            raise ValidationFailed.field("patient_ref", "not a patient reference")
        rows: list[dict[str, Any]] = services.audit.entries(
            caller.tenant_id,
            patient_ref.lower() if patient_ref else None,
            start,
            end,
            limit + 1,  # one more than asked tells whether there is a next page
            after=after,
        )
        more, rows = len(rows) > limit, rows[:limit]
        return AuditOut(
            [
                AuditEntry(
                    seq=r["seq"],
                    at=r["at"],
                    principal=r["principal"],
                    role=r["role"],
                    action=r["action"],
                    patient_ref=r["patient_ref"],
                    outcome=r["outcome"],
                    status=r["status"],
                    request_id=r["request_id"],
                )
                for r in rows
            ],
            next=rows[-1]["seq"] if more else None,
        )
