"""Every authenticated request leaves one audit entry, written before the response starts.

Guards leave the caller on the connection state and begin the request's entry; handlers note
the tenant (admin routes) and the patient a request concerns. A command that saves stores the
entry in its own transaction, with the status it answers (booking.audit.CommandEntry). A
litestar ``before_send`` hook writes every other entry when the status is known, and adds
``X-Request-Id`` to every response, so a client and an auditor can match them.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.types import HTTPResponseStartEvent, Message
from litestar.types import Scope as ASGIScope

from booking.access import Scope
from booking.audit import COMMAND_ENTRY, PLATFORM, CommandEntry, EntryFields
from booking.ids import is_client_id

NOTE = "audit_note"
WRITTEN = "audit_written"
log = logging.getLogger("booking.audit")


def note(
    request: Request[Any, Any, Any], *, tenant_id: str | None = None, patient_ref: str | None = None
) -> None:
    """Record what this request concerns, for its audit entry."""
    note_state(request.state, tenant_id=tenant_id, patient_ref=patient_ref)


def note_state(state: Any, *, tenant_id: str | None = None, patient_ref: str | None = None) -> None:
    current = dict(state.get(NOTE) or {})
    # only well-formed ids: the entry is written whatever the request held
    if tenant_id is not None and is_client_id(tenant_id):
        current["tenant_id"] = tenant_id
    if patient_ref is not None and is_client_id(patient_ref):
        current["patient_ref"] = patient_ref
    state[NOTE] = current


ENTRY = "audit_entry"


def begin_entry(connection: ASGIConnection[Any, Any, Any, Any]) -> None:
    """Once a guard knows the caller: this request's audit entry, for a command to store with
    its events (booking.audit.CommandEntry). Set in the request's context, which the handler's
    worker thread gets a copy of."""
    state, asgi = connection.state, connection.scope

    def fields(status: int, patient_ref: str | None) -> EntryFields:
        if patient_ref is not None:
            note_state(state, patient_ref=patient_ref)  # as respond() notes the subject's
        found = _fields(asgi, state, status, entry.request_id)
        assert found is not None  # the guard has set the caller
        return found

    entry = CommandEntry(uuid4(), fields)
    state[ENTRY] = entry
    COMMAND_ENTRY.set(entry)


def _fields(scope: ASGIScope, state: Any, status: int, request_id: UUID) -> EntryFields | None:
    """The entry for this request answered with ``status``; None for an unauthenticated one."""
    caller: Scope | None = state.get("scope")
    admin = bool(state.get("admin"))
    if caller is None and not admin:
        return None  # unauthenticated: no principal to name
    noted = state.get(NOTE) or {}
    if caller is not None:
        tenant_id, principal, role = caller.tenant_id, caller.token_id, caller.role
    else:
        tenant_id, principal, role = noted.get("tenant_id") or PLATFORM, "admin", "admin"
    return EntryFields(
        tenant_id=tenant_id,
        at=datetime.now(UTC),
        principal=principal,
        role=role,
        action=f"{scope['method']} {scope.get('path_template') or scope['path']}",  # type: ignore[typeddict-item]
        patient_ref=noted.get("patient_ref") or (caller.patient_ref if caller else None),
        status=status,
        request_id=request_id,
    )


def _add_request_id(message: HTTPResponseStartEvent, request_id: UUID) -> None:
    message["headers"] = [*message.get("headers", []), (b"x-request-id", str(request_id).encode())]


async def write_audit_entry(message: Message, scope: ASGIScope) -> None:
    if message["type"] != "http.response.start":
        return
    state: dict[str, Any] = scope.get("state") or {}
    if state.get(WRITTEN):
        return  # an error answer replacing this one is not a second request
    entry: CommandEntry | None = state.get(ENTRY)
    status = int(message["status"])
    if entry is not None and entry.written == status:  # stored with the command's events
        state[WRITTEN] = True
        _add_request_id(message, entry.request_id)
        return
    fields = _fields(scope, state, status, entry.request_id if entry else uuid4())
    if fields is None:
        return
    state[WRITTEN] = True
    request_id = fields["request_id"]
    _add_request_id(message, request_id)
    services = scope["app"].state.services
    try:
        # no thread hop: the entry is queued for AuditLog's writer thread and awaited here
        await services.audit.append_async(**fields)
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
