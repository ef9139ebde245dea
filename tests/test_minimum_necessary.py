"""Minimum necessary: each role gets only the fields api/allowlists.py allows it and may send only
the fields it may set; a token bound to a patient or a call sees only that.

Every route is taken from the app itself (tests/support/routes.py), so a route added later is
checked without anyone remembering to: statically, its declared msgspec types against the roles
its guard admits; live, the JSON each of those roles really gets from the real app, key by key
at every depth, and the text of every answer for values a role must never see (another patient,
another clinic, a patient's name, phone and birth date, a cancel's free-text reason, the clinic's
settings). A route without a live recipe below, or a field no allowlist names, fails with a
message that says what to add.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec.inspect as mi
import psycopg
import pytest

from api import allowlists as al
from api.schemas import Problem
from tests.booking_helpers import assert_problem, error_fields
from tests.support.routes import (
    UNKNOWN_GUARD,
    Route,
    app_routes,
    declared_fields,
    is_free_form,
    structs_in,
)
from tests.support.server import (
    LiveServer,
    Tenant,
    business_hours,
    expect,
    seed_tenant,
    setup_practice,
)

TENANT = "mn-clinic"
OTHER_TENANT = "mn-elsewhere"
CLINIC_NAME = "Clinic Halcyon-Verdigris"  # the clinic's settings: the platform admin's only
PA, PB, PC, PD = "mn-pa", "mn-pb", "mn-pc", "mn-pd"
CALL, OTHER_CALL = "mn-call-1", "mn-call-2"
PHI_VALUES = {
    "name": "Ysolde Marchetti-Quarrington",
    "phone": "+1 555 012 3987",
    "birth_date": "1968-02-29",
}
REASON = "canary reason: persistent migraine"  # free text that may hold health details


# -- the static half: declared types against the allowlists --------------------------------------


@pytest.fixture(scope="module")
def routes(live_server: LiveServer) -> list[Route]:
    return app_routes(live_server.app)


def checked(routes: list[Route]) -> list[Route]:
    """The routes whose answers carry tenant data: authenticated and not declared data-free."""
    return [r for r in routes if not al.is_public(r.key) and r.key not in al.NO_TENANT_DATA]


def test_every_route_is_guarded_by_known_roles_or_declared_public(routes: list[Route]) -> None:
    assert routes, "the app lists no routes"
    problems = []
    for r in routes:
        if not r.roles and not al.is_public(r.key):
            problems.append(f"{r.key}: no role guard; guard it, or add it to allowlists.PUBLIC")
        if UNKNOWN_GUARD in r.roles or not set(r.roles) <= set(al.ROLES):
            problems.append(f"{r.key}: a guard api.auth.GUARD_ROLES does not know ({r.roles})")
        if r.roles and al.is_public(r.key):
            problems.append(f"{r.key}: guarded, yet listed in allowlists.PUBLIC")
    declared = set(al.PUBLIC) | set(al.NO_TENANT_DATA)
    stale = declared - {r.key for r in routes}
    problems += [f"{key}: listed in api/allowlists.py but no such route" for key in sorted(stale)]
    assert not problems, "\n".join(problems)


def response_problems(route: Route, role: str) -> Iterator[str]:
    where = f"{route.key} as {role}"
    if route.response is None or is_free_form(mi.type_info(route.response)):
        yield (
            f"{where}: declares no msgspec type for its answer; return a Struct (or document "
            "one in its OpenAPI responses), or list it in allowlists.NO_TENANT_DATA saying why"
        )
        return
    for t in structs_in(route.response):
        if t.cls.__name__ in al.ADMIN_ONLY_TYPES and role != "admin":
            yield f"{where}: answers with {t.cls.__name__}, which only the platform admin gets"
    for f in declared_fields(route.response):
        yield from field_problems(where, role, f.path, f.name, f.struct, f.info)


def field_problems(
    where: str, role: str, path: str, name: str, struct: str, info: mi.Type
) -> Iterator[str]:
    if name in al.PHI and name not in al.PHI_GRANTS.get(role, frozenset()):
        yield f"{where}: {path} ({struct}.{name}) is patient data the {role} role may not get"
    elif name not in al.RECEIVE[role]:
        yield (
            f"{where}: {path} ({struct}.{name}) is not in allowlists.RECEIVE[{role!r}]; "
            "add it there if the role needs it, saying why"
        )
    maps = [info] if not isinstance(info, mi.UnionType) else list(info.types)
    if any(isinstance(t, mi.DictType) for t in maps) and name not in al.MAPS | al.OPEN:
        yield f"{where}: {path} is an object with open keys; declare it in allowlists.MAPS or OPEN"
    elif is_free_form(info) and name not in al.OPEN:
        yield f"{where}: {path} has no declared type; type it, or declare it in allowlists.OPEN"


def test_declared_answers_carry_only_allowed_fields(routes: list[Route]) -> None:
    problems = [p for r in checked(routes) for role in r.roles for p in response_problems(r, role)]
    # any route may answer with a problem
    for role in al.ROLES:
        for f in declared_fields(Problem):
            problems += field_problems("a problem", role, f.path, f.name, f.struct, f.info)
    assert not problems, "\n".join(problems)


def test_request_bodies_refuse_unknown_fields_and_carry_only_what_the_role_may_set(
    routes: list[Route],
) -> None:
    problems = []
    writes = [r for r in routes if r.request is not None]
    assert writes, "no route takes a body?"
    for r in writes:
        for t in structs_in(r.request):
            if not t.forbid_unknown_fields:
                problems.append(
                    f"{r.key}: {t.cls.__name__} accepts unknown fields (subclass api.schemas.Request)"
                )
        for f in declared_fields(r.request):
            for role in r.roles:
                if f.name not in al.SEND[role]:
                    problems.append(
                        f"{r.key}: the {role} role may not set {f.path} ({f.struct}.{f.name}); "
                        f"add it to allowlists.SEND[{role!r}] if it may"
                    )
    assert not problems, "\n".join(problems)


def test_the_allowlists_grant_patient_data_to_staff_only() -> None:
    """The rules the issue states, read off the lists themselves."""
    for role in al.ROLES:
        granted = al.RECEIVE[role] & al.PHI
        assert granted <= al.PHI_GRANTS.get(role, frozenset()), (role, granted)
    assert {"birth_date", "phone", "name"}.isdisjoint(al.RECEIVE["agent"])
    assert al.PHI.isdisjoint(al.RECEIVE["patient"] | al.RECEIVE["auditor"])
    assert al.PHI_GRANTS["admin"] == {"name"}  # the clinic's name, no patient's
    assert al.SEND["patient"] == {"reason"} and not al.SEND["auditor"]
    assert "tenant_id" not in al.SEND["staff"] | al.SEND["agent"] | al.SEND["patient"]


# -- the live half: the real app, each route as each role it admits ------------------------------


@dataclass(frozen=True)
class Caller:
    name: str
    role: str
    headers: dict[str, str]
    patient: str  # the patient it acts for: its binding, or one of its own
    bound_patient: bool = False
    call: str | None = None  # the call it is bound to


@dataclass
class Call:
    params: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    query: dict[str, str] = field(default_factory=dict)


@dataclass
class World:
    server: LiveServer
    tenant: Tenant
    other: Tenant
    callers: dict[str, Caller]
    other_ids: set[str]  # another clinic's patients and appointments: nobody here sees them
    pb_ids: set[str]  # patient mn-pb's appointment ids: callers bound to mn-pa never see them
    position: int = 0  # the world's last write: read models are asked to have applied it
    counter: Iterator[int] = field(default_factory=itertools.count)

    def fresh(self, prefix: str) -> str:
        return f"{prefix}-{next(self.counter)}"

    def slot(self, type_id: str = "checkup", provider_id: str = "dr-a", soon: bool = False) -> str:
        """An open slot: days ahead, or (``soon``) within the next two hours."""
        now = datetime.now(UTC)
        start, end = (
            (now, now + timedelta(hours=2))
            if soon
            else (now + timedelta(days=1), now + timedelta(days=20))
        )
        body = {
            "type_id": type_id,
            "provider_id": provider_id,
            "start_from": start.isoformat(),
            "start_to": end.isoformat(),
            "limit": 1,
        }
        with self.server.client() as client:
            slots = expect(
                client.post("/v1/agent/availability", json=body, headers=self.tenant.agent_headers),
                200,
            )["slots"]
        assert slots, f"no open slot for {body}"
        return str(slots[0]["slot_id"])

    def book(self, patient: str, soon: bool = False) -> dict[str, Any]:
        slot = self.slot("quick", "dr-now", soon=True) if soon else self.slot()
        with self.server.client() as client:
            return dict(
                expect(
                    client.post(
                        "/v1/agent/bookings",
                        json={"patient_ref": patient, "slot_id": slot},
                        headers=self.tenant.agent_headers,
                    ),
                    201,
                )
            )

    def call_of(self, caller: Caller) -> str:
        """A call the caller may act on: its own when bound to one, else a fresh one it starts."""
        if caller.call is not None:
            return caller.call
        call_id = self.fresh("mn-talk")
        with self.server.client() as client:
            expect(
                client.post(
                    "/v1/agent/calls",
                    json={"call_id": call_id, "patient_ref": caller.patient},
                    headers=caller.headers,
                ),
                201,
            )
        return call_id


def register(server: LiveServer, tenant: Tenant, patient: str, **phi: str) -> None:
    body = {"patient_ref": patient, "name": f"Patient {patient}", **phi}
    with server.client() as client:
        expect(client.post("/v1/staff/patients", json=body, headers=tenant.staff_headers), 201)


@pytest.fixture(scope="module")
def world(live_server: LiveServer) -> World:
    with live_server.client() as client:
        expect(
            client.post(
                "/v1/admin/tenants",
                json={"tenant_id": TENANT, "name": CLINIC_NAME, "timezone": "America/New_York"},
                headers=live_server.admin_headers,
            ),
            201,
        )
    a = Tenant(server=live_server, tenant_id=TENANT, staff_headers={}, agent_headers={})
    a.staff_headers, a.agent_headers = a.token("staff"), a.token("agent")
    setup_practice(live_server, a, patients=(PB, PC, PD))
    register(live_server, a, PA, **PHI_VALUES, language="es")
    # a provider whose day has no end, for a mark that needs an appointment about to start
    with live_server.client() as client:
        h = a.staff_headers
        expect(
            client.post(
                "/v1/staff/providers",
                json={"provider_id": "dr-now", "name": "Dr Now", "timezone": "UTC"},
                headers=h,
            ),
            201,
        )
        expect(
            client.post(
                "/v1/staff/appointment-types",
                json={"type_id": "quick", "name": "Quick", "duration_minutes": 5},
                headers=h,
            ),
            201,
        )
        expect(
            client.put(
                "/v1/staff/providers/dr-now/weekly-hours",
                json={"hours": business_hours("00:00", "23:59")},
                headers=h,
            ),
            200,
        )
    other = seed_tenant(live_server, OTHER_TENANT)
    setup_practice(live_server, other, patients=("mn-elsewhere-patient",))
    w = World(
        server=live_server,
        tenant=a,
        other=other,
        callers={},
        other_ids={OTHER_TENANT, "mn-elsewhere-patient"},
        pb_ids={PB},
    )
    w.callers = {
        "admin": Caller("admin", "admin", live_server.admin_headers, PA),
        "staff": Caller("staff", "staff", a.staff_headers, PA),
        "agent": Caller("agent", "agent", a.agent_headers, PC),
        "agent-bound-patient": Caller(
            "agent-bound-patient", "agent", a.token("agent", patient_ref=PA), PA, True
        ),
        "agent-bound-call": Caller(
            "agent-bound-call", "agent", a.token("agent", call_id=CALL), PD, call=CALL
        ),
        "patient": Caller("patient", "patient", a.token("patient", patient_ref=PA), PA, True),
        "auditor": Caller("auditor", "auditor", a.token("auditor"), PA),
    }
    # what the bound callers must never see: the other patient's appointments, the other clinic's
    w.pb_ids.add(w.book(PB)["appointment_id"])
    with live_server.client() as client:
        slot = expect(
            client.post(
                "/v1/agent/availability",
                json={
                    "type_id": "checkup",
                    "start_from": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
                    "start_to": (datetime.now(UTC) + timedelta(days=20)).isoformat(),
                    "limit": 1,
                },
                headers=other.agent_headers,
            ),
            200,
        )["slots"][0]
        theirs = expect(
            client.post(
                "/v1/agent/bookings",
                json={"patient_ref": "mn-elsewhere-patient", "slot_id": slot["slot_id"]},
                headers=other.agent_headers,
            ),
            201,
        )
    w.other_ids |= {theirs["appointment_id"], theirs["confirmation_code"]}
    # a history for the timeline and the audit trail: a hold, a booking, a reschedule, a cancel
    # with a free-text reason, all for mn-pa
    with live_server.client() as client:
        expect(
            client.post(
                "/v1/agent/holds",
                json={"patient_ref": PA, "slot_id": w.slot(), "call_id": CALL},
                headers=a.agent_headers,
            ),
            201,
        )
        first = w.book(PA)
        expect(
            client.post(
                f"/v1/agent/appointments/{first['appointment_id']}/reschedule",
                json={"slot_id": w.slot()},
                headers=a.agent_headers,
            ),
            200,
        )
        cancelled = expect(
            client.post(
                f"/v1/agent/appointments/{first['appointment_id']}/cancel",
                json={"reason": REASON},
                headers=a.agent_headers,
            ),
            200,
        )
    w.position = cancelled["evidence"]["position"]
    return w


Recipe = Callable[[World, Caller], Call]


def _date(days: int) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).date().isoformat()


def _with_call(c: Caller, body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "call_id": c.call} if c.call else body


# How to call each route successfully as a caller it admits. A new route needs one here: the
# live checks below fail until it has one.
RECIPES: dict[str, Recipe] = {
    "POST /v1/admin/tenants": lambda w, c: Call(
        body={"tenant_id": w.fresh("mn-new"), "name": "Clinic New", "timezone": "UTC"}
    ),
    "POST /v1/admin/tenants/{tenant_id}/tokens": lambda w, c: Call(
        params={"tenant_id": TENANT}, body={"role": "agent", "patient_ref": PA}
    ),
    "POST /v1/staff/providers": lambda w, c: Call(
        body={"provider_id": w.fresh("dr"), "name": "Dr New"}
    ),
    "POST /v1/staff/appointment-types": lambda w, c: Call(
        body={"type_id": w.fresh("visit"), "name": "Visit", "duration_minutes": 20}
    ),
    "PUT /v1/staff/providers/{provider_id}/weekly-hours": lambda w, c: Call(
        params={"provider_id": "dr-a"}, body={"hours": business_hours()}
    ),
    "POST /v1/staff/patients": lambda w, c: Call(
        body={"patient_ref": w.fresh("mn-p"), **PHI_VALUES, "language": "es"}
    ),
    "GET /v1/staff/appointments": lambda w, c: Call(
        query={"date_from": _date(-1), "date_to": _date(25), "min_position": str(w.position)}
    ),
    "GET /v1/staff/patients/{patient_ref}/timeline": lambda w, c: Call(
        params={"patient_ref": c.patient}, query={"min_position": str(w.position)}
    ),
    "POST /v1/staff/appointments/{appointment_id}/{mark}": lambda w, c: Call(
        params={"appointment_id": w.book(PC, soon=True)["appointment_id"], "mark": "arrived"}
    ),
    "GET /v1/agent/tools": lambda w, c: Call(query={"format": "openai"}),
    "POST /v1/agent/availability": lambda w, c: Call(
        body={
            "type_id": "checkup",
            "start_from": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
            "start_to": (datetime.now(UTC) + timedelta(days=8)).isoformat(),
        }
    ),
    "POST /v1/agent/holds": lambda w, c: Call(
        body=_with_call(c, {"patient_ref": c.patient, "slot_id": w.slot()})
    ),
    "POST /v1/agent/bookings": lambda w, c: Call(
        body=_with_call(c, {"patient_ref": c.patient, "slot_id": w.slot()})
    ),
    "GET /v1/agent/confirmations/{confirmation_code}": lambda w, c: Call(
        params={"confirmation_code": w.book(c.patient)["confirmation_code"]}
    ),
    "POST /v1/agent/appointments/{appointment_id}/reschedule": lambda w, c: Call(
        params={"appointment_id": w.book(c.patient)["appointment_id"]},
        body={"slot_id": w.slot()},
    ),
    "POST /v1/agent/appointments/{appointment_id}/cancel": lambda w, c: Call(
        params={"appointment_id": w.book(c.patient)["appointment_id"]}, body={"reason": REASON}
    ),
    "GET /v1/agent/patients/{patient_ref}/appointments": lambda w, c: Call(
        params={"patient_ref": c.patient}
    ),
    "GET /v1/portal/appointments": lambda w, c: Call(query={"min_position": str(w.position)}),
    "POST /v1/portal/appointments/{appointment_id}/cancel": lambda w, c: Call(
        params={"appointment_id": w.book(c.patient)["appointment_id"]}, body={"reason": REASON}
    ),
    "GET /v1/audit": lambda w, c: Call(),
    "POST /v1/agent/calls": lambda w, c: Call(
        body={"call_id": c.call or w.fresh("mn-talk"), "patient_ref": c.patient, "language": "es"}
    ),
    "POST /v1/agent/calls/{call_id}/utterances": lambda w, c: Call(
        params={"call_id": w.call_of(c)}, body={"text": "You're all set for Tuesday at 3"}
    ),
    # a call-bound token ends its own call: this route runs after every other use of it
    "POST /v1/agent/calls/{call_id}/end": lambda w, c: Call(
        params={"call_id": w.call_of(c)},
        body={"duration_seconds": 95, "outcome": "booked", "cost_cents": 12},
    ),
    "GET /v1/staff/call-economics": lambda w, c: Call(
        query={"date_from": _date(-1), "date_to": _date(1), "min_position": str(w.position)}
    ),
}


def send(client: httpx.Client, route: Route, caller: Caller, call: Call) -> httpx.Response:
    kwargs: dict[str, Any] = {"headers": caller.headers, "params": call.query}
    if call.body is not None:
        kwargs["json"] = call.body
    return client.request(route.method, route.url(call.params), **kwargs)


def callers_of(w: World, route: Route) -> list[Caller]:
    return [c for c in w.callers.values() if c.role in route.roles]


def must_not_see(w: World, caller: Caller) -> dict[str, str]:
    """Values that may not appear anywhere in an answer to ``caller``, and why."""
    hidden: dict[str, str] = {REASON: "a cancel's free-text reason"}
    if caller.role != "admin":
        hidden[CLINIC_NAME] = "the clinic's settings"
        hidden |= {v: "another clinic" for v in w.other_ids}
    grant = al.PHI_GRANTS.get(caller.role, frozenset())
    hidden |= {v: f"the patient's {k}" for k, v in PHI_VALUES.items() if k not in grant}
    if caller.bound_patient:
        hidden |= {v: "another patient than the bound one" for v in w.pb_ids}
    return hidden


def test_every_route_has_a_live_recipe(routes: list[Route]) -> None:
    missing = [r.key for r in routes if not al.is_public(r.key) and r.key not in RECIPES]
    assert not missing, (
        "routes the live minimum-necessary checks cannot call yet; add a RECIPES entry in "
        f"tests/test_minimum_necessary.py for each: {missing}"
    )
    stale = set(RECIPES) - {r.key for r in routes}
    assert not stale, f"RECIPES for routes that do not exist: {sorted(stale)}"


def test_each_role_gets_only_its_allowed_fields_and_nothing_it_must_not_see(
    world: World, routes: list[Route]
) -> None:
    problems, seen = [], []
    with world.server.client() as client:
        # ending a call comes last: a call-bound token's call must stay open for the other routes
        for route in sorted(routes, key=lambda r: r.key.endswith("/end")):
            if al.is_public(route.key) or route.key not in RECIPES:
                continue
            for caller in callers_of(world, route):
                answer = send(client, route, caller, RECIPES[route.key](world, caller))
                where = f"{route.key} as {caller.name}"
                seen.append(f"{answer.status_code} {where}")
                if not answer.is_success:
                    problems.append(f"{where}: {answer.status_code} {answer.text[:300]}")
                    continue
                if route.key not in al.NO_TENANT_DATA:
                    problems += [
                        f"{where}: {path} is not allowed for the {caller.role} role"
                        for path in al.refused_fields(caller.role, answer.json())
                    ]
                problems += [
                    f"{where}: the answer shows {why} ({value!r})"
                    for value, why in must_not_see(world, caller).items()
                    if value in answer.text
                ]
    assert len(seen) >= len(RECIPES), seen
    assert not problems, "\n".join([*problems, "", "calls made:", *seen])


def test_the_checks_catch_a_leak(world: World) -> None:
    """The live check, fed an answer that leaks, says so (it can fail)."""
    leak = {"appointments": [{"appointment_id": "x", "phone": PHI_VALUES["phone"]}]}
    assert al.refused_fields("agent", leak) == ["$.appointments[0].phone"]
    assert al.refused_fields("auditor", {"entries": [{"name": "x"}]}) == ["$.entries[0].name"]
    assert al.refused_fields("staff", {"by_language": {"en": {"calls": 1}}}) == []
    assert al.refused_fields("patient", {"by_language": {"en": {"name": "x"}}}) != []
    assert PHI_VALUES["phone"] in must_not_see(world, world.callers["agent"])


# -- request bodies: forbidden fields are refused, and nothing is written ------------------------

# Fields a caller might try to set that no request body of its role declares.
FORBIDDEN = (
    "tenant_id",
    "patient_ref",
    "call_id",
    "role",
    "status",
    "by_role",
    "confirmation_code",
)


Written = Callable[[], tuple[int, int]]


@pytest.fixture(scope="module")
def written(live_server: LiveServer) -> Iterator[Callable[[], tuple[int, int]]]:
    """``written()``: the event log's last position and the number of issued tokens."""
    with psycopg.connect(str(live_server.settings.database_url), autocommit=True) as conn:

        def now() -> tuple[int, int]:
            row = conn.execute(
                "SELECT (SELECT coalesce(max(notification_id), 0) FROM scheduling_events),"
                " (SELECT count(*) FROM booking_tokens)"
            ).fetchone()
            assert row is not None
            return int(row[0]), int(row[1])

        yield now


def test_fields_a_role_may_not_set_are_refused_with_422_and_nothing_is_written(
    world: World, routes: list[Route], written: Written
) -> None:
    problems, tried = [], 0
    with world.server.client() as client:
        for route in routes:
            if route.request is None or route.key not in RECIPES:
                continue
            declared = {f.name for f in declared_fields(route.request) if f.path.count(".") == 1}
            for caller in {c.role: c for c in callers_of(world, route)}.values():
                call = RECIPES[route.key](world, caller)
                for name in (f for f in FORBIDDEN if f not in declared):
                    before = written()
                    body = {**(call.body or {}), name: "mn-pb" if name == "patient_ref" else "x"}
                    answer = send(client, route, caller, Call(call.params, body, call.query))
                    tried += 1
                    where = f"{route.key} as {caller.name} with {name!r}"
                    if answer.status_code != 422:
                        problems.append(f"{where}: {answer.status_code} {answer.text[:200]}")
                        continue
                    problem = assert_problem(answer, 422)
                    if name not in error_fields(problem):
                        problems.append(f"{where}: the problem names {error_fields(problem)}")
                    if written() != before:
                        problems.append(f"{where}: something was written")
    assert tried >= 20, tried
    assert not problems, "\n".join(problems)


# -- bound tokens: another patient, another call, another patient's objects → 404 ----------------


RETARGETABLE = {"patient_ref", "call_id", "appointment_id", "confirmation_code"}


def retarget(w: World, route: Route, caller: Caller, call: Call) -> Iterator[tuple[str, Call]]:
    """The same call pointed at what ``caller``'s binding excludes."""
    body = dict(call.body or {})
    params = dict(call.params)
    if caller.bound_patient:
        if "patient_ref" in params:
            yield "another patient in the path", Call({**params, "patient_ref": PB}, call.body)
        if "patient_ref" in body:
            yield "another patient in the body", Call(params, {**body, "patient_ref": PB})
        if "appointment_id" in params or "confirmation_code" in params:
            theirs = w.book(PB)
            w.pb_ids.add(str(theirs["appointment_id"]))
            swapped = {
                k: str(theirs[k]) if k in ("appointment_id", "confirmation_code") else v
                for k, v in params.items()
            }
            yield "another patient's appointment", Call(swapped, call.body, call.query)
    if caller.call is not None:
        if "call_id" in params:
            yield "another call in the path", Call({**params, "call_id": OTHER_CALL}, call.body)
        declared = {f.name for f in declared_fields(route.request)} if route.request else set()
        if "call_id" in declared:
            yield "another call in the body", Call(params, {**body, "call_id": OTHER_CALL})


def test_bound_tokens_get_404_beyond_their_patient_or_call_and_nothing_is_written(
    world: World, routes: list[Route], written: Written
) -> None:
    problems, tried = [], []
    bound = [c for c in world.callers.values() if c.bound_patient or c.call]
    with world.server.client() as client:
        for route in routes:
            if route.key not in RECIPES:
                continue
            body_fields = (
                {f.name for f in declared_fields(route.request)} if route.request else set()
            )
            if not (set(route.params) | body_fields) & RETARGETABLE:
                continue
            for caller in (c for c in bound if c.role in route.roles):
                for what, call in retarget(world, route, caller, RECIPES[route.key](world, caller)):
                    before = written()
                    answer = send(client, route, caller, call)
                    tried.append(f"{route.key} as {caller.name}: {what}")
                    if answer.status_code != 404:
                        problems.append(f"{tried[-1]}: {answer.status_code} {answer.text[:200]}")
                        continue
                    assert_problem(answer, 404)
                    if written() != before:
                        problems.append(f"{tried[-1]}: something was written")
    kinds = {t.split(": ", 1)[1] for t in tried}
    assert {
        "another patient in the path",
        "another patient in the body",
        "another patient's appointment",
        "another call in the body",
    } <= kinds, tried
    assert not problems, "\n".join(problems)


def test_a_patient_token_cannot_name_another_patient(world: World, written: Written) -> None:
    """The portal takes no patient at all: naming one is a 422, naming the bound one too."""
    patient = world.callers["patient"]
    mine = world.book(PA)["appointment_id"]
    with world.server.client() as client:
        for name in (PB, PA):
            before = written()
            answer = client.post(
                f"/v1/portal/appointments/{mine}/cancel",
                json={"patient_ref": name},
                headers=patient.headers,
            )
            assert error_fields(assert_problem(answer, 422)) == ["patient_ref"]
            assert written() == before
        listed = expect(
            client.get(
                "/v1/portal/appointments", params={"patient_ref": PB}, headers=patient.headers
            ),
            200,
        )
    assert {a["patient_ref"] for a in listed["appointments"]} == {PA}, listed


def test_the_timeline_checked_above_holds_every_kind_of_entry(world: World) -> None:
    """So the live check of the timeline's free-form details is not vacuous."""
    with world.server.client() as client:
        answer = expect(
            client.get(
                f"/v1/staff/patients/{PA}/timeline",
                params={"min_position": world.position},
                headers=world.callers["staff"].headers,
            ),
            200,
        )
    kinds = {e["kind"] for e in answer["entries"]}
    assert {"registered", "hold", "booked", "rescheduled", "cancelled"} <= kinds, kinds
    assert al.refused_fields("staff", answer) == []
    assert REASON not in str(answer) and PHI_VALUES["name"] not in str(answer)
