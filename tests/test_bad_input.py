"""Bad input never gets through and never breaks anything: every malformed, mistyped, out-of-range
or oversized request is a 4xx problem+json (422s name the offending field), nothing is written to
the event store, and nothing internal (stack traces, SQL, driver names) reaches the client.
Arbitrary JSON thrown at the availability and booking routes never causes a 5xx."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.booking_helpers import (
    LEAK_MARKERS,
    PROBLEM_MEDIA_TYPE,
    EventLog,
    assert_problem,
    error_fields,
    event_log,
    open_slots,
)
from tests.support.server import LiveServer, Practice, Tenant, expect, seed_tenant, setup_practice

NOW_ISH_FROM = "2027-01-04T00:00:00-05:00"
NOW_ISH_TO = "2027-01-06T00:00:00-05:00"
OVER_64_KIB = "x" * (64 * 1024 + 1)


@pytest.fixture(scope="module")
def tenant(live_server: LiveServer) -> Tenant:
    return seed_tenant(live_server, "bad-input-clinic")


@pytest.fixture(scope="module")
def practice(live_server: LiveServer, tenant: Tenant) -> Practice:
    return setup_practice(live_server, tenant, patients=("pat-1", "pat-2"))


@pytest.fixture(scope="module")
def log(live_server: LiveServer) -> Iterator[EventLog]:
    yield from event_log(live_server)


@pytest.fixture(scope="module")
def world(live_server: LiveServer, tenant: Tenant, practice: Practice) -> dict[str, Any]:
    """A booked appointment, a live hold and a free slot, so refusals have real targets."""
    with live_server.client() as client:
        slots = open_slots(client, tenant, practice, days_from=1, days=3)
        appointment = expect(
            client.post(
                "/v1/agent/bookings",
                json={"patient_ref": "pat-1", "slot_id": slots[0]["slot_id"]},
                headers=tenant.agent_headers,
            ),
            201,
        )
        hold = expect(
            client.post(
                "/v1/agent/holds",
                json={"patient_ref": "pat-1", "slot_id": slots[1]["slot_id"]},
                headers=tenant.agent_headers,
            ),
            201,
        )
    return {
        "appointment_id": appointment["appointment_id"],
        "hold_id": hold["hold_id"],
        "slot_id": slots[2]["slot_id"],
        "provider_id": practice.provider_id,
        "slots": [s["slot_id"] for s in slots],
    }


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: str  # may name {appointment_id} and {provider_id}
    body: Any = None  # JSON-encoded unless raw is given
    raw: bytes | None = None
    status: int = 422
    fields: tuple[str, ...] = ()  # one of these must be among errors[].field
    role: str = "agent"  # agent | staff | admin
    headers: dict[str, str] = field(default_factory=dict)


def availability(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type_id": "checkup",
        "start_from": NOW_ISH_FROM,
        "start_to": NOW_ISH_TO,
        "limit": 5,
    }
    for key, value in overrides.items():
        if value is ...:
            body.pop(key)
        else:
            body[key] = value
    return body


AV = "/v1/agent/availability"
BOOK = "/v1/agent/bookings"
HOLD = "/v1/agent/holds"
RESCHEDULE = "/v1/agent/appointments/{appointment_id}/reschedule"
CANCEL = "/v1/agent/appointments/{appointment_id}/cancel"
HOURS = "/v1/staff/providers/{provider_id}/weekly-hours"
SLOT = "{slot_id}"  # replaced by a real, free slot id
HOLD_ID = "{hold_id}"

CASES = [
    # -- availability ------------------------------------------------------------------------------
    Case(
        "availability: malformed JSON", "POST", AV, raw=b'{"type_id": "checkup",', fields=("body",)
    ),
    Case("availability: not an object", "POST", AV, body=["checkup"], fields=("body",)),
    Case("availability: null body", "POST", AV, raw=b"null", fields=("body",)),
    Case(
        "availability: limit is text", "POST", AV, body=availability(limit="ten"), fields=("limit",)
    ),
    Case("availability: limit 51", "POST", AV, body=availability(limit=51), fields=("limit",)),
    Case("availability: limit 0", "POST", AV, body=availability(limit=0), fields=("limit",)),
    Case(
        "availability: limit fractional",
        "POST",
        AV,
        body=availability(limit=2.5),
        fields=("limit",),
    ),
    Case(
        "availability: start_to before start_from",
        "POST",
        AV,
        body=availability(start_from=NOW_ISH_TO, start_to=NOW_ISH_FROM),
        fields=("start_to", "start_from"),
    ),
    Case(
        "availability: window over 31 days",
        "POST",
        AV,
        body=availability(start_to="2027-02-05T00:00:00-05:00"),
        fields=("start_to", "start_from"),
    ),
    Case(
        "availability: missing type_id",
        "POST",
        AV,
        body=availability(type_id=...),
        fields=("type_id",),
    ),
    Case(
        "availability: missing start_from",
        "POST",
        AV,
        body=availability(start_from=...),
        fields=("start_from",),
    ),
    Case(
        "availability: unknown field",
        "POST",
        AV,
        body=availability(colour="blue"),
        fields=("colour",),
    ),
    Case(
        "availability: naive start_from",
        "POST",
        AV,
        body=availability(start_from="2027-01-04T00:00:00"),
        fields=("start_from",),
    ),
    Case(
        "availability: naive start_to",
        "POST",
        AV,
        body=availability(start_to="2027-01-05T09:00:00"),
        fields=("start_to",),
    ),
    Case(
        "availability: date instead of instant",
        "POST",
        AV,
        body=availability(start_from="2027-01-04"),
        fields=("start_from",),
    ),
    Case(
        "availability: not a time at all",
        "POST",
        AV,
        body=availability(start_to="next tuesday"),
        fields=("start_to",),
    ),
    Case(
        "availability: type_id with a dot",
        "POST",
        AV,
        body=availability(type_id="check.up"),
        fields=("type_id",),
    ),
    Case(
        "availability: type_id is a number",
        "POST",
        AV,
        body=availability(type_id=7),
        fields=("type_id",),
    ),
    Case(
        "availability: over 64 KiB", "POST", AV, body=availability(type_id=OVER_64_KIB), status=413
    ),
    # -- holds -------------------------------------------------------------------------------------
    Case(
        "hold: garbage slot id",
        "POST",
        HOLD,
        body={"slot_id": "sl_garbage", "patient_ref": "pat-2"},
        fields=("slot_id",),
    ),
    Case(
        "hold: nonsense slot id",
        "POST",
        HOLD,
        body={"slot_id": "nonsense", "patient_ref": "pat-2"},
        fields=("slot_id",),
    ),
    Case(
        "hold: empty slot id",
        "POST",
        HOLD,
        body={"slot_id": "", "patient_ref": "pat-2"},
        fields=("slot_id",),
    ),
    Case(
        "hold: slot id is a number",
        "POST",
        HOLD,
        body={"slot_id": 12, "patient_ref": "pat-2"},
        fields=("slot_id",),
    ),
    Case(
        "hold: missing patient_ref", "POST", HOLD, body={"slot_id": SLOT}, fields=("patient_ref",)
    ),
    Case(
        "hold: patient_ref with a dot",
        "POST",
        HOLD,
        body={"slot_id": SLOT, "patient_ref": "pat.2"},
        fields=("patient_ref",),
    ),
    Case(
        "hold: unknown field",
        "POST",
        HOLD,
        body={"slot_id": SLOT, "patient_ref": "pat-2", "priority": "high"},
        fields=("priority",),
    ),
    # -- bookings ----------------------------------------------------------------------------------
    Case(
        "booking: garbage slot id",
        "POST",
        BOOK,
        body={"patient_ref": "pat-2", "slot_id": "sl_garbage"},
        fields=("slot_id",),
    ),
    Case(
        "booking: nonsense slot id",
        "POST",
        BOOK,
        body={"patient_ref": "pat-2", "slot_id": "nonsense"},
        fields=("slot_id",),
    ),
    Case(
        "booking: both hold_id and slot_id",
        "POST",
        BOOK,
        body={"patient_ref": "pat-1", "slot_id": SLOT, "hold_id": HOLD_ID},
        fields=("hold_id", "slot_id"),
    ),
    Case(
        "booking: neither hold_id nor slot_id",
        "POST",
        BOOK,
        body={"patient_ref": "pat-2"},
        fields=("hold_id", "slot_id"),
    ),
    Case(
        "booking: hold_id not a uuid",
        "POST",
        BOOK,
        body={"patient_ref": "pat-2", "hold_id": "h-1"},
        fields=("hold_id",),
    ),
    Case(
        "booking: missing patient_ref",
        "POST",
        BOOK,
        body={"slot_id": SLOT},
        fields=("patient_ref",),
    ),
    Case(
        "booking: patient_ref is a list",
        "POST",
        BOOK,
        body={"patient_ref": ["pat-2"], "slot_id": SLOT},
        fields=("patient_ref",),
    ),
    Case(
        "booking: unknown field",
        "POST",
        BOOK,
        body={"patient_ref": "pat-2", "slot_id": SLOT, "notes": "x"},
        fields=("notes",),
    ),
    Case(
        "booking: malformed JSON", "POST", BOOK, raw=b"{'patient_ref': 'pat-2'}", fields=("body",)
    ),
    Case(
        "booking: over 64 KiB",
        "POST",
        BOOK,
        body={"patient_ref": "pat-2", "slot_id": OVER_64_KIB},
        status=413,
    ),
    Case(
        "booking: Idempotency-Key over 255 characters",
        "POST",
        BOOK,
        body={"patient_ref": "pat-2", "slot_id": SLOT},
        headers={"Idempotency-Key": "k" * 256},
        fields=("Idempotency-Key",),
    ),
    # -- reschedule and cancel ---------------------------------------------------------------------
    Case(
        "reschedule: nonsense slot id",
        "POST",
        RESCHEDULE,
        body={"slot_id": "nonsense"},
        fields=("slot_id",),
    ),
    Case(
        "reschedule: both hold_id and slot_id",
        "POST",
        RESCHEDULE,
        body={"slot_id": SLOT, "hold_id": HOLD_ID},
        fields=("hold_id", "slot_id"),
    ),
    Case("reschedule: neither", "POST", RESCHEDULE, body={}, fields=("hold_id", "slot_id")),
    Case(
        "reschedule: unknown appointment id",
        "POST",
        "/v1/agent/appointments/not-a-uuid/reschedule",
        body={"slot_id": SLOT},
        status=404,
    ),
    Case(
        "cancel: reason over 500 characters",
        "POST",
        CANCEL,
        body={"reason": "r" * 501},
        fields=("reason",),
    ),
    Case("cancel: reason is a number", "POST", CANCEL, body={"reason": 5}, fields=("reason",)),
    Case(
        "cancel: unknown appointment id",
        "POST",
        "/v1/agent/appointments/00000000-0000-0000-0000-000000000000/cancel",
        body={},
        status=404,
    ),
    # -- admin -------------------------------------------------------------------------------------
    Case(
        "tenant: bad timezone",
        "POST",
        "/v1/admin/tenants",
        role="admin",
        body={"tenant_id": "bad-tz", "name": "Bad", "timezone": "Mars/Olympus_Mons"},
        fields=("timezone",),
    ),
    Case(
        "tenant: path-like timezone",
        "POST",
        "/v1/admin/tenants",
        role="admin",
        body={"tenant_id": "bad-tz", "name": "Bad", "timezone": "../../etc/passwd"},
        fields=("timezone",),
    ),
    Case(
        "tenant: id with a dot",
        "POST",
        "/v1/admin/tenants",
        role="admin",
        body={"tenant_id": "bad.tenant", "name": "Bad", "timezone": "UTC"},
        fields=("tenant_id",),
    ),
    Case(
        "tenant: missing name",
        "POST",
        "/v1/admin/tenants",
        role="admin",
        body={"tenant_id": "bad-name", "timezone": "UTC"},
        fields=("name",),
    ),
    Case(
        "token: unknown role",
        "POST",
        "/v1/admin/tenants/bad-input-clinic/tokens",
        role="admin",
        body={"role": "superuser"},
        fields=("role",),
    ),
    Case(
        "token: ttl below a minute",
        "POST",
        "/v1/admin/tenants/bad-input-clinic/tokens",
        role="admin",
        body={"role": "agent", "ttl_seconds": 5},
        fields=("ttl_seconds",),
    ),
    Case(
        "token: patient token without patient",
        "POST",
        "/v1/admin/tenants/bad-input-clinic/tokens",
        role="admin",
        body={"role": "patient"},
        fields=("patient_ref",),
    ),
    # -- staff -------------------------------------------------------------------------------------
    Case(
        "hours: end before start",
        "PUT",
        HOURS,
        role="staff",
        body={"hours": [{"weekday": 0, "start": "12:00", "end": "09:00"}]},
        fields=("hours[0].end",),
    ),
    Case(
        "hours: bad weekday",
        "PUT",
        HOURS,
        role="staff",
        body={"hours": [{"weekday": 7, "start": "09:00", "end": "12:00"}]},
        fields=("hours[0].weekday",),
    ),
    Case(
        "hours: negative weekday",
        "PUT",
        HOURS,
        role="staff",
        body={"hours": [{"weekday": -1, "start": "09:00", "end": "12:00"}]},
        fields=("hours[0].weekday",),
    ),
    Case(
        "hours: bad start time",
        "PUT",
        HOURS,
        role="staff",
        body={"hours": [{"weekday": 1, "start": "25:00", "end": "26:00"}]},
        fields=("hours[0].start",),
    ),
    Case(
        "hours: second entry broken",
        "PUT",
        HOURS,
        role="staff",
        body={
            "hours": [
                {"weekday": 1, "start": "09:00", "end": "12:00"},
                {"weekday": 2, "start": "9am", "end": "12:00"},
            ]
        },
        fields=("hours[1].start",),
    ),
    Case(
        "hours: overlapping entries",
        "PUT",
        HOURS,
        role="staff",
        body={
            "hours": [
                {"weekday": 3, "start": "09:00", "end": "12:00"},
                {"weekday": 3, "start": "11:00", "end": "13:00"},
            ]
        },
        fields=("hours[1]", "hours[1].start"),
    ),
    Case(
        "hours: weekday is text",
        "PUT",
        HOURS,
        role="staff",
        body={"hours": [{"weekday": "monday", "start": "09:00", "end": "12:00"}]},
        fields=("hours[0].weekday",),
    ),
    Case(
        "provider: bad timezone",
        "POST",
        "/v1/staff/providers",
        role="staff",
        body={"provider_id": "dr-z", "name": "Z", "timezone": "Not/AZone"},
        fields=("timezone",),
    ),
    Case(
        "type: duration is text",
        "POST",
        "/v1/staff/appointment-types",
        role="staff",
        body={"type_id": "long", "name": "Long", "duration_minutes": "thirty"},
        fields=("duration_minutes",),
    ),
    Case(
        "type: duration zero",
        "POST",
        "/v1/staff/appointment-types",
        role="staff",
        body={"type_id": "long", "name": "Long", "duration_minutes": 0},
        fields=("duration_minutes",),
    ),
    Case(
        "patient: birth date in the future",
        "POST",
        "/v1/staff/patients",
        role="staff",
        body={"patient_ref": "future", "name": "F", "birth_date": "2999-01-01"},
        fields=("birth_date",),
    ),
    Case(
        "patient: birth date not a date",
        "POST",
        "/v1/staff/patients",
        role="staff",
        body={"patient_ref": "future", "name": "F", "birth_date": "yesterday"},
        fields=("birth_date",),
    ),
    Case(
        "patient: over 64 KiB",
        "POST",
        "/v1/staff/patients",
        role="staff",
        body={"patient_ref": "big", "name": OVER_64_KIB},
        status=413,
    ),
]


def fill(value: Any, world: dict[str, Any]) -> Any:
    if isinstance(value, str):
        return (
            value.replace(SLOT, world["slot_id"])
            .replace(HOLD_ID, world["hold_id"])
            .replace("{appointment_id}", world["appointment_id"])
            .replace("{provider_id}", world["provider_id"])
        )
    if isinstance(value, dict):
        return {k: fill(v, world) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, world) for v in value]
    return value


def headers_for(case: Case, server: LiveServer, tenant: Tenant) -> dict[str, str]:
    auth = {
        "admin": server.admin_headers,
        "staff": tenant.staff_headers,
        "agent": tenant.agent_headers,
    }[case.role]
    return {**auth, "Content-Type": "application/json", **case.headers}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_refused_with_a_problem_and_writes_nothing(
    live_server: LiveServer, tenant: Tenant, world: dict[str, Any], log: EventLog, case: Case
) -> None:
    content = case.raw if case.raw is not None else json.dumps(fill(case.body, world)).encode()
    before = log.max_position()
    with live_server.client() as client:
        response = client.request(
            case.method,
            fill(case.path, world),
            content=content,
            headers=headers_for(case, live_server, tenant),
        )
    after = log.max_position()

    problem = assert_problem(response, case.status)
    if case.fields:
        fields = error_fields(problem)
        assert set(case.fields) & set(fields), (
            f"expected one of {case.fields} in {fields}: {problem}"
        )
    assert after == before, f"{case.name} wrote events {before + 1}..{after}"


def test_a_chunked_body_over_64_kib_is_refused(
    live_server: LiveServer, tenant: Tenant, log: EventLog
) -> None:
    """Without Content-Length the limit still holds."""
    payload = json.dumps({"patient_ref": "huge", "name": OVER_64_KIB}).encode()

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(payload), 8192):
            yield payload[i : i + 8192]

    before = log.max_position()
    with live_server.client() as client:
        response = client.post(
            "/v1/staff/patients",
            content=chunks(),
            headers={**tenant.staff_headers, "Content-Type": "application/json"},
        )
    assert_problem(response, 413)
    assert log.max_position() == before


def test_the_service_still_works_after_all_that(
    live_server: LiveServer, tenant: Tenant, world: dict[str, Any]
) -> None:
    with live_server.client() as client:
        booked = client.post(
            "/v1/agent/bookings",
            json={"patient_ref": "pat-2", "slot_id": world["slot_id"]},
            headers=tenant.agent_headers,
        )
    assert booked.status_code == 201, booked.text


# -- fuzzing --------------------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
INSTANTS = st.sampled_from(
    [
        "2027-01-04T09:00:00-05:00",
        "2027-01-04T09:00:00Z",
        "2027-01-04T09:00:00",
        "2027-01-04",
        "2027-02-30T09:00:00Z",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59+14:00",
        "",
        "now",
    ]
)


def fuzzed_body(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    known = st.fixed_dictionaries({}, optional={k: v | JSON_VALUES for k, v in fields.items()})
    extra = st.dictionaries(st.text(max_size=12), JSON_VALUES, max_size=2)
    return st.one_of(
        JSON_VALUES,
        st.tuples(known, extra).map(lambda pair: {**pair[1], **pair[0]}),
        known,
    )


AVAILABILITY_BODIES = fuzzed_body(
    {
        "type_id": st.sampled_from(["checkup", "CHECKUP", "nope", "a.b", ""]),
        "provider_id": st.sampled_from(["dr-a", "dr-z", "DR-A", ""]),
        "start_from": INSTANTS,
        "start_to": INSTANTS,
        "limit": st.integers(min_value=-5, max_value=60),
    }
)

BOOKING_BODIES = fuzzed_body(
    {
        "patient_ref": st.sampled_from(["pat-1", "pat-2", "PAT-2", "ghost", "a/b", ""]),
        "slot_id": st.sampled_from(
            [
                "sl_",
                "sl_garbage",
                "sl_ZHItYS9jaGVja3VwLzIwMjcwMTA0MTQwMA",
                "sl_" + "A" * 300,
                "nonsense",
            ]
        ),
        "hold_id": st.sampled_from(["00000000-0000-0000-0000-000000000000", "not-a-uuid"]),
        "call_id": st.sampled_from(["call-1", "bad call"]),
    }
)


def check_fuzzed(response: httpx.Response, sent: bytes) -> None:
    assert response.status_code < 500, (sent, response.status_code, response.text)
    lowered = response.text.lower()
    for marker in LEAK_MARKERS:
        if marker not in sent.decode("utf-8", "replace").lower():
            assert marker not in lowered, (sent, response.text)
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith(PROBLEM_MEDIA_TYPE), response.text
        problem = response.json()
        assert problem["status"] == response.status_code
        assert problem["type"].startswith("/problems/")
        assert problem["title"] and problem["detail"]
        if response.status_code == 422:
            assert problem["errors"] and all(e["field"] and e["message"] for e in problem["errors"])


FUZZ = settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(body=AVAILABILITY_BODIES)
def test_fuzzed_availability_bodies_never_cause_a_server_error(
    live_server: LiveServer, tenant: Tenant, practice: Practice, body: Any
) -> None:
    sent = json.dumps(body).encode()
    with live_server.client() as client:
        response = client.post(
            "/v1/agent/availability",
            content=sent,
            headers={**tenant.agent_headers, "Content-Type": "application/json"},
        )
    check_fuzzed(response, sent)


@FUZZ
@given(body=BOOKING_BODIES)
def test_fuzzed_booking_bodies_never_cause_a_server_error(
    live_server: LiveServer, tenant: Tenant, practice: Practice, body: Any
) -> None:
    sent = json.dumps(body).encode()
    with live_server.client() as client:
        response = client.post(
            "/v1/agent/bookings",
            content=sent,
            headers={**tenant.agent_headers, "Content-Type": "application/json"},
        )
    check_fuzzed(response, sent)
