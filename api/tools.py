"""Agent tool definitions (OpenAI and Anthropic formats), generated from the msgspec request types
the routes decode, so a tool's parameters can never drift from what the route accepts."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import msgspec

from api import schemas as s
from booking.ids import CLIENT_ID_PATTERN


@dataclass(frozen=True)
class Tool:
    name: str
    method: str
    path: str
    description: str
    body: type[msgspec.Struct] | None = None
    path_params: tuple[tuple[str, dict[str, Any]], ...] = ()


APPOINTMENT_ID = (
    "appointment_id",
    {"type": "string", "format": "uuid", "description": "appointment_id from a booking"},
)

CALL_ID = (
    "call_id",
    {"type": "string", "pattern": CLIENT_ID_PATTERN, "description": "the call's id"},
)

TOOLS = (
    Tool(
        "check_availability",
        "POST",
        "/v1/agent/availability",
        "Find open appointment slots of one type between two instants, earliest first. "
        "Offer the patient these times; nothing is reserved until you hold or book one.",
        s.AvailabilityIn,
    ),
    Tool(
        "hold_slot",
        "POST",
        "/v1/agent/holds",
        "Reserve an open slot for a patient for a few minutes while they decide. "
        "A hold is not a booking: never tell the patient they are booked after holding.",
        s.HoldIn,
    ),
    Tool(
        "book_appointment",
        "POST",
        "/v1/agent/bookings",
        "Book an appointment from a hold_id or an open slot_id. Only after this succeeds may you "
        "tell the patient they are booked, reading back the returned confirmation_code.",
        s.BookingIn,
    ),
    Tool(
        "verify_confirmation",
        "GET",
        "/v1/agent/confirmations/{confirmation_code}",
        "Check a confirmation code against the booking record before saying an appointment "
        "is confirmed. confirmed=false or not found means it is not booked.",
        None,
        (
            (
                "confirmation_code",
                {
                    "type": "string",
                    "minLength": 6,
                    "maxLength": 8,
                    "description": "the code, as read by the patient",
                },
            ),
        ),
    ),
    Tool(
        "reschedule_appointment",
        "POST",
        "/v1/agent/appointments/{appointment_id}/reschedule",
        "Move a booked appointment to another open slot or a hold; it keeps its id and "
        "confirmation code, and the old time is freed.",
        s.RescheduleIn,
        (APPOINTMENT_ID,),
    ),
    Tool(
        "cancel_appointment",
        "POST",
        "/v1/agent/appointments/{appointment_id}/cancel",
        "Cancel a booked appointment and free its time. Confirm with the patient first.",
        s.AgentCancelIn,
        (APPOINTMENT_ID,),
    ),
    Tool(
        "list_patient_appointments",
        "GET",
        "/v1/agent/patients/{patient_ref}/appointments",
        "List a patient's appointments with status, time and confirmation code.",
        None,
        (
            (
                "patient_ref",
                {"type": "string", "pattern": CLIENT_ID_PATTERN, "description": "the patient"},
            ),
        ),
    ),
    Tool(
        "start_call",
        "POST",
        "/v1/agent/calls",
        "Start recording this phone call when it begins: its tool calls and everything you say "
        "on it are kept as the record of the call.",
        s.CallIn,
    ),
    Tool(
        "check_utterance",
        "POST",
        "/v1/agent/calls/{call_id}/utterances",
        "Before telling the patient anything is booked, confirmed or rescheduled, send the exact "
        "words here; say them only if allowed is true.",
        s.UtteranceIn,
        (CALL_ID,),
    ),
    Tool(
        "end_call",
        "POST",
        "/v1/agent/calls/{call_id}/end",
        "Record that the call ended: its duration in seconds, how it ended, and its cost in "
        "cents when known.",
        s.CallEndIn,
        (CALL_ID,),
    ),
)


def _inline(schema: Any, defs: dict[str, Any]) -> Any:
    if isinstance(schema, dict):
        if "$ref" in schema:
            return _inline(defs[schema["$ref"].rsplit("/", 1)[1]], defs)
        return {k: _inline(v, defs) for k, v in schema.items() if k != "title"}
    if isinstance(schema, list):
        return [_inline(v, defs) for v in schema]
    return schema


def parameters(tool: Tool) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, schema in tool.path_params:
        properties[name] = schema
        required.append(name)
    if tool.body is not None:
        (ref,), components = msgspec.json.schema_components(
            [tool.body], ref_template="#/$defs/{name}"
        )
        body = _inline(ref, components)
        properties.update(body.get("properties", {}))
        required.extend(body.get("required", []))
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


@cache
def tool_definitions(fmt: str) -> list[dict[str, Any]]:
    if fmt == "anthropic":
        return [
            {"name": t.name, "description": t.description, "input_schema": parameters(t)}
            for t in TOOLS
        ]
    return [
        {
            "type": "function",
            "function": {"name": t.name, "description": t.description, "parameters": parameters(t)},
        }
        for t in TOOLS
    ]
