"""Minimum necessary (45 CFR 164.514(d)): which fields each role may receive and send.

A role is what a route's guard lets through: ``admin`` (the platform operator's token), and the
issued tokens' ``staff``, ``agent``, ``patient`` and ``auditor``. Fields are named as they appear
in JSON, at any depth. tests/test_minimum_necessary.py holds the API to this module: it walks
every route of the real app (new routes included, with no list to keep in step), checks the
msgspec types each route declares against the roles its guard admits, and calls each route as
each of those roles to check the JSON they actually get. A field or a route that this module
does not allow fails there, naming what to add here. Adding a field to a role is a decision about
patient data: say why next to it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

ROLES = ("admin", "staff", "agent", "patient", "auditor")

# -- what is patient data ------------------------------------------------------------------------

# Fields that identify a patient (HIPAA's identifiers that this API could ever carry). A field of
# this name reaches only the roles PHI_GRANTS names, whatever the route.
PHI = frozenset(
    {
        "name",
        "phone",
        "birth_date",
        "date_of_birth",
        "dob",
        "email",
        "address",
        "ssn",
        "mrn",
        "insurance_id",
    }
)
PHI_GRANTS: dict[str, frozenset[str]] = {
    # the clinic's workforce registers patients and reads back what it registered
    "staff": frozenset({"name", "phone", "birth_date"}),
    # the clinic's own name (TenantOut); no admin route answers with a patient
    "admin": frozenset({"name"}),
}
# Response types only the platform admin may get: a clinic's settings and its issued tokens.
ADMIN_ONLY_TYPES = frozenset({"TenantOut", "TokenOut"})

# -- what each role may receive ------------------------------------------------------------------

# Every role may get a problem (RFC 9457), and the slots a 409 offers instead.
PROBLEM = frozenset(
    {"type", "title", "status", "detail", "errors", "field", "message", "confirmed", "error_id"}
)
SLOT = frozenset({"slot_id", "provider_id", "type_id", "start", "end"})
PROBLEM_FIELDS = PROBLEM | {"alternatives"} | SLOT
EVIDENCE = frozenset({"evidence", "event_id", "stream_id", "version", "position", "recorded_at"})
APPOINTMENT = frozenset(
    {"appointment_id", "confirmation_code", "status", "start", "end", "provider_id", "type_id"}
)

RECEIVE: dict[str, frozenset[str]] = {
    "admin": PROBLEM_FIELDS
    | {"tenant_id", "name", "timezone"}  # the clinic it created
    | {"token", "token_id", "role", "patient_ref", "call_id", "expires_at"},  # a token, once
    "staff": PROBLEM_FIELDS
    | EVIDENCE
    | APPOINTMENT
    | {"provider_id", "name", "timezone", "type_id", "duration_minutes"}  # setup it stored
    | {"hours", "weekday"}
    | {"patient_ref", "name", "phone", "birth_date", "language"}  # the patient it registered
    | {"appointments", "position"}  # the board: patient_ref, never a name
    | {"entries", "at", "kind", "details"}  # the timeline; its details, one kind at a time:
    | {"hold_id", "expires_at", "call_id", "previous_start", "by_role"}
    # call economics (contract): counts and money, no patient
    | {"calls", "minutes", "cost_cents", "bookings", "cost_per_booking_cents", "by_language"}
    | {"by_day", "date_from", "date_to", "voice_cents_per_minute"},  # the range and the rate
    "agent": PROBLEM_FIELDS
    | EVIDENCE
    | APPOINTMENT
    | {"slots", "hold_id", "expires_at", "confirmed", "appointments"}
    # calls and what the agent said (contract): the call it runs, the verdict on an utterance
    | {"call_id", "patient_ref", "language", "allowed", "reason", "confirmation_codes"}
    | {"duration_seconds", "outcome", "cost_cents"}
    # the call's own record: when, how much happened on it, what it booked (ids only; a
    # patient-bound token gets only its patient's appointments), and the claim the gate saw
    | {"started_at", "ended_at", "appointment_ids", "tool_calls", "utterances", "claim"},
    "patient": PROBLEM_FIELDS
    | EVIDENCE
    | APPOINTMENT
    | {"appointments", "patient_ref", "position"},  # its own appointments only
    "auditor": PROBLEM_FIELDS
    # who touched which patient (by reference, never by name), when, and the answer
    | {"entries", "seq", "at", "principal", "role", "action", "patient_ref", "outcome"}
    | {"status", "request_id", "next"},
}

# Objects whose keys are data (a language code), not field names: their values are checked.
MAPS = frozenset({"by_language", "by_day"})
# Objects declared as free-form (``dict[str, Any]``) whose keys are field names: checked against
# the role's list in the JSON the role gets, since no type names them.
OPEN = frozenset({"details"})

# -- what each role may send ---------------------------------------------------------------------

SEND: dict[str, frozenset[str]] = {
    "admin": frozenset(
        {"tenant_id", "name", "timezone", "role", "patient_ref", "call_id", "ttl_seconds"}
    ),
    "staff": frozenset(
        {"provider_id", "name", "timezone", "type_id", "duration_minutes", "hours", "weekday"}
        | {"start", "end", "patient_ref", "phone", "birth_date", "language"}
    ),
    "agent": frozenset(
        {"type_id", "provider_id", "start_from", "start_to", "limit", "slot_id", "hold_id"}
        | {"patient_ref", "call_id", "reason"}
        # calls (contract)
        | {"language", "text", "duration_seconds", "outcome", "cost_cents"}
    ),
    "patient": frozenset({"reason"}),  # a cancel's reason; never a patient, a tenant or a call
    "auditor": frozenset(),
}

# -- routes outside the per-role checks ----------------------------------------------------------

# Routes without a token, and why they may be.
PUBLIC: dict[str, str] = {
    "GET /health": "liveness, a constant answer",
    "GET /ready": "readiness: read-model lag in events and seconds, no tenant data",
}
PUBLIC_PREFIXES: dict[str, str] = {
    "/schema": "the OpenAPI document and its viewers, generated from the code",
}
# Authenticated routes whose answer holds no tenant data, so its keys are not fields.
NO_TENANT_DATA: dict[str, str] = {
    "GET /v1/agent/tools": "tool definitions generated from the request types (JSON Schema)",
}


def is_public(route: str) -> bool:
    _, _, path = route.partition(" ")
    return route in PUBLIC or any(
        path == prefix or path.startswith(prefix + "/") for prefix in PUBLIC_PREFIXES
    )


def fields_in(value: Any, path: str = "$") -> Iterator[tuple[str, str]]:
    """``(json_path, field)`` for every object key in a decoded JSON value, at any depth;
    the keys of MAPS objects are data and are skipped (their values are walked)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield f"{path}.{key}", key
            if key in MAPS and isinstance(item, dict):
                for data_key, data_item in item.items():
                    yield from fields_in(data_item, f"{path}.{key}[{data_key!r}]")
            else:
                yield from fields_in(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from fields_in(item, f"{path}[{i}]")


def refused_fields(role: str, value: Any) -> list[str]:
    """The JSON paths in ``value`` whose field ``role`` may not receive (PHI beyond its grant
    included)."""
    allowed = RECEIVE[role]
    grant = PHI_GRANTS.get(role, frozenset())
    return [
        path
        for path, field in fields_in(value)
        if field not in allowed or (field in PHI and field not in grant)
    ]
