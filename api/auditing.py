"""Every authenticated request leaves one audit entry, written before the response starts.

Guards leave the caller on the connection state; handlers note the tenant (admin routes) and
the patient a request concerns. A litestar ``before_send`` hook writes the entry when the status
is known and adds ``X-Request-Id`` to the response, so a client and an auditor can match them.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from litestar import Request
from litestar.types import Message
from litestar.types import Scope as ASGIScope

from booking.access import Scope
from booking.audit import PLATFORM
from booking.ids import is_client_id

NOTE = "audit_note"
WRITTEN = "audit_written"
log = logging.getLogger("booking.audit")


def note(
    request: Request[Any, Any, Any], *, tenant_id: str | None = None, patient_ref: str | None = None
) -> None:
    """Record what this request concerns, for its audit entry."""
    current = dict(request.state.get(NOTE) or {})
    # only well-formed ids: the entry is written whatever the request held
    if tenant_id is not None and is_client_id(tenant_id):
        current["tenant_id"] = tenant_id
    if patient_ref is not None and is_client_id(patient_ref):
        current["patient_ref"] = patient_ref
    request.state[NOTE] = current


async def write_audit_entry(message: Message, scope: ASGIScope) -> None:
    if message["type"] != "http.response.start":
        return
    state: dict[str, Any] = scope.get("state") or {}
    caller: Scope | None = state.get("scope")
    admin = bool(state.get("admin"))
    if caller is None and not admin:
        return  # unauthenticated: no principal to name
    if state.get(WRITTEN):
        return  # an error answer replacing this one is not a second request
    state[WRITTEN] = True
    request_id = uuid4()
    message["headers"] = [
        *message.get("headers", []),
        (b"x-request-id", str(request_id).encode()),
    ]
    noted = state.get(NOTE) or {}
    if caller is not None:
        tenant_id, principal, role = caller.tenant_id, caller.token_id, caller.role
    else:
        tenant_id, principal, role = noted.get("tenant_id") or PLATFORM, "admin", "admin"
    services = scope["app"].state.services
    try:
        # no thread hop: the entry is queued for AuditLog's writer thread and awaited here
        await services.audit.append_async(
            tenant_id=tenant_id,
            at=datetime.now(UTC),
            principal=principal,
            role=role,
            action=f"{scope['method']} {scope.get('path_template') or scope['path']}",  # type: ignore[typeddict-item]
            patient_ref=noted.get("patient_ref") or (caller.patient_ref if caller else None),
            status=int(message["status"]),
            request_id=request_id,
        )
    except Exception as exc:
        # The answer stands (a booking made must not be reported as failed); the gap is loud.
        # Changes are in the event log regardless; what is lost is this access record.
        log.error(
            "audit entry LOST for request %s (%s %s): %s",
            request_id,
            scope["method"],  # type: ignore[typeddict-item]
            scope.get("path_template"),
            type(exc).__name__,
        )
