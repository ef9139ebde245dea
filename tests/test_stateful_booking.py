"""A hypothesis state machine over the real app and PostgreSQL, checked against a reference model.

Random interleavings of hold, book (from a slot or a hold, sometimes sent twice at once), a race of
two agents for one slot, reschedule, cancel, verify, clock moves and retries of earlier requests,
by two agents for three patients, over one provider's two days with two appointment types (30 and
60 minutes, so slots of different types overlap). Each example is a fresh clinic.

The model is a few dictionaries that say what the contract says: who may take which slot, when a
hold has run out, what each answer must be. After every step the app's own answers must match it.
Invariants:
- a provider never has two booked appointments that overlap;
- a code verifies as confirmed exactly when its appointment is booked, and then names it;
- state rebuilt from the log (a fresh store, no cache) equals the live app's state, and the
  staff board (a read model) at the log's last position shows the same appointments.

Time is modelled in steps of 100 s with holds of 150 s, so a hold is never within 50 s of running
out when it is judged: the real seconds that pass during an example cannot flip a verdict.
"""

from __future__ import annotations

import itertools
import os
import threading
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from eventsourcing.application import AggregateNotFoundError
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from booking.days import ProviderDay
from booking.store import open_store
from tests.booking_helpers import EventLog, assert_problem, event_log, read_model, utc
from tests.support.server import LiveServer, Tenant, expect, seed_tenant

TTL = 150
STEP = 100
SERVER_SETTINGS = {"hold_ttl_seconds": TTL}
TZ = ZoneInfo("America/New_York")
PATIENTS = ("pat-a", "pat-b", "pat-c")
TYPES = {"short": 30, "long": 60}
DAYS = (3, 4)  # days ahead of the example's start
MAX_HOLDS = 3


@dataclass
class Slot:
    slot_id: str
    type_id: str
    start: datetime
    end: datetime

    def overlaps(self, start: datetime, end: datetime) -> bool:
        return self.start < end and start < self.end


@dataclass
class Hold:
    hold_id: str
    patient: str
    slot: Slot
    expires: int  # model seconds
    status: str = "held"  # held | converted

    def active(self, now: int) -> bool:
        return self.status == "held" and now < self.expires


@dataclass
class Appointment:
    appointment_id: str
    patient: str
    slot: Slot
    code: str
    status: str = "booked"


@dataclass
class Sent:
    """A write that succeeded, kept so that it can be sent again as a retry."""

    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    status: int
    content: bytes


class BookingMachine(RuleBasedStateMachine):
    server: LiveServer  # set by the test
    log: EventLog
    outcomes: Counter[str] = Counter()  # what the examples exercised, printed by the test

    def __init__(self) -> None:
        super().__init__()
        self.tenant: Tenant = seed_tenant(self.server, f"sm-{uuid.uuid4().hex[:10]}")
        self.client = self.server.client()
        self.agents = [self.tenant.agent_headers, self.tenant.token("agent")]
        self.setup_clinic()
        self.now = 0  # model seconds since the example started
        self.holds: dict[str, Hold] = {}
        self.appointments: dict[str, Appointment] = {}
        self.known: dict[str, set[str]] = {p: set() for p in PATIENTS}  # Patient.holds
        self.sent: list[Sent] = []

    # -- set-up ----------------------------------------------------------------------------

    def setup_clinic(self) -> None:
        staff = self.tenant.staff_headers
        post = self.client.post
        expect(
            post("/v1/staff/providers", json={"provider_id": "dr-m", "name": "M"}, headers=staff),
            201,
        )
        for type_id, minutes in TYPES.items():
            body = {"type_id": type_id, "name": type_id, "duration_minutes": minutes}
            expect(post("/v1/staff/appointment-types", json=body, headers=staff), 201)
        hours = [{"weekday": d, "start": "09:00", "end": "11:00"} for d in range(7)]
        expect(
            self.client.put(
                "/v1/staff/providers/dr-m/weekly-hours", json={"hours": hours}, headers=staff
            ),
            200,
        )
        for patient in PATIENTS:
            expect(
                post(
                    "/v1/staff/patients",
                    json={"patient_ref": patient, "name": patient},
                    headers=staff,
                ),
                201,
            )
        today = self.server.clock.now().astimezone(TZ).date()
        self.slots: list[Slot] = []
        for type_id in TYPES:
            for days in DAYS:
                start = datetime.combine(today + timedelta(days=days), datetime.min.time(), TZ)
                answer = expect(
                    post(
                        "/v1/agent/availability",
                        json={
                            "type_id": type_id,
                            "provider_id": "dr-m",
                            "start_from": start.isoformat(),
                            "start_to": (start + timedelta(hours=23)).isoformat(),
                        },
                        headers=self.agents[0],
                    ),
                    200,
                )
                self.slots += [
                    Slot(s["slot_id"], type_id, utc(s["start"]), utc(s["end"]))
                    for s in answer["slots"]
                ]
        assert len(self.slots) == 12, self.slots  # 4 + 2 a day

    def teardown(self) -> None:
        try:
            self.check_rebuilt_state()
        finally:
            self.client.close()

    # -- the model -----------------------------------------------------------------------------

    def blocked(self, slot: Slot, patient: str, ignore: str | None = None) -> bool:
        """Whether ``slot`` is taken for ``patient``: a booking (any patient's, but ``ignore``) or
        another patient's active hold overlaps it."""
        for a in self.appointments.values():
            if (
                a.status == "booked"
                and a.appointment_id != ignore
                and slot.overlaps(a.slot.start, a.slot.end)
            ):
                return True
        return any(
            h.active(self.now) and h.patient != patient and slot.overlaps(h.slot.start, h.slot.end)
            for h in self.holds.values()
        )

    def own_hold(self, slot: Slot, patient: str) -> Hold | None:
        return next(
            (
                h
                for h in self.holds.values()
                if h.patient == patient and h.slot == slot and h.active(self.now)
            ),
            None,
        )

    # -- talking to the app --------------------------------------------------------------------

    def post(self, path: str, body: dict[str, Any], agent: int) -> httpx.Response:
        headers = {**self.agents[agent], "Idempotency-Key": str(uuid.uuid4())}
        response = self.client.post(path, json=body, headers=headers)
        self.count(path, response)
        assert response.status_code < 500, response.text
        if response.status_code < 300:
            self.sent.append(Sent(path, body, headers, response.status_code, response.content))
        return response

    def booked(self, response: httpx.Response, patient: str, slot: Slot) -> None:
        answer = response.json()
        assert (answer["status"], utc(answer["start"])) == ("booked", slot.start), answer
        self.appointments[answer["appointment_id"]] = Appointment(
            answer["appointment_id"], patient, slot, answer["confirmation_code"]
        )

    def count(self, path: str, response: httpx.Response) -> None:
        kind = path.rsplit("/", 1)[-1]
        what = (
            response.json().get("type", "").rsplit("/", 1)[-1]
            if response.status_code >= 400
            else ""
        )
        self.outcomes[f"{kind} {response.status_code} {what}".strip()] += 1

    # -- rules -----------------------------------------------------------------------------------

    @rule(data=st.data(), agent=st.integers(0, 1), patient=st.sampled_from(PATIENTS))
    def hold(self, data: st.DataObject, agent: int, patient: str) -> None:
        slot = data.draw(st.sampled_from(self.slots))
        response = self.post(
            "/v1/agent/holds", {"slot_id": slot.slot_id, "patient_ref": patient}, agent
        )
        active = sum(h.active(self.now) for h in self.holds.values() if h.patient == patient)
        if self.blocked(slot, patient) or self.own_hold(slot, patient):
            assert_problem(response, 409, "slot-unavailable")
        elif active >= MAX_HOLDS:
            assert_problem(response, 409, "too-many-holds")
        else:
            assert response.status_code == 201, response.text
            hold_id = response.json()["hold_id"]
            self.holds[hold_id] = Hold(hold_id, patient, slot, self.now + TTL)
            # Patient.take_hold forgets holds only a day after they expired
            self.known[patient].add(hold_id)

    @rule(
        data=st.data(),
        agent=st.integers(0, 1),
        patient=st.sampled_from(PATIENTS),
        twice=st.booleans(),
    )
    def book_slot(self, data: st.DataObject, agent: int, patient: str, twice: bool) -> None:
        """Book straight from a slot; ``twice``: the platform sends the request twice at once."""
        slot = data.draw(st.sampled_from(self.slots))
        body = {"slot_id": slot.slot_id, "patient_ref": patient}
        if twice:
            responses = self.twice("/v1/agent/bookings", body, agent)
            assert responses[0].status_code == responses[1].status_code, responses
            if responses[0].status_code == 201:
                assert responses[0].content == responses[1].content
            response = responses[0]
        else:
            response = self.post("/v1/agent/bookings", body, agent)
        if self.blocked(slot, patient):
            assert_problem(response, 409, "slot-unavailable")
            return
        assert response.status_code == 201, response.text
        converted = self.own_hold(slot, patient)
        if converted is not None:
            converted.status = "converted"
        self.booked(response, patient, slot)

    @rule(data=st.data(), agent=st.integers(0, 1))
    def book_hold(self, data: st.DataObject, agent: int) -> None:
        if not self.holds:
            return
        hold = self.holds[data.draw(st.sampled_from(list(self.holds)))]
        patient = data.draw(st.sampled_from([hold.patient, hold.patient, *PATIENTS]))
        response = self.post(
            "/v1/agent/bookings", {"hold_id": hold.hold_id, "patient_ref": patient}, agent
        )
        if hold.hold_id not in self.known[patient]:
            assert_problem(response, 404, "not-found")
        elif not hold.active(self.now):
            assert_problem(response, 409, "hold-not-active")
        elif self.blocked(hold.slot, patient):
            assert_problem(response, 409, "slot-unavailable")
        else:
            assert response.status_code == 201, response.text
            hold.status = "converted"
            self.booked(response, patient, hold.slot)

    @rule(data=st.data(), patients=st.permutations(PATIENTS))
    def race(self, data: st.DataObject, patients: list[str]) -> None:
        """Two agents book one slot for two patients at the same moment."""
        slot = data.draw(st.sampled_from(self.slots))
        first, second = patients[0], patients[1]
        bodies = [{"slot_id": slot.slot_id, "patient_ref": p} for p in (first, second)]
        responses = together(
            [lambda b=b, i=i: self.post("/v1/agent/bookings", b, i) for i, b in enumerate(bodies)]
        )
        can = [not self.blocked(slot, p) for p in (first, second)]
        won = [r.status_code == 201 for r in responses]
        for response, ok in zip(responses, won, strict=True):
            if not ok:
                assert_problem(response, 409, "slot-unavailable")
        assert sum(won) == (1 if any(can) else 0), (can, [r.text for r in responses])
        for patient, response, ok, allowed in zip(
            (first, second), responses, won, can, strict=True
        ):
            if ok:
                assert allowed, f"{patient} won a slot the model says was taken"
                converted = self.own_hold(slot, patient)
                if converted is not None:
                    converted.status = "converted"
                self.booked(response, patient, slot)

    @rule(data=st.data(), agent=st.integers(0, 1))
    def reschedule(self, data: st.DataObject, agent: int) -> None:
        if not self.appointments:
            return
        appointment = self.appointments[data.draw(st.sampled_from(list(self.appointments)))]
        slot = data.draw(
            st.sampled_from([s for s in self.slots if s.type_id == appointment.slot.type_id])
        )
        response = self.post(
            f"/v1/agent/appointments/{appointment.appointment_id}/reschedule",
            {"slot_id": slot.slot_id},
            agent,
        )
        if appointment.status != "booked":
            assert_problem(response, 409, "invalid-state")
        elif self.blocked(slot, appointment.patient, ignore=appointment.appointment_id):
            assert_problem(response, 409, "slot-unavailable")
        else:
            assert response.status_code == 200, response.text
            answer = response.json()
            assert answer["appointment_id"] == appointment.appointment_id
            assert answer["confirmation_code"] == appointment.code
            assert utc(answer["start"]) == slot.start
            converted = self.own_hold(slot, appointment.patient)
            if converted is not None:
                converted.status = "converted"
            appointment.slot = slot

    @rule(data=st.data(), agent=st.integers(0, 1))
    def cancel(self, data: st.DataObject, agent: int) -> None:
        if not self.appointments:
            return
        appointment = self.appointments[data.draw(st.sampled_from(list(self.appointments)))]
        response = self.post(
            f"/v1/agent/appointments/{appointment.appointment_id}/cancel",
            {"reason": "changed plans"},
            agent,
        )
        if appointment.status != "booked":
            assert_problem(response, 409, "invalid-state")
        else:
            assert response.status_code == 200, response.text
            assert response.json()["status"] == "cancelled"
            appointment.status = "cancelled"

    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        """The platform sends an earlier successful write again, same key and body."""
        if not self.sent:
            return
        sent = data.draw(st.sampled_from(self.sent))
        before = self.log.max_position()
        response = self.client.post(sent.path, json=sent.body, headers=sent.headers)
        self.outcomes["retry"] += 1
        assert (response.status_code, response.content) == (sent.status, sent.content), (
            response.text
        )
        assert response.headers.get("Idempotent-Replayed") == "true"
        assert self.log.max_position() == before, "a retry wrote something"

    @rule(data=st.data())
    def verify(self, data: st.DataObject) -> None:
        codes = [*(a.code for a in self.appointments.values()), "ZZZZ222"]
        self.check_code(data.draw(st.sampled_from(codes)))

    @rule(steps=st.integers(1, 2))
    def time_passes(self, steps: int) -> None:
        self.outcomes["time passes"] += 1
        self.server.clock.advance(seconds=steps * STEP)
        self.now += steps * STEP

    # -- checks ----------------------------------------------------------------------------------

    def twice(self, path: str, body: dict[str, Any], agent: int) -> list[httpx.Response]:
        headers = {**self.agents[agent], "Idempotency-Key": str(uuid.uuid4())}

        def send() -> httpx.Response:
            with self.server.client() as client:
                return client.post(path, json=body, headers=headers)

        responses = together([send, send])
        for response in responses:
            self.count(path, response)
        if responses[0].status_code < 300:
            self.sent.append(
                Sent(path, body, headers, responses[0].status_code, responses[0].content)
            )
        return responses

    def check_code(self, code: str) -> None:
        answer = self.client.get(f"/v1/agent/confirmations/{code}", headers=self.agents[0])
        appointment = next((a for a in self.appointments.values() if a.code == code), None)
        if appointment is None:
            assert_problem(answer, 404, "confirmation-not-found")
            return
        body = expect(answer, 200)
        assert body["appointment_id"] == appointment.appointment_id, body
        assert body["confirmed"] is (appointment.status == "booked"), body
        if body["confirmed"]:
            assert utc(body["start"]) == appointment.slot.start, body

    @invariant()
    def the_app_agrees_with_the_model(self) -> None:
        live: dict[str, tuple[str, str, datetime]] = {}
        booked: list[tuple[datetime, datetime]] = []
        for patient in PATIENTS:
            answer = expect(
                self.client.get(
                    f"/v1/agent/patients/{patient}/appointments", headers=self.agents[1]
                ),
                200,
            )
            for a in answer["appointments"]:
                live[a["appointment_id"]] = (patient, a["status"], utc(a["start"]))
                if a["status"] == "booked":
                    booked.append((utc(a["start"]), utc(a["end"])))
        booked.sort()
        for (_, end), (start, _) in itertools.pairwise(booked):
            assert end <= start, f"the provider has two overlapping appointments: {booked}"
        expected = {
            a.appointment_id: (a.patient, a.status, a.slot.start)
            for a in self.appointments.values()
        }
        assert live == expected

    def check_rebuilt_state(self) -> None:
        for appointment in self.appointments.values():
            self.check_code(appointment.code)
        fresh = open_store(
            str(self.server.settings.database_url), str(self.server.settings.cipher_key)
        )
        try:
            live = self.server.app.state.services.store.repository
            for appointment_id in self.appointments:
                stream = uuid.UUID(appointment_id)
                assert state_of(fresh.repository, stream) == state_of(live, stream)
            for date in {s.start.astimezone(TZ).date() for s in self.slots}:
                day_id = ProviderDay.create_id(self.tenant.tenant_id, "dr-m", date.isoformat())
                assert state_of(fresh.repository, day_id) == state_of(live, day_id), date
        finally:
            fresh.close()
        dates = sorted({s.start.astimezone(TZ).date() for s in self.slots})
        board = read_model(
            self.client,
            "/v1/staff/appointments",
            {"date_from": dates[0].isoformat(), "date_to": dates[-1].isoformat()},
            self.tenant.staff_headers,
            self.log.max_position(),
        )
        shown = {a["appointment_id"]: (a["status"], utc(a["start"])) for a in board["appointments"]}
        assert shown == {
            a.appointment_id: (a.status, a.slot.start) for a in self.appointments.values()
        }


def state_of(repository: Any, aggregate_id: uuid.UUID) -> dict[str, Any] | None:
    try:
        return dict(vars(repository.get(aggregate_id)))
    except AggregateNotFoundError:
        return None


def together(calls: list[Any]) -> list[httpx.Response]:
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = calls[index]()
        except BaseException as exc:
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


@pytest.fixture(scope="module")
def log(live_server: LiveServer) -> Any:
    yield from event_log(live_server)


def test_random_interleavings_agree_with_the_reference_model(
    live_server: LiveServer, log: EventLog
) -> None:
    BookingMachine.server = live_server
    BookingMachine.log = log
    run_state_machine_as_test(
        BookingMachine,
        settings=settings(
            max_examples=int(os.environ.get("BOOKING_STATEFUL_EXAMPLES", "8")),
            phases=[Phase.generate, Phase.shrink],
            stateful_step_count=20,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
    print(
        "\nexercised:", ", ".join(f"{k}: {v}" for k, v in sorted(BookingMachine.outcomes.items()))
    )
