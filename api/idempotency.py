"""The Idempotency-Key header: scoped to the token that sent it, bound to the request's content."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response

from api.auditing import note
from booking.commands import Decision, IdempotencyKey
from booking.errors import ValidationFailed

HEADER = "Idempotency-Key"
MAX_LENGTH = 255


def key_for(
    request: Request[Any, Any, Any], tenant_id: str, scope: str, body: Any
) -> IdempotencyKey | None:
    raw = request.headers.get(HEADER)
    if raw is None:
        return None
    if not 1 <= len(raw) <= MAX_LENGTH or not raw.isprintable():
        raise ValidationFailed.field(HEADER, "must be 1-255 printable characters")
    content = msgspec.to_builtins(body) if body is not None else None
    return IdempotencyKey.for_request(
        tenant_id, scope, raw, request.method, request.url.path.lower(), content
    )


def respond(request: Request[Any, Any, Any], decision: Decision, content: Any) -> Response[Any]:
    patient_ref = getattr(decision.subject, "patient_ref", None)
    if patient_ref is not None:
        note(request, patient_ref=patient_ref)
    headers = {"Idempotent-Replayed": "true"} if decision.replayed else {}
    return Response(
        content=msgspec.json.encode(content),
        status_code=decision.status_code,
        media_type="application/json",
        headers=headers,
    )
