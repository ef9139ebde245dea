"""The relay inside the API (``BOOKING_NATS_URL`` set) against a real nats-server from the wheel:
every event reaches a durable consumer exactly once, in log order, on its subject; the payloads
carry no patient data; NATS going away for ten seconds costs the API nothing and the stream
nothing."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import msgspec
import pytest
from eventsourcing.domain import CanMutateAggregate

import booking.aggregates
from booking.ids import event_id
from booking.store import SchedulingApp, open_store
from fanout import tracking
from fanout.messages import event_name, outgoing
from fanout.nats_server import NatsServer
from fanout.payloads import CATALOGUE, ENVELOPE, Payload
from fanout.stream import STREAM
from tests.support import burst
from tests.support.nats import (
    NATS_URL,
    assert_stream_is_the_log,
    consume,
    delete_stream,
    log_events,
    run,
    stream_messages,
    wait_for_relay,
    wait_until,
)
from tests.support.server import LiveServer, expect

SERVER_SETTINGS = {"nats_url": NATS_URL}
TENANTS = ("fan-a", "fan-b", "fan-c")


@pytest.fixture(scope="module")
def server(nats_server: NatsServer) -> Iterator[None]:
    """An empty stream before this module's app (and its relay) starts."""
    delete_stream()
    yield


@pytest.fixture(scope="module")
def app(server: None, live_server: LiveServer) -> LiveServer:
    return live_server


@pytest.fixture(scope="module")
def store(app: LiveServer) -> Iterator[SchedulingApp]:
    s = open_store(app.settings.database_url or "", app.settings.cipher_key or "")
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(scope="module")
def clinics(app: LiveServer) -> dict[str, burst.Clinic]:
    return {t: burst.open_clinic(app, t, providers=2, patients=9) for t in TENANTS}


def test_a_thousand_bookings_in_three_tenants_reach_a_durable_consumer_once_in_order(
    app: LiveServer, store: SchedulingApp, clinics: dict[str, burst.Clinic]
) -> None:
    work = [
        job
        for i, clinic in enumerate(clinics.values())
        for job in burst.jobs(clinic, 334 if i < 2 else 332)
    ]
    decisions = burst.book_in_process(app, work, threads=4)
    assert len(decisions) == 1000
    wait_for_relay(store)
    received = consume("thousand")
    counts = assert_stream_is_the_log(store, received)
    assert counts["repeated"] == 0, counts
    booked = Counter(
        r.subject.split(".")[1] for r in received if r.subject.endswith(".Appointment.Booked")
    )
    assert booked == {"fan-a": 334, "fan-b": 334, "fan-c": 332}
    # the evidence a booking answers with names the published event
    by_id = {r.msg_id: r.body for r in received}
    for d in decisions:
        body = by_id[str(event_id(d.stream_id, d.version))]
        assert (body["event"], body["position"]) == ("Appointment.Booked", d.position)
        assert body["appointment_id"] == str(d.stream_id)


def test_ready_reports_the_relay_lag(app: LiveServer, store: SchedulingApp) -> None:
    wait_for_relay(store)
    with app.client() as client:
        body = expect(client.get("/ready"), 200)
    assert body["relays"]["nats"]["lag_events"] == 0, body
    assert body["relays"]["nats"]["position"] == body["position"], body


def test_a_repeated_message_id_is_dropped_by_the_stream(store: SchedulingApp) -> None:
    """Republishing an event the stream holds (what a relay killed before its tracking update
    may do) leaves the stream as it was: the Nats-Msg-Id is the event id."""
    import nats

    position, topic, event = log_events(store)[-1]
    out = outgoing(topic, event, position)

    async def republish() -> tuple[bool, int, int]:
        nc = await nats.connect(NATS_URL)
        try:
            js = nc.jetstream()
            before = (await js.stream_info(STREAM)).state.messages
            ack = await js.publish(out.subject, out.data, headers={"Nats-Msg-Id": out.msg_id})
            after = (await js.stream_info(STREAM)).state.messages
            return bool(ack.duplicate), before, after
        finally:
            await nc.close()

    duplicate, before, after = run(republish())
    assert duplicate and before == after


def test_every_stored_event_type_has_a_catalogue_entry_and_a_documented_name() -> None:
    docs = (Path(__file__).resolve().parents[1] / "docs" / "events.md").read_text()
    topics = set()
    for name in booking.aggregates.__all__:
        for value in vars(getattr(booking.aggregates, name)).values():
            if (
                isinstance(value, type)
                and issubclass(value, CanMutateAggregate)
                and "tenant_id" in getattr(value, "__dataclass_fields__", {})
            ):
                topics.add(cast(Any, value).TOPIC)
    assert topics == set(CATALOGUE), topics ^ set(CATALOGUE)
    for topic, cls in CATALOGUE.items():
        assert f"`{event_name(topic)}`" in docs, f"docs/events.md does not describe {topic}"
        for field in set(cls.__struct_fields__) - ENVELOPE:
            assert f"`{field}`" in docs, f"docs/events.md does not name {topic}'s {field}"


def test_every_published_payload_decodes_into_its_catalogue_type(store: SchedulingApp) -> None:
    received = consume("types")
    assert received
    topics = {f"booking:{r.subject.split('.', 2)[2]}" for r in received}
    for r in received:
        cls = CATALOGUE.get(f"booking:{r.subject.split('.', 2)[2]}", Payload)
        decoded = msgspec.json.decode(r.data, type=cls, strict=True)
        assert decoded.event == r.subject.split(".", 2)[2]
        assert set(r.body) == set(cls.__struct_fields__), (cls, r.body)
    assert "booking:Appointment.Booked" in topics and "booking:Patient.Registered" in topics


def canaries() -> dict[str, str]:
    """A patient nobody else could be: every string is unique to this run."""
    tag = secrets.token_hex(4)
    digits = f"{secrets.randbelow(10**7):07d}"
    born = (
        f"19{secrets.randbelow(60) + 20}-0{secrets.randbelow(9) + 1}-{secrets.randbelow(18) + 10}"
    )
    return {
        "first": f"Zephyrine{tag}",
        "last": f"Quockwood{tag}",
        "phone": f"+1 555 {digits[:3]} {digits[3:]}",
        "digits": f"555{digits}",
        "born": born,
        "reason": f"needs an interpreter for Quockwood{tag}",
    }


def test_no_published_byte_names_a_patient(
    app: LiveServer,
    store: SchedulingApp,
    clinics: dict[str, burst.Clinic],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    secrets_seen: list[str] = []
    codes: list[str] = []
    with app.client() as client:
        for number, clinic in enumerate(clinics.values()):
            canary = canaries()
            secrets_seen += canary.values()
            tenant, ref = clinic.tenant, f"canary-{number}"
            expect(
                client.post(
                    "/v1/staff/patients",
                    headers=tenant.staff_headers,
                    json={
                        "patient_ref": ref,
                        "name": f"{canary['first']} {canary['last']}",
                        "phone": canary["phone"],
                        "birth_date": canary["born"],
                        "language": "es",
                    },
                ),
                201,
            )
            first, second = burst.jobs(clinic, 2, first_day=30)[0].slot_ids
            held = expect(
                client.post(
                    "/v1/agent/holds",
                    headers=tenant.agent_headers,
                    json={"patient_ref": ref, "slot_id": first},
                ),
                201,
            )
            booked = expect(
                client.post(
                    "/v1/agent/bookings",
                    headers={**tenant.agent_headers, "Idempotency-Key": f"canary-{ref}"},
                    json={"patient_ref": ref, "hold_id": held["hold_id"]},
                ),
                201,
            )
            codes.append(booked["confirmation_code"])
            appointment = booked["appointment_id"]
            expect(
                client.post(
                    f"/v1/agent/appointments/{appointment}/reschedule",
                    headers=tenant.agent_headers,
                    json={"slot_id": second},
                ),
                200,
            )
            expect(
                client.post(
                    f"/v1/agent/appointments/{appointment}/cancel",
                    headers=tenant.agent_headers,
                    json={"reason": canary["reason"]},
                ),
                200,
            )
    # the event log does hold them (decrypted), so a search of the stream could find them
    logged = repr([vars(e) for _, _, e in log_events(store)])
    assert all(c in logged for c in codes) and canary["last"] in logged
    wait_for_relay(store)
    received = consume("phi")
    published = {r.body["event"] for r in received}
    assert {"Patient.Registered", "ProviderDay.Held", "Appointment.Rescheduled"} <= published
    assert {"Appointment.Cancelled", "IdempotentRequest.Recorded"} <= published
    raw = b"\n".join(
        r.subject.encode() + repr(r.headers).encode() + r.data for r in received
    ).decode()
    for secret in [*secrets_seen, *codes]:
        assert secret not in raw, f"{secret!r} was published"
        assert secret not in caplog.text, f"{secret!r} was logged"
    forbidden = {"name", "phone", "birth_date", "language", "reason", "confirmation_code", "code"}
    forbidden |= {"key", "fingerprint", "scope"}
    for r in received:
        if r.body["event"] == "ProviderDay.BookingReleased":
            continue  # its reason is "cancelled" or "rescheduled", set by the code
        assert not forbidden & set(r.body), (r.body["event"], sorted(forbidden & set(r.body)))


def test_nats_down_for_ten_seconds_during_a_burst_costs_the_api_nothing_and_the_stream_nothing(
    app: LiveServer,
    store: SchedulingApp,
    clinics: dict[str, burst.Clinic],
    nats_server: NatsServer,
) -> None:
    wait_for_relay(store)
    work = [burst.jobs(clinic, 36, first_day=20)[0] for clinic in clinics.values()]
    answers: list[Any] = []
    made: list[float] = []  # when each answer came
    paced = threading.Event()

    def slowly(_: Any) -> None:
        made.append(time.monotonic())
        if len(made) >= 6:
            paced.set()
        time.sleep(0.3)  # ~10 bookings/s over three threads: the burst outlasts the outage

    runner = threading.Thread(
        target=lambda: answers.extend(burst.book(app, work, threads=3, done=slowly))
    )
    runner.start()
    try:
        assert paced.wait(30), "the burst did not start"
        nats_server.stop()
        stopped_at = time.monotonic()
        during: list[dict[str, Any]] = []
        with app.client() as client:
            while time.monotonic() - stopped_at < 10:
                during.append(client.get("/ready").json())
                time.sleep(0.5)
    finally:
        nats_server.start()
        restarted_at = time.monotonic()
    runner.join(120)
    assert Counter(a.status_code for a in answers) == {201: 108}
    answered_meanwhile = sum(stopped_at < t < restarted_at for t in made)
    assert answered_meanwhile >= 20, f"only {answered_meanwhile} bookings while NATS was down"
    assert any(d["relays"]["nats"]["lag_events"] > 0 for d in during), during[-1]
    wait_for_relay(store, timeout=30)
    health = app.app.state.relay.health
    assert health.failures >= 1 and health.state == "publishing", health
    assert_stream_is_the_log(store, consume("after-outage"))
    wait_until(lambda: stream_messages() == len(log_events(store)), 5, "no stray messages")
    assert tracking.position(store) == int(store.recorder.max_notification_id() or 0)
